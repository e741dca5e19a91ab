"""A song's theme (--theme TEXT, --keywords W1,W2): what holds its lines to one subject.

    expand(text, keywords, k, vectors, writable)   the theme: its words and their neighbours in
                                                    modern Chinese word vectors (text/wordvectors.py)
    plan(words, n_lines, rng)                       a keyword (or None) per line, as Jiuge plans one
    fit(line, theme, before)                        how well a line fits the theme and the lines before
                                                    (song.py adds it when it ranks candidates)
    keyword_bias(keyword, tokens, device)           KeywordBias: the logit bonus that writes a line's
                                                    keyword into it while it is searched (lines.py)

The keyword enters the line while it is written: every step, the tokens that begin it get
FIRST_BONUS nats, and once a row has written a prefix of it, the tokens that continue it get
NEXT_BONUS (a row that holds the whole keyword gets nothing more). Reranking finished candidates by
fit alone moved a blind panel nowhere; the bias makes the candidates themselves carry the subject.
"""
import random
import re
from dataclasses import dataclass, field

import torch

from ..errors import OptionError
from ..text import wordvectors
from ..text.tokenizer import normalize_line, segment

FIRST_BONUS = 5.0  # nats for a token that begins the line's keyword (2.0 left it out of a Jay Chou model's lines)
NEXT_BONUS = 8.0  # for one that continues it once a prefix is written
FIT_WEIGHT = 1.0  # nats of mean log-probability per unit of cosine, when candidates are ranked
BEFORE_WEIGHT = 0.5  # the lines before count this much beside the theme in a line's fit
NEIGHBOURS = 12  # related words a theme expands to
KEYWORD_SHARE = 0.5  # of the lines written, about this many carry a keyword
MAX_WORD_CHARS = 4
_HAN = re.compile(r"[\u4e00-\u9fff]+")


@dataclass
class Theme:
    text: str  # what the user gave (or the start word)
    words: list[str]  # keywords first, then the theme's words and neighbours, closest first
    vector: object  # (D,) float32 unit vector: the mean of the theme's words
    vectors: object = field(repr=False, default=None)  # the WordVectors it was made from


def parse_keywords(text: str | None) -> list[str]:
    """"月色,夜空，思念" -> ["月色", "夜空", "思念"] (commas, Chinese commas or spaces)."""
    return [w for w in re.split(r"[\s,，、]+", text or "") if w]


def expand(text: str, keywords: list[str], k: int, vectors, writable) -> Theme:
    """The theme of `text` and `keywords`: the mean vector of their words (jieba's segments; a word
    the vectors lack counts by its characters), and its k nearest words that the model can write
    (`writable(word)`), Han characters only, at most MAX_WORD_CHARS long."""
    parts = []
    for piece in [normalize_line(text)] + keywords:
        for word in segment(piece):
            parts += [word] if word in vectors else [ch for ch in word if ch in vectors]
    if not parts:
        raise OptionError(f"theme: no word of {' '.join([text] + keywords)!r} has a word vector")
    import numpy as np

    mean = np.mean([vectors.vector(w).astype(np.float32) for w in parts], axis=0)
    mean /= max(float(np.linalg.norm(mean)), 1e-12)

    def usable(w):
        return _HAN.fullmatch(w) is not None and len(w) <= MAX_WORD_CHARS and writable(w)

    near = [w for w, _ in vectors.nearest(mean, k, usable)]
    own = [w for w in keywords if writable(w)] + [w for w in parts if usable(w)]
    return Theme(text, list(dict.fromkeys(own + near)), mean, vectors)


def plan(words: list[str], n_lines: int, rng: random.Random) -> list[str | None]:
    """A keyword or None for each of n_lines written lines: about KEYWORD_SHARE of them, spread
    evenly (every other line, from the second: the first holds the start word), each a different
    word drawn from the closest ones, so verse and chorus both carry the subject."""
    if not words or n_lines <= 0:
        return [None] * n_lines
    slots = list(range(1, n_lines, round(1 / KEYWORD_SHARE))) or [0]
    pool = words[:max(2 * len(slots), 4)]
    chosen = rng.sample(pool, min(len(slots), len(pool)))
    out: list[str | None] = [None] * n_lines
    for i, slot in enumerate(slots):
        out[slot] = chosen[i % len(chosen)]
    return out


