"""cli.py: end to end through the real command line (fresh `python -m lyricgen` processes: train,
resume, generate, evaluate, the interactive mode through a pipe, --help without torch), then every
kind of bad input giving one error line (in-process: the same code without ~3 s of imports a case).
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import OVERFIT_LINES, TINY_CORPUS, TINY_TRAIN, one_error_line, run_lyricgen, snapshot
from lyricgen.checkpoint import load_checkpoint

RUN_FILES = ("best.pt", "last.pt", "metrics.csv")


# -- end to end, in subprocesses ---------------------------------------------------------------------
def run_together(commands: dict) -> dict:
    """Several `python -m lyricgen` processes at once (their start-up overlaps), each run to its end."""
    procs = {name: subprocess.Popen([sys.executable, "-m", "lyricgen", *map(str, argv)], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, encoding="utf-8", env=dict(os.environ))
             for name, argv in commands.items()}
    done = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=180)
        done[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return done


@pytest.fixture(scope="module")
def e2e(tmp_path_factory):
    """Train one short epoch, resume it to two, then generate and evaluate with it: every command in
    a fresh process, the last four at once."""
    out = tmp_path_factory.mktemp("e2e") / "run"
    train = run_lyricgen("train", "--corpus", TINY_CORPUS, "--out", out, "--epochs", "1", *TINY_TRAIN)
    after_train = load_checkpoint(out / "last.pt") if train.returncode == 0 else None
    resume = run_lyricgen("train", "--resume", out / "last.pt", "--epochs", "2")  # with progress output
    best = out / "best.pt"
    return {"out": out, "train": train, "after_train": after_train, "resume": resume, **run_together({
        "generate": ["generate", "月光", "--checkpoint", best, "--max-tokens", "20"],
        "generate phrase": ["generate", "我们不分开", "--checkpoint", best, "--max-tokens", "20"],
        "generate unknown": ["generate", "xqz", "--checkpoint", best],
        "evaluate": ["evaluate", TINY_CORPUS, "--checkpoint", best, "--json", "--device", "cpu"],
    })}


def test_train_writes_a_run(e2e):
    assert e2e["train"].returncode == 0, e2e["train"].stderr
    assert e2e["train"].stderr == "" and e2e["train"].stdout == ""  # --quiet
    assert e2e["after_train"].training.state.epoch == 1
    for name in RUN_FILES:
        assert (e2e["out"] / name).is_file(), name


def test_resume_continues_to_more_epochs(e2e):
    assert e2e["resume"].returncode == 0, e2e["resume"].stderr
    state = load_checkpoint(e2e["out"] / "last.pt").training.state
    assert state.epoch == 2
    assert state.step == 2 * e2e["after_train"].training.state.step
    assert len(state.metrics) == 2
    err = e2e["resume"].stderr
    assert "Traceback" not in err and "epoch 2" in err
    assert f"stopped (done) after 2 epochs, {state.step} steps" in err
    assert (e2e["out"] / "metrics.csv").read_text(encoding="utf-8").count("\n") == 3  # header + 2 rows


def test_generate_from_in_vocabulary_word(e2e):
    proc = e2e["generate"]
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("月光") and len(proc.stdout.strip()) > len("月光")
    assert "Traceback" not in proc.stderr


def test_generate_from_segmentable_phrase(e2e):
    vocab = load_checkpoint(e2e["out"] / "best.pt").vocab.tokens
    assert "我们不分开" not in vocab and {"我们", "不", "分开"} <= set(vocab)
    proc = e2e["generate phrase"]
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("我们不分开")


def test_generate_from_unknown_word_fails_cleanly(e2e):
    proc = e2e["generate unknown"]
    assert proc.returncode == 1
    line = one_error_line(proc.stderr)
    assert line.startswith("lyricgen: error: ") and "xqz" in line and proc.stdout == ""


def test_evaluate_json(e2e):
    proc = e2e["evaluate"]
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert isinstance(result, dict)
    assert {"ppl", "bpc_open", "tokens", "chars", "unk", "ppl_rnn", "bpc_open_rnn"} <= set(result)
    assert result["ppl"] > 1 and result["bpc_open"] > 0
    assert result["tokens"] > 80 and result["chars"] > result["tokens"]
    assert isinstance(result["unk"], int) and result["unk"] >= 0


def test_interactive_through_a_pipe(overfit_writer, overfit_ckpt):
    """Start words and :set lines from a pipe: candidates on stdout, one line per change or error on
    stderr, a rejected value not kept, and the session goes on to the end of the input."""
    script = ("晨光\n:set temperature 0.9\n:set seed 3\n\n   \n:set temperature warm\n:set colour red\nxqz\n"
              ":set temperature -1\n火车\n")
    greedy = overfit_writer.generate("晨光", lines=2, max_tokens=20)[0].text
    sampled = overfit_writer.generate("火车", lines=2, max_tokens=20, temperature=0.9, seed=3)[0].text
    assert sampled != overfit_writer.generate("火车", lines=2, max_tokens=20)[0].text  # so the :set lines matter
    proc = subprocess.run([sys.executable, "-m", "lyricgen", "generate", "--checkpoint", str(overfit_ckpt), "-i",
                           "--lines", "2", "--max-tokens", "20"], input=script, capture_output=True, text=True,
                          encoding="utf-8", env=dict(os.environ), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == f"{greedy}\n{sampled}\n"
    err = proc.stderr.splitlines()
    assert "temperature = 0.9" in err and "seed = 3" in err
    errors = [line for line in err if line.startswith("lyricgen: error: ")]
    assert len(errors) == 4
    assert "warm" in errors[0] and "usage: :set OPTION VALUE" in errors[1] and "xqz" in errors[2]
    assert "temperature must be >= 0, got -1.0" in errors[3]


def test_help_imports_neither_torch_nor_jieba():
    """`lyricgen --help` and every command's --help stay fast: the parser imports no torch."""
    for command in ([], ["train"], ["generate"], ["report"], ["evaluate"], ["plot"], ["download"], ["serve"]):
        proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "lyricgen", *command, "--help"],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        first = proc.stdout.splitlines()[0]
        assert first.startswith("usage: lyricgen") and (not command or command[0] in first)
        if not command:
            assert all(name in proc.stdout for name in ("train", "generate", "report", "evaluate", "plot", "download",
                                                        "serve"))
        assert all(line.startswith("import time:") for line in proc.stderr.splitlines())  # nothing else
        imported = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines()
                    if line.startswith("import time:") and "|" in line}
        assert "lyricgen.cli" in imported  # the measurement saw our modules
        assert not {m for m in imported if m.split(".")[0] in ("torch", "jieba")}, command
    # importing the package is as cheap; its API loads torch on first use
    code = "import sys, lyricgen; print('torch' in sys.modules, 'jieba' in sys.modules, callable(lyricgen.load))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.split() == ["False", "False", "True"], proc.stderr
    script = Path(sys.executable).parent / "lyricgen"
    if script.exists():  # the installed entry point
        proc = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0 and proc.stdout.startswith("lyricgen ")


