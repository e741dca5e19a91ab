"""Phrases a song should not take from elsewhere: long spans of the training corpus (collage), and the
4-character phrases of the songs written just before it (stock phrases).

CopyGuard bans, during the line search, a token that would stretch a span copied from a training
line past COPY_BOUND characters. The bound comes from the corpus's own reuse: of 582 held-out Jay Chou
lines (the last tenth), 99% share at most 5 characters with the first nine tenths and 4 lines
(choruses sung again in another song) share 8 or 9; so 6 characters is what a songwriter's new line
borrows, and more is a quotation. It reads the checkpoint's originality hashes (fitted/originality.py):
the hash of a window plus a token is one multiply-add of the window's hash, so all tokens are tested
at once with one binary search. Checkpoints of lyricgen 0.1 (blake2b hashes) are not guarded here.

PhraseMemory remembers the 4-character phrases of the last `size` songs a writer wrote (per Lyricist,
so per process or server): a candidate line pays STOCK_PENALTY nats for each earlier song holding each
of its phrases, and one whose phrase is already in MAX_SONGS of them is passed over while anything
else is left. The line search reads the same memory as it writes (`continuations`): a character that
would complete a remembered phrase costs the same penalty there, and one completing a phrase of
MAX_SONGS songs is banned, so a beam cannot fill with variants of one stock line and leave the
choice nothing else (a report's greedy songs had 能不能给我一首歌 in 6 of 40 with the check at the
choice alone). It is deterministic for a given sequence of songs.
"""
from collections import Counter, deque

import numpy as np

from ..fitted.originality import MIN_SPAN, POLY, P, poly_hash
from ..text.tokenizer import normalize_line

COPY_BOUND = 6  # characters a line may share with a training line (see above)
PHRASE = 4  # characters in a stock phrase
STOCK_PENALTY = 3.0  # nats off a candidate line per earlier song holding one of its phrases
MAX_SONGS = 3  # a phrase already in this many remembered songs is not written again, if avoidable
MASK64 = (1 << 64) - 1


class CopyGuard:
    def __init__(self, originality, token_texts: list[str], bound: int = COPY_BOUND):
        self.bound = bound
        self.spans = originality.span_hashes
        texts = [t if i >= 2 else "" for i, t in enumerate(token_texts)]  # "<unk>" and "\n" copy nothing; " " does
        self.hashes = np.array([poly_hash(t) & MASK64 for t in texts], dtype=np.uint64)  # (V,)
        self.shift = np.array([pow(P, len(t), 1 << 64) for t in texts], dtype=np.uint64)  # P^len(token)
        self.empty = np.array([not t for t in texts])

    @classmethod
    def of(cls, originality, token_texts, bound: int = COPY_BOUND):
        """A guard, or None when there are no hashes to guard with (or they are 0.1's blake2b)."""
        if originality is None or originality.hash_name != POLY or bound < MIN_SPAN:
            return None
        return cls(originality, token_texts, bound)

    def _has(self, h: int) -> bool:
        i = int(np.searchsorted(self.spans, h))
        return i < self.spans.size and int(self.spans[i]) == h

    def banned(self, text: str) -> np.ndarray | None:
        """(V,) bool: the tokens that, written after `text` (the line so far), would make its last
        bound + 1 or more characters a span of a training line; None when none would."""
        window = text[-self.bound:]
        if len(window) < self.bound or not self._has(poly_hash(window)):
            return None  # the window is no training span: no extension of it is either
        h = np.uint64(poly_hash(window) & MASK64)
        with np.errstate(over="ignore"):
            joined = (h * self.shift + self.hashes).view(np.int64)
        i = np.searchsorted(self.spans, joined).clip(max=self.spans.size - 1)
        return (self.spans[i] == joined) & ~self.empty


def phrases_of(text: str) -> set[str]:
    """The 4-character phrases inside the lines of a text (spaces left out)."""
    out = set()
    for line in text.split("\n"):
        line = normalize_line(line).replace(" ", "")
        out.update(line[i:i + PHRASE] for i in range(len(line) - PHRASE + 1))
    return out


class PhraseMemory:
    def __init__(self, size: int):
        self.songs: deque = deque(maxlen=max(size, 0))  # each song's phrases, oldest first
        self.count: Counter = Counter()  # phrase -> remembered songs holding it
        self._next: dict | None = None  # continuations(), built on first use after a change

    def add(self, text: str) -> None:
        if not self.songs.maxlen:
            return
        if len(self.songs) == self.songs.maxlen:
            for g in self.songs[0]:  # the oldest song is forgotten
                self.count[g] -= 1
                if not self.count[g]:
                    del self.count[g]
        grams = phrases_of(text)
        self.songs.append(grams)
        self.count.update(grams)
        self._next = None

    def continuations(self) -> dict[str, dict[str, int]]:
        """The first PHRASE - 1 characters of each remembered phrase -> {its last character: the songs
        holding it}: what the line search reads to steer away from stock phrases while it writes."""
        nxt = self._next
        if nxt is None:  # built whole, then published: a server's workers share this memory
            nxt = {}
            for g, n in self.count.items():
                nxt.setdefault(g[:-1], {})[g[-1]] = n
            self._next = nxt
        return nxt

    def penalty(self, line: str) -> float:
        return STOCK_PENALTY * sum(self.count[g] for g in phrases_of(line))

    def stock(self, line: str) -> bool:
        """Whether the line holds a phrase already in MAX_SONGS remembered songs."""
        return any(self.count[g] >= MAX_SONGS for g in phrases_of(line))