def line_vector(line: str, vectors):
    """The mean unit vector of a line's words (a word the vectors lack by its characters); None when none has one."""
    import numpy as np

    found = []
    for word in segment(normalize_line(line)):
        found += [word] if word in vectors else [ch for ch in word if ch in vectors]
    if not found:
        return None
    mean = np.mean([vectors.vector(w).astype(np.float32) for w in found], axis=0)
    return mean / max(float(np.linalg.norm(mean)), 1e-12)


def target(theme: Theme, before: list[str] = ()):
    """The unit vector lines are fitted to: the theme's, the lines before mixed in at BEFORE_WEIGHT."""
    import numpy as np

    prev = [u for u in (line_vector(b, theme.vectors) for b in before if b) if u is not None]
    if not prev:
        return theme.vector
    mixed = theme.vector + BEFORE_WEIGHT * np.mean(prev, axis=0)
    return mixed / max(float(np.linalg.norm(mixed)), 1e-12)


def fit(line: str, theme: Theme, before: list[str] = (), to=None) -> float:
    """Cosine of the line's vector with target(theme, before) (or `to`, that target already made);
    0 when no word of the line has a vector."""
    v = line_vector(line, theme.vectors)
    return 0.0 if v is None else float(v @ (to if to is not None else target(theme, before)))


class KeywordBias:
    """The logit bonus (B, V) for rows of a line being searched toward `keyword`.

    table[j] holds the bonus after the line has written keyword[:j] (j = 0: nothing of it yet);
    table[len] is zero (written whole)."""

    def __init__(self, keyword: str, tokens: list[str], device):
        self.keyword, self.tokens = keyword, tokens
        n = len(keyword)
        table = torch.zeros(n + 1, len(tokens))
        for i, t in enumerate(tokens):
            if i < 3 or not t.strip():  # the specials and the space
                continue
            if keyword.startswith(t) or t.startswith(keyword) or keyword in t:
                table[0, i] = FIRST_BONUS
            for j in range(1, n):
                rest = keyword[j:]
                if rest.startswith(t) or t.startswith(rest):
                    table[j, i] = NEXT_BONUS
        self.table = table.to(device)

    def __call__(self, toks: torch.Tensor) -> torch.Tensor:
        """toks (B, t): the rows' tokens in this line so far -> (B, V) bonus."""
        kw, n = self.keyword, len(self.keyword)
        where = []
        for row in toks.tolist():
            text = "".join(self.tokens[t] for t in row).replace(" ", "")
            if kw in text:
                where.append(n)
                continue
            where.append(next((j for j in range(n - 1, 0, -1) if text.endswith(kw[:j])), 0))
        return self.table[torch.tensor(where, device=self.table.device)]


_biases: dict = {}


def keyword_bias(keyword: str | None, tokens: list[str], device) -> KeywordBias | None:
    """The line's KeywordBias (made once per keyword, vocabulary and device); None without a keyword."""
    if not keyword:
        return None
    key = (keyword, id(tokens), str(device))
    if key not in _biases:
        if len(_biases) > 256:
            _biases.clear()
        _biases[key] = KeywordBias(keyword, tokens, device)
    return _biases[key]


def song_theme(start: str, song, vocab) -> Theme | None:
    """The theme a SongConfig asks for (its theme text, else the start word, when it gives a theme or
    keywords); None when it asks for none."""
    if song.theme is None and song.keywords is None:
        return None
    index = vocab.index

    def writable(word: str) -> bool:
        return word in index or all(ch in index for ch in word)

    keywords = parse_keywords(song.keywords)
    unknown = [w for w in keywords if not writable(w)]
    if unknown:
        raise OptionError(f"keywords: the model cannot write {' '.join(unknown)} (not in its vocabulary)")
    return expand(song.theme or start, keywords, NEIGHBOURS, wordvectors.load(), writable)
