"""Writing a text token by token: resolve a start word, then extend it under structure bounds.

The hidden state is carried from step to step (the prefix is never re-read). The model is primed
with a line break - the context every lyric line starts from in training - then the start word.
Candidates are written in one batch; each step's token is chosen by sampling.choose_next from the
logits after the bans (sampling.constrain's repeats, n-grams and "<unk>"; line bounds, copied lines)
are applied. write_ids yields each step's tokens; generate_ids collects them.
"""
import torch

from ..config import SamplingConfig, StructureConfig, token_budget
from ..errors import LyricgenError
from ..text.tokenizer import normalize_line
from .predictor import Predictor
from .sampling import Ngrams, choose_next, constrain, make_generator


class StartWordError(LyricgenError):
    """The start word is empty, or the model knows no part of it; `suggestions` are words it knows."""

    def __init__(self, message: str, suggestions: list[str]):
        super().__init__(message)
        self.suggestions = suggestions


def resolve_start(text: str, vocab, segment=None) -> tuple[list[int], list[str]]:
    """Ids for a start word or phrase, and the characters that had to be left out.

    A vocabulary entry is used as is. Otherwise the text is segmented with jieba (imported only
    now), and each piece that is not an entry is spelled as its characters, so 不分开 becomes
    不 + 分开. Only when nothing at all is known is it an error, with known words suggested.
    """
    text = normalize_line(text)
    if not text:  # the one place this rule is checked (CLI, Python API and HTTP all come here)
        raise StartWordError("the start word is empty", vocab.most_frequent(12))
    if text in vocab:
        return [vocab.index[text]], []
    if segment is None:
        from ..text.tokenizer import segment
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
        known = vocab.most_frequent(12)
        raise StartWordError(f"no part of the start word {text!r} is in the vocabulary; try one of: {' '.join(known)}",
                             known)
    return ids, unknown


def generate_ids(predictor, vocab, start_ids: list[int], structure: StructureConfig | None = None,
                 sampling: SamplingConfig | None = None, originality=None):
    """write_ids run to its end: (ids, lengths, scores)."""
    return drain(write_ids(predictor, vocab, start_ids, structure, sampling, originality))


def drain(steps):
    """Run a writing generator to its end, ignoring what it yields: its return value."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


def mapped(steps, show):
    """A writing generator that yields show(x) for each x `steps` yields, and returns what it returns."""
    while True:
        try:
            x = next(steps)
        except StopIteration as done:
            return done.value
        yield show(x)


@torch.no_grad()
def write_ids(predictor, vocab, start_ids: list[int], structure: StructureConfig | None = None,
              sampling: SamplingConfig | None = None, originality=None):
    """Generate sampling.num_samples continuations in one batch; `predictor` is what they are
    sampled from (a Predictor, or a bare network, which is wrapped in one).

    Yields each step's token ids (B,) as a list, -1 for the candidates that had finished: a consumer
    streams them, or stops iterating to cancel. Returns (ids, lengths, scores): ids (B, max_tokens:
    config.token_budget), the number of tokens each candidate kept, and each candidate's mean
    log-probability per token under the (unconstrained) model.
    """
    structure = structure or StructureConfig()
    sampling = sampling or SamplingConfig()
    if not isinstance(predictor, Predictor):
        predictor = Predictor(predictor)
    device = predictor.device
    B, V, LB = sampling.num_samples, len(vocab), vocab.line_break_id
    max_tokens = token_budget(structure)
    generator = make_generator(sampling)
    logp, state = predictor.start([LB] + list(start_ids), B)  # (B, V)
    history = [list(start_ids) for _ in range(B)]
    ngrams = [Ngrams(sampling.no_repeat_ngram, start_ids) for _ in range(B)] if sampling.no_repeat_ngram else None
    seen = torch.zeros(B, V, dtype=torch.bool, device=device)
    seen[:, list(start_ids)] = True
    seen[:, [LB, vocab.index[" "]]] = False  # structure tokens are never penalised
    line_len = torch.full((B,), len(start_ids), device=device)
    lines_done = torch.zeros(B, dtype=torch.long, device=device)
    alive = torch.ones(B, dtype=torch.bool, device=device)
    lengths = torch.zeros(B, dtype=torch.long, device=device)
    logp_sum = torch.zeros(B, device=device)
    out = torch.full((B, max_tokens), LB, dtype=torch.long, device=device)
    for t in range(max_tokens):
        # logp itself, unconstrained, is what the score adds up
        adj = constrain(logp, sampling, vocab.unk_id, seen, ngrams)
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
        if t == max_tokens - 1:
            must_break = torch.ones_like(alive)  # the last token closes the line: text ends with a whole line
        nxt = torch.where(must_break, torch.full_like(line_len, LB), choose_next(adj, sampling, generator))
        nxt = torch.where(alive, nxt, torch.full_like(nxt, LB))
        out[:, t] = nxt
        kept = alive.clone()  # this step's token is part of the text of these candidates
        logp_sum += torch.where(alive, logp.gather(1, nxt.unsqueeze(1)).squeeze(1), torch.zeros_like(logp_sum))
        lengths += alive.long()
        is_break = nxt == LB
        line_len = torch.where(is_break, torch.zeros_like(line_len), line_len + 1)
        lines_done += (is_break & alive).long()
        seen[torch.arange(B, device=device), nxt] = True
        seen[:, [LB, vocab.index[" "]]] = False
        for b, token in enumerate(nxt.tolist()):
            history[b].append(token)
            if ngrams is not None:
                ngrams[b].extend([token])
        if structure.lines:
            alive &= lines_done < structure.lines
        yield torch.where(kept, nxt, torch.full_like(nxt, -1)).tolist()
        if not alive.any():
            break
        logp, state = predictor.step(state, nxt)
    scores = logp_sum / lengths.clamp(min=1)
    return out, lengths, scores


def _current_line(vocab, history: list[int]) -> str:
    text = []
    for token in reversed(history):
        if token == vocab.line_break_id:
            break
        text.append(vocab.tokens[token])
    return "".join(reversed(text))
