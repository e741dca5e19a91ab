"""Benchmark lyricgen on this machine: held-out quality, speed and memory, in one run.

    python scripts/bench.py                  # full run, about 15 minutes on a 2-core CPU
    python scripts/bench.py --quick          # about 3 minutes: shorter budgets, fewer repeats
    python scripts/bench.py --corpus PATH --json PATH --sections quality,generate

It prints a table (figure, value, unit, target) and writes the same figures, with the details behind
them, as JSON (default bench-results/bench.json, git-ignored). Every figure is measured in this run.
Everything but the matmul peak needs the Jay Chou corpus (`lyricgen download jaychou`); without it
those sections are skipped and the script exits 0. Another process using the cores slows every
figure; the load average at start and end is recorded in the JSON for that reason.

Sections and what their figures mean:
  quality     `lyricgen train --time-budget S` in a subprocess (60 s and 300 s; quick: 20 s, 40 s),
              then `lyricgen evaluate --json` of best.pt on the held-out last 10% of the lines:
              bpc-open (bits per character, lower is better) and token perplexity; also the
              train command's wall time, the epochs it completed (metrics.csv, fractional), its
              training tokens/s (metrics.csv) and CPU use (CPU s / wall s; 2 = both cores).
  throughput  optimizer steps in-process on real corpus batches for ~10 s (quick 3 s) after 3
              warm-up steps: target tokens per second of wall time; achieved GFLOP/s from
              6 x (recurrent + output-layer MACs) per token (a recurrent layer has gates x (in x H +
              H x H) MACs, gates 1/3/4 for rnn/gru/lstm); its share of the fp32 matmul peak (2048^2
              torch.mm, best of 5, measured at the start and around each timing; the best is used).
              For the default model and the tutorial-size one (1-layer tanh RNN, 128/128, untied,
              no dropout); the latter is compared to a 20k tokens/s target.
  tokenize    tokenize_lines + Vocab.build (no token cache) in a fresh subprocess per size, corpus
              x1 and x20 (quick x5): seconds (best of 3, after jieba's dictionary load and a short
              warm-up), tokens (words, line breaks not counted), peak RSS of that step (VmHWM, reset
              before it) and its increase over the RSS before, the tracemalloc peak (a separate,
              traced pass), and linearity = (time x20 / time x1) / 20 (1 means linear). Also the
              token cache: tokenize_lines_cached twice in a fresh LYRICGEN_CACHE (miss, then hit).
  generate    with the first quality run's best.pt: greedy ms/token at batch 1 (200 tokens, load
              excluded, best of 3; again with torch limited to 1 thread), 64 sampled candidates x
              100 tokens in one batch (seconds), and the wall time of a whole `lyricgen generate`
              process next to `python -c "import torch"` (median of 5, quick 3) with their ratio
              (target <= 1.5).
  memory      `lyricgen train` on the corpus x20 (quick x5) for 90 s (quick 25 s) while sampling
              the process's VmRSS every second: RSS when training starts, the max in the first
              epoch (or the first 10 s when an epoch takes longer), the max after that (which
              includes the validation at the end), and growth = the difference (~0 when memory is
              bounded). Also its tokens/s from metrics.csv and its CPU use while training.

Subprocesses get a private LYRICGEN_CACHE in a temporary directory; no corpus text is written
outside that directory.
"""
import argparse
import csv
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared/data/jaychou_lyrics.txt"
DEFAULT_JSON = ROOT / "bench-results" / "bench.json"
SECTIONS = ("quality", "throughput", "tokenize", "generate", "memory")
TUTORIAL_TARGET = 20_000  # tokens/s for the tutorial-size model
STARTUP_TARGET = 1.5  # generate process time / `import torch` process time
GATES = {"rnn": 1, "gru": 3, "lstm": 4}


@dataclass
class Plan:
    budgets: tuple = (60, 300)  # seconds of training for the quality runs
    throughput_s: float = 10.0  # timed seconds per throughput configuration
    scale: int = 20  # corpus repeats for the tokenization and memory sections
    repeats: int = 5  # process start-up runs
    memory_budget: float = 90.0  # seconds of training while RSS is sampled


