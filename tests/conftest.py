"""Shared fixtures: the tiny corpus, a tiny trained run, CLI runners, the cuda/corpus skips.

Everything runs on CPU with one thread: the models here are a few thousand parameters, where
intra-op threads only add overhead (and stall badly when another process holds the cores).
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
TINY_CORPUS = TESTS / "fixtures" / "tiny_lyrics.txt"
# The real corpus is never copied into the repository; tests that use it skip when it is absent.
JAYCHOU = Path(__file__).resolve().parents[2] / "shared/data/jaychou_lyrics.txt"
JAYCHOU_SHA256 = "f0cab49f5d00e736c7201a0e2aa9c8dd72da1940c9491b309e4cc657be0faa48"

# Small enough that an epoch of the tiny corpus takes well under a second on one CPU thread.
TINY_MODEL = ["--embed-dim", "8", "--hidden-size", "16", "--num-layers", "1"]
TINY_DATA = ["--seq-len", "8", "--batch-size", "8", "--min-freq", "2"]
TINY_TRAIN = [*TINY_MODEL, *TINY_DATA, "--device", "cpu", "--quiet"]

torch.set_num_threads(1)
os.environ["OMP_NUM_THREADS"] = "1"  # for the subprocesses


def cuda_available() -> bool:
    return torch.cuda.is_available()


requires_cuda = pytest.mark.skipif(not cuda_available(), reason="needs a CUDA GPU")


def pytest_collection_modifyitems(config, items):
    """Tests marked `cuda` skip cleanly without a GPU; `corpus` ones without the shared corpus."""
    for item in items:
        if "cuda" in item.keywords and not cuda_available():
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU"))
        if "corpus" in item.keywords and not JAYCHOU.is_file():
            item.add_marker(pytest.mark.skip(reason=f"shared corpus not found: {JAYCHOU}"))


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """jieba's dictionary cache goes to a per-session directory, never the user's ~/.cache."""
    path = tmp_path_factory.mktemp("lyricgen-cache")
    old = os.environ.get("LYRICGEN_CACHE")
    os.environ["LYRICGEN_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("LYRICGEN_CACHE", None)
    else:
        os.environ["LYRICGEN_CACHE"] = old


@pytest.fixture(scope="session")
def tiny_corpus() -> Path:
    return TINY_CORPUS


@pytest.fixture(scope="session")
def tiny_lines(tiny_corpus) -> list[str]:
    from lyricgen.text.corpus import read_corpus

    return read_corpus(tiny_corpus)


@pytest.fixture
def jaychou() -> Path:
    if not JAYCHOU.is_file():
        pytest.skip(f"shared corpus not found: {JAYCHOU}")
    return JAYCHOU


def call_cli(argv, capsys) -> tuple[int, str, str]:
    """Run `lyricgen.cli.main(argv)` in-process: (exit code, stdout, stderr). argparse errors exit 2."""
    from lyricgen.cli import main

    capsys.readouterr()
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else 1
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def cli(capsys):
    return lambda *argv: call_cli(argv, capsys)


def run_lyricgen(*args, timeout=180, **kwargs) -> subprocess.CompletedProcess:
    """The real command line in a fresh interpreter: `python -m lyricgen ARGS`."""
    return subprocess.run([sys.executable, "-m", "lyricgen", *map(str, args)], capture_output=True,
                          text=True, encoding="utf-8", timeout=timeout, env=dict(os.environ), **kwargs)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A directory holding a finished 2-epoch tiny run (best.pt, last.pt, metrics.csv). Read only:
    tests that change files work on a copy (see `run_copy`)."""
    from lyricgen.cli import main

    out = tmp_path_factory.mktemp("tiny-run")
    rc = main(["train", "--corpus", str(TINY_CORPUS), "--out", str(out), "--epochs", "2", *TINY_TRAIN])
    assert rc == 0
    assert (out / "best.pt").is_file() and (out / "last.pt").is_file()
    return out


@pytest.fixture
def run_copy(tiny_run, tmp_path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(tiny_run, dst)
    return dst


@pytest.fixture(scope="session")
def tiny_ckpt(tiny_run) -> dict:
    from lyricgen.checkpoint import load_checkpoint

    return load_checkpoint(tiny_run / "best.pt")


@pytest.fixture(scope="session")
def tiny_model(tiny_ckpt):
    """(model, vocab) of the tiny trained run, in eval mode."""
    from lyricgen.checkpoint import model_from_checkpoint

    model, vocab = model_from_checkpoint(tiny_ckpt)
    return model.eval(), vocab


def one_error_line(err: str) -> str:
    """The single stderr line of a failed command; fails on tracebacks or multi-line output."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]
