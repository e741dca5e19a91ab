"""The "never lose a run" promises: signals, kill -9 during saves, failing saves, exact resume
(and that the RNG restore is what makes it exact), determinism, hostile corpora, numerical faults.

Signals and kill -9 need POSIX; the signal runs are real `python -m lyricgen train` processes.
"""
import errno
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from conftest import TINY_CORPUS, TINY_TRAIN, call_cli, one_error_line
from lyricgen.checkpoint import load_checkpoint, save_checkpoint
from lyricgen.errors import LyricgenError

pytestmark = pytest.mark.skipif(os.name != "posix", reason="signals and kill -9 need POSIX")

# dropout (and the default embed-dropout) consume the torch RNG, so exact resume needs its restore
SIGNAL_TRAIN = ["--epochs", "400", "--dropout", "0.3", "--seed", "7", *TINY_TRAIN]


def same_tensors(a, b, where="") -> None:
    """Bitwise equality of nested checkpoint parts (tensors with torch.equal, the rest with ==)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            same_tensors(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            same_tensors(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def weights_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def temp_leftovers(directory: Path, name: str) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(f".{name}.tmp-"))


# -- 1, 2: signals through the real command line ----------------------------------------------------
# These run last in this file; their four training processes start with the module's first test and
# run in the background (each pays ~5 s of CPU for importing torch and its optimizer machinery).
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
            cmd = [sys.executable, "-m", "lyricgen", "train", "--corpus", str(TINY_CORPUS), "--out", str(out),
                   *SIGNAL_TRAIN]
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
    from lyricgen.data import prepare
    from lyricgen.text.corpus import read_corpus

    prepare(read_corpus(TINY_CORPUS), 0.1, 2, 8)  # warm the private token cache: no jieba in the children
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LYRICGEN_CACHE": str(private_cache)}
    runs = SignalRuns(tmp_path_factory.mktemp("signalled"), env)
    yield runs
    runs.close()


@pytest.fixture(scope="module", autouse=True)
def _start_signal_runs_early(request):
    """Start the background training processes now if any selected test here needs them."""
    if any(item.module is request.module and "signalled" in item.fixturenames for item in request.session.items):
        request.getfixturevalue("signalled")


# -- 3: kill -9 in the middle of saves ---------------------------------------------------------------
def _payload(name: str, value: float) -> dict:
    """A few MB of tensors, every one filled with `value`: a mix of A and B is detectable."""
    return {
        "version": name,
        "marker": torch.tensor([value]),
        "weights": {"big": torch.full((700_000,), value), "small": torch.full((300, 300), value)},
        "list": [torch.full((50_000,), value), value],
    }


def _check_complete(raw) -> str:
    value = {"A": 1.0, "B": 2.0}[raw["version"]]
    expected = _payload(raw["version"], value)
    same_tensors(raw, expected, "payload")
    return raw["version"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_kill_9_during_saves_leaves_one_complete_version(tmp_path):
    """A child process saves A, B, A, B... forever; it is SIGKILLed at random moments. The file
    always loads (weights_only) and is wholly A or wholly B; the next save clears the debris.

    The child is forked from this process (torch already imported), so each round costs
    milliseconds instead of a fresh interpreter's import time."""
    path = tmp_path / "ckpt.pt"
    versions = [_payload("A", 1.0), _payload("B", 2.0)]
    t0 = time.perf_counter()
    save_checkpoint(versions[1], path)
    save_time = time.perf_counter() - t0
    rng = random.Random(20240611)
    seen, killed_mid_save = set(), 0
    for _ in range(5):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: never returns into pytest
            try:
                os.close(r)
                n = 0
                while True:
                    save_checkpoint(versions[n % 2], path)
                    n += 1
                    os.write(w, b"s")
            finally:
                os._exit(1)
        os.close(w)
        try:
            assert os.read(r, 1) == b"s", "the saving child died before its first save"
            time.sleep(rng.uniform(0, 3 * save_time))
        finally:
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
            os.close(r)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        killed_mid_save += bool(temp_leftovers(tmp_path, path.name))
        seen.add(_check_complete(torch.load(path, map_location="cpu", weights_only=True)))
    assert killed_mid_save >= 1, "no kill landed inside a save; the test proved nothing"
    save_checkpoint(versions[0], path)
    assert _check_complete(torch.load(path, map_location="cpu", weights_only=True)) == "A"
    assert temp_leftovers(tmp_path, path.name) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]