QUICK = Plan(budgets=(20, 40), throughput_s=3.0, scale=5, repeats=3, memory_budget=25.0)


# -- helpers ------------------------------------------------------------------------------------------
def lyricgen_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "lyricgen", *map(str, args)]


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_checked(cmd: list[str], env: dict, cwd) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run a command to completion; returns (result, wall s, CPU s) or raises with its stderr tail.

    CPU s / wall s near the core count means the command had the machine; far below, it waited.
    """
    cpu0, t0 = children_cpu_s(), time.perf_counter()
    result = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, children_cpu_s() - cpu0
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[1:4])} ... exited {result.returncode}: {result.stderr.strip()[-800:]}")
    return result, wall, cpu


def cache_env(cache: Path) -> dict:
    return {**os.environ, "LYRICGEN_CACHE": str(cache)}


@contextmanager
def private_cache(cache: Path):
    """LYRICGEN_CACHE for in-process library calls, restored afterwards."""
    old = os.environ.get("LYRICGEN_CACHE")
    os.environ["LYRICGEN_CACHE"] = str(cache)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("LYRICGEN_CACHE", None)
        else:
            os.environ["LYRICGEN_CACHE"] = old


def write_lines(lines: list[str], path: Path) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def read_metrics(out_dir: Path) -> list[dict]:
    with open(out_dir / "metrics.csv", encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def proc_status_mb(pid, field: str = "VmRSS") -> float | None:
    """A memory line of /proc/PID/status (VmRSS: resident now, VmHWM: its peak) in MiB."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def proc_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a running process (fields 14 and 15 of /proc/PID/stat)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reset_peak_rss() -> bool:
    """Set this process's VmHWM back to its current RSS (Linux >= 4.0), so a later VmHWM is the
    peak of what ran in between. ru_maxrss cannot do this, and after exec it even keeps the parent's
    peak, as subprocess starts children with vfork."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


# -- 1. held-out quality ------------------------------------------------------------------------------
def train_cli(corpus: Path, out: Path, budget: float, env: dict, cwd) -> tuple[float, float]:
    """`lyricgen train` with defaults and a time budget; returns its wall and CPU seconds."""
    cmd = lyricgen_cmd("train", "--corpus", corpus, "--out", out, "--quiet", "--force", "--time-budget", budget)
    return run_checked(cmd, env, cwd)[1:]


def evaluate_cli(checkpoint: Path, text: Path, env: dict, cwd) -> dict:
    result = run_checked(lyricgen_cmd("evaluate", "--checkpoint", checkpoint, text, "--json"), env, cwd)[0]
    return json.loads(result.stdout.strip().splitlines()[-1])


def quality(corpus: Path, val_file: Path, out: Path, budget: float, env: dict) -> dict:
    wall, cpu = train_cli(corpus, out, budget, env, out.parent)
    scored = evaluate_cli(out / "best.pt", val_file, env, out.parent)
    rows = read_metrics(out)
    best_logged = min(float(r["val_bpc_open"]) for r in rows if r["val_bpc_open"])
    return {"budget_s": budget, "train_wall_s": wall, "train_cpu_s": cpu,
            "train_elapsed_s": float(rows[-1]["elapsed_s"]), "epochs": float(rows[-1]["epoch"]),
            "steps": int(rows[-1]["step"]), "tokens_per_s": float(rows[-1]["tokens_per_s"]),
            "bpc_open": scored["bpc_open"], "ppl": scored["ppl"],
            # the network alone, without the repeat model (lyricgen/repeat.py) mixed into scoring
            "bpc_open_rnn": scored["bpc_open_rnn"], "ppl_rnn": scored["ppl_rnn"],
            "val_tokens": scored["tokens"], "val_chars": scored["chars"],
            # evaluate and the trainer's validation score the same lines: these should agree
            "best_val_bpc_open_in_metrics": best_logged,
            "agrees_with_metrics": abs(best_logged - scored["bpc_open"]) < 1e-3,
            "checkpoint": str(out / "best.pt")}


# -- 2. training throughput ---------------------------------------------------------------------------
def batch_stream(windows, batch_size: int, seed: int):
    """Training batches in the Trainer's order, epoch after epoch."""
    from lyricgen.data import epoch_order, num_batches

    epoch = 0
    while True:
        order = epoch_order(len(windows), seed, epoch)
        for b in range(num_batches(len(windows), batch_size)):
            yield windows.get_batch(order[b * batch_size:(b + 1) * batch_size])
        epoch += 1


