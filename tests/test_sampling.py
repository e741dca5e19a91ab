"""writing/sampling.py: choosing the next token (greedy, top-k, top-p, temperature) from a private
generator, the repetition penalty and the n-gram bans."""
import random
from itertools import product

import pytest
import torch

from lyricgen.config import SamplingConfig, StructureConfig
from lyricgen.writing.generate import generate_ids
from lyricgen.writing.sampling import banned_by_ngram, choose_next, make_generator, penalize_repeats


def gen(model, vocab, start_ids, max_tokens=30, sampling=None) -> list[int]:
    """The generated ids of one candidate (only what generation kept), blank lines allowed."""
    out, lengths, _ = generate_ids(model, vocab, start_ids, StructureConfig(max_tokens=max_tokens, min_line_tokens=0),
                                   sampling)
    return out[0, :lengths[0]].tolist()


# -- greedy -------------------------------------------------------------------------------------------
GREEDY = [SamplingConfig(), SamplingConfig(temperature=1.0, top_k=1), SamplingConfig(temperature=1.5, top_k=1, seed=4),
          SamplingConfig(temperature=0.0, top_p=0.5, top_k=3, seed=9), SamplingConfig(temperature=0.0, seed=1)]
ACTS_GREEDY = [SamplingConfig(temperature=1e-45, seed=0),  # exp(-1/1e-45) is 0: no NaN, no inf
               SamplingConfig(temperature=1.5, top_p=1e-6, seed=3)]  # the nucleus is the best token alone


def test_temperature_0_or_top_k_1_is_greedy_and_so_are_tiny_temperature_and_top_p(tiny_model):
    logits = torch.tensor([[0.1, 2.0, -1.0], [3.0, 0.0, 2.9], [0.5, 0.2, -1.0]])
    for sampling in GREEDY:
        assert sampling.greedy and make_generator(sampling) is None
        assert choose_next(logits, sampling, None).tolist() == [1, 0, 0]
    for sampling in ACTS_GREEDY:
        assert not sampling.greedy
        for _ in range(20):
            assert choose_next(logits, sampling, make_generator(sampling)).tolist() == [1, 0, 0]
    # and whole texts: every one of these writes the greedy text
    model, vocab = tiny_model
    start = [vocab.index["月光"]]
    greedy = gen(model, vocab, start)
    assert len(greedy) == 30
    for sampling in GREEDY + ACTS_GREEDY:
        assert gen(model, vocab, start, sampling=sampling) == greedy, sampling
    assert gen(model, vocab, start, sampling=SamplingConfig(temperature=1.5, seed=3)) != greedy


# -- top-k, top-p --------------------------------------------------------------------------------------
def _draws(logits_row, sampling, n=600, seed=0) -> set[int]:
    g = torch.Generator().manual_seed(seed)
    return set(choose_next(logits_row.expand(n, -1), sampling, g).tolist())


PROBS = torch.tensor([0.06, 0.40, 0.10, 0.25, 0.04, 0.15], dtype=torch.float64)  # ranked 1, 3, 5, 2, 0, 4


def _nucleus(probs: torch.Tensor, top_p: float) -> set[int]:
    """The definition: the most likely tokens, smallest set whose probability mass reaches top_p."""
    kept, mass = set(), 0.0
    for i in sorted(range(len(probs)), key=lambda i: -float(probs[i])):
        kept.add(i)
        mass += float(probs[i])
        if mass >= top_p:
            break
    return kept


@pytest.mark.parametrize("logits, k, temperature", [
    *[(PROBS.log().float(), k, 4.0) for k in (1, 2, 3, 4, 5, 6, 50)],
    (torch.tensor([0.0, 1.0, 0.9, 0.95, -2.0]), 2, 5.0),
])
def test_top_k_draws_only_and_all_of_the_k_best(logits, k, temperature):
    logits = logits.unsqueeze(0)
    best = set(torch.argsort(logits[0], descending=True)[:k].tolist())
    assert _draws(logits, SamplingConfig(temperature=temperature, top_k=k)) == best


