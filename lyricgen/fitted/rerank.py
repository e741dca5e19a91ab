"""Reranker: which of the line search's candidates a reader would choose, learned at training time from
the corpus itself (residual energy-based reranking, Deng et al. 2020, "Residual Energy-Based Models
for Text Generation").

For held-out contexts (the validation text: the lines before a line), the real next line is set
against K lines the model itself writes there with the line search, in the same length window
(writing/judge.py draws them and computes each line's features). A linear score over the features is
fitted with a pairwise logistic loss, so that the real line outranks the model's:

    loss = mean over (context, model line m) of log(1 + exp(-(s(real) - s(m))))

This module holds only the fitted numbers and the arithmetic on feature rows; what the features are
and how the candidates are drawn belong to the writing path (writing/judge.py), which the checkpoint
must not import. `names` records the features the weights are for: a reader whose features differ
(another lyricgen) ignores the reranker rather than misreading it.

The score is residual: the ranking the line search used before it (the model's mean log-probability
per token less the whole-word penalties; the feature named LOGP) enters with a fixed weight of 1 and
the other features add to it, so the score stays in the units the search ranks by (nats per token),
the stock-phrase penalty and theme fit add to it as before, and the hand-set word penalties stay
(a first version started from the bare log-probability and learned ~0 for a dangling end, which the
search's candidates seldom have: its greedy songs ended lines inside phrases far more often). A free
weight on it was tried (judge.py's docstring has the figures): the fit set it negative, since the real
line is less probable than the model's own lines, and a reranker that prefers improbable candidates
writes worse lines than it ranks held-out pairs.

Accuracy is measured on contexts the weights were not fitted on (HELD_SHARE of them, drawn by a
seeded shuffle): the share of (real line, model line) pairs where the real line scores higher, a tie
counting half. The weights stored are those fitted on the rest, so the figure is the stored model's.
"""
import math
import random
from dataclasses import dataclass, field

import torch

LOGP = "base_score"  # the feature that enters with weight 1: the ranking without a reranker (judge.py)
HELD_SHARE = 0.3  # of the contexts, held out to measure accuracy
L2 = 1e-2  # ridge on the standardised weights: a few hundred contexts, a dozen features
MIN_CONTEXTS = 4  # fewer than this and no reranker is fitted (nothing to hold out)


