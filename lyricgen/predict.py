"""Generation: resolve a start word, choose next tokens, write lyrics one token at a time.

The hidden state is carried from step to step (the prefix is never re-read). The model is primed
with a line break - the context every lyric line starts from in training - then the start word.
Choosing a token is a small pure function: temperature 0 (the default) is greedy argmax; sampling
draws from an explicit torch.Generator, so a seed reproduces a text exactly.
"""
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .checkpoint import load_checkpoint, model_from_checkpoint
from .errors import LyricgenError
from .tokenizer import normalize_line


@dataclass
class Sampling:
    """How the next token is chosen. The defaults are greedy decoding."""
    temperature: float = 0.0  # 0 = greedy
    top_k: int = 0  # 0 = no limit; 1 = greedy
    top_p: float = 1.0  # nucleus: smallest set of tokens whose probability reaches top_p
    repetition_penalty: float = 1.0  # > 1 discourages tokens already in the text (CTRL / HF rule)
    no_repeat_ngram: int = 0  # never repeat an n-gram of this many tokens (0 = off)
    seed: int | None = None

    def __post_init__(self):
        checks = [
            (math.isfinite(self.temperature) and math.isfinite(self.repetition_penalty),
             "--temperature and --repetition-penalty must be finite numbers"),
            (self.temperature >= 0, f"--temperature must be >= 0, got {self.temperature}"),
            (self.top_k >= 0, f"--top-k must be >= 0, got {self.top_k}"),
            (0 < self.top_p <= 1, f"--top-p must be in (0, 1], got {self.top_p}"),
            (self.repetition_penalty > 0, f"--repetition-penalty must be > 0, got {self.repetition_penalty}"),
            (self.no_repeat_ngram >= 0, f"--no-repeat-ngram must be >= 0, got {self.no_repeat_ngram}"),
            (self.seed is None or 0 <= self.seed < 2**32, f"--seed must be in [0, 2^32), got {self.seed}"),
        ]
        for ok, message in checks:
            if not ok:
                raise LyricgenError(message)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0 or self.top_k == 1


# What we recommend for readable lyrics (`lyricgen generate --sample`): it brought the outputs that
# repeat a line three times in a row from 50 of 50 (greedy) to 0 of 50 (scripts/degeneration.py).
RECOMMENDED_SAMPLING = {"temperature": 0.8, "top_p": 0.9, "repetition_penalty": 1.2, "no_repeat_ngram": 4}


MAX_TOKENS = 100_000  # per candidate; lyrics are far shorter, this only keeps memory sane
MAX_SAMPLES = 4_096


@dataclass
class Structure:
    """Bounds on the shape of the text; generation always stops after max_tokens."""
    max_tokens: int = 100
    lines: int = 0  # stop after this many lines (0 = only max_tokens bounds it)
    min_line_tokens: int = 1  # no line break before this many tokens in a line (1: no blank lines)
    max_line_tokens: int = 0  # a line break once a line has this many tokens (0 = off)
    no_copy: bool = False  # never end a line that is a verbatim training line

    def __post_init__(self):
        if not 1 <= self.max_tokens <= MAX_TOKENS:
            raise LyricgenError(f"the number of tokens to generate must be in [1, {MAX_TOKENS}], got {self.max_tokens}")
        if self.lines < 0 or self.min_line_tokens < 0 or self.max_line_tokens < 0:
            raise LyricgenError("--lines, --min-line-tokens and --max-line-tokens must be >= 0")
        if self.max_line_tokens and self.min_line_tokens > self.max_line_tokens:
            raise LyricgenError("--min-line-tokens cannot exceed --max-line-tokens")


@dataclass
class Candidate:
    text: str
    score: float  # mean log-probability per generated token under the model
    tokens: int
    copied_lines: float | None = None  # share of lines found verbatim in the training corpus
    longest_copy: int | None = None  # longest span (characters) found in a training line


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


def penalize_repeats(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """CTRL's repetition penalty: logits of seen tokens are divided by `penalty` when positive and
    multiplied by it when negative. logits (B, V), seen (B, V) bool."""
    if penalty == 1.0:
        return logits
    penalized = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalized, logits)


