"""training/trainer.py: the optimisation step, the epoch loop and what it writes, the stopping rules
(stop request, time budget, early stopping), the learning-rate plateau schedule, and the promise that
a non-finite value or a failed save never reaches or breaks a saved run."""
import copy
import csv

import pytest
import torch

from conftest import TINY_CORPUS, TINY_TRAIN, fail_writes_of, one_error_line, same_tensors, snapshot, tiny_trainer
from lyricgen.checkpoint import load_checkpoint
from lyricgen.config import TrainConfig
from lyricgen.model import LyricsRNN
from lyricgen.scoring.score import Score, score, token_nll, validation_ngram_logp
from lyricgen.training import trainer as trainer_module
from lyricgen.training.data import num_batches
from lyricgen.checkpoint import RunState
from lyricgen.training.distributed import SINGLE, World
from lyricgen.training.trainer import (METRIC_FIELDS, Trainer, end_period, make_optimizer, share, train_step,
                                       validation_scores)

REQUIRED_COLUMNS = ["epoch", "step", "train_loss", "val_loss", "val_ppl", "val_bpc_open", "tokens_per_s", "elapsed_s"]


def test_training_reduces_loss(tiny_lines, tmp_path):
    trainer = tiny_trainer(tiny_lines, tmp_path, epochs=4)
    steps, rows = [], []
    assert trainer.run(on_step=steps.append, on_epoch=rows.append) == "done"
    nb = num_batches(len(trainer.data.train), 8)
    assert trainer.batches.per_epoch == nb and trainer.state.step == 4 * nb == len(steps)
    assert [s["step"] for s in steps] == list(range(1, 4 * nb + 1))
    assert {"epoch", "batch", "batches", "step", "loss", "tokens_per_s"} <= set(steps[0])
    assert rows == trainer.state.metrics and len(rows) == 4
    assert rows[-1]["train_loss"] < rows[0]["train_loss"] - 0.3
    assert rows[-1]["val_loss"] < rows[0]["val_loss"]


def test_the_summary_is_what_the_run_reports(tiny_lines, tmp_path):
    trainer = tiny_trainer(tiny_lines, tmp_path, epochs=2, max_steps=13)
    before = trainer.summary()
    assert (before.step, before.epoch, before.best_loss, before.stop_signal) == (0, 0, float("inf"), None)
    assert before.total_steps == 2 * trainer.batches.per_epoch == 22 and before.windows == len(trainer.data.train)
    assert (before.vocab_size, before.val_tokens) == (len(trainer.data.vocab), len(trainer.data.val.ids))
    assert before.parameters == sum(p.numel() for p in trainer.model.parameters()) and before.world_size == 1
    assert before.files.last == tmp_path / "last.pt" and before.tokenizer.unit == "word"
    assert trainer.run() == "max_steps"
    after = trainer.summary()
    assert (after.step, after.epoch) == (13, 1) and after.best_loss == trainer.state.metrics[0]["val_loss"]


def test_train_step_reduces_loss_on_one_batch(tiny_lines):
    trainer = tiny_trainer(tiny_lines, "unused")
    x, y = trainer.data.train.get_batch(torch.arange(8))
    optimizer = make_optimizer(trainer.model, trainer.config)
    losses = [train_step(trainer.model, optimizer, x, y, clip=1.0)[0] for _ in range(15)]
    assert losses[-1] < losses[0] - 0.5
    assert train_step(trainer.model, optimizer, x, y, clip=1.0)[1] == int((y != -100).sum())


class RankOfTwo(World):
    """Rank `rank` of a world of two without a process group: its collectives see only its own share."""
    world_size = 2

    def __init__(self, rank):
        self.rank = rank


