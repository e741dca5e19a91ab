"""A loaded model ready to write: the Python API behind `lyricgen generate`.

    >>> import lyricgen
    >>> writer = lyricgen.load("checkpoints/best.pt")          # only the checkpoint is read
    >>> for c in writer.generate("月光", lines=4, num_samples=3, temperature=0.8, seed=1):
    ...     print(c.score, c.copied_lines, c.longest_copy, c.text, sep="\\n")

Generation options are the fields of SamplingConfig and StructureConfig (config.py), passed by name.
"""
from dataclasses import asdict, dataclass

import torch

from ..checkpoint import load_checkpoint
from ..config import SamplingConfig, StructureConfig, generation_configs
from ..errors import LyricgenError
from ..text.tokenizer import normalize_line
from .generate import generate_ids, resolve_start
from .predictor import Predictor


@dataclass
class Candidate:
    text: str
    score: float  # mean log-probability per generated token under the model
    tokens: int
    copied_lines: float | None = None  # share of lines found verbatim in the training corpus
    longest_copy: int | None = None  # longest span (characters) found in a training line

    def to_dict(self) -> dict:
        return asdict(self)


class Lyricist:
    def __init__(self, model, vocab, originality=None, mixture=None):
        self.model = model
        self.vocab = vocab
        self.originality = originality
        self.predictor = Predictor(model, mixture)  # what generation samples from

    @classmethod
    def load(cls, path, device="cpu") -> "Lyricist":
        """Everything comes from the checkpoint; no corpus is read."""
        ckpt = load_checkpoint(path)
        model = ckpt.build_model().to(torch.device(device)).eval()
        return cls(model, ckpt.vocab, ckpt.side.originality, ckpt.side.mixture)

    def prompt(self, start: str) -> tuple[list[int], list[str]]:
        """Ids for the start word, and the characters left out because the model never saw them."""
        return resolve_start(start, self.vocab)

    def generate(self, start: str, sampling: SamplingConfig | None = None, structure: StructureConfig | None = None,
                 prompt_ids: list[int] | None = None, on_token=None, should_stop=None, **options) -> list[Candidate]:
        """Candidates continuing `start`, best (highest mean log-probability) first.

        Options come as configs, or by name (`temperature=0.8, lines=4`), or both (names win).
        `prompt_ids` skips resolving `start` again when the caller already did (`prompt`).
        Streaming: on_token(text) gets the start word, then each token's text as it is written (one
        candidate only; the final candidate's text is authoritative, as --no-copy may drop a line
        afterwards). should_stop() is asked before every step; True raises errors.Cancelled."""
        base = {**(asdict(sampling) if sampling else {}), **(asdict(structure) if structure else {})}
        sampling, structure = generation_configs({**base, **options})
        ids = prompt_ids if prompt_ids is not None else self.prompt(start)[0]
        head = normalize_line(start)
        on_step = None
        if on_token is not None:
            if sampling.num_samples != 1:
                raise LyricgenError("streaming writes one candidate at a time: num_samples must be 1")
            on_token(head)
            on_step = lambda tokens: tokens[0] >= 0 and on_token(self.vocab.tokens[tokens[0]])  # noqa: E731
        out, lengths, scores = generate_ids(self.predictor, self.vocab, ids, structure, sampling, self.originality,
                                            on_step, should_stop)
        candidates = []
        for row, n, score in zip(out.tolist(), lengths.tolist(), scores.tolist()):
            text = (head + self.vocab.decode(row[:n])).rstrip("\n")
            if structure.no_copy and self.originality is not None:
                # a line break forced by --max-tokens/--max-line-tokens may still close a training line
                text = "\n".join(x for x in text.split("\n") if not self.originality.is_training_line(x))
            c = Candidate(text=text, score=score, tokens=n)
            if self.originality is not None:
                report = self.originality.report(text)
                c.copied_lines, c.longest_copy = report["copied_lines"], report["longest_copy"]
            candidates.append(c)
        return sorted(candidates, key=lambda c: -c.score)

    def write(self, start: str, sampling: SamplingConfig, structure: StructureConfig) -> tuple[list[Candidate], list[str]]:
        """generate(), plus the characters of `start` that were left out of the prompt."""
        ids, unknown = self.prompt(start)
        return self.generate(start, sampling, structure, prompt_ids=ids), unknown


def load(path, device="cpu") -> Lyricist:
    return Lyricist.load(path, device)
