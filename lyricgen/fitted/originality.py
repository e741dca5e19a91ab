"""How much of a generated text is copied from the training corpus, without storing the corpus.

The checkpoint keeps 64-bit hashes only: one per training line, and one per substring (MIN_SPAN to
MAX_SPAN characters) of every training line up to MAX_LINE characters long. From those, a text's
share of lines that occur verbatim in training and its longest copied span (within a line, in
characters; spans shorter than MIN_SPAN count as 0) can be computed exactly, up to hash collisions
(about 1 in 10^12 per lookup for the five million spans of 全宋词).

The hash is a polynomial one modulo 2^64 (poly_hash), so every span of a corpus is hashed at once
with array arithmetic: 全宋词's five million spans take a second and 40 MB, where hashing them one by
one took half a minute and a gigabyte. Lookups are binary searches in the sorted arrays. Checkpoints
of lyricgen 0.1 hashed with blake2b; their hashes are read with it (`hash` in the stored dict).

Hashes are not encryption: whoever holds the checkpoint can test whether a given phrase of
MIN_SPAN or more characters occurs in the training corpus, and from a known phrase extend it. Share
checkpoints of a corpus you may not redistribute with that in mind.
"""
import hashlib

import numpy as np
import torch

from ..text.tokenizer import normalize_line

MAX_SPAN = 32  # longer copied spans are reported as MAX_SPAN (lines longer than this still count whole)
MIN_SPAN = 4  # shorter shared spans are everyday phrases, not copies; it also keeps guessing costly
MAX_LINE = 256  # longer "lines" (a file without line breaks) get a line hash but no span hashes


P = 1_000_003  # the polynomial's base (odd, so invertible modulo 2^64)
P_INV = pow(P, -1, 2**64)
POLY, BLAKE2B = "poly64", "blake2b64"


def poly_hash(text: str) -> int:
    """sum(code(c_m) * P^(n-1-m)) mod 2^64 as a signed int64, code(c) = ord(c) + 1."""
    h = 0
    for ch in text:
        h = (h * P + ord(ch) + 1) & 0xFFFFFFFFFFFFFFFF
    return h - (1 << 64) if h >= 1 << 63 else h


def blake2b_hash(text: str) -> int:  # lyricgen 0.1's
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little", signed=True)


HASHES = {POLY: poly_hash, BLAKE2B: blake2b_hash}


def _powers(base: int, n: int) -> np.ndarray:
    """base^0 .. base^(n-1) modulo 2^64 (uint64 arithmetic wraps)."""
    factors = np.full(n, base, dtype=np.uint64)
    factors[:1] = 1
    return np.cumprod(factors, dtype=np.uint64)


def corpus_hashes(lines: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(hashes of the lines, hashes of their spans of MIN_SPAN..MAX_SPAN characters), sorted unique
    int64, all at once: with prefix sums Q[k] = sum_{m<k} c_m P^-m over the concatenated text, the span
    c[i:j] hashes to P^(j-1) (Q[j] - Q[i]), whatever line it lies in."""
    if not lines:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    lengths = np.array([len(x) for x in lines], dtype=np.int64)
    codes = np.frombuffer("".join(lines).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64) + np.uint64(1)
    n = codes.size
    with np.errstate(over="ignore"):
        q = np.concatenate([np.zeros(1, dtype=np.uint64), np.cumsum(codes * _powers(P_INV, n), dtype=np.uint64)])
        p_pow = _powers(P, n)
        ends = np.cumsum(lengths)
        starts = ends - lengths
        line_hashes = p_pow[ends - 1] * (q[ends] - q[starts])
        line_of = np.repeat(np.arange(len(lines)), lengths)
        spans = []
        short = lengths[line_of] <= MAX_LINE  # positions in lines that get span hashes
        for size in range(MIN_SPAN, MAX_SPAN + 1):
            i = np.arange(n - size + 1)
            i = i[(line_of[i] == line_of[i + size - 1]) & short[i]]
            spans.append(p_pow[i + size - 1] * (q[i + size] - q[i]))
    return _sorted_unique(line_hashes.view(np.int64)), _sorted_unique(np.concatenate(spans).view(np.int64))


def _sorted_unique(a: np.ndarray) -> np.ndarray:
    """np.unique, by sorting: several times faster here than numpy's hash-based unique for int64."""
    a = np.sort(a)
    return a[np.concatenate([[True], a[1:] != a[:-1]])] if a.size else a


class Originality:
    """Lookups against the hashes of a training corpus; `fit` makes them, to_dict/from_dict carry them
    through the checkpoint (as sorted int64 tensors)."""

    def __init__(self, line_hashes: np.ndarray, span_hashes: np.ndarray, max_span: int = MAX_SPAN, hash: str = POLY):
        self.line_hashes = np.asarray(line_hashes, dtype=np.int64)  # sorted
        self.span_hashes = np.asarray(span_hashes, dtype=np.int64)
        self.max_span = int(max_span)
        self.hash_name = hash
        self.hash = HASHES[hash]

    @classmethod
    def fit(cls, train_lines: list[str]) -> "Originality":
        """Hashes of the training lines and of their substrings of MIN_SPAN to MAX_SPAN characters."""
        lines = {normalize_line(line) for line in train_lines}
        lines.discard("")
        return cls(*corpus_hashes(sorted(lines)), MAX_SPAN, POLY)

    def to_dict(self) -> dict:
        return {"line_hashes": torch.from_numpy(self.line_hashes.copy()),
                "span_hashes": torch.from_numpy(self.span_hashes.copy()),
                "max_span": self.max_span, "hash": self.hash_name}

    @classmethod
    def from_dict(cls, d: dict) -> "Originality":
        def array(t):  # a stored tensor is sorted already; 0.1's were too
            return np.sort(t.numpy()) if not bool((t[1:] >= t[:-1]).all()) else t.numpy()

        return cls(array(d["line_hashes"]), array(d["span_hashes"]), int(d["max_span"]), str(d.get("hash", BLAKE2B)))

    @staticmethod
    def _has(table: np.ndarray, h: int) -> bool:
        i = int(np.searchsorted(table, h))
        return i < table.size and int(table[i]) == h

    def is_training_line(self, line: str) -> bool:
        line = normalize_line(line)
        return bool(line) and self._has(self.line_hashes, self.hash(line))

    def longest_copy(self, line: str) -> int:
        """Length of the longest substring of `line` that occurs inside some training line."""
        line = normalize_line(line)
        best = MIN_SPAN - 1  # only spans of MIN_SPAN characters or more count
        for i in range(len(line)):
            # grow the span from i while it is still found: a span holding one not found is not found
            for j in range(i + best + 1, min(len(line), i + self.max_span) + 1):
                if self._has(self.span_hashes, self.hash(line[i:j])):
                    best = j - i
                else:
                    break
        return best if best >= MIN_SPAN else 0

    def report(self, text: str) -> dict:
        lines = [line for line in (normalize_line(x) for x in text.split("\n")) if line]
        copied = sum(self.is_training_line(line) for line in lines)
        return {
            "copied_lines": copied / len(lines) if lines else 0.0,
            "longest_copy": max((self.longest_copy(line) for line in lines), default=0),
        }
