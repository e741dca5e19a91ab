"""training/distributed.py and each rank's share of the one step (trainer.share, trainer.train_step),
then two gloo processes started by torchrun on this CPU. The ranks' shares average to the
one-process step; ranks end with identical weights; two ranks at batch B take the steps one process takes at 2B; a run
stopped by --max-steps and resumed equals the uninterrupted one; SIGTERM to torchrun leaves a loadable
checkpoint and every process exits; another world size on resume is refused with one line."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import TESTS, TINY_CORPUS, TINY_DATA, TINY_OPTIONS, call_cli, one_error_line, same_tensors, tiny_trainer
from lyricgen.checkpoint import load_checkpoint

dist = pytest.importorskip("torch.distributed")
pytestmark = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                                reason="torch.distributed with gloo is unavailable")

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
# dropout everywhere: every step draws from each rank's RNG, so exact resume needs each rank's state
DDP_TRAIN = ["--embed-dim", "8", "--hidden-size", "16", "--num-layers", "1", "--dropout", "0.3",
             "--embed-dropout", "0.1", *TINY_DATA, "--batch-size", "4", "--seed", "7", "--device", "cpu", "--quiet"]
STEPS_PER_EPOCH = 11  # 83 windows of the tiny corpus, 2 x 4 per step
TIMEOUT = 240  # generous: a torchrun start on a loaded 2-core machine takes tens of seconds


def torchrun(*args, timeout=TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run([*TORCHRUN, *map(str, args)], capture_output=True, text=True, encoding="utf-8",
                          timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=TESTS.parent)


def ddp_train(out, *extra) -> subprocess.CompletedProcess:
    return torchrun("-m", "lyricgen", "train", "--corpus", TINY_CORPUS, "--out", out, *DDP_TRAIN, *extra)


def error_lines(err: str) -> list[str]:
    """lyricgen's own lines, after checking that no rank printed a traceback (torchrun adds its own
    report of the failed ranks, a traceback through torchrun's code, around them)."""
    frames = [line for line in err.splitlines() if line.lstrip().startswith('File "')]
    assert not any("/lyricgen/" in frame for frame in frames), err
    return [line for line in err.splitlines() if line.startswith("lyricgen:")]


def test_world_size_and_rank_rngs_round_trip_and_old_files_read_as_one(tiny_ckpt, tmp_path):
    from dataclasses import replace

    from lyricgen.checkpoint import from_dict, read_raw, save_checkpoint, to_dict

    assert tiny_ckpt.training.world_size == 1 and tiny_ckpt.training.rank_rngs is None
    assert "world_size" not in to_dict(tiny_ckpt)["training"]  # one-process files are as they always were
    rngs = [tiny_ckpt.training.rng, {"torch": torch.Generator().manual_seed(1).get_state()}]
    two = replace(tiny_ckpt, training=replace(tiny_ckpt.training, world_size=2, rank_rngs=rngs))
    save_checkpoint(two, tmp_path / "two.pt")
    back = load_checkpoint(tmp_path / "two.pt")  # through torch.load(weights_only=True)
    assert back.training.world_size == 2
    same_tensors(back.training.rank_rngs, rngs, "rank_rngs")
    raw = read_raw(tmp_path / "two.pt")
    del raw["training"]["rank_rngs"]
    with pytest.raises(Exception, match="world size 2 without an RNG state for each rank"):
        from_dict(raw)


@pytest.mark.parametrize("window", [[8, 3, 5], [4, 8, 1, 6], [8]], ids=["uneven", "even", "empty rank"])
def test_the_ranks_shares_average_to_the_one_process_step(window):
    """The one step (trainer.share, trainer.train_step) for each rank of two, without a process group:
    the mean of the ranks' gradients (what DDP takes) is the world of one's gradient on the whole
    window, and their losses add up to its loss, whatever the padding (window 8 is padded) or a rank
    left with nothing."""
    from lyricgen.config import ModelConfig, TrainConfig
    from lyricgen.model import LyricsRNN
    from lyricgen.training.data import WindowDataset
    from lyricgen.training.distributed import SINGLE, World
    from lyricgen.training.trainer import make_optimizer, share, train_step

    class Rank(World):
        world_size = 2

        def __init__(self, rank):
            self.rank = rank

    data = WindowDataset(torch.arange(70) % 13, seq_len=8)  # 9 windows, the last one padded
    window = torch.tensor(window)
    losses, grads = [], []
    for world in (SINGLE, Rank(0), Rank(1)):
        torch.manual_seed(0)
        model = LyricsRNN(ModelConfig(vocab_size=13, embed_dim=8, hidden_size=16, dropout=0.0, embed_dropout=0.0))
        x, y, tokens = share(data, window, world)
        loss, ntok = train_step(model, make_optimizer(model, TrainConfig()), x, y, clip=1e9, world=world, tokens=tokens)
        assert ntok == int((data.targets[window] != -100).sum())
        losses.append(loss)
        grads.append([p.grad for p in model.parameters()])  # clip 1e9: the unclipped gradients
    assert losses[1] + losses[2] == pytest.approx(losses[0], rel=1e-6)
    for whole, g0, g1 in zip(*grads):
        assert torch.allclose((g0 + g1) / 2, whole, atol=1e-7, rtol=1e-5)


