"""runtime.py: the device chosen once, and thread settings that are put back."""
import pytest
import torch

from lyricgen.errors import LyricgenError
from lyricgen.runtime import amp_dtype, cpu_threads, generation_threads, resolve_device


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(LyricgenError, match="--device must be one of auto, cpu, cuda, got 'tpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(LyricgenError, match="no CUDA device is available"):
            resolve_device("cuda")
    assert amp_dtype(torch.device("cpu")) is None  # CPU trains in fp32


def test_cpu_threads_are_put_back_even_after_an_error(monkeypatch):
    before = torch.get_num_threads()
    n = 2 if before != 2 else 3
    with cpu_threads(n):
        assert torch.get_num_threads() == n
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError):
        with cpu_threads(n):
            raise RuntimeError("boom")
    assert torch.get_num_threads() == before
    monkeypatch.setattr(torch, "set_num_threads", lambda k: calls.append(k))
    calls = []
    generation_threads(torch.device("cpu"))
    generation_threads(torch.device("cuda"))  # on a GPU the CPU threads are left alone
    assert calls == [1]
