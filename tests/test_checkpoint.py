"""checkpoint.py: the file format. A checkpoint holds only tensors and plain containers, round-trips
exactly, refuses every kind of bad file in one line, and files of format 1 (lyricgen 0.1.0) keep
loading, generating, evaluating and resuming."""
import numpy as np
import copy
import dataclasses
import os
import pickle
import shutil

import pytest
import torch

from conftest import TINY_CORPUS, same_tensors
from lyricgen import __version__
from lyricgen.checkpoint import (FORMAT, FORMAT_VERSION, REQUIRED_KEYS, load_checkpoint, read_raw, save_checkpoint,
                                 to_dict)
from lyricgen.config import RunConfig
from lyricgen.errors import LyricgenError
from lyricgen.scoring.evaluate import evaluate_file
from lyricgen.text.tokenizer import jieba_version
from lyricgen.training.run import open_run
from lyricgen.writing.lyricist import Lyricist


def raw_copy(ckpt) -> dict:
    """The stored dict of a Checkpoint, safe to change (its tensors are copies)."""
    return copy.deepcopy(to_dict(ckpt))


def _load_error(path) -> str:
    with pytest.raises(LyricgenError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert message and "\n" not in message, message
    return message


def _saved(tmp_path, d) -> str:
    path = tmp_path / "bad.pt"
    torch.save(d, path)
    return _load_error(path)


# -- what a checkpoint holds -----------------------------------------------------------------------------
def test_a_trained_checkpoint_holds_only_tensors_and_plain_containers(tiny_run):
    raw = torch.load(tiny_run / "last.pt", map_location="cpu", weights_only=True)  # the safe loader reads it
    assert raw["format"] == FORMAT and raw["format_version"] == FORMAT_VERSION == 3
    assert set(raw) == {"format", "format_version", "versions", "model_config", "tokenizer", "vocab", "model",
                        "side_models", "corpus", "training"}
    assert set(raw["side_models"]) == {"unk", "repeat", "originality", "habits", "mixture"}
    assert set(raw["training"]) == {"config", "state", "optimizer", "rng"}
    assert raw["versions"] == {"lyricgen": __version__, "torch": str(torch.__version__), "jieba": jieba_version()}
    assert raw["corpus"]["path"] == str(TINY_CORPUS.resolve())
    same_tensors(read_raw(tiny_run / "last.pt"), raw, "read_raw")


def test_save_load_round_trip(tiny_ckpt, tmp_path):
    path = tmp_path / "sub" / "copy.pt"
    save_checkpoint(tiny_ckpt, path)
    again = load_checkpoint(path)
    assert again.model_config == tiny_ckpt.model_config and again.tokenizer == tiny_ckpt.tokenizer
    assert (again.vocab.tokens, again.vocab.counts) == (tiny_ckpt.vocab.tokens, tiny_ckpt.vocab.counts)
    same_tensors(again.weights, tiny_ckpt.weights, "weights")
    assert again.side.unk == tiny_ckpt.side.unk and again.side.repeat == tiny_ckpt.side.repeat
    assert np.array_equal(again.side.originality.span_hashes, tiny_ckpt.side.originality.span_hashes)
    assert again.side.habits == tiny_ckpt.side.habits and again.side.habits.source == "corpus"
    assert again.corpus == tiny_ckpt.corpus and again.versions == tiny_ckpt.versions
    t, u = again.training, tiny_ckpt.training
    assert t.config == u.config and t.state == u.state
    same_tensors(t.optimizer, u.optimizer, "optimizer")
    same_tensors(t.rng, u.rng, "rng")
    model = again.build_model()
    assert len(again.vocab) == model.config.vocab_size
    same_tensors(model.state_dict(), tiny_ckpt.weights, "built model")
    assert sorted(p.name for p in path.parent.iterdir()) == ["copy.pt"]  # no temp files left

    slim = tmp_path / "slim.pt"  # generation only: no optimizer or RNG state
    save_checkpoint(tiny_ckpt.without_training(), slim)
    assert "training" not in read_raw(slim) and load_checkpoint(slim).training is None
    assert slim.stat().st_size < path.stat().st_size
    same_tensors(load_checkpoint(slim).build_model().state_dict(), tiny_ckpt.weights, "slim model")


def test_loaded_checkpoint_generates_exactly_what_the_trained_model_does(tiny_lines, tmp_path):
    from lyricgen.training.run import start_run

    options = {"epochs": 3, "batch_size": 8, "seq_len": 8, "seed": 5, "max_steps": 25, "min_freq": 2,
               "embed_dim": 8, "hidden_size": 16, "num_layers": 1, "dropout": 0.3}
    trainer = start_run(tiny_lines, options, tmp_path, "cpu")
    assert trainer.run() == "max_steps"
    in_memory = Lyricist(trainer.model, trainer.data.vocab, trainer.side.originality, trainer.side.habits,
                         trainer.side.mixture)
    loaded = Lyricist.load(tmp_path / "last.pt")
    wrote = False
    for options in ({"max_tokens": 30},
                    {"max_tokens": 30, "temperature": 1.0, "seed": 5, "num_samples": 3},
                    {"max_tokens": 30, "temperature": 0.8, "top_p": 0.9, "top_k": 20, "seed": 11, "lines": 3}):
        a = in_memory.generate("月光", **options)
        b = loaded.generate("月光", **options)
        assert a == b, options  # text, score, tokens and the originality report
        wrote |= any(len(c.text) > len("月光") for c in a)
    assert wrote


# -- files that are refused ------------------------------------------------------------------------------
def test_missing(tmp_path):
    assert "not found" in _load_error(tmp_path / "nope.pt")


def test_directory(tmp_path):
    assert "directory" in _load_error(tmp_path)


def test_empty(tmp_path):
    (tmp_path / "e.pt").write_bytes(b"")
    assert "empty" in _load_error(tmp_path / "e.pt")


def test_random_bytes(tmp_path):
    path = tmp_path / "r.pt"
    path.write_bytes(os.urandom(4096))
    assert "not a readable lyricgen checkpoint" in _load_error(path)


@pytest.mark.parametrize("keep", [0.5, 0.9, 200])
def test_truncated_real_checkpoint(tiny_run, tmp_path, keep):
    data = (tiny_run / "best.pt").read_bytes()
    n = keep if isinstance(keep, int) else int(len(data) * keep)
    path = tmp_path / "t.pt"
    path.write_bytes(data[:n])
    assert str(path) in _load_error(path)


class _Evil:
    """Unpickling this would create `marker`: proof that a loader ran code from the file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


@pytest.mark.parametrize("how", ["torch.save", "pickle"])
def test_code_running_pickle_is_refused(tiny_ckpt, tmp_path, how):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    bad = {**to_dict(tiny_ckpt), "training": _Evil(marker)}
    if how == "torch.save":
        torch.save(bad, path)
    else:
        path.write_bytes(pickle.dumps(bad, protocol=2))
    message = _load_error(path)
    assert "not a readable lyricgen checkpoint" in message
    assert not marker.exists()


def test_wrong_format_marker(tiny_ckpt, tmp_path):
    assert "format marker" in _saved(tmp_path, {**to_dict(tiny_ckpt), "format": "nanogpt"})
    assert "format marker" in _saved(tmp_path, {"model": {}})
    assert "format marker" in _saved(tmp_path, [1, 2, 3])


@pytest.mark.parametrize("key", REQUIRED_KEYS[1:])
def test_missing_keys(tiny_ckpt, tmp_path, key):
    bad = {k: v for k, v in to_dict(tiny_ckpt).items() if k != key}
    assert key in _saved(tmp_path, bad)


def test_vocab_size_mismatch(tiny_ckpt, tmp_path):
    bad = raw_copy(tiny_ckpt)
    bad["vocab"]["tokens"].append("新词")
    bad["vocab"]["counts"].append(0)
    assert "inconsistent" in _saved(tmp_path, bad)


def test_config_mismatch_with_weights(tiny_ckpt, tmp_path):
    bad = raw_copy(tiny_ckpt)
    bad["model_config"]["hidden_size"] = 32
    path = tmp_path / "bad.pt"
    torch.save(bad, path)
    ckpt = load_checkpoint(path)  # the file is well formed ...
    with pytest.raises(LyricgenError) as info:
        ckpt.build_model()  # ... but its weights are not those of its config
    assert "do not match its config" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("part, key, value", [("model_config", "cell", "mamba"),
                                              ("model_config", "dropout", 1.5),
                                              ("tokenizer", "min_freq", 0)])
def test_invalid_config(tiny_ckpt, tmp_path, part, key, value):
    bad = raw_copy(tiny_ckpt)
    bad[part][key] = value
    message = _saved(tmp_path, bad)
    assert "invalid model config or vocabulary" in message and key in message


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights(tiny_ckpt, tmp_path, value):
    bad = raw_copy(tiny_ckpt)
    name = next(k for k in bad["model"] if k.startswith("rnn.weight"))
    bad["model"][name][0, 0] = value
    assert name in _saved(tmp_path, bad)
    assert torch.isfinite(tiny_ckpt.weights[name]).all()  # the shared checkpoint was not touched


def test_newer_format_version(tiny_ckpt, tmp_path):
    message = _saved(tmp_path, {**to_dict(tiny_ckpt), "format_version": FORMAT_VERSION + 1})
    assert "newer" in message and "upgrade" in message


@pytest.mark.parametrize("version", [0, "1", None, True])
def test_invalid_format_version(tiny_ckpt, tmp_path, version):
    assert "format version" in _saved(tmp_path, {**to_dict(tiny_ckpt), "format_version": version})


def test_weights_that_are_not_tensors(tiny_ckpt, tmp_path):
    bad = raw_copy(tiny_ckpt)
    bad["model"]["embedding.weight"] = [[0.0] * 8]
    assert "no model weights" in _saved(tmp_path, bad)


# -- format 1: lyricgen 0.1.0 --------------------------------------------------------------------------
V1_KEYS = ["format", "format_version", "versions", "model_config", "train_config", "tokenizer", "vocab", "unk_prob",
           "repeat_alpha", "corpus", "originality", "model", "optimizer", "scheduler", "state", "rng"]
V1_STATE = ["epoch", "batch_in_epoch", "step", "epoch_loss_sum", "epoch_tokens", "epoch_train_s", "best_val_loss",
            "best_saved_loss", "period_ref", "period_start_step", "bad_periods", "elapsed_s", "metrics"]


def to_format_1(d: dict) -> dict:
    """The lyricgen 0.1.0 layout of a format-2 checkpoint dict: the side models and the training state
    at the top level, and the plateau counter inside a ReduceLROnPlateau state dict."""
    side, training = d["side_models"], d["training"]
    config, state = training["config"], dict(training["state"])
    lr_bad_periods = state.pop("lr_bad_periods")
    state["best_val_loss"] = state.pop("period_best")
    state["best_saved_loss"] = state.pop("best_loss")
    assert set(state) == set(V1_STATE)  # RunState grew a field that 0.1.0 files lack: convert it
    optimizer = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=config["lr"])
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=config["lr_factor"],
                                                           patience=config["lr_patience"])
    scheduler.num_bad_epochs, scheduler.best = lr_bad_periods, state["best_val_loss"]
    assert set(training["rng"]) == {"torch"} and training["rng"]["torch"].dtype == torch.uint8
    v1 = {"format": d["format"], "format_version": 1, "versions": {**d["versions"], "lyricgen": "0.1.0"},
          "model_config": d["model_config"], "train_config": config, "tokenizer": d["tokenizer"], "vocab": d["vocab"],
          "unk_prob": side["unk"]["prob"], "repeat_alpha": list(side["repeat"]["alpha"]), "corpus": d["corpus"],
          "originality": side["originality"], "model": d["model"], "optimizer": training["optimizer"],
          "scheduler": scheduler.state_dict(), "state": {k: state[k] for k in V1_STATE}, "rng": training["rng"]}
    assert list(v1) == V1_KEYS
    return v1


@pytest.fixture(scope="module")
def formats(tiny_run, tmp_path_factory):
    """{"v1": dir, "v2": dir}, each holding last.pt: the tiny run's last.pt in each format. Its run
    state is set so that resuming must carry every plateau counter: the next period (at step 55)
    does not improve on period_ref, and with lr_bad_periods already 1 the learning rate is cut."""
    ckpt = load_checkpoint(tiny_run / "last.pt")
    # format 1 predates the n-gram mixture: without it, the mixture's (far lower) best loss goes too
    ckpt = dataclasses.replace(ckpt, side=dataclasses.replace(ckpt.side, mixture=None))
    state = dataclasses.replace(ckpt.training.state, period_best=0.0, period_ref=0.0, lr_bad_periods=1,
                                bad_periods=1, best_loss=100.0)
    assert state.best_loss not in (0.0, float("inf"))  # best.pt's figure stays distinct from the schedule's
    ckpt = dataclasses.replace(ckpt, training=dataclasses.replace(ckpt.training, state=state))
    # format 1 has no habits, so the format-2 file it is compared with is one from before them
    ckpt = dataclasses.replace(ckpt, side=dataclasses.replace(ckpt.side, habits=None))
    dirs = {name: tmp_path_factory.mktemp(name) for name in ("v1", "v2")}
    save_checkpoint(ckpt, dirs["v2"] / "last.pt")
    torch.save(to_format_1(to_dict(ckpt)), dirs["v1"] / "last.pt")
    return dirs


def test_format_1_loads_as_what_it_was_converted_from(formats, tiny_ckpt, tmp_path):
    raw = read_raw(formats["v1"] / "last.pt")
    assert raw["format_version"] == 1 and list(raw) == V1_KEYS
    v1, v2 = load_checkpoint(formats["v1"] / "last.pt"), load_checkpoint(formats["v2"] / "last.pt")
    assert v1.versions["lyricgen"] == "0.1.0"
    a, b = to_dict(v1), to_dict(v2)
    del a["versions"], b["versions"]
    same_tensors(a, b, "format 1 as format 2")
    assert v1.training.state.lr_bad_periods == 1 and v1.training.state.best_loss == v2.training.state.best_loss
    # a 0.1.0 file without its training state still generates
    slim = {k: v for k, v in raw.items() if k not in ("train_config", "optimizer", "scheduler", "state", "rng")}
    torch.save(slim, tmp_path / "slim.pt")
    assert load_checkpoint(tmp_path / "slim.pt").training is None


def test_format_1_generates_and_evaluates_exactly_as_format_2(formats):
    v1, v2 = Lyricist.load(formats["v1"] / "last.pt"), Lyricist.load(formats["v2"] / "last.pt")
    for options in ({"max_tokens": 30}, {"lines": 3, "temperature": 1.0, "seed": 4, "num_samples": 3},
                    {"max_tokens": 20, "no_copy": True, "temperature": 0.8, "top_p": 0.9, "seed": 2}):
        a, b = v1.generate("月光", **options), v2.generate("月光", **options)
        assert a == b and a[0].copied_lines is not None
    for held_out in (False, True):
        a = evaluate_file(formats["v1"] / "last.pt", TINY_CORPUS, held_out=held_out, device="cpu").to_dict()
        b = evaluate_file(formats["v2"] / "last.pt", TINY_CORPUS, held_out=held_out, device="cpu").to_dict()
        assert a == b and a["repeat_model"] is True


def test_format_1_resumes_exactly_as_format_2(formats, tmp_path):
    results = {}
    for name, directory in formats.items():
        run = tmp_path / name
        shutil.copytree(directory, run)
        trainer = open_run(RunConfig(resume=str(run / "last.pt"), device="cpu"), {"epochs": 6})
        assert trainer.run() == "done"
        results[name] = (load_checkpoint(run / "last.pt"), load_checkpoint(run / "best.pt"))
    (v1_last, v1_best), (v2_last, v2_best) = results["v1"], results["v2"]
    assert v1_last.training.state.step == 66
    same_tensors(v1_last.weights, v2_last.weights, "weights")
    same_tensors(v1_last.training.optimizer, v2_last.training.optimizer, "optimizer")
    same_tensors(v1_best.weights, v2_best.weights, "best.pt")
    keys = ("epoch", "step", "train_loss", "val_loss", "lr")
    rows = [[{k: r[k] for k in keys} for r in ckpt.training.state.metrics] for ckpt in (v1_last, v2_last)]
    assert rows[0] == rows[1]
    lrs = [r["lr"] for r in rows[0]]
    assert lrs[-1] == lrs[0] / 2  # the carried plateau counter cut the learning rate at the period's end
