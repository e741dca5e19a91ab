"""Score a text file with a checkpoint: what `lyricgen evaluate` does, as a library function."""
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from ..checkpoint import load_checkpoint
from ..runtime import cpu_threads, resolve_device
from ..text.corpus import held_out_part, read_corpus
from ..text.tokenizer import tokenize_lines
from .score import Score, Text, score


@dataclass
class Evaluation:
    file: str
    result: Score  # the model as scoring uses it (with the repeat model unless turned off)
    network: Score  # the network alone
    repeat_model: bool

    def to_dict(self) -> dict:
        r, n = self.result, self.network
        return {"ppl": r.ppl, "bpc_open": r.bpc_open, "loss": r.loss, "ppl_rnn": n.ppl, "bpc_open_rnn": n.bpc_open,
                "repeat_model": self.repeat_model, "tokens": r.tokens, "chars": r.chars, "unk": r.unk,
                "unk_chars": r.unk_chars, "file": self.file}


def evaluate_file(checkpoint, file, encoding: str = "utf-8", held_out: bool = False, repeat: bool = True,
                  device: str = "auto") -> Evaluation:
    """Token perplexity and bpc-open of `file` (or, with held_out, of its last lines in the share
    the checkpoint validated on: exactly what training scored)."""
    device = resolve_device(device)
    ckpt = load_checkpoint(checkpoint)
    model = ckpt.build_model().to(device)
    lines = read_corpus(file, encoding)
    if held_out:
        fraction = ckpt.training.config.val_fraction if ckpt.training else 0.1
        lines = held_out_part(lines, fraction, str(file))
    text = Text.encode(ckpt.vocab, tokenize_lines(lines))
    repeat_model = ckpt.side.repeat if repeat else None
    # one stream scored token by token: one CPU thread is fastest (docs/tuning.md)
    with cpu_threads(1) if device.type == "cpu" else nullcontext():
        result, network = score(model, text, ckpt.vocab, ckpt.side.unk, device, repeat_model)
    return Evaluation(str(Path(file)), result, network, repeat_model is not None and bool(repeat_model.alpha))
