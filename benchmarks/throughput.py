"""Training throughput: the trainer's own tokens/s (metrics.csv), and the arithmetic rate it means
against this machine's fp32 matrix-product peak (6 x the forward multiply-accumulates per token,
model.macs_per_token), for the default model and the tutorial-size one at the tutorial's batch of
32 x 64 tokens (at our 16 x 32 default that small model is bound by per-step overhead)."""
from .common import Context, Section, lyricgen_cmd, matmul_peak_gflops, protocol_files, read_metrics, run_checked

MODELS = {
    "default": [],
    "tutorial-size": ["--cell", "rnn", "--embed-dim", "128", "--hidden-size", "128", "--num-layers", "1",
                      "--no-tie-weights", "--dropout", "0", "--embed-dropout", "0", "--batch-size", "32",
                      "--seq-len", "64"],
}
TUTORIAL_TARGET = ">= 20000"


def measure(ctx: Context, name: str, options: list[str], seconds: float) -> dict:
    from lyricgen.checkpoint import load_checkpoint
    from lyricgen.model import macs_per_token

    train, _ = protocol_files(ctx)
    out = ctx.tmp / f"throughput-{name}"
    run_checked(lyricgen_cmd("train", "--corpus", train, "--out", out, "--quiet", "--force", "--mix", "none",
                             "--time-budget", seconds, *options), ctx)
    rows = read_metrics(out)
    steps = [int(r["step"]) for r in rows]
    weights = [b - a for a, b in zip([0] + steps, steps)]  # steps per row: a weighted mean over the run
    tokens_per_s = sum(w * float(r["tokens_per_s"]) for w, r in zip(weights, rows)) / max(sum(weights), 1)
    config = load_checkpoint(out / "last.pt").model_config
    flops = 6 * macs_per_token(config)
    return {"tokens_per_s": tokens_per_s, "steps": steps[-1], "train_flops_per_token": flops,
            "gflops": tokens_per_s * flops / 1e9, "model": config.to_dict()}


def run(ctx: Context) -> Section:
    seconds = 8 if ctx.quick else 20
    peaks = [matmul_peak_gflops()]
    results = {}
    for name, options in MODELS.items():
        results[name] = measure(ctx, name, options, seconds)
        peaks.append(matmul_peak_gflops())  # around each timing: other load moves both alike
    peak = max(peaks)
    section = Section(details={"models": results, "peak_gflops": peak, "peaks": peaks, "seconds": seconds})
    section.add("matmul peak, fp32 2048^2", peak, "GFLOP/s")
    for name, r in results.items():
        section.add(f"train {name}: throughput", r["tokens_per_s"], "tokens/s",
                    TUTORIAL_TARGET if name == "tutorial-size" else "")
        section.add(f"train {name}: achieved", r["gflops"], "GFLOP/s")
        section.add(f"train {name}: share of peak", 100 * r["gflops"] / peak, "%")
    return section
