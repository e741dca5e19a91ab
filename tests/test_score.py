"""scoring/score.py: token perplexity and open-vocabulary bits per character, checked by hand on
models whose distribution is known, the unk and repeat models mixed in."""
import math

import pytest
import torch

from lyricgen.config import ModelConfig
from lyricgen.model import LyricsRNN
from lyricgen.fitted.repeat import RepeatModel
from lyricgen.scoring.score import UNK_CHAR_BITS, Score, Text, count_chars, score, score_parts, token_nll
from lyricgen.fitted.unk import UnkModel
from lyricgen.text.vocab import Vocab

CPU = torch.device("cpu")
TRAIN = [["月光", "下"], ["月光", " ", "分开"], ["我", "不", "分开"]]


@pytest.fixture
def vocab():
    return Vocab.build(TRAIN, min_freq=1)


def uniform_model(vocab_size: int) -> LyricsRNN:
    """Every logit 0: the model's distribution is uniform over the vocabulary, whatever the input."""
    torch.manual_seed(0)
    model = LyricsRNN(ModelConfig(vocab_size=vocab_size, embed_dim=8, hidden_size=16, num_layers=1,
                                  dropout=0.0, embed_dropout=0.0, tie_weights=False))
    with torch.no_grad():
        model.decoder.weight.zero_()
        model.decoder.bias.zero_()
    return model


def random_model(vocab_size: int) -> LyricsRNN:
    torch.manual_seed(0)
    return LyricsRNN(ModelConfig(vocab_size=vocab_size, embed_dim=8, hidden_size=16, num_layers=1,
                                 dropout=0.0, embed_dropout=0.0))


def test_unk_char_bits():
    assert UNK_CHAR_BITS == pytest.approx(math.log2(20992))


def test_count_chars_counts_line_breaks():
    assert count_chars([["月光", "下"], [], ["a", " ", "b"]]) == (3 + 1) + (0 + 1) + (3 + 1)
    assert count_chars([]) == 0


def test_text_encode(vocab):
    text = Text.encode(vocab, [["月光", "龘靐"], ["下"]])
    lb = vocab.line_break_id
    assert text.ids == [vocab.index["月光"], vocab.unk_id, lb, vocab.index["下"], lb]
    assert (text.chars, text.unk_chars) == ((2 + 2 + 1) + (1 + 1), 2)


def test_uniform_model_nll(vocab):
    V = len(vocab)
    ids = [vocab.index[t] for t in ("月光", "下", "\n", "分开", "\n")]
    nll = token_nll(uniform_model(V), ids, vocab.line_break_id, vocab.unk_id, 0.0, CPU)
    assert nll.shape == (5,)
    assert torch.allclose(nll, torch.full((5,), math.log(V)), atol=1e-5)


def test_uniform_model_with_unk_mixture(vocab):
    V, p = len(vocab), 0.2
    ids = [vocab.index["月光"], vocab.unk_id, vocab.line_break_id]
    nll = token_nll(uniform_model(V), ids, vocab.line_break_id, vocab.unk_id, p, CPU).tolist()
    known = -math.log((1 - p) / V)
    unk = -math.log((1 - p) / V + p)
    assert nll == pytest.approx([known, unk, known], abs=1e-5)


def test_score_arithmetic(vocab):
    """Hand-made held-out text with one unseen two-character piece: check every figure."""
    V, p = len(vocab), 0.1
    text = Text.encode(vocab, [["月光", "龘靐"], ["下"]])
    result, plain = score(uniform_model(V), text, vocab, UnkModel(p), CPU)
    assert result == plain  # without a repeat model the two figures are the same
    # ids: 月光 <unk> \n 下 \n
    assert (result.tokens, result.unk, result.unk_chars) == (5, 1, 2)
    assert result.chars == (2 + 2 + 1) + (1 + 1)
    known, unk = -math.log((1 - p) / V), -math.log((1 - p) / V + p)
    assert result.nll == pytest.approx(4 * known + unk, abs=1e-4)
    assert result.loss == pytest.approx(result.nll / 5)
    assert result.ppl == pytest.approx(math.exp(result.nll / 5), rel=1e-6)
    expected_bits = result.nll / math.log(2) + 2 * math.log2(20992)  # the surcharge per unseen char
    assert result.bits == pytest.approx(expected_bits, abs=1e-4)
    assert result.bpc_open == pytest.approx(expected_bits / 7, abs=1e-5)
    d = result.to_dict()
    assert {"tokens", "chars", "unk", "unk_chars", "nll", "bits", "loss", "ppl", "bpc_open"} <= set(d)
    assert d["bpc_open"] == result.bpc_open and d["ppl"] == result.ppl


