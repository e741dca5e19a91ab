"""Shared fixtures and helpers: the tiny corpus, a tiny trained run (the checkpoint the serving tests
serve), a model that memorised ten lines, CLI runners, tensor comparison, and the cuda/corpus skips.

Everything runs on CPU with one thread: the models here are a few thousand parameters, where
intra-op threads only add overhead (and stall badly when another process holds the cores).
"""
import errno
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
TINY_CORPUS = TESTS / "fixtures" / "tiny_lyrics.txt"
# The real corpus is never copied into the repository; tests that use it skip when it is absent.
JAYCHOU = Path(__file__).resolve().parents[2] / "shared/data/jaychou_lyrics.txt"
JAYCHOU_SHA256 = "f0cab49f5d00e736c7201a0e2aa9c8dd72da1940c9491b309e4cc657be0faa48"

# The one table of tiny training options, as library options (training.run.start_run / open_run);
# TINY_MODEL and TINY_DATA are the same as command-line flags. Small enough that an epoch of the tiny
# corpus (11 steps) takes well under a second on one thread. The word unit: these fixtures'
# expectations name jieba words (test_unit.py covers characters).
TINY_OPTIONS = {"embed_dim": 8, "hidden_size": 16, "num_layers": 1, "seq_len": 8, "batch_size": 8, "unit": "word",
                "min_freq": 2}
MODEL_OPTIONS = ("embed_dim", "hidden_size", "num_layers")


def cli_flags(options: dict) -> list[str]:
    """Library options as command-line flags: {"embed_dim": 8} -> ["--embed-dim", "8"]."""
    return [arg for name, value in options.items() for arg in (f"--{name.replace('_', '-')}", str(value))]


TINY_MODEL = cli_flags({k: v for k, v in TINY_OPTIONS.items() if k in MODEL_OPTIONS})
TINY_DATA = cli_flags({k: v for k, v in TINY_OPTIONS.items() if k not in MODEL_OPTIONS})
TINY_TRAIN = [*TINY_MODEL, *TINY_DATA, "--device", "cpu", "--quiet"]

# Ten original lines of four tokens each, memorised by `overfit_ckpt`
OVERFIT_LINES = ["晨光照亮小窗台", "火车穿过长隧道", "老街小猫在打盹", "雪花落满了屋檐", "灯塔守护着大海",
                 "星空下有一首歌", "秋天稻田一片金黄", "河水慢慢流向远方", "钟声敲响了黄昏", "梦里有一片森林"]
OVERFIT_TOKENS_PER_LINE = 4

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
    """jieba's dictionary and the token cache go to a per-session directory, never ~/.cache."""
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


# -- the command line ----------------------------------------------------------------------------------
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


def one_error_line(err: str) -> str:
    """The single stderr line of a failed command; fails on tracebacks or multi-line output."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def snapshot(directory: Path) -> dict:
    """Every file of a directory by name, with its bytes."""
    return {p.name: p.read_bytes() for p in directory.iterdir()}


# -- faults in the writing of one file ------------------------------------------------------------------
WRITE_FAULTS = ("temp file", "write", "fsync", "rename")


class FullDisk:
    """An open file on a disk with `room` bytes left: writes past that fail with ENOSPC, as the
    operating system's do. Everything else goes to the real file."""

    def __init__(self, f, room: int):
        self._f, self._room = f, room

    def write(self, data):
        size = memoryview(data).nbytes
        if size > self._room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._room -= size
        return self._f.write(data)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


def fail_writes_of(target: Path, stage: str, monkeypatch) -> None:
    """Every later replacement of `target` fails at `stage`: creating the temporary file (permission
    denied), writing it (the disk fills up after 64 bytes), fsyncing it (disk full) or renaming it
    over the target (permission denied). Writes of other files are untouched."""
    assert stage in WRITE_FAULTS
    real_mkstemp, real_fdopen, real_fsync, real_replace = tempfile.mkstemp, os.fdopen, os.fsync, os.replace
    temps = set()  # descriptors of the target's temporary files

    def ours(directory, prefix) -> bool:
        return Path(directory) == target.parent and prefix == f".{target.name}.tmp-"

    def mkstemp(*args, prefix=None, dir=None, **kwargs):
        if stage == "temp file" and ours(dir, prefix):
            raise PermissionError(errno.EACCES, "Permission denied")
        fd, path = real_mkstemp(*args, prefix=prefix, dir=dir, **kwargs)
        if ours(dir, prefix):
            temps.add(fd)
        return fd, path

    def fdopen(fd, *args, **kwargs):
        f = real_fdopen(fd, *args, **kwargs)
        return FullDisk(f, 64) if stage == "write" and fd in temps else f

    def fsync(fd):
        if stage == "fsync" and fd in temps:
            temps.discard(fd)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    def replace(src, dst):
        if stage == "rename" and Path(dst) == target:
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_replace(src, dst)

    monkeypatch.setattr("lyricgen.fileio.tempfile.mkstemp", mkstemp)
    monkeypatch.setattr("lyricgen.fileio.os.fdopen", fdopen)
    monkeypatch.setattr("lyricgen.fileio.os.fsync", fsync)
    monkeypatch.setattr("lyricgen.fileio.os.replace", replace)


