"""training/run.py: starting and resuming a run in a directory. Every policy `lyricgen train` relies on
(a directory holds one run, --force starts over, resume takes everything from the checkpoint and
refuses changes), exact resume from anywhere (also after Ctrl-C), seeds, and stopping on signals.

The signal runs are real `python -m lyricgen train` processes (POSIX only); they start in the
background with this module's first test and are checked by its last ones.
"""
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from conftest import (TINY_CORPUS, TINY_DATA, TINY_OPTIONS, call_cli, one_error_line, same_tensors, snapshot,
                      tiny_trainer, weights_equal)
from lyricgen.checkpoint import load_checkpoint, save_checkpoint
from lyricgen.config import RunConfig
from lyricgen.errors import LyricgenError
from lyricgen.runfiles import RunFiles
from lyricgen.training.run import open_run, stop_on_signals

CPU = {"device": "cpu"}
NEW_RUN = {**TINY_OPTIONS, "epochs": 1}


def refused(run: RunConfig, options: dict) -> str:
    with pytest.raises(LyricgenError) as info:
        open_run(run, options)
    message = str(info.value)
    assert "\n" not in message
    return message


# -- one run per directory ----------------------------------------------------------------------------
def test_out_holding_a_run_is_refused_without_force_or_resume(run_copy):
    before = snapshot(run_copy)
    message = refused(RunConfig(corpus=str(TINY_CORPUS), out=str(run_copy), **CPU), NEW_RUN)
    assert "already holds a run" in message and "--force" in message
    assert f"--resume {run_copy / 'last.pt'}" in message
    assert snapshot(run_copy) == before


def test_force_starts_over_deleting_the_old_runs_files(run_copy):
    trainer = open_run(RunConfig(corpus=str(TINY_CORPUS), out=str(run_copy), force=True, **CPU),
                       {**NEW_RUN, "max_steps": 1, "seed": 5})
    assert not any(path.exists() for path in RunFiles(run_copy).all())  # gone before the first step
    assert trainer.run() == "max_steps"
    assert sorted(p.name for p in run_copy.iterdir()) == ["last.pt", "metrics.csv"]  # no best.pt of the old run
    assert load_checkpoint(run_copy / "last.pt").training.state.step == 1
    assert (run_copy / "metrics.csv").read_text(encoding="utf-8").count("\n") == 1  # the header, no old rows


def test_resuming_an_earlier_checkpoint_of_the_run_needs_force(run_copy):
    before = snapshot(run_copy)
    message = refused(RunConfig(resume=str(run_copy / "best.pt"), **CPU), {"epochs": 3})
    assert "would overwrite" in message and "--force" in message
    assert snapshot(run_copy) == before
    trainer = open_run(RunConfig(resume=str(run_copy / "best.pt"), force=True, **CPU), {"epochs": 3})
    assert sorted(p.name for p in run_copy.iterdir()) == ["best.pt"]  # the checkpoint it resumes from stays
    assert trainer.run() == "done" and load_checkpoint(run_copy / "last.pt").training.state.epoch == 3


