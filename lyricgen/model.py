"""The language models: Embedding -> RNN/GRU/LSTM -> Linear, or a GPT-style transformer. Only
computes: no file I/O, no printing.

Its shape is a ModelConfig (config.py), stored in every checkpoint; build_model(config) makes the
one it describes. Both share one interface, `forward(ids (B, T), state=None) -> (logits (B, T, V),
state)`, where the state is what reading the next tokens needs: the RNN's hidden state, or the
transformer's cache of past keys and values. Either is a tensor or a tuple of tensors with the batch
in dim 1, so code that carries, detaches or selects rows of it (writing/predictor.py, scoring/score.py)
never asks which model it has.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import ModelConfig

RNN_CLASSES = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}
GATES = {"rnn": 1, "gru": 3, "lstm": 4}  # weight matrices per recurrent layer


class LyricsRNN(nn.Module):
    """forward(ids (B, T), hidden) -> (logits (B, T, V), hidden).

    With tie_weights the output layer shares the embedding matrix (Press & Wolf 2017); when
    hidden_size differs from embed_dim a linear projection maps the hidden state down first.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        c = config
        self.embedding = nn.Embedding(c.vocab_size, c.embed_dim)
        rnn_kwargs = {"nonlinearity": "tanh"} if c.cell == "rnn" else {}
        self.rnn = RNN_CLASSES[c.cell](
            c.embed_dim, c.hidden_size, num_layers=c.num_layers, batch_first=True,
            dropout=c.dropout if c.num_layers > 1 else 0.0, **rnn_kwargs,
        )
        self.drop = nn.Dropout(c.dropout)
        out_dim = c.hidden_size
        self.proj = None
        if c.tie_weights and c.hidden_size != c.embed_dim:
            self.proj = nn.Linear(c.hidden_size, c.embed_dim)
            out_dim = c.embed_dim
        self.decoder = nn.Linear(out_dim, c.vocab_size)
        if c.tie_weights:
            self.decoder.weight = self.embedding.weight
        self._init_weights()

    def _init_weights(self):
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return embed_dropped(self.embedding.weight, ids, self.config.embed_dropout, self.training)

    def forward(self, ids: torch.Tensor, hidden=None):
        x = self.drop(self.embed(ids))  # (B, T, E)
        out, hidden = self.rnn(x, hidden)  # (B, T, H)
        out = self.drop(out)
        if self.proj is not None:
            out = self.proj(out)  # (B, T, E)
        return self.decoder(out), hidden  # (B, T, V)


class LyricsTransformer(nn.Module):
    """forward(ids (B, T), cache) -> (logits (B, T, V), cache): a GPT-style decoder.

    Pre-norm blocks (RMSNorm, then causal multi-head self-attention, then a 4x GELU MLP, each added
    back to the residual stream), a final RMSNorm, and the output layer tied to the embedding as the
    RNN's is. embed_dim is the width and num_layers the number of blocks; dropout acts where the
    RNN's does (embeddings, between blocks: on each residual branch, before the output) and on the
    attention weights; embed_dropout drops whole vocabulary entries as in the RNN.

    Attention is a sliding window: each position sees the `attention_window` positions up to and
    including itself, in training as in generation. Positions are rotary (RoPE, Su et al. 2021), so
    attention depends only on the distance between two tokens, never on where the window started:
    a training window, a prompt and the thousandth step of a song all look alike.

    The cache is what the next tokens need to see: the keys and values of the last
    attention_window - 1 positions of every block, one tensor (2, B, heads, C, head_dim) per block,
    keys before rotation. It is a tuple of tensors with the batch in dim 1, as an LSTM's (h, c) pair
    is, so the Predictor selects its rows and scoring detaches it without knowing which model it has.
    Keys are stored unrotated and rotated by their place in the current window at every call, so the
    positions RoPE sees never exceed the window, however long the stream: stepping one token at a
    time gives the logits of a full forward pass over the same tokens. Training feeds independent
    windows (no cache), exactly as it does the RNN.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        c = config
        self.embedding = nn.Embedding(c.vocab_size, c.embed_dim)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.num_layers))
        self.norm = nn.RMSNorm(c.embed_dim, eps=1e-5)
        self.decoder = nn.Linear(c.embed_dim, c.vocab_size)
        if c.tie_weights:
            self.decoder.weight = self.embedding.weight
        self._init_weights()

    def _init_weights(self):
        """GPT-2's: N(0, 0.02) matrices, the projections back into the residual stream scaled down
        by sqrt(2 * blocks) so that the stream's variance does not grow with depth."""
        for name, p in self.named_parameters():
            if p.dim() == 2:
                residual = name.endswith(("attn.out.weight", "mlp.2.weight"))
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * self.config.num_layers) if residual else 0.02)
        nn.init.zeros_(self.decoder.bias)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return embed_dropped(self.embedding.weight, ids, self.config.embed_dropout, self.training)

    def forward(self, ids: torch.Tensor, cache=None):
        x = self.drop(self.embed(ids))  # (B, T, E)
        new_cache = []
        for i, block in enumerate(self.blocks):
            x, layer_cache = block(x, None if cache is None else cache[i])
            new_cache.append(layer_cache)
        return self.decoder(self.drop(self.norm(x))), tuple(new_cache)  # (B, T, V)


