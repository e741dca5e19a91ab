"""Choosing the next token: a small pure function of the logits and a SamplingConfig.

Temperature 0 (the default) is greedy argmax; sampling draws from an explicit torch.Generator, so a
seed reproduces a text exactly. The sampling options' constraints follow Hugging Face's generate():
CTRL's repetition penalty and no_repeat_ngram_size, with "<unk>" never written. `constrain` is their
one implementation: plain generation (generate.py) and the line search of songs (lines.py) both call it.
"""
import torch

from ..config import SamplingConfig


def penalize_repeats(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """CTRL's repetition penalty: logits of seen tokens are divided by `penalty` when positive and
    multiplied by it when negative. logits (B, V), seen (B, V) bool."""
    if penalty == 1.0:
        return logits
    penalized = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalized, logits)


class Ngrams:
    """The n-grams of a text, for no_repeat_ngram: each (n-1)-gram -> the tokens that followed it."""

    def __init__(self, n: int, tokens=()):
        self.n, self.tokens, self.followers = n, [], {}
        self.extend(tokens)

    def extend(self, tokens) -> None:
        """The text goes on with `tokens`: the n-grams they complete are remembered."""
        n = self.n
        for token in tokens:
            self.tokens.append(token)
            if len(self.tokens) >= n:
                self.followers.setdefault(tuple(self.tokens[len(self.tokens) - n:-1]), set()).add(token)

    def banned(self, more=()) -> set[int]:
        """Tokens that would complete an n-gram of the text, written after the text and `more` (the
        n-grams inside `more` itself are not counted: a line being searched, lines.py)."""
        if self.n <= 0:
            return set()
        tail = (self.tokens[-(self.n - 1):] + list(more))[-(self.n - 1):] if self.n > 1 else []
        return self.followers.get(tuple(tail), set())


def banned_by_ngram(history: list[int], n: int) -> set[int]:
    """Tokens that would complete an n-gram already present in `history` (HF's no_repeat_ngram_size)."""
    return set(Ngrams(n, history).banned())


def constrain(logp: torch.Tensor, sampling: SamplingConfig, unk_id: int, seen: torch.Tensor | None = None,
              ngrams: list | None = None, more: list | None = None, banned_ids: list | None = None) -> torch.Tensor:
    """A copy of logp (B, V) under the sampling options: CTRL's repetition penalty on the tokens
    `seen` (B, V) bool (structure tokens left out by the caller), "<unk>" never, and for each row b
    with `ngrams[b]` (Ngrams) no token that would repeat an n-gram (after `more[b]`, when given),
    and none of the token ids `banned_ids[b]` (fitted/credits.py: those completing a credited name).
    The penalty acts on log-probabilities, all <= 0, so a penalty > 1 always lowers a seen token."""
    if seen is not None and sampling.repetition_penalty != 1.0:
        adj = penalize_repeats(logp, seen, sampling.repetition_penalty)
    else:
        adj = logp.clone()
    adj[:, unk_id] = float("-inf")
    if ngrams is not None and sampling.no_repeat_ngram:
        for b, index in enumerate(ngrams):
            banned = index.banned(more[b] if more is not None else ())
            if banned:
                adj[b, list(banned)] = float("-inf")
    for b, ids in enumerate(banned_ids or ()):
        if ids:
            adj[b, list(ids)] = float("-inf")
    return adj


def make_generator(sampling: SamplingConfig) -> torch.Generator | None:
    """A private generator for sampling (never torch's global RNG); None when decoding is greedy."""
    if sampling.greedy:
        return None
    generator = torch.Generator()
    if sampling.seed is not None:
        generator.manual_seed(sampling.seed)
    else:
        generator.seed()  # a nondeterministic seed for this generator only
    return generator


def choose_next(logits: torch.Tensor, sampling: SamplingConfig, generator: torch.Generator | None) -> torch.Tensor:
    """Next token ids (B,) from (already constrained) logits (B, V)."""
    if sampling.greedy:
        return logits.argmax(dim=-1)
    # shift so the best logit is 0: a tiny temperature then gives -inf, never inf - inf = NaN
    logits = (logits - logits.max(dim=-1, keepdim=True).values) / sampling.temperature
    candidates = None  # (B, k) token ids, once the choice is narrowed to the best k, best first
    if 0 < sampling.top_k < logits.shape[-1]:
        logits, candidates = torch.topk(logits, sampling.top_k, dim=-1)
    if sampling.top_p < 1.0:
        if candidates is None:
            logits, candidates = _nucleus_candidates(logits, sampling.top_p)
        probs = logits.softmax(dim=-1)
        before = probs.cumsum(dim=-1) - probs  # mass of the tokens ranked above each one
        logits = logits.masked_fill(before >= sampling.top_p, float("-inf"))
    # Gumbel-max: argmax(logits + Gumbel noise) is an exact draw from softmax(logits), and much
    # cheaper than torch.multinomial; masked (-inf) entries stay impossible
    uniform = torch.rand(logits.shape, generator=generator, dtype=logits.dtype).clamp_(min=1e-20)
    choice = (logits - torch.log(-torch.log(uniform)).to(logits.device)).argmax(dim=-1)
    return choice if candidates is None else candidates.gather(-1, choice.unsqueeze(-1)).squeeze(-1)


def _nucleus_candidates(logits: torch.Tensor, top_p: float, firsts: tuple = (256, 1024)):
    """Logits sorted best first with their token ids: only the best `first` when they already hold
    top_p of the probability in every row (the usual case, and far cheaper than sorting all V; a
    flat distribution, as at the start of a line, may need the larger first)."""
    total = None
    for first in firsts:
        if logits.shape[-1] <= first:
            break
        if total is None:
            total = logits.logsumexp(dim=-1)
        values, ids = torch.topk(logits, first, dim=-1)
        held = (values.logsumexp(dim=-1) - total).exp()
        if bool((held >= top_p).all()):
            return values, ids
    return torch.sort(logits, dim=-1, descending=True)