def test_resume_into_another_runs_directory_is_refused(run_copy, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(run_copy, other)
    before = snapshot(other)
    message = refused(RunConfig(resume=str(run_copy / "last.pt"), out=str(other), **CPU), {"epochs": 3})
    assert str(other) in message and "--force" in message
    assert snapshot(other) == before


def test_out_that_is_a_file_is_refused(tmp_path):
    target = tmp_path / "afile"
    target.write_text("keep me", encoding="utf-8")
    message = refused(RunConfig(corpus=str(TINY_CORPUS), out=str(target), force=True, **CPU), NEW_RUN)
    assert f"--out {target} exists and is not a directory" in message
    assert target.read_text(encoding="utf-8") == "keep me"


def test_a_new_run_needs_an_epoch(tmp_path):
    out = tmp_path / "r"
    message = refused(RunConfig(corpus=str(TINY_CORPUS), out=str(out), **CPU), {**NEW_RUN, "epochs": 0})
    assert message == "--epochs must be at least 1 for a new run"
    assert not out.exists() or list(out.iterdir()) == []


def test_deterministic_is_applied_on_the_run_device(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr("lyricgen.training.run.make_deterministic", calls.append)
    open_run(RunConfig(corpus=str(TINY_CORPUS), out=str(tmp_path / "a"), **CPU), NEW_RUN)
    assert calls == []
    open_run(RunConfig(corpus=str(TINY_CORPUS), out=str(tmp_path / "b"), deterministic=True, **CPU), NEW_RUN)
    assert calls == [torch.device("cpu")]


# -- what resume may and may not change ------------------------------------------------------------------
@pytest.mark.parametrize("options, flag", [({"seq_len": 4}, "--seq-len"), ({"seq_len": 8}, "--seq-len"),
                                           ({"hidden_size": 32}, "--hidden-size"), ({"min_freq": 1}, "--min-freq"),
                                           ({"lr": 0.01, "epochs": 3}, "--lr")])
def test_resume_refuses_fixed_options_naming_the_flag(run_copy, options, flag):
    before = snapshot(run_copy)
    message = refused(RunConfig(resume=str(run_copy / "last.pt"), **CPU), options)
    assert message == f"{flag} is fixed by the checkpoint and cannot change on resume"
    assert snapshot(run_copy) == before  # even given its recorded value (seq_len 8): only what may change


def test_resume_may_extend_the_run_and_budget_this_invocation(run_copy):
    trainer = open_run(RunConfig(resume=str(run_copy / "last.pt"), **CPU),
                       {"epochs": 5, "patience": 2, "time_budget": 60.0, "max_steps": 30})
    config = trainer.config
    assert (config.epochs, config.patience, config.time_budget, config.max_steps) == (5, 2, 60.0, 30)
    assert trainer.state.step == 22 and trainer.model.config == load_checkpoint(run_copy / "last.pt").model_config
    trainer = open_run(RunConfig(resume=str(run_copy / "last.pt"), **CPU), {"epochs": 3})
    assert trainer.config.time_budget is None and trainer.config.max_steps is None  # per invocation only


def test_resume_past_the_end_asks_for_more_epochs(run_copy):
    message = refused(RunConfig(resume=str(run_copy / "last.pt"), **CPU), {})
    assert "already completed 2 of 2 epochs" in message and "--epochs greater than 2" in message


def test_resume_refuses_a_changed_corpus(run_copy, tmp_path):
    changed = tmp_path / "changed.txt"
    changed.write_text(TINY_CORPUS.read_text(encoding="utf-8") + "新的一行\n", encoding="utf-8")
    message = refused(RunConfig(resume=str(run_copy / "last.pt"), corpus=str(changed), **CPU), {"epochs": 3})
    assert f"{changed} is not the corpus this checkpoint was trained on" in message
    # the recorded file itself changed since
    corpus = tmp_path / "own.txt"
    shutil.copy(TINY_CORPUS, corpus)
    open_run(RunConfig(corpus=str(corpus), out=str(tmp_path / "own"), **CPU), {**NEW_RUN, "max_steps": 1}).run()
    with open(corpus, "a", encoding="utf-8") as f:
        f.write("新的一行\n")
    message = refused(RunConfig(resume=str(tmp_path / "own" / "last.pt"), **CPU), {"epochs": 2})
    assert "is not the corpus this checkpoint was trained on (its content changed)" in message


def test_resume_keeps_the_corpus_encoding_and_refuses_another(tmp_path):
    corpus = tmp_path / "gb.txt"
    corpus.write_bytes(TINY_CORPUS.read_text(encoding="utf-8").encode("gb18030"))
    run = RunConfig(corpus=str(corpus), encoding="gb18030", out=str(tmp_path / "run"), **CPU)
    open_run(run, {**NEW_RUN, "max_steps": 1}).run()
    last = str(tmp_path / "run" / "last.pt")
    assert load_checkpoint(last).corpus.encoding == "gb18030"
    trainer = open_run(RunConfig(resume=last, **CPU), {"epochs": 2})  # no --encoding needed
    assert trainer.corpus.encoding == "gb18030"
    assert open_run(RunConfig(resume=last, encoding="GB18030", **CPU), {"epochs": 2}).corpus.encoding == "gb18030"
    message = refused(RunConfig(resume=last, encoding="utf-8", **CPU), {"epochs": 2})
    assert message == "the run was trained on gb18030 text; --encoding cannot change on resume"


def test_resume_needs_the_training_state_and_a_corpus(tiny_ckpt, tmp_path):
    slim = tmp_path / "slim" / "last.pt"
    save_checkpoint(tiny_ckpt.without_training(), slim)
    message = refused(RunConfig(resume=str(slim), corpus=str(TINY_CORPUS), **CPU), {"epochs": 3})
    assert "holds no training state" in message and "generate and evaluate" in message
    nameless = tmp_path / "nameless" / "last.pt"
    save_checkpoint(dataclasses.replace(tiny_ckpt, corpus=None), nameless)
    assert refused(RunConfig(resume=str(nameless), **CPU), {"epochs": 3}) == \
        "the checkpoint does not name its corpus; pass --corpus"
    trainer = open_run(RunConfig(resume=str(nameless), corpus=str(TINY_CORPUS), **CPU), {"epochs": 3})
    assert trainer.state.epoch == tiny_ckpt.training.state.epoch


# -- exact resume, from anywhere ---------------------------------------------------------------------------
# two layers and dropout everywhere (embeddings, between the layers, before the output): every step
# draws from the RNG, so an exact resume needs the RNG state restored as well as the data order
RESUME_TRAIN = ["--embed-dim", "8", "--hidden-size", "16", "--num-layers", "2", "--dropout", "0.3",
                "--embed-dropout", "0.1", *TINY_DATA, "--seed", "7", "--device", "cpu", "--quiet"]
STEPS_PER_EPOCH = 11


def train_argv(out, *extra) -> list:
    return ["train", "--corpus", TINY_CORPUS, "--out", out, *RESUME_TRAIN, *extra]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory) -> Path:
    """The uninterrupted two-epoch run that the resumed ones must equal."""
    from lyricgen.cli import main

    out = tmp_path_factory.mktemp("full-run")
    assert main([str(a) for a in train_argv(out, "--epochs", "2")]) == 0
    return out


def assert_same_run(a: Path, b: Path) -> None:
    """Two run directories hold the same training, bit for bit: weights, optimizer, RNG, best.pt, metrics."""
    x, y = load_checkpoint(a / "last.pt"), load_checkpoint(b / "last.pt")
    assert x.training.state.step == y.training.state.step
    same_tensors(x.weights, y.weights, "weights")
    same_tensors(x.training.optimizer, y.training.optimizer, "optimizer")
    same_tensors(x.training.rng, y.training.rng, "rng")
    same_tensors(load_checkpoint(a / "best.pt").weights, load_checkpoint(b / "best.pt").weights, "best.pt")
    keys = ("epoch", "step", "train_loss", "val_loss", "val_ppl", "val_bpc_open", "lr")
    assert [{k: r[k] for k in keys} for r in x.training.state.metrics] == \
        [{k: r[k] for k in keys} for r in y.training.state.metrics]


def _stop_with_max_steps(tmp_path, capsys, k) -> Path:
    out = tmp_path / "run"
    rc, _, err = call_cli(train_argv(out, "--epochs", "2", "--max-steps", k), capsys)
    assert rc == 0, err
    state = load_checkpoint(out / "last.pt").training.state
    assert state.step == k
    assert (state.epoch, state.batch_in_epoch) == divmod(k, STEPS_PER_EPOCH)
    return out


def _resume(out, capsys, *extra) -> None:
    torch.manual_seed(999)  # whatever the process did in between moves the global RNG
    torch.rand(17)
    rc, _, err = call_cli(["train", "--resume", out / "last.pt", *extra, "--device", "cpu", "--quiet"], capsys)
    assert rc == 0, err


@pytest.mark.parametrize("stop", ["mid-epoch", "epoch boundary", "SIGINT"])
def test_resume_is_exact(full_run, request, tmp_path, capsys, stop):
    """Stopped by --max-steps in the middle of an epoch or at its end, or by Ctrl-C in a real process,
    then resumed: the run goes on bit for bit as the uninterrupted one."""
    if stop == "SIGINT":
        rc, err, signalled_out = request.getfixturevalue("signalled")["SIGINT"]
        assert rc == 130, err
        out = tmp_path / "interrupted"
        shutil.copytree(signalled_out, out)
        n = load_checkpoint(out / "last.pt").training.state.step + 7
        reference = tmp_path / "reference"
        rc, _, err = call_cli(train_argv(reference, *SIGNAL_EPOCHS, "--max-steps", n), capsys)
        assert rc == 0, err
        _resume(out, capsys, "--max-steps", n)
    else:
        out = _stop_with_max_steps(tmp_path, capsys, 3 if stop == "mid-epoch" else STEPS_PER_EPOCH)
        reference = full_run
        _resume(out, capsys)  # to the end of --epochs 2
        assert load_checkpoint(out / "last.pt").training.state.step == 2 * STEPS_PER_EPOCH
    assert_same_run(out, reference)


def test_resume_without_the_rng_restore_diverges(full_run, tmp_path, capsys, monkeypatch):
    """The control: the same resume with set_rng_state disabled gives other dropout masks."""
    out = _stop_with_max_steps(tmp_path, capsys, 3)
    monkeypatch.setattr("lyricgen.training.trainer.set_rng_state", lambda state: None)
    _resume(out, capsys)
    assert not weights_equal(load_checkpoint(out / "last.pt").weights, load_checkpoint(full_run / "last.pt").weights)


def test_same_seed_same_weights_other_seed_other_weights(full_run, tmp_path, capsys):
    rc, _, err = call_cli(train_argv(tmp_path / "same", "--epochs", "2"), capsys)
    assert rc == 0, err
    assert_same_run(tmp_path / "same", full_run)
    rc, _, err = call_cli(train_argv(tmp_path / "other", "--epochs", "2", "--seed", "8"), capsys)
    assert rc == 0, err
    assert not weights_equal(load_checkpoint(tmp_path / "other" / "last.pt").weights,
                             load_checkpoint(full_run / "last.pt").weights)


# -- signals ---------------------------------------------------------------------------------------------
def test_stop_on_signals_asks_the_trainer_to_stop_and_puts_the_handlers_back(tiny_lines, tmp_path):
    trainer = tiny_trainer(tiny_lines, tmp_path)
    before = signal.getsignal(signal.SIGTERM)
    with stop_on_signals(trainer):
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before and trainer.stop_signal is None
    try:
        with stop_on_signals(trainer):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.01)  # the handler runs in the main thread at the next bytecode boundary
            assert trainer.stop_signal == signal.SIGTERM
        # stopped for a signal: the save and the exit must not be broken by another one
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, before)


