"""End to end through the real command line, then every kind of bad input.

The first tests run `python -m lyricgen` in fresh interpreters (train, resume, generate, evaluate);
the bad-input cases call `lyricgen.cli.main` in-process, which is the same code without the ~3 s of
import time per case.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TINY_CORPUS, TINY_TRAIN, one_error_line, run_lyricgen
from lyricgen.checkpoint import load_checkpoint

RUN_FILES = ("best.pt", "last.pt", "metrics.csv")


# -- end to end, in subprocesses ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def e2e(tmp_path_factory):
    """Train one short epoch, then resume it to two: the run every subprocess test below reads."""
    out = tmp_path_factory.mktemp("e2e") / "run"
    train = run_lyricgen("train", "--corpus", TINY_CORPUS, "--out", out, "--epochs", "1", *TINY_TRAIN)
    after_train = load_checkpoint(out / "last.pt") if train.returncode == 0 else None
    resume = run_lyricgen("train", "--resume", out / "last.pt", "--epochs", "2")  # with progress output
    return {"out": out, "train": train, "after_train": after_train, "resume": resume}


def test_train_writes_a_run(e2e):
    assert e2e["train"].returncode == 0, e2e["train"].stderr
    assert "Traceback" not in e2e["train"].stderr
    assert e2e["after_train"]["state"]["epoch"] == 1
    for name in RUN_FILES:
        assert (e2e["out"] / name).is_file(), name


def test_resume_continues_to_more_epochs(e2e):
    assert e2e["resume"].returncode == 0, e2e["resume"].stderr
    state = load_checkpoint(e2e["out"] / "last.pt")["state"]
    assert state["epoch"] == 2
    assert state["step"] == 2 * e2e["after_train"]["state"]["step"]
    assert len(state["metrics"]) == 2
    assert "Traceback" not in e2e["resume"].stderr and "epoch 2" in e2e["resume"].stderr
    assert (e2e["out"] / "metrics.csv").read_text(encoding="utf-8").count("\n") == 3  # header + 2 rows


def test_generate_from_in_vocabulary_word(e2e):
    proc = run_lyricgen("generate", "月光", "--checkpoint", e2e["out"] / "best.pt", "--max-tokens", "20")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("月光") and len(proc.stdout.strip()) > len("月光")
    assert "Traceback" not in proc.stderr


def test_generate_from_segmentable_phrase(e2e):
    vocab = load_checkpoint(e2e["out"] / "best.pt")["vocab"]["tokens"]
    assert "我们不分开" not in vocab and {"我们", "不", "分开"} <= set(vocab)
    proc = run_lyricgen("generate", "我们不分开", "--checkpoint", e2e["out"] / "best.pt", "--max-tokens", "20")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("我们不分开")


def test_generate_from_unknown_word_fails_cleanly(e2e):
    proc = run_lyricgen("generate", "xqz", "--checkpoint", e2e["out"] / "best.pt")
    assert proc.returncode != 0
    line = one_error_line(proc.stderr)
    assert "xqz" in line and proc.stdout == ""


def test_evaluate_json(e2e):
    proc = run_lyricgen("evaluate", TINY_CORPUS, "--checkpoint", e2e["out"] / "best.pt", "--json", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert isinstance(result, dict)
    assert {"ppl", "bpc_open", "tokens", "chars", "unk"} <= set(result)
    assert result["ppl"] > 1 and result["bpc_open"] > 0
    assert result["tokens"] > 80 and result["chars"] > result["tokens"]
    assert isinstance(result["unk"], int) and result["unk"] >= 0


def test_console_script_help():
    proc = run_lyricgen("--help")
    assert proc.returncode == 0 and "train" in proc.stdout and "generate" in proc.stdout
    script = Path(sys.executable).parent / "lyricgen"
    if script.exists():  # the installed entry point
        proc = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0 and "lyricgen" in proc.stdout


def test_import_lyricgen_is_cheap():
    # the package's API is lazy: importing it does not import torch or jieba
    code = "import sys, lyricgen; print('torch' in sys.modules, 'jieba' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.split() == ["False", "False"]
    proc = subprocess.run([sys.executable, "-c", "import lyricgen; print(callable(lyricgen.load))"],
                          capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "True"


# -- --help, in-process ------------------------------------------------------------------------------
@pytest.mark.parametrize("command", [[], ["train"], ["generate"], ["evaluate"], ["download"]])
def test_help_for_every_command(cli, command):
    rc, out, err = cli(*command, "--help")
    assert rc == 0 and err == ""
    assert out.startswith("usage: lyricgen")
    if command:
        assert command[0] in out.splitlines()[0]


def test_no_command_is_one_line(cli):
    rc, _, err = cli()
    assert rc == 2
    one_error_line(err)


# -- bad inputs ----------------------------------------------------------------------------------------
def _unchanged(run_dir: Path, snapshot: dict) -> None:
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == snapshot


def _snapshot(run_dir: Path) -> dict:
    return {p.name: p.read_bytes() for p in run_dir.iterdir()}


def _write(tmp_path, name, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


BAD_TRAIN = {
    "missing corpus": lambda t: ["--corpus", t / "nope.txt"],
    "directory as corpus": lambda t: ["--corpus", t],
    "empty corpus": lambda t: ["--corpus", _write(t, "empty.txt", b"")],
    "whitespace-only corpus": lambda t: ["--corpus", _write(t, "ws.txt", " \n\u3000\n\t\n".encode())],
    "corpus too short": lambda t: ["--corpus", _write(t, "short.txt", "月光\n".encode())],
    "non-UTF-8 corpus": lambda t: ["--corpus", _write(t, "gb.txt", "月光照在河面\n".encode("gb18030"))],
    "binary corpus": lambda t: ["--corpus", _write(t, "bin.txt", b"\x00\x01\x02abc\n")],
    "unknown encoding": lambda t: ["--corpus", TINY_CORPUS, "--encoding", "klingon"],
    "negative epochs": lambda t: ["--corpus", TINY_CORPUS, "--epochs", "-1"],
    "zero batch size": lambda t: ["--corpus", TINY_CORPUS, "--batch-size", "0"],
    "unknown cell": lambda t: ["--corpus", TINY_CORPUS, "--cell", "foo"],
    "dropout of 1": lambda t: ["--corpus", TINY_CORPUS, "--dropout", "1"],
    "lr not a number": lambda t: ["--corpus", TINY_CORPUS, "--lr", "fast"],
    "missing resume checkpoint": lambda t: ["--resume", t / "nope.pt"],
    "corrupt resume checkpoint": lambda t: ["--resume", _write(t, "bad.pt", os.urandom(2048))],
}


@pytest.mark.parametrize("case", list(BAD_TRAIN))
def test_bad_train_input(cli, run_copy, tmp_path, case):
    """One error line, no traceback, and the good run in --out (given --force) is left as it was."""
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    snapshot = _snapshot(run_copy)
    argv = BAD_TRAIN[case](inputs)
    rc, out, err = cli("train", *argv, "--out", run_copy, "--force", *TINY_TRAIN, "--epochs", "1")
    assert rc != 0
    line = one_error_line(err)
    assert line.startswith("lyricgen")
    _unchanged(run_copy, snapshot)
    if case == "non-UTF-8 corpus":
        assert "gb18030" in line and "byte offset" in line
    if case == "unknown cell":
        assert "foo" in line


def test_train_refuses_an_existing_run_without_force(cli, run_copy):
    snapshot = _snapshot(run_copy)
    rc, _, err = cli("train", "--corpus", TINY_CORPUS, "--out", run_copy, *TINY_TRAIN, "--epochs", "1")
    assert rc != 0
    line = one_error_line(err)
    assert "--force" in line and "--resume" in line
    assert (run_copy / "best.pt").read_bytes() == snapshot["best.pt"]
    _unchanged(run_copy, snapshot)


def test_train_with_force_starts_over(cli, run_copy):
    before = (run_copy / "best.pt").read_bytes()
    rc, _, err = cli("train", "--corpus", TINY_CORPUS, "--out", run_copy, "--force", *TINY_TRAIN, "--epochs", "1",
                     "--seed", "5")
    assert rc == 0, err
    assert (run_copy / "best.pt").read_bytes() != before
    assert load_checkpoint(run_copy / "last.pt")["state"]["epoch"] == 1


def test_resume_into_another_run_is_refused(cli, run_copy, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(run_copy, other)
    snapshot = _snapshot(other)
    rc, _, err = cli("train", "--resume", run_copy / "last.pt", "--out", other, "--epochs", "3", "--quiet")
    assert rc != 0
    _unchanged(other, snapshot)


def test_huge_seed_is_one_line(cli, tmp_path):
    rc, _, err = cli("train", "--corpus", TINY_CORPUS, "--out", tmp_path / "r", *TINY_TRAIN, "--epochs", "1",
                     "--seed", str(2 ** 80))
    assert rc != 0
    one_error_line(err)


def test_out_that_is_a_file_is_refused(cli, tmp_path):
    target = tmp_path / "afile"
    target.write_text("keep me", encoding="utf-8")
    rc, _, err = cli("train", "--corpus", TINY_CORPUS, "--out", target, *TINY_TRAIN, "--epochs", "1", "--force")
    assert rc != 0
    one_error_line(err)
    assert target.read_text(encoding="utf-8") == "keep me"


def test_zero_epochs_new_run_leaves_a_checkpoint_or_fails(cli, tmp_path):
    out = tmp_path / "r"
    rc, _, _ = cli("train", "--corpus", TINY_CORPUS, "--out", out, *TINY_TRAIN, "--epochs", "0")
    assert rc != 0 or (out / "last.pt").is_file()


def test_resume_from_generation_only_checkpoint(cli, tiny_ckpt, tmp_path):
    import torch

    from lyricgen.checkpoint import REQUIRED_KEYS

    path = tmp_path / "slim.pt"
    torch.save({k: tiny_ckpt[k] for k in REQUIRED_KEYS}, path)
    load_checkpoint(path)  # valid for generation
    rc, _, err = cli("train", "--resume", path, "--corpus", TINY_CORPUS, "--out", tmp_path / "r", "--quiet")
    assert rc != 0
    one_error_line(err)


BAD_GENERATE = {
    "missing checkpoint": lambda t, ck: ["月光", "--checkpoint", t / "nope.pt"],
    "corrupt checkpoint": lambda t, ck: ["月光", "--checkpoint", _write(t, "bad.pt", os.urandom(2048))],
    "truncated checkpoint": lambda t, ck: ["月光", "--checkpoint", _write(t, "cut.pt", ck.read_bytes()[:3000])],
    "empty checkpoint": lambda t, ck: ["月光", "--checkpoint", _write(t, "e.pt", b"")],
    "empty start word": lambda t, ck: ["", "--checkpoint", ck],
    "blank start word": lambda t, ck: ["\u3000 ", "--checkpoint", ck],
    "unknown start word": lambda t, ck: ["xqz", "--checkpoint", ck],
    "zero max tokens": lambda t, ck: ["月光", "--checkpoint", ck, "--max-tokens", "0"],
    "negative temperature": lambda t, ck: ["月光", "--checkpoint", ck, "--temperature", "-1"],
    "top-p of 0": lambda t, ck: ["月光", "--checkpoint", ck, "--top-p", "0"],
}


@pytest.mark.parametrize("case", list(BAD_GENERATE))
def test_bad_generate_input(cli, tiny_run, tmp_path, case):
    rc, out, err = cli("generate", *BAD_GENERATE[case](tmp_path, tiny_run / "best.pt"))
    assert rc != 0
    assert out == ""
    assert one_error_line(err).startswith("lyricgen")


BAD_EVALUATE = {
    "missing file": lambda t, ck: [t / "nope.txt", "--checkpoint", ck],
    "empty file": lambda t, ck: [_write(t, "e.txt", b""), "--checkpoint", ck],
    "non-UTF-8 file": lambda t, ck: [_write(t, "gb.txt", "月光\n".encode("gb18030")), "--checkpoint", ck],
    "missing checkpoint": lambda t, ck: [TINY_CORPUS, "--checkpoint", t / "nope.pt"],
}


@pytest.mark.parametrize("case", list(BAD_EVALUATE))
def test_bad_evaluate_input(cli, tiny_run, tmp_path, case):
    rc, out, err = cli("evaluate", *BAD_EVALUATE[case](tmp_path, tiny_run / "best.pt"), "--device", "cpu")
    assert rc != 0 and out == ""
    assert one_error_line(err).startswith("lyricgen")


def test_evaluate_sentence(cli, tiny_run):
    rc, out, err = cli("evaluate", TINY_CORPUS, "--checkpoint", tiny_run / "best.pt", "--device", "cpu")
    assert rc == 0, err
    assert "perplexity" in out and "bpc-open" in out


def test_train_without_validation(cli, tmp_path):
    out = tmp_path / "r"
    rc, _, err = cli("train", "--corpus", TINY_CORPUS, "--out", out, *TINY_TRAIN, "--epochs", "1",
                     "--val-fraction", "0")
    assert rc == 0, err
    ckpt = load_checkpoint(out / "best.pt")
    assert ckpt["state"]["metrics"][0]["val_loss"] == ""


def test_defaults_use_the_bundled_sample_and_checkpoints_dir(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc, _, err = cli("train", *TINY_TRAIN, "--epochs", "1")
    assert rc == 0, err
    ckpt = load_checkpoint(tmp_path / "checkpoints" / "best.pt")
    assert ckpt["corpus"]["path"].endswith("sample_lyrics.txt")
    word = [t for t in ckpt["vocab"]["tokens"][3:] if len(t) > 1][0]
    rc, out, err = cli("generate", word, "--max-tokens", "5")  # default --checkpoint checkpoints/best.pt
    assert rc == 0, err
    assert out.startswith(word)


def test_generate_json_candidates(cli, tiny_run):
    rc, out, err = cli("generate", "月光", "--checkpoint", tiny_run / "best.pt", "--json", "--num-samples", "3",
                       "--temperature", "1.0", "--seed", "1", "--max-tokens", "30", "--lines", "2")
    assert rc == 0, err
    candidates = json.loads(out)
    assert isinstance(candidates, list) and len(candidates) == 3
    scores = [c["score"] for c in candidates]
    assert scores == sorted(scores, reverse=True)
    for c in candidates:
        assert c["text"].startswith("月光")
        assert 1 <= len(c["text"].split("\n")) <= 2


def test_generate_interactive(cli, tiny_run, monkeypatch):
    import io

    script = "月光\n:set temperature 0.5\n:set colour red\nxqz\n\n分开\n"
    monkeypatch.setattr("sys.stdin", io.StringIO(script))
    rc, out, err = cli("generate", "-i", "--checkpoint", tiny_run / "best.pt", "--max-tokens", "8", "--lines", "1",
                       "--seed", "0")
    assert rc == 0, err
    texts = out.splitlines()
    assert len(texts) == 2 and texts[0].startswith("月光") and texts[1].startswith("分开")
    assert "temperature = 0.5" in err
    errors = [line for line in err.splitlines() if "error" in line]
    assert len(errors) == 2 and "xqz" in errors[1]  # bad :set and unknown word; the session went on
    assert "Traceback" not in err


def test_generate_in_process_is_deterministic(cli, tiny_run):
    rc, first, _ = cli("generate", "月光", "--checkpoint", tiny_run / "best.pt", "--max-tokens", "15")
    assert rc == 0 and first.startswith("月光")
    assert cli("generate", "月光", "--checkpoint", tiny_run / "best.pt", "--max-tokens", "15")[1] == first
    rc, a, _ = cli("generate", "月光", "--checkpoint", tiny_run / "best.pt", "--temperature", "1.5", "--seed", "1")
    rc2, b, _ = cli("generate", "月光", "--checkpoint", tiny_run / "best.pt", "--temperature", "1.5", "--seed", "1")
    assert rc == rc2 == 0 and a == b


def test_evaluate_held_out_matches_training_validation(cli, tiny_run):
    # `evaluate --held-out` scores exactly the lines training validated on, the same way
    ckpt = load_checkpoint(tiny_run / "best.pt")
    best = min((r for r in ckpt["state"]["metrics"] if r["val_loss"] != ""), key=lambda r: r["val_loss"])
    rc, out, err = cli("evaluate", "--checkpoint", tiny_run / "best.pt", TINY_CORPUS, "--held-out", "--json")
    assert rc == 0, err
    scored = json.loads(out)
    assert abs(scored["bpc_open"] - best["val_bpc_open"]) < 1e-3
    assert abs(scored["bpc_open_rnn"] - best["val_bpc_open_rnn"]) < 1e-3
    rc, whole, _ = cli("evaluate", "--checkpoint", tiny_run / "best.pt", TINY_CORPUS, "--json")
    assert json.loads(whole)["chars"] > scored["chars"]


def test_review_fixes_give_one_error_line(cli, tiny_run, tmp_path, monkeypatch):
    # non-finite numbers, out-of-range seeds and sizes are refused up front
    ckpt = tiny_run / "best.pt"
    for bad in (["--temperature", "inf"], ["--max-tokens", "1000000000000"], ["--num-samples", "100000"]):
        rc, _, err = cli("generate", "--checkpoint", ckpt, "月光", *bad)
        assert rc != 0
        one_error_line(err)
    # a held-out part that does not exist is an error, not a perfect score
    short = tmp_path / "short.txt"
    short.write_text("月光\n", encoding="utf-8")
    rc, _, err = cli("evaluate", "--checkpoint", ckpt, short, "--held-out")
    assert rc != 0
    one_error_line(err)
    # an unusable cache directory never fails generation or training
    monkeypatch.setenv("LYRICGEN_CACHE", "/proc/lyricgen-cannot-exist")
    rc, out, err = cli("generate", "--checkpoint", ckpt, "不分开的月光", "--max-tokens", "5")
    assert rc == 0, err


def test_force_starts_over_without_mixing_runs(cli, run_copy):
    before = (run_copy / "best.pt").read_bytes()
    rc, _, err = cli("train", "--corpus", TINY_CORPUS, "--out", run_copy, "--force", *TINY_TRAIN,
                     "--max-steps", "1", "--epochs", "1")
    assert rc == 0, err
    assert not (run_copy / "best.pt").exists() or (run_copy / "best.pt").read_bytes() != before
