"""Fine-tuning from a base checkpoint (`--init-from`): the base's vocabulary grows by the new corpus's
tokens (old ids keep their rows, new ones work, nothing a scratch run would know is `<unk>`), and
the base's n-gram joins the mixture as a component of its own, fitted by EM and stored as tensors."""
import math

import pytest
import torch

from conftest import TINY_OPTIONS
from lyricgen.checkpoint import load_checkpoint
from lyricgen.config import RunConfig
from lyricgen.fitted.mixture import Mixture, em_weights
from lyricgen.fitted.ngram import KneserNey
from lyricgen.scoring.evaluate import evaluate_file
from lyricgen.text.tokenizer import tokenize_lines
from lyricgen.text.vocab import Vocab
from lyricgen.training.run import open_run
from lyricgen.writing.predictor import Predictor

CPU = {"device": "cpu"}
# another artist's lines: Latin letters, characters and words the tiny base never saw
NEW_LINES = ["月光洒在新的街角", "龘龘的鼓声 OK", "霓虹闪烁的夜晚", "我们说好不要分开"]


@pytest.fixture(scope="module")
def fine_tuned(tiny_run, tmp_path_factory):
    """A trainer fine-tuning the tiny run on NEW_LINES, before and after one epoch."""
    tmp = tmp_path_factory.mktemp("ft")
    corpus = tmp / "artist.txt"
    corpus.write_text("\n".join(NEW_LINES * 20) + "\n", encoding="utf-8")
    trainer = open_run(RunConfig(init_from=str(tiny_run / "best.pt"), corpus=str(corpus), out=str(tmp / "ft"), **CPU),
                       {"epochs": 1, "seq_len": 8, "batch_size": 8})
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    assert trainer.run() == "done"
    return trainer, before, corpus, tmp / "ft"


# -- vocabulary growth ----------------------------------------------------------------------------------
def test_grow_keeps_old_ids_and_appends_the_new_tokens_in_their_order():
    base = Vocab.build([["月光", "照", "在"], ["月光", "河"]], min_freq=1)
    other = Vocab.build([["霓虹", "月光"], ["霓虹", "A"]], min_freq=1)
    grown = base.grow(other)
    assert grown.tokens[:len(base)] == base.tokens
    assert grown.tokens[len(base):] == [t for t in other.tokens if t not in base]  # 霓虹 (2) before A (1)
    counts = dict(zip(grown.tokens, grown.counts))  # the new corpus's counts: the side models fit on it
    assert counts["霓虹"] == 2 and counts["月光"] == 1 and counts["河"] == 0
    ids, unk = grown.encode(["霓虹", "A", "月光"])
    assert unk == 0 and grown.decode(ids) == "霓虹A月光"
    assert base.grow(base).tokens == base.tokens  # nothing to add: the same vocabulary


def test_nothing_a_scratch_run_knows_is_unknown_after_growth(fine_tuned, tiny_ckpt):
    trainer, *_ = fine_tuned
    grown = trainer.data.vocab
    scratch = Vocab.build(tokenize_lines(NEW_LINES), min_freq=tiny_ckpt.tokenizer.min_freq,
                          unit=tiny_ckpt.tokenizer.unit)
    assert set(scratch.tokens) <= set(grown.tokens)
    assert grown.tokens[:len(tiny_ckpt.vocab)] == tiny_ckpt.vocab.tokens
    ids, unk_chars = grown.encode_lines(tokenize_lines(NEW_LINES))
    assert unk_chars == 0 and grown.unk_id not in ids
    assert len(trainer.data.val.ids) and trainer.data.val.unk_chars == 0