SIGNAL_EPOCHS = ["--epochs", "400"]  # long enough that only the signal stops it
SIGNAL_CASES = {
    "SIGINT": [signal.SIGINT],
    "SIGTERM": [signal.SIGTERM],
    "SIGINT x3": [signal.SIGINT, signal.SIGINT, signal.SIGINT],  # an impatient user, 5 ms apart
    "SIGINT flood": None,  # Ctrl-C held down: a SIGINT every 2 ms until the process is gone
}


class SignalRuns:
    """One long training process per case; a watcher thread signals each as soon as it has saved
    last.pt (after its first epoch). `self[case]` waits for it: (returncode, stderr, out dir)."""

    def __init__(self, root: Path, env: dict):
        self.procs = {}
        for case in SIGNAL_CASES:
            out = root / case.replace(" ", "_")
            cmd = [sys.executable, "-m", "lyricgen", *map(str, train_argv(out, *SIGNAL_EPOCHS))]
            self.procs[case] = (out, subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                                      env=env))
        self.results = {}
        self.watcher = threading.Thread(target=self._signal_when_saved, daemon=True)
        self.watcher.start()

    def _signal_when_saved(self):
        pending = dict(self.procs)
        flooding = set()
        deadline = time.monotonic() + 120
        while pending and time.monotonic() < deadline:
            for case, (out, proc) in list(pending.items()):
                if proc.poll() is not None:
                    del pending[case]
                elif case in flooding or (out / "last.pt").exists():
                    signals = SIGNAL_CASES[case]
                    if signals is None:
                        flooding.add(case)
                        signals = [signal.SIGINT]
                    else:
                        del pending[case]
                    for k, sig in enumerate(signals):
                        if k:
                            time.sleep(0.005)
                        try:
                            proc.send_signal(sig)
                        except ProcessLookupError:
                            pass
            time.sleep(0.002)

    def __getitem__(self, case):
        if case not in self.results:
            self.watcher.join(timeout=150)
            out, proc = self.procs[case]
            try:
                _, err = proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
                err = b"(timed out) " + err
            self.results[case] = (proc.returncode, err.decode("utf-8", "replace"), out)
        return self.results[case]

    def close(self):
        for _, proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def signalled(tmp_path_factory, private_cache):
    if os.name != "posix":
        pytest.skip("signals need POSIX")
    from lyricgen.text.corpus import read_corpus, split_lines
    from lyricgen.training.data import prepare

    prepare(*split_lines(read_corpus(TINY_CORPUS), 0.1), 2, 8)  # warm the token cache: no jieba in the children
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LYRICGEN_CACHE": str(private_cache)}
    runs = SignalRuns(tmp_path_factory.mktemp("signalled"), env)
    yield runs
    runs.close()