def test_one_process_takes_the_plain_step_bit_for_bit(tiny_lines, tmp_path, monkeypatch):
    """The trainer's one step, through a world of one, is exactly mean cross-entropy, clip, Adam."""
    trainer = tiny_trainer(tiny_lines, tmp_path)
    reference = copy.deepcopy(trainer.model)
    window = torch.tensor([5, 0, 9, len(trainer.data.train) - 1])  # the last window is padded
    x, y, tokens = share(trainer.data.train, window, SINGLE)
    assert torch.equal(x, trainer.data.train.inputs[window]) and tokens == int((y != -100).sum())
    loss, ntok = train_step(trainer.model, make_optimizer(trainer.model, trainer.config), x, y, 1.0, step=1,
                            world=SINGLE, tokens=tokens)

    optimizer = make_optimizer(reference, trainer.config)
    logits, _ = reference(x)
    expected = torch.nn.functional.cross_entropy(logits.view(-1, logits.shape[-1]), y.reshape(-1).long(),
                                                 ignore_index=-100)
    expected.backward()
    torch.nn.utils.clip_grad_norm_(reference.parameters(), 1.0)
    optimizer.step()
    assert (loss, ntok) == (expected.item(), tokens)
    same_tensors(trainer.model.state_dict(), reference.state_dict(), "weights")

    worlds = []  # and the loop calls that one step, with a world of one
    monkeypatch.setattr(trainer_module, "train_step", lambda *a, **k: worlds.append(a[7]) or train_step(*a, **k))
    trainer.config.max_steps = 2
    assert trainer.run() == "max_steps" and worlds == [SINGLE, SINGLE]


