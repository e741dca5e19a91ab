"""Tokenising and building the vocabulary: time and memory at x1 and xN the corpus, each in a fresh
process (after jieba's dictionary load and a short warm-up, best of 3; peak RSS of that step and the
tracemalloc peak of a separate, traced pass); the token cache's miss and hit; Vocab.build alone at
x20 and x160 (its counts must scale exactly, its time about linearly); one 2 MB line without breaks.

    python -m benchmarks.tokenizing child tokenize CORPUS SCALE    # one measurement, printed as JSON
"""
import json
import random
import sys
import time
import tracemalloc

from .common import Context, Section, child_cmd, proc_status_mb, reset_peak_rss, run_json


def tokenize_and_build(lines: list[str], min_freq: int) -> tuple[int, int, float, float]:
    """(tokens, vocabulary size, tokenize seconds, Vocab.build seconds) with the cache off."""
    from lyricgen.text.tokenizer import tokenize_lines
    from lyricgen.text.vocab import Vocab

    t0 = time.perf_counter()
    tokens = tokenize_lines(lines)
    t1 = time.perf_counter()
    vocab = Vocab.build(tokens, min_freq=min_freq)
    return sum(map(len, tokens)), len(vocab), t1 - t0, time.perf_counter() - t1


def child_tokenize(corpus: str, scale: int, repeats: int = 3) -> dict:
    from lyricgen.config import TokenizerConfig
    from lyricgen.text.corpus import read_corpus
    from lyricgen.text.tokenizer import segment

    min_freq = TokenizerConfig().min_freq
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
            "tokenize_s": tok_s, "vocab_s": vocab_s, "seconds": tok_s + vocab_s,
            "all_seconds": [r[2] + r[3] for r in runs], "rss_before_mb": rss_before, "rss_peak_mb": rss_peak,
            "peak_is_of_this_step": peak_reset, "tracemalloc_peak_mb": traced_peak}


def child_cache(corpus: str) -> dict:
    """In a fresh process with an empty cache: tokenize_lines_cached's miss, then its hit."""
    from lyricgen.text.corpus import read_corpus
    from lyricgen.text.tokenizer import segment, tokenize_lines_cached

    lines = read_corpus(corpus)
    segment("你好")
    t0 = time.perf_counter()
    miss = tokenize_lines_cached(lines)
    t1 = time.perf_counter()
    hit = tokenize_lines_cached(lines)
    return {"miss_s": t1 - t0, "hit_s": time.perf_counter() - t1, "same_tokens": miss == hit}


def vocab_scaling(corpus) -> dict:
    """Vocab.build on the tokenised corpus x20 and x160: ids identical, counts x8, time ~ x8."""
    from lyricgen.text.corpus import read_corpus
    from lyricgen.text.tokenizer import tokenize_lines
    from lyricgen.text.vocab import Vocab

    base = tokenize_lines(read_corpus(corpus)) * 20
    big = base * 8

    def best(lines):
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            vocab = Vocab.build(lines, min_freq=3)
            times.append(time.perf_counter() - t0)
        return vocab, min(times)

    (small_vocab, small_s), (big_vocab, big_s) = best(base), best(big)
    exact = big_vocab.tokens == small_vocab.tokens and big_vocab.counts == [8 * n for n in small_vocab.counts]
    return {"x20_s": small_s, "x160_s": big_s, "linearity": big_s / small_s / 8, "counts_scale_exactly": exact}


def one_long_line(chars: int = 2 * 1024 * 1024 // 3) -> dict:
    """A 2 MB file with no line break: segmented in slices, in bounded time."""
    from lyricgen.text.tokenizer import normalize_line, tokenize_line

    rng = random.Random(2)
    line = "".join(rng.choice("的一是不了人我在有他这中大来上个到说们为子和你地出道也时年") for _ in range(chars))
    t0 = time.perf_counter()
    tokens = tokenize_line(line)
    return {"chars": chars, "seconds": time.perf_counter() - t0, "tokens": len(tokens),
            "round_trip": "".join(tokens) == normalize_line(line)}


def run(ctx: Context) -> Section:
    scale = 5 if ctx.quick else 20
    small = run_json(child_cmd("tokenizing", "child", "tokenize", ctx.corpus, 1), ctx)
    large = run_json(child_cmd("tokenizing", "child", "tokenize", ctx.corpus, scale), ctx)
    cache = run_json(child_cmd("tokenizing", "child", "cache", ctx.corpus), ctx)
    vocab = vocab_scaling(ctx.corpus)
    long_line = one_long_line()
    section = Section(details={"x1": small, f"x{scale}": large, "cache": cache, "vocab": vocab, "long_line": long_line})
    for key, r in (("x1", small), (f"x{scale}", large)):
        section.add(f"tokenize+vocab {key}: time", r["seconds"], "s")
        section.add(f"tokenize+vocab {key}: tokens", r["tokens"], "tokens")
        section.add(f"tokenize+vocab {key}: peak RSS", r["rss_peak_mb"], "MiB")
        section.add(f"tokenize+vocab {key}: RSS increase", r["rss_peak_mb"] - r["rss_before_mb"], "MiB")
        section.add(f"tokenize+vocab {key}: tracemalloc peak", r["tracemalloc_peak_mb"], "MiB")
    section.add(f"tokenize linearity (t x{scale} / t x1 / {scale})", large["seconds"] / small["seconds"] / scale)
    section.add("token cache x1: miss", cache["miss_s"], "s")
    section.add("token cache x1: hit", cache["hit_s"], "s")
    section.add("Vocab.build linearity (t x160 / t x20 / 8)", vocab["linearity"], "", "<= 2.5")
    section.add("one 2 MB line: tokenize", long_line["seconds"], "s", "<= 120")
    return section


if __name__ == "__main__":  # child mode: one measurement in this fresh process
    _, kind, corpus, *rest = sys.argv[1:]
    result = child_tokenize(corpus, int(rest[0])) if kind == "tokenize" else child_cache(corpus)
    print(json.dumps(result))