# -- runs and checkpoints ----------------------------------------------------------------------------
@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A directory holding a finished 2-epoch tiny run (best.pt, last.pt, metrics.csv): the checkpoints
    `lyricgen train --epochs 2 TINY_TRAIN` writes, without its plot (seconds of matplotlib; test_plot.py
    covers it). Read only: tests that change files work on a copy (see `run_copy`)."""
    from lyricgen.config import RunConfig
    from lyricgen.training.run import open_run

    out = tmp_path_factory.mktemp("tiny-run")
    run = RunConfig(corpus=str(TINY_CORPUS), out=str(out), device="cpu")
    assert open_run(run, {**TINY_OPTIONS, "epochs": 2}).run() == "done"
    assert (out / "best.pt").is_file() and (out / "last.pt").is_file()
    return out


@pytest.fixture
def run_copy(tiny_run, tmp_path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(tiny_run, dst)
    return dst


@pytest.fixture(scope="session")
def served_checkpoint(tiny_run) -> Path:
    """The checkpoint the serving, OpenAI and browser tests serve: the tiny run's best.pt, trained
    once per session with TINY_OPTIONS. Read only, as `tiny_run`."""
    return tiny_run / "best.pt"


@pytest.fixture(scope="session")
def tiny_ckpt(tiny_run):
    """The tiny run's best.pt as a Checkpoint. Shared: copy before changing anything in it."""
    from lyricgen.checkpoint import load_checkpoint

    return load_checkpoint(tiny_run / "best.pt")


@pytest.fixture(scope="session")
def tiny_model(tiny_ckpt):
    """(model, vocab) of the tiny trained run, in eval mode."""
    return tiny_ckpt.build_model().eval(), tiny_ckpt.vocab


def tiny_trainer(lines, out, **options):
    """A new run of the tiny model on `lines` (no dropout, seed 0), writing to `out`."""
    from lyricgen.training.run import start_run

    options = {**TINY_OPTIONS, "epochs": 2, "seed": 0, "lr": 1e-2, "dropout": 0.0, "embed_dropout": 0.0, **options}
    return start_run(lines, options, out, "cpu")


@pytest.fixture(scope="session")
def overfit_ckpt(tmp_path_factory) -> Path:
    """A checkpoint that has memorised OVERFIT_LINES, so its output is predictable enough to test
    structure and copying exactly.

    It learns every line from a fresh state ([line break, w1..w4] -> [w1..w4, line break], the context
    generation primes with) and every ordered pair of lines, so after a line break any other line may
    follow: greedy output is whole training lines, and sampling picks the next line's first word.
    """
    from lyricgen.text.tokenizer import tokenize_line
    from lyricgen.training.run import start_run
    from lyricgen.training.trainer import train_step

    out = tmp_path_factory.mktemp("overfit")
    options = {"epochs": 1, "batch_size": 16, "seq_len": OVERFIT_TOKENS_PER_LINE + 1, "lr": 0.03,
               "val_fraction": 0.0, "seed": 1, "unit": "word", "min_freq": 1, "embed_dim": 16, "hidden_size": 32,
               "num_layers": 1, "dropout": 0.0, "embed_dropout": 0.0}
    trainer = start_run(OVERFIT_LINES, options, out, "cpu")
    vocab = trainer.data.vocab
    lb = vocab.line_break_id
    ids = [vocab.encode(tokenize_line(line))[0] for line in OVERFIT_LINES]
    assert all(len(t) == OVERFIT_TOKENS_PER_LINE for t in ids) and vocab.unk_id not in sum(ids, [])
    single_x = torch.tensor([[lb] + t for t in ids])
    single_y = torch.tensor([t + [lb] for t in ids])
    pairs = [(i, j) for i in range(len(ids)) for j in range(len(ids)) if i != j]
    pair_x = torch.tensor([[lb] + ids[i] + [lb] + ids[j] for i, j in pairs])
    pair_y = torch.tensor([ids[i] + [lb] + ids[j] + [lb] for i, j in pairs])
    for _ in range(100):
        train_step(trainer.model, trainer.optimizer, single_x, single_y, trainer.config.clip)
        train_step(trainer.model, trainer.optimizer, pair_x, pair_y, trainer.config.clip)
    trainer.side.mixture = None  # what it writes is the network's memory above, not an n-gram's
    return trainer.save("model.pt")


@pytest.fixture(scope="session")
def overfit_writer(overfit_ckpt):
    """A Lyricist of `overfit_ckpt`; greedy decoding from a line's first word writes that line."""
    from lyricgen.writing.lyricist import Lyricist

    return Lyricist.load(overfit_ckpt)


def same_tensors(a, b, where="") -> None:
    """Bitwise equality of nested checkpoint parts (tensors with torch.equal, the rest with ==)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            same_tensors(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            same_tensors(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def weights_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def engine(served_checkpoint):
    """The server's Engine on the served checkpoint (2 workers, a queue of 4), one per test module
    (test_serving, test_desk: they skip without the serve extra, so it is imported here, when used)."""
    import torch

    from lyricgen.serving.engine import Engine
    from lyricgen.serving.pool import WorkerPool

    engine = Engine(WorkerPool(2, 4))
    engine.load(served_checkpoint, torch.device("cpu"), model_id="tiny")
    yield engine
    engine.pool.shutdown()


@pytest.fixture(scope="module")
def client(engine):
    """FastAPI's test client on `engine`'s app."""
    from fastapi.testclient import TestClient

    from lyricgen.serving.app import create_app

    with TestClient(create_app(engine)) as c:
        yield c