# -- in-process: output ----------------------------------------------------------------------------------
def test_no_command_is_one_line(cli):
    rc, _, err = cli()
    assert rc == 2
    assert "required" in one_error_line(err)


def test_generate_prints_texts_and_notes_apart(cli, overfit_ckpt):
    rc, out, err = cli("generate", "晨光龘", "--checkpoint", overfit_ckpt, "--lines", "1", "--plain")
    assert rc == 0
    assert out == f"晨光龘{OVERFIT_LINES[0][2:]}\n"  # only the text on stdout
    assert err.splitlines() == ["lyricgen: note: not in the vocabulary, left out of the prompt: 龘",
                                f"(copied lines 0%, longest copied span {len(OVERFIT_LINES[0]) - 2} characters)"]
    rc, out, err = cli("generate", "晨光", "--checkpoint", overfit_ckpt, "--lines", "1", "--num-samples", "2",
                       "--temperature", "1.0", "--seed", "1")
    assert rc == 0
    headers = [line for line in out.splitlines() if line.startswith("--- candidate")]
    assert [h.split(",")[0] for h in headers] == ["--- candidate 1", "--- candidate 2"]


@pytest.mark.parametrize("plain", [True, False], ids=["plain", "song"])
def test_generate_json_candidates(cli, overfit_ckpt, plain):
    rc, out, err = cli("generate", "晨光", "--checkpoint", overfit_ckpt, "--json", "--num-samples", "4",
                       "--temperature", "1.0", "--seed", "6", "--max-tokens", "30", "--lines", "3",
                       *(["--plain"] if plain else []))
    assert rc == 0, err
    candidates = json.loads(out)
    assert isinstance(candidates, list) and len(candidates) == 4
    for c in candidates:
        song_fields = set() if plain else {"lines", "notes"}  # a song's lines: what the page shows beside each
        assert set(c) == {"text", "score", "tokens", "copied_lines", "longest_copy", *song_fields}
        if not plain:
            assert [x["text"] for x in c["lines"]] == [x for x in c["text"].split("\n") if x]
            assert all(set(x) == {"text", "section", "rhyme", "copied", "kept"} and not x["kept"] for x in c["lines"])
            assert c["notes"] == []
        assert isinstance(c["text"], str) and c["text"].startswith("晨光")
        assert 1 <= len(c["text"].split("\n")) <= 3
        assert isinstance(c["score"], float) and c["score"] <= 0
        assert isinstance(c["copied_lines"], (int, float)) and 0.0 <= c["copied_lines"] <= 1.0
        assert isinstance(c["longest_copy"], int) and c["longest_copy"] >= 0
    assert [c["score"] for c in candidates] == sorted((c["score"] for c in candidates), reverse=True)
    if plain:
        assert any(c["copied_lines"] > 0 for c in candidates)  # this model copies its training lines
    else:
        assert all(c["copied_lines"] == 0 for c in candidates)  # songs pass over the copies it offers