def test_metrics_csv_columns(tiny_run):
    with open(tiny_run / "metrics.csv", encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert set(REQUIRED_COLUMNS) <= set(reader.fieldnames)
    assert reader.fieldnames == METRIC_FIELDS
    assert [float(r["epoch"]) for r in rows] == [1.0, 2.0]
    steps = [int(r["step"]) for r in rows]
    assert steps[1] == 2 * steps[0] > 0
    for r in rows:
        for column in REQUIRED_COLUMNS:
            assert float(r[column]) >= 0, column
        assert float(r["val_ppl"]) > 1 and float(r["val_bpc_open"]) > 0


def test_training_without_validation_keeps_every_epoch_as_best(tiny_lines, tmp_path):
    trainer = tiny_trainer(tiny_lines, tmp_path, epochs=2, val_fraction=0.0)
    assert trainer.run() == "done"
    assert not trainer.data.val.ids
    best = load_checkpoint(tmp_path / "best.pt")
    assert best.training.state.epoch == 2 and [r["val_loss"] for r in best.training.state.metrics] == ["", ""]


def test_validation_fits_the_mixture_weight_then_scores_with_it(tiny_lines):
    """Training's policy, not scoring's: EM on the validation text sets the weight, then the
    validation score is the plain score of the model with that weight."""
    from lyricgen.fitted.mixture import DEFAULT_WEIGHT

    trainer = tiny_trainer(tiny_lines, "unused")
    mixture, data, cpu = trainer.side.mixture, trainer.data, torch.device("cpu")
    assert mixture.weight == DEFAULT_WEIGHT and mixture.val_logp is not None
    result, network = validation_scores(trainer.model, data.val, data.vocab, trainer.side, cpu)
    fitted = mixture.weight
    assert fitted != DEFAULT_WEIGHT and 0 < fitted < 1
    by_hand = copy.deepcopy(mixture)
    by_hand.weight = DEFAULT_WEIGHT
    nll = token_nll(trainer.model, data.val.ids, data.vocab.line_break_id, data.vocab.unk_id, trainer.side.unk.prob,
                    cpu)
    by_hand.fit_weight(-nll, validation_ngram_logp(by_hand, data.val, data.vocab, trainer.side.unk))
    assert by_hand.weight == fitted
    assert score(trainer.model, data.val, data.vocab, trainer.side.unk, cpu, trainer.side.repeat, mixture,
                 validation=True) == (result, network)
    assert mixture.weight == fitted


# -- stopping -------------------------------------------------------------------------------------------
def test_stop_request_saves_last_step(tiny_lines, tmp_path):
    trainer = tiny_trainer(tiny_lines, tmp_path, epochs=2)

    def on_step(info):
        if info["step"] == 2:
            trainer.stop_signal = 15  # what the signal handler of stop_on_signals does

    assert trainer.run(on_step=on_step) == "signal"
    state = load_checkpoint(tmp_path / "last.pt").training.state
    assert (state.step, state.epoch, state.batch_in_epoch) == (2, 0, 2)
    assert not (tmp_path / "best.pt").exists()  # no validation happened


def test_time_budget_stops_mid_epoch_with_both_checkpoints(tiny_lines, tmp_path):
    trainer = tiny_trainer(tiny_lines, tmp_path, epochs=2, time_budget=1e-9)
    assert trainer.run() == "time_budget"
    state = load_checkpoint(tmp_path / "last.pt").training.state
    assert state.step == 1 and (tmp_path / "best.pt").is_file()
    assert 0 < state.metrics[0]["epoch"] < 1
    # the mid-epoch validation may replace best.pt, but the schedule only ever sees epoch ends
    assert state.best_loss < float("inf") and state.period_best == float("inf")


def test_max_steps_saves_last_step(tiny_lines, tmp_path):
    trainer = tiny_trainer(tiny_lines, tmp_path, epochs=2, max_steps=3)
    assert trainer.run() == "max_steps"
    assert load_checkpoint(tmp_path / "last.pt").training.state.step == 3


# -- the plateau schedule and early stopping -----------------------------------------------------------
def test_end_period_cuts_the_lr_after_more_than_lr_patience_bad_periods():
    config = TrainConfig(lr_patience=1, patience=5)
    state = RunState(step=100)
    decisions = []
    for best in [5.0, 4.0, 4.0, 4.0, 3.0, 3.0, 3.0, 3.0, 3.0]:  # period_best at each period's end
        state.period_best = best
        decisions.append((end_period(state, config), state.bad_periods, state.lr_bad_periods))
        assert state.period_ref == best and state.period_start_step == 100
    assert decisions == [(False, 0, 0), (False, 0, 0),  # improving
                         (False, 1, 1), (True, 2, 0),  # the second bad period in a row: cut, count again
                         (False, 0, 0),  # an improvement resets both counters
                         (False, 1, 1), (True, 2, 0), (False, 3, 1), (True, 4, 0)]
    config0 = TrainConfig(lr_patience=0)
    state = RunState(period_best=1.0, period_ref=1.0)
    assert end_period(state, config0) and state.lr_bad_periods == 0  # lr_patience 0: every bad period cuts


def _constant_validation(losses):
    """A Trainer.validate that reports the given validation losses, one per call."""
    it = iter(losses)

    def validate(self):
        loss = next(it)
        s = Score(tokens=100, chars=200, unk=0, unk_chars=0, nll=100 * loss, bits=0.0)
        return s, s
    return validate


def test_the_trainer_follows_the_schedule_and_stops_early(tiny_lines, tmp_path, monkeypatch):
    losses = [5.0, 4.0, 4.0, 4.0, 3.0, 3.0, 3.0, 3.0]
    monkeypatch.setattr(Trainer, "validate", _constant_validation(losses))
    monkeypatch.setattr(trainer_module, "MIN_PERIOD_STEPS", 1)  # every epoch is a period
    trainer = tiny_trainer(tiny_lines, tmp_path, epochs=20, patience=3, lr=0.01)
    assert trainer.config.lr_patience == 1 and trainer.config.lr_factor == 0.5  # the defaults
    assert trainer.run() == "early_stop"
    rows = trainer.state.metrics
    assert len(rows) == 8  # the third bad period in a row after the improvement at epoch 5
    assert [r["lr"] for r in rows] == pytest.approx([0.01] * 4 + [0.005] * 3 + [0.0025])
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.0025)  # one bad period since that cut
    assert trainer.state.best_loss == 3.0 and trainer.state.bad_periods == 3


def test_periods_shorter_than_min_period_steps_are_judged_together(tiny_lines, tmp_path, monkeypatch):
    monkeypatch.setattr(Trainer, "validate", _constant_validation([4.0] * 20))
    monkeypatch.setattr(trainer_module, "MIN_PERIOD_STEPS", 20)  # an epoch is 11 steps: a period is 2 epochs
    trainer = tiny_trainer(tiny_lines, tmp_path, epochs=20, patience=3, lr=0.01)
    assert trainer.batches.per_epoch == 11
    assert trainer.run() == "early_stop"
    rows = trainer.state.metrics
    assert len(rows) == 8  # periods end at epochs 2 (first: improved), 4, 6 (lr cut) and 8 (third bad one)
    assert [r["lr"] for r in rows] == pytest.approx([0.01] * 6 + [0.005] * 2)
    assert trainer.state.period_start_step == 88


