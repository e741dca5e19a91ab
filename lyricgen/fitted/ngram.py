"""Interpolated Kneser-Ney n-gram language model over integer token ids, held in torch tensors.

The classic baseline, and the component the network is mixed with (mixture.py): counting
characters predicts held-out lyrics better than a network trained for minutes (docs/tuning.md), and
the mixture of the two beats both. Torch only, vectorised: fitting is a handful of torch.unique calls per order, so a
1.7M-token stream fits in seconds. The same object scores a stream (probability of each target) and
gives full next-token distributions for a batch of histories (generation, mixing with a network).

Model (Chen & Goodman 1999, "interpolated modified Kneser-Ney"):

    p_k(w | h) = (c_k(h w) - D_k(c_k(h w)))+ / c_k(h)  +  gamma_k(h) / c_k(h) * p_{k-1}(w | h')
    gamma_k(h) = D_k(1) N1(h .) + D_k(2) N2(h .) + D_k(3+) N3+(h .)
    p_0(w)     = 1 / V

h' is h without its oldest token. c_N is the raw count at the highest order; lower orders use
continuation counts (the number of distinct tokens seen before "h w"). A context never seen with a
successor (c_k(h) = 0) passes p_{k-1} through unchanged, so every distribution sums to one.
`discount=0.75` gives plain interpolated KN with one absolute discount for all counts; `None`
gives modified KN with three discounts per order estimated from the counts of counts.

Representation (everything a plain tensor, so it can live inside a weights_only checkpoint):
  * contexts of length j (1 <= j < N) form a trie grown to the LEFT: a context's id is its index
    in the sorted `ctx_keys[j]`, whose key is id(suffix of length j-1) * V + (its oldest token).
    Reading a history from its newest token backwards therefore finds the ids of all its suffixes
    with one searchsorted per order.
  * order k (context length k-1): sorted `keys[k]` = ctx_id * V + w, `counts[k]`, and per context
    `rowptr[k]` (CSR into keys), `total[k]` = c_k(h), `gamma[k]` = gamma_k(h).
"""
from __future__ import annotations

import torch

_I64 = torch.int64


def _discounts(counts: torch.Tensor, fixed: float | None) -> torch.Tensor:
    """(D1, D2, D3+) for one order from its counts of counts (Chen & Goodman's estimates)."""
    if fixed is not None:
        return torch.tensor([fixed, fixed, fixed], dtype=torch.float64)
    n = [int((counts == i).sum()) for i in (1, 2, 3, 4)]
    if min(n) == 0:  # too little data for the estimate: plain KN
        return torch.tensor([0.75, 0.75, 0.75], dtype=torch.float64)
    y = n[0] / (n[0] + 2 * n[1])
    d = [1 - 2 * y * n[1] / n[0], 2 - 3 * y * n[2] / n[1], 3 - 4 * y * n[3] / n[2]]
    return torch.tensor([min(max(x, 0.0), float(i + 1)) for i, x in enumerate(d)], dtype=torch.float64)


