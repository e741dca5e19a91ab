"""A loaded model ready to write: the Python API behind `lyricgen generate`.

    >>> import lyricgen
    >>> writer = lyricgen.load("checkpoints/best.pt")          # only the checkpoint is read
    >>> for c in writer.generate("月光", lines=4, num_samples=3, temperature=0.8, seed=1):
    ...     print(c.score, c.copied_lines, c.longest_copy, c.text, sep="\\n")
    >>> request = writer.request("月光", lines=4, stream=True)  # every option and the start word checked, once
    >>> for text in writer.stream(request):                      # stop iterating to cancel
    ...     print(text, end="", flush=True)
    >>> song = writer.generate("月光", lines=8, keep=["1:月光洒在旧窗台", "3:你说过不会离开"])[0]
    >>> [a.text for a in writer.alternatives(writer.request("月光", lines=8), song.lines_text(), line=2, n=5)]

A writer co-writes by keeping lines (`keep`, LINE:TEXT: the others are written around them, rhyming
with them where the scheme says) and asking for alternatives to one line of a song (`alternatives`:
every other line is kept). `describe` gives what the page shows beside a line: its rhyme class and
whether it copies the corpus.

Generation options are the fields of SamplingConfig, StructureConfig and SongConfig (config.py),
passed by name. By default a text is written as a song, line by line (song.py): line lengths and
rhyme follow the corpus's habits, which the checkpoint carries (habits.py); `plain=True` writes token
by token (generate.py), the model's plain continuation.

Writing is a chain of generators: the line search yields after each step (lines.py), the song writer
yields each line's tokens (song.py), plain generation each step's tokens (generate.py), and `stream`
the text; `generate` and `run` collect it. Nothing is passed down to be called back.
"""
from dataclasses import asdict, dataclass, replace

import torch

from ..checkpoint import load_checkpoint
from ..config import (
    MAX_ALTERNATIVES,
    MAX_SONG_LINES,
    SEED_MAX,
    SamplingConfig,
    SongConfig,
    StructureConfig,
    generation_configs,
)
from ..errors import LyricgenError, OptionError
from ..fitted.habits import Habits
from ..text.rhyme import rhyme_class
from ..text.tokenizer import normalize_line
from .generate import drain, mapped, resolve_start, write_ids
from .predictor import Predictor
from .song import COPY_SPAN, SongWriter


@dataclass
class Candidate:
    text: str
    score: float  # mean log-probability per generated token under the model
    tokens: int
    copied_lines: float | None = None  # share of lines found verbatim in the training corpus
    longest_copy: int | None = None  # longest span (characters) found in a training line
    lines: list[dict] | None = None  # a song's lines (blank ones left out): text, section, rhyme, copied, kept
    notes: list[str] | None = None  # what gave way to kept lines (a song's; song.rule_groups)

    def to_dict(self) -> dict:
        """Its fields; plain text (no lines) leaves out lines and notes."""
        d = asdict(self)
        return d if self.lines is not None else {k: v for k, v in d.items() if k not in ("lines", "notes")}

    def lines_text(self) -> list[str]:
        """The text's lines, blank lines between sections left out (how `keep` and `alternatives` number them)."""
        return [x for x in self.text.split("\n") if x.strip()]


@dataclass
class Alternative:
    text: str
    score: float  # the line search's ranking score, by which they come best first: per token, the model's
    # log-probability less the whole-word and stock-phrase penalties (the reranker's score, when the
    # checkpoint has one), plus the theme fit when there is a theme
    rhyme: str | None  # its 十三辙 class
    copied: bool  # it copies the corpus (a training line, or COPY_SPAN characters of one)

    def to_dict(self) -> dict:
        return asdict(self)


