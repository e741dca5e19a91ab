"""fitted/ngram.py: Kneser-Ney against a naive dict-based reference, normalisation, the two context
paths (a stream for scoring, histories for generation), and a weights_only round trip."""
import io
from collections import Counter, defaultdict

import pytest
import torch

from lyricgen.fitted.ngram import KneserNey


def naive_kn(stream, V, N, D):
    """Textbook interpolated KN with one absolute discount D: p(h, w) by recursion over dicts."""
    raw = Counter(tuple(stream[t - N + 1:t + 1]) for t in range(max(1, N - 1), len(stream)))
    grams = {N: raw}
    for k in range(N - 1, 0, -1):  # continuation counts: distinct left extensions
        c = Counter()
        for g in grams[k + 1]:
            c[g[1:]] += 1
        grams[k] = c
    tot, types = {}, {}
    for k in range(1, N + 1):
        t, n = defaultdict(float), defaultdict(int)
        for g, c in grams[k].items():
            t[g[:-1]] += c
            n[g[:-1]] += 1
        tot[k], types[k] = t, n

    def p(h, w, k=N):
        if k == 0:
            return 1.0 / V
        ctx = tuple(h[len(h) - (k - 1):]) if k > 1 else ()
        lower = p(h, w, k - 1)
        total = tot[k].get(ctx, 0)
        if len(ctx) < k - 1 or total == 0:
            return lower
        return max(grams[k].get(ctx + (w,), 0) - D, 0) / total + D * types[k][ctx] / total * lower
    return p


@pytest.fixture(scope="module")
def streams():
    g = torch.Generator().manual_seed(0)
    V = 12
    base = torch.randint(0, V, (40,), generator=g)  # repeated, so the higher orders matter
    train = torch.cat([base, base[:25], torch.randint(0, V, (300,), generator=g), base]).tolist()
    test = torch.cat([base[5:30], torch.randint(0, V, (60,), generator=g)]).tolist()
    return V, train, test


def test_agrees_with_the_naive_reference(streams):
    V, train, test = streams
    N = 4
    lm = KneserNey.fit(train, V, N, discount=0.75)
    ref = naive_kn(train, V, N, 0.75)
    p = lm.prob(lm.stream_states(torch.tensor(test)), torch.tensor(test[1:]))
    want = torch.tensor([ref(test[max(0, t - N + 2):t + 1], test[t + 1]) for t in range(len(test) - 1)],
                        dtype=torch.float64)
    assert torch.allclose(p, want, atol=1e-12)


@pytest.mark.parametrize("discount", [0.75, None])  # plain KN, and modified KN's three discounts
def test_distributions_sum_to_one_and_agree_with_prob(streams, discount):
    V, train, test = streams
    lm = KneserNey.fit(train, V, 4, discount=discount)
    st = lm.stream_states(torch.tensor(test))
    d = lm.dist(st, torch.float64)
    assert torch.allclose(d.sum(1), torch.ones(d.shape[0], dtype=torch.float64), atol=1e-12)
    assert torch.allclose(d.gather(1, torch.tensor(test[1:]).unsqueeze(1)).squeeze(1),
                          lm.prob(st, torch.tensor(test[1:])), atol=1e-12)
    assert torch.allclose(d, lm.dist_slow(st), atol=1e-12)


def test_histories_give_the_stream_states_and_padding_is_no_token(streams):
    V, train, test = streams
    N = 4
    lm = KneserNey.fit(train, V, N)
    st = lm.stream_states(torch.tensor(test))
    hist = torch.tensor([test[t - N + 2:t + 1] for t in range(N, len(test) - 1)])
    assert torch.equal(lm.states(hist), st[N:])
    short = torch.tensor([[test[0]]])  # one token of history, padded in front with -1 (none)
    padded = torch.tensor([[-1, -1, test[0]]])
    assert torch.equal(lm.states(padded), lm.states(short))
    assert torch.equal(lm.states(short)[0], st[0])


def test_state_dict_round_trip_is_weights_only(streams):
    V, train, test = streams
    lm = KneserNey.fit(train, V, 5)
    buf = io.BytesIO()
    torch.save(lm.state_dict(), buf)
    buf.seek(0)
    back = KneserNey.from_state_dict(torch.load(buf, weights_only=True))
    st = lm.stream_states(torch.tensor(test))
    assert torch.equal(back.stream_states(torch.tensor(test)), st)
    assert torch.allclose(back.dist(st, torch.float64), lm.dist(st, torch.float64), atol=1e-6)


def _saved(state: dict) -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def _same_tables(a: KneserNey, b: KneserNey) -> bool:
    return all(torch.equal(x, y) for k in range(1, a.order + 1)
               for x, y in ((a.keys[k], b.keys[k]), (a.counts[k], b.counts[k]), (a.total[k], b.total[k]),
                            (a.gamma[k], b.gamma[k]))) and \
        all(torch.equal(x, y) for x, y in zip(a.ctx_keys[1:], b.ctx_keys[1:]))


def test_the_stored_tables_are_packed_losslessly_and_unpacked_ones_still_load(streams):
    V, train, _ = streams
    lm = KneserNey.fit(train + [0] * 400, V, 5)  # counts past 255: the run of zeros needs int16
    packed = lm.state_dict()
    assert packed["packed"] and {k.dtype for k in packed["keys"] + packed["ctx_keys"]} == {torch.int32}
    assert {c.dtype for c in packed["counts"]} <= {torch.uint8, torch.int16} and \
        max(int(c.max()) for c in packed["counts"]) > 255
    back = KneserNey.from_state_dict(torch.load(io.BytesIO(_saved(packed)), weights_only=True))
    assert _same_tables(back, lm)
    # the form lyricgen wrote before packing: int64 keys, float32 counts, no "packed"
    old = {"order": lm.order, "vocab_size": lm.V, "ctx_keys": list(lm.ctx_keys[1:]), "keys": list(lm.keys[1:]),
           "counts": [c.float() for c in lm.counts[1:]], "discounts": list(lm.discounts[1:])}
    assert _same_tables(KneserNey.from_state_dict(torch.load(io.BytesIO(_saved(old)), weights_only=True)), lm)
    assert len(_saved(packed)) < 0.6 * len(_saved(old))


def test_keys_too_far_apart_for_int32_stay_int64(streams):
    V, train, test = streams
    wide = KneserNey.fit(train, V, 4).widen(2 ** 40)  # key = context id * 2^40 + token
    packed = wide.state_dict()
    assert torch.int64 in {k.dtype for k in packed["keys"]}
    back = KneserNey.from_state_dict(packed)
    assert _same_tables(back, wide)
    st = wide.stream_states(torch.tensor(test))
    assert torch.equal(back.prob(st, torch.tensor(test[1:])), wide.prob(st, torch.tensor(test[1:])))
