"""benchmarks/quality.py: its options, the base corpus it assembles (全宋词 through the downloader, the
modern lyrics last, each source's tail held out) and the rows it prints from its runs. The runs
themselves take minutes each and are what `python -m benchmarks --quick --sections quality` checks."""
from pathlib import Path

import pytest

from benchmarks import __main__ as bench
from benchmarks import quality
from benchmarks.common import Context
from lyricgen.text.corpus import read_corpus, split_lines

SONGCI_FILES = Path(__file__).resolve().parents[2] / "shared" / "data" / "songci"


@pytest.fixture
def ctx(tmp_path):
    return Context(corpus=tmp_path / "none.txt", tmp=tmp_path, quick=False)


def test_the_base_options_are_parsed_and_bad_values_are_one_error(tmp_path, capsys):
    base = tmp_path / "base.pt"
    base.write_bytes(b"")
    args = bench.parse_args(["--base", str(base), "--base-budget", "90", "--keep-runs", str(tmp_path / "runs")])
    assert (args.base, args.base_budget, args.keep_runs) == (base, 90.0, tmp_path / "runs")
    assert (bench.parse_args([]).base, bench.parse_args([]).base_budget) == (None, None)
    for argv, message in ((["--base", str(tmp_path / "nope.pt")], "--base: no checkpoint at"),
                          (["--base-budget", "0"], "--base-budget must be positive")):
        with pytest.raises(SystemExit) as info:
            bench.parse_args(argv)
        assert info.value.code == 2 and message in capsys.readouterr().err


def test_without_songci_the_base_learns_the_open_lyrics_and_holds_out_their_tail(ctx, tmp_path, monkeypatch):
    monkeypatch.setattr(quality, "SONGCI_TEXT", tmp_path / "absent.txt")
    monkeypatch.setattr(quality, "SONGCI_FILES", tmp_path / "absent")
    corpus = quality.base_corpus(ctx)
    first, last = split_lines(read_corpus(quality.OPEN_LYRICS), quality.BASE_HELD_OUT)
    assert read_corpus(corpus["train"]) == first and list(corpus["held_out"]) == ["open lyrics"]
    assert read_corpus(corpus["held_out"]["open lyrics"]) == last
    assert corpus["lines"] == len(first) and corpus["chars"] == sum(map(len, first))


def test_songci_comes_first_and_quick_mode_cuts_each_source(ctx, tmp_path, monkeypatch):
    songci = tmp_path / "songci.txt"  # as `lyricgen download songci` would have written it
    songci.write_text("".join(f"第{i}首词的一行\n" for i in range(5000)), encoding="utf-8")
    monkeypatch.setattr(quality, "SONGCI_TEXT", songci)
    corpus = quality.base_corpus(ctx)
    ci_first, ci_last = split_lines(read_corpus(songci), quality.BASE_HELD_OUT)
    train = read_corpus(corpus["train"])
    assert train[:len(ci_first)] == ci_first and train[len(ci_first)] == read_corpus(quality.OPEN_LYRICS)[0]
    assert list(corpus["held_out"]) == ["全宋词", "open lyrics"]
    assert read_corpus(corpus["held_out"]["全宋词"]) == ci_last
    ctx.quick = True
    quick = quality.base_corpus(ctx)
    n = quality.QUICK_BASE_LINES
    assert quick["lines"] == 2 * len(split_lines(read_corpus(songci)[:n], quality.BASE_HELD_OUT)[0])


@pytest.mark.skipif(not (SONGCI_FILES / "ci.song.0.json").is_file(), reason=f"no 全宋词 files at {SONGCI_FILES}")
def test_songci_files_are_read_through_the_downloader(ctx, tmp_path, monkeypatch):
    monkeypatch.setattr(quality, "SONGCI_TEXT", tmp_path / "absent.txt")
    monkeypatch.setattr(quality, "SONGCI_FILES", SONGCI_FILES)
    lines = quality.songci_lines(ctx)
    assert len(lines) > 150_000 and (tmp_path / "songci.txt").is_file()  # the checksummed text


def fake_run(name, budget, bpc, net):
    return {"name": name, "budget_s": budget, "bpc_open": bpc, "bpc_open_rnn": net, "bpc_open_repeat": bpc - 0.1,
            "ppl": 2 ** bpc, "train_wall_s": budget + 10, "train_cpu_s": 2 * budget, "epochs": 1.0,
            "tokens_per_s": 1000.0, "checkpoint_mb": 30.0, "checkpoint": f"{name}.pt"}


def test_the_section_prints_every_row_and_the_differences(ctx, monkeypatch):
    figures = {"default": (7.39, 7.84), "no mix": (7.8, 8.4), "tutorial-size": (7.9, 8.6), "transformer": (7.83, 8.8),
               "fine-tune": (7.4, 8.0)}
    calls = []

    def train_and_score(ctx, name, budget, options):
        calls.append((name, budget, options))
        return fake_run(name, budget, *figures[name])

    def base_model(ctx):
        return {**fake_run("base", 1800, 6.0, 6.3), "given": False, "corpus_chars": 2_000_000,
                "held_out": {"全宋词": {"bpc_open": 6.9, "bpc_open_rnn": 7.2}}}

    monkeypatch.setattr(quality, "train_and_score", train_and_score)
    monkeypatch.setattr(quality, "base_model", base_model)
    monkeypatch.setattr(quality, "ngram_baseline", lambda ctx: {"bpc_open": 8.03, "ppl": 168.0, "tokens_per_s": 1e6})
    section = quality.run(ctx)
    assert [c[:2] for c in calls] == [("default", 60), ("default", 300), ("no mix", 300), ("tutorial-size", 300),
                                      ("transformer", 300), ("fine-tune", 300)]
    assert calls[1][2] == [] and calls[2][2] == ["--mix", "none"]  # the defaults mix; the corpus alone does not
    assert all(c[2][-2:] == ["--mix", "none"] for c in calls[3:5])
    assert calls[-1][2] == ["--init-from", "base.pt", *quality.FINE_TUNE]
    by_name = {f.name: f for f in section.figures}
    fine = by_name["quality fine-tune 300s: bpc-open, generating model (network + n-gram)"]
    assert (fine.value, fine.target, fine.met) == (7.4, quality.TARGET_FINE_TUNE, True)
    diff = by_name["quality fine-tune − scratch 300s: bpc-open difference, generating model"]
    assert diff.value == pytest.approx(7.4 - 7.8) and diff.met is True
    mixed = by_name["quality mix − scratch 300s: bpc-open difference, generating model"]
    assert mixed.value == pytest.approx(7.39 - 7.8) and mixed.met is True
    gap = by_name["quality transformer − LSTM 300s: bpc-open difference, generating model"]
    assert gap.value == pytest.approx(0.03) and gap.target == quality.TARGET_TRANSFORMER_GAP and gap.met is True
    assert by_name["quality transformer 300s: bpc-open, network alone"].value == 8.8
    assert by_name["quality base 1800s (2,000,000 characters): bpc-open on held-out 全宋词, generating model"].value == 6.9
    assert any(name.startswith("quality n-gram baseline") for name in by_name)
    assert ctx.checkpoint == "default.pt"
