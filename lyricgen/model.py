"""Embedding -> RNN/GRU/LSTM -> Linear language model. Only computes: no file I/O, no printing.

Its shape is a ModelConfig (config.py), stored in every checkpoint.
"""
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
        weight = self.embedding.weight
        p = self.config.embed_dropout
        if self.training and p > 0:
            keep = torch.empty(weight.shape[0], 1, device=weight.device, dtype=weight.dtype)
            weight = weight * keep.bernoulli_(1 - p).div_(1 - p)  # (V, E): whole words dropped
        return F.embedding(ids, weight)

    def forward(self, ids: torch.Tensor, hidden=None):
        x = self.drop(self.embed(ids))  # (B, T, E)
        out, hidden = self.rnn(x, hidden)  # (B, T, H)
        out = self.drop(out)
        if self.proj is not None:
            out = self.proj(out)  # (B, T, E)
        return self.decoder(out), hidden  # (B, T, V)


def detach_hidden(hidden):
    """Cut the graph behind a carried hidden state (a tensor, or an LSTM's (h, c) pair)."""
    if hidden is None:
        return None
    if isinstance(hidden, tuple):
        return tuple(h.detach() for h in hidden)
    return hidden.detach()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def macs_per_token(config: ModelConfig) -> int:
    """Multiply-accumulates of one forward step per token: the recurrent layers and the output layer
    (the embedding lookup is free). Training costs about 3x this (forward and backward)."""
    recurrent = 0
    for layer in range(config.num_layers):
        inputs = config.embed_dim if layer == 0 else config.hidden_size
        recurrent += GATES[config.cell] * (inputs + config.hidden_size) * config.hidden_size
    out_dim = config.hidden_size
    projection = 0
    if config.tie_weights and config.hidden_size != config.embed_dim:
        projection, out_dim = config.hidden_size * config.embed_dim, config.embed_dim
    return recurrent + projection + out_dim * config.vocab_size
