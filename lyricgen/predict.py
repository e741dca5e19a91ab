"""Generation: resolve a start word, choose next tokens, write lyrics one token at a time.

The hidden state is carried from step to step (the prefix is never re-read). The model is primed
with a line break - the context every lyric line starts from in training - then the start word.
Choosing a token is a small pure function: temperature 0 (the default) is greedy argmax; sampling
draws from an explicit torch.Generator, so a seed reproduces a text exactly.
"""
from dataclasses import dataclass

import torch

from .checkpoint import load_checkpoint, model_from_checkpoint
from .errors import LyricgenError
from .tokenizer import normalize_line


@dataclass
class Sampling:
    temperature: float = 0.0  # 0 = greedy
    top_k: int = 0  # 0 = no limit
    top_p: float = 1.0  # nucleus: smallest set of tokens whose probability reaches top_p
    seed: int | None = None

    def __post_init__(self):
        if self.temperature < 0:
            raise LyricgenError(f"--temperature must be >= 0, got {self.temperature}")
        if self.top_k < 0:
            raise LyricgenError(f"--top-k must be >= 0, got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise LyricgenError(f"--top-p must be in (0, 1], got {self.top_p}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0 or self.top_k == 1


def resolve_start(text: str, vocab, segment=None) -> tuple[list[int], list[str]]:
    """Ids for a start word or phrase, and the characters that had to be left out.

    A vocabulary entry is used as is. Otherwise the text is segmented with jieba (imported only
    now), and each piece that is not an entry is spelled as its characters, so 不分开 becomes
    不 + 分开. Only when nothing at all is known is it an error, with known words suggested.
    """
    text = normalize_line(text)
    if not text:
        raise LyricgenError("the start word is empty")
    if text in vocab:
        return [vocab.index[text]], []
    if segment is None:
        from .tokenizer import segment
    ids, unknown = [], []
    for piece in segment(text):
        if piece in vocab:
            ids.append(vocab.index[piece])
            continue
        for ch in piece:
            if ch in vocab:
                ids.append(vocab.index[ch])
            else:
                unknown.append(ch)
    if not ids:
        raise LyricgenError(
            f"no part of the start word {text!r} is in the vocabulary; try one of: {' '.join(vocab.most_frequent(12))}")
    return ids, unknown


def choose_next(logits: torch.Tensor, sampling: Sampling, generator: torch.Generator | None) -> torch.Tensor:
    """Next token ids (B,) from logits (B, V)."""
    if sampling.greedy:
        return logits.argmax(dim=-1)
    logits = logits / sampling.temperature
    if sampling.top_k > 0 and sampling.top_k < logits.shape[-1]:
        kth = torch.topk(logits, sampling.top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if sampling.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        before = probs.cumsum(dim=-1) - probs  # mass of the tokens ranked above each one
        sorted_logits = sorted_logits.masked_fill(before >= sampling.top_p, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(1).to(logits.device)


@torch.no_grad()
def generate_ids(model, vocab, start_ids: list[int], max_tokens: int, sampling: Sampling | None = None,
                 num_samples: int = 1) -> torch.Tensor:
    """(num_samples, max_tokens) new token ids continuing start_ids."""
    if max_tokens < 1:
        raise LyricgenError(f"the number of tokens to generate must be positive, got {max_tokens}")
    sampling = sampling or Sampling()
    model.eval()
    device = next(model.parameters()).device
    generator = None
    if not sampling.greedy:
        generator = torch.Generator()
        generator.manual_seed(sampling.seed if sampling.seed is not None else torch.seed())
    prime = torch.tensor([[vocab.line_break_id] + list(start_ids)], device=device).expand(num_samples, -1)
    logits, hidden = model(prime)  # (B, T, V)
    logits = logits[:, -1]
    out = torch.empty(num_samples, max_tokens, dtype=torch.long, device=device)
    for t in range(max_tokens):
        logits[:, vocab.unk_id] = float("-inf")  # never write "<unk>"
        nxt = choose_next(logits.float(), sampling, generator)  # (B,)
        out[:, t] = nxt
        logits, hidden = model(nxt.unsqueeze(1), hidden)
        logits = logits[:, -1]
    return out


def load_for_generation(path, device=torch.device("cpu")):
    """(model, vocab, checkpoint) from a checkpoint file alone - no corpus is read."""
    ckpt = load_checkpoint(path)
    model, vocab = model_from_checkpoint(ckpt, path)
    return model.to(device).eval(), vocab, ckpt


def generate(model, vocab, start: str, max_tokens: int = 100, sampling: Sampling | None = None) -> str:
    """Lyrics continuing `start`: the start text followed by the generated tokens."""
    ids, _ = resolve_start(start, vocab)
    new = generate_ids(model, vocab, ids, max_tokens, sampling)[0]
    return normalize_line(start) + vocab.decode(new.tolist())
