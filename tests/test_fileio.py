"""fileio.py: atomic_write, the one way lyricgen replaces a file (checkpoints, metrics.csv, the token
cache, downloads): failures and kill -9 at any moment leave the previous file, temporary files are
cleaned up, the directory is fsynced after the rename. Also the private cache directory."""
import errno
import hashlib
import io
import os
import random
import signal
import stat
import time
import zipfile
from pathlib import Path

import pytest
import torch

from conftest import TINY_CORPUS, WRITE_FAULTS, fail_writes_of, same_tensors, tiny_trainer
from lyricgen import fileio
from lyricgen.checkpoint import save_checkpoint
from lyricgen.errors import LyricgenError
from lyricgen.fileio import atomic_write, cache_dir, private_dir


def temp_leftovers(directory: Path, name: str) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(f".{name}.tmp-"))


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


# -- writing (every writer's failures: below) ------------------------------------------------------------
def test_interrupted_write_propagates_and_keeps_the_previous_file(tmp_path):
    def interrupted(f):
        f.write(b"PK\x03\x04 half written")
        raise KeyboardInterrupt  # Ctrl-C in the middle of a save

    path = tmp_path / "last.pt"
    atomic_write(path, b"old contents")
    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, interrupted)
    assert path.read_bytes() == b"old contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_writes_bytes_or_through_a_function_creating_directories(tmp_path):
    atomic_write(tmp_path / "a" / "b" / "x.bin", b"\x00\x01")
    assert (tmp_path / "a" / "b" / "x.bin").read_bytes() == b"\x00\x01"
    atomic_write(tmp_path / "a" / "b" / "x.bin", lambda f: f.write(b"replaced"))
    assert (tmp_path / "a" / "b" / "x.bin").read_bytes() == b"replaced"
    assert os.listdir(tmp_path / "a" / "b") == ["x.bin"]


def test_stale_temp_files_are_removed(tmp_path):
    stale = [tmp_path / ".last.pt.tmp-abc123", tmp_path / ".last.pt.tmp-zz"]
    for p in stale:
        p.write_bytes(b"left by a killed save")
    other = tmp_path / ".best.pt.tmp-keep"  # another file's temp is not ours to delete
    other.write_bytes(b"x")
    atomic_write(tmp_path / "last.pt", b"new")
    assert not any(p.exists() for p in stale)
    assert other.exists()
    assert (tmp_path / "last.pt").read_bytes() == b"new"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_output_directory(tmp_path):
    directory = tmp_path / "ro"
    directory.mkdir()
    path = directory / "last.pt"
    atomic_write(path, b"old")
    os.chmod(directory, 0o500)
    try:
        with pytest.raises(LyricgenError) as info:
            atomic_write(path, b"new")
    finally:
        os.chmod(directory, 0o700)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in directory.iterdir()) == ["last.pt"]


