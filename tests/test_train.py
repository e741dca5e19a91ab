import csv

import pytest
import torch

from conftest import TINY_CORPUS, TINY_DATA, one_error_line
from lyricgen.checkpoint import load_checkpoint
from lyricgen.data import num_batches, prepare
from lyricgen.model import LyricsRNN, ModelConfig
from lyricgen.train import METRIC_FIELDS, NonFiniteLoss, TokenizerConfig, TrainConfig, Trainer, make_optimizer, \
    train_step

CPU = torch.device("cpu")
REQUIRED_COLUMNS = ["epoch", "step", "train_loss", "val_loss", "val_ppl", "val_bpc_open", "tokens_per_s", "elapsed_s"]
# dropout everywhere (embeddings, between the two layers, before the output) so resume must restore the RNG
RESUME_TRAIN = ["train", "--corpus", TINY_CORPUS, "--embed-dim", "8", "--hidden-size", "16", "--num-layers", "2",
                "--dropout", "0.3", "--embed-dropout", "0.1", *TINY_DATA, "--epochs", "2", "--device", "cpu",
                "--quiet"]


def make_trainer(lines, out, epochs=2, lr=1e-2) -> Trainer:
    data = prepare(lines, val_fraction=0.1, min_freq=2, seq_len=8)
    torch.manual_seed(0)
    model = LyricsRNN(ModelConfig(vocab_size=len(data.vocab), embed_dim=8, hidden_size=16, num_layers=1,
                                  dropout=0.0, embed_dropout=0.0))
    config = TrainConfig(epochs=epochs, batch_size=8, seq_len=8, lr=lr, seed=0)
    return Trainer(model, data, config, TokenizerConfig(min_freq=2), out, CPU, corpus_info={"path": "tiny"})


def test_training_reduces_loss(tiny_lines, tmp_path):
    trainer = make_trainer(tiny_lines, tmp_path, epochs=4)
    assert trainer.run() == "done"
    rows = trainer.state.metrics
    assert len(rows) == 4
    assert rows[-1]["train_loss"] < rows[0]["train_loss"] - 0.3
    assert rows[-1]["val_loss"] < rows[0]["val_loss"]
    assert trainer.state.step == 4 * num_batches(len(trainer.train_data), 8)


def test_train_step_reduces_loss_on_one_batch(tiny_lines):
    trainer = make_trainer(tiny_lines, "unused")
    x, y = trainer.train_data.get_batch(torch.arange(8))
    optimizer, _ = make_optimizer(trainer.model, trainer.config)
    losses = [train_step(trainer.model, optimizer, x, y, clip=1.0)[0] for _ in range(15)]
    assert losses[-1] < losses[0] - 0.5


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


def test_nan_loss_stops_before_touching_anything(tiny_lines, tmp_path, monkeypatch):
    trainer = make_trainer(tiny_lines, tmp_path, epochs=1)
    assert trainer.run() == "done"
    files = {name: (tmp_path / name).read_bytes() for name in ("last.pt", "best.pt", "metrics.csv")}
    weights = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    nb = num_batches(len(trainer.train_data), 8)

    real_forward = trainer.model.forward

    def nan_forward(ids, hidden=None):
        logits, hidden = real_forward(ids, hidden)
        return logits * float("nan"), hidden

    monkeypatch.setattr(trainer.model, "forward", nan_forward)
    trainer.config.epochs = 2
    with pytest.raises(NonFiniteLoss, match=f"step {nb + 1}\\b") as info:
        trainer.run()
    assert "\n" not in str(info.value)
    for name, data in files.items():
        assert (tmp_path / name).read_bytes() == data, name
    for k, v in trainer.model.state_dict().items():
        assert torch.equal(v, weights[k]), k


def test_nan_loss_through_the_cli(run_copy, cli, monkeypatch):
    before = {name: (run_copy / name).read_bytes() for name in ("last.pt", "best.pt")}
    step = load_checkpoint(run_copy / "last.pt")["state"]["step"]
    real_forward = LyricsRNN.forward
    monkeypatch.setattr(LyricsRNN, "forward",
                        lambda self, ids, hidden=None: (real_forward(self, ids, hidden)[0] * float("nan"), None))
    rc, out, err = cli("train", "--resume", run_copy / "last.pt", "--epochs", "3", "--quiet")
    assert rc != 0
    line = one_error_line(err)
    assert f"step {step + 1}" in line and "nan" in line
    for name, data in before.items():
        assert (run_copy / name).read_bytes() == data, name


