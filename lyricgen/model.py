"""Embedding -> RNN/GRU/LSTM -> Linear language model. Only computes: no file I/O, no printing."""
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


@dataclass
class ModelConfig:
    vocab_size: int
    # defaults: the best held-out bpc per CPU-minute we measured (docs/tuning.md)
    cell: str = "lstm"
    embed_dim: int = 256
    hidden_size: int = 512
    num_layers: int = 1
    dropout: float = 0.6  # on the embeddings' outputs, between layers and before the output layer
    embed_dropout: float = 0.3  # drops whole vocabulary entries (every occurrence in a batch)
    tie_weights: bool = True

    def __post_init__(self):
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}, got {self.cell!r}")
        for name in ("vocab_size", "embed_dim", "hidden_size", "num_layers"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        for name in ("dropout", "embed_dropout"):
            if not 0.0 <= float(getattr(self, name)) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")

    def to_dict(self) -> dict:
        return asdict(self)


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
        self.rnn = CELLS[c.cell](
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
