"""Memory while training: a run on xN the corpus (a time budget), in a fresh process that samples
its own resident memory from the trainer's callbacks. Growth after the first epoch (validation
included) should be about 0: memory is bounded by the model and the data, not by training time.

    python -m benchmarks.memory child CORPUS OUT BUDGET    # the measured run, printed as JSON
"""
import json
import sys
import time

from .common import Context, Section, child_cmd, proc_status_mb, run_json, write_lines


def child(corpus: str, out: str, budget: float) -> dict:
    from lyricgen.config import RunConfig
    from lyricgen.training.run import open_run

    launched = time.monotonic()
    trainer = open_run(RunConfig(corpus=corpus, out=out, force=True, device="cpu", mix="none"), {"time_budget": budget})
    samples, epoch_ends = [], []
    start_rss, started = proc_status_mb(), time.monotonic()

    def on_step(info):
        if not samples or time.monotonic() - samples[-1][0] >= 1.0:
            samples.append((time.monotonic(), proc_status_mb()))

    def on_epoch(row):
        samples.append((time.monotonic(), proc_status_mb()))  # right after a validation
        if float(row["epoch"]).is_integer():
            epoch_ends.append(time.monotonic())

    trainer.run(on_step=on_step, on_epoch=on_epoch)
    early_end = epoch_ends[0] if epoch_ends else started + 10
    early = [rss for t, rss in samples if t < early_end]
    later = [rss for t, rss in samples if t >= early_end]
    row = trainer.state.metrics[-1]
    return {"setup_s": started - launched, "rss_start_mb": start_rss, "rss_early_max_mb": max(early, default=None),
            "rss_later_max_mb": max(later, default=None), "rss_peak_mb": proc_status_mb("self", "VmHWM"),
            "growth_mb": max(later) - max(early) if early and later else None,
            "early_window": "first epoch" if epoch_ends else "first 10 s", "epochs": row["epoch"],
            "tokens_per_s": row["tokens_per_s"], "samples": [round(r, 1) for _, r in samples]}


def run(ctx: Context) -> Section:
    from lyricgen.text.corpus import read_corpus

    scale, budget = (5, 25) if ctx.quick else (20, 90)
    big = write_lines(read_corpus(ctx.corpus) * scale, ctx.tmp / f"corpus-x{scale}.txt")
    m = run_json(child_cmd("memory", "child", big, ctx.tmp / "memory-run", budget), ctx)
    name = f"train x{scale} {budget}s"
    section = Section(details={**m, "scale": scale, "budget_s": budget})
    section.add(f"{name}: RSS at training start", m["rss_start_mb"], "MiB")
    section.add(f"{name}: max RSS in the {m['early_window']}", m["rss_early_max_mb"], "MiB")
    section.add(f"{name}: max RSS after it (validation included)", m["rss_later_max_mb"], "MiB")
    section.add(f"{name}: RSS growth after the {m['early_window']}", m["growth_mb"], "MiB", "<= 50")
    section.add(f"{name}: peak RSS of the process", m["rss_peak_mb"], "MiB")
    section.add(f"{name}: epochs", float(m["epochs"]))
    return section


if __name__ == "__main__":  # child mode
    _, corpus, out, budget = sys.argv[1:]
    print(json.dumps(child(corpus, out, float(budget))))