def test_old_rows_are_kept_exactly_and_new_rows_start_sensibly(fine_tuned, tiny_ckpt):
    trainer, before, *_ = fine_tuned
    old, new = len(tiny_ckpt.vocab), len(trainer.data.vocab)
    assert new > old and trainer.model.config.vocab_size == new
    for name, t in tiny_ckpt.weights.items():
        grown = before[name]
        if name in ("embedding.weight", "decoder.weight", "decoder.bias"):
            assert grown.shape[0] == new and torch.equal(grown[:old], t), name
        else:
            assert torch.equal(grown, t), name
    emb = tiny_ckpt.weights["embedding.weight"]
    rows = before["embedding.weight"][old:]
    assert torch.allclose(rows, emb.mean(0).expand_as(rows), atol=0.05 * float(emb.std()))  # the mean, a little noise
    assert len({tuple(r.tolist()) for r in rows}) == rows.shape[0]  # ... and not all the same
    # output biases: a new token starts near its unigram frequency in the fine-tuning corpus
    counts = torch.tensor(trainer.data.vocab.counts[old:], dtype=torch.float32)
    assert torch.all(before["decoder.bias"][old:][counts > 10] > before["decoder.bias"][old:][counts <= 10].max() - 1)


def test_new_tokens_train_and_the_fine_tuned_run_saves_and_scores(fine_tuned, tiny_ckpt):
    trainer, before, corpus, out = fine_tuned
    old = len(tiny_ckpt.vocab)
    after = trainer.model.state_dict()
    assert not torch.equal(after["embedding.weight"][old:], before["embedding.weight"][old:])  # they learn
    ckpt = load_checkpoint(out / "best.pt")  # weights_only load: the base n-gram is plain tensors
    assert ckpt.vocab.tokens == trainer.data.vocab.tokens and ckpt.side.mixture.base is not None
    result = evaluate_file(out / "best.pt", corpus, device="cpu")
    assert result.result.unk_chars == 0 and math.isfinite(result.result.bpc_open) and result.mixture


# -- the base's n-gram over the grown vocabulary ----------------------------------------------------------
def test_widened_ngram_is_a_distribution_and_new_ids_get_only_the_floor():
    stream = torch.tensor([1, 3, 4, 5, 1, 3, 4, 6, 1, 5, 4, 3, 1])
    ng = KneserNey.fit(stream, 7, order=3)
    wide = ng.widen(10)
    histories = torch.tensor([[1, 3], [4, 5], [3, 8], [8, 9], [-1, -1]])  # 8, 9: ids the base never saw
    p = wide.dist(wide.states(histories), dtype=torch.float64)
    assert torch.allclose(p.sum(1), torch.ones(5, dtype=torch.float64))
    assert torch.allclose(p, wide.dist_slow(wide.states(histories)))
    assert torch.all(p[:, 7:] < p[:, 3:4])  # new ids: only the uniform floor
    assert torch.allclose(p[:, 7], p[:, 9])
    # a history ending in a new id is an unseen context: what the shorter one gives
    assert torch.allclose(p[3], wide.dist(wide.states(torch.tensor([[-1, -1]])), dtype=torch.float64)[0])
    # the old ids' probabilities barely move (only the floor is shared with more ids)
    q = ng.dist(ng.states(histories[:2]), dtype=torch.float64)
    assert torch.allclose(p[:2, :7], q, atol=0.02) and torch.allclose(ng.widen(7).dist(ng.states(histories[:2])),
                                                                        ng.dist(ng.states(histories[:2])))
    with pytest.raises(ValueError):
        ng.widen(5)


def _old_fit_weight(a, b):  # the one-weight EM as lyricgen ran it before the base component
    a, b = a.double(), b.double()
    w = 0.5
    for _ in range(50):
        la, lb = a + math.log(w), b + math.log1p(-w)
        w = float(torch.exp(la - torch.logaddexp(la, lb)).mean().clamp(1e-4, 1 - 1e-4))
    return w