@pytest.fixture(scope="module", autouse=True)
def _start_signal_runs_early(request):
    """Start the background training processes now if any selected test here needs them."""
    if any(item.module is request.module and ("signalled" in item.fixturenames or "SIGINT" in item.name)
           for item in request.session.items):
        request.getfixturevalue("signalled")


@pytest.mark.parametrize("case, code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_signal_saves_last_step_and_prints_the_resume_command(signalled, case, code):
    rc, err, out = signalled[case]
    assert rc == code, err
    line = one_error_line(err)  # exactly one line, no traceback
    assert "--resume" in line and case in line and str(out / "last.pt") in line
    state = load_checkpoint(out / "last.pt").training.state
    assert f"at step {state.step};" in line
    assert state.step >= STEPS_PER_EPOCH  # last.pt existed (epoch 1 done) before the signal was sent
    assert state.epoch * STEPS_PER_EPOCH + state.batch_in_epoch == state.step


def test_repeated_sigint_still_exits_130_with_a_loadable_checkpoint(signalled):
    rc, err, out = signalled["SIGINT x3"]
    assert rc == 130, err
    assert any("--resume" in line for line in err.splitlines())
    assert load_checkpoint(out / "last.pt").training.state.step > 0
    # (no "no Traceback" check here: a late SIGINT sometimes lands in interpreter shutdown; the
    # flood test below exposes that deterministically)


def test_held_down_ctrl_c_exits_130_with_one_line(signalled):
    rc, err, out = signalled["SIGINT flood"]
    load_checkpoint(out / "last.pt")  # the run itself is saved either way
    assert rc == 130, err
    assert "--resume" in one_error_line(err)


# -- fine-tuning from a base model ---------------------------------------------------------------------
def test_init_from_starts_a_new_run_from_the_bases_weights_and_vocabulary(tiny_ckpt, tiny_run, tmp_path, capsys):
    corpus = tmp_path / "artist.txt"  # another artist: some characters the base never saw
    corpus.write_text("月光洒在新的街角\n龘龘的鼓声\n" * 20, encoding="utf-8")
    trainer = open_run(RunConfig(init_from=str(tiny_run / "best.pt"), corpus=str(corpus), out=str(tmp_path / "ft"),
                                 **CPU), {"epochs": 1, "seq_len": 8, "batch_size": 8, "dropout": 0.1})
    old = len(tiny_ckpt.vocab)
    vocab = trainer.data.vocab  # the base's, grown by what the new corpus adds (test_base.py covers the rows)
    assert vocab.tokens[:old] == tiny_ckpt.vocab.tokens and "龘" in vocab.tokens[old:]
    assert trainer.tokenizer == tiny_ckpt.tokenizer
    state = trainer.model.state_dict()
    assert same_tensors({k: state[k][:old] if state[k].shape[0] == len(vocab) else state[k] for k in state},
                        tiny_ckpt.weights) is None
    assert trainer.model.config.dropout == 0.1 and trainer.state.step == 0 and not trainer.optimizer.state
    assert vocab.unk_id not in trainer.data.train.stream.tolist()  # 龘 has an id of its own now
    assert trainer.run() == "done"
    ckpt = load_checkpoint(tmp_path / "ft" / "last.pt")
    assert ckpt.corpus.path == str(corpus) and ckpt.vocab.tokens == vocab.tokens
    # the fine-tuned run resumes like any other
    assert open_run(RunConfig(resume=str(tmp_path / "ft" / "last.pt"), **CPU), {"epochs": 2}).state.epoch == 1
    assert refused(RunConfig(init_from=str(tiny_run / "best.pt"), resume=str(tiny_run / "last.pt"), **CPU),
                   {}) == "--init-from starts a new run from a base model; it cannot be combined with --resume"
    assert refused(RunConfig(init_from=str(tiny_run / "best.pt"), corpus=str(corpus), out=str(tmp_path / "x"), **CPU),
                   {"hidden_size": 64}) == "--hidden-size is fixed by the --init-from checkpoint"
    rc, _, err = call_cli(["train", "--init-from", tmp_path / "missing.pt", "--corpus", corpus, "--out",
                           tmp_path / "y", "--device", "cpu"], capsys)
    assert rc != 0 and "checkpoint not found" in one_error_line(err)