def macs_per_token(model) -> int:
    """Forward multiply-accumulates per token: recurrent layers, optional projection, output layer."""
    c = model.config
    recurrent = sum(GATES[c.cell] * ((c.embed_dim if layer == 0 else c.hidden_size) * c.hidden_size
                                     + c.hidden_size * c.hidden_size) for layer in range(c.num_layers))
    proj = model.proj.in_features * model.proj.out_features if model.proj is not None else 0
    return recurrent + proj + model.decoder.in_features * model.decoder.out_features


def time_training(model, config, stream, seconds: float, warmup: int = 3) -> dict:
    """Optimizer steps for about `seconds` after `warmup` untimed ones; tokens are target tokens."""
    from lyricgen.train import make_optimizer, train_step

    optimizer, _ = make_optimizer(model, config)
    for _ in range(warmup):
        train_step(model, optimizer, *next(stream), config.clip)
    steps = tokens = 0
    t0 = time.perf_counter()
    while True:
        _, n = train_step(model, optimizer, *next(stream), config.clip, step=steps + 1)
        steps, tokens = steps + 1, tokens + n
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds and steps >= 5:
            break
    return {"steps": steps, "tokens": tokens, "seconds": elapsed, "tokens_per_s": tokens / elapsed}


def matmul_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)  # warm-up: thread pool and allocator
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9


def throughput(data, model_config, train_config, seconds: float, peak_gflops: float) -> dict:
    import torch

    from lyricgen.model import LyricsRNN, count_parameters

    torch.manual_seed(train_config.seed)
    model = LyricsRNN(model_config)
    stream = batch_stream(data.train, train_config.batch_size, train_config.seed)
    # The peak is measured again right before and after: another process on the cores moves both.
    peaks = [peak_gflops, matmul_peak_gflops()]
    timing = time_training(model, train_config, stream, seconds)
    peaks.append(matmul_peak_gflops())
    flops = 6 * macs_per_token(model)  # forward 2 flops per MAC, backward twice the forward
    gflops = timing["tokens_per_s"] * flops / 1e9
    return {**timing, "model": model_config.to_dict(), "parameters": count_parameters(model),
            "batch_size": train_config.batch_size, "seq_len": train_config.seq_len,
            "train_flops_per_token": flops, "gflops": gflops, "peak_gflops": max(peaks),
            "peak_share": gflops / max(peaks)}


def throughput_section(corpus: Path, seconds: float, peak_gflops: float) -> dict:
    from lyricgen.data import prepare, read_corpus
    from lyricgen.model import ModelConfig
    from lyricgen.train import TokenizerConfig, TrainConfig

    config = TrainConfig()
    data = prepare(read_corpus(corpus), config.val_fraction, TokenizerConfig().min_freq, config.seq_len)
    default = ModelConfig(vocab_size=len(data.vocab))
    tutorial = ModelConfig(vocab_size=len(data.vocab), cell="rnn", embed_dim=128, hidden_size=128, num_layers=1,
                           tie_weights=False, dropout=0.0, embed_dropout=0.0)
    # the tutorial-size model trains at batch 32 x 64 tokens (the tutorial's batch of 32; at our default
    # 16 x 32 this small model is bound by per-step overhead, not arithmetic)
    tutorial_batches = TrainConfig(batch_size=32, seq_len=64)
    tutorial_data = prepare(read_corpus(corpus), config.val_fraction, TokenizerConfig().min_freq, tutorial_batches.seq_len)
    result = {"default": throughput(data, default, config, seconds, peak_gflops),
              "tutorial": throughput(tutorial_data, tutorial, tutorial_batches, seconds, peak_gflops)}
    result["peak_gflops"] = max(result[k]["peak_gflops"] for k in ("default", "tutorial"))
    for key in ("default", "tutorial"):  # one peak for both: the best this run has seen
        result[key]["peak_share"] = result[key]["gflops"] / result["peak_gflops"]
    result["tutorial_vs_target"] = result["tutorial"]["tokens_per_s"] / TUTORIAL_TARGET
    return result


