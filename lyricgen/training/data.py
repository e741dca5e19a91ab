"""The data a run trains and validates on: the training stream cut into next-word windows, and the
validation text.

The training stream is every lyric line's token ids followed by the line-break id, with one extra
line break in front as the context of the very first token. WindowDataset cuts that stream into
non-overlapping windows of `seq_len` inputs; window i predicts stream[i*T+1 : i*T+T+1], so every
training token is the target of exactly one window (the last window is padded with IGNORE targets).
The windows are two precomputed (N, T) tensors, so a batch is one index_select, not a Python loop.
"""
import math
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import LyricgenError
from ..scoring.score import Text
from ..text.corpus import copied_share
from ..text.tokenizer import tokenize_cached
from ..text.vocab import Vocab

IGNORE = -100  # cross_entropy's ignore_index: padding targets that no token stands behind


class WindowDataset(torch.utils.data.Dataset):
    """Non-overlapping next-token windows over a token stream. Item i is (inputs, targets), each (T,)."""

    def __init__(self, stream: torch.Tensor, seq_len: int):
        if seq_len < 1:
            raise ValueError("seq_len must be positive")
        if stream.numel() < seq_len + 1:
            raise LyricgenError(
                f"corpus too short: the training part has {stream.numel()} tokens, fewer than one window "
                f"of {seq_len + 1} (--seq-len + 1); use a longer corpus or a smaller --seq-len"
            )
        self.stream = stream  # (N*T+1,) the token ids the windows are cut from
        n = math.ceil((stream.numel() - 1) / seq_len)
        # int32: half the memory of int64 on a large corpus; the loss takes its targets as int64
        inputs = torch.zeros(n * seq_len, dtype=torch.int32)
        targets = torch.full((n * seq_len,), IGNORE, dtype=torch.int32)
        inputs[: stream.numel() - 1] = stream[:-1]
        targets[: stream.numel() - 1] = stream[1:]
        self.inputs = inputs.view(n, seq_len)  # (N, T)
        self.targets = targets.view(n, seq_len)  # (N, T)
        self.seq_len = seq_len

    def __len__(self) -> int:
        return self.inputs.shape[0]

    def __getitem__(self, i):
        return self.inputs[i], self.targets[i]

    def get_batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A whole batch in one indexing operation: (B, T) inputs and targets."""
        return self.inputs[indices], self.targets[indices]

    def to(self, device) -> "WindowDataset":
        """Move the (small) window tensors to the training device once, instead of every batch."""
        self.inputs = self.inputs.to(device)
        self.targets = self.targets.to(device)
        return self


def epoch_order(num_windows: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffled window order of one epoch: a pure function of (seed, epoch), so resume is exact."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(num_windows, generator=g)


def num_batches(num_windows: int, batch_size: int) -> int:
    return math.ceil(num_windows / batch_size)


class Batches:
    """The steps of every epoch: `size` windows a step (all ranks' together) in the epoch's order
    (epoch_order), so an epoch has `per_epoch` steps, its last one possibly short."""

    def __init__(self, windows: WindowDataset, size: int, seed: int):
        self.windows, self.size, self.seed = windows, size, seed
        self.per_epoch = num_batches(len(windows), size)
        self._order = (None, None)  # (epoch, its window order): drawn once an epoch

    def window(self, epoch: int, b: int) -> torch.Tensor:
        """The window indices of step b of `epoch`, the same on every rank."""
        if self._order[0] != epoch:
            order = epoch_order(len(self.windows), self.seed, epoch).to(self.windows.targets.device)
            self._order = (epoch, order)
        return self._order[1][b * self.size:(b + 1) * self.size]


@dataclass
class Prepared:
    """Everything training needs from a corpus: vocabulary, training windows, validation text."""
    vocab: Vocab
    train: WindowDataset
    train_chars: int  # characters of the training text (line breaks counted): bits per character
    val: Text
    val_seen_share: float  # share of validation lines that also occur in the training part

    @property
    def train_chars_per_token(self) -> float:
        return self.train_chars / max(self.train.stream.numel() - 1, 1)


def prepare(train_lines: list[str], val_lines: list[str], min_freq: int, seq_len: int, vocab: Vocab | None = None,
            use_cache: bool = True, workers: int = 1, progress=None, unit: str = "word") -> Prepared:
    """Tokenise (over `workers` processes; progress(lines done)), build the vocabulary of `unit`s
    (or reuse one: resume, fine-tuning), cut the training windows. Token streams stay compact int32 arrays."""
    train = tokenize_cached(train_lines, use_cache, workers, progress)
    val = tokenize_cached(val_lines, use_cache)
    if vocab is None:
        vocab = Vocab.build_stream(train, min_freq=min_freq, unit=unit)
    train_ids, _ = vocab.encode_stream(train)
    stream = torch.from_numpy(np.concatenate([[vocab.line_break_id], train_ids]).astype(np.int32))
    val_ids, val_unk_chars = vocab.encode_stream(val)
    return Prepared(vocab=vocab, train=WindowDataset(stream, seq_len), train_chars=train.chars,
                    val=Text(val_ids.tolist(), val.chars, val_unk_chars),
                    val_seen_share=copied_share(train_lines, val_lines))
