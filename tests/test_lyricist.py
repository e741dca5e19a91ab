"""writing/lyricist.py: the Python API behind `lyricgen generate`: load a checkpoint, write ranked
candidates with their originality report, --no-copy."""
import dataclasses
from itertools import product

import pytest

import lyricgen
from conftest import OVERFIT_LINES as LINES
from lyricgen.checkpoint import load_checkpoint, save_checkpoint
from lyricgen.config import SamplingConfig, StructureConfig
from lyricgen.errors import LyricgenError, OptionError
from lyricgen.text.tokenizer import normalize_line, tokenize_line
from lyricgen.writing.lyricist import Candidate, Lyricist

FIRST = [tokenize_line(line)[0] for line in LINES]


def test_load_writes_from_the_checkpoint_alone(tiny_run, monkeypatch):
    def no_corpus(*args, **kwargs):
        raise AssertionError("generation read a corpus")

    monkeypatch.setattr("lyricgen.text.corpus.load_corpus", no_corpus)
    writer = lyricgen.load(tiny_run / "best.pt")
    assert isinstance(writer, lyricgen.Lyricist) and lyricgen.Lyricist is Lyricist
    candidates = writer.generate("月光", max_tokens=12)
    assert len(candidates) == 1 and isinstance(candidates[0], Candidate)
    assert candidates[0].text.startswith("月光") and len(candidates[0].text) > 2
    assert writer.generate("月光", max_tokens=12)[0].text == candidates[0].text
    with pytest.raises(LyricgenError):
        writer.generate("xqz")


def test_greedy_from_a_lines_first_word_writes_that_line_and_reports_the_copy(overfit_writer):
    for word, line in zip(FIRST, LINES):
        c = overfit_writer.generate(word, lines=1, max_tokens=20, plain=True)[0]
        assert c.text == line and c.copied_lines == 1.0 and c.longest_copy == len(line)
        assert c.tokens == 4 and c.score <= 0  # three more words and the line break
        song = overfit_writer.generate(word, lines=1, max_tokens=20)[0]  # a song passes over the copy
        assert song.text.startswith(word) and song.text != line and song.copied_lines == 0.0
        assert song.longest_copy < 8 and song.score <= 0 and song.tokens >= 2


@pytest.mark.parametrize("structure", [{"lines": 3, "max_tokens": 40},
                                       {"max_tokens": 4},  # the budget forces the break
                                       {"max_tokens": 30, "max_line_tokens": 4, "lines": 1}])  # the line length does
def test_no_copy_never_ends_a_training_line(overfit_writer, structure):
    known = {normalize_line(line) for line in LINES}
    for word, plain in product(FIRST, (True, False)):  # token by token, and songs
        for sampling in (SamplingConfig(num_samples=2), SamplingConfig(temperature=1.0, seed=3, num_samples=2)):
            for c in overfit_writer.generate(word, sampling, no_copy=True, plain=plain, **structure):
                assert not known & {normalize_line(x) for x in c.text.split("\n")}, c.text
                assert c.copied_lines == 0.0
    c = overfit_writer.generate("灯塔", lines=2, max_tokens=40, no_copy=True, plain=True)[0]
    assert c.text.startswith(LINES[4]) and c.text != LINES[4]  # it goes on past the training line


def test_num_samples_returns_k_candidates_best_first(overfit_writer):
    for k in (1, 2, 5):
        candidates = overfit_writer.generate("晨光", max_tokens=25, num_samples=k, temperature=1.2, seed=k)
        assert len(candidates) == k
        scores = [c.score for c in candidates]
        assert scores == sorted(scores, reverse=True)
        assert all(s <= 0 and s == s for s in scores)  # mean log-probabilities
    texts = {c.text for c in overfit_writer.generate("晨光", max_tokens=25, num_samples=5, temperature=1.2, seed=5)}
    assert len(texts) > 1


def test_options_come_as_configs_or_by_name_and_names_win(overfit_writer):
    sampling, structure = SamplingConfig(temperature=1.0, seed=3), StructureConfig(lines=2, max_tokens=30)
    by_config = overfit_writer.generate("火车", sampling, structure)
    assert by_config == overfit_writer.generate("火车", temperature=1.0, seed=3, lines=2, max_tokens=30)
    greedy = overfit_writer.generate("火车", lines=2, max_tokens=30)
    assert by_config != greedy
    assert overfit_writer.generate("火车", sampling, structure, temperature=0.0) == greedy
    with pytest.raises(OptionError, match="colour"):
        overfit_writer.generate("火车", colour="red")


