"""Judging candidate lines as a reader would: the features of a line, the reranker's score over them
(fitted/rerank.py holds the weights), and fitting that reranker after training.

    reranker = fit_reranker(model, vocab, side, train_stream, val_ids)    # training/trainer.py
    judge = Judge(reranker, words, originality, habits)                    # song.py ranks by it
    scores = judge.scores([(text, line), ...], earlier_lines)

The features of a line (FEATURES, in order), each cheap to compute from its text and the search's
numbers, none needing the corpus (only what the checkpoint carries):

    base_score        the model's mean log-probability per token (its line break included), less
                      the whole-word penalties (words.py) per token: the ranking without a reranker
    length_z          (characters - the corpus's mean) / its spread (habits.line_chars)
    length_off        |length_z|
    copy              the longest span shared with a training line / phrases.COPY_BOUND
    corpus_spans      share of the line's 4-character windows found in the training text
    repeated_chars    1 - distinct characters / characters
    single_words      share of the line's words (jieba's dictionary, words.segment) of one character
    word_chars        characters per word
    previous_overlap  share of the line's distinct characters that are in the line before it

Fitting (residual EBM reranking, Deng et al. 2020): for up to MAX_CONTEXTS lines of the validation
text, spread evenly, the CONTEXT_LINES lines before it are the context; the real line is set against
the lines the model writes there with the line search, in the real line's length window
(+-LENGTH_SLACK characters, no rhyme): a beam of K (what greedy writing ranks: every line it
finishes) and K rows sampled with the --sample preset (what sampled writing ranks), less duplicates,
the real line itself and training lines (which writing never chooses). The model here mixes the
network with an n-gram fitted on the training text alone: the checkpoint's n-gram has also counted
the validation text, and would make every real line look likelier than the model's own.

Measured on the Jay Chou protocol (train90, --time-budget 300 on a 2-core CPU shared with other jobs,
so the network got 102 steps; 60 contexts, 18 held out, 1,015 held-out pairs): the real line
outranks a model line in 79.2% of the held-out pairs, where the ranking it replaces (mean
log-probability less the word penalties) has it 6.9%: the real line is less probable than nearly
every line the model writes for its context. A free weight on that ranking fits to -1.0 (93.3% held
out): such a reranker would choose the least likely candidate, so its weight is held at 1
(fitted/rerank.py). What tells a real line then is that it copies less (the longest copied span,
-4.9 per COPY_BOUND characters; the share of 4-character windows found in the training text, -2.2),
keeps near the corpus's usual length (-2.2 per spread off it) and shares more characters with the
line before it (+2.8: the search bans an earlier line's phrases). Fitting cost 88 CPU seconds (102 s
of wall time; 240-400 s when the machine was busier). Tried and dropped: one search per context,
beam and sampled by turns (87 against 130 CPU seconds, but 59% held out against 78% with both, on
an earlier feature set); fused and dangling as features (above); the bare log-probability as the
score's start (greedy songs then ended 6.2% of their lines inside a phrase, against none).
"""
import random
import time
from dataclasses import replace

import torch

from ..config import generation_configs
from ..fitted.habits import Habits, count_chars
from ..fitted.mixture import Mixture
from ..fitted.ngram import KneserNey
from ..fitted.originality import MIN_SPAN
from ..fitted.rerank import Reranker
from ..text.tokenizer import normalize_line
from .generate import drain
from .lines import LineRequest, LineSearch
from .phrases import COPY_BOUND, CopyGuard
from .predictor import Predictor
from .sampling import make_generator
from .words import _HAN_RUN, shared_words

# fused and dangling are in base_score with words.py's fixed penalties and are no features of their own:
# the line search penalises both while it writes, so its lines have fewer than real ones, and a fit
# that had them learned to reward both (+2.2 and +1.0, outweighing the penalties)
FEATURES = ("base_score", "length_z", "length_off", "copy", "corpus_spans", "repeated_chars", "single_words",
            "word_chars", "previous_overlap")
