"""Held-out scoring: token perplexity and open-vocabulary bits per character (bpc-open).

bpc-open is the total -log2 p of the text under the model divided by its number of characters
(each line break counts as one). A piece of text the model can only represent as `<unk>` pays
-log2 p(<unk>) plus log2(20992) bits per character of that piece, so a smaller vocabulary cannot
make the figure look better. The text is scored as one stream, the hidden state carried from line
to line, after the tokenizer's whitespace normalisation (which only removes characters, so the
division is by the normalised, smaller count).

The scoring distribution completes the network's with side models: the n-gram it is mixed with
(mixture.py; the mixture is what generation samples from, so it is the main figure), the
unseen-character mass of unk.py, and the repeat model of repeat.py for choruses (reported beside,
as is the network alone).
"""
import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from ..model import detach_hidden

UNK_CHAR_BITS = math.log2(20992)  # cost of spelling out one character the model cannot represent


@dataclass
class Score:
    tokens: int
    chars: int
    unk: int  # `<unk>` tokens
    unk_chars: int  # characters those stand for
    nll: float  # total natural-log loss over the tokens
    bits: float  # total bits, the unk surcharge included

    @property
    def loss(self) -> float:
        return self.nll / max(self.tokens, 1)

    @property
    def ppl(self) -> float:
        return math.exp(min(self.loss, 700.0))

    @property
    def bpc_open(self) -> float:
        return self.bits / max(self.chars, 1)

    def to_dict(self) -> dict:
        return {**asdict(self), "loss": self.loss, "ppl": self.ppl, "bpc_open": self.bpc_open}


@dataclass
class Text:
    """A text ready to score: its ids as one stream (line breaks included), its character count
    (line breaks counted) and the characters its `<unk>` ids stand for."""
    ids: list[int]
    chars: int
    unk_chars: int

    @classmethod
    def encode(cls, vocab, token_lines: list[list[str]]) -> "Text":
        ids, unk_chars = vocab.encode_lines(token_lines)
        return cls(ids, count_chars(token_lines), unk_chars)


def count_chars(token_lines: list[list[str]]) -> int:
    """Characters of the normalised text, each line break counted as one."""
    return sum(len("".join(line)) + 1 for line in token_lines)


@torch.no_grad()
def token_nll(model, ids: list[int], context_id: int, unk_id: int, unk_prob: float,
              device: torch.device, chunk_len: int = 256) -> torch.Tensor:
    """Per-token negative log-likelihood (nats) of `ids` read as one stream after `context_id`."""
    model.eval()
    stream = torch.tensor([context_id] + list(ids), dtype=torch.long, device=device)
    log_keep = math.log1p(-unk_prob) if unk_prob > 0 else 0.0
    losses, hidden = [], None
    for start in range(0, stream.numel() - 1, chunk_len):
        x = stream[start:start + chunk_len].unsqueeze(0)  # (1, T)
        y = stream[start + 1:start + chunk_len + 1]  # (T,)
        x = x[:, : y.numel()]
        logits, hidden = model(x, hidden)
        logp = F.log_softmax(logits[0].float(), dim=-1) + log_keep  # (T, V)
        if unk_prob > 0:
            logp[:, unk_id] = torch.logaddexp(logp[:, unk_id], torch.tensor(math.log(unk_prob), device=device))
        losses.append(-logp.gather(1, y.unsqueeze(1)).squeeze(1))
        hidden = detach_hidden(hidden)
    return torch.cat(losses) if losses else torch.zeros(0)


def with_unk(logp: torch.Tensor, ids, unk_id: int, unk_prob: float) -> torch.Tensor:
    """ln p of the targets `ids` after mixing in the unseen-character mass, as token_nll does."""
    if unk_prob <= 0:
        return logp.double()
    out = logp.double() + math.log1p(-unk_prob)
    is_unk = torch.as_tensor(list(ids)) == unk_id
    return torch.where(is_unk, torch.logaddexp(out, torch.tensor(math.log(unk_prob), dtype=out.dtype)), out)


def validation_ngram_logp(mixture, text: Text, vocab, unk) -> torch.Tensor | None:
    """(T,) float64 ln p of the run's validation text under the n-gram fitted without it, the unk
    mass mixed in (mixture.val_logp, kept from the start of the run); None when `text` is not that
    text or the mixture keeps none."""
    logps = validation_ngram_logps(mixture, text, vocab, unk)
    return logps[0] if logps else None


def validation_ngram_logps(mixture, text: Text, vocab, unk) -> list[torch.Tensor] | None:
    """validation_ngram_logp for every n-gram of the mixture: the run's own, then a base's
    (mixture.base_val_logp: it never saw the text), in the order Mixture.fit_weight takes them."""
    if mixture is None or mixture.val_logp is None or not text.ids:
        return None
    kept = [mixture.val_logp] + ([mixture.base_val_logp] if mixture.base is not None else [])
    if any(x is None or x.numel() != len(text.ids) for x in kept):
        return None
    return [with_unk(x, text.ids, vocab.unk_id, unk.prob) for x in kept]


def score_parts(model, text: Text, vocab, unk, device, repeat=None, mixture=None, validation: bool = False) -> dict:
    """Scores of `text`: "network" (alone), "model" (what generation samples from: the network
    mixed with the n-gram(s) of `mixture`, or the network where there is none) and, with a repeat
    model, "repeat" (the model with the repeat model mixed in).

    validation: `text` is the run's validation text, so the n-gram fitted without it scores it
    (mixture.val_logp), not the one refitted on it."""
    nll = token_nll(model, text.ids, vocab.line_break_id, vocab.unk_id, unk.prob, device).cpu()
    return parts_of(nll, text, vocab, unk, repeat, mixture, validation)


def parts_of(nll: torch.Tensor, text: Text, vocab, unk, repeat=None, mixture=None, validation: bool = False) -> dict:
    """score_parts from the network's per-token loss `nll` (T,), as token_nll gives it."""
    unk_count = sum(1 for i in text.ids if i == vocab.unk_id)

    def make(per_token: torch.Tensor) -> Score:
        total = float(per_token.sum())
        return Score(tokens=len(text.ids), chars=text.chars, unk=unk_count, unk_chars=text.unk_chars, nll=total,
                     bits=total / math.log(2) + text.unk_chars * UNK_CHAR_BITS)

    parts = {"network": make(nll)}
    model_nll = nll
    if mixture is not None and text.ids:
        from ..fitted.mixture import ngram_logp

        ng = validation_ngram_logps(mixture, text, vocab, unk) if validation else None
        if ng is None:
            ng = [with_unk(ngram_logp(g, torch.tensor(text.ids), vocab.line_break_id), text.ids, vocab.unk_id, unk.prob)
                  for g in mixture.ngrams]
        model_nll = -mixture.mix_logp(-nll.double(), *ng)
    parts["model"] = make(model_nll)
    if repeat is not None and repeat.alpha:
        parts["repeat"] = make(repeat.mix(model_nll, text.ids))
    return parts


def selected(parts: dict, mixture=None) -> tuple[Score, Score]:
    """(the score training selects by, the network alone's). With a mixture that is the model
    generation samples from; without one (checkpoints before the n-gram), as before: the network
    with the repeat model when one is given."""
    if mixture is not None:
        return parts["model"], parts["network"]
    return parts.get("repeat", parts["model"]), parts["network"]


def score(model, text: Text, vocab, unk, device, repeat=None, mixture=None,
          validation: bool = False) -> tuple[Score, Score]:
    """selected(score_parts(...)): what training selects by, and the network alone's score."""
    return selected(score_parts(model, text, vocab, unk, device, repeat, mixture, validation), mixture)