def test_no_surcharge_without_unseen_characters(vocab):
    V = len(vocab)
    result, _ = score(uniform_model(V), Text.encode(vocab, [["月光", "下"]]), vocab, UnkModel(0.0), CPU)
    assert result.unk_chars == 0
    assert result.bits == pytest.approx(3 * math.log2(V), abs=1e-4)
    assert result.bpc_open == pytest.approx(3 * math.log2(V) / 4, abs=1e-5)


def test_hidden_state_carried_across_chunks(vocab):
    model = random_model(len(vocab))
    ids = [vocab.index[t] for t in ("月光", "下", "\n", "我", "不", "分开", "\n", "月光")] * 3
    whole = token_nll(model, ids, vocab.line_break_id, vocab.unk_id, 0.05, CPU)
    chunked = token_nll(model, ids, vocab.line_break_id, vocab.unk_id, 0.05, CPU, chunk_len=5)
    assert torch.allclose(whole, chunked, atol=1e-5)


def test_score_counts_unk_ids(vocab):
    model = uniform_model(len(vocab))
    text = Text(ids=[vocab.unk_id, vocab.index["下"], vocab.unk_id], chars=9, unk_chars=4)
    result, _ = score(model, text, vocab, UnkModel(0.1), CPU)
    assert isinstance(result, Score)
    assert (result.tokens, result.unk, result.unk_chars, result.chars) == (3, 2, 4, 9)
    assert result.bits == pytest.approx(result.nll / math.log(2) + 4 * UNK_CHAR_BITS)


def test_empty_text_scores_nothing(vocab):
    result, plain = score(uniform_model(len(vocab)), Text([], 0, 0), vocab, UnkModel(0.1), CPU)
    assert result == plain and (result.tokens, result.nll, result.bits) == (0, 0.0, 0.0)
    assert (result.loss, result.ppl, result.bpc_open) == (0.0, 1.0, 0.0)


def test_score_with_repeat_model(vocab):
    V = len(vocab)
    tok = [vocab.index[t] for t in ("月光", "下", "\n")]
    ids = tok * 4  # a chorus
    repeat = RepeatModel.fit(ids)
    text = Text(ids=ids, chars=16, unk_chars=0)
    mixed, plain = score(uniform_model(V), text, vocab, UnkModel(0.0), CPU, repeat)
    assert plain.nll == pytest.approx(len(ids) * math.log(V), abs=1e-4)
    assert mixed.nll < plain.nll  # the repeats are predicted
    assert mixed.nll == pytest.approx(float(repeat.mix(torch.full((len(ids),), math.log(V)), ids).sum()), abs=1e-4)
    assert mixed.bits == pytest.approx(mixed.nll / math.log(2))
    assert (mixed.tokens, mixed.chars) == (plain.tokens, plain.chars)
    # a repeat model without a table (an old checkpoint's) changes nothing
    assert score(uniform_model(V), text, vocab, UnkModel(0.0), CPU, RepeatModel())[0] == plain


def test_scoring_reads_the_mixture_weight_and_never_fits_it(vocab):
    """Scoring the run's validation text (the stored train-only n-gram) or any other text leaves the
    weight as it was; a different weight gives a different score (training fits it: test_trainer)."""
    from lyricgen.fitted.mixture import DEFAULT_WEIGHT, Mixture

    text = Text.encode(vocab, [["月光", "下"], ["我", "不", "分开"]])
    train = [vocab.line_break_id] + Text.encode(vocab, TRAIN).ids
    mixture = Mixture.fit(train, text.ids, len(vocab), vocab.line_break_id, order=3)
    model, unk = random_model(len(vocab)), UnkModel(0.1)
    parts = score_parts(model, text, vocab, unk, CPU, None, mixture, validation=True)
    assert score(model, text, vocab, unk, CPU, None, mixture, validation=True) == (parts["model"], parts["network"])
    score_parts(model, Text.encode(vocab, [["下"]]), vocab, unk, CPU, None, mixture)
    assert mixture.weight == DEFAULT_WEIGHT
    mixture.weight = 0.9
    reweighted = score_parts(model, text, vocab, unk, CPU, None, mixture, validation=True)
    assert reweighted["model"].nll != pytest.approx(parts["model"].nll) and reweighted["network"] == parts["network"]
    assert mixture.weight == 0.9