def banned_by_ngram(history: list[int], n: int) -> set[int]:
    """Tokens that would complete an n-gram already present in `history` (HF's no_repeat_ngram_size)."""
    if n <= 0 or len(history) < n:
        return set()
    prefix = tuple(history[len(history) - n + 1:])
    return {history[i + n - 1] for i in range(len(history) - n + 1) if tuple(history[i:i + n - 1]) == prefix}


def choose_next(logits: torch.Tensor, sampling: Sampling, generator: torch.Generator | None) -> torch.Tensor:
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


def _nucleus_candidates(logits: torch.Tensor, top_p: float, first: int = 256):
    """Logits sorted best first with their token ids: only the best `first` when they already hold
    top_p of the probability in every row (the usual case, and far cheaper than sorting all V)."""
    if logits.shape[-1] > first:
        values, ids = torch.topk(logits, first, dim=-1)
        held = (values.logsumexp(dim=-1) - logits.logsumexp(dim=-1)).exp()
        if bool((held >= top_p).all()):
            return values, ids
    return torch.sort(logits, dim=-1, descending=True)


def _expand(hidden, n: int):
    if isinstance(hidden, tuple):
        return tuple(h.expand(-1, n, -1).contiguous() for h in hidden)
    return hidden.expand(-1, n, -1).contiguous()


@torch.no_grad()
def generate_ids(model, vocab, start_ids: list[int], structure: Structure | None = None,
                 sampling: Sampling | None = None, num_samples: int = 1, originality=None):
    """Generate num_samples continuations in one batch.

    Returns (ids, lengths, scores): ids (B, max_tokens), the number of tokens each candidate kept,
    and each candidate's mean log-probability per token under the (unconstrained) model.
    """
    structure = structure or Structure()
    sampling = sampling or Sampling()
    if not 1 <= num_samples <= MAX_SAMPLES:
        raise LyricgenError(f"--num-samples must be in [1, {MAX_SAMPLES}], got {num_samples}")
    model.eval()
    device = next(model.parameters()).device
    B, V, LB = num_samples, len(vocab), vocab.line_break_id
    generator = None
    if not sampling.greedy:
        generator = torch.Generator()  # private: sampling never touches torch's global RNG
        if sampling.seed is not None:
            generator.manual_seed(sampling.seed)
        else:
            generator.seed()  # a nondeterministic seed for this generator only
    logits, hidden = model(torch.tensor([[LB] + list(start_ids)], device=device))  # (1, T, V)
    logits, hidden = logits[:, -1].expand(B, -1), _expand(hidden, B)
    history = [list(start_ids) for _ in range(B)]
    seen = torch.zeros(B, V, dtype=torch.bool, device=device)
    seen[:, list(start_ids)] = True
    seen[:, [LB, vocab.index[" "]]] = False  # structure tokens are never penalised
    line_len = torch.full((B,), len(start_ids), device=device)
    lines_done = torch.zeros(B, dtype=torch.long, device=device)
    alive = torch.ones(B, dtype=torch.bool, device=device)
    lengths = torch.zeros(B, dtype=torch.long, device=device)
    logp_sum = torch.zeros(B, device=device)
    out = torch.full((B, structure.max_tokens), LB, dtype=torch.long, device=device)
    for t in range(structure.max_tokens):
        logits = logits.float()
        logp = F.log_softmax(logits, dim=-1)  # (B, V), for the score
        adj = penalize_repeats(logits.clone(), seen, sampling.repetition_penalty)
        adj[:, vocab.unk_id] = float("-inf")  # never write "<unk>"
        for b, banned in enumerate(banned_by_ngram(h, sampling.no_repeat_ngram) for h in history):
            if banned:
                adj[b, list(banned)] = float("-inf")
        if structure.min_line_tokens:
            adj[line_len < structure.min_line_tokens, LB] = float("-inf")
        if originality is not None and structure.no_copy:
            for b in range(B):
                if originality.is_training_line(_current_line(vocab, history[b])):
                    adj[b, LB] = float("-inf")
        if sampling.no_repeat_ngram or structure.no_copy:  # only bans can leave a row with no token
            stuck = torch.isinf(adj).all(dim=-1)  # e.g. --no-repeat-ngram 1 once every token is used
            adj[stuck, LB] = 0.0
        must_break = line_len >= structure.max_line_tokens if structure.max_line_tokens else torch.zeros_like(alive)
        if t == structure.max_tokens - 1:
            must_break = torch.ones_like(alive)  # the last token closes the line: text ends with a whole line
        nxt = torch.where(must_break, torch.full_like(line_len, LB), choose_next(adj, sampling, generator))
        nxt = torch.where(alive, nxt, torch.full_like(nxt, LB))
        out[:, t] = nxt
        logp_sum += torch.where(alive, logp.gather(1, nxt.unsqueeze(1)).squeeze(1), torch.zeros_like(logp_sum))
        lengths += alive.long()
        is_break = nxt == LB
        line_len = torch.where(is_break, torch.zeros_like(line_len), line_len + 1)
        lines_done += (is_break & alive).long()
        seen[torch.arange(B, device=device), nxt] = True
        seen[:, [LB, vocab.index[" "]]] = False
        for b, token in enumerate(nxt.tolist()):
            history[b].append(token)
        if structure.lines:
            alive &= lines_done < structure.lines
        if not alive.any():
            break
        logits, hidden = model(nxt.unsqueeze(1), hidden)
        logits = logits[:, -1]
    scores = logp_sum / lengths.clamp(min=1)
    return out, lengths, scores


