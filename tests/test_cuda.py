"""GPU runs through the real command line; skipped cleanly without a CUDA device."""
import pytest
import torch

from conftest import TINY_CORPUS, TINY_DATA, TINY_MODEL, requires_cuda, run_lyricgen
from lyricgen.checkpoint import load_checkpoint

pytestmark = [pytest.mark.cuda, requires_cuda]


def test_train_and_generate_on_cuda(tmp_path):
    out = tmp_path / "run"
    proc = run_lyricgen("train", "--corpus", TINY_CORPUS, "--out", out, *TINY_MODEL, *TINY_DATA,
                        "--epochs", "1", "--max-steps", "5", "--device", "cuda", "--quiet")
    assert proc.returncode == 0, proc.stderr
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["state"]["step"] == 5
    assert all(t.device.type == "cpu" for t in ckpt["model"].values())  # portable checkpoint
    assert all(torch.isfinite(t).all() for t in ckpt["model"].values())
    gen = run_lyricgen("generate", "月光", "--checkpoint", out / "last.pt", "--device", "cuda", "--max-tokens", "10")
    assert gen.returncode == 0, gen.stderr
    assert gen.stdout.startswith("月光")
    cpu = run_lyricgen("generate", "月光", "--checkpoint", out / "last.pt", "--device", "cpu", "--max-tokens", "10")
    assert cpu.returncode == 0 and cpu.stdout.startswith("月光")

