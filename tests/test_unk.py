"""fitted/unk.py: the Good-Turing probability of a character never seen in training."""
import pytest

from lyricgen.fitted.unk import UnkModel
from lyricgen.text.vocab import Vocab


def test_unk_prob_is_the_share_of_training_tokens_that_are_characters_seen_once():
    vocab = Vocab(["<unk>", "\n", " ", "a", "bc", "d", "e"], [0, 5, 0, 1, 1, 3, 1])
    assert UnkModel.fit(vocab, train_tokens=20).prob == pytest.approx(2 / 20)  # a and e; bc is a word
    vocab = Vocab(["<unk>", "\n", " ", "a"], [0, 5, 0, 4])
    assert UnkModel.fit(vocab, train_tokens=9).prob == pytest.approx(1 / 9)  # never 0: at least one
    vocab = Vocab.build([["月光", "下"], ["龘", "下"], ["月光"]], min_freq=1)
    assert UnkModel.fit(vocab, train_tokens=8).prob == pytest.approx(1 / 8)  # 龘


def test_round_trip_and_older_checkpoints():
    assert UnkModel.from_dict(UnkModel(0.25).to_dict()) == UnkModel(0.25)
    assert UnkModel.from_dict({}).prob == 0.0
