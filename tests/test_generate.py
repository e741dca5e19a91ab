"""writing/generate.py: the start word, generation carrying its hidden state, seeds, the n-gram bans
and every structure bound (lines, tokens, line lengths, whole lines, no blank lines).

Most tests use `overfit_writer`, a model that memorised ten four-token lines (conftest), so its
behaviour is predictable enough to test structure exactly."""
import copy
import dataclasses
from itertools import product

import pytest
import torch

from conftest import OVERFIT_TOKENS_PER_LINE
from lyricgen.config import SamplingConfig, StructureConfig
from lyricgen.errors import LyricgenError
from lyricgen.text.vocab import Vocab
from lyricgen.writing.generate import generate_ids, resolve_start

SAMPLINGS = [SamplingConfig(), SamplingConfig(temperature=1.0, seed=1),
             SamplingConfig(temperature=1.5, top_k=5, seed=2),
             SamplingConfig(temperature=1.0, top_p=0.9, seed=3), SamplingConfig(temperature=2.0, seed=4)]


def gen_ids(writer, start, structure, sampling=None, k=1):
    """(start ids, generated ids per candidate: only the tokens generation kept)."""
    ids, _ = writer.prompt(start)
    sampling = dataclasses.replace(sampling or SamplingConfig(), num_samples=k)
    out, lengths, scores = generate_ids(writer.model, writer.vocab, ids, structure, sampling)
    assert out.shape == (k, structure.max_tokens) and scores.shape == (k,)
    return ids, [row[:n] for row, n in zip(out.tolist(), lengths.tolist())]


def lines_of(start_ids, ids, lb):
    """Token counts of the lines of start + ids, as (count, ended by a line break, position of that break)."""
    lines, count = [], len(start_ids)
    for t, token in enumerate(ids):
        if token == lb:
            lines.append((count, True, t))
            count = 0
        else:
            count += 1
    if count:
        lines.append((count, False, None))
    return lines


# -- the start word ------------------------------------------------------------------------------------
def no_jieba(text):
    raise AssertionError(f"segmented {text!r}: an in-vocabulary start word must not need jieba")


@pytest.fixture(scope="module")
def small_vocab():
    return Vocab.build([["不", "分开"], ["月光", "不", "下"], ["分开", "月光"]], min_freq=1)


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


# -- decoding -----------------------------------------------------------------------------------------
def plain(model, vocab, start_ids, max_tokens=30, sampling=None, num_samples=1) -> list[list[int]]:
    """Generated ids per sample, blank lines allowed like plain argmax."""
    sampling = dataclasses.replace(sampling or SamplingConfig(), num_samples=num_samples)
    out, lengths, _ = generate_ids(model, vocab, start_ids, StructureConfig(max_tokens=max_tokens, min_line_tokens=0),
                                   sampling)
    return [row[:n] for row, n in zip(out.tolist(), lengths.tolist())]


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
    a = plain(model, vocab, start, 25)
    assert a == plain(model, vocab, start, 25)
    assert len(a[0]) == 25
    # the last token may be a forced line break; everything before it is plain argmax
    assert a[0][:24] == reference_greedy(model, vocab, start, 24)


def test_never_writes_unk(tiny_model):
    model, vocab = tiny_model
    model = copy.deepcopy(model)
    with torch.no_grad():
        model.decoder.bias[vocab.unk_id] = 1e4  # <unk> is by far the most likely token everywhere
    start = [vocab.index["月光"]]
    for sampling in (SamplingConfig(), SamplingConfig(temperature=1.0, seed=0),
                     SamplingConfig(temperature=1.0, top_p=0.5, seed=1)):
        for row in plain(model, vocab, start, 30, sampling, num_samples=2):
            assert vocab.unk_id not in row


def test_a_seed_reproduces_sampling_and_seeds_differ(tiny_model, overfit_writer, tiny_run, cli):
    model, vocab = tiny_model
    start = [vocab.index["月光"]]
    a = plain(model, vocab, start, 30, SamplingConfig(temperature=2.0, seed=7))
    assert a == plain(model, vocab, start, 30, SamplingConfig(temperature=2.0, seed=7))
    assert a != plain(model, vocab, start, 30, SamplingConfig(temperature=2.0, seed=8))
    assert a != plain(model, vocab, start, 30)
    runs = [overfit_writer.generate("晨光", max_tokens=30, temperature=1.0, seed=seed)[0].text for seed in range(5)]
    assert [overfit_writer.generate("晨光", max_tokens=30, temperature=1.0, seed=seed)[0].text
            for seed in range(5)] == runs
    assert len(set(runs)) >= 2 and all(text.startswith("晨光") for text in runs)
    for options in ([], ["--temperature", "1.5", "--seed", "1"]):  # and through the command line
        argv = ["generate", "月光", "--checkpoint", tiny_run / "best.pt", "--max-tokens", "15", *options]
        rc, first, err = cli(*argv)
        assert rc == 0 and first.startswith("月光"), err
        assert cli(*argv)[1] == first