class Lyricist:
    def __init__(self, model, vocab, originality=None, habits: Habits | None = None, mixture=None, credits=None,
                 reranker=None):
        self.model = model
        self.vocab = vocab
        self.originality = originality
        self.credits = credits  # fitted/credits.py: names from the corpus's credit lines, never written
        self.reranker = reranker  # fitted/rerank.py: which candidate line to choose (None: the model's score)
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
            self._songs = SongWriter(self.predictor, self.vocab, self.habits, self.originality, self.credits,
                                     self.reranker)
        return self._songs

    @classmethod
    def load(cls, path, device="cpu") -> "Lyricist":
        """Everything comes from the checkpoint; no corpus is read."""
        ckpt = load_checkpoint(path)
        model = ckpt.build_model().to(torch.device(device)).eval()
        side = ckpt.side
        return cls(model, ckpt.vocab, side.originality, side.habits, side.mixture, side.credits, side.reranker)

    def prompt(self, start: str) -> tuple[list[int], list[str]]:
        """Ids for the start word, and the characters left out because the model never saw them."""
        return resolve_start(start, self.vocab)

    def request(self, start: str | None, sampling: SamplingConfig | None = None,
                structure: StructureConfig | None = None, song: SongConfig | None = None, sample: bool = False,
                stream: bool = False, **options) -> "Request":
        """One request checked against this model, the only place each rule is checked: the options
        (configs and names, names win; `sample` fills the ones not given from the preset), the first
        line as the start when the start word is empty, the start word (StartWordError), what only the
        model can check (an acrostic's characters), and one sample when streaming. OptionError names
        the option at fault."""
        if not normalize_line(start or "") and options.get("first_line"):
            start = options["first_line"]  # the first line is the start
        base = {**(asdict(sampling) if sampling else {}), **(asdict(structure) if structure else {}),
                **(asdict(song) if song else {})}
        sampling, structure, song = generation_configs({**base, **options}, sample=sample)
        if stream and sampling.num_samples != 1:
            raise LyricgenError("num_samples must be 1 when streaming (one candidate is written at a time)")
        start_ids, unknown = self.prompt(start or "")
        ids = start_ids
        if not song.plain:
            self.songs.check(start, structure, song)
            if song.opening():
                ids = self.prompt(song.opening())[0]  # the whole first line primes the model
        return Request(start, start_ids, ids, unknown, sampling, structure, song)

    def generate(self, start: str, sampling: SamplingConfig | None = None, structure: StructureConfig | None = None,
                 song: SongConfig | None = None, **options) -> list[Candidate]:
        """Candidates continuing `start`, best (highest mean log-probability) first.

        Options come as configs, or by name (`temperature=0.8, lines=4, rhyme="AABB"`), or both
        (names win). With `first_line`, `start` may be "" (the first line is then the start)."""
        return self.run(self.request(start, sampling, structure, song, **options))

    def write(self, start: str, sampling: SamplingConfig, structure: StructureConfig,
              song: SongConfig | None = None) -> tuple[list[Candidate], list[str]]:
        """generate(), plus the characters of `start` that were left out of the prompt."""
        request = self.request(start, sampling, structure, song)
        return self.run(request), request.unknown

    def run(self, request: "Request") -> list[Candidate]:
        """The candidates of a checked request: stream() to its end."""
        return drain(self.stream(request))

    def stream(self, request: "Request"):
        """Write a checked request: yields the text as it is written (with num_samples 1: the start
        word, then each token's text; a song's tokens come a line at a time, as each line is chosen),
        and "" after every other step, so a consumer cancels by no longer iterating. Returns the
        candidates, best first; their text is authoritative (--no-copy may drop a line afterwards)."""
        structure = request.structure
        if request.song.plain:
            texts = yield from self._plain(request)
        else:
            texts = yield from self._songs_of(request)
        candidates = []
        for text, score, n, *rest in texts:
            notes = rest[0] if rest else None
            if structure.no_copy and self.originality is not None:
                # a line break forced by --max-tokens/--max-line-tokens may still close a training line
                text = "\n".join(x for x in text.split("\n") if not self.originality.is_training_line(x))
            c = Candidate(text=text, score=score, tokens=n)
            if self.originality is not None:
                report = self.originality.report(text)
                c.copied_lines, c.longest_copy = report["copied_lines"], report["longest_copy"]
            if not request.song.plain:
                c.lines, c.notes = self._lines_of(text, request.song.kept()), notes
            candidates.append(c)
        return sorted(candidates, key=lambda c: -c.score)

    def _plain(self, request: "Request"):
        """Token by token (generate.py), all candidates in one batch: yields candidate 0's tokens when
        it is the only one; returns (text, score, tokens) per candidate."""
        head, one = normalize_line(request.start), request.sampling.num_samples == 1
        if one:
            yield head
        steps = write_ids(self.predictor, self.vocab, request.prompt_ids, request.structure, request.sampling,
                          self.originality)
        out, lengths, scores = yield from mapped(
            steps, lambda tokens: self.vocab.tokens[tokens[0]] if one and tokens[0] >= 0 else "")
        return [((head + self.vocab.decode(row[:n])).rstrip("\n"), score, n)
                for row, n, score in zip(out.tolist(), lengths.tolist(), scores.tolist())]

    def _songs_of(self, request: "Request"):
        """Line by line (song.py), one song per candidate; sampled candidates draw from consecutive
        seeds, so each is the song that seed writes alone. Yields the song's text when it is the only
        one; returns (text, score, tokens) per candidate."""
        sampling, song, one = request.sampling, request.song, request.sampling.num_samples == 1
        if one:
            yield normalize_line(song.opening() or request.start)
        seeds = [sampling.seed + k if sampling.seed is not None else None for k in range(sampling.num_samples)]
        results = []
        for seed in seeds:
            alone = replace(sampling, seed=seed if seed is None else seed % (SEED_MAX + 1), num_samples=1)
            lines = self.songs.write(request.start, request.prompt_ids, alone, request.structure, song)
            s = yield from (lines if one else mapped(lines, lambda piece: ""))
            results.append((s.text, s.score, s.tokens, s.notes))
        self.songs.remember([r[0] for r in results], song.phrase_memory)  # after: seeds stay alike
        return results

    # -- co-writing: kept lines, alternatives, what a line is -------------------------------------------
    def describe(self, lines: list[str]) -> list[dict]:
        """For each line: its text, rhyme class (十三辙, None without a Han ending) and whether it copies
        the corpus (a training line, or COPY_SPAN characters of one)."""
        return [{"text": normalize_line(x), "rhyme": rhyme_class(x) if normalize_line(x) else None,
                 "copied": self._copied(x)} for x in lines]

    def _copied(self, line: str) -> bool:
        line = normalize_line(line)
        orig = self.originality
        return bool(line) and orig is not None and (orig.is_training_line(line) or orig.longest_copy(line) >= COPY_SPAN)

    def _lines_of(self, text: str, kept: dict[int, str]) -> list[dict]:
        out, section = [], 0
        for x in text.split("\n"):
            if not x.strip():
                section += bool(out)
                continue
            info = self.describe([x])[0]
            out.append({**info, "section": section, "kept": kept.get(len(out) + 1) == info["text"]})
        return out

    def alternatives(self, request: "Request", song: list[str], line: int, n: int = 5) -> list[Alternative]:
        """Up to n other lines for line `line` (1-based) of `song` (its lines, blank ones left out),
        best first: every other line is kept, and each alternative fits the length the plan gives its
        place and its rhyme group's rhyme, and differs from the line it replaces. The request's
        options (theme, rhyme, form ...) hold. OptionError naming song, line or n for bad input."""
        return drain(self.alternatives_steps(request, song, line, n))

    def alternatives_steps(self, request: "Request", song: list[str], line: int, n: int = 5):
        """alternatives() as a writing generator: yields "" after each search step (stop iterating to
        cancel) and returns the list."""
        sampling, structure, cfg = self.rewrite_request(request, song, line, n)
        opening = cfg.opening()
        prompt_ids = self.prompt(opening)[0] if opening else request.start_ids
        found = yield from self.songs.alternatives(request.start, prompt_ids, sampling, structure, cfg, line, n,
                                                   song[line - 1])
        return [Alternative(text=normalize_line(text), score=rank, rhyme=rhyme_class(text), copied=self._copied(text))
                for ids, text, logp, rank in found]

    def rewrite_request(self, request: "Request", song: list[str], line: int, n: int):
        """The configs that write line `line` of `song` anew: every other line kept, as many lines as
        the song has (its form, when the request gives one, must have as many)."""
        if request.song.plain:
            raise OptionError("plain: alternatives are lines of a song, not --plain text")
        if not isinstance(song, list) or not all(isinstance(x, str) for x in song):
            raise OptionError("song must be a list of lines (text)")
        if not 1 <= len(song) <= MAX_SONG_LINES:
            raise OptionError(f"song must have from 1 to {MAX_SONG_LINES} lines, got {len(song)}")
        if isinstance(line, bool) or not isinstance(line, int) or not 1 <= line <= len(song):
            raise OptionError(f"line must be a line of the song, from 1 to {len(song)}, got {line!r}")
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_ALTERNATIVES:
            raise OptionError(f"n must be from 1 to {MAX_ALTERNATIVES}, got {n!r}")
        keep = [f"{j}:{text}" for j, text in enumerate(song, 1) if j != line]
        try:
            cfg = replace(request.song, keep=keep or None, first_line=None)
            structure = replace(request.structure, lines=0 if cfg.form else len(song), max_tokens=None)
            if cfg.form and self.songs.line_count(structure, cfg) != len(song):
                raise OptionError(f"song has {len(song)} lines but form has {self.songs.line_count(structure, cfg)}")
            self.songs.check(request.start, structure, cfg)
        except OptionError as e:  # the kept lines are the song's: name the field the caller gave
            message = str(e)
            raise OptionError("song:" + message[len("keep:"):] if message.startswith("keep:") else message) from None
        return replace(request.sampling, num_samples=1), structure, cfg


@dataclass(frozen=True)
class Request:
    """One generation request, checked once (Lyricist.request) and trusted after: stream() and run()
    write it as it is."""
    start: str  # the start word as given (the first line when that was empty)
    start_ids: list[int]  # its ids
    prompt_ids: list[int]  # what primes the model: the start word's ids, or a song's whole first line
    unknown: list[str]  # characters of the start word the model never saw, left out of the prompt
    sampling: SamplingConfig
    structure: StructureConfig
    song: SongConfig


def load(path, device="cpu") -> Lyricist:
    return Lyricist.load(path, device)