# -- 4: saves that fail ---------------------------------------------------------------------------
def _fail_torch_save(exc):
    def fake(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half written")
        raise exc
    return fake


def _raise(exc):
    def fake(*args, **kwargs):
        raise exc
    return fake


SAVE_FAULTS = {
    "disk full while writing": ("lyricgen.checkpoint.torch.save",
                                lambda: _fail_torch_save(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))),
    "permission denied while writing": ("lyricgen.checkpoint.torch.save",
                                        lambda: _fail_torch_save(PermissionError(errno.EACCES, "Permission denied"))),
    "disk full at fsync": ("lyricgen.checkpoint.os.fsync",
                           lambda: _raise(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))),
    "permission denied at rename": ("lyricgen.checkpoint.os.replace",
                                    lambda: _raise(PermissionError(errno.EACCES, "Permission denied"))),
    "permission denied creating the temp file": ("lyricgen.checkpoint.tempfile.mkstemp",
                                                 lambda: _raise(PermissionError(errno.EACCES, "Permission denied"))),
}


@pytest.mark.parametrize("fault", list(SAVE_FAULTS))
def test_failed_save_is_one_error_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch, fault):
    path = tmp_path / "last.pt"
    save_checkpoint({"version": "old", "w": torch.arange(1000.0)}, path)
    before = path.read_bytes()
    target, make = SAVE_FAULTS[fault]
    monkeypatch.setattr(target, make())
    with pytest.raises(LyricgenError) as info:
        save_checkpoint({"version": "new", "w": torch.zeros(1000)}, path)
    monkeypatch.undo()
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temp file left behind


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_output_directory(tmp_path):
    directory = tmp_path / "ro"
    directory.mkdir()
    path = directory / "last.pt"
    save_checkpoint({"version": "old"}, path)
    before = path.read_bytes()
    os.chmod(directory, 0o500)
    try:
        with pytest.raises(LyricgenError) as info:
            save_checkpoint({"version": "new"}, path)
    finally:
        os.chmod(directory, 0o700)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert path.read_bytes() == before
    assert sorted(p.name for p in directory.iterdir()) == ["last.pt"]


def test_output_directory_that_is_a_file(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_bytes(b"not a directory")
    path = blocker / "last.pt"
    with pytest.raises(LyricgenError) as info:
        save_checkpoint({"version": "new"}, path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert blocker.read_bytes() == b"not a directory"


def test_disk_full_during_training_keeps_the_run(run_copy, cli, monkeypatch):
    before = {p.name: p.read_bytes() for p in run_copy.iterdir()}
    monkeypatch.setattr("lyricgen.checkpoint.torch.save",
                        _fail_torch_save(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))))
    rc, _, err = cli("train", "--resume", run_copy / "last.pt", "--epochs", "3", "--quiet")
    monkeypatch.undo()
    assert rc == 1
    line = one_error_line(err)
    assert str(run_copy / "last.pt") in line and "No space left" in line
    assert {p.name: p.read_bytes() for p in run_copy.iterdir()} == before
    load_checkpoint(run_copy / "last.pt")


# -- 5, 6: exact resume needs the RNG restore; determinism ------------------------------------------
def rng_train(seed=3) -> list:
    return ["train", "--corpus", TINY_CORPUS, "--epochs", "2", "--dropout", "0.5", "--seed", str(seed), *TINY_TRAIN]


K_STEPS, N_STEPS = 3, 9


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    from lyricgen.cli import main

    out = tmp_path_factory.mktemp("rng-uninterrupted")
    assert main([str(a) for a in [*rng_train(), "--out", out, "--max-steps", N_STEPS]]) == 0
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["state"]["step"] == N_STEPS
    return ckpt


def _stop_and_resume(tmp_path, capsys) -> dict:
    out = tmp_path / "run"
    rc, _, err = call_cli([*rng_train(), "--out", out, "--max-steps", K_STEPS], capsys)
    assert rc == 0, err
    torch.manual_seed(999)  # whatever the process did in between moves the global RNG
    torch.rand(17)
    rc, _, err = call_cli(["train", "--resume", out / "last.pt", "--max-steps", N_STEPS, "--quiet"], capsys)
    assert rc == 0, err
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["state"]["step"] == N_STEPS
    return ckpt