def test_evaluate_sentence(cli, tiny_run):
    rc, out, err = cli("evaluate", TINY_CORPUS, "--checkpoint", tiny_run / "best.pt", "--device", "cpu")
    assert rc == 0, err
    assert "perplexity" in out and "bpc-open" in out and "network alone" in out and "repeat model" in out
    rc, out, err = cli("evaluate", TINY_CORPUS, "--checkpoint", tiny_run / "best.pt", "--no-repeat", "--device", "cpu")
    assert rc == 0 and "bpc-open" in out and "network alone" in out and "repeat model" not in out


def test_defaults_use_the_bundled_sample_and_checkpoints_dir(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc, _, err = cli("train", *TINY_TRAIN, "--epochs", "1")
    assert rc == 0, err
    ckpt = load_checkpoint(tmp_path / "checkpoints" / "best.pt")
    assert ckpt.corpus.path.endswith("sample_lyrics.txt")
    word = [t for t in ckpt.vocab.tokens[3:] if len(t) > 1][0]
    rc, out, err = cli("generate", word, "--max-tokens", "5")  # default --checkpoint checkpoints/best.pt
    assert rc == 0, err
    assert out.startswith(word)


def test_interrupt_and_closed_pipe(cli, monkeypatch):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr("lyricgen.cli.cmd_evaluate", interrupted)
    rc, out, err = cli("evaluate", TINY_CORPUS)
    assert (rc, out, err) == (130, "", "lyricgen: interrupted\n")

    def pipe_closed(args):
        raise BrokenPipeError

    monkeypatch.setattr("lyricgen.cli.cmd_evaluate", pipe_closed)
    assert cli("evaluate", TINY_CORPUS) == (0, "", "")  # `lyricgen ... | head` is not an error


# -- bad inputs: one line each ---------------------------------------------------------------------------
def _write(tmp_path, name, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


BAD_TRAIN = {  # (arguments, words the error line must hold; {corpus} is the --corpus given)
    "missing corpus": (lambda t: ["--corpus", t / "nope.txt"], ["{corpus}", "not found"]),
    "directory as corpus": (lambda t: ["--corpus", t], ["{corpus}", "directory"]),
    "empty corpus": (lambda t: ["--corpus", _write(t, "empty.txt", b"")], ["{corpus}", "no lyrics"]),
    "whitespace-only corpus": (lambda t: ["--corpus", _write(t, "ws.txt", " \n\u3000\n\t\n".encode())], ["no lyrics"]),
    "corpus too short": (lambda t: ["--corpus", _write(t, "short.txt", "月光\n".encode())], ["too short"]),
    "non-UTF-8 corpus": (lambda t: ["--corpus", _write(t, "gb.txt", "月光照在河面\n".encode("gb18030"))],
                         ["{corpus}", "byte offset", "--encoding gb18030"]),
    "binary corpus": (lambda t: ["--corpus", _write(t, "bin.txt", b"\x00\x01\x02abc\n")], ["{corpus}", "NUL"]),
    "unknown encoding": (lambda t: ["--corpus", TINY_CORPUS, "--encoding", "klingon"], ["klingon"]),
    "negative epochs": (lambda t: ["--corpus", TINY_CORPUS, "--epochs", "-1"], ["--epochs", ">= 0"]),
    "zero epochs": (lambda t: ["--corpus", TINY_CORPUS, "--epochs", "0"], ["--epochs must be at least 1"]),
    "zero batch size": (lambda t: ["--corpus", TINY_CORPUS, "--batch-size", "0"], ["--batch-size"]),
    "unknown cell": (lambda t: ["--corpus", TINY_CORPUS, "--cell", "foo"], ["foo"]),
    "dropout of 1": (lambda t: ["--corpus", TINY_CORPUS, "--dropout", "1"], ["--dropout", "[0, 1)"]),
    "lr not a number": (lambda t: ["--corpus", TINY_CORPUS, "--lr", "fast"], ["--lr", "fast"]),
    "overflowing lr": (lambda t: ["--corpus", TINY_CORPUS, "--lr", "1e39"], ["--lr", "(0, 10]"]),
    "huge seed": (lambda t: ["--corpus", TINY_CORPUS, "--seed", str(2 ** 80)], ["--seed"]),
    "zero time budget": (lambda t: ["--corpus", TINY_CORPUS, "--time-budget", "0"], ["--time-budget"]),
    "unknown device": (lambda t: ["--corpus", TINY_CORPUS, "--device", "tpu"], ["--device", "tpu"]),
    "missing resume checkpoint": (lambda t: ["--resume", t / "nope.pt"], ["not found"]),
    "corrupt resume checkpoint": (lambda t: ["--resume", _write(t, "bad.pt", os.urandom(2048))], ["not a readable"]),
}


@pytest.mark.parametrize("case", list(BAD_TRAIN))
def test_bad_train_input(cli, run_copy, tmp_path, case):
    """One error line, no traceback, and the good run in --out (given --force) is left as it was."""
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    before = snapshot(run_copy)
    make_args, words = BAD_TRAIN[case]
    args = make_args(inputs)
    rc, out, err = cli("train", *TINY_TRAIN, "--epochs", "1", *args, "--out", run_copy, "--force")
    assert rc in (1, 2) and out == ""
    line = one_error_line(err)
    assert line.startswith("lyricgen")
    for word in words:
        if word == "{corpus}":
            word = str(args[args.index("--corpus") + 1])
        assert word in line, line
    assert snapshot(run_copy) == before


BAD_GENERATE = {
    "missing checkpoint": lambda t, ck: ["月光", "--checkpoint", t / "nope.pt"],
    "corrupt checkpoint": lambda t, ck: ["月光", "--checkpoint", _write(t, "bad.pt", os.urandom(2048))],
    "truncated checkpoint": lambda t, ck: ["月光", "--checkpoint", _write(t, "cut.pt", ck.read_bytes()[:3000])],
    "empty checkpoint": lambda t, ck: ["月光", "--checkpoint", _write(t, "e.pt", b"")],
    "empty start word": lambda t, ck: ["", "--checkpoint", ck],
    "blank start word": lambda t, ck: ["\u3000 ", "--checkpoint", ck],
    "no start word": lambda t, ck: ["--checkpoint", ck],
    "start word and -i": lambda t, ck: ["月光", "-i", "--checkpoint", ck],
    "unknown start word": lambda t, ck: ["xqz", "--checkpoint", ck],
    "zero max tokens": lambda t, ck: ["月光", "--checkpoint", ck, "--max-tokens", "0"],
    "huge max tokens": lambda t, ck: ["月光", "--checkpoint", ck, "--max-tokens", "1000000000000"],
    "huge num samples": lambda t, ck: ["月光", "--checkpoint", ck, "--num-samples", "100000"],
    "negative temperature": lambda t, ck: ["月光", "--checkpoint", ck, "--temperature", "-1"],
    "infinite temperature": lambda t, ck: ["月光", "--checkpoint", ck, "--temperature", "inf"],
    "top-p of 0": lambda t, ck: ["月光", "--checkpoint", ck, "--top-p", "0"],
    "min above max line tokens": lambda t, ck: ["月光", "--checkpoint", ck, "--min-line-tokens", "5",
                                                "--max-line-tokens", "4"],
    "cuda without a GPU": lambda t, ck: ["月光", "--checkpoint", ck, "--device", "cuda"],
}


@pytest.mark.parametrize("case", list(BAD_GENERATE))
def test_bad_generate_input(cli, tiny_run, tmp_path, case):
    if case == "cuda without a GPU":
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has a GPU")
    rc, out, err = cli("generate", *BAD_GENERATE[case](tmp_path, tiny_run / "best.pt"))
    assert rc in (1, 2)
    assert out == ""
    assert one_error_line(err).startswith("lyricgen")


BAD_EVALUATE = {
    "missing file": lambda t, ck: [t / "nope.txt", "--checkpoint", ck],
    "empty file": lambda t, ck: [_write(t, "e.txt", b""), "--checkpoint", ck],
    "non-UTF-8 file": lambda t, ck: [_write(t, "gb.txt", "月光\n".encode("gb18030")), "--checkpoint", ck],
    "missing checkpoint": lambda t, ck: [TINY_CORPUS, "--checkpoint", t / "nope.pt"],
    "held-out part of a one-line file": lambda t, ck: [_write(t, "one.txt", "月光\n".encode()), "--checkpoint", ck,
                                                       "--held-out"],
}


@pytest.mark.parametrize("case", list(BAD_EVALUATE))
def test_bad_evaluate_input(cli, tiny_run, tmp_path, case):
    rc, out, err = cli("evaluate", *BAD_EVALUATE[case](tmp_path, tiny_run / "best.pt"), "--device", "cpu")
    assert rc == 1 and out == ""
    assert one_error_line(err).startswith("lyricgen: error: ")


@pytest.mark.parametrize("argv, line", [
    (["report", "--songs", "0"], "lyricgen report: error: argument --songs: must be >= 1, got 0"),
    (["report", "--lines", "-2"], "lyricgen report: error: argument --lines: must be >= 1, got -2"),
    (["report", "--mode", "all"], "lyricgen report: error: argument --mode: invalid choice: 'all'"),
    (["serve", "--port", "70000"], "lyricgen serve: error: argument --port: must be in [0, 65535], got 70000"),
    (["evaluate", "f.txt", "--device", "tpu"], "lyricgen evaluate: error: argument --device: invalid choice: 'tpu'"),
])
def test_bad_command_options_are_refused_before_anything_loads(cli, argv, line):
    """Counts, choices and ports are checked by the flag that the config declares: one line, exit 2."""
    rc, out, err = cli(*argv)
    assert rc == 2 and out == ""
    assert one_error_line(err).startswith(line)
