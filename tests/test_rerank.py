"""The reranker (fitted/rerank.py, writing/judge.py): its arithmetic, fitting it at the end of training,
storing it in the checkpoint, ranking candidate lines by it, and checkpoints without it writing as
before."""
import dataclasses
import math
import shutil

import pytest
import torch
from conftest import TINY_CORPUS, TINY_OPTIONS

from lyricgen.checkpoint import load_checkpoint, save_checkpoint
from lyricgen.config import RunConfig
from lyricgen.fitted import SideModels
from lyricgen.fitted.rerank import LOGP, Reranker, fit_pairwise, pair_accuracy
from lyricgen.training.run import open_run
from lyricgen.writing.judge import FEATURES, Judge, split_lines
from lyricgen.writing.lines import Line
from lyricgen.writing.lyricist import Lyricist
from lyricgen.writing.report import format_report, reranker_figures


# -- the arithmetic ------------------------------------------------------------------------------------
def test_pair_accuracy_counts_pairs_where_the_real_line_scores_higher_and_ties_as_half():
    real = torch.tensor([2.0, 0.0])
    model_lines = [torch.tensor([1.0, 3.0, 2.0]), torch.tensor([-1.0])]
    # context 0: above 1 (1), below 3 (0), tied with 2 (0.5); context 1: above -1 (1) -> 2.5 of 4
    assert pair_accuracy(real, model_lines) == (0.625, 4)


def synthetic(contexts=60, k=5, seed=0):
    """Feature rows where real lines copy less (feature 1) and are less probable (feature 0) than the
    model's own lines, as on a real corpus; feature 2 is noise."""
    g = torch.Generator().manual_seed(seed)
    real = torch.stack([-2.5 + 0.3 * torch.randn(contexts, generator=g), torch.rand(contexts, generator=g),
                        torch.randn(contexts, generator=g)], 1)
    cands = [torch.stack([-1.5 + 0.3 * torch.randn(k, generator=g), 2 + torch.rand(k, generator=g),
                          torch.randn(k, generator=g)], 1) for _ in range(contexts)]
    return real, cands


def test_fit_learns_what_sets_real_lines_apart_and_measures_it_on_contexts_held_out():
    names = [LOGP, "copy", "noise"]
    real, cands = synthetic()
    r = Reranker.fit(names, real, cands, seed=0, base_scores=(real[:, 0], [c[:, 0] for c in cands]))
    assert r.weights[0] == 1.0  # the model's log-probability keeps its weight: the score is residual
    assert r.weights[1] < 0  # copying tells a model line
    assert abs(r.weights[2]) < abs(r.weights[1])
    assert r.contexts == 18 and r.fit_contexts == 42 and r.pairs == 18 * 5
    assert r.accuracy > 0.95
    assert r.base_accuracy < 0.05  # by log-probability alone the real line almost never wins


def test_free_logp_weight_is_fitted_like_the_others():
    names = [LOGP, "copy", "noise"]
    real, cands = synthetic()
    weights = fit_pairwise(names, real, cands, free_logp=True)
    assert weights[0] < 0  # the real line is the less probable one here


def test_fewer_contexts_than_needed_fit_no_reranker():
    real, cands = synthetic(contexts=3)
    assert Reranker.fit([LOGP, "copy", "noise"], real, cands) is None
    real, cands = synthetic(contexts=10)
    assert Reranker.fit([LOGP, "copy", "noise"], real, [c[:0] for c in cands]) is None  # no model lines


def test_a_reranker_round_trips_through_the_side_models_and_a_safe_load(tmp_path):
    r = Reranker(list(FEATURES), [1.0] + [0.5] * (len(FEATURES) - 1), 0.8, 0.1, 3, 30, 7, 1.5, {"k": 4})
    side = SideModels(reranker=r)
    torch.save(side.to_dict(), tmp_path / "side.pt")
    back = SideModels.from_dict(torch.load(tmp_path / "side.pt", weights_only=True)).reranker
    assert back == r
    assert "reranker" not in SideModels().to_dict()  # a checkpoint without one is written as before


def test_split_lines():
    assert split_lines([5, 6, 1, 1, 7, 1, 8], 1) == [[5, 6], [], [7], [8]]


# -- training fits and stores it ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def reranked_run(tmp_path_factory):
    """A 2-epoch run of characters on the tiny corpus twice over, so that its 16 validation lines (the
    contexts) hold no character the vocabulary lacks (such lines are left out: "<unk>" gives them away)."""
    out = tmp_path_factory.mktemp("reranked")
    corpus = out / "twice.txt"
    corpus.write_text(TINY_CORPUS.read_text(encoding="utf-8") * 2, encoding="utf-8")
    run = RunConfig(corpus=str(corpus), out=str(out), device="cpu")
    options = {**TINY_OPTIONS, "unit": "char", "min_freq": 1, "epochs": 2, "rerank_lines": 60}  # default: none
    assert open_run(run, options).run() == "done"
    return out


def test_training_fits_the_reranker_and_stores_it_in_the_checkpoint(reranked_run):
    best = load_checkpoint(reranked_run / "best.pt")
    r = best.side.reranker
    assert r is not None and tuple(r.names) == FEATURES and Judge.usable(r)
    assert r.contexts + r.fit_contexts <= 16 and r.contexts == round(0.3 * (r.contexts + r.fit_contexts))
    assert r.contexts >= 2 and r.pairs > 0
    assert 0.0 <= r.accuracy <= 1.0 and 0.0 <= r.base_accuracy <= 1.0
    assert r.seconds > 0 and r.extra["model_lines"] >= r.pairs
    assert r.weights[FEATURES.index(LOGP)] == 1.0
    last = load_checkpoint(reranked_run / "last.pt")
    if all(torch.equal(last.weights[k], best.weights[k]) for k in best.weights):
        assert last.side.reranker == r
    else:
        assert last.side.reranker is None
    assert Lyricist.load(reranked_run / "best.pt").songs.judge is not None