def _current_line(vocab, history: list[int]) -> str:
    text = []
    for token in reversed(history):
        if token == vocab.line_break_id:
            break
        text.append(vocab.tokens[token])
    return "".join(reversed(text))


class Lyricist:
    """A loaded model ready to write: the Python API behind `lyricgen generate`.

        >>> import lyricgen
        >>> writer = lyricgen.load("checkpoints/best.pt")
        >>> print(writer.generate("月光", lines=4)[0].text)
    """

    def __init__(self, model, vocab, originality=None):
        self.model = model
        self.vocab = vocab
        self.originality = originality

    @classmethod
    def load(cls, path, device="cpu") -> "Lyricist":
        """Everything comes from the checkpoint; no corpus is read."""
        from .originality import Originality

        ckpt = load_checkpoint(path)
        model, vocab = model_from_checkpoint(ckpt, path)
        fp = ckpt.get("originality")
        return cls(model.to(torch.device(device)).eval(), vocab, Originality(fp) if fp else None)

    def prompt(self, start: str) -> tuple[list[int], list[str]]:
        return resolve_start(start, self.vocab)

    def generate(self, start: str, max_tokens: int = 100, lines: int = 0, min_line_tokens: int = 1,
                 max_line_tokens: int = 0, no_copy: bool = False, num_samples: int = 1,
                 temperature: float = 0.0, top_k: int = 0, top_p: float = 1.0,
                 repetition_penalty: float = 1.0, no_repeat_ngram: int = 0, seed: int | None = None,
                 prompt_ids: list[int] | None = None) -> list[Candidate]:
        """Candidates continuing `start`, best (highest mean log-probability) first. `prompt_ids`
        skips resolving `start` again when the caller already did (`prompt`)."""
        structure = Structure(max_tokens, lines, min_line_tokens, max_line_tokens, no_copy)
        sampling = Sampling(temperature, top_k, top_p, repetition_penalty, no_repeat_ngram, seed)
        ids = prompt_ids if prompt_ids is not None else self.prompt(start)[0]
        out, lengths, scores = generate_ids(self.model, self.vocab, ids, structure, sampling, num_samples,
                                            self.originality)
        head = normalize_line(start)
        candidates = []
        for row, n, score in zip(out.tolist(), lengths.tolist(), scores.tolist()):
            text = (head + self.vocab.decode(row[:n])).rstrip("\n")
            if no_copy and self.originality is not None:
                # a line break forced by --max-tokens/--max-line-tokens may still close a training line
                text = "\n".join(x for x in text.split("\n") if not self.originality.is_training_line(x))
            c = Candidate(text=text, score=score, tokens=n)
            if self.originality is not None:
                report = self.originality.report(text)
                c.copied_lines, c.longest_copy = report["copied_lines"], report["longest_copy"]
            candidates.append(c)
        return sorted(candidates, key=lambda c: -c.score)


def load(path, device="cpu") -> Lyricist:
    return Lyricist.load(path, device)
