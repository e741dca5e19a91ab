"""One self-describing checkpoint file: atomic save, safe and validated load.

The file is a dict of plain containers and tensors (no pickled classes), so it always loads with
torch.load(weights_only=True); a file crafted to run code on unpickling is refused by that loader.
Saving writes a temporary file in the same directory, fsyncs it, renames it over the target and
fsyncs the directory: a crash, a full disk or a kill at any moment leaves the previous file intact.
"""
import os
import tempfile
from pathlib import Path

import torch

from .errors import LyricgenError
from .model import LyricsRNN, ModelConfig
from .vocab import Vocab

FORMAT = "lyricgen-checkpoint"
FORMAT_VERSION = 1
REQUIRED_KEYS = ("format", "format_version", "model_config", "tokenizer", "vocab", "model")


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # some platforms cannot open directories; the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temp_prefix(path: Path) -> str:
    return f".{path.name}.tmp-"


def save_checkpoint(ckpt: dict, path) -> None:
    """Atomically write `ckpt` to `path`; any failure leaves the old file as it was."""
    path = Path(path)
    directory = path.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob(temp_prefix(path) + "*"):  # left by a killed save
            stale.unlink(missing_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), dir=directory)
    except OSError as e:
        raise LyricgenError(f"cannot save checkpoint {path}: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(ckpt, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise LyricgenError(f"cannot save checkpoint {path}: {e.strerror or e}; the previous file is unchanged") from None
        raise
    _fsync_dir(directory)


def load_checkpoint(path) -> dict:
    """Read and validate a checkpoint; every problem becomes one LyricgenError line."""
    path = Path(path)
    if not path.exists():
        raise LyricgenError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise LyricgenError(f"checkpoint is a directory, not a file: {path}")
    if path.stat().st_size == 0:
        raise LyricgenError(f"checkpoint {path} is empty")
    try:
        # mmap: generation touches the weights only, not the optimizer state beside them
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:  # a truncated zip, random bytes, a pickle with forbidden globals...
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "weights_only" in str(e) or "Unsupported global" in str(e):
            reason = "it contains objects other than tensors and plain containers, refused for safety"
        raise LyricgenError(f"{path} is not a readable lyricgen checkpoint: {reason[:200]}") from None
    validate(ckpt, path)
    return ckpt


def validate(ckpt, path) -> None:
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise LyricgenError(f"{path} is not a lyricgen checkpoint (wrong format marker)")
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise LyricgenError(f"checkpoint {path} is missing {', '.join(missing)}")
    version = ckpt["format_version"]
    if not isinstance(version, int) or version < 1:
        raise LyricgenError(f"checkpoint {path} has an invalid format version {version!r}")
    if version > FORMAT_VERSION:
        raise LyricgenError(
            f"checkpoint {path} has format version {version}, newer than this lyricgen reads ({FORMAT_VERSION}); upgrade lyricgen"
        )
    try:
        config = ModelConfig(**ckpt["model_config"])
        vocab = Vocab.from_dict(ckpt["vocab"])
    except (TypeError, ValueError, KeyError) as e:
        raise LyricgenError(f"checkpoint {path} has an invalid model config or vocabulary: {e}") from None
    weights = ckpt["model"]
    if not isinstance(weights, dict) or not isinstance(weights.get("embedding.weight"), torch.Tensor):
        raise LyricgenError(f"checkpoint {path} has no model weights")
    rows = weights["embedding.weight"].shape[0]
    if not (len(vocab) == config.vocab_size == rows):
        raise LyricgenError(
            f"checkpoint {path} is inconsistent: vocabulary has {len(vocab)} entries, config says "
            f"{config.vocab_size}, weights have {rows} rows"
        )
    for name, tensor in weights.items():
        if not isinstance(tensor, torch.Tensor) or not torch.isfinite(tensor).all():
            raise LyricgenError(f"checkpoint {path} has non-finite values in weight {name}")


def model_from_checkpoint(ckpt: dict, path="checkpoint") -> tuple[LyricsRNN, Vocab]:
    """Rebuild the model and vocabulary a (validated) checkpoint describes."""
    model = LyricsRNN(ModelConfig(**ckpt["model_config"]))
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise LyricgenError(f"checkpoint {path} weights do not match its config: {' '.join(first[:2])[:300]}") from None
    return model, Vocab.from_dict(ckpt["vocab"])

