"""Data-parallel training: tokens/s of one process against two gloo processes (`torchrun
--nproc-per-node 2`), the default model and batch per process, on the bundled sample corpus and, when
present, 全宋词 (data/songci.txt or ../shared/data/songci.txt; `lyricgen download songci`).

The machine's cores are shared out: each of two processes gets half as torch threads; one process
runs twice, with them all and with one thread (on a busy machine extra threads can stall). Every run
trains for the same time budget without validation (--val-fraction 0), so the figure is training
alone; the token cache is filled once before, so tokenising is not in it. Two figures per run: the
trainer's own tokens/s (metrics.csv: target tokens over the time spent in optimizer steps,
collectives included) and the wall rate (tokens of all steps over the run's elapsed time, which adds
the per-step agreement on stopping).

    python -m benchmarks.distributed [CORPUS ...] [--seconds S]    # print the figures for these corpora
"""
import argparse
import os
import sys
import tempfile
from pathlib import Path

from .common import ROOT, Context, Section, lyricgen_cmd, read_metrics, run_checked

SAMPLE = ROOT / "data" / "sample_lyrics.txt"
SONGCI_CANDIDATES = (ROOT / "data" / "songci.txt", ROOT.parent / "shared" / "data" / "songci.txt")
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone"]


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def measure(ctx: Context, corpus: Path, processes: int, threads: int, seconds: float) -> dict:
    """Train on `corpus` for `seconds` with `processes` processes of `threads` torch threads each."""
    out = ctx.tmp / f"ddp-{corpus.stem}-{processes}x{threads}"
    train = ["train", "--corpus", corpus, "--out", out, "--quiet", "--force", "--device", "cpu",
             "--val-fraction", "0", "--mix", "none", "--time-budget", seconds]
    cmd = lyricgen_cmd(*train) if processes == 1 else \
        [*TORCHRUN, "--nproc-per-node", str(processes), *lyricgen_cmd(*train)[1:]]
    saved = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = str(threads)  # ctx.env copies os.environ
    try:
        _, wall, cpu = run_checked([str(c) for c in cmd], ctx)
    finally:
        os.environ.pop("OMP_NUM_THREADS") if saved is None else os.environ.update(OMP_NUM_THREADS=saved)
    rows = read_metrics(out)
    steps = [int(r["step"]) for r in rows]
    weights = [b - a for a, b in zip([0] + steps, steps)]  # steps per row: a weighted mean over the run
    step_rate = sum(w * float(r["tokens_per_s"]) for w, r in zip(weights, rows)) / max(sum(weights), 1)
    from lyricgen.checkpoint import load_checkpoint

    config = load_checkpoint(out / "last.pt").training.config
    elapsed = float(rows[-1]["elapsed_s"])
    return {"processes": processes, "threads_each": threads, "steps": steps[-1], "tokens_per_s": step_rate,
            "wall_tokens_per_s": steps[-1] * processes * config.batch_size * config.seq_len / max(elapsed, 1e-9),
            "elapsed_s": elapsed, "command_wall_s": wall, "command_cpu_s": cpu}


RUNS = {"1": (1, None), "1x1": (1, 1), "2": (2, None)}  # name: (processes, threads each; None: cores / processes)


def compare(ctx: Context, corpus: Path, seconds: float) -> dict:
    """One process (all cores, then one thread), then two, on one corpus (after a run that fills the
    token cache)."""
    run_checked(lyricgen_cmd("train", "--corpus", corpus, "--out", ctx.tmp / "ddp-warm", "--quiet", "--force",
                             "--device", "cpu", "--max-steps", "1", "--val-fraction", "0"), ctx)
    return {name: measure(ctx, corpus, n, threads or max(1, cores() // n), seconds)
            for name, (n, threads) in RUNS.items()}


def corpora() -> list[Path]:
    songci = next((p for p in SONGCI_CANDIDATES if p.is_file()), None)
    return [SAMPLE] + ([songci] if songci else [])


def add_figures(section: Section, name: str, result: dict) -> None:
    for key, r in result.items():
        label = f"{r['processes']} process{'es' if r['processes'] > 1 else ''} x {r['threads_each']} thread(s)"
        section.add(f"ddp {name}, {label}: throughput", r["tokens_per_s"], "tokens/s")
        section.add(f"ddp {name}, {label}: wall rate", r["wall_tokens_per_s"], "tokens/s")
    best_single = max(result["1"]["wall_tokens_per_s"], result["1x1"]["wall_tokens_per_s"])
    section.add(f"ddp {name}: 2 processes / best 1", result["2"]["wall_tokens_per_s"] / best_single, "x")


def run(ctx: Context, paths: list[Path] | None = None, seconds: float | None = None) -> Section:
    seconds = seconds or (10 if ctx.quick else 30)
    section = Section(details={"seconds": seconds, "cores": cores(), "corpora": {}})
    for path in paths or corpora():
        path = Path(path).resolve()  # the runs start in ctx.tmp
        result = compare(ctx, path, seconds)
        section.details["corpora"][str(path)] = result
        add_figures(section, path.stem, result)
    return section


def main(argv=None) -> int:
    from .common import format_table

    p = argparse.ArgumentParser(prog="python -m benchmarks.distributed", description=__doc__.split("\n\n")[0])
    p.add_argument("corpus", nargs="*", type=Path,
                   help="corpora (default: the sample corpus, and 全宋词 if present)")
    p.add_argument("--seconds", type=float, default=30, help="training budget per run (default: %(default)s)")
    args = p.parse_args(argv)
    print(f"load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="lyricgen-bench-") as tmp:
        ctx = Context(corpus=SAMPLE, tmp=Path(tmp), quick=False)
        section = run(ctx, args.corpus or None, args.seconds)
    print(f"load average at end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}", file=sys.stderr)
    print(format_table(section.figures))
    for path, result in section.details["corpora"].items():
        for n, r in result.items():
            print(f"{path} run {n}: {r['steps']} steps in {r['elapsed_s']} s, {r['threads_each']} thread(s) each, "
                  f"command {r['command_wall_s']:.0f} s wall, {r['command_cpu_s']:.0f} s CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
