"""Held-out scoring: token perplexity and open-vocabulary bits per character (bpc-open).

bpc-open is the total -log2 p of the text under the model divided by its number of characters
(each line break counts as one). A piece of text the model can only represent as `<unk>` pays
-log2 p(<unk>) plus log2(20992) bits per character of that piece, so a smaller vocabulary cannot
make the figure look better. The text is scored as one stream, the hidden state carried from line
to line, after the tokenizer's whitespace normalisation (which only removes characters, so the
division is by the normalised, smaller count).

Lyrics repeat their choruses, which a recurrent network cannot recall from one reading; the
scoring distribution mixes in the repeat model of repeat.py for that (and reports the network alone
beside it, so both figures are always at hand).

The model never sees `<unk>` as a training target, so on its own it would give unseen characters
almost no probability. The scoring distribution therefore mixes in the Good-Turing estimate of
the unseen-character rate, unk_prob (share of training tokens that are characters seen once):
p(w) = (1 - unk_prob) * p_model(w) + unk_prob * [w == <unk>].
"""
import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from .model import detach_hidden

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


def count_chars(token_lines: list[list[str]]) -> int:
    """Characters of the normalised text, each line break counted as one."""
    return sum(len("".join(line)) + 1 for line in token_lines)


def good_turing_unk_prob(counts: list[int], tokens: list[str], total: int) -> float:
    """Probability mass for unseen characters: the share of training tokens that are singleton characters."""
    singletons = sum(1 for tok, n in zip(tokens, counts) if n == 1 and len(tok) == 1)
    return max(singletons, 1) / max(total, 1)


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


def mix_repeats(nll: torch.Tensor, ids: list[int], alpha: list[float]) -> torch.Tensor:
    """Per-token nll after mixing in the repeat model (see repeat.py) with weights alpha[m]."""
    from .repeat import predictions

    preds = predictions(ids)
    top = len(alpha) - 1  # the checkpoint's own table, whatever MAX_MATCH is now
    a = torch.tensor([alpha[min(m, top)] if pred >= 0 else 0.0 for pred, m in preds], dtype=torch.float64)
    hit = torch.tensor([pred == x for (pred, _), x in zip(preds, ids)], dtype=torch.bool)
    logp = -nll.double().cpu() + torch.log1p(-a)
    logp = torch.where(hit, torch.logaddexp(logp, torch.log(a.clamp(min=1e-300))), logp)
    return -logp


def score(model, ids: list[int], chars: int, unk_chars: int, vocab, unk_prob: float, device,
          repeat_alpha: list[float] | None = None) -> tuple[Score, Score]:
    """(score of the model as used, score of the network alone). They differ only when a repeat
    model is given: the first then mixes it in, the second is the plain network."""
    nll = token_nll(model, ids, vocab.line_break_id, vocab.unk_id, unk_prob, device).cpu()
    unk = sum(1 for i in ids if i == vocab.unk_id)

    def make(per_token: torch.Tensor) -> Score:
        total = float(per_token.sum())
        return Score(tokens=len(ids), chars=chars, unk=unk, unk_chars=unk_chars, nll=total,
                     bits=total / math.log(2) + unk_chars * UNK_CHAR_BITS)

    plain = make(nll)
    return (make(mix_repeats(nll, ids, repeat_alpha)) if repeat_alpha else plain), plain


def score_lines(model, vocab, token_lines: list[list[str]], unk_prob: float, device,
                repeat_alpha: list[float] | None = None) -> tuple[Score, Score]:
    """Score tokenised lyric lines (each followed by a line break) as one stream."""
    ids, unk_chars = vocab.encode_lines(token_lines)
    return score(model, ids, count_chars(token_lines), unk_chars, vocab, unk_prob, device, repeat_alpha)
