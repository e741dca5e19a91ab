"""The probability of a character never seen in training: the network never sees `<unk>` as a
target, so on its own it would give unseen characters almost no probability.

Scoring mixes in the Good-Turing estimate of the unseen-character rate, the share of training tokens
that are characters seen once:  p(w) = (1 - prob) * p_model(w) + prob * [w == <unk>].
"""
from dataclasses import dataclass


@dataclass
class UnkModel:
    prob: float = 0.0

    @classmethod
    def fit(cls, vocab, train_tokens: int) -> "UnkModel":
        singletons = sum(1 for tok, n in zip(vocab.tokens, vocab.counts) if n == 1 and len(tok) == 1)
        return cls(max(singletons, 1) / max(train_tokens, 1))

    def to_dict(self) -> dict:
        return {"prob": self.prob}

    @classmethod
    def from_dict(cls, d: dict) -> "UnkModel":
        return cls(float(d.get("prob", 0.0)))