def test_stop_request_saves_last_step(tiny_lines, tmp_path):
    trainer = make_trainer(tiny_lines, tmp_path, epochs=2)

    def on_step(info):
        if info["step"] == 2:
            trainer.stop_signal = 15  # what the CLI's SIGTERM handler does

    assert trainer.run(on_step=on_step) == "signal"
    state = load_checkpoint(tmp_path / "last.pt")["state"]
    assert (state["step"], state["epoch"], state["batch_in_epoch"]) == (2, 0, 2)


def test_time_budget_stops_mid_epoch_with_both_checkpoints(tiny_lines, tmp_path):
    trainer = make_trainer(tiny_lines, tmp_path, epochs=2)
    trainer.config.time_budget = 1e-9
    assert trainer.run() == "time_budget"
    state = load_checkpoint(tmp_path / "last.pt")["state"]
    assert state["step"] == 1 and (tmp_path / "best.pt").is_file()
    assert 0 < state["metrics"][0]["epoch"] < 1


@pytest.mark.parametrize("option, value", [("epochs", -1), ("batch_size", 0), ("seq_len", 0), ("lr", 0.0),
                                           ("val_fraction", 1.0), ("max_steps", 0), ("time_budget", 0.0)])
def test_train_config_names_bad_option(option, value):
    with pytest.raises(ValueError, match=option):
        TrainConfig(**{option: value})


# -- exact resume ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    from lyricgen.cli import main

    out = tmp_path_factory.mktemp("uninterrupted")
    assert main([str(a) for a in [*RESUME_TRAIN, "--out", out]]) == 0
    return out


def _assert_same_tensors(a, b, where=""):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_same_tensors(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same_tensors(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


@pytest.mark.parametrize("where", ["mid-epoch", "epoch-boundary"])
def test_resume_is_exact(uninterrupted, tmp_path, cli, where):
    full = load_checkpoint(uninterrupted / "last.pt")
    per_epoch = full["state"]["metrics"][0]["step"]
    k = 3 if where == "mid-epoch" else per_epoch
    assert 0 < 3 < per_epoch

    out = tmp_path / "run"
    rc, _, err = cli(*RESUME_TRAIN, "--out", out, "--max-steps", k)
    assert rc == 0, err
    stopped = load_checkpoint(out / "last.pt")
    assert stopped["state"]["step"] == k
    assert (stopped["state"]["epoch"], stopped["state"]["batch_in_epoch"]) == ((0, k) if k < per_epoch else (1, 0))

    rc, _, err = cli("train", "--resume", out / "last.pt", "--device", "cpu", "--quiet")
    assert rc == 0, err
    resumed = load_checkpoint(out / "last.pt")
    assert resumed["state"]["step"] == full["state"]["step"] == 2 * per_epoch
    _assert_same_tensors(resumed["model"], full["model"], "model")
    _assert_same_tensors(resumed["optimizer"], full["optimizer"], "optimizer")
    _assert_same_tensors(resumed["rng"], full["rng"], "rng")
    _assert_same_tensors(load_checkpoint(out / "best.pt")["model"], load_checkpoint(uninterrupted / "best.pt")["model"])
    keys = ("epoch", "step", "train_loss", "val_loss", "val_ppl", "val_bpc_open", "lr")
    assert [{k: r[k] for k in keys} for r in resumed["state"]["metrics"]] == \
        [{k: r[k] for k in keys} for r in full["state"]["metrics"]]


def test_resume_refuses_to_change_fixed_options(run_copy, cli):
    before = (run_copy / "last.pt").read_bytes()
    rc, _, err = cli("train", "--resume", run_copy / "last.pt", "--seq-len", "4", "--quiet")
    assert rc != 0 and "--seq-len" in one_error_line(err)
    assert (run_copy / "last.pt").read_bytes() == before


def test_resume_refuses_a_changed_corpus(run_copy, tmp_path, cli):
    changed = tmp_path / "changed.txt"
    changed.write_text(TINY_CORPUS.read_text(encoding="utf-8") + "新的一行\n", encoding="utf-8")
    rc, _, err = cli("train", "--resume", run_copy / "last.pt", "--corpus", changed, "--epochs", "3", "--quiet")
    assert rc != 0 and "corpus" in one_error_line(err)


def test_resume_extends_epochs(run_copy, cli):
    rc, _, err = cli("train", "--resume", run_copy / "last.pt", "--epochs", "3", "--device", "cpu", "--quiet")
    assert rc == 0, err
    ckpt = load_checkpoint(run_copy / "last.pt")
    assert ckpt["state"]["epoch"] == 3 and len(ckpt["state"]["metrics"]) == 3
    with open(run_copy / "metrics.csv", encoding="utf-8") as f:
        assert len(list(csv.DictReader(f))) == 3
