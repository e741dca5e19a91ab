"""Whole words: whether a written line is made of words, by jieba's dictionary (349,000 words with
frequencies, text/tokenizer.word_frequencies).

A character model knows which character follows which, not where words are, and blind readers caught
it two ways:

    fused      two words run together on a character they share: 风火轮 + 轮廓 -> 风火轮廓,
               从前 + 前进 -> 从前进, 离开 + 开始 -> 离开始. A line is fused where a word A of two or
               more characters ends on the character a word B of two or more characters begins with,
               neither is rare (MIN_FREQ), and no dictionary word covers A and B together (风火轮廓 is
               not one; 大学生活 is read as 大学生 + 生活 too, and real lyrics do that now and then:
               report.py counts the held-out lines' share beside the songs').
    dangling   the line stops inside a phrase: its last word (the dictionary's best segmentation) is a
               single character that with the word before it only begins a longer word (飞檐走 of
               飞檐走壁, 尝一 of 尝一尝), or a character that mostly begins words and is seldom one
               alone (一, 半, 微: BOUND_SHARE).

`Words.penalty(line)` is what the line search subtracts from a candidate's score; `next_fuses` tells
the search, token by token, which next characters would fuse with the line's last word. Lookups are
memoised per line; the dictionary is read once per process.
"""
import math
import re
from functools import lru_cache

# Chosen on Jay Chou's lyrics: with these, 4 of the 5 fusions readers found are caught (从前进 is
# also 从 + 前进, and passes) and 2.2% of held-out real lines (1.0% of training lines) are flagged.
MIN_FREQ = 10  # a dictionary word this frequent counts (风火轮 is 11; 0 marks a prefix only)
ORPHAN_FREQ = 10_000  # a remainder this frequent as a word of its own (上 in 湖面上) is no orphan
MAX_WORD = 6  # longer dictionary words are idioms a fusion rarely involves; not looked for
BOUND_SHARE = 0.25  # a character alone below this share of the words it begins is bound (半 0.23, 微 0.21)
FUSED_PENALTY = 4.0  # nats off a candidate line's log-probability
DANGLING_PENALTY = 4.0
_HAN_RUN = re.compile(r"[\u3400-\u9fff]+")

_words = None


def shared_words() -> "Words":
    """One Words per process (jieba's dictionary read once)."""
    global _words
    if _words is None:
        from ..text.tokenizer import word_frequencies

        _words = Words(*word_frequencies())
    return _words


