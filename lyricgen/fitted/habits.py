"""The corpus's habits: how long its lines are, how often they rhyme, which rhymes it uses, how many
lines its sections have. Fitted on the training part, carried in the checkpoint, followed by
generation (writing/song.py) and measured against by the report (writing/report.py).

    line_chars         P(a line has n characters), n = 0 .. MAX_CHARS (longer lines count as MAX_CHARS)
    rhyme_adjacent     share of adjacent line pairs (inside a section) that rhyme
    rhyme_alternate    share of pairs two lines apart (inside a section) that rhyme: the ABAB habit
    rhyme_alternate_only   ... of those, the share whose middle line does not rhyme with the last
    rhyme_classes      share of lines ending in each 十三辙 class (text/rhyme.py NAMES order)
    section_lines      P(a section has n lines), when the corpus marks sections with blank lines
    token_classes      the rhyme class of every vocabulary entry (its last Han character, -1 for none),
                       so generation needs no pypinyin on its hot path

Characters are counted without spaces. A checkpoint written before habits existed gets
`Habits.from_vocab`: the token classes and the mean line length come from its vocabulary (its
counts hold the number of lines and of every entry), the rest are DEFAULTS, typical of Mandarin pop
lyrics (the bundled corpus and the Jay Chou corpus both rhyme 0.56-0.57 of adjacent pairs).
"""
import math
from dataclasses import dataclass, field

import torch

from ..text.rhyme import NAMES, rhyme_id

MAX_CHARS = 64  # longer lines are counted as this long
FIT_LINES = 50_000  # the rhyme habits are read from at most this many lines, spread over the corpus
DEFAULTS = {"rhyme_adjacent": 0.5, "rhyme_alternate": 0.45, "rhyme_alternate_only": 0.15, "section_lines": 4,
            "line_chars_cv": 0.38}  # the spread (sd / mean) of line lengths in both corpora above
FRAGMENT_CHARS = 2  # a line this short is a fragment: never planned unless the corpus is full of them


def count_chars(text: str) -> int:
    return len(text.replace(" ", "").replace("\u3000", ""))


def _histogram(values, size: int) -> list[float]:
    counts = [0] * size
    for v in values:
        counts[min(v, size - 1)] += 1
    total = sum(counts)
    return [c / total for c in counts] if total else []


@dataclass
class Habits:
    line_chars: list[float]
    rhyme_adjacent: float = DEFAULTS["rhyme_adjacent"]
    rhyme_alternate: float = DEFAULTS["rhyme_alternate"]
    rhyme_alternate_only: float = DEFAULTS["rhyme_alternate_only"]
    rhyme_classes: list[float] = field(default_factory=lambda: [1 / len(NAMES)] * len(NAMES))
    section_lines: list[float] = field(default_factory=list)  # empty: the corpus has no blank lines
    token_classes: list[int] = field(default_factory=list)
    source: str = "corpus"  # or "vocabulary": fitted from a checkpoint's vocabulary and DEFAULTS

    # -- fitting -----------------------------------------------------------------------------------
    @classmethod
    def fit(cls, train_lines: list[str], vocab) -> "Habits":
        """From the training part's lines (blank lines are section or song boundaries)."""
        lines = [line.strip() for line in train_lines]
        body = [line for line in lines if line]
        line_chars = _histogram((count_chars(line) for line in body), MAX_CHARS + 1)
        sample = _spread(lines, FIT_LINES)
        ids = [rhyme_id(line) if line else None for line in sample]  # None: a blank line
        adjacent, alternate, alternate_only = _rhyme_rates(ids)
        classes = [0] * len(NAMES)
        for i in ids:
            if i is not None and i >= 0:
                classes[i] += 1
        total = sum(classes)
        sections = _section_sizes(lines)
        return cls(line_chars=line_chars, rhyme_adjacent=adjacent, rhyme_alternate=alternate,
                   rhyme_alternate_only=alternate_only,
                   rhyme_classes=[c / total for c in classes] if total else [1 / len(NAMES)] * len(NAMES),
                   section_lines=_histogram(sections, max(sections) + 1) if sections else [],
                   token_classes=token_classes(vocab), source="corpus")

    @classmethod
    def from_vocab(cls, vocab) -> "Habits":
        """For a checkpoint without habits: the mean characters per line from the vocabulary's counts
        (line breaks and entries), spread like DEFAULTS' lyrics; the classes of the characters
        written, weighted by their counts, for the line-end classes; DEFAULTS for the rest."""
        lines = vocab.counts[vocab.line_break_id]
        chars = sum(n * count_chars(t) for i, (t, n) in enumerate(zip(vocab.tokens, vocab.counts)) if i >= 3)
        mean = chars / lines if lines > 0 and chars > 0 else 9.0
        classes = token_classes(vocab)
        weights = [0.0] * len(NAMES)
        for c, n in zip(classes, vocab.counts):
            if c >= 0:
                weights[c] += n
        total = sum(weights)
        return cls(line_chars=_spread_around(mean, DEFAULTS["line_chars_cv"]),
                   rhyme_classes=[w / total for w in weights] if total else [1 / len(NAMES)] * len(NAMES),
                   token_classes=classes, source="vocabulary")

    # -- what generation reads ---------------------------------------------------------------------
    @property
    def mean_chars(self) -> float:
        return sum(n * p for n, p in enumerate(self.line_chars))

    @property
    def blank_lines(self) -> bool:
        """Whether the corpus separates sections with blank lines (so the model knows them)."""
        return bool(self.section_lines)

    @property
    def lines_per_section(self) -> int:
        """The median section's length, or DEFAULTS' when the corpus has no sections."""
        if not self.section_lines:
            return DEFAULTS["section_lines"]
        total = 0.0
        for n, p in enumerate(self.section_lines):
            total += p
            if total >= 0.5:
                return max(n, 1)
        return DEFAULTS["section_lines"]

    @property
    def rhyme_chance(self) -> float:
        """How often two lines rhyme by chance: the sum of the squared class shares."""
        return sum(p * p for p in self.rhyme_classes)

    def char_bounds(self) -> tuple[int, int]:
        """The hard bounds on characters per line: the corpus's 1st and 99th percentiles, never a
        fragment (FRAGMENT_CHARS or less) unless over 5% of its lines are."""
        low, high = _quantile(self.line_chars, 0.01), _quantile(self.line_chars, 0.99)
        if sum(self.line_chars[:FRAGMENT_CHARS + 1]) <= 0.05:
            low = max(low, FRAGMENT_CHARS + 1)
        return max(low, 1), max(high, low, 1)

    # -- the checkpoint ----------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"line_chars": list(self.line_chars), "rhyme_adjacent": self.rhyme_adjacent,
                "rhyme_alternate": self.rhyme_alternate, "rhyme_alternate_only": self.rhyme_alternate_only,
                "rhyme_classes": list(self.rhyme_classes), "section_lines": list(self.section_lines),
                "token_classes": torch.tensor(self.token_classes, dtype=torch.int8), "source": self.source}

    @classmethod
    def from_dict(cls, d: dict) -> "Habits":
        classes = d.get("token_classes")
        return cls(line_chars=[float(x) for x in d["line_chars"]],
                   rhyme_adjacent=float(d.get("rhyme_adjacent", DEFAULTS["rhyme_adjacent"])),
                   rhyme_alternate=float(d.get("rhyme_alternate", DEFAULTS["rhyme_alternate"])),
                   rhyme_alternate_only=float(d.get("rhyme_alternate_only", DEFAULTS["rhyme_alternate_only"])),
                   rhyme_classes=[float(x) for x in d.get("rhyme_classes") or [1 / len(NAMES)] * len(NAMES)],
                   section_lines=[float(x) for x in d.get("section_lines") or []],
                   token_classes=classes.tolist() if isinstance(classes, torch.Tensor) else list(classes or []),
                   source=str(d.get("source", "corpus")))


