"""The checkpoint file format: built, read and validated here and nowhere else.

A checkpoint is one self-describing file; generation needs it and nothing else. In memory it is a
`Checkpoint` of typed parts; on disk a dict of plain containers and tensors (no pickled classes),
so it always loads with torch.load(weights_only=True), and a file crafted to run code on unpickling
is refused by that loader. Saving is atomic (fileio.atomic_write).

    format, format_version, versions          what wrote it (lyricgen, torch, jieba)
    model_config, tokenizer, vocab, model     the network: its shape, tokenizer settings, ids, weights
    side_models                               what is fitted beside the network (fitted/)
    corpus                                    path, sha256, lines, encoding (resume checks it)
    training                                  config, state, optimizer, rng: only what resume needs;
                                              and, from torchrun runs only, world_size (processes;
                                              absent: 1) and rank_rngs (every rank's RNG state)

Format 1 (lyricgen 0.1) kept the side models and the training state at the top level, with a
ReduceLROnPlateau scheduler; `from_dict` converts it, so those files keep loading and resuming.
"""
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch

from ._version import __version__
from .config import ModelConfig, TokenizerConfig, TrainConfig
from .errors import LyricgenError
from .fileio import atomic_write
from .fitted import SideModels
from .text.corpus import CorpusInfo
from .text.vocab import Vocab

FORMAT = "lyricgen-checkpoint"
# 3: the n-gram tables are stored packed (fitted/ngram.py). A lyricgen that reads 2 and older would
# take packed keys for plain ones and write garbage without a word; the version makes it refuse.
FORMAT_VERSION = 3
REQUIRED_KEYS = ("format", "format_version", "model_config", "tokenizer", "vocab", "model")


@dataclass
class RunState:
    """The counters of a training run: what a checkpoint must carry for resume to be exact."""
    epoch: int = 0  # completed epochs
    batch_in_epoch: int = 0  # completed batches of the epoch in progress
    step: int = 0  # optimizer steps so far
    epoch_loss_sum: float = 0.0  # sum of token losses in the epoch in progress
    epoch_tokens: int = 0
    epoch_train_s: float = 0.0  # time spent in optimizer steps in the epoch in progress
    # best.pt holds the model of the best validation loss seen at any point (an epoch end, or the
    # validation that ends a time budget mid-epoch) ...
    best_loss: float = math.inf
    # ... while the learning-rate schedule and early stopping follow epoch ends only, so that a run
    # stopped mid-epoch and resumed takes the very decisions an uninterrupted one takes
    period_best: float = math.inf  # best validation loss at an epoch end
    period_ref: float = math.inf  # period_best when the last period ended
    period_start_step: int = 0
    bad_periods: int = 0  # periods in a row without a better validation loss: early stopping
    lr_bad_periods: int = 0  # the same, since the learning rate was last cut
    elapsed_s: float = 0.0  # training wall time over all invocations
    metrics: list = field(default_factory=list)  # one row per validation (metrics.csv)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RunState":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class TrainingState:
    """What resuming a run needs beyond the weights."""
    config: TrainConfig
    state: RunState
    optimizer: dict  # torch.optim.Optimizer.state_dict()
    rng: dict  # torch (and CUDA) RNG states (rank 0's in a data-parallel run)
    world_size: int = 1  # processes that trained the run; resume needs as many (the data order depends on it)
    rank_rngs: list | None = None  # with world_size > 1: every rank's RNG state, index = rank


@dataclass
class Checkpoint:
    model_config: ModelConfig
    tokenizer: TokenizerConfig
    vocab: Vocab
    weights: dict  # the model's state_dict, on the CPU
    side: SideModels = field(default_factory=SideModels)
    corpus: CorpusInfo | None = None
    training: TrainingState | None = None  # None in a file that can generate and evaluate only
    versions: dict = field(default_factory=dict)

    def build_model(self):
        """The network this checkpoint describes, with its weights."""
        from .model import build_model

        model = build_model(self.model_config)
        try:
            model.load_state_dict(self.weights)
        except RuntimeError as e:
            first = str(e).strip().splitlines()
            raise LyricgenError(f"checkpoint weights do not match its config: {' '.join(first[:2])[:300]}") from None
        return model

    def without_training(self) -> "Checkpoint":
        """A generation-only copy: no optimizer or RNG state."""
        return Checkpoint(self.model_config, self.tokenizer, self.vocab, self.weights, self.side, self.corpus, None,
                          self.versions)


def current_versions() -> dict:
    from .text.tokenizer import jieba_version

    return {"lyricgen": __version__, "torch": str(torch.__version__), "jieba": jieba_version()}


def to_dict(ckpt: Checkpoint) -> dict:
    d = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "versions": dict(ckpt.versions) or current_versions(),
        "model_config": ckpt.model_config.to_dict(),
        "tokenizer": ckpt.tokenizer.to_dict(),
        "vocab": ckpt.vocab.to_dict(),
        "model": {k: v.detach().cpu() for k, v in ckpt.weights.items()},
        "side_models": ckpt.side.to_dict(),
    }
    if ckpt.corpus is not None:
        d["corpus"] = ckpt.corpus.to_dict()
    if ckpt.training is not None:
        t = ckpt.training
        d["training"] = {"config": t.config.to_dict(), "state": t.state.to_dict(), "optimizer": t.optimizer,
                         "rng": t.rng}
        if t.world_size > 1:  # a one-process file stays as it always was
            d["training"].update(world_size=t.world_size, rank_rngs=list(t.rank_rngs))
    return d