def test_candidates_of_one_batch_start_from_the_same_state(overfit_writer):
    _, (alone,) = gen_ids(overfit_writer, "晨光", StructureConfig(max_tokens=25))
    _, greedy_rows = gen_ids(overfit_writer, "晨光", StructureConfig(max_tokens=25), k=3)
    assert greedy_rows == [alone] * 3  # greedy candidates in a batch are the text written alone


# -- the n-gram bans -------------------------------------------------------------------------------------
def _repeated_ngram(seq, n) -> bool:
    grams = [tuple(seq[i:i + n]) for i in range(len(seq) - n + 1)]
    return len(grams) != len(set(grams))


def test_no_repeat_ngram_2_never_repeats_a_bigram(overfit_writer):
    max_tokens = 60
    start, plain_rows = gen_ids(overfit_writer, "晨光", StructureConfig(max_tokens=max_tokens))
    assert _repeated_ngram(start + plain_rows[0], 2)  # without the constraint this model does repeat itself
    for sampling in SAMPLINGS:
        constrained = dataclasses.replace(sampling, no_repeat_ngram=2)
        for word in ("晨光", "火车"):
            start, rows = gen_ids(overfit_writer, word, StructureConfig(max_tokens=max_tokens), constrained, k=3)
            for ids in rows:
                assert len(ids) == max_tokens
                # the very last token is the forced line break that ends the text: structure, not a choice
                assert not _repeated_ngram(start + ids[:-1], 2), (sampling, overfit_writer.vocab.decode(ids))


@pytest.mark.parametrize("sampling", [SamplingConfig(no_repeat_ngram=1),
                                      SamplingConfig(temperature=1.0, no_repeat_ngram=1, seed=0)],
                         ids=["greedy", "sampled"])
def test_no_repeat_unigram_uses_every_token_once_then_only_line_breaks(overfit_writer, sampling):
    """Once every token is used, only line breaks can follow: no crash, no <unk>."""
    vocab = overfit_writer.vocab
    lb = vocab.line_break_id
    max_tokens = len(vocab) + 10
    start, (ids,) = gen_ids(overfit_writer, "晨光", StructureConfig(max_tokens=max_tokens), sampling)
    assert len(ids) == max_tokens and vocab.unk_id not in ids
    words = [t for t in start + ids if t != lb]
    assert sorted(words) == sorted(set(range(len(vocab))) - {vocab.unk_id, lb})  # each exactly once
    last_word = max(t for t, token in enumerate(ids) if token != lb)
    assert set(ids[last_word + 1:]) == {lb} and last_word < max_tokens - 2


# -- structure ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n_lines", [1, 2, 3])
def test_lines_bounds_the_number_of_lines(overfit_writer, n_lines):
    lb = overfit_writer.vocab.line_break_id
    start, unbounded = gen_ids(overfit_writer, "晨光", StructureConfig(max_tokens=60))
    assert unbounded[0].count(lb) > 3  # the limit is what stops it
    for sampling in SAMPLINGS:
        start, rows = gen_ids(overfit_writer, "晨光", StructureConfig(max_tokens=60, lines=n_lines), sampling, k=3)
        for ids in rows:
            assert ids.count(lb) == n_lines and ids[-1] == lb  # stopped right after the n-th line
        for c in overfit_writer.generate("晨光", sampling=dataclasses.replace(sampling, num_samples=3),
                                         max_tokens=60, lines=n_lines):
            assert len(c.text.split("\n")) == n_lines and c.text.startswith("晨光")


@pytest.mark.parametrize("max_tokens", [1, 2, 5, 13, 40])
def test_max_tokens_bounds_every_candidate(overfit_writer, max_tokens):
    for sampling in SAMPLINGS:
        for c in overfit_writer.generate("火车", sampling=dataclasses.replace(sampling, num_samples=3),
                                         max_tokens=max_tokens):
            assert 1 <= c.tokens <= max_tokens
        _, rows = gen_ids(overfit_writer, "火车", StructureConfig(max_tokens=max_tokens), sampling, k=3)
        assert all(1 <= len(ids) <= max_tokens for ids in rows)


