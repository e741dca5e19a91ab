"""--mix: the network also learns from a text of modern lyrics, while validation, habits, the copy
guard and names stay the corpus's own; resume re-reads the same mix and refuses a changed one."""
from pathlib import Path

import pytest
from conftest import TINY_CORPUS, one_error_line
from test_run import RESUME_TRAIN, assert_same_run

from lyricgen.checkpoint import load_checkpoint
from lyricgen.text.corpus import MIX_OWN_SHARE, CorpusInfo, mixed_lines

# Lines of their own (never in the tiny corpus), longer than its lines, so habits show whose they are.
MIX_LINES = ["清晨的公交车站台上站满了赶路的人", "窗外的梧桐树叶被秋风吹落一地金黄", "我把旧照片夹进那本没读完的书里",
             "夜里的便利店还亮着一盏温暖的灯", "", "她说明天的雨会在傍晚时分慢慢停下", "我们在天台上数着远处城市的灯火"]


def test_the_corpus_lines_are_repeated_to_a_quarter_of_the_text():
    own, mix = ["我们"] * 10, ["一二三四五六七八九十"] * 30  # 20 characters against 300
    lines = mixed_lines(own, mix)
    assert lines[:30] == mix and lines[30] == ""  # the mix, a song boundary, then the corpus's lines
    k = (len(lines) - 31) // len(own)
    assert lines[31:] == own * k
    assert sum(map(len, own * k)) / sum(map(len, lines)) >= MIX_OWN_SHARE  # at least the share ...
    assert sum(map(len, own * (k - 1))) / sum(map(len, own * (k - 1) + mix)) < MIX_OWN_SHARE  # ... and no more
    assert mixed_lines(mix, own) == [*own, "", *mix]  # a corpus larger than its mix is not repeated


def test_a_run_without_a_mix_records_its_corpus_as_before():
    info = CorpusInfo("a.txt", "0" * 64, 3)
    assert "mix" not in info.to_dict() and CorpusInfo.from_dict(info.to_dict()) == info
    info.mix = CorpusInfo("b.txt", "1" * 64, 5)
    assert CorpusInfo.from_dict(info.to_dict()) == info


def _mix_file(tmp_path) -> Path:
    path = tmp_path / "mix.txt"
    path.write_text("\n".join(MIX_LINES * 3) + "\n", encoding="utf-8")
    return path


def _argv(out, mix, *extra) -> list:
    return ["train", "--corpus", TINY_CORPUS, "--mix", mix, "--out", out, *RESUME_TRAIN, *extra]


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory):
    from lyricgen.cli import main

    tmp = tmp_path_factory.mktemp("mixed")
    mix = _mix_file(tmp)
    out = tmp / "full"
    assert main([str(a) for a in _argv(out, mix, "--epochs", "2")]) == 0
    return out, mix


def test_a_mixed_run_learns_the_mix_but_keeps_the_corpus_habits_and_validation(mixed_run, tmp_path, cli):
    out, mix = mixed_run
    ckpt = load_checkpoint(out / "best.pt")
    assert ckpt.corpus.mix is not None and Path(ckpt.corpus.mix.path) == mix.resolve()
    alone = tmp_path / "alone"
    rc, _, err = cli("train", "--corpus", TINY_CORPUS, "--out", alone, *RESUME_TRAIN, "--epochs", "1")
    assert rc == 0, err
    plain = load_checkpoint(alone / "best.pt")
    assert ckpt.side.habits.line_chars == plain.side.habits.line_chars  # the corpus's line lengths, not the mix's
    own = next(x for x in TINY_CORPUS.read_text(encoding="utf-8").splitlines() if x.strip())
    guard = ckpt.side.originality  # the copy guard knows the corpus's lines, not the mix's
    assert guard.is_training_line(own) and not guard.is_training_line(MIX_LINES[0])
    first = ckpt.training.state.metrics[0]
    assert first["val_bpc_open"] > 0  # validated on the corpus's own tail (the same tail as `alone`)
    assert len(ckpt.vocab) > len(plain.vocab)  # the mix's words joined the vocabulary


def test_a_mixed_run_resumes_exactly(mixed_run, tmp_path, cli):
    full, mix = mixed_run  # the uninterrupted run
    out = tmp_path / "run"
    rc, _, err = cli(*_argv(out, mix, "--epochs", "2", "--max-steps", "3"))
    assert rc == 0, err
    rc, _, err = cli("train", "--resume", out / "last.pt", "--device", "cpu", "--quiet")
    assert rc == 0, err
    assert_same_run(out, full)


