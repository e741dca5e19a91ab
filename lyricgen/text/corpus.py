"""Corpus files: reading and validating them, and the contiguous train/validation split.

A corpus is UTF-8 text (or another encoding, named), one lyric line per line. A blank line is kept:
it marks a song or section boundary, and the model learns it as a line break after a line break.
Training reads it with keep_debris=False: title, artist and credit lines are left out (debris.py).
"""
import hashlib
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import LyricgenError
from .debris import find_debris


@dataclass
class CorpusInfo:
    """What a checkpoint records of its corpus, so resume can find it and refuse a changed one."""
    path: str
    sha256: str
    lines: int  # as read, debris included
    encoding: str = "utf-8"
    debris: dict[str, int] = field(default_factory=dict)  # lines left out per kind; empty when all were kept
    names: list[str] = field(default_factory=list)  # the names its credit and title lines give
    mix: "CorpusInfo | None" = None  # the text mixed into training (--mix): resume re-reads and checks it

    @property
    def left_out(self) -> int:
        return sum(self.debris.values())

    def to_dict(self) -> dict:
        d = asdict(self)
        if self.mix is None:  # a run without a mix is recorded exactly as before
            del d["mix"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "CorpusInfo":
        return cls(path=str(d.get("path", "")), sha256=str(d.get("sha256", "")), lines=int(d.get("lines", 0)),
                   encoding=str(d.get("encoding", "utf-8")), debris={str(k): int(v) for k, v in
                                                                   (d.get("debris") or {}).items()},
                   names=[str(n) for n in d.get("names") or ()],
                   mix=CorpusInfo.from_dict(d["mix"]) if d.get("mix") else None)


def read_corpus(path, encoding: str = "utf-8") -> list[str]:
    """Lyric lines of a text file, one per line; refuses anything that is not usable text."""
    return load_corpus(path, encoding)[0]


def load_corpus(path, encoding: str = "utf-8", keep_debris: bool = True) -> tuple[list[str], CorpusInfo]:
    """read_corpus, plus what a checkpoint records of the file (its sha256 from the same read, of
    the file as read). keep_debris=False leaves out its title/artist and credit lines (debris.py)
    and records how many of each, and the names they give."""
    path = Path(path)
    if not path.exists():
        raise LyricgenError(f"corpus not found: {path}")
    if path.is_dir():
        raise LyricgenError(f"corpus is a directory, not a file: {path}")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise LyricgenError(f"cannot read corpus {path}: {e.strerror or e}") from None
    lines = decode_lines(data, str(path), encoding)
    info = CorpusInfo(str(path.resolve()), hashlib.sha256(data).hexdigest(), len(lines), encoding)
    if keep_debris:
        return lines, info
    found = find_debris(lines)
    if not any(line.strip() for line in found.kept):
        raise LyricgenError(f"{path} holds only title, artist and credit lines; pass --keep-debris to train on them")
    info.debris, info.names = found.counts, found.names
    return found.kept, info


def decode_lines(data: bytes, name: str, encoding: str = "utf-8") -> list[str]:
    """Lines of `data`; a UTF-8 byte-order mark is dropped, CRLF and CR endings become LF."""
    nul = data.find(b"\x00")
    if nul >= 0 and not encoding.lower().replace("-", "").replace("_", "").startswith(("utf16", "utf32")):
        raise LyricgenError(f"{name} looks binary (NUL byte at offset {nul}); lyrics must be a text file")
    codec = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
    try:
        text = data.decode(codec)
    except LookupError:
        raise LyricgenError(f"unknown encoding: {encoding}") from None
    except UnicodeDecodeError as e:
        hint = " (if it is GBK/GB18030, pass --encoding gb18030)" if codec == "utf-8-sig" else ""
        raise LyricgenError(f"{name} is not valid {encoding}: cannot decode byte offset {e.start}{hint}") from None
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last line, it does not start a new one
    if not any(line.strip() for line in lines):
        raise LyricgenError(f"{name} holds no lyrics (it is empty or whitespace only)")
    return lines


def split_lines(lines: list[str], val_fraction: float) -> tuple[list[str], list[str]]:
    """First (1 - val_fraction) of the lines for training, the contiguous rest for validation.

    Contiguous, not random: choruses repeat inside a song, so a random split would leak them.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise LyricgenError(f"validation fraction must be in [0, 1), got {val_fraction}")
    n_val = int(round(len(lines) * val_fraction))
    if val_fraction > 0 and n_val == 0 and len(lines) >= 2:
        n_val = 1
    n_train = len(lines) - n_val
    if n_train == 0 or not any(line.strip() for line in lines[:n_train]):
        raise LyricgenError("the training part of the corpus holds no lyrics; use a longer corpus")
    return lines[:n_train], lines[n_train:]


def held_out_part(lines: list[str], val_fraction: float, name: str) -> list[str]:
    """The held-out tail a run validated on (for `evaluate --held-out`); refuses an empty one."""
    if val_fraction <= 0:
        raise LyricgenError("the checkpoint was trained without a held-out part (--val-fraction 0)")
    tail = split_lines(lines, val_fraction)[1]
    if not any(line.strip() for line in tail):
        raise LyricgenError(f"{name} is too short to have a held-out part")
    return tail


def copied_share(train_lines: list[str], val_lines: list[str]) -> float:
    """Share of non-empty validation lines that also occur in the training part."""
    from .tokenizer import normalize_line  # the same notion of "the same line" as originality

    seen = {normalize_line(line) for line in train_lines}
    val = [x for x in (normalize_line(line) for line in val_lines) if x]
    return sum(line in seen for line in val) / len(val) if val else 0.0


# --mix: the corpus's training lines make at least this share of the characters trained on. On the Jay
# Chou corpus (55 k characters of training lines) beside data/open_lyrics.txt (364 k) that repeats them 3
# times: 300 s gave bpc-open 7.39 on its held-out tenth against 7.73 from the corpus alone (README).
MIX_OWN_SHARE = 0.25


def mixed_lines(own: list[str], mix: list[str]) -> list[str]:
    """The lines a --mix run trains on: the mix, a blank line (a song boundary), then the corpus's own
    training lines k times, k the least that gives them MIX_OWN_SHARE of the characters."""
    own_chars = sum(len(x) for x in own) or 1
    mix_chars = sum(len(x) for x in mix)
    k = max(1, math.ceil(MIX_OWN_SHARE / (1 - MIX_OWN_SHARE) * mix_chars / own_chars))
    return [*mix, "", *own * k]
