"""text/vocab.py: deterministic ids, rare words spelled as characters, <unk> only for unseen
characters, and the plain-dict form a checkpoint stores."""
import json
import random

import pytest

from lyricgen.text.tokenizer import LINE_BREAK, SPACE, normalize_line, tokenize_line, tokenize_lines
from lyricgen.text.vocab import SPECIALS, UNK, Vocab


@pytest.fixture(scope="module")
def token_lines(tiny_lines):
    return tokenize_lines(tiny_lines)


@pytest.mark.parametrize("min_freq", [1, 2, 3, 1000])
def test_decode_encode_round_trip(tiny_lines, token_lines, min_freq):
    vocab = Vocab.build(token_lines, min_freq=min_freq)
    for line, tokens in zip(tiny_lines, token_lines):
        ids, unk_chars = vocab.encode(tokens)
        assert unk_chars == 0 and vocab.unk_id not in ids
        assert vocab.decode(ids) == normalize_line(line)
    ids, unk_chars = vocab.encode_lines(token_lines)
    assert unk_chars == 0
    assert vocab.decode(ids) == "".join(normalize_line(line) + "\n" for line in tiny_lines)


def test_ids_are_deterministic(token_lines):
    a = Vocab.build(token_lines, min_freq=2)
    b = Vocab.build([list(line) for line in token_lines], min_freq=2)
    assert a.tokens == b.tokens and a.counts == b.counts


def test_ids_do_not_depend_on_input_order(token_lines):
    shuffled = [list(line) for line in token_lines]
    rng = random.Random(0)
    rng.shuffle(shuffled)
    for line in shuffled:
        rng.shuffle(line)
    a, b = Vocab.build(token_lines, min_freq=2), Vocab.build(shuffled, min_freq=2)
    assert a.tokens == b.tokens and a.counts == b.counts


def test_ids_ordered_by_count_then_token():
    vocab = Vocab.build([["b", "c", "a"], ["c", "a"], ["c"]], min_freq=1)
    assert vocab.tokens == [*SPECIALS, "c", "a", "b"]
    assert vocab.counts == [0, 3, 0, 3, 2, 1]


def test_specials_first(token_lines):
    vocab = Vocab.build(token_lines, min_freq=2)
    assert vocab.tokens[:3] == [UNK, LINE_BREAK, SPACE]
    assert (vocab.unk_id, vocab.line_break_id, vocab.index[SPACE]) == (0, 1, 2)
    assert vocab.tokens.count(SPACE) == 1 and vocab.tokens.count(LINE_BREAK) == 1
    assert vocab.counts[vocab.line_break_id] == len(token_lines)


def test_rare_words_are_spelled_as_characters():
    vocab = Vocab.build([["月光", "下"], ["月光"], ["分开了"]], min_freq=2)
    assert "月光" in vocab and "分开了" not in vocab
    for ch in "分开了":
        assert ch in vocab
    ids, unk = vocab.encode(["分开了"])
    assert unk == 0 and [vocab.tokens[i] for i in ids] == ["分", "开", "了"]


def test_characters_of_kept_words_stay_representable():
    vocab = Vocab.build([["月光"], ["月光"]], min_freq=2)
    ids, unk = vocab.encode(["光月"])  # never seen alone, only inside 月光
    assert unk == 0 and [vocab.tokens[i] for i in ids] == ["光", "月"]


def test_every_seen_character_is_representable(tiny_lines, token_lines):
    vocab = Vocab.build(token_lines, min_freq=1000)  # nearly every word spelled out
    for ch in set("".join(normalize_line(line) for line in tiny_lines)):
        ids, unk = vocab.encode([ch])
        assert unk == 0 and vocab.decode(ids) == ch


def test_unk_only_for_unseen_characters(token_lines):
    vocab = Vocab.build(token_lines, min_freq=2)
    wo, ni = vocab.index["我"], vocab.index["你"]
    assert vocab.encode(["龘"]) == ([vocab.unk_id], 1)
    assert vocab.encode(["龘靐"]) == ([vocab.unk_id], 2)  # a run is one <unk>
    assert vocab.encode(["我龘靐你"]) == ([wo, vocab.unk_id, ni], 2)
    assert vocab.encode(["龘我靐靐"]) == ([vocab.unk_id, wo, vocab.unk_id], 3)
    assert vocab.encode(["我", "你"]) == ([wo, ni], 0)


def test_run_of_unseen_characters_across_tokens_is_one_unk(token_lines):
    vocab = Vocab.build(token_lines, min_freq=2)
    assert tokenize_line("我안녕你") == ["我", "안", "녕", "你"]
    ids, unk_chars = vocab.encode(tokenize_line("我안녕你"))
    assert unk_chars == 2
    assert ids == [vocab.index["我"], vocab.unk_id, vocab.index["你"]]


def test_dict_round_trip(token_lines):
    vocab = Vocab.build(token_lines, min_freq=2)
    d = vocab.to_dict()
    d = json.loads(json.dumps(d))  # plain containers only
    again = Vocab.from_dict(d)
    assert again.tokens == vocab.tokens and again.counts == vocab.counts
    assert again.index == vocab.index
    for tokens in token_lines[:10]:
        assert again.encode(tokens) == vocab.encode(tokens)


def test_constructor_validates():
    with pytest.raises(ValueError):
        Vocab(["a", UNK, LINE_BREAK, SPACE])
    with pytest.raises(ValueError):
        Vocab([*SPECIALS, "a", "a"])
    with pytest.raises(ValueError):
        Vocab.build([["a"]], min_freq=0)
    with pytest.raises(TypeError):
        Vocab.build([["a"]])  # min_freq is the tokenizer config's to give, never a silent default


def test_most_frequent_skips_specials(token_lines):
    vocab = Vocab.build(token_lines, min_freq=2)
    top = vocab.most_frequent(5)
    assert len(top) == 5 and not set(top) & set(SPECIALS)
    assert top == [t for t in vocab.tokens if t not in SPECIALS][:5]


def test_counts_scale_with_the_corpus_and_ids_do_not_change(token_lines):
    """A corpus repeated 8 times more: every count exactly x8, the same ids. (Build time against
    corpus size is measured by the benchmarks.)"""
    base = token_lines * 20
    big = base * 8
    small_vocab, big_vocab = Vocab.build(base, min_freq=2), Vocab.build(big, min_freq=2)
    assert big_vocab.tokens == small_vocab.tokens
    assert big_vocab.counts == [8 * n for n in small_vocab.counts]