@pytest.mark.parametrize("probs, temperature, top_p", [
    *[(PROBS, t, p) for t, p in product([1.0, 2.0], [0.2, 0.5, 0.7, 0.86, 0.93, 0.99])],
    (torch.tensor([0.5, 0.3, 0.15, 0.05], dtype=torch.float64), 1.0, 0.7),  # 0.5 < 0.7 needs the second token
])
def test_top_p_draws_only_and_all_of_the_nucleus(probs, temperature, top_p):
    logits = (probs.log() + 3.0).float().unsqueeze(0)  # a shift changes nothing
    tempered = torch.softmax(logits.double() / temperature, dim=-1)[0]
    cumulative = torch.sort(tempered, descending=True).values.cumsum(0)
    assert (cumulative - top_p).abs().min() > 1e-3  # no ties at the boundary: the expectation is unambiguous
    assert _draws(logits, SamplingConfig(temperature=temperature, top_p=top_p)) == _nucleus(tempered, top_p)


@pytest.mark.parametrize("shape", ["peaked", "flat"])
def test_top_p_over_a_large_vocabulary(shape):
    """Over 256 tokens the nucleus is looked for among the best 256 first (peaked: it is there) and
    over all of them otherwise (flat): both give exactly the nucleus."""
    V = 300
    logits = -0.002 * torch.arange(V, dtype=torch.float64)  # distinct, nearly flat
    if shape == "peaked":
        logits[:8] += 8.0
    probs = torch.softmax(logits, dim=-1)
    cumulative = probs.cumsum(0)  # already sorted best first
    n = 5 if shape == "peaked" else 270
    top_p = float(cumulative[n - 1] + cumulative[n]) / 2  # halfway: the nucleus is the best n + 1
    assert (float(cumulative[255]) >= top_p) == (shape == "peaked")
    expected = _nucleus(probs, top_p)
    assert expected == set(range(n + 1))
    assert _draws(logits.float().unsqueeze(0), SamplingConfig(temperature=1.0, top_p=top_p), n=20_000) == expected


def test_top_k_then_top_p_takes_the_nucleus_of_the_k_best():
    logits = PROBS.log().float().unsqueeze(0)
    best3 = torch.tensor([float(PROBS[i]) if i in (1, 3, 5) else 0.0 for i in range(6)], dtype=torch.float64)
    best3 /= best3.sum()  # 0.5, 0.3125, 0.1875 after renormalising
    expected = _nucleus(best3, 0.7)
    assert expected == {1, 3}
    assert _draws(logits, SamplingConfig(temperature=1.0, top_k=3, top_p=0.7)) == expected


def test_sampling_draws_from_its_own_generator():
    sampling = SamplingConfig(temperature=1.0, seed=5)
    logits = torch.zeros(4, 50)
    before = torch.get_rng_state()
    a = choose_next(logits, sampling, make_generator(sampling))
    assert torch.equal(torch.get_rng_state(), before)  # the global RNG (training's dropout) is untouched
    assert torch.equal(a, choose_next(logits, sampling, make_generator(sampling)))  # the seed reproduces
    unseeded = SamplingConfig(temperature=1.0)
    draws = {tuple(choose_next(logits, unseeded, make_generator(unseeded)).tolist()) for _ in range(5)}
    assert len(draws) > 1  # no seed: a fresh one each time