MAX_CONTEXTS = 60  # validation lines judged at training time (TrainConfig.rerank_lines; the cost is per line)
CONTEXT_LINES = 4  # lines before each, fed to the model as the song so far
K = 8  # rows per context and way of writing (beam, sampled); the beam returns every line it finishes
LENGTH_SLACK = 2  # the model's lines may be this many characters shorter or longer than the real one
WINDOW = 4  # characters in a corpus_spans window (the originality hashes' shortest span)


class Judge:
    """A line's features and the reranker's score of them, for one checkpoint."""

    def __init__(self, reranker: Reranker | None, words, originality, habits):
        self.reranker, self.words, self.originality = reranker, words, originality
        mean = habits.mean_chars
        var = sum(p * (n - mean) ** 2 for n, p in enumerate(habits.line_chars))
        self.mean_chars, self.sd_chars = mean, max(var ** 0.5, 1.0)

    @staticmethod
    def usable(reranker: Reranker | None) -> bool:
        """Whether a stored reranker's features are this lyricgen's (else it is not used)."""
        return reranker is not None and tuple(reranker.names) == FEATURES

    def features(self, text: str, logp: float, n: int, previous: str = "") -> list[float]:
        line = normalize_line(text)
        chars = count_chars(line)
        z = (chars - self.mean_chars) / self.sd_chars
        bare = line.replace(" ", "")
        orig = self.originality
        copy = orig.longest_copy(line) / COPY_BOUND if orig is not None else 0.0
        windows = [bare[i:i + WINDOW] for i in range(len(bare) - WINDOW + 1)]
        spans = (sum(orig._has(orig.span_hashes, orig.hash(w)) for w in windows) / len(windows)
                 if orig is not None and windows and WINDOW >= MIN_SPAN else 0.0)
        words = [w for run in _HAN_RUN.findall(line) for w in self.words.segment(run)]
        han = set("".join(_HAN_RUN.findall(line)))
        before = set(normalize_line(previous))
        return [(logp - self.words.penalty(line)) / max(n, 1), z, abs(z), copy,
                spans, 1 - len(set(bare)) / len(bare) if bare else 0.0,
                sum(len(w) == 1 for w in words) / len(words) if words else 0.0,
                sum(map(len, words)) / len(words) if words else 0.0,
                len(han & before) / len(han) if han else 0.0]

    def scores(self, found: list, earlier: list[str] = ()) -> list[float]:
        """The reranker's score of each (text, Line) of the line search, after the lines `earlier`."""
        previous = earlier[-1] if earlier else ""
        rows = [self.features(text, line.logp, line.n, previous) for text, line in found]
        return self.reranker.score(rows).tolist() if rows else []


def train_only_mixture(mixture: Mixture | None, train_stream, vocab_size: int) -> Mixture | None:
    """The checkpoint's mixture with its n-gram refitted on the training text alone (same order and
    weights): the validation lines must be as new to the model as a song's are."""
    if mixture is None:
        return None
    ngram = KneserNey.fit(torch.as_tensor(train_stream, dtype=torch.int64), vocab_size, mixture.ngram.order)
    return Mixture(ngram, mixture.weight, None, mixture.base, mixture.base_weight, None)


def split_lines(ids: list[int], line_break: int) -> list[list[int]]:
    """A stream of ids (line breaks included) as its lines' ids."""
    lines, line = [], []
    for t in ids:
        if t == line_break:
            lines.append(line)
            line = []
        else:
            line.append(t)
    if line:
        lines.append(line)
    return lines