# -- 3. tokenization and vocabulary -------------------------------------------------------------------
def tokenize_and_build(lines: list[str], min_freq: int) -> tuple[int, int, float, float]:
    """(tokens, vocabulary size, tokenize seconds, Vocab.build seconds) with the cache off."""
    from lyricgen.tokenizer import tokenize_lines
    from lyricgen.vocab import Vocab

    t0 = time.perf_counter()
    tokens = tokenize_lines(lines)
    t1 = time.perf_counter()
    vocab = Vocab.build(tokens, min_freq=min_freq)
    return sum(map(len, tokens)), len(vocab), t1 - t0, time.perf_counter() - t1


def child_tokenize(corpus: Path, scale: int, min_freq: int, repeats: int = 3) -> dict:
    """Runs in a fresh process: time (best of `repeats`) and memory of tokenize_lines + Vocab.build
    on the corpus repeated `scale` times."""
    from lyricgen.data import read_corpus
    from lyricgen.tokenizer import segment

    lines = read_corpus(corpus) * scale
    t0 = time.perf_counter()
    segment("你好")  # jieba's dictionary load, once per process, kept out of the timing
    init_s = time.perf_counter() - t0
    tokenize_and_build(lines[:200], min_freq)  # warm-up: jieba's lazily built tables, the allocator
    rss_before = proc_status_mb("self", "VmRSS")
    peak_reset = reset_peak_rss()
    runs = [tokenize_and_build(lines, min_freq) for _ in range(repeats)]
    rss_peak = proc_status_mb("self", "VmHWM")
    tokens, vocab, tok_s, vocab_s = min(runs, key=lambda r: r[2] + r[3])
    tracemalloc.start()  # a separate pass: tracing slows Python allocations, so it is not timed
    tokenize_and_build(lines, min_freq)
    traced_peak = tracemalloc.get_traced_memory()[1] / 2 ** 20
    tracemalloc.stop()
    return {"scale": scale, "lines": len(lines), "tokens": tokens, "vocab": vocab, "jieba_init_s": init_s,
            "tokenize_s": tok_s, "vocab_s": vocab_s, "seconds": tok_s + vocab_s, "repeats": repeats,
            "all_seconds": [r[2] + r[3] for r in runs], "rss_before_mb": rss_before, "rss_peak_mb": rss_peak,
            "peak_is_of_this_step": peak_reset, "ru_maxrss_mb": maxrss_mb(), "tracemalloc_peak_mb": traced_peak}


def child_cache(corpus: Path) -> dict:
    """Runs in a fresh process with an empty LYRICGEN_CACHE: the token cache's miss, then its hit."""
    from lyricgen.data import read_corpus
    from lyricgen.tokenizer import segment, tokenize_lines_cached

    lines = read_corpus(corpus)
    segment("你好")
    t0 = time.perf_counter()
    miss = tokenize_lines_cached(lines)
    t1 = time.perf_counter()
    hit = tokenize_lines_cached(lines)
    t2 = time.perf_counter()
    return {"miss_s": t1 - t0, "hit_s": t2 - t1, "same_tokens": miss == hit}


def run_child(kind: str, corpus: Path, scale: int, env: dict, cwd) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", kind, "--corpus", str(corpus),
           "--scale", str(scale)]
    result = run_checked(cmd, env, cwd)[0]
    return json.loads(result.stdout.strip().splitlines()[-1])


def tokenize_section(corpus: Path, scale: int, tmp: Path) -> dict:
    env = cache_env(tmp / "cache")
    small = run_child("tokenize", corpus, 1, env, tmp)
    large = run_child("tokenize", corpus, scale, env, tmp)
    cached = run_child("cache", corpus, 1, cache_env(tmp / "fresh-cache"), tmp)
    return {"x1": small, f"x{scale}": large, "scale": scale,
            "linearity": large["seconds"] / small["seconds"] / scale, "cache": cached}


