"""Score a text file with a checkpoint: what `lyricgen evaluate` does, as a library function."""
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from ..checkpoint import load_checkpoint
from ..runtime import cpu_threads, resolve_device
from ..text.corpus import held_out_part, read_corpus
from ..text.tokenizer import tokenize_lines
from .score import Score, Text, score_parts


@dataclass
class Evaluation:
    file: str
    result: Score  # the model generation samples from (the network mixed with its n-gram)
    network: Score  # the network alone
    repeat: Score | None  # the model with the repeat model mixed in (None when turned off)
    mixture: bool  # whether the checkpoint has an n-gram (older ones: the model is the network)

    @property
    def repeat_model(self) -> bool:
        return self.repeat is not None

    def to_dict(self) -> dict:
        r, n, rep = self.result, self.network, self.repeat
        return {"ppl": r.ppl, "bpc_open": r.bpc_open, "loss": r.loss, "ppl_rnn": n.ppl, "bpc_open_rnn": n.bpc_open,
                "ppl_repeat": rep.ppl if rep else None, "bpc_open_repeat": rep.bpc_open if rep else None,
                "mixture": self.mixture, "repeat_model": self.repeat_model, "tokens": r.tokens, "chars": r.chars,
                "unk": r.unk, "unk_chars": r.unk_chars, "file": self.file}


def evaluate_file(checkpoint, file, encoding: str = "utf-8", held_out: bool = False, repeat: bool = True,
                  device: str = "auto") -> Evaluation:
    """Token perplexity and bpc-open of `file` under the model generation samples from, the network
    alone and the repeat model (or, with held_out, of its last lines in the share
    the checkpoint validated on: exactly what training scored)."""
    device = resolve_device(device)
    ckpt = load_checkpoint(checkpoint)
    model = ckpt.build_model().to(device)
    # Every line, debris included, never filtered like training's corpus (text/debris.py): the benchmark
    # protocol scores the untouched last share of the file, so held-out scores stay comparable between
    # runs, old checkpoints and --keep-debris. (Training's tail is that of the kept lines: the same
    # lyrics when debris is spread evenly through the file.)
    lines = read_corpus(file, encoding)
    if held_out:
        fraction = ckpt.training.config.val_fraction if ckpt.training else 0.1
        lines = held_out_part(lines, fraction, str(file))
    text = Text.encode(ckpt.vocab, tokenize_lines(lines))
    repeat_model = ckpt.side.repeat if repeat else None
    # one stream scored token by token: one CPU thread is fastest (docs/tuning.md)
    with cpu_threads(1) if device.type == "cpu" else nullcontext():
        parts = score_parts(model, text, ckpt.vocab, ckpt.side.unk, device, repeat_model, ckpt.side.mixture,
                            validation=held_out)
    return Evaluation(str(Path(file)), parts["model"], parts["network"], parts.get("repeat"),
                      ckpt.side.mixture is not None)
