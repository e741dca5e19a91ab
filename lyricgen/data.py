"""Corpus loading and validation, the contiguous train/validation split, next-word windows.

The training stream is every lyric line's token ids followed by the line-break id, with one extra
line break in front as the context of the very first token. WindowDataset cuts that stream into
non-overlapping windows of `seq_len` inputs; window i predicts stream[i*T+1 : i*T+T+1], so every
training token is the target of exactly one window (the last window is padded with IGNORE targets).
The windows are two precomputed (N, T) tensors, so a batch is one index_select, not a Python loop.
"""
import math
from pathlib import Path

import torch

from .errors import LyricgenError

IGNORE = -100  # cross_entropy's ignore_index: padding targets that no token stands behind


def read_corpus(path, encoding: str = "utf-8") -> list[str]:
    """Lyric lines of a text file, one per line; refuses anything that is not usable text."""
    return read_corpus_with_digest(path, encoding)[0]


def read_corpus_with_digest(path, encoding: str = "utf-8") -> tuple[list[str], str]:
    """read_corpus, plus the sha256 of the file's bytes (read once), which a checkpoint records."""
    import hashlib

    path = Path(path)
    if not path.exists():
        raise LyricgenError(f"corpus not found: {path}")
    if path.is_dir():
        raise LyricgenError(f"corpus is a directory, not a file: {path}")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise LyricgenError(f"cannot read corpus {path}: {e.strerror or e}") from None
    return decode_lines(data, str(path), encoding), hashlib.sha256(data).hexdigest()


def decode_lines(data: bytes, name: str, encoding: str = "utf-8") -> list[str]:
    """Lines of `data`; a UTF-8 byte-order mark is dropped, CRLF and CR endings become LF."""
    nul = data.find(b"\x00")
    if nul >= 0 and not encoding.lower().replace("-", "").replace("_", "").startswith(("utf16", "utf32")):
        raise LyricgenError(f"{name} looks binary (NUL byte at offset {nul}); lyrics must be a text file")
    codec = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
    try:
        text = data.decode(codec)
    except LookupError:
        raise LyricgenError(f"unknown encoding: {encoding}") from None
    except UnicodeDecodeError as e:
        hint = " (if it is GBK/GB18030, pass --encoding gb18030)" if codec == "utf-8-sig" else ""
        raise LyricgenError(f"{name} is not valid {encoding}: cannot decode byte offset {e.start}{hint}") from None
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last line, it does not start a new one
    if not any(line.strip() for line in lines):
        raise LyricgenError(f"{name} holds no lyrics (it is empty or whitespace only)")
    return lines


def split_lines(lines: list[str], val_fraction: float) -> tuple[list[str], list[str]]:
    """First (1 - val_fraction) of the lines for training, the contiguous rest for validation.

    Contiguous, not random: choruses repeat inside a song, so a random split would leak them.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise LyricgenError(f"validation fraction must be in [0, 1), got {val_fraction}")
    n_val = int(round(len(lines) * val_fraction))
    if val_fraction > 0 and n_val == 0 and len(lines) >= 2:
        n_val = 1
    n_train = len(lines) - n_val
    if n_train == 0 or not any(line.strip() for line in lines[:n_train]):
        raise LyricgenError("the training part of the corpus holds no lyrics; use a longer corpus")
    return lines[:n_train], lines[n_train:]


def copied_share(train_lines: list[str], val_lines: list[str]) -> float:
    """Share of non-empty validation lines that also occur in the training part."""
    from .tokenizer import normalize_line  # the same notion of "the same line" as originality.py

    seen = {normalize_line(line) for line in train_lines}
    val = [x for x in (normalize_line(line) for line in val_lines) if x]
    return sum(line in seen for line in val) / len(val) if val else 0.0


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
        n = math.ceil((stream.numel() - 1) / seq_len)
        inputs = torch.zeros(n * seq_len, dtype=torch.long)
        targets = torch.full((n * seq_len,), IGNORE, dtype=torch.long)
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


class Prepared:
    """Everything training needs from a corpus: vocabulary, training windows, validation ids."""

    def __init__(self, vocab, train: WindowDataset, val_ids: list[int], val_chars: int,
                 val_unk_chars: int, unk_prob: float, val_seen_share: float, train_lines: list[str],
                 repeat_alpha: list[float]):
        self.vocab = vocab
        self.train = train
        self.val_ids = val_ids
        self.val_chars = val_chars
        self.val_unk_chars = val_unk_chars
        self.unk_prob = unk_prob
        self.val_seen_share = val_seen_share
        self.train_lines = train_lines
        self.repeat_alpha = repeat_alpha


def prepare(lines: list[str], val_fraction: float, min_freq: int, seq_len: int, vocab=None,
            use_cache: bool = True) -> Prepared:
    """Split, tokenise, build (or reuse, on resume) the vocabulary, and cut the training windows."""
    from .evaluate import count_chars, good_turing_unk_prob
    from .repeat import calibrate
    from .tokenizer import tokenize_lines_cached
    from .vocab import Vocab

    train_lines, val_lines = split_lines(lines, val_fraction)
    train_tokens = tokenize_lines_cached(train_lines, use_cache)
    val_tokens = tokenize_lines_cached(val_lines, use_cache)
    if vocab is None:
        vocab = Vocab.build(train_tokens, min_freq=min_freq)
    train_ids, _ = vocab.encode_lines(train_tokens)
    stream = torch.tensor([vocab.line_break_id] + train_ids, dtype=torch.long)
    val_ids, val_unk_chars = vocab.encode_lines(val_tokens)
    unk_prob = good_turing_unk_prob(vocab.counts, vocab.tokens, len(train_ids))
    return Prepared(
        vocab=vocab, train=WindowDataset(stream, seq_len), val_ids=val_ids,
        val_chars=count_chars(val_tokens), val_unk_chars=val_unk_chars, unk_prob=unk_prob,
        val_seen_share=copied_share(train_lines, val_lines), train_lines=train_lines,
        repeat_alpha=calibrate(stream.tolist()),
    )