def _lookup(sorted_keys: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """Index of each query in sorted_keys, or -1 where absent."""
    if sorted_keys.numel() == 0:
        return torch.full_like(query, -1)
    pos = torch.searchsorted(sorted_keys, query).clamp(max=sorted_keys.numel() - 1)
    return torch.where(sorted_keys[pos] == query, pos, torch.full_like(pos, -1))


class KneserNey:
    def __init__(self, order: int, vocab_size: int, ctx_keys, keys, counts, discounts):
        N, V = int(order), int(vocab_size)
        self.order, self.V = N, V
        self._p1 = None  # context_free(), computed on first use
        self.ctx_keys = ctx_keys  # [None, length-1 keys, ..., length-(N-1) keys]
        self.keys, self.counts, self.discounts = keys, counts, discounts  # index k = 1..N (0 unused)
        self.rowptr, self.total, self.gamma = [None] * (N + 1), [None] * (N + 1), [None] * (N + 1)
        for k in range(1, N + 1):  # derived per-context tables
            n_ctx = 1 if k == 1 else ctx_keys[k - 1].numel()
            ctx = keys[k] // V
            self.rowptr[k] = torch.searchsorted(keys[k], torch.arange(n_ctx + 1, dtype=_I64) * V)
            self.total[k] = torch.zeros(n_ctx, dtype=torch.float64).index_add_(0, ctx, counts[k])
            dc = discounts[k][counts[k].long().clamp(max=3) - 1]
            self.gamma[k] = torch.zeros(n_ctx, dtype=torch.float64).index_add_(0, ctx, dc)

    # -- fitting ---------------------------------------------------------------------------------
    @classmethod
    def fit(cls, stream, vocab_size: int, order: int = 5, discount: float | None = None) -> KneserNey:
        """Fit on one token stream; stream[0] is context only (e.g. a line break), the rest are targets."""
        s = torch.as_tensor(stream, dtype=_I64)
        T, V, N = s.numel(), int(vocab_size), int(order)
        # ids of the j-gram ending at each position, j = 0..N-1 (-1 where the stream is too short);
        # only the latest is kept, so memory stays a few T-long arrays whatever the order
        prev = torch.zeros(T, dtype=_I64)
        ctx_keys = [None]
        for j in range(1, N):
            ok = (torch.arange(T) >= j - 1) & (prev >= 0)
            key = prev[ok] * V + torch.roll(s, j - 1)[ok]  # with s[t - j + 1]
            uniq, inv = torch.unique(key, return_inverse=True)
            del key
            prev = torch.full((T,), -1, dtype=_I64)
            prev[ok] = inv
            del ok, inv
            ctx_keys.append(uniq)
        # highest order: raw counts of (context = (N-1)-gram ending at t-1, token t), t >= 1
        ctx = prev[:-1]
        keys, counts = [None] * (N + 1), [None] * (N + 1)
        keys[N], c = torch.unique((ctx * V + s[1:])[ctx >= 0], return_counts=True)
        counts[N] = c.double()
        for k in range(N - 1, 0, -1):  # continuation counts from the distinct (k+1)-grams
            hi = keys[k + 1]
            hi_ctx, w = hi // V, hi % V
            parent = ctx_keys[k][hi_ctx] // V  # id of the context without its oldest token
            keys[k], c = torch.unique(parent * V + w, return_counts=True)
            counts[k] = c.double()
        discounts = [None] + [_discounts(counts[k], discount) for k in range(1, N + 1)]
        return cls(N, V, ctx_keys, keys, counts, discounts)

    def widen(self, vocab_size: int) -> KneserNey:
        """The same counts over a vocabulary whose first V ids are this one's and which has more
        (a base model's vocabulary grown for fine-tuning, vocab.py). Keys are re-encoded with the new
        size, which keeps their order; the new ids were never counted, so they get only the uniform
        floor's share (p_0 = 1 / vocab_size) and every distribution still sums to one. A history
        holding a new id is a context never seen, as for any unseen token."""
        W = int(vocab_size)
        if W < self.V:
            raise ValueError(f"cannot widen a vocabulary of {self.V} to {W}")

        def recode(key: torch.Tensor) -> torch.Tensor:
            return key // self.V * W + key % self.V

        return KneserNey(self.order, W, [None] + [recode(k) for k in self.ctx_keys[1:]],
                         [None] + [recode(k) for k in self.keys[1:]], self.counts, self.discounts)

    def followed_by(self, token: int) -> torch.Tensor:
        """(V,) bool: the tokens seen right before `token` in the fitted stream (the bigrams "x token")."""
        seen = torch.zeros(self.V, dtype=torch.bool)
        if self.order >= 2:
            bigrams = self.keys[2][self.keys[2] % self.V == token]
            seen[self.ctx_keys[1][bigrams // self.V] % self.V] = True
        return seen

    # -- contexts ---------------------------------------------------------------------------------
    def states(self, history: torch.Tensor) -> torch.Tensor:
        """(B, L) histories (newest token last; L may be 0; a negative id means no token, as in
        the padding of a short history) -> (B, N) context ids, column j = id of the length-j suffix
        (-1 if unseen or the history is shorter)."""
        B, L = history.shape
        out = torch.full((B, self.order), -1, dtype=_I64)
        out[:, 0] = 0
        cur = out[:, 0].clone()
        for j in range(1, self.order):
            if j > L:
                break
            tok = history[:, L - j]
            q = torch.where((cur >= 0) & (tok >= 0), cur * self.V + tok, torch.full_like(cur, -1))
            cur = torch.where(q >= 0, _lookup(self.ctx_keys[j], q), torch.full_like(cur, -1))
            out[:, j] = cur
        return out

    def stream_states(self, stream) -> torch.Tensor:
        """Context ids for predicting stream[1:], each from everything before it: (T-1, N)."""
        s = torch.as_tensor(stream, dtype=_I64)
        T = s.numel()
        out = torch.full((T - 1, self.order), -1, dtype=_I64)
        out[:, 0] = 0
        cur = torch.zeros(T - 1, dtype=_I64)
        t = torch.arange(T - 1)  # context ends at position t
        for j in range(1, self.order):
            src = t - j + 1
            ok = (src >= 0) & (cur >= 0)
            q = torch.where(ok, cur * self.V + s[src.clamp(min=0)], torch.full_like(cur, -1))
            cur = torch.where(ok, _lookup(self.ctx_keys[j], q), torch.full_like(cur, -1))
            out[:, j] = cur
        return out

    # -- probabilities ----------------------------------------------------------------------------
    def prob(self, states: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """p(target | context) for each row: (B,) float64."""
        p = torch.full(targets.shape, 1.0 / self.V, dtype=torch.float64)
        for k in range(1, self.order + 1):
            c = states[:, k - 1]
            ok = c >= 0
            cc = c.clamp(min=0)
            tot = torch.where(ok, self.total[k][cc], torch.zeros_like(p))
            ok = ok & (tot > 0)
            i = _lookup(self.keys[k], torch.where(ok, cc * self.V + targets, torch.full_like(c, -1)))
            n = torch.where(i >= 0, self.counts[k][i.clamp(min=0)], torch.zeros_like(p))
            d = torch.where(n > 0, self.discounts[k][(n.long().clamp(1, 3) - 1)], torch.zeros_like(p))
            safe = tot.clamp(min=1e-300)
            p = torch.where(ok, (n - d) / safe + self.gamma[k][cc] / safe * p, p)
        return p

    def dist(self, states: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
        """Full next-token distributions (B, V) for a batch of context states.

        The recursion unrolled: p(w) = sum_k m_k * (c_k(h_k w) - D)+ / c_k(h_k) + m_0 / V, where
        m_k is the product of the backoff weights gamma_j / c_j(h_j) of the orders above k (1 for an
        unseen context). The context-free part (order 1 and the uniform floor) is one precomputed
        vector; the orders above it add their few sparse entries with a single index_add_.
        """
        B, V, N = states.shape[0], self.V, self.order
        cs = states.clamp(min=0)
        tots, gs = [], []
        for k in range(1, N + 1):
            t = self.total[k][cs[:, k - 1]] * (states[:, k - 1] >= 0)
            tots.append(t)
            gs.append(torch.where(t > 0, self.gamma[k][cs[:, k - 1]] / t.clamp(min=1e-300), 1.0))
        tots = torch.stack([tots[0]] + tots, 1)  # column k: c_k(h_k), column 0 unused
        g = torch.stack(gs + [torch.ones(B, dtype=torch.float64)], 1)  # column k-1: order k; column N: 1
        # m[:, k] = prod_{i >= k} g[:, i] = product of the backoff weights of the orders above k
        m = torch.flip(torch.cumprod(torch.flip(g, [1]), 1), [1])
        p = (m[:, 1:2] * self.context_free().unsqueeze(0)).to(dtype)  # (B, V)
        rows_all, vals_all = [], []
        for k in range(2, N + 1):
            rows = (tots[:, k] > 0).nonzero().squeeze(1)
            if rows.numel() == 0:
                continue
            c = states[rows, k - 1]
            start, end = self.rowptr[k][c], self.rowptr[k][c + 1]
            lens = end - start
            r = torch.repeat_interleave(rows, lens)
            idx = torch.repeat_interleave(start - (torch.cumsum(lens, 0) - lens), lens) + torch.arange(int(lens.sum()))
            n = self.counts[k][idx]
            d = self.discounts[k][n.long().clamp(1, 3) - 1]
            rows_all.append(r * V + self.keys[k][idx] % V)
            vals_all.append((n - d) / tots[r, k] * m[r, k])
        if rows_all:
            p.view(-1).index_add_(0, torch.cat(rows_all), torch.cat(vals_all).to(dtype))
        return p

    def context_free(self) -> torch.Tensor:
        """p_1(w): the order-1 (continuation-count) distribution interpolated with the uniform one."""
        if self._p1 is None:
            self._p1 = self.dist_slow(torch.zeros(1, self.order, dtype=_I64).fill_(-1).index_fill_(
                1, torch.tensor([0]), 0))[0]
        return self._p1

    def dist_slow(self, states: torch.Tensor) -> torch.Tensor:
        """Reference implementation of dist (order by order, dense); float64."""
        B = states.shape[0]
        p = torch.full((B, self.V), 1.0 / self.V, dtype=torch.float64)
        for k in range(1, self.order + 1):
            c = states[:, k - 1]
            cc = c.clamp(min=0)
            tot = torch.where(c >= 0, self.total[k][cc], torch.zeros(B, dtype=torch.float64))
            rows = (tot > 0).nonzero().squeeze(1)
            if rows.numel() == 0:
                continue
            start, end = self.rowptr[k][cc[rows]], self.rowptr[k][cc[rows] + 1]
            lens = end - start
            r = torch.repeat_interleave(rows, lens)
            offs = torch.arange(int(lens.sum())) - torch.repeat_interleave(torch.cumsum(lens, 0) - lens, lens)
            idx = torch.repeat_interleave(start, lens) + offs
            n = self.counts[k][idx]
            d = self.discounts[k][n.long().clamp(1, 3) - 1]
            new = p[rows] * (self.gamma[k][cc[rows]] / tot[rows]).unsqueeze(1)
            row_in = torch.repeat_interleave(torch.arange(rows.numel()), lens)
            new.index_put_((row_in, self.keys[k][idx] % self.V), (n - d) / tot[r], accumulate=True)
            p[rows] = new
        return p

    # -- storage ----------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Tensors and plain containers only (torch.load(weights_only=True) reads it back).

        Packed, losslessly: the sorted keys as their differences (int32 where they fit, as they do
        but for vocabularies past 2^31 / contexts), the counts (whole numbers) in the narrowest
        integer type that holds them. The tables of a 7-gram of a few million characters were most
        of a checkpoint as int64 keys and float32 counts; packed they take about half
        (docs/tuning.md). `from_state_dict` reads both this and the unpacked form older
        checkpoints hold."""
        return {"order": self.order, "vocab_size": self.V, "packed": True,
                "ctx_keys": [_pack_keys(k) for k in self.ctx_keys[1:]],
                "keys": [_pack_keys(k) for k in self.keys[1:]], "counts": [_pack_counts(c) for c in self.counts[1:]],
                "discounts": list(self.discounts[1:])}

    @classmethod
    def from_state_dict(cls, d: dict) -> KneserNey:
        if d.get("packed"):
            ctx_keys = [torch.cumsum(k.long(), 0) for k in d["ctx_keys"]]
            keys = [torch.cumsum(k.long(), 0) for k in d["keys"]]
        else:  # as lyricgen wrote them before packing: int64 keys, float32 counts
            ctx_keys, keys = list(d["ctx_keys"]), list(d["keys"])
        return cls(int(d["order"]), int(d["vocab_size"]), [None] + ctx_keys, [None] + keys,
                   [None] + [c.double() for c in d["counts"]], [None] + [x.double() for x in d["discounts"]])


def _pack_keys(keys: torch.Tensor) -> torch.Tensor:
    """Sorted int64 keys as their differences (the first from 0): int32 when every one fits."""
    diffs = torch.diff(keys, prepend=keys.new_zeros(1))
    fits = diffs.numel() == 0 or int(diffs.max()) <= torch.iinfo(torch.int32).max
    return diffs.to(torch.int32) if fits else diffs


def _pack_counts(counts: torch.Tensor) -> torch.Tensor:
    """Whole-number counts (>= 1) in the narrowest of uint8, int16, int32 that holds the largest;
    float32 (as before) past int32, where no count of a real corpus goes."""
    top = int(counts.max()) if counts.numel() else 0
    for dtype in (torch.uint8, torch.int16, torch.int32):
        if top <= torch.iinfo(dtype).max:
            return counts.to(dtype)
    return counts.float()