def test_write_reports_the_characters_left_out(overfit_writer, monkeypatch):
    candidates, unknown = overfit_writer.write("晨光龘", SamplingConfig(), StructureConfig(lines=1))
    assert unknown == ["龘"]
    assert candidates[0].text.startswith("晨光龘")  # the text begins with the start word as given
    request = overfit_writer.request("晨光", lines=1, plain=True)  # the start word is resolved here, once
    monkeypatch.setattr("lyricgen.writing.lyricist.resolve_start", lambda *a: pytest.fail("resolved again"))
    assert overfit_writer.run(request)[0].text == LINES[0]


def test_candidate_as_a_dict_and_without_originality(overfit_ckpt, tmp_path):
    c = Lyricist.load(overfit_ckpt).generate("晨光", lines=1, plain=True)[0]
    assert c.to_dict() == {"text": LINES[0], "score": c.score, "tokens": 4, "copied_lines": 1.0,
                           "longest_copy": len(LINES[0])}
    ckpt = load_checkpoint(overfit_ckpt)
    save_checkpoint(dataclasses.replace(ckpt, side=dataclasses.replace(ckpt.side, originality=None)), tmp_path / "a.pt")
    c = Lyricist.load(tmp_path / "a.pt").generate("晨光", lines=1, no_copy=True, plain=True)[0]
    assert (c.text, c.copied_lines, c.longest_copy) == (LINES[0], None, None)  # nothing to compare with
    c = Lyricist.load(tmp_path / "a.pt").generate("晨光", lines=1, no_copy=True)[0]
    assert c.text.startswith("晨光") and (c.copied_lines, c.longest_copy) == (None, None)


# -- writing as a generator, and the one request ---------------------------------------------------
def written(writing) -> tuple[list[str], list]:
    """(what a stream yielded, what it returned)."""
    pieces = []
    while True:
        try:
            pieces.append(next(writing))
        except StopIteration as done:
            return pieces, done.value


@pytest.mark.parametrize("options", [{"plain": True}, {}, {"temperature": 0.9, "seed": 2}, {"rhyme": "AABB"}])
def test_stream_yields_the_text_and_returns_the_candidates(overfit_writer, options):
    request = overfit_writer.request("晨光", lines=3, stream=True, **options)
    pieces, candidates = written(overfit_writer.stream(request))
    assert isinstance(request.start, str) and all(isinstance(p, str) for p in pieces)
    assert pieces[0] == "晨光" and "".join(pieces).rstrip("\n") == candidates[0].text
    assert candidates == overfit_writer.generate("晨光", lines=3, **options) == overfit_writer.run(request)


@pytest.mark.parametrize("plain", [True, False])
def test_a_stream_is_lazy_so_stopping_iteration_cancels_it(overfit_writer, monkeypatch, plain):
    steps = []
    real = overfit_writer.predictor.step
    monkeypatch.setattr(overfit_writer.predictor, "step", lambda *a: steps.append(1) or real(*a))
    writing = overfit_writer.stream(overfit_writer.request("晨光", lines=4, plain=plain))
    for n in range(1, 6):
        next(writing)
        assert len(steps) < n  # at most one step of the model per piece taken: nothing runs ahead
    writing.close()
    with pytest.raises(StopIteration):
        next(writing)


def test_request_holds_each_rule(overfit_writer):
    from lyricgen.config import SAMPLE_PRESET
    from lyricgen.writing.generate import StartWordError

    for start in ("", " \u3000", None):
        with pytest.raises(StartWordError, match="the start word is empty") as e:
            overfit_writer.request(start)
        assert e.value.suggestions
    with pytest.raises(LyricgenError, match="num_samples must be 1 when streaming"):
        overfit_writer.request("晨光", stream=True, num_samples=2)
    assert overfit_writer.request("晨光", num_samples=2).sampling.num_samples == 2  # not streamed: fine
    request = overfit_writer.request("", first_line=LINES[0])  # the first line is the start
    assert request.start == LINES[0] and request.prompt_ids == request.start_ids == overfit_writer.prompt(LINES[0])[0]
    request = overfit_writer.request(FIRST[0], first_line=LINES[0])  # a song is primed by its whole first line
    assert request.start_ids == overfit_writer.prompt(FIRST[0])[0] != request.prompt_ids
    assert overfit_writer.request("晨光", sample=True).sampling.temperature == SAMPLE_PRESET["temperature"]
    assert overfit_writer.request("晨光", SamplingConfig(temperature=0.5), temperature=0.7).sampling.temperature == 0.7
    with pytest.raises(OptionError, match="first_line"):
        overfit_writer.request("晨光", first_line="龘")