def test_two_ranks_at_batch_b_take_the_steps_of_one_process_at_2b(tmp_path):
    options = {**TINY_OPTIONS, "epochs": 1, "seed": 0, "lr": 1e-2, "dropout": 0.0, "embed_dropout": 0.0}
    out = tmp_path / "ddp"
    r = torchrun(TESTS / "ddp_worker.py", TINY_CORPUS, out, json.dumps({**options, "batch_size": 4}))
    assert r.returncode == 0, r.stderr
    rank0, rank1 = (torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    same_tensors(rank0, rank1, "rank weights")  # DDP keeps the replicas bit for bit identical
    ckpt = load_checkpoint(out / "last.pt")
    same_tensors(ckpt.weights, rank0, "last.pt")
    assert ckpt.training.world_size == 2 and ckpt.training.state.step == STEPS_PER_EPOCH

    single = tiny_trainer(TINY_CORPUS.read_text(encoding="utf-8").splitlines(), tmp_path / "one",
                          **{**options, "batch_size": 8})
    single.run()
    assert single.state.step == STEPS_PER_EPOCH  # the same steps: 83 windows, 8 per step, the last one short
    for name, w in single.model.state_dict().items():
        assert torch.allclose(w, rank0[name], atol=1e-5, rtol=1e-4), name
    assert ckpt.training.state.metrics[0]["train_loss"] == pytest.approx(single.state.metrics[0]["train_loss"],
                                                                         abs=1e-3)


@pytest.fixture(scope="module")
def full_ddp_run(tmp_path_factory) -> Path:
    """The uninterrupted two-epoch, two-rank run that a resumed one must equal."""
    out = tmp_path_factory.mktemp("ddp-full")
    r = ddp_train(out, "--epochs", "2")
    assert r.returncode == 0, r.stderr
    return out


def test_a_stopped_and_resumed_run_equals_the_uninterrupted_one(full_ddp_run, tmp_path):
    out = tmp_path / "run"
    r = ddp_train(out, "--epochs", "2", "--max-steps", "5")  # mid-epoch
    assert r.returncode == 0, r.stderr
    stopped = load_checkpoint(out / "last.pt").training
    assert stopped.state.step == 5 and stopped.world_size == 2
    assert not torch.equal(stopped.rank_rngs[0]["torch"], stopped.rank_rngs[1]["torch"])  # own dropout masks
    r = torchrun("-m", "lyricgen", "train", "--resume", out / "last.pt", "--device", "cpu", "--quiet")
    assert r.returncode == 0, r.stderr
    x, y = load_checkpoint(out / "last.pt"), load_checkpoint(full_ddp_run / "last.pt")
    assert x.training.state.step == y.training.state.step == 2 * STEPS_PER_EPOCH
    same_tensors(x.weights, y.weights, "weights")
    same_tensors(x.training.optimizer, y.training.optimizer, "optimizer")
    same_tensors(x.training.rank_rngs, y.training.rank_rngs, "rng")
    keys = ("epoch", "step", "train_loss", "val_loss", "lr")
    assert [{k: m[k] for k in keys} for m in x.training.state.metrics] == \
        [{k: m[k] for k in keys} for m in y.training.state.metrics]


def test_resume_with_another_world_size_is_refused_in_one_line(full_ddp_run, tiny_run, tmp_path, capsys):
    rc, _, err = call_cli(["train", "--resume", full_ddp_run / "last.pt", "--epochs", "3", "--device", "cpu"], capsys)
    assert rc == 1
    assert "trained by 2 process(es) and this run has 1" in one_error_line(err)

    single = tmp_path / "single"
    single.mkdir()
    (single / "last.pt").write_bytes((tiny_run / "last.pt").read_bytes())
    r = torchrun("-m", "lyricgen", "train", "--resume", single / "last.pt", "--epochs", "3", "--device", "cpu")
    assert r.returncode != 0
    lines = error_lines(r.stderr)
    assert len(lines) == 1 and "trained by 1 process(es) and this run has 2" in lines[0], r.stderr


def worker_pids(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] in ("Z", "X")
    except OSError:
        return True


def test_sigterm_leaves_a_loadable_checkpoint_and_every_process_exits(tmp_path):
    out = tmp_path / "run"
    argv = [*TORCHRUN, "-m", "lyricgen", "train", "--corpus", TINY_CORPUS, "--out", out, *DDP_TRAIN, "--epochs", "5000"]
    proc = subprocess.Popen([str(a) for a in argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=TESTS.parent, start_new_session=True)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not (out / "last.pt").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert (out / "last.pt").exists(), "training never saved"
        workers = worker_pids(proc.pid)
        assert len(workers) == 2
        os.killpg(proc.pid, signal.SIGTERM)  # what a scheduler sends: torchrun passes it on to every rank
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    for pid in workers:
        deadline = time.monotonic() + 10
        while not gone(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert gone(pid), f"rank process {pid} still runs"
    assert "SIGTERM: saved" in err and len(error_lines(err)) == 1, err
    torch.load(out / "last.pt", weights_only=True)
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt.training.world_size == 2 and ckpt.training.state.step >= STEPS_PER_EPOCH


def test_after_a_clean_run_the_ranks_wait_for_each_other_before_they_leave(monkeypatch):
    """ProcessGroup.close: a barrier, then the process group destroyed; after an error no barrier (the
    other ranks may never come); a barrier that fails (a rank gone) does not keep a rank from leaving."""
    from lyricgen.training import distributed

    calls = []
    dist = torch.distributed
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "destroy_process_group", lambda: calls.append("destroy"))

    def barrier(timeout=None):
        calls.append(("barrier", timeout))

    monkeypatch.setattr(dist, "monitored_barrier", barrier)
    world = distributed.ProcessGroup(1, 2, 1, "cpu")
    world.close()
    assert calls == [("barrier", distributed.CLOSE_WAIT), "destroy"]
    calls.clear()
    world.close(clean=False)
    assert calls == ["destroy"]

    def gone(timeout=None):
        raise RuntimeError("Rank 0 failed to pass monitoredBarrier")

    monkeypatch.setattr(dist, "monitored_barrier", gone)
    calls.clear()
    world.close()
    assert calls == ["destroy"]
