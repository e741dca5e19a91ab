"""fitted/repeat.py: the repeat model follows the most recent match, is calibrated on the training
stream, and mixes into the network's distribution as a proper mixture."""
import math

import pytest
import torch

from lyricgen.fitted.repeat import MAX_MATCH, MIN_MATCH, RepeatModel, predictions


def test_predictions_follow_the_most_recent_match():
    assert predictions([1, 2, 3, 4, 1, 2, 3, 4]) == [(-1, 0)] * 6 + [(3, 2), (4, 3)]
    assert predictions([5, 6, 7, 5, 6, 8]) == [(-1, 0)] * 5 + [(7, 2)]
    assert predictions([1, 2, 3]) == [(-1, 0)] * 3
    assert predictions([]) == []
    # the latest occurrence of the context wins: after 1 2 the last time, 9 came
    assert predictions([1, 2, 3, 1, 2, 9, 1, 2, 0])[-1] == (9, MIN_MATCH)


def test_predictions_read_only_the_past():
    ids = [4, 5, 6, 4, 5, 6, 4, 5, 7, 7]
    full = predictions(ids)
    for t in range(len(ids)):
        assert predictions(ids[:t + 1])[t] == full[t]  # the future never changes a prediction


def test_match_length_grows_and_is_capped():
    chorus = list(range(10, 40))
    preds = predictions(chorus * 2)
    lengths = [m for _, m in preds[len(chorus):]]
    assert lengths[0] == 0 and lengths[MIN_MATCH] == MIN_MATCH
    assert lengths[MIN_MATCH:] == [min(MIN_MATCH + k, MAX_MATCH) for k in range(len(chorus) - MIN_MATCH)]
    assert all(pred == actual for (pred, _), actual in zip(preds[len(chorus) + MIN_MATCH:], chorus[MIN_MATCH:]))


def test_calibration_is_the_smoothed_share_of_right_predictions():
    alpha = RepeatModel.fit([5, 6, 7, 5, 6, 7]).alpha  # one prediction at match length 2, and it is right
    assert len(alpha) == MAX_MATCH + 1
    assert alpha[2] == pytest.approx(1 / 2)  # add-one smoothing
    assert sum(alpha) == pytest.approx(1 / 2)
    alpha = RepeatModel.fit([5, 6, 7, 5, 6, 8, 5, 6, 8]).alpha  # at length 2: one wrong (7), one right (8)
    assert alpha[2] == pytest.approx(1 / 3)
    assert all(0 <= a < 1 for a in RepeatModel.fit(list(range(9)) * 5).alpha)  # never certain


@pytest.mark.parametrize("ids, hit", [([5, 6, 7, 5, 6, 7], True), ([5, 6, 7, 5, 6, 8], False)])
def test_mixture_arithmetic(ids, hit):
    V, a = 9, 0.5
    nll = torch.full((len(ids),), math.log(V))  # a uniform network
    alpha = [0.0] * (MAX_MATCH + 1)
    alpha[2] = a
    mixed = RepeatModel(alpha).mix(nll, ids)
    assert mixed[:5].tolist() == pytest.approx([math.log(V)] * 5)  # no prediction: the network alone
    expected = -math.log((1 - a) / V + a) if hit else -math.log((1 - a) / V)
    assert float(mixed[5]) == pytest.approx(expected)


def test_a_stored_table_of_another_length_stays_usable():
    """A checkpoint's alpha table keeps its own length: longer matches use its last entry."""
    chorus = list(range(10, 20))
    ids = chorus * 2
    nll = torch.full((len(ids),), math.log(50))
    short = RepeatModel([0.0, 0.0, 0.3, 0.6])  # an old table, up to match length 3
    mixed = short.mix(nll, ids)
    for (pred, m), x, value in zip(predictions(ids), ids, mixed.tolist()):
        if pred < 0:
            assert value == pytest.approx(math.log(50))
        else:
            a = short.alpha[min(m, 3)]
            assert value == pytest.approx(-math.log((1 - a) / 50 + a * (pred == x)))
    longer = RepeatModel([0.5] * (MAX_MATCH + 10))
    assert torch.isfinite(longer.mix(nll, ids)).all()


def test_round_trip_and_older_checkpoints():
    model = RepeatModel.fit([1, 2, 3, 1, 2, 3, 1, 2])
    assert RepeatModel.from_dict(model.to_dict()) == model
    assert RepeatModel.from_dict({}).alpha == []  # a checkpoint without a table