def test_resume_refuses_a_changed_mix_and_a_mix_it_did_not_have(mixed_run, tmp_path, cli, run_copy):
    _, mix = mixed_run
    out = tmp_path / "stopped"
    rc, _, err = cli(*_argv(out, mix, "--epochs", "2", "--max-steps", "3"))
    assert rc == 0, err
    other = tmp_path / "other.txt"
    other.write_text("\n".join(MIX_LINES) + "\n", encoding="utf-8")
    rc, _, err = cli("train", "--resume", out / "last.pt", "--mix", other, "--device", "cpu", "--quiet")
    assert rc != 0 and "--mix" in one_error_line(err) and "changed" in err
    rc, _, err = cli("train", "--resume", run_copy / "last.pt", "--mix", mix, "--epochs", "3", "--quiet")
    assert rc != 0 and "--mix cannot be added on resume" in one_error_line(err)


def test_a_missing_mix_is_one_error_line(tmp_path, cli):
    rc, _, err = cli("train", "--corpus", TINY_CORPUS, "--mix", tmp_path / "none.txt", "--out", tmp_path / "r",
                       "--quiet")
    assert rc != 0 and "none.txt" in one_error_line(err)


# -- the default: a --time-budget run on a small Chinese corpus mixes in the bundled lyrics ----------
def _chosen(corpus_lines, path="c.txt", mix=None, **options):
    from lyricgen.config import RunConfig
    from lyricgen.training.run import chosen_mix

    run = RunConfig(mix=mix, init_from=options.pop("init_from", None))
    return chosen_mix(run, options, corpus_lines, CorpusInfo(str(path), "0" * 64, len(corpus_lines)))


def test_a_time_budget_on_a_small_chinese_corpus_mixes_in_the_bundled_lyrics():
    from lyricgen.training.run import AUTO_MIX_CHARS, OPEN_LYRICS

    small = ["我们一起走过的路", "窗外 的雨"]
    assert _chosen(small, time_budget=300.0) == "bundled"
    assert _chosen(small) is None  # --epochs: every epoch would pass over the mix too
    assert _chosen(small, init_from="base.pt", time_budget=300.0) is None  # a base knows the language
    assert _chosen(small, mix="none", time_budget=300.0) is None  # asked for none
    assert _chosen(small, mix="my.txt") == "my.txt"  # as given, budget or not
    assert _chosen(["hello darling my love", "我"], time_budget=300.0) is None  # not a Chinese corpus
    big = ["我" * 1000] * (AUTO_MIX_CHARS // 1000)
    assert _chosen(big, time_budget=300.0) is None  # a large corpus is its own teacher
    assert _chosen(small, path=OPEN_LYRICS, time_budget=300.0) is None  # never the mix beside itself


def test_the_default_mix_is_recorded_said_and_kept_on_resume(tmp_path, cli):
    from lyricgen.training.run import OPEN_LYRICS

    out = tmp_path / "auto"
    loud = [a for a in RESUME_TRAIN if a != "--quiet"]
    rc, _, err = cli("train", "--corpus", TINY_CORPUS, "--out", out, *loud, "--max-steps", "2",
                     "--time-budget", "30")
    assert rc == 0, err
    mixed = load_checkpoint(out / "last.pt").corpus.mix
    assert mixed is not None and Path(mixed.path) == OPEN_LYRICS.resolve()
    assert "mixed in" in err and "--mix none" in err  # says so, and how to train without it
    rc, _, err = cli("train", "--resume", out / "last.pt", "--mix", "none", "--max-steps", "3", "--quiet")
    assert rc != 0 and "--mix none cannot drop the mix on resume" in one_error_line(err)
    rc, _, err = cli("train", "--resume", out / "last.pt", "--max-steps", "3", "--quiet")
    assert rc == 0, err  # the recorded mix, read again
    out = tmp_path / "none"
    rc, _, err = cli("train", "--corpus", TINY_CORPUS, "--out", out, *RESUME_TRAIN, "--max-steps", "2",
                     "--time-budget", "30", "--mix", "none")
    assert rc == 0, err
    assert load_checkpoint(out / "last.pt").corpus.mix is None
