"""training/data.py: the next-token windows (every training token a target exactly once), the epoch
order, and `prepare` (vocabulary, training stream, validation text)."""
from collections import Counter

import pytest
import torch

from lyricgen.errors import LyricgenError
from lyricgen.scoring.score import Text, count_chars
from lyricgen.text.corpus import copied_share, split_lines
from lyricgen.text.tokenizer import normalize_line, tokenize_lines
from lyricgen.training.data import IGNORE, WindowDataset, epoch_order, num_batches, prepare


# -- WindowDataset -----------------------------------------------------------------------------------
def tutorial_windows(stream: torch.Tensor, seq_len: int):
    """The d2l/tutorial data iterator's mistake: window i starts at token i (not i * seq_len), and
    there are len // seq_len of them, so only the first len / seq_len tokens are ever targets."""
    n = (stream.numel() - 1) // seq_len
    return [(stream[i:i + seq_len], stream[i + 1:i + seq_len + 1]) for i in range(n)]


def target_counts(windows) -> Counter:
    counts = Counter()
    for _, y in windows:
        counts.update(int(t) for t in y if t != IGNORE)
    return counts


@pytest.mark.parametrize("length, seq_len", [(2, 1), (9, 8), (10, 8), (16, 8), (17, 8), (100, 7), (101, 10),
                                             (64, 16), (1000, 64)])
def test_every_token_is_the_target_of_exactly_one_window(length, seq_len):
    stream = torch.arange(length) + 1000  # distinct ids: a target's value says which token it is
    ds = WindowDataset(stream, seq_len)
    assert len(ds) == -(-(length - 1) // seq_len)
    counts = target_counts(ds[i] for i in range(len(ds)))
    assert counts == Counter(stream[1:].tolist())  # every token but the leading context, once each
    if length - 1 >= 2 * seq_len:  # the tutorial's windows fail the same check
        assert target_counts(tutorial_windows(stream, seq_len)) != Counter(stream[1:].tolist())


@pytest.mark.parametrize("length, seq_len", [(9, 8), (23, 5), (100, 7)])
def test_targets_are_inputs_shifted_by_one(length, seq_len):
    stream = torch.arange(length) + 1000
    ds = WindowDataset(stream, seq_len)
    assert ds.stream is stream
    for i in range(len(ds)):
        x, y = ds[i]
        assert x.shape == y.shape == (seq_len,)
        real = y != IGNORE
        assert torch.equal(y[real], x[real] + 1)  # the token after each input
        assert x[0] == stream[i * seq_len]
    # padding only at the very end
    flat = ds.targets.flatten()
    assert (flat[: length - 1] != IGNORE).all() and (flat[length - 1:] == IGNORE).all()


def test_get_batch_equals_stacked_items():
    ds = WindowDataset(torch.arange(50), 6)
    idx = torch.tensor([3, 0, 7, 3])
    x, y = ds.get_batch(idx)
    assert x.shape == y.shape == (4, 6)
    assert torch.equal(x, torch.stack([ds[int(i)][0] for i in idx]))
    assert torch.equal(y, torch.stack([ds[int(i)][1] for i in idx]))


def test_too_short_stream_is_an_input_error():
    with pytest.raises(LyricgenError, match="seq-len"):
        WindowDataset(torch.arange(8), 8)
    assert len(WindowDataset(torch.arange(9), 8)) == 1


def test_nonpositive_seq_len():
    with pytest.raises(ValueError):
        WindowDataset(torch.arange(10), 0)


def test_epoch_order():
    a = epoch_order(50, seed=1, epoch=0)
    assert torch.equal(a, epoch_order(50, seed=1, epoch=0))
    assert sorted(a.tolist()) == list(range(50))
    assert not torch.equal(a, epoch_order(50, seed=1, epoch=1))
    assert not torch.equal(a, epoch_order(50, seed=2, epoch=0))
    assert torch.equal(epoch_order(50, seed=1, epoch=1), epoch_order(50, seed=1, epoch=1))
    before = torch.get_rng_state()
    epoch_order(50, seed=3, epoch=4)
    assert torch.equal(torch.get_rng_state(), before)  # its own generator: dropout's RNG is untouched


def test_num_batches():
    assert [num_batches(n, 8) for n in (1, 8, 9, 16, 17)] == [1, 1, 2, 2, 3]


# -- prepare -----------------------------------------------------------------------------------------
def test_prepare(tiny_lines):
    train_lines, val_lines = split_lines(tiny_lines, 0.1)
    assert (len(train_lines), len(val_lines)) == (72, 8)
    data = prepare(train_lines, val_lines, min_freq=2, seq_len=8)
    vocab = data.vocab
    stream = data.train.stream
    assert stream[0] == vocab.line_break_id  # the context of the first token
    assert vocab.decode(stream[1:].tolist()) == "".join(normalize_line(line) + "\n" for line in train_lines)
    assert data.train.seq_len == 8
    assert isinstance(data.val, Text)
    assert data.val.ids[-1] == vocab.line_break_id
    assert data.val.ids.count(vocab.line_break_id) == len(val_lines)
    assert data.val.chars == count_chars(tokenize_lines(val_lines))
    assert data.val == Text.encode(vocab, tokenize_lines(val_lines))
    assert data.val_seen_share == copied_share(train_lines, val_lines)
    again = prepare(train_lines, val_lines, 2, 8, vocab=vocab)  # on resume the vocabulary is reused
    assert again.vocab is vocab and again.val == data.val and torch.equal(again.train.stream, stream)
    assert prepare(train_lines, val_lines, 2, 8, use_cache=False).vocab.tokens == vocab.tokens


def test_prepare_too_short_corpus():
    with pytest.raises(LyricgenError, match="too short"):
        prepare(["月光"], [], min_freq=1, seq_len=8)
