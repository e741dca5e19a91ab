"""runtime.py: the device chosen once, thread settings that are put back, and --deterministic."""
import os
import subprocess
import sys

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


def test_deterministic_flag_applies_the_documented_settings(tmp_path):
    # in a subprocess: the settings are process-global
    code = (
        "import os, torch\n"
        "from lyricgen.runtime import make_deterministic\n"
        "make_deterministic(torch.device('cpu'))\n"
        "print(torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,\n"
        "      torch.backends.cudnn.benchmark, os.environ.get('CUBLAS_WORKSPACE_CONFIG'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "CUBLAS_WORKSPACE_CONFIG"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "True", "False", ":4096:8"]