@torch.no_grad()
def line_logp(predictor, logp, state, stream: list[int], ids: list[int], line_break: int) -> float:
    """ln p of `ids` and a line break after `stream` (the text so far, its leading line break
    included), whose log-probabilities `logp` (1, V) and state the predictor gave: the network reads
    the line in one pass and each n-gram scores it from the whole stream (what stepping the predictor
    token by token gives, up to float rounding, in one call instead of one per token)."""
    first = float(logp[0, ids[0] if ids else line_break])
    if not ids:
        return first
    logits, _ = predictor.model(torch.tensor([ids], device=predictor.device), state.hidden)  # (1, T, V)
    targets = torch.tensor(ids[1:] + [line_break])
    net = torch.log_softmax(logits[0].float(), -1).cpu().gather(1, targets.unsqueeze(1)).squeeze(1).double()
    mixture = predictor.mixture
    if mixture is None:
        return first + float(net.sum())
    full = torch.tensor(stream + ids + [line_break])
    grams = [torch.log(g.prob(g.stream_states(full)[-len(targets):], targets)) for g in mixture.ngrams]
    return first + float(mixture.mix_logp(net, *grams).sum())


@torch.no_grad()
def fit_reranker(model, vocab, side, train_stream, val_ids, seed: int = 0, max_contexts: int = MAX_CONTEXTS,
                 k: int = K) -> Reranker | None:
    """The reranker of a trained model (see the module's docstring), or None when the validation
    text has too few lines to fit and hold out (fitted/rerank.py: MIN_CONTEXTS)."""
    started, cpu = time.monotonic(), time.process_time()
    lb = vocab.line_break_id
    lines = split_lines(list(val_ids), lb)
    # lines with a character the model never saw are left out: "<unk>" would tell them from the model's
    targets = [i for i, ids in enumerate(lines) if normalize_line(vocab.decode(ids)) and vocab.unk_id not in ids]
    if len(targets) > max_contexts:  # spread evenly over the text
        targets = [targets[round(j * (len(targets) - 1) / (max_contexts - 1))] for j in range(max_contexts)]
    predictor = Predictor(model, train_only_mixture(side.mixture, train_stream, len(vocab)))
    habits = side.habits or Habits.from_vocab(vocab)
    words = shared_words()
    search = LineSearch(predictor, vocab, habits.token_classes, CopyGuard.of(side.originality, vocab.tokens), words)
    judge = Judge(None, words, side.originality, habits)
    greedy = generation_configs({})[0]
    sampled = generation_configs({}, sample=True)[0]
    min_tokens = generation_configs({})[1].min_line_tokens
    real_rows, cand_rows, base_real, base_cands = [], [], [], []
    rng = random.Random(seed)
    for i in targets:
        before = lines[max(0, i - CONTEXT_LINES):i]
        history = [t for ids in before for t in ids + [lb]]
        logp, state = predictor.start([lb] + history)
        real = normalize_line(vocab.decode(lines[i]))
        previous = normalize_line(vocab.decode(before[-1])) if before else ""
        real_logp = line_logp(predictor, logp, state, [lb] + history, lines[i], lb)
        chars = count_chars(real)
        req = LineRequest(low=max(1, chars - LENGTH_SLACK), high=chars + LENGTH_SLACK, min_tokens=min_tokens)
        seen, rows, base = {real}, [], []
        for how in (greedy, replace(sampled, seed=rng.randrange(2**31))):
            ctx = search.context(history, how, before, logp, state)
            for line in drain(search.search(ctx, req, k, how, make_generator(how))):
                text = normalize_line(vocab.decode(line.ids))
                if not text or text in seen or (side.originality is not None
                                                and side.originality.is_training_line(text)):
                    continue
                seen.add(text)
                rows.append(judge.features(text, line.logp, line.n, previous))
                base.append((line.logp - words.penalty(text)) / line.n)
        n = len(lines[i]) + 1
        real_rows.append(judge.features(real, real_logp, n, previous))
        base_real.append((real_logp - words.penalty(real)) / n)
        cand_rows.append(rows)
        base_cands.append(base)
    reranker = Reranker.fit(list(FEATURES), real_rows, cand_rows, seed, (base_real, base_cands))
    if reranker is not None:
        reranker.seconds = time.monotonic() - started
        reranker.extra = {"k": k, "context_lines": CONTEXT_LINES, "length_slack": LENGTH_SLACK,
                          "model_lines": sum(map(len, cand_rows)),
                          "cpu_seconds": round(time.process_time() - cpu, 1)}  # wall time is noisy on a shared CPU
    return reranker