# -- 4. generation ------------------------------------------------------------------------------------
def greedy_ms_per_token(writer, start: str, repeats: int) -> list[float]:
    """Milliseconds per token of greedy 200-token generations at batch 1, one figure per run."""
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        c = writer.generate(start, max_tokens=200)[0]
        runs.append((time.perf_counter() - t0) / c.tokens * 1000)
    return runs


def generation(checkpoint: Path, repeats: int = 3) -> dict:
    import torch

    from lyricgen.predict import Lyricist

    writer = Lyricist.load(checkpoint)
    start = writer.vocab.most_frequent(1)[0]
    writer.generate(start, max_tokens=10)  # warm-up
    greedy = greedy_ms_per_token(writer, start, repeats)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same with one thread: batch-1 steps are too small to share out
    try:
        one_thread = greedy_ms_per_token(writer, start, repeats)
    finally:
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    batch = writer.generate(start, max_tokens=100, num_samples=64, temperature=0.8, top_k=40, seed=0)
    batch_s = time.perf_counter() - t0
    # best of the runs: other processes on the cores only ever add time
    return {"start": start, "greedy_ms_per_token": min(greedy), "greedy_runs": greedy,
            "greedy_1_thread_ms_per_token": min(one_thread), "greedy_1_thread_runs": one_thread,
            "batch64_s": batch_s, "batch64_candidates": len(batch), "batch64_tokens": sum(x.tokens for x in batch)}


def process_startup(checkpoint: Path, start: str, repeats: int, env: dict, cwd) -> dict:
    """Median wall time of a whole `lyricgen generate` process and of `python -c "import torch"`."""
    generate = lyricgen_cmd("generate", "--checkpoint", checkpoint, start, "--max-tokens", 100)
    bare = [sys.executable, "-c", "import torch"]
    times = {"generate": [], "import_torch": []}
    for _ in range(repeats):  # interleaved, so a burst of load hits both alike
        times["generate"].append(run_checked(generate, env, cwd)[1])
        times["import_torch"].append(run_checked(bare, env, cwd)[1])
    gen, torch_s = statistics.median(times["generate"]), statistics.median(times["import_torch"])
    return {"generate_s": gen, "import_torch_s": torch_s, "ratio": gen / torch_s, "runs": times}


# -- 5. memory over training --------------------------------------------------------------------------
def _collect_stderr(stream, events: list) -> None:
    for line in stream:
        events.append((time.monotonic(), line.rstrip("\n")))


def sample_training(cmd: list[str], env: dict, cwd) -> tuple[list, list, int]:
    """Run a training command, sampling it each second; returns ([(t, RSS MiB, CPU s)], [(t, stderr
    line)], exit status)."""
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    events: list = []
    reader = threading.Thread(target=_collect_stderr, args=(proc.stderr, events), daemon=True)
    reader.start()
    samples = []
    while True:
        rss, cpu = proc_status_mb(proc.pid), proc_cpu_s(proc.pid)
        if rss is not None and cpu is not None:
            samples.append((time.monotonic(), rss, cpu))
        try:
            proc.wait(timeout=1.0)
            break
        except subprocess.TimeoutExpired:
            pass
    reader.join()
    return samples, events, proc.returncode


def rss_summary(samples: list, begin: float, early_end: float) -> dict:
    """Peak RSS in the early window [begin, early_end) of training, after it, and overall."""
    early = [rss for t, rss, _ in samples if begin <= t < early_end]
    later = [rss for t, rss, _ in samples if t >= early_end]
    start = next((rss for t, rss, _ in samples if t >= begin), None)
    return {"rss_start_mb": start, "rss_early_max_mb": max(early, default=None),
            "rss_later_max_mb": max(later, default=None), "rss_max_mb": max(early + later, default=None),
            "growth_mb": max(later) - max(early) if early and later else None}


def cpu_share(samples: list, begin: float) -> float | None:
    """CPU seconds per wall second of the process while training (up to the core count)."""
    training = [(t, cpu) for t, _, cpu in samples if t >= begin]
    if len(training) < 2:
        return None
    return (training[-1][1] - training[0][1]) / (training[-1][0] - training[0][0])


