"""Held-out quality per CPU-minute: the protocol everyone measures by (README, "Held-out evaluation").

lyricgen trains on the first 90% of the corpus's lines (its own validation, early stopping and
best-checkpoint choice use the last 10% of that part) within a time budget; `lyricgen evaluate
--json` then scores the untouched last 10% of the corpus. The figure that matters for lyrics is the
one of the model generation samples from (the network mixed with its n-gram); the network alone and
scoring's repeat model (choruses) are reported beside it.

The baseline, in the same run and with the same accounting: a character 5-gram, interpolated
Kneser-Ney with one absolute discount of 0.75, fitted on the same 90%, characters seen once mapped
to `<unk>` (so it learns how often an unseen character comes); a held-out character it lacks is
`<unk>` and pays log2(20992) bits on top, as in scoring/score.py.
"""
import math
import time

from .common import Context, Section, lyricgen_cmd, protocol_files, read_metrics, run_checked, run_json

TUTORIAL = ["--cell", "rnn", "--embed-dim", "128", "--hidden-size", "128", "--num-layers", "1"]
TARGETS = {60: "<= 8.0", 300: "<= 7.8"}  # bits per character of the generating model (issue 9)
BASELINE_ORDER, BASELINE_DISCOUNT = 5, 0.75


def train_and_score(ctx: Context, name: str, budget: float, options: list[str]) -> dict:
    train, held_out = protocol_files(ctx)
    out = ctx.tmp / f"quality-{name}-{budget:g}"
    _, wall, cpu = run_checked(lyricgen_cmd("train", "--corpus", train, "--out", out, "--quiet", "--force",
                                            "--time-budget", budget, *options), ctx)
    scored = run_json(lyricgen_cmd("evaluate", "--checkpoint", out / "best.pt", held_out, "--json"), ctx)
    rows = read_metrics(out)
    return {"name": name, "budget_s": budget, "options": options, "train_wall_s": wall, "train_cpu_s": cpu,
            "epochs": float(rows[-1]["epoch"]), "steps": int(rows[-1]["step"]),
            "tokens_per_s": float(rows[-1]["tokens_per_s"]), "checkpoint": str(out / "best.pt"), **scored}


def char_stream(lines: list[str], index: dict) -> tuple[list[int], int]:
    """(ids: a line break first as context, then every character and line break; the number of
    characters mapped to <unk>, id 0)."""
    from lyricgen.text.tokenizer import normalize_line

    ids, unk = [1], 0
    for line in lines:
        for ch in normalize_line(line) + "\n":
            i = index.get(ch, 0)
            unk += i == 0
            ids.append(i)
    return ids, unk


def ngram_baseline(ctx: Context) -> dict:
    """The baseline's held-out bpc-open, token (= character) perplexity and scoring speed."""
    from collections import Counter

    import torch

    from lyricgen.fitted.ngram import KneserNey
    from lyricgen.scoring.score import UNK_CHAR_BITS
    from lyricgen.text.corpus import read_corpus
    from lyricgen.text.tokenizer import normalize_line

    train, held_out = (read_corpus(p) for p in protocol_files(ctx))
    counts = Counter("".join(normalize_line(line) for line in train))
    kept = sorted((c for c, n in counts.items() if n >= 2), key=lambda c: (-counts[c], c))
    index = {"<unk>": 0, "\n": 1, **{c: i + 2 for i, c in enumerate(kept)}}
    train_ids, _ = char_stream(train, index)
    held_ids, unk_chars = char_stream(held_out, index)
    t0 = time.perf_counter()
    lm = KneserNey.fit(train_ids, len(index), BASELINE_ORDER, BASELINE_DISCOUNT)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    stream = torch.tensor(held_ids)
    nll = -float(torch.log(lm.prob(lm.stream_states(stream), stream[1:])).sum())
    score_s = time.perf_counter() - t0
    tokens = len(held_ids) - 1
    return {"name": "n-gram", "bpc_open": (nll / math.log(2) + unk_chars * UNK_CHAR_BITS) / tokens,
            "ppl": math.exp(nll / tokens), "tokens": tokens, "unk_chars": unk_chars, "fit_s": fit_s,
            "tokens_per_s": len(train_ids) / max(fit_s, 1e-9), "score_tokens_per_s": tokens / max(score_s, 1e-9)}


def run(ctx: Context) -> Section:
    budgets = (20, 40) if ctx.quick else (60, 300)
    runs = [train_and_score(ctx, "default", b, []) for b in budgets]
    runs.append(train_and_score(ctx, "tutorial-size", budgets[-1], TUTORIAL))
    baseline = ngram_baseline(ctx)
    ctx.checkpoint = ctx.checkpoint or runs[0]["checkpoint"]
    section = Section(details={"runs": runs, "baseline": baseline})
    for r in runs:
        label = f"quality {r['name']} {r['budget_s']:g}s"
        target = TARGETS.get(int(r["budget_s"]), "") if r["name"] == "default" else ""
        section.add(f"{label}: bpc-open, generating model (network + n-gram)", r["bpc_open"], "bits/char", target)
        section.add(f"{label}: token perplexity, generating model", r["ppl"])
        section.add(f"{label}: bpc-open, network alone", r["bpc_open_rnn"], "bits/char")
        section.add(f"{label}: bpc-open with the repeat model", r["bpc_open_repeat"], "bits/char")
        section.add(f"{label}: epochs", r["epochs"])
        section.add(f"{label}: training throughput", r["tokens_per_s"], "tokens/s")
        section.add(f"{label}: CPU use", r["train_cpu_s"] / r["train_wall_s"], "cores")
    label = f"quality n-gram baseline (characters, order {BASELINE_ORDER}, interpolated KN {BASELINE_DISCOUNT})"
    section.add(f"{label}: bpc-open", baseline["bpc_open"], "bits/char")
    section.add(f"{label}: token perplexity", baseline["ppl"])
    section.add(f"{label}: fitting throughput", baseline["tokens_per_s"], "tokens/s")
    return section