def test_resume_with_rng_restore_is_exact(uninterrupted, tmp_path, capsys):
    resumed = _stop_and_resume(tmp_path, capsys)
    same_tensors(resumed["model"], uninterrupted["model"], "model")
    same_tensors(resumed["optimizer"], uninterrupted["optimizer"], "optimizer")


def test_resume_without_rng_restore_diverges(uninterrupted, tmp_path, capsys, monkeypatch):
    """The control: the same resume with set_rng_state disabled gives other dropout masks."""
    monkeypatch.setattr("lyricgen.train.set_rng_state", lambda state: None)
    resumed = _stop_and_resume(tmp_path, capsys)
    assert not weights_equal(resumed["model"], uninterrupted["model"])


def test_same_seed_same_weights_other_seed_other_weights(uninterrupted, tmp_path, capsys):
    def run(seed, name):
        rc, _, err = call_cli([*rng_train(seed), "--out", tmp_path / name, "--max-steps", N_STEPS], capsys)
        assert rc == 0, err
        return load_checkpoint(tmp_path / name / "last.pt")

    again = run(3, "same")
    same_tensors(again["model"], uninterrupted["model"], "model")
    same_tensors(again["optimizer"], uninterrupted["optimizer"], "optimizer")
    assert not weights_equal(run(4, "other")["model"], uninterrupted["model"])


def test_loaded_checkpoint_generates_exactly_what_the_trained_model_does(tiny_lines, tmp_path):
    from lyricgen.predict import Lyricist
    from lyricgen.train import TokenizerConfig, TrainConfig, start_run

    config = TrainConfig(epochs=3, batch_size=8, seq_len=8, seed=5, max_steps=25)
    trainer = start_run(tiny_lines, {"embed_dim": 8, "hidden_size": 16, "num_layers": 1, "dropout": 0.3},
                        TokenizerConfig(min_freq=2), config, tmp_path, torch.device("cpu"), {"path": "tiny"})
    assert trainer.run() == "max_steps"
    in_memory = Lyricist(trainer.model, trainer.data.vocab)
    loaded = Lyricist.load(tmp_path / "last.pt")
    wrote = False
    for options in ({"max_tokens": 30},
                    {"max_tokens": 30, "temperature": 1.0, "seed": 5, "num_samples": 3},
                    {"max_tokens": 30, "temperature": 0.8, "top_p": 0.9, "top_k": 20, "seed": 11, "lines": 3}):
        a = in_memory.generate("月光", **options)
        b = loaded.generate("月光", **options)
        assert [(c.text, c.score, c.tokens) for c in a] == [(c.text, c.score, c.tokens) for c in b], options
        wrote |= any(len(c.text) > len("月光") for c in a)
    assert wrote


# -- 7: hostile corpora through the command line -----------------------------------------------------
LINES = ["晨光照亮小窗台", "火车穿过长隧道", "老街小猫在打盹", "雪花落满了屋檐", "灯塔守护着大海", "星空下有一首歌",
         "秋天稻田一片金黄", "河水慢慢流向远方", "钟声敲响了黄昏", "梦里有一片森林", "晨光里我们出发", "火车载着我的梦"]
QUICK = ["--epochs", "1", "--max-steps", "2", *TINY_TRAIN, "--min-freq", "1"]  # the last --min-freq wins


def _train(cli, corpus: Path, out: Path, *extra):
    rc, _, err = cli("train", "--corpus", corpus, "--out", out, *QUICK, *extra)
    return rc, err


def _tokens(out: Path) -> list[str]:
    return load_checkpoint(out / "last.pt")["vocab"]["tokens"]


def test_gb18030_corpus_is_refused_with_a_hint_then_trains_with_encoding(cli, tmp_path):
    corpus = tmp_path / "gb.txt"
    corpus.write_bytes("\n".join(["舊書店的門口有一隻貓", *LINES]).encode("gb18030") + b"\n")
    rc, err = _train(cli, corpus, tmp_path / "a")
    assert rc != 0
    line = one_error_line(err)
    assert str(corpus) in line and "byte offset" in line and "--encoding" in line
    assert not (tmp_path / "a" / "last.pt").exists()
    rc, err = _train(cli, corpus, tmp_path / "b", "--encoding", "gb18030")
    assert rc == 0, err
    tokens = _tokens(tmp_path / "b")
    assert "晨光" in tokens and "貓" in tokens


