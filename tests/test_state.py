"""checkpoint.py (RunState): the run's counters survive the checkpoint's plain-dict form exactly."""
import math

import torch

from lyricgen.checkpoint import RunState


def test_run_state_round_trips_through_a_safe_load(tmp_path):
    state = RunState(epoch=3, batch_in_epoch=2, step=35, epoch_loss_sum=12.5, epoch_tokens=80, epoch_train_s=0.25,
                     best_loss=4.5, period_best=4.6, period_ref=4.7, period_start_step=22, bad_periods=1,
                     lr_bad_periods=2, elapsed_s=9.5, metrics=[{"epoch": 1, "step": 11, "val_loss": 4.7}])
    torch.save(state.to_dict(), tmp_path / "s.pt")
    assert RunState.from_dict(torch.load(tmp_path / "s.pt", weights_only=True)) == state
    fresh = RunState()
    assert (fresh.step, fresh.metrics, fresh.best_loss, fresh.period_best) == (0, [], math.inf, math.inf)
    assert fresh.metrics is not RunState().metrics  # not one list shared by every run


def test_run_state_from_another_version():
    # counters this version does not know are dropped; ones it added take their defaults
    state = RunState.from_dict({"epoch": 2, "step": 22, "counter_of_a_newer_version": 7})
    assert state == RunState(epoch=2, step=22)
