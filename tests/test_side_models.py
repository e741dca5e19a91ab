"""fitted/ (SideModels): the unk, repeat and originality models are fitted on the training part and carried
through the checkpoint."""
import numpy as np
import torch

from lyricgen.fitted.repeat import RepeatModel
from lyricgen.fitted.unk import UnkModel
from lyricgen.fitted import SideModels
from lyricgen.text.corpus import split_lines
from lyricgen.training.data import prepare
from lyricgen.fitted.originality import Originality


def _fitted(tiny_lines):
    train_lines, val_lines = split_lines(tiny_lines, 0.1)
    data = prepare(train_lines, val_lines, min_freq=2, seq_len=8)
    ids = data.train.stream.tolist()
    return train_lines, val_lines, data, ids, SideModels.fit(train_lines, ids, data.vocab)


def test_fit_fits_each_side_model_on_the_training_part(tiny_lines):
    train_lines, val_lines, data, ids, side = _fitted(tiny_lines)
    assert side.unk == UnkModel.fit(data.vocab, len(ids)) and 0 < side.unk.prob < 1
    assert side.repeat == RepeatModel.fit(ids) and any(side.repeat.alpha)
    expected = Originality.fit(train_lines)
    assert np.array_equal(side.originality.line_hashes, expected.line_hashes) and np.array_equal(side.originality.span_hashes, expected.span_hashes)
    assert all(side.originality.is_training_line(line) for line in train_lines if line.strip())
    assert not any(side.originality.is_training_line(line) for line in val_lines if line not in train_lines)


def test_a_runs_checkpoint_carries_the_side_models_of_its_training_part(tiny_lines, tiny_ckpt):
    _, _, _, _, side = _fitted(tiny_lines)  # the tiny run's settings: 10% held out, min_freq 2
    assert tiny_ckpt.side.unk == side.unk and tiny_ckpt.side.repeat.alpha == side.repeat.alpha
    assert np.array_equal(tiny_ckpt.side.originality.line_hashes, side.originality.line_hashes)


def test_round_trip_through_a_safe_load(tiny_lines, tmp_path):
    *_, side = _fitted(tiny_lines)
    torch.save(side.to_dict(), tmp_path / "side.pt")
    again = SideModels.from_dict(torch.load(tmp_path / "side.pt", weights_only=True))
    assert again.unk == side.unk and again.repeat == side.repeat
    assert np.array_equal(again.originality.line_hashes, side.originality.line_hashes)
    assert np.array_equal(again.originality.span_hashes, side.originality.span_hashes)
    assert again.originality.max_span == side.originality.max_span


def test_a_checkpoint_without_side_models_gets_neutral_ones():
    side = SideModels.from_dict({})
    assert side.unk.prob == 0.0 and side.repeat.alpha == [] and side.originality is None
    assert "originality" not in side.to_dict()
