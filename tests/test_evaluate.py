"""scoring/evaluate.py: evaluate_file scores a text file (or its held-out tail) with a checkpoint."""
import dataclasses
import json

import pytest
import torch

from conftest import TINY_CORPUS
from lyricgen.checkpoint import save_checkpoint
from lyricgen.errors import LyricgenError
from lyricgen.scoring.evaluate import evaluate_file
from lyricgen.scoring.score import Text, score_parts
from lyricgen.text.corpus import read_corpus
from lyricgen.text.tokenizer import tokenize_lines

KEYS = {"ppl", "bpc_open", "loss", "ppl_rnn", "bpc_open_rnn", "ppl_repeat", "bpc_open_repeat", "mixture",
        "repeat_model", "tokens", "chars", "unk", "unk_chars", "file"}


@pytest.fixture(scope="module")
def whole(tiny_run):
    return evaluate_file(tiny_run / "best.pt", TINY_CORPUS, device="cpu")


def test_the_file_is_scored_with_the_checkpoints_side_models(whole, tiny_ckpt):
    text = Text.encode(tiny_ckpt.vocab, tokenize_lines(read_corpus(TINY_CORPUS)))
    side = tiny_ckpt.side
    parts = score_parts(tiny_ckpt.build_model(), text, tiny_ckpt.vocab, side.unk, torch.device("cpu"), side.repeat,
                        side.mixture)
    result, network = parts["model"], parts["network"]
    assert whole.result == result and whole.network == network and whole.repeat == parts["repeat"]
    # the main figure is the mixture generation samples from; the repeat model is mixed into it
    assert whole.mixture is True and whole.result.nll < whole.network.nll
    assert whole.repeat_model is True and whole.repeat.nll != whole.result.nll
    d = whole.to_dict()
    assert set(d) == KEYS and json.loads(json.dumps(d)) == d
    assert (d["ppl"], d["bpc_open"], d["loss"]) == (result.ppl, result.bpc_open, result.loss)
    assert (d["ppl_rnn"], d["bpc_open_rnn"]) == (network.ppl, network.bpc_open)
    assert (d["ppl_repeat"], d["bpc_open_repeat"]) == (whole.repeat.ppl, whole.repeat.bpc_open)
    assert (d["tokens"], d["chars"], d["unk"], d["unk_chars"]) == (result.tokens, result.chars, result.unk,
                                                                   result.unk_chars)
    assert d["file"] == str(TINY_CORPUS)
    assert d["ppl"] > 1 and d["bpc_open"] > 0 and d["tokens"] > 80 and d["chars"] > d["tokens"]
    assert isinstance(d["unk"], int) and d["unk"] >= 0


def test_without_the_repeat_model_its_figure_is_left_out(whole, tiny_run):
    ev = evaluate_file(tiny_run / "best.pt", TINY_CORPUS, repeat=False, device="cpu")
    assert ev.repeat_model is False and ev.repeat is None and ev.to_dict()["bpc_open_repeat"] is None
    assert ev.result == whole.result and ev.network == whole.network


def test_held_out_scores_exactly_what_training_validated(whole, tiny_run, tiny_ckpt):
    rows = [r for r in tiny_ckpt.training.state.metrics if r["val_loss"] != ""]
    best = min(rows, key=lambda r: r["val_loss"])
    assert best["val_loss"] == tiny_ckpt.training.state.best_loss  # best.pt is that model
    ev = evaluate_file(tiny_run / "best.pt", TINY_CORPUS, held_out=True, device="cpu")
    assert ev.result.loss == pytest.approx(best["val_loss"], abs=1e-9)
    assert abs(ev.result.bpc_open - best["val_bpc_open"]) < 1e-3
    assert abs(ev.network.bpc_open - best["val_bpc_open_rnn"]) < 1e-3
    assert ev.result.chars < whole.result.chars


def test_held_out_needs_a_held_out_part(tiny_run, tiny_ckpt, tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("月光\n", encoding="utf-8")
    with pytest.raises(LyricgenError, match="too short to have a held-out part"):
        evaluate_file(tiny_run / "best.pt", short, held_out=True, device="cpu")
    training = dataclasses.replace(tiny_ckpt.training, config=dataclasses.replace(tiny_ckpt.training.config,
                                                                                  val_fraction=0.0))
    save_checkpoint(dataclasses.replace(tiny_ckpt, training=training), tmp_path / "no-val.pt")
    with pytest.raises(LyricgenError, match="without a held-out part"):
        evaluate_file(tmp_path / "no-val.pt", TINY_CORPUS, held_out=True, device="cpu")
    # a generation-only checkpoint holds its last 10% out, the default
    save_checkpoint(tiny_ckpt.without_training(), tmp_path / "slim.pt")
    ev = evaluate_file(tmp_path / "slim.pt", TINY_CORPUS, held_out=True, device="cpu")
    assert ev.result == evaluate_file(tiny_run / "best.pt", TINY_CORPUS, held_out=True, device="cpu").result


def test_the_files_encoding_is_honoured(whole, tiny_run, tmp_path):
    gb = tmp_path / "gb.txt"
    gb.write_bytes(TINY_CORPUS.read_text(encoding="utf-8").encode("gb18030"))
    ev = evaluate_file(tiny_run / "best.pt", gb, encoding="gb18030", device="cpu")
    assert ev.result == whole.result and ev.network == whole.network
    with pytest.raises(LyricgenError, match="gb18030"):
        evaluate_file(tiny_run / "best.pt", gb, device="cpu")


@pytest.mark.parametrize("case", ["missing file", "missing checkpoint", "empty file"])
def test_bad_inputs_are_one_line_errors(tiny_run, tmp_path, case):
    (tmp_path / "empty.txt").write_bytes(b"")
    checkpoint, file = {"missing file": (tiny_run / "best.pt", tmp_path / "nope.txt"),
                        "missing checkpoint": (tmp_path / "nope.pt", TINY_CORPUS),
                        "empty file": (tiny_run / "best.pt", tmp_path / "empty.txt")}[case]
    with pytest.raises(LyricgenError) as info:
        evaluate_file(checkpoint, file, device="cpu")
    assert "\n" not in str(info.value) and ("nope" in str(info.value) or "no lyrics" in str(info.value))