def test_by_default_training_fits_no_reranker(tmp_path):
    run = RunConfig(corpus=str(TINY_CORPUS), out=str(tmp_path), device="cpu")
    assert open_run(run, {**TINY_OPTIONS, "epochs": 1}).run() == "done"
    assert load_checkpoint(tmp_path / "best.pt").side.reranker is None


def test_a_resumed_run_fits_it_again_when_it_ends(reranked_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(reranked_run, run_dir)
    before = load_checkpoint(run_dir / "best.pt").side.reranker
    run = RunConfig(resume=str(run_dir / "last.pt"), device="cpu")
    assert open_run(run, {"epochs": 3}).run() == "done"
    r = load_checkpoint(run_dir / "best.pt").side.reranker
    assert r is not None and r.contexts == before.contexts and r.seconds != before.seconds  # fitted anew


# -- writing with it ---------------------------------------------------------------------------------
def without_reranker(path, out):
    ckpt = load_checkpoint(path)
    ckpt.side = dataclasses.replace(ckpt.side, reranker=None)
    save_checkpoint(ckpt, out)
    return out


SONGS = [("月光", {}), ("我们", {"sample": True, "seed": 3})]


def songs(writer, **options):
    return [writer.generate(word, lines=4, **{**o, **options})[0].text for word, o in SONGS]


def test_a_checkpoint_without_it_writes_as_no_rerank_does(reranked_run, tmp_path):
    old = Lyricist.load(without_reranker(reranked_run / "best.pt", tmp_path / "old.pt"))
    assert old.reranker is None and old.songs.judge is None
    new = Lyricist.load(reranked_run / "best.pt")
    assert songs(old) == songs(new, rerank=False)
    assert songs(old) == songs(old, rerank=True)  # nothing to rank by: the option changes nothing


def test_an_older_checkpoint_loads_and_writes(tiny_run, tmp_path):
    """The session's tiny run, stripped of the side model, stands for a checkpoint from before it."""
    old = Lyricist.load(without_reranker(tiny_run / "best.pt", tmp_path / "old.pt"))
    assert all(text.strip() for text in songs(old))
    assert "reranker" not in torch.load(tmp_path / "old.pt", weights_only=True)["side_models"]


def test_lines_are_ranked_by_the_reranker(reranked_run):
    writer = Lyricist.load(reranked_run / "best.pt")
    songs_ = writer.songs
    vocab = writer.vocab
    ids = [vocab.index[t] for t in vocab.tokens[3:] if t.strip()][:6]
    short, long_ = Line([ids[0]], -1.0, -2.0, 2), Line(ids[1:5], -3.0, -15.0, 5)  # short: likelier per token
    assert songs_._ranked("", [long_, short])[0][1] is short
    weights = [0.0] * len(FEATURES)
    weights[FEATURES.index("length_z")] = 100.0  # a reranker that wants long lines above all
    songs_.judge = Judge(Reranker(list(FEATURES), weights), songs_.words, writer.originality, writer.habits)
    assert songs_._ranked("", [short, long_])[0][1] is long_
    assert songs_._ranked("", [long_, short], rerank=False)[0][1] is short  # --no-rerank: the model's score again


def test_the_judges_features_are_finite_and_in_order(reranked_run):
    writer = Lyricist.load(reranked_run / "best.pt")
    judge = writer.songs.judge
    row = judge.features("月光 我们", -7.5, 3, previous="我们的月光")
    assert len(row) == len(FEATURES) and all(math.isfinite(x) for x in row)
    assert row[FEATURES.index(LOGP)] == -2.5
    assert row[FEATURES.index("previous_overlap")] == 1.0  # every character of it is in the line before


def test_report_shows_the_held_out_accuracy(reranked_run):
    r = load_checkpoint(reranked_run / "best.pt").side.reranker
    report = {"lines": 8, "corpus": {"source": "corpus"}, "greedy": {"songs": 1, "rhyme_rate": 0.5},
              "reranker": reranker_figures(r)}
    text = format_report(report)
    assert f"{r.accuracy:.1%} of {r.pairs} held-out pairs" in text
    assert "songs ranked by it" in text
    assert "not used (--no-rerank)" in format_report({**report, "reranker": reranker_figures(r, used=False)})


def test_a_real_lines_log_probability_in_one_pass_is_the_predictors_step_by_step(tiny_ckpt):
    from lyricgen.writing.judge import line_logp
    from lyricgen.writing.predictor import Predictor

    vocab = tiny_ckpt.vocab
    predictor = Predictor(tiny_ckpt.build_model().eval(), tiny_ckpt.side.mixture)
    lb = vocab.line_break_id
    words = [i for i, t in enumerate(vocab.tokens) if i >= 3 and t.strip()]
    stream, ids = [lb] + words[:5] + [lb], words[5:9]
    logp, state = predictor.start(stream)
    expected, lp, st = 0.0, logp, state
    for t in ids + [lb]:
        expected += float(lp[0, t])
        lp, st = predictor.step(st, torch.tensor([t]))
    assert line_logp(predictor, logp, state, stream, ids, lb) == pytest.approx(expected, abs=1e-3)
    assert line_logp(predictor, logp, state, stream, [], lb) == pytest.approx(float(logp[0, lb]))