def memory_section(corpus: Path, scale: int, budget: float, tmp: Path) -> dict:
    from lyricgen.data import read_corpus

    big = write_lines(read_corpus(corpus) * scale, tmp / f"corpus-x{scale}.txt")
    out = tmp / "run-memory"
    # Not --quiet: the CLI's stderr lines mark when training starts and when each epoch ends.
    cmd = lyricgen_cmd("train", "--corpus", big, "--out", out, "--force", "--time-budget", budget)
    launched = time.monotonic()
    samples, events, rc = sample_training(cmd, cache_env(tmp / "cache"), tmp)
    if rc != 0:
        raise RuntimeError(f"memory run exited {rc}: {' | '.join(line for _, line in events[-3:])}")
    begin = next((t for t, line in events if line.startswith("vocabulary ")), None)  # printed just before run()
    if begin is None:
        raise RuntimeError("the train command printed no 'vocabulary ...' line, so training start is unknown")
    # "epoch 1  step ..." ends a whole epoch; "epoch 0.42 ..." is the row written when the budget ran out
    epoch_ends = [t for t, line in events if line.startswith("epoch ") and float(line.split()[1]).is_integer()]
    early_end = epoch_ends[0] if epoch_ends else begin + 10
    rows = read_metrics(out)
    return {"scale": scale, "budget_s": budget, "samples": len(samples), "epochs": float(rows[-1]["epoch"]),
            "early_window": "first epoch" if epoch_ends else "first 10 s",
            **rss_summary(samples, begin, early_end),
            "rss_max_before_training_mb": max((r for t, r, _ in samples if t < begin), default=None),
            "cpu_share": cpu_share(samples, begin), "tokens_per_s": float(rows[-1]["tokens_per_s"]),
            "timeline_s": {"training_start": begin - launched, "epoch_lines": [t - launched for t, line in events
                           if line.startswith("epoch ")], "exit": samples[-1][0] - launched if samples else None},
            "rss_series_mb": [round(r, 1) for _, r, _ in samples]}


# -- the table ----------------------------------------------------------------------------------------
def table_rows(results: dict) -> list[dict]:
    rows = []
    for q in results.get("quality", []):
        b = f"quality {q['budget_s']:g}s"
        target = {60: "<= 8.5", 300: "<= 8.0"}.get(int(q["budget_s"]), "")
        rows += [_row(f"{b}: bpc-open (held-out)", q["bpc_open"], "bits/char", target),
                 _row(f"{b}: token perplexity", q["ppl"], ""),
                 _row(f"{b}: bpc-open, network alone", q["bpc_open_rnn"], "bits/char", target),
                 _row(f"{b}: token perplexity, network alone", q["ppl_rnn"], ""),
                 _row(f"{b}: train wall time", q["train_wall_s"], "s"),
                 _row(f"{b}: epochs", q["epochs"], "epochs"),
                 _row(f"{b}: throughput (metrics.csv)", q["tokens_per_s"], "tokens/s"),
                 _row(f"{b}: CPU use of the train process", q["train_cpu_s"] / q["train_wall_s"], "cores")]
    if "peak_gflops" in results:
        rows.append(_row("matmul peak fp32 2048^2", results["peak_gflops"], "GFLOP/s"))
    rows += _throughput_rows(results.get("throughput"))
    rows += _tokenize_rows(results.get("tokenize"))
    rows += _generate_rows(results.get("generate"))
    rows += _memory_rows(results.get("memory"))
    return [r for r in rows if r["value"] is not None]


def _row(name, value, unit, target=""):
    return {"figure": name, "value": value, "unit": unit, "target": target}


def _throughput_rows(tp: dict | None) -> list[dict]:
    if not tp:
        return []
    rows = []
    for key in ("default", "tutorial"):
        target = f">= {TUTORIAL_TARGET:,}" if key == "tutorial" else ""
        rows += [_row(f"train {key} model: throughput", tp[key]["tokens_per_s"], "tokens/s", target),
                 _row(f"train {key} model: achieved", tp[key]["gflops"], "GFLOP/s"),
                 _row(f"train {key} model: share of peak", 100 * tp[key]["peak_share"], "%")]
    return rows + [_row("train tutorial / 20k target", tp["tutorial_vs_target"], "x", ">= 1")]


