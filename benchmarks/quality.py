"""Held-out quality per CPU-minute: the protocol everyone measures by (README, "Held-out evaluation").

lyricgen trains on the first 90% of the corpus's lines (its own validation, early stopping and
best-checkpoint choice use the last 10% of that part) within a time budget; `lyricgen evaluate
--json` then scores the untouched last 10% of the corpus. The figure that matters for lyrics is the
one of the model generation samples from; scoring's repeat model (choruses) is reported beside it.
"""
from .common import Context, Section, lyricgen_cmd, protocol_files, read_metrics, run_checked, run_json

TUTORIAL = ["--cell", "rnn", "--embed-dim", "128", "--hidden-size", "128", "--num-layers", "1"]
TARGETS = {60: "<= 8.0", 300: "<= 7.8"}  # bits per character of the generating model (issue 9)


def train_and_score(ctx: Context, name: str, budget: float, options: list[str]) -> dict:
    train, held_out = protocol_files(ctx)
    out = ctx.tmp / f"quality-{name}"
    _, wall, cpu = run_checked(lyricgen_cmd("train", "--corpus", train, "--out", out, "--quiet", "--force",
                                            "--time-budget", budget, *options), ctx)
    scored = run_json(lyricgen_cmd("evaluate", "--checkpoint", out / "best.pt", held_out, "--json"), ctx)
    rows = read_metrics(out)
    return {"name": name, "budget_s": budget, "options": options, "train_wall_s": wall, "train_cpu_s": cpu,
            "epochs": float(rows[-1]["epoch"]), "steps": int(rows[-1]["step"]),
            "tokens_per_s": float(rows[-1]["tokens_per_s"]), "checkpoint": str(out / "best.pt"), **scored}


def run(ctx: Context) -> Section:
    budgets = (20, 40) if ctx.quick else (60, 300)
    runs = [train_and_score(ctx, "default", b, []) for b in budgets]
    runs.append(train_and_score(ctx, "tutorial-size", budgets[-1], TUTORIAL))
    ctx.checkpoint = ctx.checkpoint or runs[0]["checkpoint"]
    section = Section(details={"runs": runs})
    for r in runs:
        label = f"quality {r['name']} {r['budget_s']:g}s"
        target = TARGETS.get(int(r["budget_s"]), "") if r["name"] == "default" else ""
        section.add(f"{label}: bpc-open, generating model", r["bpc_open_rnn"], "bits/char", target)
        section.add(f"{label}: token perplexity, generating model", r["ppl_rnn"])
        section.add(f"{label}: bpc-open with the repeat model", r["bpc_open"], "bits/char")
        section.add(f"{label}: epochs", r["epochs"])
        section.add(f"{label}: training throughput", r["tokens_per_s"], "tokens/s")
        section.add(f"{label}: CPU use", r["train_cpu_s"] / r["train_wall_s"], "cores")
    return section
