"""training/plot.py: metrics.png after training and `lyricgen plot RUN_DIR`; without matplotlib,
training says so once and still succeeds."""
import builtins
import csv
import math

from conftest import TINY_CORPUS, TINY_TRAIN, one_error_line

PNG = b"\x89PNG\r\n\x1a\n"


def _train(cli, out):
    return cli("train", "--corpus", TINY_CORPUS, "--out", out, "--epochs", "2", *[a for a in TINY_TRAIN if a != "--quiet"])


def test_training_draws_the_plot_and_plot_redraws_it(cli, tmp_path):
    out = tmp_path / "run"
    rc, _, err = _train(cli, out)
    assert rc == 0, err
    png = out / "metrics.png"
    assert png.read_bytes().startswith(PNG) and png.stat().st_size > 10_000
    assert "metrics.png" in err.splitlines()[-1]  # named with the run's files
    png.unlink()
    rc, stdout, err = cli("plot", out)
    assert rc == 0 and stdout.strip() == str(png) and png.read_bytes().startswith(PNG)
    with open(out / "metrics.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for r in rows:  # bits per character of the training loss: loss / ln 2 / characters per token
        assert 0 < float(r["train_bpc"]) and math.isclose(float(r["train_bpc"]) * math.log(2) / float(r["train_loss"]),
                                                          float(rows[0]["train_bpc"]) * math.log(2) / float(rows[0]["train_loss"]),
                                                          rel_tol=1e-2)


def test_without_matplotlib_training_says_so_once(cli, tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.split(".")[0] == "matplotlib":
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    out = tmp_path / "run"
    rc, _, err = _train(cli, out)
    assert rc == 0, err
    notes = [line for line in err.splitlines() if line.startswith("lyricgen: note")]
    assert len(notes) == 1 and "lyricgen[plot]" in notes[0]
    assert not (out / "metrics.png").exists() and (out / "best.pt").is_file()
    rc, _, err = cli("plot", out)
    assert rc != 0 and "lyricgen[plot]" in one_error_line(err)


def test_plot_of_a_directory_without_metrics_is_one_line(cli, tmp_path):
    rc, _, err = cli("plot", tmp_path)
    assert rc != 0 and "metrics.csv" in one_error_line(err)