# -- penalties and bans ------------------------------------------------------------------------------------
def test_penalize_repeats_acts_as_defined():
    logits = torch.tensor([[2.0, -1.0, 0.0, 3.0, -0.5],
                           [2.0, -1.0, 0.0, 3.0, -0.5]])
    seen = torch.tensor([[True, True, True, False, False],
                         [False, False, False, True, True]])
    original = logits.clone()
    assert torch.equal(penalize_repeats(logits, seen, 2.0),
                       torch.tensor([[1.0, -2.0, 0.0, 3.0, -0.5],  # seen: 2/2, -1*2, 0 stays 0
                                     [2.0, -1.0, 0.0, 1.5, -1.0]]))  # unseen unchanged
    assert torch.equal(penalize_repeats(logits, seen, 1.0), original)  # penalty 1 = identity
    assert torch.equal(penalize_repeats(logits, seen, 0.5)[0], torch.tensor([4.0, -0.5, 0.0, 3.0, -0.5]))
    assert torch.equal(penalize_repeats(logits, torch.zeros_like(seen), 3.0), original)  # nothing seen
    assert torch.equal(logits, original)  # the input is not modified


@pytest.mark.parametrize("history, n, expected", [
    ([1, 2, 3, 1], 2, {2}),
    ([1, 2, 1, 3, 1], 2, {2, 3}),
    ([1, 2, 3, 4], 2, set()),  # 4 never occurred before
    ([1, 2, 3, 1, 2], 3, {3}),
    ([1, 2, 3, 1, 2, 4, 1, 2], 3, {3, 4}),
    ([5, 5, 5], 3, {5}),
    ([5, 5], 2, {5}),
    ([1, 2, 1, 3], 3, set()),  # (1, 3) was never a prefix
    ([7], 2, set()),  # history shorter than n
    ([1, 2], 3, set()),
    ([], 2, set()),
    ([1, 1, 1], 0, set()),  # off
    ([4, 2, 4], 1, {2, 4}),  # unigrams: every token already written
])
def test_banned_by_ngram_hand_made(history, n, expected):
    assert banned_by_ngram(history, n) == expected


def test_banned_by_ngram_is_exactly_what_would_repeat_an_ngram():
    """Against the definition: token c is banned iff history + [c] ends with an n-gram already in history."""
    rng = random.Random(0)
    for _ in range(300):
        n = rng.randint(1, 4)
        history = [rng.randint(0, 3) for _ in range(rng.randint(0, 12))]
        grams = {tuple(history[i:i + n]) for i in range(len(history) - n + 1)}
        expected = {c for c in range(4) if len(history) >= n and tuple((history + [c])[-n:]) in grams}
        assert banned_by_ngram(history, n) == expected, (history, n)


def test_constrain_is_the_penalty_the_ngram_ban_and_the_unk_ban():
    from lyricgen.writing.sampling import Ngrams, constrain

    logp = torch.log_softmax(torch.randn(2, 6, generator=torch.Generator().manual_seed(0)), dim=-1)
    before = logp.clone()
    seen = torch.zeros(2, 6, dtype=torch.bool)
    seen[0, 3] = True
    sampling = SamplingConfig(repetition_penalty=2.0, no_repeat_ngram=2)
    adj = constrain(logp, sampling, 0, seen, [Ngrams(2, [1, 4, 1]), Ngrams(2, [5])])
    assert torch.equal(logp, before)  # a copy: the scores still add up the model's own log-probabilities
    assert torch.isinf(adj[:, 0]).all()  # "<unk>" never
    assert adj[0, 3] == 2.0 * logp[0, 3]  # seen: twice as unlikely in log space
    assert torch.isinf(adj[0, 4]) and not torch.isinf(adj[0, [1, 2, 5]]).any()  # 1 4 already: not after 1 again
    assert torch.equal(adj[1, 1:], logp[1, 1:])  # nothing seen, nothing to repeat
    # a line being searched continues the text: its own n-grams are not counted, the text's are
    assert Ngrams(2, [1, 4]).banned([2, 1]) == {4} and Ngrams(2, [1, 4]).banned([1, 2]) == set()
    assert Ngrams(1, [3, 5]).banned() == {3, 5} and Ngrams(0, [3, 3]).banned() == set()
    off = constrain(logp, SamplingConfig(), 0, seen, None)
    assert torch.equal(off[:, 1:], logp[:, 1:]) and torch.isinf(off[:, 0]).all()
