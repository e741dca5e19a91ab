"""The counters of a training run: what a checkpoint must carry for resume to be exact."""
import math
from dataclasses import asdict, dataclass, field, fields


@dataclass
class RunState:
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
