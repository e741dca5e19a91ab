"""Fetch a public lyrics corpus, verify its checksum before unpacking, write it atomically.

Only the Jay Chou corpus of the d2l-zh book is known. The lyrics are not ours to redistribute, so
the repository never contains them; users fetch them with `lyricgen download jaychou`.
"""
import hashlib
import io
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from ..errors import LyricgenError
from ..fileio import atomic_write

CORPORA = {
    "jaychou": {
        "url": "https://raw.githubusercontent.com/d2l-ai/d2l-zh/v1/data/jaychou_lyrics.txt.zip",
        "zip_sha256": "3cfedd7d174111cdad5a27eaffaa6a2432a2842cf2590a03dd8a97610ea07043",
        "member": "jaychou_lyrics.txt",
        "text_sha256": "f0cab49f5d00e736c7201a0e2aa9c8dd72da1940c9491b309e4cc657be0faa48",
        "out": "data/jaychou_lyrics.txt",
    },
}
MAX_BYTES = 64 * 1024 * 1024  # a lyrics corpus zip is tiny; refuse to buffer anything huge


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch(url: str, timeout: float = 60.0) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data = response.read(MAX_BYTES + 1)
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise LyricgenError(f"download of {url} failed: {reason}") from None
    if len(data) > MAX_BYTES:
        raise LyricgenError(f"download of {url} is larger than {MAX_BYTES} bytes; refused")
    return data


def unpack(data: bytes, member: str) -> bytes:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = [n for n in zf.namelist() if n.rsplit("/", 1)[-1] == member]
            if not names:
                raise LyricgenError(f"the zip holds no {member}")
            return zf.read(names[0])
    except zipfile.BadZipFile as e:
        raise LyricgenError(f"the download is not a valid zip: {e}") from None


def download(name: str, out=None, url: str | None = None, zip_sha256: str | None = None,
             force: bool = False) -> tuple[Path, bool]:
    """Download corpus `name`; returns (path, whether it was written). Nothing is written unless
    both the zip and the unpacked text match their checksums."""
    if name not in CORPORA:
        raise LyricgenError(f"unknown corpus {name!r}; known: {', '.join(CORPORA)}")
    spec = CORPORA[name]
    path = Path(out or spec["out"])
    if path.is_dir():
        raise LyricgenError(f"{path} is a directory; give a file path with --out")
    if path.exists():
        if sha256(path.read_bytes()) == spec["text_sha256"]:
            return path, False
        if not force:
            raise LyricgenError(f"{path} exists with other content; pass --force to replace it")
    url = url or spec["url"]
    expected = (zip_sha256 or spec["zip_sha256"]).lower()
    data = fetch(url)
    got = sha256(data)
    if got != expected:
        raise LyricgenError(f"checksum mismatch for {url}: expected sha256 {expected}, got {got}; nothing was written")
    text = unpack(data, spec["member"])
    if sha256(text) != spec["text_sha256"]:
        raise LyricgenError(f"{spec['member']} in the zip does not match its known checksum; nothing was written")
    atomic_write(path, text, "corpus")
    return path, True
