"""Files that are never half-written, and the private cache directory.

`atomic_write` is the one way lyricgen replaces a file (checkpoints, metrics.csv, the token cache,
downloads): the data goes to a temporary file beside the target, is flushed and fsynced, renamed
over the target, and the directory is fsynced so the rename itself survives a crash. A failure, a
full disk or a kill at any moment leaves the previous file as it was; temporary files that a killed
writer left behind are removed by the next write and never read.
"""
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

from .errors import LyricgenError


def temp_prefix(path: Path) -> str:
    return f".{path.name}.tmp-"


def fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # some platforms cannot open directories; the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path, data: bytes | Callable[[BinaryIO], None], what: str = "file") -> None:
    """Replace `path` with `data` (bytes, or a function that writes to the open binary file).

    An OSError becomes one LyricgenError line naming `what` and the path; any other exception
    (KeyboardInterrupt included) propagates, and in every case the previous file is unchanged.
    """
    path = Path(path)
    directory = path.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob(temp_prefix(path) + "*"):  # left by a killed writer
            stale.unlink(missing_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), dir=directory)
    except OSError as e:
        raise LyricgenError(f"cannot save {what} {path}: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            if isinstance(data, bytes):
                f.write(data)
            else:
                data(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise LyricgenError(f"cannot save {what} {path}: {e.strerror or e}; the previous file is unchanged") from None
        raise
    fsync_dir(directory)


def private_dir(path: Path) -> Path:
    """`path` as a directory only its owner can use (created 0700; an existing one is tightened)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        try:
            os.chmod(path, 0o700)
        except OSError:
            raise LyricgenError(f"cache directory {path} is shared with other users and not ours to fix; "
                                "set LYRICGEN_CACHE to a private directory") from None
    return path


def cache_dir() -> Path:
    """Private cache directory: $LYRICGEN_CACHE, else $XDG_CACHE_HOME/lyricgen, else ~/.cache/lyricgen."""
    root = os.environ.get("LYRICGEN_CACHE")
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(base, "lyricgen")
    return private_dir(Path(root))
