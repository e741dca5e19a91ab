"""The network mixed with an n-gram (and a base model's n-gram): the distribution generation samples
from and scoring scores.

    p(w | h) = weight * p_net(w | h) + (1 - weight - base_weight) * p_ngram(w | h)
               + base_weight * p_base(w | h)

Counting characters (fitted/ngram.py) predicts held-out lyrics better than a network trained for
a few CPU minutes, and the two err differently, so their mixture beats both (docs/tuning.md: a
single weight did as well as weights per n-gram context order). At the start of a run the n-gram
is fitted twice: on the training stream alone, to score the validation text once (`val_logp`, kept
here so a resumed run goes on the same way), from which and the network's probabilities training
fits the weights by EM after every validation pass (training/trainer.py: validation_scores; scoring
only reads them); and on training and validation text together, the one the checkpoint carries
for generation and evaluation.

A run fine-tuned from a base checkpoint (`--init-from`) can keep the base's n-gram as a third
component (`with_base`): widened to the grown vocabulary (ngram.py: ids the base never saw get only
its uniform floor), it scores the validation text once (`base_val_logp`, it never saw that text)
and its weight is fitted by the same EM. Without a base the mixture, its EM and its checkpoint
entry are exactly the two-component ones.
"""
import math
from dataclasses import dataclass
from functools import reduce

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
    base: KneserNey | None = None  # a base checkpoint's n-gram over this vocabulary, or None
    base_weight: float = 0.0  # its share
    base_val_logp: torch.Tensor | None = None  # (T,) ln p of each validation target under it

    @property
    def context(self) -> int:
        """Tokens of recent context the n-grams read (generation keeps this many)."""
        return max(g.order for g in self.ngrams) - 1

    @property
    def ngrams(self) -> list[KneserNey]:
        """The n-gram components: the run's, then the base's if any."""
        return [self.ngram] + ([self.base] if self.base is not None else [])

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

    def with_base(self, base: KneserNey, val_ids, line_break_id: int) -> "Mixture":
        """This mixture with a base model's n-gram (already over this vocabulary: KneserNey.widen) as a
        third component; it scores the validation text `val_ids` once, as the run's own did."""
        val = torch.as_tensor(list(val_ids), dtype=torch.int64)
        val_logp = ngram_logp(base, val, line_break_id).float() if val.numel() else None
        return Mixture(self.ngram, self.weight, self.val_logp, base, self.base_weight, val_logp)

    def fit_weight(self, net_logp: torch.Tensor, ngram_logp: torch.Tensor, base_logp: torch.Tensor | None = None) -> None:
        """EM for the weights from the components' ln p of the validation targets (base_logp: the
        base n-gram's, when the mixture has one)."""
        if net_logp.numel() == 0:
            return
        if self.base is None:
            (self.weight,) = em_weights([net_logp, ngram_logp])
        elif base_logp is None:
            raise ValueError("the mixture has a base n-gram: its ln p of the targets is needed")
        else:
            self.weight, self.base_weight = em_weights([net_logp, base_logp, ngram_logp])

    def mix_logp(self, net_logp: torch.Tensor, ngram_logp: torch.Tensor,
                 base_logp: torch.Tensor | None = None) -> torch.Tensor:
        """ln p of the mixture, from the components' ln p (any matching shapes)."""
        if self.base is None:
            return torch.logaddexp(net_logp + math.log(self.weight), ngram_logp + math.log1p(-self.weight))
        return reduce(torch.logaddexp, [net_logp + math.log(self.weight), base_logp + math.log(self.base_weight),
                                        ngram_logp + math.log1p(-(self.weight + self.base_weight))])

    def next_logp(self, net_logp: torch.Tensor, recent: torch.Tensor) -> torch.Tensor:
        """(B, V) ln p of the next token from the network's (B, V) and the recent tokens (B, C),
        oldest first (-1 = none): what generation samples from. The n-gram tables live on the CPU."""
        p = [g.dist(g.states(recent.cpu())).to(net_logp.device) for g in self.ngrams]
        return self.mix_logp(net_logp, *[torch.log(x) for x in p])

    def to_dict(self) -> dict:
        d = {"ngram": self.ngram.state_dict(), "weight": self.weight}
        if self.val_logp is not None:
            d["val_logp"] = self.val_logp
        if self.base is not None:
            d["base"] = {"ngram": self.base.state_dict(), "weight": self.base_weight}
            if self.base_val_logp is not None:
                d["base"]["val_logp"] = self.base_val_logp
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Mixture":
        base = d.get("base")
        return cls(KneserNey.from_state_dict(d["ngram"]), float(d["weight"]), d.get("val_logp"),
                   KneserNey.from_state_dict(base["ngram"]) if base else None,
                   float(base["weight"]) if base else 0.0, base.get("val_logp") if base else None)


def em_weights(logps: list[torch.Tensor], steps: int = EM_STEPS) -> list[float]:
    """EM for the weights of a mixture of K components from their ln p of the same targets: the
    first K-1 weights (the last is 1 minus their sum), each kept in [1e-4, 1 - 1e-4]. With two
    components this is the one-weight EM lyricgen always ran, operation for operation."""
    logps = [x.double().cpu() for x in logps]
    w = [1.0 / len(logps)] * (len(logps) - 1)
    for _ in range(steps):
        parts = [x + math.log(wk) for x, wk in zip(logps, w)] + [logps[-1] + math.log1p(-sum(w))]
        total = reduce(torch.logaddexp, parts)
        w = [float(torch.exp(x - total).mean().clamp(1e-4, 1 - 1e-4)) for x in parts[:-1]]
        if sum(w) > 1 - 1e-4:  # the clamps left the last component nothing: scale the others back
            w = [wk * (1 - 1e-4) / sum(w) for wk in w]
    return w


def ngram_logp(ngram: KneserNey, ids: torch.Tensor, line_break_id: int) -> torch.Tensor:
    """(T,) float64 ln p of each of `ids` under the n-gram, read after a line break."""
    stream = torch.cat([torch.tensor([line_break_id]), torch.as_tensor(ids, dtype=torch.int64)])
    return torch.log(ngram.prob(ngram.stream_states(stream), stream[1:]))