class Words:
    def __init__(self, freq: dict, total: int):
        self.freq, self.log_total = freq, math.log(total)
        self.begins: dict[str, int] = {}  # character -> total frequency of the longer words it begins
        for w, f in freq.items():
            if f and len(w) >= 2:
                self.begins[w[0]] = self.begins.get(w[0], 0) + f
        self.second: dict[str, list[str]] = {}  # character -> the characters it makes a 2-character word with
        for w, f in freq.items():
            if len(w) == 2 and f >= MIN_FREQ:
                self.second.setdefault(w[0], []).append(w[1])
        self._fusing_next = lru_cache(maxsize=65536)(self._fusing_next)
        self.fused = lru_cache(maxsize=65536)(self._fused)
        self.dangling = lru_cache(maxsize=65536)(self._dangling)

    def word(self, w: str) -> bool:
        return self.freq.get(w, 0) >= MIN_FREQ

    def segment(self, run: str) -> list[str]:
        """The most probable split of a run of Han characters into dictionary words (jieba's route,
        without its HMM for unknown words: an unknown character stands alone)."""
        n = len(run)
        best = [(0.0, n)] * (n + 1)
        for i in range(n - 1, -1, -1):
            options = []
            for j in range(i + 1, min(n, i + MAX_WORD) + 1):
                f = self.freq.get(run[i:j])
                if f is None and j > i + 1:
                    break  # not even a prefix: no longer word starts here
                if f or j == i + 1:
                    options.append((math.log(f or 1) - self.log_total + best[j][0], j))
            best[i] = max(options)
        words, i = [], 0
        while i < n:
            j = best[i][1]
            words.append(run[i:j])
            i = j
        return words

    def _fused(self, line: str) -> bool:
        return any(self._fused_run(run) for run in _HAN_RUN.findall(line))

    def _fused_run(self, s: str) -> bool:
        bounds, at = {0}, 0  # where the best segmentation puts word boundaries
        for w in self.segment(s):
            at += len(w)
            bounds.add(at)
        for i in range(1, len(s) - 1):  # s[i]: the shared character
            for a in range(max(0, i - MAX_WORD + 1), i):
                if not self.word(s[a:i + 1]):
                    continue
                for b in range(i + 2, min(len(s), i + MAX_WORD) + 1):
                    if not self.word(s[i:b]) or self._covered(s, a, b):
                        continue
                    # one word kept whole and the other's remainder split off as an orphan
                    if {a, i + 1, b} <= bounds and self.freq.get(s[i + 1:b], 0) < ORPHAN_FREQ:
                        return True
                    if {a, i, b} <= bounds and self.freq.get(s[a:i], 0) < ORPHAN_FREQ:
                        return True
        return False

    def _covered(self, s: str, a: int, b: int) -> bool:
        """Whether one dictionary word holds s[a:b] (风火轮 + 轮廓 has none; 大学生 + 生活 neither)."""
        for c in range(max(0, b - MAX_WORD), a + 1):
            for d in range(b, min(len(s), c + MAX_WORD) + 1):
                if self.freq.get(s[c:d], 0) > 0:
                    return True
        return False

    def share(self, c: str) -> float:
        """How often the character is a word alone, against the longer words it begins."""
        alone = self.freq.get(c, 0)
        return alone / (alone + self.begins.get(c, 0)) if alone else 0.0

    def _dangling(self, line: str) -> bool:
        runs = _HAN_RUN.findall(line)
        if not runs or not line.rstrip().endswith(runs[-1]):
            return False
        words = self.segment(runs[-1])
        last = words[-1]
        if len(last) != 1:
            return False
        share = self.share(last)
        if len(words) == 1 and share < BOUND_SHARE:  # one bound character after a space: 让我们 半
            return True
        # the last two words only begin a longer one: 飞檐走(壁), 尝一(尝); "X我" (爱我中华) is a whole end
        return len(words) >= 2 and self.freq.get(words[-2] + last) == 0 and (len(words[-2]) >= 2 or share < 0.5)

    def penalty(self, line: str) -> float:
        """Nats to take off a candidate line for fused words and a dangling end."""
        return FUSED_PENALTY * self.fused(line) + DANGLING_PENALTY * self.dangling(line)

    def fusing_next(self, tail: str) -> tuple[str, ...]:
        """The characters that, written after `tail` (the line so far), would fuse a word ending on its
        last character with a two-character word beginning there (风火轮 -> 廓): what the line search
        penalises as it goes; the whole line is checked again when it is done (fused)."""
        run = _HAN_RUN.findall(tail[-MAX_WORD:])
        return self._fusing_next(run[-1]) if run and tail.endswith(run[-1]) else ()

    def _fusing_next(self, run: str) -> tuple[str, ...]:
        last = run[-1]
        heads = [run[-m:] for m in range(2, len(run) + 1) if self.word(run[-m:])]  # words ending on it
        if not heads:
            return ()
        out = []
        for c in self.second.get(last, ()):
            for a in heads:  # a word holding a + c (or a prefix of one) makes it no fusion
                if self.freq.get(a + c) is None and (self.freq.get(c, 0) < ORPHAN_FREQ
                                                     or self.freq.get(a[:-1], 0) < ORPHAN_FREQ):
                    out.append(c)
                    break
        return tuple(out)