def token_classes(vocab) -> list[int]:
    """Each entry's rhyme class (its last Han character's, read in the entry's own context)."""
    return [rhyme_id(t) if i >= 3 else -1 for i, t in enumerate(vocab.tokens)]


def _spread(lines: list[str], limit: int) -> list[str]:
    """At most about `limit` lines: whole stretches spread evenly over the corpus, so that the pairs
    inside them are the corpus's own (a corpus this size gives the rates to +-0.005)."""
    if len(lines) <= limit:
        return lines
    chunk, chunks = 200, max(limit // 200, 1)
    step = len(lines) // chunks
    return [line for k in range(chunks) for line in lines[k * step:k * step + chunk] + [""]]


def _rhyme_rates(ids: list) -> tuple[float, float, float]:
    """(adjacent, alternate, alternate only) rates from the line classes of a text; None = blank."""
    adjacent = [0, 0]
    alternate = [0, 0, 0]  # pairs, rhyming, rhyming while the middle line does not rhyme with the last
    section: list[int] = []
    for i in ids + [None]:
        if i is None:
            for k in range(1, len(section)):
                adjacent[0] += 1
                adjacent[1] += section[k] >= 0 and section[k] == section[k - 1]
                if k >= 2:
                    alternate[0] += 1
                    hit = section[k] >= 0 and section[k] == section[k - 2]
                    alternate[1] += hit
                    alternate[2] += hit and section[k] != section[k - 1]
            section = []
        else:
            section.append(i)
    if not adjacent[0]:
        return DEFAULTS["rhyme_adjacent"], DEFAULTS["rhyme_alternate"], DEFAULTS["rhyme_alternate_only"]
    if not alternate[0]:
        return adjacent[1] / adjacent[0], DEFAULTS["rhyme_alternate"], DEFAULTS["rhyme_alternate_only"]
    return adjacent[1] / adjacent[0], alternate[1] / alternate[0], alternate[2] / alternate[0]


def _section_sizes(lines: list[str]) -> list[int]:
    """Lines per blank-separated block; [] when the corpus has (almost) no blank lines."""
    sizes, run = [], 0
    for line in lines + [""]:
        if line:
            run += 1
        elif run:
            sizes.append(run)
            run = 0
    body = sum(sizes)
    return sizes if len(sizes) >= 2 and body / len(sizes) <= 32 else []


def _quantile(dist: list[float], q: float) -> int:
    total = 0.0
    for n, p in enumerate(dist):
        total += p
        if total >= q:
            return n
    return len(dist) - 1


def _spread_around(mean: float, cv: float) -> list[float]:
    """A discretised log-normal with this mean and coefficient of variation, over 1 .. MAX_CHARS."""
    sigma = math.sqrt(math.log(1 + cv * cv))
    mu = math.log(mean) - sigma * sigma / 2
    dens = [0.0] + [math.exp(-(math.log(n) - mu) ** 2 / (2 * sigma * sigma)) / n for n in range(1, MAX_CHARS + 1)]
    total = sum(dens)
    return [d / total for d in dens]