def _tokenize_rows(tk: dict | None) -> list[dict]:
    if not tk:
        return []
    rows = []
    for key in ("x1", f"x{tk['scale']}"):
        r = tk[key]
        rows += [_row(f"tokenize+vocab {key}: time", r["seconds"], "s"),
                 _row(f"tokenize+vocab {key}: tokens", r["tokens"], "tokens"),
                 _row(f"tokenize+vocab {key}: peak RSS", r["rss_peak_mb"], "MiB"),
                 _row(f"tokenize+vocab {key}: RSS increase", r["rss_peak_mb"] - r["rss_before_mb"], "MiB"),
                 _row(f"tokenize+vocab {key}: tracemalloc peak", r["tracemalloc_peak_mb"], "MiB")]
    rows += [_row(f"tokenize linearity (t x{tk['scale']} / t x1 / {tk['scale']})", tk["linearity"], "", "~ 1"),
             _row("token cache x1: miss", tk["cache"]["miss_s"], "s"),
             _row("token cache x1: hit", tk["cache"]["hit_s"], "s")]
    return rows


def _generate_rows(g: dict | None) -> list[dict]:
    if not g:
        return []
    return [_row("generate greedy batch 1", g["greedy_ms_per_token"], "ms/token"),
            _row("generate greedy batch 1, 1 thread", g["greedy_1_thread_ms_per_token"], "ms/token"),
            _row("generate 64 x 100 tokens, sampled", g["batch64_s"], "s"),
            _row("generate: whole process", g["startup"]["generate_s"], "s"),
            _row("python -c 'import torch'", g["startup"]["import_torch_s"], "s"),
            _row("generate process / import torch", g["startup"]["ratio"], "x", f"<= {STARTUP_TARGET}")]


def _memory_rows(m: dict | None) -> list[dict]:
    if not m:
        return []
    name, window = f"train x{m['scale']} {m['budget_s']:g}s", m["early_window"]
    return [_row(f"{name}: RSS at training start", m["rss_start_mb"], "MiB"),
            _row(f"{name}: max RSS in {window}", m["rss_early_max_mb"], "MiB"),
            _row(f"{name}: max RSS after it (incl. validation)", m["rss_later_max_mb"], "MiB"),
            _row(f"{name}: RSS growth after {window}", m["growth_mb"], "MiB", "~ 0"),
            _row(f"{name}: epochs", m["epochs"], "epochs"),
            _row(f"{name}: throughput", m["tokens_per_s"], "tokens/s"),
            _row(f"{name}: CPU use while training", m["cpu_share"], "cores")]


def format_table(rows: list[dict]) -> str:
    def fmt(v):
        if isinstance(v, int):
            return f"{v:,}"
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"

    width = max(len(r["figure"]) for r in rows)
    lines = [f"{'figure':<{width}}  {'value':>10}  {'unit':<10}  target"]
    lines += [f"{r['figure']:<{width}}  {fmt(r['value']):>10}  {r['unit']:<10}  {r['target']}".rstrip() for r in rows]
    return "\n".join(lines)