def test_utf8_bom_is_not_a_token(cli, tmp_path):
    corpus = tmp_path / "bom.txt"
    corpus.write_bytes(b"\xef\xbb\xbf" + "\n".join(LINES).encode("utf-8") + b"\n")
    rc, err = _train(cli, corpus, tmp_path / "run")
    assert rc == 0, err
    tokens = _tokens(tmp_path / "run")
    assert not any("\ufeff" in t for t in tokens)
    assert "晨光" in tokens  # the first word of the first line survived intact


def test_crlf_corpus_has_no_carriage_returns_in_tokens(cli, tmp_path):
    corpus = tmp_path / "crlf.txt"
    corpus.write_bytes("\r\n".join(LINES).encode("utf-8") + b"\r\n" + "最后一行\r".encode("utf-8"))
    rc, err = _train(cli, corpus, tmp_path / "run")
    assert rc == 0, err
    tokens = _tokens(tmp_path / "run")
    assert not any("\r" in t for t in tokens)
    assert "\n" in tokens and "晨光" in tokens


def test_nul_bytes_are_refused(cli, tmp_path):
    corpus = tmp_path / "nul.txt"
    corpus.write_bytes("\n".join(LINES).encode("utf-8") + b"\n\x00\x00binary\n")
    rc, err = _train(cli, corpus, tmp_path / "run")
    assert rc != 0
    line = one_error_line(err)
    assert str(corpus) in line and "NUL" in line
    assert not (tmp_path / "run" / "last.pt").exists()


