"""The character unit (the default) end to end, and the n-gram mixture generation samples from:
stepping it token by token gives exactly the probabilities scoring charges; checkpoints from
before the unit option are word checkpoints."""
import math

import pytest
import torch

from lyricgen.checkpoint import from_dict, load_checkpoint, to_dict
from lyricgen.scoring.score import Text, score_parts
from lyricgen.fitted.unk import UnkModel
from lyricgen.text.tokenizer import tokenize_lines
from lyricgen.text.vocab import SPECIALS, Vocab
from lyricgen.training.run import start_run
from lyricgen.writing.lyricist import Lyricist
from lyricgen.writing.predictor import Predictor

CHAR_OPTIONS = {"embed_dim": 8, "hidden_size": 16, "num_layers": 1, "seq_len": 16, "batch_size": 8, "epochs": 2,
                "seed": 3}


@pytest.fixture(scope="module")
def char_run(tiny_lines, tmp_path_factory):
    out = tmp_path_factory.mktemp("char-run")
    trainer = start_run(tiny_lines, CHAR_OPTIONS, out, "cpu")
    assert trainer.run() == "done"
    return trainer, out


def test_char_vocabulary_spells_every_word(tiny_lines):
    token_lines = tokenize_lines(tiny_lines)
    vocab = Vocab.build(token_lines, min_freq=1, unit="char")
    assert all(len(t) == 1 for t in vocab.tokens[len(SPECIALS):])
    assert {ch for line in token_lines for tok in line for ch in tok} - {" "} <= set(vocab.tokens)
    ids, unk = vocab.encode_lines(token_lines)
    assert unk == 0 and vocab.decode(ids) == "".join("".join(line) + "\n" for line in token_lines)
    with pytest.raises(ValueError, match="unit must be char or word"):
        Vocab.build(token_lines, min_freq=1, unit="byte")


def test_a_char_run_is_the_default_and_its_checkpoint_carries_the_fitted_mixture(char_run):
    trainer, out = char_run
    ckpt = load_checkpoint(out / "best.pt")
    assert ckpt.tokenizer.unit == "char" and all(len(t) == 1 for t in ckpt.vocab.tokens[len(SPECIALS):])
    mix = ckpt.side.mixture
    assert mix is not None and 0 < mix.weight < 1 and mix.weight != 0.5  # fitted on validation
    assert mix.val_logp.numel() == len(trainer.data.val.ids)
    row = ckpt.training.state.metrics[-1]
    assert row["val_bpc_open"] < row["val_bpc_open_rnn"]  # the mixture beats the network alone
    text = Lyricist.load(out / "best.pt").generate("月光", max_tokens=20, temperature=1.0, seed=1)[0].text
    assert text.startswith("月光") and len(text) > 2


def test_old_checkpoints_without_a_unit_are_word_checkpoints(tiny_ckpt):
    d = to_dict(tiny_ckpt)
    d["tokenizer"] = {k: v for k, v in d["tokenizer"].items() if k != "unit"}
    assert from_dict(d).tokenizer.unit == "word"


def test_stepping_the_mixture_gives_what_scoring_charges(char_run):
    trainer, out = char_run
    ckpt = load_checkpoint(out / "best.pt")
    model, vocab, mix = ckpt.build_model(), ckpt.vocab, ckpt.side.mixture
    ids = trainer.data.train.stream[1:41].tolist()
    assert vocab.unk_id not in ids
    parts = score_parts(model, Text(ids, 40, 0), vocab, UnkModel(0.0), torch.device("cpu"), None, mix)
    predictor = Predictor(model, mix)
    logp, state = predictor.start([vocab.line_break_id])
    assert torch.allclose(logp.exp().sum(-1), torch.ones(1), atol=1e-4)  # a distribution
    total = 0.0
    for token in ids:
        total -= float(logp[0, token])
        logp, state = predictor.step(state, torch.tensor([token]))
    assert total == pytest.approx(parts["model"].nll, rel=1e-4)
    assert parts["model"].nll < parts["network"].nll and math.isfinite(total)