# -- numerical faults and failed saves -------------------------------------------------------------------
def _nan_forward(monkeypatch):
    real_forward = LyricsRNN.forward
    monkeypatch.setattr(LyricsRNN, "forward",
                        lambda self, ids, hidden=None: (real_forward(self, ids, hidden)[0] * float("nan"), None))


def _inf_gradient(monkeypatch):
    real_clip = torch.nn.utils.clip_grad_norm_

    def poisoned_clip(parameters, max_norm, *args, **kwargs):
        parameters = list(parameters)
        parameters[0].grad.fill_(float("inf"))  # e.g. an overflow in the backward pass
        return real_clip(parameters, max_norm, *args, **kwargs)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", poisoned_clip)


FAULTS = {"nan loss": (_nan_forward, "training loss is nan"), "inf gradient": (_inf_gradient, "gradient norm is inf")}


@pytest.mark.parametrize("fault", ["nan loss", "inf gradient"])
def test_the_non_finite_messages_are_the_same_for_one_process_and_for_every_rank(tiny_lines, monkeypatch, fault):
    trainer = tiny_trainer(tiny_lines, "unused")
    window = torch.arange(3)
    FAULTS[fault][0](monkeypatch)
    messages = []
    for world in (SINGLE, RankOfTwo(0), RankOfTwo(1)):
        x, y, tokens = share(trainer.data.train, window, world)
        with pytest.raises(trainer_module.NonFiniteLoss) as info:
            train_step(trainer.model, make_optimizer(trainer.model, trainer.config), x, y, 1.0, step=7, world=world,
                       tokens=tokens)
        messages.append(str(info.value))
    assert messages[0].startswith(f"{FAULTS[fault][1]} at step 7;") and len(set(messages)) == 1


@pytest.mark.parametrize("when", ["fresh run", "resumed run"])
@pytest.mark.parametrize("fault", list(FAULTS))
def test_non_finite_values_stop_before_the_optimizer_step(run_copy, tmp_path, cli, monkeypatch, fault, when):
    """One error line naming the step, the optimizer never steps, and the saved run is unchanged."""
    if when == "fresh run":
        out = tmp_path / "fresh"
        argv = ["train", "--corpus", TINY_CORPUS, "--out", out, "--epochs", "1", *TINY_TRAIN]
        step = 1
    else:
        out = run_copy
        argv = ["train", "--resume", out / "last.pt", "--epochs", "3", "--quiet"]
        step = load_checkpoint(out / "last.pt").training.state.step + 1
    before = snapshot(out) if out.exists() else {}
    stepped = []
    real_step = torch.optim.Adam.step
    monkeypatch.setattr(torch.optim.Adam, "step", lambda self, *a, **k: stepped.append(1) or real_step(self, *a, **k))
    make_fault, what = FAULTS[fault]
    make_fault(monkeypatch)
    rc, _, err = cli(*argv)
    monkeypatch.undo()
    assert rc == 1
    line = one_error_line(err)
    assert f"{what} at step {step};" in line and "--lr" in line and "unchanged" in line
    assert stepped == []
    assert (snapshot(out) if out.exists() else {}) == before
    if when == "fresh run":
        assert not (out / "last.pt").exists() and not (out / "best.pt").exists()


def test_disk_full_during_training_keeps_the_run(run_copy, cli, monkeypatch):
    before = snapshot(run_copy)
    fail_writes_of(run_copy / "last.pt", "write", monkeypatch)  # the disk fills up while torch.save writes
    rc, _, err = cli("train", "--resume", run_copy / "last.pt", "--epochs", "3", "--quiet")
    monkeypatch.undo()
    assert rc == 1
    line = one_error_line(err)
    assert str(run_copy / "last.pt") in line and "No space left" in line
    assert snapshot(run_copy) == before
    load_checkpoint(run_copy / "last.pt")
