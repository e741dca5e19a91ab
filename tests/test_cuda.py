"""GPU runs through the real command line; skipped cleanly without a CUDA device."""
import pytest
import torch

from conftest import TINY_CORPUS, TINY_DATA, TINY_MODEL, requires_cuda, run_lyricgen
from lyricgen.checkpoint import load_checkpoint

pytestmark = [pytest.mark.cuda, requires_cuda]


def test_train_resume_and_generate_on_cuda(tmp_path):
    out = tmp_path / "run"
    train = ["train", "--corpus", TINY_CORPUS, *TINY_MODEL, *TINY_DATA, "--epochs", "2", "--device", "cuda", "--quiet"]
    proc = run_lyricgen(*train, "--out", out, "--max-steps", "5")
    assert proc.returncode == 0, proc.stderr
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt.training.state.step == 5
    assert all(t.device.type == "cpu" for t in ckpt.weights.values())  # portable checkpoint
    assert all(torch.isfinite(t).all() for t in ckpt.weights.values())
    assert "cuda" in ckpt.training.rng  # the GPU's RNG state travels too
    proc = run_lyricgen("train", "--resume", out / "last.pt", "--device", "cuda", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert load_checkpoint(out / "last.pt").training.state.epoch == 2
    gen = run_lyricgen("generate", "月光", "--checkpoint", out / "last.pt", "--device", "cuda", "--max-tokens", "10")
    assert gen.returncode == 0, gen.stderr
    assert gen.stdout.startswith("月光")
    cpu = run_lyricgen("generate", "月光", "--checkpoint", out / "last.pt", "--device", "cpu", "--max-tokens", "10")
    assert cpu.returncode == 0 and cpu.stdout.startswith("月光")

