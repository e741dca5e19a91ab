"""Held-out scoring: token perplexity and open-vocabulary bits per character (bpc-open).

bpc-open is the total -log2 p of the text under the model divided by its number of characters
(each line break counts as one). A piece of text the model can only represent as `<unk>` pays
-log2 p(<unk>) plus log2(20992) bits per character of that piece, so a smaller vocabulary cannot
make the figure look better. The text is scored as one stream, the hidden state carried from line
to line, after the tokenizer's whitespace normalisation (which only removes characters, so the
division is by the normalised, smaller count).

The scoring distribution completes the network's with two side models: the unseen-character mass
of unk.py, and the repeat model of repeat.py for choruses (reported beside the network alone, so
both figures are always at hand).
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


def score(model, text: Text, vocab, unk, device, repeat=None) -> tuple[Score, Score]:
    """(score of the model as used, score of the network alone). They differ only when a repeat
    model is given (`unk`: an UnkModel, `repeat`: a RepeatModel or None)."""
    nll = token_nll(model, text.ids, vocab.line_break_id, vocab.unk_id, unk.prob, device).cpu()
    unk_count = sum(1 for i in text.ids if i == vocab.unk_id)

    def make(per_token: torch.Tensor) -> Score:
        total = float(per_token.sum())
        return Score(tokens=len(text.ids), chars=text.chars, unk=unk_count, unk_chars=text.unk_chars, nll=total,
                     bits=total / math.log(2) + text.unk_chars * UNK_CHAR_BITS)

    plain = make(nll)
    return (make(repeat.mix(nll, text.ids)) if repeat is not None and repeat.alpha else plain), plain