class Block(nn.Module):
    """x + attention(norm(x)), then x + mlp(norm(x)): pre-norm keeps the residual stream an identity
    path, which is what lets a deep stack train without warm-up tricks."""

    def __init__(self, c: ModelConfig):
        super().__init__()
        self.norm1 = nn.RMSNorm(c.embed_dim, eps=1e-5)
        self.attn = SlidingWindowAttention(c)
        self.norm2 = nn.RMSNorm(c.embed_dim, eps=1e-5)
        self.mlp = nn.Sequential(nn.Linear(c.embed_dim, 4 * c.embed_dim, bias=False), nn.GELU(),
                                 nn.Linear(4 * c.embed_dim, c.embed_dim, bias=False))
        self.drop = nn.Dropout(c.dropout)

    def forward(self, x: torch.Tensor, cache=None):
        a, cache = self.attn(self.norm1(x), cache)
        x = x + self.drop(a)
        return x + self.drop(self.mlp(self.norm2(x))), cache


class SlidingWindowAttention(nn.Module):
    """Causal multi-head self-attention over the last `attention_window` positions, with rotary
    positions and a cache of past keys and values (see LyricsTransformer)."""

    def __init__(self, c: ModelConfig):
        super().__init__()
        self.heads, self.window, self.dropout = c.num_heads, c.attention_window, c.dropout
        head_dim = c.embed_dim // c.num_heads
        self.qkv = nn.Linear(c.embed_dim, 3 * c.embed_dim, bias=False)
        self.out = nn.Linear(c.embed_dim, c.embed_dim, bias=False)
        # not saved: a function of the shape, so checkpoints hold weights only
        self.register_buffer("inv_freq", 10000.0 ** -(torch.arange(0, head_dim, 2).float() / head_dim),
                             persistent=False)

    def forward(self, x: torch.Tensor, cache=None):
        B, T, E = x.shape
        qkv = self.qkv(x).view(B, T, 3, self.heads, E // self.heads).permute(2, 0, 3, 1, 4)  # (3, B, H, T, D)
        q, kv = qkv[0], qkv[1:]
        if cache is not None:  # (2, B, H, C, D): the keys and values of the C positions before these
            kv = torch.cat([cache, kv], dim=3)  # (2, B, H, S, D): one copy of the cache per call
        k, v = kv[0], kv[1]
        S = k.shape[2]
        positions = torch.arange(S, device=x.device)
        q, rk = rotate(q, positions[S - T:], self.inv_freq), rotate(k, positions, self.inv_freq)
        # no cache and a window that covers the whole input: plain causal attention, the fast kernels'
        # case; otherwise the explicit band of what each query may see
        mask = None if S == T and T <= self.window else window_mask(T, S, self.window, x.device)
        y = F.scaled_dot_product_attention(q, rk, v, attn_mask=mask, is_causal=mask is None,
                                           dropout_p=self.dropout if self.training else 0.0)  # (B, H, T, D)
        keep = min(self.window - 1, S)  # what the next position can still see
        return self.out(y.transpose(1, 2).reshape(B, T, E)), kv[:, :, :, S - keep:]  # cache (2, B, H, keep, D)


def rotate(x: torch.Tensor, positions: torch.Tensor, inv_freq: torch.Tensor) -> torch.Tensor:
    """Rotary position embedding of x (..., S, D) at `positions` (S,): the two halves of each head
    rotated as pairs by angles position * inv_freq, so that a query at i and a key at j meet at an
    angle that depends on i - j alone (the GPT-NeoX layout of RoPE)."""
    angles = positions.float()[:, None] * inv_freq.float()[None, :]  # (S, D/2), in fp32 whatever the model's dtype
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def window_mask(T: int, S: int, window: int, device) -> torch.Tensor:
    """(T, S) True where query i (the last T of S positions) may attend key j: j <= i, i - j < window."""
    i = torch.arange(S - T, S, device=device)[:, None]
    j = torch.arange(S, device=device)[None, :]
    return (j <= i) & (j > i - window)


def build_model(config: ModelConfig) -> nn.Module:
    """The network `config` describes, freshly initialised (from the global torch RNG)."""
    return LyricsTransformer(config) if config.cell == "transformer" else LyricsRNN(config)


def embed_dropped(weight: torch.Tensor, ids: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """The embeddings of `ids`; in training, a share p of the vocabulary dropped (every occurrence)."""
    if training and p > 0:
        keep = torch.empty(weight.shape[0], 1, device=weight.device, dtype=weight.dtype)
        weight = weight * keep.bernoulli_(1 - p).div_(1 - p)  # (V, E): whole words dropped
    return F.embedding(ids, weight)


def detach_hidden(hidden):
    """Cut the graph behind a carried state (a tensor, an LSTM's (h, c) pair, a transformer's cache)."""
    if hidden is None:
        return None
    if isinstance(hidden, tuple):
        return tuple(h.detach() for h in hidden)
    return hidden.detach()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def macs_per_token(config: ModelConfig) -> int:
    """Multiply-accumulates of one forward step per token (the embedding lookup is free). Training
    costs about 3x this (forward and backward).

    RNNs: the recurrent layers and the output layer. The transformer: per block 12 E^2 (the query,
    key and value projections 3 E^2, the output projection E^2, the MLP 8 E^2) and 2 E per position
    attended (scores and the weighted sum) over a full window, the cost of a generation step; a
    training window shorter than attention_window attends to fewer, on average."""
    if config.cell == "transformer":
        E = config.embed_dim
        return config.num_layers * (12 * E * E + 2 * E * config.attention_window) + E * config.vocab_size
    recurrent = 0
    for layer in range(config.num_layers):
        inputs = config.embed_dim if layer == 0 else config.hidden_size
        recurrent += GATES[config.cell] * (inputs + config.hidden_size) * config.hidden_size
    out_dim = config.hidden_size
    projection = 0
    if config.tie_weights and config.hidden_size != config.embed_dim:
        projection, out_dim = config.hidden_size * config.embed_dim, config.embed_dim
    return recurrent + projection + out_dim * config.vocab_size