def test_two_components_give_exactly_the_old_weight_and_mixture():
    g = torch.Generator().manual_seed(0)
    a, b = -torch.rand(500, generator=g) * 5, -torch.rand(500, generator=g) * 5
    assert em_weights([a, b]) == [_old_fit_weight(a, b)]
    m = Mixture(KneserNey.fit(torch.tensor([1, 2, 1, 2]), 3, order=2))
    m.fit_weight(a, b)
    assert m.weight == _old_fit_weight(a, b) and m.base is None
    assert torch.equal(m.mix_logp(a.double(), b.double()),
                       torch.logaddexp(a.double() + math.log(m.weight), b.double() + math.log1p(-m.weight)))
    assert "base" not in m.to_dict()


def test_em_finds_the_most_likely_three_component_weights():
    g = torch.Generator().manual_seed(1)
    which = torch.multinomial(torch.tensor([0.5, 0.3, 0.2]), 3000, replacement=True, generator=g)
    noise = torch.rand(3, 3000, generator=g)  # each component is good on its own part of the targets
    logps = [torch.where(which == k, 0.9, 0.05 * noise[k]).log().double() for k in range(3)]

    def loglik(w):
        return float(torch.logsumexp(torch.stack([x + math.log(wk) for x, wk in zip(logps, [*w, 1 - sum(w)])]), 0).sum())

    w = em_weights(logps, steps=500)
    assert len(w) == 2 and 0 < 1 - sum(w) < 1
    for d in ([0.01, 0], [-0.01, 0], [0, 0.01], [0, -0.01], [0.01, -0.01], [-0.01, 0.01]):
        assert loglik(w) > loglik([w[0] + d[0], w[1] + d[1]])
    # a useless component gets (almost) nothing, and the weights stay a distribution
    w = em_weights([logps[0], torch.full((3000,), -30.0, dtype=torch.float64), logps[1]])
    assert w[1] < 1e-3 and 0 < 1 - sum(w) < 1


def test_three_component_mixture_round_trips_and_old_entries_load():
    ng = KneserNey.fit(torch.tensor([1, 2, 1, 3, 1, 2]), 4, order=3)
    base = KneserNey.fit(torch.tensor([1, 3, 3, 1, 2]), 4, order=3).widen(6)
    m = Mixture(ng.widen(6), 0.6, torch.zeros(3)).with_base(base, [1, 2, 5], 1)
    assert m.base_val_logp.shape == (3,) and m.context == 2
    m.fit_weight(torch.log(torch.tensor([0.5, 0.2, 0.1])), m.val_logp.double(), m.base_val_logp.double())
    assert 0 < m.weight and 0 < m.base_weight and m.weight + m.base_weight < 1
    back = Mixture.from_dict(m.to_dict())
    assert (back.weight, back.base_weight) == (m.weight, m.base_weight)
    assert torch.equal(back.base.keys[3], m.base.keys[3]) and torch.equal(back.base_val_logp, m.base_val_logp)
    old = {k: v for k, v in m.to_dict().items() if k != "base"}  # a checkpoint from before the base component
    assert Mixture.from_dict(old).base is None
    # the next-token distribution generation samples from sums to one over the grown vocabulary
    net = torch.log_softmax(torch.randn(2, 6), -1)
    p = m.next_logp(net, torch.tensor([[1, 2], [5, 4]])).exp()
    assert torch.allclose(p.sum(1), torch.ones(2), atol=1e-5)


def test_generation_and_validation_use_the_base_component(fine_tuned):
    trainer, *_ = fine_tuned
    mixture = trainer.side.mixture
    assert mixture.base is not None and mixture.base.V == len(trainer.data.vocab)
    assert 0 < mixture.base_weight < 1 and mixture.weight + mixture.base_weight < 1  # fitted by validation
    predictor = Predictor(trainer.model, mixture)
    logp, _ = predictor.start([trainer.data.vocab.line_break_id], n=2)
    assert logp.shape == (2, len(trainer.data.vocab)) and torch.allclose(logp.exp().sum(1), torch.ones(2), atol=1e-4)


def test_tiny_options_stay_word_unit():  # the fixtures above rely on the tiny base's word unit
    assert TINY_OPTIONS["unit"] == "word"
