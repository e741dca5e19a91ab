"""A loaded model ready to write: the Python API behind `lyricgen generate`.

    >>> import lyricgen
    >>> writer = lyricgen.load("checkpoints/best.pt")          # only the checkpoint is read
    >>> for c in writer.generate("月光", lines=4, num_samples=3, temperature=0.8, seed=1):
    ...     print(c.score, c.copied_lines, c.longest_copy, c.text, sep="\\n")

Generation options are the fields of SamplingConfig, StructureConfig and SongConfig (config.py),
passed by name. By default a text is written as a song, line by line (song.py): line lengths and
rhyme follow the corpus's habits, which the checkpoint carries (habits.py); `plain=True` writes token
by token (generate.py), the model's plain continuation.
"""
from dataclasses import asdict, dataclass, replace

import torch

from ..checkpoint import load_checkpoint
from ..config import SEED_MAX, SamplingConfig, SongConfig, StructureConfig, generation_configs
from ..errors import LyricgenError
from ..fitted.habits import Habits
from ..text.tokenizer import normalize_line
from .generate import generate_ids, resolve_start
from .predictor import Predictor
from .song import SongWriter


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
    def __init__(self, model, vocab, originality=None, habits: Habits | None = None, mixture=None):
        self.model = model
        self.vocab = vocab
        self.originality = originality
        self.predictor = Predictor(model, mixture)  # what generation samples from: the network mixed with the n-gram
        self._habits = habits
        self._songs = None

    @property
    def habits(self) -> Habits:
        """The corpus's habits; a checkpoint older than them gets what its vocabulary tells (habits.py)."""
        if self._habits is None:
            self._habits = Habits.from_vocab(self.vocab)
        return self._habits

    @property
    def songs(self) -> SongWriter:
        if self._songs is None:
            self._songs = SongWriter(self.predictor, self.vocab, self.habits, self.originality)
        return self._songs

    @classmethod
    def load(cls, path, device="cpu") -> "Lyricist":
        """Everything comes from the checkpoint; no corpus is read."""
        ckpt = load_checkpoint(path)
        model = ckpt.build_model().to(torch.device(device)).eval()
        return cls(model, ckpt.vocab, ckpt.side.originality, ckpt.side.habits, ckpt.side.mixture)

    def prompt(self, start: str) -> tuple[list[int], list[str]]:
        """Ids for the start word, and the characters left out because the model never saw them."""
        return resolve_start(start, self.vocab)

    def configs(self, start: str, sampling=None, structure=None, song=None, **options):
        """The three generation configs from configs and names (names win), checked against this
        model: OptionError names the option at fault."""
        base = {**(asdict(sampling) if sampling else {}), **(asdict(structure) if structure else {}),
                **(asdict(song) if song else {})}
        sampling, structure, song = generation_configs({**base, **options})
        if not song.plain:
            self.songs.check(start, song)
        return sampling, structure, song

    def generate(self, start: str, sampling: SamplingConfig | None = None, structure: StructureConfig | None = None,
                 prompt_ids: list[int] | None = None, on_token=None, should_stop=None, song: SongConfig | None = None,
                 **options) -> list[Candidate]:
        """Candidates continuing `start`, best (highest mean log-probability) first.

        Options come as configs, or by name (`temperature=0.8, lines=4, rhyme="AABB"`), or both
        (names win). `prompt_ids` skips resolving `start` again when the caller already did (`prompt`).
        With `first_line`, `start` may be "" (the first line is then the start). Streaming:
        on_token(text) gets the start word, then each token's text as it is written (one candidate
        only; a song's tokens come a line at a time, as each line is chosen; the final candidate's
        text is authoritative, as --no-copy may drop a line afterwards). should_stop() is asked
        before every step; True raises errors.Cancelled."""
        if not normalize_line(start or "") and options.get("first_line"):
            start, prompt_ids = options["first_line"], None
        sampling, structure, song = self.configs(start, sampling, structure, song, **options)
        if not song.plain and song.first_line:
            prompt_ids = self.prompt(song.first_line)[0]  # the whole first line primes the model
        ids = prompt_ids if prompt_ids is not None else self.prompt(start)[0]
        head = normalize_line(start)
        if on_token is not None and sampling.num_samples != 1:
            raise LyricgenError("streaming writes one candidate at a time: num_samples must be 1")
        if not song.plain:
            texts = self._songs_of(start, ids, sampling, structure, song, on_token, should_stop)
        else:
            texts = self._plain(head, ids, sampling, structure, on_token, should_stop)
        candidates = []
        for text, score, n in texts:
            if structure.no_copy and self.originality is not None:
                # a line break forced by --max-tokens/--max-line-tokens may still close a training line
                text = "\n".join(x for x in text.split("\n") if not self.originality.is_training_line(x))
            c = Candidate(text=text, score=score, tokens=n)
            if self.originality is not None:
                report = self.originality.report(text)
                c.copied_lines, c.longest_copy = report["copied_lines"], report["longest_copy"]
            candidates.append(c)
        return sorted(candidates, key=lambda c: -c.score)

    def _plain(self, head, ids, sampling, structure, on_token, should_stop) -> list[tuple[str, float, int]]:
        """Token by token (generate.py), all candidates in one batch."""
        on_step = None
        if on_token is not None:
            on_token(head)
            on_step = lambda tokens: tokens[0] >= 0 and on_token(self.vocab.tokens[tokens[0]])  # noqa: E731
        out, lengths, scores = generate_ids(self.predictor, self.vocab, ids, structure, sampling, self.originality,
                                            on_step, should_stop)
        return [((head + self.vocab.decode(row[:n])).rstrip("\n"), score, n)
                for row, n, score in zip(out.tolist(), lengths.tolist(), scores.tolist())]

    def _songs_of(self, start, ids, sampling, structure, song, on_token, should_stop) -> list[tuple[str, float, int]]:
        """Line by line (song.py), one song per candidate; sampled candidates draw from consecutive
        seeds, so each is the song that seed writes alone."""
        on_tokens = None
        if on_token is not None:
            on_token(normalize_line(song.first_line or start))

            def on_tokens(texts):
                for text in texts:
                    on_token(text)
        seeds = [sampling.seed + k if sampling.seed is not None else None for k in range(sampling.num_samples)]
        results = []
        for seed in seeds:
            one = replace(sampling, seed=seed if seed is None else seed % (SEED_MAX + 1), num_samples=1)
            s = self.songs.write(start, ids, one, structure, song, on_tokens, should_stop)
            results.append((s.text, s.score, s.tokens))
        return results

    def write(self, start: str, sampling: SamplingConfig, structure: StructureConfig,
              song: SongConfig | None = None) -> tuple[list[Candidate], list[str]]:
        """generate(), plus the characters of `start` that were left out of the prompt."""
        ids, unknown = self.prompt(start)
        return self.generate(start, sampling, structure, prompt_ids=ids, song=song), unknown


def load(path, device="cpu") -> Lyricist:
    return Lyricist.load(path, device)
