"""Generation speed with a trained checkpoint: greedy ms/token at batch 1 (200 tokens, best of 3,
with torch's default threads and with one), 64 sampled candidates x 100 tokens in one batch, and
the wall time of a whole `lyricgen generate` process against `python -c "import torch"` (median of
5 interleaved runs; the process must cost at most 1.5x the import)."""
import time

from .common import Context, Section, against_import_torch, lyricgen_cmd

STARTUP_TARGET = "<= 1.5"
BATCH_TARGET = "<= 1"


def greedy_ms_per_token(writer, start: str, repeats: int = 3) -> float:
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        c = writer.generate(start, max_tokens=200)[0]
        runs.append((time.perf_counter() - t0) / c.tokens * 1000)
    return min(runs)  # other processes on the cores only ever add time


def in_process(checkpoint) -> dict:
    import torch

    from lyricgen.writing.lyricist import Lyricist

    writer = Lyricist.load(checkpoint)
    start = writer.vocab.most_frequent(1)[0]
    writer.generate(start, max_tokens=10)  # warm-up
    threads = torch.get_num_threads()
    greedy = greedy_ms_per_token(writer, start)
    torch.set_num_threads(1)  # what `lyricgen generate` uses on the CPU
    try:
        greedy_1 = greedy_ms_per_token(writer, start)
        t0 = time.perf_counter()
        batch = writer.generate(start, max_tokens=100, num_samples=64, temperature=0.8, top_k=40, seed=0)
        batch_s = time.perf_counter() - t0
    finally:
        torch.set_num_threads(threads)
    return {"start": start, "threads": threads, "greedy_ms_per_token": greedy, "greedy_1_thread_ms_per_token": greedy_1,
            "batch64_s": batch_s, "batch64_tokens": sum(c.tokens for c in batch)}


def startup(ctx: Context, checkpoint, start: str, repeats: int) -> dict:
    generate = lyricgen_cmd("generate", "--checkpoint", checkpoint, start, "--max-tokens", 100)
    return against_import_torch(ctx, generate, repeats)


def run(ctx: Context) -> Section:
    if ctx.checkpoint is None:
        raise RuntimeError("no checkpoint: run the quality section too, or pass --checkpoint")
    g = in_process(ctx.checkpoint)
    s = startup(ctx, ctx.checkpoint, g["start"], 3 if ctx.quick else 5)
    section = Section(details={**g, "startup": s, "checkpoint": str(ctx.checkpoint)})
    section.add(f"generate greedy batch 1 ({g['threads']} threads)", g["greedy_ms_per_token"], "ms/token")
    section.add("generate greedy batch 1 (1 thread)", g["greedy_1_thread_ms_per_token"], "ms/token")
    section.add("generate 64 x 100 tokens, sampled top-k 40", g["batch64_s"], "s", BATCH_TARGET)
    section.add("lyricgen generate: whole process", s["generate_s"], "s")
    section.add("python -c 'import torch'", s["import_torch_s"], "s")
    section.add("generate process / import torch", s["ratio"], "x", STARTUP_TARGET)
    return section