# -- running it all -----------------------------------------------------------------------------------
def machine_info(plan: Plan, quick: bool, corpus: Path) -> dict:
    import torch

    return {"quick": quick, "plan": asdict(plan), "corpus": str(corpus), "python": platform.python_version(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
            "machine": platform.machine(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "loadavg_start": os.getloadavg()}


def header(info: dict) -> str:
    load = [" ".join(f"{x:.1f}" for x in info[k]) for k in ("loadavg_start", "loadavg_end")]
    return (f"lyricgen bench ({'quick' if info['quick'] else 'full'}): {info['cpus']} CPUs, torch {info['torch']} "
            f"with {info['torch_threads']} threads; load average {load[0]} at start, {load[1]} at end")


def run_section(name: str, results: dict, errors: dict, fn, *args) -> None:
    print(f"[bench] {name} ...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    try:
        results[name] = fn(*args)
    except Exception as e:  # one failed section must not lose the others' figures
        errors[name] = f"{type(e).__name__}: {e}"
        print(f"[bench] {name} failed: {errors[name]}", file=sys.stderr, flush=True)
    print(f"[bench] {name} done in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)


def quality_runs(corpus: Path, budgets, tmp: Path) -> list[dict]:
    from lyricgen.data import read_corpus, split_lines

    val_file = write_lines(split_lines(read_corpus(corpus), 0.1)[1], tmp / "val.txt")
    env = cache_env(tmp / "cache")
    return [quality(corpus, val_file, tmp / f"run{b:g}", b, env) for b in budgets]


def generate_section(checkpoint: Path, repeats: int, tmp: Path) -> dict:
    result = generation(checkpoint)
    result["startup"] = process_startup(checkpoint, result["start"], repeats, cache_env(tmp / "cache"), tmp)
    return result


def run_all(args, plan: Plan, tmp: Path) -> tuple[dict, dict]:
    results, errors = {}, {}
    sections = args.sections
    results["peak_gflops"] = matmul_peak_gflops()
    if "quality" in sections:
        run_section("quality", results, errors, quality_runs, args.corpus, plan.budgets, tmp)
    if "throughput" in sections:
        with private_cache(tmp / "cache"):
            run_section("throughput", results, errors, throughput_section, args.corpus, plan.throughput_s,
                        results["peak_gflops"])
        if "throughput" in results:
            results["peak_gflops"] = results["throughput"]["peak_gflops"]
    if "tokenize" in sections:
        run_section("tokenize", results, errors, tokenize_section, args.corpus, plan.scale, tmp)
    if "generate" in sections:
        checkpoint = args.checkpoint or (Path(results["quality"][0]["checkpoint"]) if results.get("quality") else None)
        if checkpoint is None:
            errors["generate"] = "no checkpoint: the quality section did not run or failed (or pass --checkpoint)"
        else:
            run_section("generate", results, errors, generate_section, checkpoint, plan.repeats, tmp)
    if "memory" in sections:
        run_section("memory", results, errors, memory_section, args.corpus, plan.scale, plan.memory_budget, tmp)
    return results, errors


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Benchmark lyricgen: quality, speed, memory (see the module docstring).")
    p.add_argument("--quick", action="store_true", help="about 3 minutes: shorter budgets, fewer repeats, x5 corpus")
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help=f"lyrics corpus (default: {DEFAULT_CORPUS})")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON,
                   help=f"where to write the figures (default: {DEFAULT_JSON})")
    p.add_argument("--sections", type=lambda s: [x.strip() for x in s.split(",") if x.strip()],
                   default=list(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)} (default: all)")
    p.add_argument("--checkpoint", type=Path, help="checkpoint for the generate section (default: the quality run's)")
    p.add_argument("--child", choices=["tokenize", "cache"], help=argparse.SUPPRESS)
    p.add_argument("--scale", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    unknown = [s for s in args.sections if s not in SECTIONS]
    if unknown:
        p.error(f"unknown section {unknown[0]!r}; choose from {', '.join(SECTIONS)}")
    return args


def child_main(args) -> int:
    from lyricgen.train import TokenizerConfig

    if args.child == "tokenize":
        result = child_tokenize(args.corpus, args.scale, TokenizerConfig().min_freq)
    else:
        result = child_cache(args.corpus)
    print(json.dumps(result))
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        return child_main(args)
    plan = QUICK if args.quick else Plan()
    info = machine_info(plan, args.quick, args.corpus)
    skipped = None
    if not args.corpus.is_file():
        skipped = (f"corpus not found at {args.corpus}: skipped {', '.join(args.sections)} "
                   "(get it with `lyricgen download jaychou`)")
        print(f"[bench] {skipped}", file=sys.stderr)
        args.sections = []
    with tempfile.TemporaryDirectory(prefix="lyricgen-bench-") as tmp:
        results, errors = run_all(args, plan, Path(tmp))
    info["loadavg_end"] = os.getloadavg()
    rows = table_rows(results)
    print(header(info))
    print(format_table(rows))
    report = {"info": info, "skipped": skipped, "errors": errors, "table": rows, "results": results}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"[bench] wrote {args.json}", file=sys.stderr)
    for name, message in errors.items():
        print(f"[bench] {name} FAILED: {message}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
