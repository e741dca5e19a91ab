"""How much of a generated text is copied from the training corpus, without storing the corpus.

The checkpoint keeps 64-bit hashes only: one per training line, and one per substring (MIN_SPAN to
MAX_SPAN characters) of every training line up to MAX_LINE characters long. From those, a text's
share of lines that occur verbatim in training and its longest copied span (within a line, in
characters; spans shorter than MIN_SPAN count as 0) can be computed exactly, up to hash collisions
(about 1 in 10^13 per lookup at these sizes).

Hashes are not encryption: whoever holds the checkpoint can test whether a given phrase of
MIN_SPAN or more characters occurs in the training corpus, and from a known phrase extend it. Share
checkpoints of a corpus you may not redistribute with that in mind.
"""
import hashlib

import torch

from ..text.tokenizer import normalize_line

MAX_SPAN = 32  # longer copied spans are reported as MAX_SPAN (lines longer than this still count whole)
MIN_SPAN = 4  # shorter shared spans are everyday phrases, not copies; it also keeps guessing costly
MAX_LINE = 256  # longer "lines" (a file without line breaks) get a line hash but no span hashes


def text_hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little", signed=True)


class Originality:
    """Lookups against the hashes of a training corpus; `fit` makes them, to_dict/from_dict carry them
    through the checkpoint (as sorted int64 tensors)."""

    def __init__(self, line_hashes, span_hashes, max_span: int = MAX_SPAN):
        self.line_hashes = set(line_hashes)
        self.span_hashes = set(span_hashes)
        self.max_span = int(max_span)

    @classmethod
    def fit(cls, train_lines: list[str]) -> "Originality":
        """Hashes of the training lines and of their substrings of MIN_SPAN to MAX_SPAN characters."""
        lines = {normalize_line(line) for line in train_lines}
        lines.discard("")
        spans = set()
        for line in lines:
            n = len(line)
            if n > MAX_LINE:
                continue
            for i in range(n - MIN_SPAN + 1):
                for j in range(i + MIN_SPAN, min(n, i + MAX_SPAN) + 1):
                    spans.add(line[i:j])
        return cls({text_hash(x) for x in lines}, {text_hash(x) for x in spans}, MAX_SPAN)

    def to_dict(self) -> dict:
        return {
            "line_hashes": torch.tensor(sorted(self.line_hashes), dtype=torch.long),
            "span_hashes": torch.tensor(sorted(self.span_hashes), dtype=torch.long),
            "max_span": self.max_span,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Originality":
        return cls(d["line_hashes"].tolist(), d["span_hashes"].tolist(), int(d["max_span"]))

    def is_training_line(self, line: str) -> bool:
        line = normalize_line(line)
        return bool(line) and text_hash(line) in self.line_hashes

    def longest_copy(self, line: str) -> int:
        """Length of the longest substring of `line` that occurs inside some training line."""
        line = normalize_line(line)
        best = MIN_SPAN - 1  # only spans of MIN_SPAN characters or more count
        for i in range(len(line)):
            # grow the span from i while it is still found; spans only shrink their chance as they grow
            for j in range(i + best + 1, min(len(line), i + self.max_span) + 1):
                if text_hash(line[i:j]) in self.span_hashes:
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
