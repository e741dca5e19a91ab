import math

import pytest
import torch

from lyricgen.evaluate import (UNK_CHAR_BITS, Score, count_chars, good_turing_unk_prob, mix_repeats, score,
                               score_lines, token_nll)
from lyricgen.repeat import MAX_MATCH, calibrate, predictions
from lyricgen.model import LyricsRNN, ModelConfig
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


def test_score_lines_arithmetic(vocab):
    """Hand-made held-out text with one unseen two-character piece: check every figure."""
    V, p = len(vocab), 0.1
    lines = [["月光", "龘靐"], ["下"]]
    result, plain = score_lines(uniform_model(V), vocab, lines, p, CPU)
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


def test_no_surcharge_without_unseen_characters(vocab):
    V = len(vocab)
    result, _ = score_lines(uniform_model(V), vocab, [["月光", "下"]], 0.0, CPU)
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
    ids = [vocab.unk_id, vocab.index["下"], vocab.unk_id]
    result, _ = score(model, ids, chars=9, unk_chars=4, vocab=vocab, unk_prob=0.1, device=CPU)
    assert isinstance(result, Score)
    assert (result.tokens, result.unk, result.unk_chars, result.chars) == (3, 2, 4, 9)
    assert result.bits == pytest.approx(result.nll / math.log(2) + 4 * UNK_CHAR_BITS)


def test_good_turing_unk_prob():
    tokens = ["<unk>", "\n", " ", "a", "bc", "d", "e"]
    counts = [0, 5, 0, 1, 1, 3, 1]
    assert good_turing_unk_prob(counts, tokens, total=20) == pytest.approx(2 / 20)  # a and e
    assert good_turing_unk_prob([0, 5, 0, 4], ["<unk>", "\n", " ", "a"], total=9) == pytest.approx(1 / 9)


# -- the repeat model ------------------------------------------------------------------------------------
def test_repeat_predictions_follow_the_longest_recent_match():
    assert predictions([1, 2, 3, 4, 1, 2, 3, 4]) == [(-1, 0)] * 6 + [(3, 2), (4, 3)]
    assert predictions([5, 6, 7, 5, 6, 8]) == [(-1, 0)] * 5 + [(7, 2)]
    assert predictions([1, 2, 3]) == [(-1, 0)] * 3


def test_repeat_calibration():
    alpha = calibrate([5, 6, 7, 5, 6, 7])  # one prediction at match length 2, and it is right
    assert len(alpha) == MAX_MATCH + 1
    assert alpha[2] == pytest.approx(1 / 2)  # add-one smoothing
    assert sum(alpha) == pytest.approx(1 / 2)


@pytest.mark.parametrize("ids, hit", [([5, 6, 7, 5, 6, 7], True), ([5, 6, 7, 5, 6, 8], False)])
def test_repeat_mixture_arithmetic(ids, hit):
    V, a = 9, 0.5
    nll = torch.full((len(ids),), math.log(V))  # a uniform network
    alpha = [0.0] * (MAX_MATCH + 1)
    alpha[2] = a
    mixed = mix_repeats(nll, ids, alpha)
    assert mixed[:5].tolist() == pytest.approx([math.log(V)] * 5)  # no prediction: the network alone
    expected = -math.log((1 - a) / V + a) if hit else -math.log((1 - a) / V)
    assert float(mixed[5]) == pytest.approx(expected)


def test_score_with_repeat_model(vocab):
    V = len(vocab)
    tok = [vocab.index[t] for t in ("月光", "下", "\n")]
    ids = tok * 4  # a chorus
    alpha = calibrate(ids)
    mixed, plain = score(uniform_model(V), ids, chars=16, unk_chars=0, vocab=vocab, unk_prob=0.0, device=CPU,
                         repeat_alpha=alpha)
    assert plain.nll == pytest.approx(len(ids) * math.log(V), abs=1e-4)
    assert mixed.nll < plain.nll  # the repeats are predicted
    assert mixed.bits == pytest.approx(mixed.nll / math.log(2))
    assert (mixed.tokens, mixed.chars) == (plain.tokens, plain.chars)
