"""What every benchmark section shares: figures and targets, the run context, processes and memory."""
import csv
import json
import operator
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS_CANDIDATES = (ROOT / "data" / "jaychou_lyrics.txt", ROOT.parent / "shared" / "data" / "jaychou_lyrics.txt")
OPS = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt}


def default_corpus() -> Path:
    """Where `lyricgen download jaychou` writes the corpus, else the shared copy beside the checkout."""
    return next((p for p in CORPUS_CANDIDATES if p.is_file()), CORPUS_CANDIDATES[0])


@dataclass
class Figure:
    name: str
    value: float | int | None
    unit: str = ""
    target: str = ""  # "<= 7.8", ">= 20000", or "" when the figure has none

    @property
    def met(self) -> bool | None:
        if not self.target or self.value is None:
            return None
        op, bound = self.target.split()
        return OPS[op](self.value, float(bound))

    def to_dict(self) -> dict:
        return {"figure": self.name, "value": self.value, "unit": self.unit, "target": self.target, "met": self.met}


@dataclass
class Section:
    figures: list[Figure] = field(default_factory=list)
    details: dict = field(default_factory=dict)  # everything behind the figures, for the JSON

    def add(self, name: str, value, unit: str = "", target: str = "") -> None:
        self.figures.append(Figure(name, value, unit, target))


@dataclass
class Context:
    corpus: Path
    tmp: Path
    quick: bool
    checkpoint: Path | None = None  # a trained model for the sections that need one (quality sets it)
    out: Path = ROOT / "bench-results"  # where files beside bench.json go (the serving screenshot)
    base: Path | None = None  # a base model for the quality section's fine-tune (None: it trains one)
    base_budget: float | None = None  # seconds for that base (None: the section's default)
    keep_runs: Path | None = None  # where the quality section keeps its runs (None: in tmp, removed)

    @property
    def env(self) -> dict:
        """The environment of every child process: a private, fresh token and jieba cache, and the
        checkout on the path (children run in ctx.tmp and import `benchmarks`)."""
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
        return {**os.environ, "LYRICGEN_CACHE": str(self.tmp / "cache"), "PYTHONPATH": path}


def lyricgen_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "lyricgen", *map(str, args)]


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_checked(cmd: list[str], ctx: Context) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run a command to completion in ctx.tmp; (result, wall s, CPU s), or an error with its stderr.

    CPU s / wall s near the core count means the command had the machine; far below, it waited.
    """
    cpu0, t0 = children_cpu_s(), time.perf_counter()
    result = subprocess.run(cmd, env=ctx.env, cwd=ctx.tmp, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, children_cpu_s() - cpu0
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd[1:5]))} ... exited {result.returncode}: "
                           f"{result.stderr.strip()[-800:]}")
    return result, wall, cpu


def run_json(cmd: list[str], ctx: Context) -> dict:
    """A command's last stdout line, parsed as JSON (`lyricgen evaluate --json`, a child section)."""
    return json.loads(run_checked(cmd, ctx)[0].stdout.strip().splitlines()[-1])


def child_cmd(module: str, *args) -> list[str]:
    """`python -m benchmarks.MODULE ARGS`: a measurement in a fresh process (its own memory peak)."""
    return [sys.executable, "-m", f"benchmarks.{module}", *map(str, args)]


def read_metrics(run_dir: Path) -> list[dict]:
    with open(run_dir / "metrics.csv", encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def write_lines(lines: list[str], path: Path) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def protocol_files(ctx: Context) -> tuple[Path, Path]:
    """The held-out protocol's two files: the first 90% of the corpus's lines (what lyricgen trains
    on; its own validation is the last 10% of that part) and the untouched last 10% (what is scored)."""
    from lyricgen.text.corpus import read_corpus, split_lines

    train, held_out = ctx.tmp / "train90.txt", ctx.tmp / "heldout10.txt"
    if not held_out.exists():
        first, last = split_lines(read_corpus(ctx.corpus), 0.1)
        write_lines(first, train)
        write_lines(last, held_out)
    return train, held_out


def proc_status_mb(pid="self", name: str = "VmRSS") -> float | None:
    """A memory line of /proc/PID/status (VmRSS: resident now, VmHWM: its peak) in MiB."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(name + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def reset_peak_rss() -> bool:
    """Set this process's VmHWM back to its current RSS (Linux >= 4.0), so a later VmHWM is the peak
    of what ran in between (ru_maxrss cannot be reset)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


def matmul_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    """The machine's fp32 matrix-product rate, best of `repeats`: the ceiling for training figures."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)  # warm-up: thread pool and allocator
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9


def format_table(figures: list[Figure]) -> str:
    def fmt(v):
        if isinstance(v, int):
            return f"{v:,}"
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"

    rows = [f for f in figures if f.value is not None]
    width = max((len(f.name) for f in rows), default=6)
    lines = [f"{'figure':<{width}}  {'value':>10}  {'unit':<10}  target"]
    for f in rows:
        mark = {True: "  met", False: "  MISSED", None: ""}[f.met]
        lines.append(f"{f.name:<{width}}  {fmt(f.value):>10}  {f.unit:<10}  {f.target}{mark}".rstrip())
    return "\n".join(lines)


def against_import_torch(ctx: Context, cmd: list[str], repeats: int) -> dict:
    """A whole process's wall time against `python -c "import torch"`, medians of interleaved runs
    (so a burst of load hits both alike)."""
    import statistics

    bare = [sys.executable, "-c", "import torch"]
    times = {"generate": [], "import_torch": []}
    for _ in range(repeats):
        times["generate"].append(run_checked(cmd, ctx)[1])
        times["import_torch"].append(run_checked(bare, ctx)[1])
    gen, bare_s = statistics.median(times["generate"]), statistics.median(times["import_torch"])
    return {"generate_s": gen, "import_torch_s": bare_s, "ratio": gen / bare_s, "runs": times}