def test_text_always_ends_with_a_whole_line(overfit_writer):
    """The last token closes the line, even when the token budget runs out inside one."""
    lb = overfit_writer.vocab.line_break_id
    for max_tokens in range(1, 30):
        _, (ids,) = gen_ids(overfit_writer, "晨光", StructureConfig(max_tokens=max_tokens))
        assert ids[-1] == lb, (max_tokens, overfit_writer.vocab.decode(ids))
    for max_tokens, sampling in product([1, 2, 3, 7, 12], SAMPLINGS):
        _, rows = gen_ids(overfit_writer, "火车", StructureConfig(max_tokens=max_tokens, max_line_tokens=0), sampling,
                          k=3)
        for ids in rows:
            assert ids[-1] == lb, (max_tokens, overfit_writer.vocab.decode(ids))


@pytest.mark.parametrize("limit", [2, 3, 5])
def test_max_line_tokens_bounds_every_line(overfit_writer, limit):
    lb = overfit_writer.vocab.line_break_id
    for sampling in SAMPLINGS:
        start, rows = gen_ids(overfit_writer, "火车", StructureConfig(max_tokens=40, max_line_tokens=limit), sampling,
                              k=3)
        for ids in rows:
            counts = [count for count, _, _ in lines_of(start, ids, lb)]
            assert counts and max(counts) <= limit, (limit, overfit_writer.vocab.decode(ids))
            if limit < OVERFIT_TOKENS_PER_LINE:
                assert limit in counts  # the limit is what cut these lines


def test_min_line_tokens_blocks_early_breaks(overfit_writer):
    lb = overfit_writer.vocab.line_break_id
    max_tokens = 45
    start, (unbounded,) = gen_ids(overfit_writer, "火车", StructureConfig(max_tokens=max_tokens))
    assert min(count for count, ended, _ in lines_of(start, unbounded, lb) if ended) < 7  # lines are 4 tokens
    for sampling in SAMPLINGS:
        start, rows = gen_ids(overfit_writer, "火车", StructureConfig(max_tokens=max_tokens, min_line_tokens=7),
                              sampling, k=3)
        for ids in rows:
            for count, ended, at in lines_of(start, ids, lb):
                if ended and at < max_tokens - 1:  # the final break is forced by max_tokens
                    assert count >= 7, overfit_writer.vocab.decode(ids)


def test_min_equal_to_max_line_tokens_fixes_the_line_length(overfit_writer):
    lb = overfit_writer.vocab.line_break_id
    for sampling in SAMPLINGS:
        start, rows = gen_ids(overfit_writer, "雪花", StructureConfig(max_tokens=36, min_line_tokens=6,
                                                                     max_line_tokens=6), sampling)
        for ids in rows:
            lines = lines_of(start, ids, lb)
            assert len(lines) >= 5
            assert all(count == 6 for count, ended, at in lines if ended and at < 35), overfit_writer.vocab.decode(ids)


def test_no_blank_lines_unless_asked(overfit_writer):
    for seed in range(5):  # hot enough to reach for line breaks anywhere
        texts = [c.text for c in overfit_writer.generate("晨光", max_tokens=60, temperature=3.0, seed=seed,
                                                         num_samples=4)]
        assert all("\n\n" not in t for t in texts)
    _, rows = gen_ids(overfit_writer, "晨光", StructureConfig(max_tokens=60, min_line_tokens=0),
                      SamplingConfig(temperature=3.0, seed=0), k=8)
    lb = overfit_writer.vocab.line_break_id
    assert any(a == b == lb for ids in rows for a, b in zip(ids, ids[1:]))


def test_write_ids_yields_each_step_of_what_generate_ids_returns(tiny_model):
    from lyricgen.writing.generate import write_ids

    model, vocab = tiny_model
    start = [vocab.index["月光"]]
    structure, sampling = StructureConfig(max_tokens=20), SamplingConfig(temperature=1.0, seed=3, num_samples=2)
    steps, rows = write_ids(model, vocab, start, structure, sampling), []
    while True:
        try:
            rows.append(next(steps))
        except StopIteration as done:
            out, lengths, scores = done.value
            break
    again = generate_ids(model, vocab, start, structure, sampling)
    assert torch.equal(out, again[0]) and torch.equal(lengths, again[1]) and torch.equal(scores, again[2])
    for b in range(2):  # each step's token of a candidate still writing, -1 once it has finished
        assert [row[b] for row in rows if row[b] >= 0] == out[b, :lengths[b]].tolist()
