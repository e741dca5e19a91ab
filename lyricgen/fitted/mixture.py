"""The network mixed with an n-gram: the distribution generation samples from and scoring scores.

    p(w | h) = weight * p_net(w | h) + (1 - weight) * p_ngram(w | h)

Counting characters (fitted/ngram.py) predicts held-out lyrics better than a network trained for
a few CPU minutes, and the two err differently, so their mixture beats both (docs/tuning.md: a
single weight did as well as weights per n-gram context order). At the start of a run the n-gram
is fitted twice: on the training stream alone, to score the validation text once (`val_logp`, kept
here so a resumed run goes on the same way), from which and the network's probabilities training
fits the weight by EM after every validation pass (training/trainer.py: validation_scores; scoring
only reads the weight); and on training and validation text together, the one the checkpoint
carries for generation and evaluation.
"""
import math
from dataclasses import dataclass

import torch

from .ngram import KneserNey

ORDER = 7  # modified KN: orders 6 to 10 within 0.005 bits of each other alone (docs/tuning.md)
DEFAULT_WEIGHT = 0.5  # the network's weight until a validation pass fits it
EM_STEPS = 50


@dataclass
class Mixture:
    ngram: KneserNey
    weight: float = DEFAULT_WEIGHT  # the network's share
    val_logp: torch.Tensor | None = None  # (T,) ln p of each validation target under the train-only n-gram

    @classmethod
    def fit(cls, train_ids, val_ids, vocab_size: int, line_break_id: int, order: int = ORDER) -> "Mixture":
        """train_ids: the training stream (its first id is context only); val_ids: the validation
        text's ids, read after a line break, as scoring reads it."""
        train = torch.as_tensor(train_ids, dtype=torch.int64)
        val = torch.as_tensor(list(val_ids), dtype=torch.int64)
        ngram = KneserNey.fit(train, vocab_size, order)
        if val.numel() == 0:
            return cls(ngram)
        val_logp = ngram_logp(ngram, val, line_break_id).float()
        return cls(KneserNey.fit(torch.cat([train, val]), vocab_size, order), DEFAULT_WEIGHT, val_logp)

    def fit_weight(self, net_logp: torch.Tensor, ngram_logp: torch.Tensor) -> None:
        """EM for the network's weight from both components' ln p of the validation targets."""
        if net_logp.numel() == 0:
            return
        a, b = net_logp.double().cpu(), ngram_logp.double().cpu()
        w = DEFAULT_WEIGHT
        for _ in range(EM_STEPS):
            la, lb = a + math.log(w), b + math.log1p(-w)
            w = float(torch.exp(la - torch.logaddexp(la, lb)).mean().clamp(1e-4, 1 - 1e-4))
        self.weight = w

    def mix_logp(self, net_logp: torch.Tensor, ngram_logp: torch.Tensor) -> torch.Tensor:
        """ln p of the mixture, from the components' ln p (any matching shapes)."""
        return torch.logaddexp(net_logp + math.log(self.weight), ngram_logp + math.log1p(-self.weight))

    def to_dict(self) -> dict:
        d = {"ngram": self.ngram.state_dict(), "weight": self.weight}
        if self.val_logp is not None:
            d["val_logp"] = self.val_logp
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Mixture":
        return cls(KneserNey.from_state_dict(d["ngram"]), float(d["weight"]), d.get("val_logp"))


def ngram_logp(ngram: KneserNey, ids: torch.Tensor, line_break_id: int) -> torch.Tensor:
    """(T,) float64 ln p of each of `ids` under the n-gram, read after a line break."""
    stream = torch.cat([torch.tensor([line_break_id]), torch.as_tensor(ids, dtype=torch.int64)])
    return torch.log(ngram.prob(ngram.stream_states(stream), stream[1:]))