@dataclass
class Reranker:
    names: list[str]  # the features, in order (writing/judge.py's FEATURES when fitted)
    weights: list[float]  # per feature, in its raw units; names[LOGP] has 1.0
    accuracy: float | None = None  # held-out pair accuracy of this score
    base_accuracy: float | None = None  # the same for the mean log-probability less the word penalties
    contexts: int = 0  # held-out contexts
    pairs: int = 0  # held-out pairs
    fit_contexts: int = 0  # contexts fitted on
    seconds: float = 0.0  # what fitting cost at training time (drawing the candidates included)
    extra: dict = field(default_factory=dict)  # notes of the fit (candidates per context, ...)

    def score(self, rows) -> torch.Tensor:
        """(N,) scores of (N, F) feature rows (names' order)."""
        x = torch.as_tensor(rows, dtype=torch.float64)
        if x.numel() == 0:
            return torch.zeros(x.shape[0], dtype=torch.float64)
        return x @ torch.tensor(self.weights, dtype=torch.float64)

    def to_dict(self) -> dict:
        d = {"names": list(self.names), "weights": [float(w) for w in self.weights], "contexts": self.contexts,
             "pairs": self.pairs, "fit_contexts": self.fit_contexts, "seconds": float(self.seconds),
             "extra": dict(self.extra)}
        if self.accuracy is not None:
            d["accuracy"] = float(self.accuracy)
        if self.base_accuracy is not None:
            d["base_accuracy"] = float(self.base_accuracy)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Reranker":
        names, weights = [str(n) for n in d["names"]], [float(w) for w in d["weights"]]
        if len(names) != len(weights):
            raise ValueError("reranker: one weight per feature")
        return cls(names, weights, d.get("accuracy"), d.get("base_accuracy"), int(d.get("contexts", 0)),
                   int(d.get("pairs", 0)), int(d.get("fit_contexts", 0)), float(d.get("seconds", 0.0)),
                   dict(d.get("extra") or {}))

    @classmethod
    def fit(cls, names: list[str], real, candidates: list, seed: int = 0, base_scores=None) -> "Reranker | None":
        """From each context's real line's features (C, F) and its model lines' (a list of C (K_c, F)
        arrays, K_c >= 1): fitted on 1 - HELD_SHARE of the contexts, its accuracy measured on the rest.
        base_scores: (real (C,), [(K_c,)]) of the ranking it replaces, measured on the same held-out
        contexts. None when there are fewer than MIN_CONTEXTS contexts with model lines."""
        keep = [c for c in range(len(candidates)) if len(candidates[c])]
        if len(keep) < MIN_CONTEXTS:
            return None
        order = keep[:]
        random.Random(seed).shuffle(order)
        n_held = max(1, round(HELD_SHARE * len(order)))
        held, fitted = order[:n_held], order[n_held:]
        real = torch.as_tensor(real, dtype=torch.float64)
        cands = [torch.as_tensor(c, dtype=torch.float64).reshape(-1, len(names)) for c in candidates]
        weights = fit_pairwise(names, real[fitted], [cands[c] for c in fitted])
        r = cls(list(names), weights, contexts=len(held), fit_contexts=len(fitted))
        r.accuracy, r.pairs = pair_accuracy(r.score(real[held]), [r.score(cands[c]) for c in held])
        if base_scores is not None:
            base_real, base_cands = base_scores
            r.base_accuracy, _ = pair_accuracy(torch.as_tensor(base_real, dtype=torch.float64)[held],
                                               [torch.as_tensor(base_cands[c], dtype=torch.float64) for c in held])
        return r


def fit_pairwise(names: list[str], real: torch.Tensor, cands: list[torch.Tensor], free_logp: bool = False,
                 steps: int = 200) -> list[float]:
    """Weights (raw units) minimising the mean pairwise logistic loss of real (C, F) against each
    context's model lines, plus L2 on the standardised weights. The LOGP feature has weight 1 unless
    free_logp (then it is fitted like the others: for measuring what the fixed weight costs)."""
    real = torch.as_tensor(real, dtype=torch.float64)
    cands = [torch.as_tensor(m, dtype=torch.float64) for m in cands]
    diffs = torch.cat([real[c].unsqueeze(0) - m for c, m in enumerate(cands)])  # (P, F)
    # each context counts once, whatever its number of model lines
    w_pair = torch.cat([torch.full((len(m),), 1.0 / len(m), dtype=torch.float64) for m in cands])
    w_pair = w_pair / w_pair.sum()
    li = names.index(LOGP) if LOGP in names else -1
    offset = diffs[:, li] if li >= 0 and not free_logp else torch.zeros(len(diffs), dtype=torch.float64)
    learn = [j for j in range(len(names)) if free_logp or j != li]
    x = diffs[:, learn]
    scale = x.std(0).clamp(min=1e-6)
    x = x / scale
    w = torch.zeros(len(learn), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w], lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = (w_pair * torch.nn.functional.softplus(-(offset + x @ w))).sum() + L2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    out = [0.0] * len(names)
    if li >= 0 and not free_logp:
        out[li] = 1.0
    for j, v in zip(learn, (w.detach() / scale).tolist()):
        out[j] = v if math.isfinite(v) else 0.0
    return out


def pair_accuracy(real: torch.Tensor, cands: list[torch.Tensor]) -> tuple[float, int]:
    """(share of pairs where real[c] scores above a model line of context c, a tie counting half;
    the number of pairs)."""
    hits, pairs = 0.0, 0
    for c, m in enumerate(cands):
        m = torch.as_tensor(m, dtype=torch.float64)
        r = float(real[c])
        hits += float((m < r).sum()) + 0.5 * float((m == r).sum())
        pairs += len(m)
    return (hits / pairs if pairs else 0.0), pairs