class _WriteErrors:
    """The file torch.save writes to, remembering the first write that failed: torch's zip writer
    swallows that OSError (a full disk) and fails later with an unrelated RuntimeError."""

    def __init__(self, f):
        self.f, self.error = f, None

    def write(self, data):
        try:
            return self.f.write(data)
        except OSError as e:
            self.error = self.error or e
            raise

    def flush(self):
        self.f.flush()


def save_checkpoint(ckpt: Checkpoint, path) -> None:
    """Atomically write `ckpt` to `path`; any failure leaves the old file as it was."""
    d = to_dict(ckpt)

    def write(f):
        f = _WriteErrors(f)
        try:
            torch.save(d, f)
        except RuntimeError:
            if f.error is None:
                raise
            raise f.error from None  # atomic_write turns it into one error line

    atomic_write(path, write, "checkpoint")


def read_raw(path) -> dict:
    """The stored dict, read safely (weights_only) but not validated; every problem is one line."""
    path = Path(path)
    if not path.exists():
        raise LyricgenError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise LyricgenError(f"checkpoint is a directory, not a file: {path}")
    if path.stat().st_size == 0:
        raise LyricgenError(f"checkpoint {path} is empty")
    try:
        # mmap: generation touches the weights only, not the optimizer state beside them
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:  # a truncated zip, random bytes, a pickle with forbidden globals...
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "weights_only" in str(e) or "Unsupported global" in str(e):
            reason = "it contains objects other than tensors and plain containers, refused for safety"
        raise LyricgenError(f"{path} is not a readable lyricgen checkpoint: {reason[:200]}") from None


def load_checkpoint(path) -> Checkpoint:
    """Read and validate a checkpoint file."""
    return from_dict(read_raw(path), path)


def from_dict(d, path="checkpoint") -> Checkpoint:
    """Validate a stored dict (format 1, 2 or 3) and turn it into typed parts."""
    _check_header(d, path)
    if d["format_version"] == 1:
        d = _upgrade_v1(d)
    try:
        ckpt = Checkpoint(
            model_config=ModelConfig.from_dict(d["model_config"]),
            # no unit: from before "char"; no keep_debris: from before debris, trained on every line
            tokenizer=TokenizerConfig.from_dict({"unit": "word", "keep_debris": True, **d["tokenizer"]}),
            vocab=Vocab.from_dict(d["vocab"]),
            weights=d["model"],
            side=SideModels.from_dict(d.get("side_models") or {}),
            corpus=CorpusInfo.from_dict(d["corpus"]) if d.get("corpus") else None,
            training=_training(d["training"]) if d.get("training") else None,
            versions=dict(d.get("versions") or {}),
        )
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        raise LyricgenError(f"checkpoint {path} has an invalid model config or vocabulary: {e}") from None
    _check_weights(ckpt, path)
    return ckpt


def _training(t: dict) -> TrainingState:
    world_size = t.get("world_size", 1)
    rank_rngs = t.get("rank_rngs")
    if not isinstance(world_size, int) or isinstance(world_size, bool) or world_size < 1 or \
            (world_size > 1 and (not isinstance(rank_rngs, list) or len(rank_rngs) != world_size)):
        raise ValueError(f"training world size {world_size!r} without an RNG state for each rank")
    return TrainingState(TrainConfig.from_dict(t["config"]), RunState.from_dict(t["state"]), t["optimizer"], t["rng"],
                         world_size, rank_rngs)


def _check_header(d, path) -> None:
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise LyricgenError(f"{path} is not a lyricgen checkpoint (wrong format marker)")
    missing = [k for k in REQUIRED_KEYS if k not in d]
    if missing:
        raise LyricgenError(f"checkpoint {path} is missing {', '.join(missing)}")
    version = d["format_version"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise LyricgenError(f"checkpoint {path} has an invalid format version {version!r}")
    if version > FORMAT_VERSION:
        raise LyricgenError(f"checkpoint {path} has format version {version}, newer than this lyricgen reads "
                            f"({FORMAT_VERSION}); upgrade lyricgen")


def _check_weights(ckpt: Checkpoint, path) -> None:
    weights = ckpt.weights
    if not isinstance(weights, dict) or not isinstance(weights.get("embedding.weight"), torch.Tensor):
        raise LyricgenError(f"checkpoint {path} has no model weights")
    rows = weights["embedding.weight"].shape[0]
    if not (len(ckpt.vocab) == ckpt.model_config.vocab_size == rows):
        raise LyricgenError(f"checkpoint {path} is inconsistent: vocabulary has {len(ckpt.vocab)} entries, config "
                            f"says {ckpt.model_config.vocab_size}, weights have {rows} rows")
    for name, tensor in weights.items():
        if not isinstance(tensor, torch.Tensor) or not torch.isfinite(tensor).all():
            raise LyricgenError(f"checkpoint {path} has non-finite values in weight {name}")


def _upgrade_v1(d: dict) -> dict:
    """Format 1 -> 2: side models and training state move under their own keys; the plateau
    counters of ReduceLROnPlateau become the run state's own."""
    side = {"unk": {"prob": float(d.get("unk_prob", 0.0))}, "repeat": {"alpha": list(d.get("repeat_alpha") or [])}}
    if d.get("originality"):
        side["originality"] = d["originality"]
    new = {k: d[k] for k in (*REQUIRED_KEYS, "versions", "corpus") if k in d}
    new["side_models"] = side
    if all(k in d for k in ("train_config", "state", "optimizer", "rng")):
        state = dict(d["state"])
        state["period_best"] = state.pop("best_val_loss", float("inf"))
        state["best_loss"] = state.pop("best_saved_loss", state["period_best"])
        state["lr_bad_periods"] = int((d.get("scheduler") or {}).get("num_bad_epochs", 0))
        new["training"] = {"config": d["train_config"], "state": state, "optimizer": d["optimizer"], "rng": d["rng"]}
    return new
