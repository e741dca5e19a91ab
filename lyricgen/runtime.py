"""Device choice and numeric settings, decided once by the entry point and passed down."""
import os
from contextlib import contextmanager

import torch

from .config import DEVICES
from .errors import LyricgenError


def resolve_device(name: str) -> torch.device:
    """auto -> cuda when available, else cpu; asking for cuda without one is an input error."""
    if name not in DEVICES:
        raise LyricgenError(f"--device must be one of {', '.join(DEVICES)}, got {name!r}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise LyricgenError("--device cuda was asked for, but no CUDA device is available")
    return torch.device(name)


def amp_dtype(device: torch.device):
    """bf16 autocast on CUDA devices that support it; full fp32 elsewhere (CPU bf16 is slower here)."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


@contextmanager
def cpu_threads(n: int):
    """Run a block with n CPU threads. Stream scoring and batch-1 generation are chains of tiny
    matrix products: one thread is faster, and far faster when another process shares the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def generation_threads(device: torch.device) -> None:
    """Generation and scoring on the CPU are chains of tiny matrix products: one thread is fastest,
    and far faster when another process shares the cores (docs/tuning.md)."""
    if device.type == "cpu":
        torch.set_num_threads(1)


def make_deterministic(device: torch.device) -> None:
    """The documented settings for reproducible CUDA runs (CPU runs are deterministic already).

    https://pytorch.org/docs/stable/notes/randomness.html: cuDNN deterministic algorithms, no
    benchmark autotuning, deterministic algorithms everywhere, and a fixed cuBLAS workspace.
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True)
