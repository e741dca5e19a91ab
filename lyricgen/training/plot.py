"""A picture of training: metrics.png beside a run's metrics.csv.

Three panels over epochs: training and validation loss; bits per character (training, validation as
scored, and the network alone); the learning rate. matplotlib is an optional extra
(`pip install 'lyricgen[plot]'`); without it `plot_run` raises PlotUnavailable and training goes on.
"""
import csv
from pathlib import Path

from ..errors import LyricgenError
from ..runfiles import METRICS, RunFiles

INSTALL_HINT = "pip install 'lyricgen[plot]'"
LABELS = {"train_loss": "training", "val_loss": "validation", "train_bpc": "training",
          "val_bpc_open": "validation (as scored)", "val_bpc_open_rnn": "validation, network alone"}


class PlotUnavailable(LyricgenError):
    pass


def read_rows(run_dir: Path) -> list[dict]:
    path = RunFiles(run_dir).metrics
    if not path.is_file():
        raise LyricgenError(f"no {METRICS} in {run_dir}: is it a training run's directory?")
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise LyricgenError(f"{path} has no rows yet")
    return rows


def series(rows: list[dict], column: str) -> tuple[list[float], list[float]]:
    """(epochs, values) of a column, skipping rows without a value (no validation, older files)."""
    points = [(float(r["epoch"]), float(r[column])) for r in rows if r.get(column) not in (None, "")]
    return [p[0] for p in points], [p[1] for p in points]


def plot_run(run_dir) -> Path:
    """Draw metrics.png from the run's metrics.csv; returns its path (written atomically)."""
    try:
        import matplotlib
    except ImportError:
        raise PlotUnavailable(f"no plot drawn: matplotlib is not installed ({INSTALL_HINT})") from None
    matplotlib.use("Agg")  # files only, never a window
    import io

    import matplotlib.pyplot as plt

    from ..fileio import atomic_write

    rows = read_rows(run_dir)
    fig, (loss, bpc, lr) = plt.subplots(3, 1, figsize=(7, 8), sharex=True, height_ratios=(3, 3, 1.5))
    for ax, columns, label in ((loss, ("train_loss", "val_loss"), "loss (nats/token)"),
                               (bpc, ("train_bpc", "val_bpc_open", "val_bpc_open_rnn"), "bits per character")):
        for column in columns:
            x, y = series(rows, column)
            if x:
                ax.plot(x, y, marker="o" if len(x) < 30 else None, label=LABELS[column])
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    x, y = series(rows, "lr")
    lr.plot(x, y, drawstyle="steps-post")
    lr.set_ylabel("learning rate")
    lr.set_xlabel("epoch")
    lr.grid(alpha=0.3)
    fig.suptitle(f"{Path(run_dir).resolve().name}: {rows[-1]['step']} steps")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    path = RunFiles(run_dir).plot
    atomic_write(path, buf.getvalue(), "plot")
    return path