def test_two_megabyte_single_line_tokenizes(tmp_path):
    from lyricgen.text.corpus import read_corpus
    from lyricgen.text.tokenizer import normalize_line, tokenize_line

    chars = "的一是不了人我在有他这中大来上个到说们为子和你地出道也时年"
    rng = random.Random(2)
    corpus = tmp_path / "one_line.txt"
    corpus.write_text("".join(rng.choice(chars) for _ in range(2 * 1024 * 1024 // 3)) + "\n", encoding="utf-8")
    assert corpus.stat().st_size >= 2 * 1024 * 1024 - 3
    (line,) = read_corpus(corpus)
    t0 = time.monotonic()
    tokens = tokenize_line(line)
    assert time.monotonic() - t0 < 120
    assert "".join(tokens) == normalize_line(line)
    assert all(tokens) and len(tokens) > 1000


TRAD_MIXED = ["晨光照亮舊書店", "我們在 night market 走散", "燈光下的 guitar 還在唱", "雨後的街道很安靜",
              "night 來了 我不怕", "guitar 陪我度過冬天", "舊書店的門開著", "我們說好 see you tomorrow",
              "燈光照亮回家的路", "安靜的 night 有星星", "雨後我們一起走", "see you 在下一個路口"]


def test_traditional_and_mixed_english_lines_train_and_generate(cli, tmp_path):
    corpus = tmp_path / "trad.txt"
    corpus.write_text("\n".join(TRAD_MIXED) + "\n", encoding="utf-8")
    out = tmp_path / "run"
    rc, err = _train(cli, corpus, out)
    assert rc == 0, err
    tokens = _tokens(out)
    assert "night" in tokens and "書" in "".join(tokens) and "guitar" in tokens
    for start in ("night", "燈光", "舊書店"):
        rc, text, err = cli("generate", start, "--checkpoint", out / "last.pt", "--max-tokens", "12")
        assert rc == 0, err
        assert text.startswith(start) and len(text.strip()) > len(start)
        assert "Traceback" not in err


# -- 8: numerical faults (test_train covers NaN on resume; these cover a fresh run and the gaps) ------
def test_nan_loss_on_a_fresh_run_names_step_1(cli, tmp_path, monkeypatch):
    from lyricgen.model import LyricsRNN

    real_forward = LyricsRNN.forward
    monkeypatch.setattr(LyricsRNN, "forward",
                        lambda self, ids, hidden=None: (real_forward(self, ids, hidden)[0] * float("nan"), None))
    out = tmp_path / "run"
    rc, _, err = cli("train", "--corpus", TINY_CORPUS, "--out", out, "--epochs", "1", *TINY_TRAIN)
    assert rc != 0
    line = one_error_line(err)
    assert "step 1;" in line and "nan" in line and "--lr" in line
    assert not (out / "last.pt").exists()


def test_overflowing_learning_rate_is_one_error_line(cli, tmp_path):
    rc, _, err = cli("train", "--corpus", TINY_CORPUS, "--out", tmp_path / "run", "--lr", "1e39",
                     "--max-steps", "1", *TINY_TRAIN)
    assert rc != 0
    assert "lr" in one_error_line(err)


def test_non_finite_gradients_never_reach_a_saved_checkpoint(run_copy, cli, monkeypatch):
    step = load_checkpoint(run_copy / "last.pt")["state"]["step"]
    real_clip = torch.nn.utils.clip_grad_norm_

    def poisoned_clip(parameters, max_norm, *args, **kwargs):
        parameters = list(parameters)
        parameters[0].grad.fill_(float("inf"))  # e.g. an overflow in the backward pass
        return real_clip(parameters, max_norm, *args, **kwargs)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", poisoned_clip)
    rc, _, err = cli("train", "--resume", run_copy / "last.pt", "--epochs", "3", "--max-steps", step + 1, "--quiet")
    monkeypatch.undo()
    if rc != 0:
        assert "step" in one_error_line(err)
    load_checkpoint(run_copy / "last.pt")  # whatever happened, the run is not lost


# -- 1, 2 (the tests): signals ----------------------------------------------------------------------
@pytest.mark.parametrize("case, code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_signal_saves_last_step_and_prints_the_resume_command(signalled, case, code):
    rc, err, out = signalled[case]
    assert rc == code, err
    line = one_error_line(err)  # exactly one line, no traceback
    assert "--resume" in line and case in line and str(out / "last.pt") in line
    ckpt = load_checkpoint(out / "last.pt")
    step = ckpt["state"]["step"]
    assert f"at step {step};" in line
    per_epoch = ckpt["state"]["metrics"][0]["step"]
    assert step >= per_epoch  # last.pt existed (epoch 1 done) before the signal was sent
    assert ckpt["state"]["epoch"] * per_epoch + ckpt["state"]["batch_in_epoch"] == step


def test_repeated_sigint_still_exits_130_with_a_loadable_checkpoint(signalled):
    rc, err, out = signalled["SIGINT x3"]
    assert rc == 130, err
    assert any("--resume" in line for line in err.splitlines())
    assert load_checkpoint(out / "last.pt")["state"]["step"] > 0
    # (no "no Traceback" check here: a late SIGINT sometimes lands in interpreter shutdown; the
    # flood test below exposes that deterministically)


def test_held_down_ctrl_c_exits_130_with_one_line(signalled):
    rc, err, out = signalled["SIGINT flood"]
    load_checkpoint(out / "last.pt")  # the run itself is saved either way
    assert rc == 130, err
    assert "--resume" in one_error_line(err)


def test_resume_after_sigint_is_bitwise_exact(signalled, tmp_path, capsys):
    rc, err, out = signalled["SIGINT"]
    assert rc == 130, err
    run = tmp_path / "interrupted"
    shutil.copytree(out, run)
    k = load_checkpoint(run / "last.pt")["state"]["step"]
    n = k + 7

    full = tmp_path / "full"
    rc, _, err = call_cli(["train", "--corpus", TINY_CORPUS, "--out", full, *SIGNAL_TRAIN, "--max-steps", n], capsys)
    assert rc == 0, err
    rc, _, err = call_cli(["train", "--resume", run / "last.pt", "--max-steps", n, "--device", "cpu", "--quiet"],
                          capsys)
    assert rc == 0, err

    a, b = load_checkpoint(full / "last.pt"), load_checkpoint(run / "last.pt")
    assert a["state"]["step"] == b["state"]["step"] == n
    same_tensors(b["model"], a["model"], "model")
    same_tensors(b["optimizer"], a["optimizer"], "optimizer")
    same_tensors(b["rng"], a["rng"], "rng")


def test_deterministic_flag_applies_the_documented_settings(tmp_path):
    # in a subprocess: the settings are process-global
    code = (
        "import os, torch\n"
        "from lyricgen.runtime import make_deterministic\n"
        "make_deterministic(torch.device('cpu'))\n"
        "print(torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,\n"
        "      torch.backends.cudnn.benchmark, os.environ.get('CUBLAS_WORKSPACE_CONFIG'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "CUBLAS_WORKSPACE_CONFIG"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "True", "False", ":4096:8"]
