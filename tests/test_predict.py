import copy

import pytest
import torch

from lyricgen.errors import LyricgenError
from lyricgen.predict import Sampling, Structure, choose_next, generate_ids, resolve_start
from lyricgen.text.vocab import Vocab


def no_jieba(text):
    raise AssertionError(f"segmented {text!r}: an in-vocabulary start word must not need jieba")


@pytest.fixture(scope="module")
def small_vocab():
    return Vocab.build([["不", "分开"], ["月光", "不", "下"], ["分开", "月光"]], min_freq=1)


def gen(model, vocab, start_ids, max_tokens=30, sampling=None, num_samples=1) -> list[list[int]]:
    """Generated ids per sample (only what generation kept), blank lines allowed like plain argmax."""
    out, lengths, _ = generate_ids(model, vocab, start_ids, Structure(max_tokens=max_tokens, min_line_tokens=0), sampling, num_samples)
    return [row[:n] for row, n in zip(out.tolist(), lengths.tolist())]


# -- resolve_start -------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["月光", " 月光\u3000", "\t月光\n"])
def test_in_vocab_word_is_one_id_without_segmenting(small_vocab, text):
    assert resolve_start(text, small_vocab, segment=no_jieba) == ([small_vocab.index["月光"]], [])


def test_multi_piece_fallback(small_vocab):
    v = small_vocab
    assert "不分开" not in v
    assert resolve_start("不分开", v) == ([v.index["不"], v.index["分开"]], [])  # jieba: 不 + 分开
    ids, unknown = resolve_start("月光不分开", v, segment=lambda t: ["月光", "不分开"])
    assert ids == [v.index["月光"], v.index["不"], v.index["分"], v.index["开"]]  # spelled out
    assert unknown == []


def test_unknown_characters_are_left_out(small_vocab):
    v = small_vocab
    ids, unknown = resolve_start("月光龘", v, segment=lambda t: ["月光", "龘"])
    assert ids == [v.index["月光"]] and unknown == ["龘"]


def test_fully_unknown_start_suggests_words(small_vocab):
    with pytest.raises(LyricgenError) as info:
        resolve_start("xqz", small_vocab)
    message = str(info.value)
    assert "\n" not in message and "xqz" in message
    assert "月光" in message and "分开" in message


@pytest.mark.parametrize("text", ["", "   ", "\u3000\t"])
def test_empty_start_is_an_error(small_vocab, text):
    with pytest.raises(LyricgenError, match="empty"):
        resolve_start(text, small_vocab, segment=no_jieba)


# -- choosing tokens ---------------------------------------------------------------------------------
def test_choose_next_greedy_is_argmax():
    logits = torch.tensor([[0.1, 2.0, -1.0], [3.0, 0.0, 2.9]])
    assert choose_next(logits, Sampling(), None).tolist() == [1, 0]
    assert choose_next(logits, Sampling(temperature=1.0, top_k=1), torch.Generator()).tolist() == [1, 0]


def test_top_k_only_draws_from_the_k_best():
    logits = torch.tensor([[0.0, 1.0, 0.9, 0.95, -2.0]])
    g = torch.Generator().manual_seed(0)
    draws = {int(choose_next(logits, Sampling(temperature=5.0, top_k=2), g)) for _ in range(200)}
    assert draws == {1, 3}


def test_top_p_keeps_the_nucleus():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    g = torch.Generator().manual_seed(0)
    draws = {int(choose_next(logits, Sampling(temperature=1.0, top_p=0.7), g)) for _ in range(300)}
    assert draws == {0, 1}  # 0.5 < 0.7 needs the second token; the third is not needed


@pytest.mark.parametrize("kw", [{"temperature": -1}, {"top_k": -1}, {"top_p": 0.0}, {"top_p": 1.5}])
def test_sampling_rejects_bad_values(kw):
    with pytest.raises(LyricgenError):
        Sampling(**kw)


def test_tiny_temperature_acts_greedy():
    logits = torch.tensor([[0.5, 0.2, -1.0]])
    assert choose_next(logits, Sampling(temperature=1e-45), torch.Generator().manual_seed(0)).tolist() == [0]


# -- generation ----------------------------------------------------------------------------------------
def reference_greedy(model, vocab, start_ids, n):
    """Greedy decoding the slow way: re-read the whole prefix every step."""
    prefix = [vocab.line_break_id] + list(start_ids)
    out = []
    with torch.no_grad():
        for _ in range(n):
            logits, _ = model(torch.tensor([prefix]))
            logits = logits[0, -1].clone()
            logits[vocab.unk_id] = float("-inf")
            out.append(int(logits.argmax()))
            prefix.append(out[-1])
    return out


def test_greedy_is_deterministic_and_carries_state(tiny_model):
    model, vocab = tiny_model
    start = [vocab.index["月光"]]
    a = gen(model, vocab, start, 25)
    assert a == gen(model, vocab, start, 25)
    assert len(a[0]) == 25
    # the last token may be a forced line break; everything before it is plain argmax
    assert a[0][:24] == reference_greedy(model, vocab, start, 24)


def test_never_writes_unk(tiny_model):
    model, vocab = tiny_model
    model = copy.deepcopy(model)
    with torch.no_grad():
        model.decoder.bias[vocab.unk_id] = 1e4  # <unk> is by far the most likely token everywhere
    start = [vocab.index["月光"]]
    for sampling in (Sampling(), Sampling(temperature=1.0, seed=0), Sampling(temperature=1.0, top_p=0.5, seed=1)):
        for row in gen(model, vocab, start, 30, sampling, num_samples=2):
            assert vocab.unk_id not in row


def test_sampling_is_reproducible_per_seed(tiny_model):
    model, vocab = tiny_model
    start = [vocab.index["月光"]]
    a = gen(model, vocab, start, 30, Sampling(temperature=2.0, seed=7))
    assert a == gen(model, vocab, start, 30, Sampling(temperature=2.0, seed=7))
    assert a != gen(model, vocab, start, 30, Sampling(temperature=2.0, seed=8))
    assert a != gen(model, vocab, start, 30)


def test_top_k_1_and_tiny_top_p_equal_greedy(tiny_model):
    model, vocab = tiny_model
    start = [vocab.index["月光"]]
    greedy = gen(model, vocab, start, 30)
    assert gen(model, vocab, start, 30, Sampling(temperature=1.5, top_k=1, seed=3)) == greedy
    assert gen(model, vocab, start, 30, Sampling(temperature=1.5, top_p=1e-6, seed=3)) == greedy


def test_structure_rejects_zero_tokens():
    with pytest.raises(LyricgenError):
        Structure(max_tokens=0)


def test_lyricist_writes_from_the_checkpoint_alone(tiny_run):
    import lyricgen

    writer = lyricgen.load(tiny_run / "best.pt")
    candidates = writer.generate("月光", max_tokens=12)
    assert len(candidates) == 1
    assert candidates[0].text.startswith("月光") and len(candidates[0].text) > 2
    assert writer.generate("月光", max_tokens=12)[0].text == candidates[0].text
    with pytest.raises(LyricgenError):
        writer.generate("xqz")