def test_output_directory_that_is_a_file(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_bytes(b"not a directory")
    path = blocker / "last.pt"
    with pytest.raises(LyricgenError) as info:
        atomic_write(path, b"new", "checkpoint")
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert blocker.read_bytes() == b"not a directory"


# -- kill -9 in the middle of writes ----------------------------------------------------------------
def _payload(name: str, value: float) -> dict:
    """A few MB of tensors, every one filled with `value`: a mix of A and B is detectable."""
    return {
        "version": name,
        "marker": torch.tensor([value]),
        "weights": {"big": torch.full((700_000,), value), "small": torch.full((300, 300), value)},
        "list": [torch.full((50_000,), value), value],
    }


def _save(payload, path):
    atomic_write(path, lambda f: torch.save(payload, f), "checkpoint")


def _check_complete(raw) -> str:
    value = {"A": 1.0, "B": 2.0}[raw["version"]]
    same_tensors(raw, _payload(raw["version"], value), "payload")
    return raw["version"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_kill_9_during_writes_leaves_one_complete_version(tmp_path):
    """A child process saves A, B, A, B... forever; it is SIGKILLed at random moments. The file
    always loads (weights_only) and is wholly A or wholly B; the next write clears the debris.

    The child is forked from this process (torch already imported), so each round costs
    milliseconds instead of a fresh interpreter's import time."""
    path = tmp_path / "ckpt.pt"
    versions = [_payload("A", 1.0), _payload("B", 2.0)]
    t0 = time.perf_counter()
    _save(versions[1], path)
    save_time = time.perf_counter() - t0
    rng = random.Random(20240611)
    killed_mid_save = 0
    for _ in range(5):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: never returns into pytest
            try:
                os.close(r)
                n = 0
                while True:
                    _save(versions[n % 2], path)
                    n += 1
                    os.write(w, b"s")
            finally:
                os._exit(1)
        os.close(w)
        try:
            assert os.read(r, 1) == b"s", "the saving child died before its first save"
            time.sleep(rng.uniform(0, 3 * save_time))
        finally:
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
            os.close(r)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        killed_mid_save += bool(temp_leftovers(tmp_path, path.name))
        _check_complete(torch.load(path, map_location="cpu", weights_only=True))
    assert killed_mid_save >= 1, "no kill landed inside a save; the test proved nothing"
    _save(versions[0], path)
    assert _check_complete(torch.load(path, map_location="cpu", weights_only=True)) == "A"
    assert temp_leftovers(tmp_path, path.name) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]


# -- every writer goes through atomic_write -------------------------------------------------------------
WRITERS = ["checkpoint", "metrics.csv", "token cache", "download"]


def _zip(member: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(member, data)
    return buf.getvalue()


def make_writer(name, tmp_path, monkeypatch, tiny_ckpt, tiny_lines):
    """(the file that `write()` replaces, write)."""
    if name == "checkpoint":
        path = tmp_path / "run" / "last.pt"
        return path, lambda: save_checkpoint(tiny_ckpt, path)
    if name == "metrics.csv":
        out = tmp_path / "run"
        return out / "metrics.csv", lambda: tiny_trainer(tiny_lines, out, epochs=1).run()
    if name == "token cache":
        from lyricgen.text.tokenizer import cache_key, tokenize_cached

        monkeypatch.setenv("LYRICGEN_CACHE", str(tmp_path / "cache"))
        lines = tiny_lines[:5]
        return cache_dir() / "tokens" / f"{cache_key(lines)}.table.json", lambda: tokenize_cached(lines)
    if name == "download":
        from lyricgen.text import download

        text = TINY_CORPUS.read_bytes()
        archive = _zip("tiny.txt", text)
        monkeypatch.setitem(download.CORPORA, "tiny", download.Corpus(
            "tiny", "the tiny fixture", "ours", "unused", "http://127.0.0.1:9/tiny.zip",
            (("", hashlib.sha256(archive).hexdigest()),), hashlib.sha256(text).hexdigest(), member="tiny.txt"))
        monkeypatch.setattr(download, "fetch", lambda url, timeout=60.0: archive)
        path = tmp_path / "data" / "tiny.txt"
        return path, lambda: download.download("tiny", out=path, force=True)
    raise AssertionError(name)


@pytest.mark.parametrize("writer", WRITERS)
def test_every_writer_fsyncs_the_directory_after_its_rename(writer, tmp_path, monkeypatch, tiny_ckpt, tiny_lines):
    path, write = make_writer(writer, tmp_path, monkeypatch, tiny_ckpt, tiny_lines)
    synced = []
    real_fsync_dir = fileio.fsync_dir

    def fsync_dir(directory):
        directory = Path(directory)
        if directory == path.parent:  # what the directory holds when it is synced
            synced.append(sorted(p.name for p in directory.iterdir() if p.name == path.name
                                 or p.name.startswith(f".{path.name}.tmp-")))
        real_fsync_dir(directory)

    monkeypatch.setattr(fileio, "fsync_dir", fsync_dir)
    write()
    assert path.is_file() and path.stat().st_size > 0
    assert synced and synced[-1] == [path.name]  # renamed into place, no temp file, then synced


@pytest.mark.parametrize("stage", WRITE_FAULTS)  # temp file, write (the disk fills up), fsync, rename
@pytest.mark.parametrize("writer", WRITERS)
def test_every_writer_keeps_its_previous_file_when_a_write_fails(writer, stage, tmp_path, monkeypatch, tiny_ckpt,
                                                                  tiny_lines):
    """Whatever step fails (the temporary file, the disk filling up while writing, fsync, rename):
    one error line naming the file, the previous file as it was, no temporary file left."""
    path, write = make_writer(writer, tmp_path, monkeypatch, tiny_ckpt, tiny_lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"the previous file")
    fail_writes_of(path, stage, monkeypatch)
    if writer == "token cache":
        write()  # a cache that cannot be written never fails its caller
    else:
        with pytest.raises(LyricgenError) as info:
            write()
        message = str(info.value)
        assert message.startswith("cannot save ") and f" {path}: " in message and "\n" not in message
        assert ("No space left on device" in message) == (stage in ("write", "fsync"))
        assert message.endswith("the previous file is unchanged") == (stage != "temp file")
    assert path.read_bytes() == b"the previous file"
    assert temp_leftovers(path.parent, path.name) == []


# -- the private cache directory ----------------------------------------------------------------------
def test_cache_dir_honours_env_and_is_private(tmp_path, monkeypatch):
    target = tmp_path / "a" / "b" / "cache"
    monkeypatch.setenv("LYRICGEN_CACHE", str(target))
    assert cache_dir() == target
    assert target.is_dir()
    assert _mode(target) == 0o700


def test_cache_dir_falls_back_to_xdg_then_home(tmp_path, monkeypatch):
    monkeypatch.delenv("LYRICGEN_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "lyricgen"
    assert _mode(tmp_path / "xdg" / "lyricgen") == 0o700
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "lyricgen"


def test_existing_cache_dir_is_made_private(tmp_path, monkeypatch):
    target = tmp_path / "shared"
    target.mkdir()
    target.chmod(0o777)
    monkeypatch.setenv("LYRICGEN_CACHE", str(target))
    cache_dir()
    assert _mode(target) == 0o700


def test_shared_cache_dir_that_is_not_ours_is_refused(tmp_path, monkeypatch):
    target = tmp_path / "shared"
    target.mkdir()
    target.chmod(0o777)
    def chmod(path, mode):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr("lyricgen.fileio.os.chmod", chmod)
    with pytest.raises(LyricgenError, match="LYRICGEN_CACHE") as info:
        private_dir(target)
    assert str(target) in str(info.value)
