"""Vocabulary: single characters, or a hybrid of frequent words and single characters, with
deterministic ids.

With unit "char" every character is an entry and every word is spelled. With unit "word", words
seen at least `min_freq` times are entries; rarer words are spelled as their characters, so
every character seen in training stays representable and the model can still write rare words.
`<unk>` stands only for characters never seen. Building is two linear passes (count the words, then
count the encoded units); ids are ordered by (-count, token), so the same corpus and settings always
give the same ids, and frequent tokens get small ids.

A base model's vocabulary grows for fine-tuning (`grow`): its ids stay, and the tokens a scratch run
on the new corpus would have and it lacks follow, in that run's order; counts are the new corpus's.
"""
from collections import Counter

import numpy as np

from .tokenizer import LINE_BREAK, SPACE

UNK = "<unk>"
SPECIALS = (UNK, LINE_BREAK, SPACE)


class Vocab:
    def __init__(self, tokens: list[str], counts: list[int] | None = None):
        if list(tokens[: len(SPECIALS)]) != list(SPECIALS):
            raise ValueError(f"vocabulary must start with {SPECIALS!r}")
        if len(set(tokens)) != len(tokens):
            raise ValueError("vocabulary has duplicate entries")
        self.tokens = list(tokens)
        self.counts = list(counts) if counts is not None else [0] * len(tokens)
        self.index = {tok: i for i, tok in enumerate(self.tokens)}
        self.unk_id = self.index[UNK]
        self.line_break_id = self.index[LINE_BREAK]

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self.index

    @classmethod
    def build(cls, token_lines: list[list[str]], min_freq: int, unit: str = "word") -> "Vocab":
        words = Counter(tok for line in token_lines for tok in line)
        return cls.from_counts(words, len(token_lines), min_freq, unit)

    @classmethod
    def build_stream(cls, stream, min_freq: int, unit: str = "word") -> "Vocab":
        """build() from a TokenStream (tokenizer.py): the same vocabulary, from its counts."""
        return cls.from_counts(dict(zip(stream.table, stream.counts().tolist())), stream.num_lines, min_freq, unit)

    @classmethod
    def from_counts(cls, words: dict[str, int], line_breaks: int, min_freq: int, unit: str = "word") -> "Vocab":
        """The vocabulary of a text with these word counts and this many lines."""
        if min_freq < 1:
            raise ValueError("min_freq must be at least 1")
        if unit not in ("char", "word"):
            raise ValueError(f"unit must be char or word, not {unit!r}")
        kept = {w for w, n in words.items() if (unit == "word" and n >= min_freq) or len(w) == 1}
        units: Counter = Counter()
        for w, n in words.items():
            if w in kept:
                units[w] += n
            else:
                for ch in w:
                    units[ch] += n
        for w in kept:  # characters inside kept words stay representable even if never alone
            for ch in w:
                units.setdefault(ch, 0)
        for special in SPECIALS:
            units.pop(special, None)
        ordered = sorted(units.items(), key=lambda kv: (-kv[1], kv[0]))
        spaces = words.get(SPACE, 0)
        return cls(list(SPECIALS) + [t for t, _ in ordered], [0, line_breaks, spaces] + [n for _, n in ordered])

    def grow(self, other: "Vocab") -> "Vocab":
        """This vocabulary with `other`'s tokens it lacks appended (in other's order), so old ids keep
        their meaning; the counts are other's (0 for a token other lacks): the corpus other was built
        on is the one the side models are then fitted on (unk.py counts its singletons)."""
        new = [t for t in other.tokens if t not in self.index]
        theirs = dict(zip(other.tokens, other.counts))
        tokens = self.tokens + new
        return Vocab(tokens, [theirs.get(t, 0) for t in tokens])

    def encode(self, tokens: list[str]) -> tuple[list[int], int]:
        """Ids for tokens, spelling unknown words as characters.

        Returns (ids, unk_chars): a run of unseen characters becomes one `<unk>` id, and unk_chars
        counts the characters those `<unk>` ids stand for (evaluation charges for them).
        """
        ids: list[int] = []
        unk_chars = 0
        index = self.index
        in_unknown_run = False  # jieba splits unseen characters apart: a run spans tokens
        for tok in tokens:
            i = index.get(tok)
            if i is not None:
                ids.append(i)
                in_unknown_run = False
                continue
            for ch in tok:
                i = index.get(ch)
                if i is not None:
                    ids.append(i)
                    in_unknown_run = False
                    continue
                if not in_unknown_run:
                    ids.append(self.unk_id)
                    in_unknown_run = True
                unk_chars += 1
        return ids, unk_chars

    def encode_lines(self, token_lines: list[list[str]]) -> tuple[list[int], int]:
        """Ids of whole lyric lines, each followed by the line break."""
        ids: list[int] = []
        unk_chars = 0
        for line in token_lines:
            line_ids, unk = self.encode(line)
            ids.extend(line_ids)
            ids.append(self.line_break_id)
            unk_chars += unk
        return ids, unk_chars

    def encode_stream(self, stream) -> tuple[np.ndarray, int]:
        """encode_lines() of a TokenStream, vectorised: (ids (N,) int64, unk_chars).

        Each distinct token is encoded once; the stream is then its tokens' encodings laid end to
        end, a line break for each LINE_END, and an `<unk>` right after another `<unk>` dropped
        (encode_lines merges a run of unseen characters into one, across tokens, within a line)."""
        from .tokenizer import LINE_END

        table = list(stream.table) + [None]  # the last entry stands for the line break
        pieces = [self.encode([t])[0] if t is not None else [self.line_break_id] for t in table]
        unk = np.array([sum(ch not in self.index for ch in t) if t is not None and t not in self.index else 0
                        for t in table], dtype=np.int64)
        lengths = np.array([len(p) for p in pieces], dtype=np.int64)
        flat = np.array([i for p in pieces for i in p], dtype=np.int64)
        entry = np.where(stream.ids == LINE_END, len(table) - 1, stream.ids).astype(np.int64)
        count = lengths[entry]
        starts = np.cumsum(lengths) - lengths
        offsets = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
        ids = flat[np.repeat(starts[entry], count) + offsets]
        repeated_unk = (ids == self.unk_id) & (np.concatenate([[-1], ids[:-1]]) == self.unk_id)
        return ids[~repeated_unk], int(unk[entry].sum())

    def decode(self, ids) -> str:
        return "".join(self.tokens[int(i)] for i in ids)

    def most_frequent(self, n: int) -> list[str]:
        """The n most frequent entries that a person would type as a start word."""
        words = [t for t in self.tokens[len(SPECIALS):] if t.strip()]
        return words[:n]

    def to_dict(self) -> dict:
        return {"tokens": list(self.tokens), "counts": list(self.counts)}

    @classmethod
    def from_dict(cls, d: dict) -> "Vocab":
        return cls(d["tokens"], d.get("counts"))
