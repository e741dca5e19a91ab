"""A run directory's files, named once: what training writes, resume continues, --force deletes,
`lyricgen plot` redraws and --checkpoint loads by default. On the lowest floor (it imports nothing),
so config.py's defaults and training/ both read it; no torch, so `lyricgen plot` stays light.

    files = RunFiles("runs/jay")
    files.best          # runs/jay/best.pt

"""
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DIR = Path("checkpoints")  # --out when neither --out nor --resume names one
LAST = "last.pt"  # the last completed step: what --resume continues
BEST = "best.pt"  # the model of the best validation loss: what generation loads
METRICS = "metrics.csv"  # one row per validation
PLOT = "metrics.png"  # drawn from metrics.csv


@dataclass(frozen=True)
class RunFiles:
    dir: Path

    def __post_init__(self):
        object.__setattr__(self, "dir", Path(self.dir))

    @property
    def last(self) -> Path:
        return self.dir / LAST

    @property
    def best(self) -> Path:
        return self.dir / BEST

    @property
    def metrics(self) -> Path:
        return self.dir / METRICS

    @property
    def plot(self) -> Path:
        return self.dir / PLOT

    def all(self) -> tuple[Path, ...]:
        """Every file a run writes (--force deletes them all)."""
        return self.best, self.last, self.metrics, self.plot
