"""Big corpora: tokenising and training at x1, x20 and x100 the corpus and on 全宋词, each measurement
in a fresh process (its own peak RSS); tokenising with 1 process and with 2; the token cache's miss
and hit; the vocabulary's counts at x20 and x160 (exact, about linear in time); one 2 MB line.

The scaling table's training figures come from a short run (open_run + a fixed number of steps):
setup time (tokenise, vocabulary, side models), peak RSS of the whole process, vocabulary size and
training tokens/s. Memory should grow far slower than the corpus: tokens are int32 and the model and
optimizer dominate.

    python -m benchmarks.tokenizing child tokenize CORPUS SCALE WORKERS   # one measurement, as JSON
    python -m benchmarks.tokenizing child train CORPUS OUT STEPS          # one short training run
    python -m benchmarks.tokenizing child cache CORPUS
"""
import json
import random
import sys
import time

from .common import ROOT, Context, Section, child_cmd, proc_status_mb, reset_peak_rss, run_json, write_lines

SONGCI_FILES = ROOT.parent / "shared" / "data" / "songci"


def child_tokenize(corpus: str, scale: int, workers: int) -> dict:
    """tokenize() (no cache) and the vocabulary, after jieba's dictionary load; peak RSS of this step."""
    from lyricgen.config import TokenizerConfig
    from lyricgen.text.corpus import read_corpus
    from lyricgen.text.tokenizer import segment, tokenize
    from lyricgen.text.vocab import Vocab

    lines = read_corpus(corpus) * scale
    t0 = time.perf_counter()
    segment("你好")  # jieba's dictionary load, once per process, kept out of the timing
    init_s = time.perf_counter() - t0
    rss_before = proc_status_mb("self", "VmRSS")
    peak_reset = reset_peak_rss()
    t0 = time.perf_counter()
    stream = tokenize(lines, workers=workers)
    t1 = time.perf_counter()
    vocab = Vocab.build_stream(stream, TokenizerConfig().min_freq)
    t2 = time.perf_counter()
    return {"scale": scale, "workers": workers, "lines": len(lines), "chars": stream.chars,
            "tokens": int(stream.ids.size), "vocab": len(vocab), "jieba_init_s": init_s, "tokenize_s": t1 - t0,
            "vocab_s": t2 - t1, "rss_before_mb": rss_before, "rss_peak_mb": proc_status_mb("self", "VmHWM"),
            "peak_is_of_this_step": peak_reset}


def child_train(corpus: str, out: str, steps: int) -> dict:
    """open_run (tokenise with the default workers, vocabulary, side models) and `steps` steps."""
    from lyricgen.config import RunConfig
    from lyricgen.training.run import open_run

    t0 = time.perf_counter()
    trainer = open_run(RunConfig(corpus=corpus, out=out, force=True, device="cpu"), {"max_steps": steps})
    setup_s = time.perf_counter() - t0
    rss_setup = proc_status_mb("self", "VmHWM")
    step_times = []

    def on_step(info):
        step_times.append(time.perf_counter())

    trainer.run(on_step=on_step)
    cfg = trainer.config
    tokens_per_step = cfg.batch_size * cfg.seq_len
    # the first few steps warm the allocator and the kernels: time the rest
    warm = min(5, len(step_times) - 2)
    timed = step_times[-1] - step_times[warm]
    return {"setup_s": setup_s, "rss_after_setup_mb": rss_setup, "rss_peak_mb": proc_status_mb("self", "VmHWM"),
            "vocab": len(trainer.data.vocab), "train_tokens": int(trainer.data.train.stream.numel()),
            "steps": len(step_times), "tokens_per_s": tokens_per_step * (len(step_times) - 1 - warm) / timed}


def child_cache(corpus: str) -> dict:
    """In a fresh process with an empty cache: tokenize_cached's miss, then its hit."""
    import numpy as np

    from lyricgen.text.corpus import read_corpus
    from lyricgen.text.tokenizer import segment, tokenize_cached

    lines = read_corpus(corpus)
    segment("你好")
    t0 = time.perf_counter()
    miss = tokenize_cached(lines)
    t1 = time.perf_counter()
    hit = tokenize_cached(lines)
    return {"miss_s": t1 - t0, "hit_s": time.perf_counter() - t1,
            "same_tokens": miss.table == hit.table and bool(np.array_equal(miss.ids, hit.ids))}


