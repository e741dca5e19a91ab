"""A repeat model: lyrics repeat themselves (choruses, refrains), so predict that they will.

At each position the model follows the most recent earlier occurrence of the last MIN_MATCH tokens
(and keeps following it while the text goes on repeating it) and predicts the token that came next.
Its weight alpha(m) depends on the length m of the match and is calibrated on the training stream:
alpha(m) is the share of training positions with a match of length m whose prediction was right.
Scoring mixes it with the network:

    p(w) = (1 - alpha(m)) * p_rnn(w) + alpha(m) * [w == predicted]

This is the match model of context-mixing compressors and a token-level form of the neural cache
of Grave et al. (2017). It only reads the text already scored, so the mixture is a proper
distribution over the next token given the history. Generation does not use it: it would make
generation repeat itself.
"""
from dataclasses import dataclass, field

import torch

MIN_MATCH = 2  # a match starts on the last two tokens (the key below packs exactly two ids)
MAX_MATCH = 24  # matches longer than this share one calibration bucket
MAX_CALIBRATION = 1_000_000  # tokens: alpha is 25 shares, which a million tokens estimate well


def predictions(ids: list[int]) -> list[tuple[int, int]]:
    """For each position t, (predicted id or -1, match length) from ids[:t] alone."""
    return list(iter_predictions(ids))


def iter_predictions(ids: list[int]):
    """predictions(), one position at a time (calibrating on a long stream keeps no list of them)."""
    last_seen: dict[int, int] = {}  # the last two tokens, packed in one int -> where they last ended
    ptr, length = -1, 0  # position in the history that the current match predicts from
    for t in range(len(ids)):
        if ptr >= 0 and ids[t - 1] == ids[ptr - 1] and ptr < t:
            length = min(length + 1, MAX_MATCH)  # the match goes on
        else:
            ptr, length = -1, 0
        if t >= MIN_MATCH:
            key = ids[t - 2] << 32 | ids[t - 1]
            if ptr < 0 and key in last_seen:
                ptr, length = last_seen[key], MIN_MATCH
            last_seen[key] = t
        yield (ids[ptr], length) if 0 <= ptr < t else (-1, 0)
        if ptr >= 0:
            ptr += 1


@dataclass
class RepeatModel:
    alpha: list[float] = field(default_factory=list)  # weight per match length 0..MAX_MATCH

    @classmethod
    def fit(cls, ids) -> "RepeatModel":
        """alpha for each match length: the share of correct predictions on the training stream (its
        first MAX_CALIBRATION tokens; a list or a 1-D tensor/array of ids)."""
        ids = ids[:MAX_CALIBRATION]
        ids = ids.tolist() if hasattr(ids, "tolist") else [int(i) for i in ids]
        hits = [0] * (MAX_MATCH + 1)
        total = [0] * (MAX_MATCH + 1)
        for (pred, m), actual in zip(iter_predictions(ids), ids):
            if pred >= 0:
                total[m] += 1
                hits[m] += pred == actual
        # add-one smoothing keeps alpha below 1, so a wrong prediction is never impossible
        return cls([hits[m] / (total[m] + 1) if total[m] else 0.0 for m in range(MAX_MATCH + 1)])

    def mix(self, nll: torch.Tensor, ids: list[int]) -> torch.Tensor:
        """Per-token nll (nats) of `ids` after mixing the repeat model into the network's."""
        preds = predictions(ids)
        top = len(self.alpha) - 1  # a stored table keeps its own length, whatever MAX_MATCH is now
        a = torch.tensor([self.alpha[min(m, top)] if pred >= 0 else 0.0 for pred, m in preds], dtype=torch.float64)
        hit = torch.tensor([pred == x for (pred, _), x in zip(preds, ids)], dtype=torch.bool)
        logp = -nll.double().cpu() + torch.log1p(-a)
        logp = torch.where(hit, torch.logaddexp(logp, torch.log(a.clamp(min=1e-300))), logp)
        return -logp

    def to_dict(self) -> dict:
        return {"alpha": list(self.alpha)}

    @classmethod
    def from_dict(cls, d: dict) -> "RepeatModel":
        return cls([float(a) for a in d.get("alpha", [])])