def vocab_scaling(corpus) -> dict:
    """The vocabulary of the tokenised corpus x20 and x160: ids identical, counts x8, time ~ x8."""
    import numpy as np

    from lyricgen.text.corpus import read_corpus
    from lyricgen.text.tokenizer import TokenStream, tokenize
    from lyricgen.text.vocab import Vocab

    one = tokenize(read_corpus(corpus))
    base, big = TokenStream(one.table, np.tile(one.ids, 20)), TokenStream(one.table, np.tile(one.ids, 160))

    def best(stream):
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            vocab = Vocab.build_stream(stream, min_freq=3)
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


def songci_corpus(ctx: Context):
    """全宋词 as lyricgen writes it (`lyricgen download songci`), from the shared files; None without them."""
    from lyricgen.text.download import CORPORA

    corpus = CORPORA["songci"]
    if not all((SONGCI_FILES / name).is_file() for name, _ in corpus.files):
        return None
    path = ctx.tmp / "songci.txt"
    path.write_bytes(corpus.assemble([(SONGCI_FILES / name).read_bytes() for name, _ in corpus.files]))
    return path


def run(ctx: Context) -> Section:
    from lyricgen.text.corpus import read_corpus

    steps = 40 if ctx.quick else 100
    lines = read_corpus(ctx.corpus)
    corpora = {f"x{n}": write_lines(lines * n, ctx.tmp / f"corpus-x{n}.txt") if n > 1 else ctx.corpus
               for n in ((1, 5) if ctx.quick else (1, 20, 100))}
    songci = songci_corpus(ctx)
    if songci is not None:
        corpora["全宋词"] = songci
    table = {}
    for name, path in corpora.items():
        row = {f"tokenize_{w}": run_json(child_cmd("tokenizing", "child", "tokenize", path, 1, w), ctx) for w in (1, 2)}
        row["train"] = run_json(child_cmd("tokenizing", "child", "train", path, ctx.tmp / f"run-{len(table)}", steps), ctx)
        table[name] = row
    cache = run_json(child_cmd("tokenizing", "child", "cache", ctx.corpus), ctx)
    vocab = vocab_scaling(ctx.corpus)
    long_line = one_long_line()
    section = Section(details={"scaling": table, "cache": cache, "vocab": vocab, "long_line": long_line,
                               "train_steps": steps})
    for name, row in table.items():
        one, two, train = row["tokenize_1"], row["tokenize_2"], row["train"]
        section.add(f"{name} ({one['chars']:,} chars, {one['tokens']:,} tokens): tokenise, 1 process",
                    one["tokenize_s"], "s")
        section.add(f"{name}: tokenise, 2 processes", two["tokenize_s"], "s")
        section.add(f"{name}: tokenise peak RSS, 1 process", one["rss_peak_mb"], "MiB")
        section.add(f"{name}: tokenise peak RSS, 2 processes (the parent's)", two["rss_peak_mb"], "MiB")
        section.add(f"{name}: training setup (tokenise, vocabulary {train['vocab']:,}, side models)",
                    train["setup_s"], "s")
        section.add(f"{name}: training peak RSS ({train['steps']} steps)", train["rss_peak_mb"], "MiB")
        section.add(f"{name}: training tokens/s, 1 process", train["tokens_per_s"], "tokens/s")
    first = table["x1"]
    for name, row in list(table.items())[1:]:  # memory should grow far slower than the corpus
        ratio = row["tokenize_1"]["chars"] / first["tokenize_1"]["chars"]
        section.add(f"training peak RSS {name} / x1 (corpus x{ratio:.0f})",
                    row["train"]["rss_peak_mb"] / first["train"]["rss_peak_mb"], "x")
    section.add("token cache x1: miss", cache["miss_s"], "s")
    section.add("token cache x1: hit", cache["hit_s"], "s")
    section.add("vocabulary linearity (t x160 / t x20 / 8)", vocab["linearity"], "", "<= 2.5")
    section.add("one 2 MB line: tokenize", long_line["seconds"], "s", "<= 120")
    return section


if __name__ == "__main__":  # child mode: one measurement in this fresh process
    _, kind, corpus, *rest = sys.argv[1:]
    if kind == "tokenize":
        result = child_tokenize(corpus, int(rest[0]), int(rest[1]))
    elif kind == "train":
        result = child_train(corpus, rest[0], int(rest[1]))
    else:
        result = child_cache(corpus)
    print(json.dumps(result))
