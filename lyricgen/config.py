"""Every typed config, each option declared once (its default, bounds and help; see options.py).

    ModelConfig      the network's shape              (stored in the checkpoint, fixed on resume)
    TokenizerConfig  how text becomes vocabulary      (stored, fixed on resume)
    TrainConfig      optimisation and stopping        (stored; some options may change on resume)
    DeviceConfig     where torch runs (--device, one default for every command)
    LoadConfig       the checkpoint a command uses, and the device (--checkpoint, one default)
    RunConfig        where a training run reads and writes, and on what device (per invocation)
    ServeConfig      where `lyricgen serve` listens, what it loads, how much it takes on at once
    SamplingConfig   how generation picks each token  (per call)
    StructureConfig  the shape of the generated text  (per call)
    SongConfig       line lengths, rhyme and song form  (per call; defaults follow the corpus's habits)
    GenerateConfig, ReportConfig, EvaluateConfig, DownloadConfig
                     the rest of each command's options: what it reads and how it prints

The defaults are the measured best per CPU-minute (docs/tuning.md). No torch here, so that parsing
options and printing `--help` are fast.
"""
import os
import re
from dataclasses import dataclass, field

from .errors import OptionError
from .options import EXTEND, PER_RUN, Config, flag, option
from .runfiles import DEFAULT_DIR, RunFiles
from .text.rhyme import parse_class

CELLS = ("rnn", "gru", "lstm", "transformer")
DEVICES = ("auto", "cpu", "cuda")
UNITS = ("char", "word")
SEED_MAX = 2**32 - 1
MAX_TOKENS = 100_000  # per candidate; lyrics are far shorter, this only keeps memory sane
MAX_SAMPLES = 4_096
DEFAULT_MAX_TOKENS = 100  # per candidate, when neither --max-tokens nor a number of lines says otherwise


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the OS says; else all of them)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass
class ModelConfig(Config):
    vocab_size: int = field(metadata={"low": 1, "high": None, "low_open": False, "high_open": False})
    cell: str = option("lstm", "the network: a recurrent cell (rnn is the tutorial's), or transformer = GPT-style "
                       "blocks of causal self-attention", choices=CELLS)
    embed_dim: int = option(256, "embedding size (the transformer's width)", low=1)
    hidden_size: int = option(512, "recurrent state size (rnn, gru, lstm; the transformer's MLP is 4 x --embed-dim)",
                              low=1)
    num_layers: int = option(1, "stacked recurrent layers, or transformer blocks", low=1)
    num_heads: int = option(4, "transformer: attention heads; --embed-dim / heads must be even", low=1)
    # 32 = the default --seq-len: a window no longer than the training windows means generation and
    # scoring only ever use distances the model was trained on
    attention_window: int = option(32, "transformer: tokens each position attends to, itself included; train with "
                                   "--seq-len at least this", low=1)
    dropout: float = option(0.6, "dropout on the embeddings' outputs, between layers (the transformer's: on its "
                            "attention weights and residual branches) and before the output layer",
                            low=0, high=1, high_open=True)
    embed_dropout: float = option(0.3, "share of vocabulary entries dropped per batch (every occurrence)",
                                  low=0, high=1, high_open=True)
    tie_weights: bool = option(True, "share the embedding and output matrices")

    def check(self) -> None:
        if self.cell == "transformer" and (self.embed_dim % self.num_heads or self.embed_dim // self.num_heads % 2):
            raise OptionError(f"embed_dim {self.embed_dim} must split into num_heads {self.num_heads} heads of an "
                              "even size (rotary position embeddings rotate pairs)")


@dataclass
class TokenizerConfig(Config):
    # char by measurement (docs/tuning.md): mixed with the n-gram, characters scored 7.78 held-out
    # bpc-open against 7.83 for jieba words, and a character n-gram is the stronger baseline.
    # Checkpoints from before this option were word checkpoints (checkpoint.py reads them so).
    unit: str = option("char", "what a token is: char = every character; word = a jieba word seen --min-freq "
                       "times, rarer ones spelled as characters", choices=UNITS)
    min_freq: int = option(3, "with --unit word: words seen fewer times are spelled as characters", low=1)
    # Checkpoints from before this option were trained on every line (checkpoint.py reads them so).
    keep_debris: bool = option(False, "train on every line of the corpus; by default title/artist lines and "
                               "credit lines (作词, 作曲, 编曲, 歌词提供 ...) are left out")


@dataclass
class TrainConfig(Config):
    epochs: int = option(40, "total epochs; on --resume, a larger number extends the run", low=0, on_resume=EXTEND)
    batch_size: int = option(16, "windows per batch", low=1)
    seq_len: int = option(32, "tokens per window", low=1)
    lr: float = option(5e-3, "Adam learning rate", low=0, low_open=True, high=10)
    weight_decay: float = option(0.0, "Adam weight decay", low=0)
    clip: float = option(1.0, "max global gradient norm", low=0, low_open=True)
    val_fraction: float = option(0.1, "share of lines held out, contiguously, at the end of the corpus",
                                 low=0, high=1, high_open=True)
    patience: int = option(5, "early stop after this many epochs without a better validation loss; an epoch "
                           "counts as at least 50 steps on tiny corpora", low=1, on_resume=EXTEND)
    lr_factor: float = option(0.5, "multiply the learning rate by this on a plateau", low=0, low_open=True,
                              high=1, high_open=True, cli=False)
    lr_patience: int = option(1, "cut the learning rate after more than this many epochs without improvement",
                              low=0, cli=False)
    seed: int = option(1337, "random seed", low=0, high=SEED_MAX)
    time_budget: float | None = option(None, "stop after this much wall time, keeping best.pt and last.pt",
                                       low=0, low_open=True, on_resume=PER_RUN, metavar="SECONDS")
    max_steps: int | None = option(None, "stop after this many optimizer steps in total, saving last.pt",
                                   low=1, on_resume=PER_RUN)
    # Off by default: a blind panel read the reranked songs as worse on every measure (docs/panels.md),
    # though it tells real lines from the model's own at 79% held out; it also costs training time.
    rerank_lines: int = option(0, "validation lines a reranker is fitted on once training ends, each real line "
                               "against the model's own lines for its context (0: none; songs then rank lines by "
                               "the model's score; docs/panels.md found the reranker's songs read worse)", low=0)


@dataclass
class DeviceConfig(Config):
    """Where torch runs. auto, the one default, is the CPU on a machine without CUDA."""
    device: str = option("auto", "where to run: auto = CUDA when available, else the CPU", choices=DEVICES)


@dataclass
class LoadConfig(DeviceConfig):
    """A trained model to use (generate, report, evaluate, serve), and the device it runs on."""
    checkpoint: str = option(str(RunFiles(DEFAULT_DIR).best), "model checkpoint", metavar="CKPT")


@dataclass
class RunConfig(DeviceConfig):
    """Where a training run reads and writes, on what device, how loudly; none of it is stored as a
    setting of the run."""
    corpus: str | None = option(None, "lyrics file, UTF-8, one line per line (default: the bundled "
                                "data/sample_lyrics.txt; on --resume, the checkpoint's)", metavar="FILE")
    encoding: str | None = option(None, "text encoding of the corpus, e.g. gb18030 (default: utf-8; on --resume, "
                                  "the checkpoint's)")
    out: str | None = option(None, "directory for best.pt, last.pt and metrics.csv (default: checkpoints/; on "
                             "--resume, the checkpoint's directory)", metavar="DIR")
    mix: str | None = option(None, "modern lyrics the network also learns the language from, beside --corpus: "
                             "`bundled` (data/open_lyrics.txt, written for lyricgen), a file, or `none`. Validation, "
                             "line habits, the copy guard and names come from --corpus alone, whose training lines "
                             "are repeated to make at least a quarter of the text (default: `bundled` for a new run "
                             "with --time-budget on a Chinese corpus under 500,000 characters, else none; on "
                             "--resume, the checkpoint's)", metavar="FILE")
    resume: str | None = option(None, "continue the run saved in this checkpoint", metavar="CKPT")
    init_from: str | None = option(None, "start a new run from this checkpoint's weights and vocabulary (fine-tuning "
                                   "a base model on --corpus), with a fresh optimizer", metavar="CKPT")
    force: bool = option(False, "start a new run even if --out already holds one (its files are replaced)")
    deterministic: bool = option(False, "use deterministic CUDA algorithms (slower; CPU runs are deterministic anyway)")
    cache: bool = option(True, "reuse the tokenisation of a text seen before (--no-cache: always run jieba)")
    workers: int | None = option(None, "processes that tokenise a large corpus (default: the cores)", low=1)
    quiet: bool = option(False, "no progress bar, no per-epoch lines")

    def tokenize_workers(self) -> int:
        """--workers, else the cores this process may run on."""
        return self.workers or usable_cores()


@dataclass
class ServeConfig(LoadConfig):
    """`lyricgen serve`: the checkpoint, loaded once at start, and the device (LoadConfig); the rest
    changes nothing of what is generated, only where it is served and how many at once."""
    host: str = option("127.0.0.1", "address to listen on; the server has no authentication, so 0.0.0.0 "
                       "opens it to anyone who can reach this machine")
    port: int = option(8000, "TCP port (0 = any free port; the address is printed at start)", low=0, high=65535)
    workers: int | None = option(None, "generations running at once, one torch thread each (default: one per CPU "
                                 "core available, at most 8)", low=1, high=256)
    queue: int = option(16, "requests that may wait for a worker; past workers + queue the answer is 503 with "
                        "Retry-After", low=0, high=100_000)
    access_log: bool = option(True, "log every request (--no-access-log: errors only)")


@dataclass
class SamplingConfig(Config):
    """How the next token is chosen. The defaults are greedy decoding."""
    temperature: float = option(0.0, "0 = greedy; higher = more random", low=0)
    top_k: int = option(0, "sample only from the k most likely tokens (0 = all; 1 = greedy)", low=0)
    top_p: float = option(1.0, "nucleus sampling: the smallest set of tokens whose probability reaches P (1 = off)",
                          low=0, low_open=True, high=1)
    repetition_penalty: float = option(1.0, "> 1 discourages tokens already in the text (CTRL's rule; 1 = off)",
                                       low=0, low_open=True)
    no_repeat_ngram: int = option(0, "never repeat an n-gram of this many tokens (0 = off)", low=0)
    seed: int | None = option(None, "seed for sampling, for reproducible output", low=0, high=SEED_MAX)
    num_samples: int = option(1, "candidates written in one batch, ranked by mean log-probability", low=1,
                              high=MAX_SAMPLES)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0 or self.top_k == 1


# What we recommend for readable lyrics (`lyricgen generate --sample`): it brought the outputs that
# repeat a line three times in a row from 50 of 50 (greedy) to 0 of 50 (scripts/degeneration.py; still
# 0 of 50 at temperature 0.5). Temperature 0.5, not 0.8: blind readers scored the sampled songs of a
# --mix run 2.50 against 1.33 for fluency and 1.58 against 1.08 for coherence (docs/panels.md, panel L),
# and those of a run from scratch alike at both (panel M). In songs, below temperature 1 each line is
# drawn from the beam's candidates (writing/song.py, DRAW_BELOW), and top-p keeps the likeliest lines.
SAMPLE_PRESET = {"temperature": 0.5, "top_p": 0.9, "repetition_penalty": 1.2, "no_repeat_ngram": 4}


@dataclass
class StructureConfig(Config):
    """Bounds on the shape of the text; generation always stops after max_tokens."""
    max_tokens: int | None = option(None, "at most this many tokens per candidate (default: 100, except that a "
                                    "song of a given number of lines - --lines, --form or --acrostic - is not cut "
                                    "short); the text always ends with a whole line", low=1, high=MAX_TOKENS)
    lines: int = option(0, "stop after this many lines (0 = no limit)", low=0)
    min_line_tokens: int = option(1, "no line break before this many tokens in a line (1: no blank lines; "
                                  "0 allows them)", low=0)
    max_line_tokens: int = option(0, "break a line after this many tokens (0 = off)", low=0)
    no_copy: bool = option(False, "never end a line that occurs verbatim in the training corpus")

    def check(self) -> None:
        if self.max_line_tokens and self.min_line_tokens > self.max_line_tokens:
            raise OptionError("min_line_tokens cannot exceed max_line_tokens")


# The rhyme schemes, once: for line j of a section, the earlier line of the section it must rhyme
# with (None: free). `auto` is not here: it follows the corpus's habit (writing/form.py).
RHYME_LINKS = {"AABB": lambda j: j - 1 if j % 2 else None, "ABAB": lambda j: j - 2 if j >= 2 else None,
               "AAAA": lambda j: j - 1 if j else None, "none": lambda j: None}
RHYME_SCHEMES = ("auto", *RHYME_LINKS)
# Section names, with their Chinese names; only a chorus repeats (its first text, verbatim).
SECTIONS = {"verse": "verse", "主歌": "verse", "prechorus": "prechorus", "pre": "prechorus", "导歌": "prechorus",
            "chorus": "chorus", "副歌": "chorus", "bridge": "bridge", "桥段": "bridge", "outro": "outro",
            "尾声": "outro"}
REPEATED = "chorus"
MAX_SECTION_LINES = 64
MAX_LINE_CHARS = 64
MAX_KEYWORDS, MAX_KEYWORD_CHARS = 32, 8
# Lines a writer fixes (--keep, the page's locks): a line is at most MAX_KEPT_CHARS characters, a song
# asked for alternatives at most MAX_SONG_LINES lines, and one request gets at most MAX_ALTERNATIVES.
MAX_KEPT_CHARS = 40
MAX_SONG_LINES = 64
MAX_ALTERNATIVES = 16


def parse_form(text: str) -> list[tuple[str, int | None]]:
    """"verse:4 chorus chorus" -> [("verse", 4), ("chorus", None), ("chorus", None)] (None: the
    corpus's usual section length). Sections are separated by spaces or commas."""
    items = [x for x in re.split(r"[\s,，]+", text.strip()) if x]
    if not items:
        raise OptionError("form is empty: name sections, e.g. \"verse:4 chorus:4\"")
    sections = []
    for item in items:
        name, _, count = item.partition(":")
        key = SECTIONS.get(name.lower())
        if key is None:
            raise OptionError(f"form: unknown section {name!r}; use {', '.join(k for k in SECTIONS if k.isascii())}"
                              " (or 主歌 导歌 副歌 桥段 尾声), each optionally :LINES")
        if count and not (count.isdigit() and 1 <= int(count) <= MAX_SECTION_LINES):
            raise OptionError(f"form: {item!r} needs a line count from 1 to {MAX_SECTION_LINES} after the colon")
        sections.append((key, int(count) if count else None))
    return sections


def parse_keep(entries: list[str] | None) -> dict[int, str]:
    """["1:月光洒满窗台", "4:TEXT"] -> {1: "月光洒满窗台", 4: "TEXT"}: 1-based line numbers (blank lines
    between sections not counted), each at most once, each text a line of 1..MAX_KEPT_CHARS characters."""
    from .text.tokenizer import normalize_line

    kept: dict[int, str] = {}
    for entry in entries or ():
        if not isinstance(entry, str):
            raise OptionError(f"keep: each entry must be LINE:TEXT text, got {entry!r}")
        number, colon, text = entry.partition(":")
        if not colon or not number.strip().isdigit():
            raise OptionError(f"keep: {entry!r} must be LINE:TEXT, e.g. 1:月光洒满窗台 (a line number, a colon, the line)")
        k, line = int(number), normalize_line(text)
        if not 1 <= k <= MAX_SONG_LINES:
            raise OptionError(f"keep: line {k} is out of range: lines are numbered from 1 to {MAX_SONG_LINES}")
        if not line:
            raise OptionError(f"keep: line {k} is empty")
        if len(line.replace(" ", "")) > MAX_KEPT_CHARS:
            raise OptionError(f"keep: line {k} is too long: one line of at most {MAX_KEPT_CHARS} characters")
        if k in kept:
            raise OptionError(f"keep: line {k} is given twice")
        kept[k] = line
    return kept


def parse_line_chars(text: str) -> tuple[int, int]:
    """"6-10" -> (6, 10); "8" -> (8, 8)."""
    m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", text)
    if not m:
        raise OptionError(f"line_chars must be MIN-MAX characters, e.g. 6-10, got {text!r}")
    low, high = int(m.group(1)), int(m.group(2) or m.group(1))
    if not 1 <= low <= high <= MAX_LINE_CHARS:
        raise OptionError(f"line_chars must satisfy 1 <= MIN <= MAX <= {MAX_LINE_CHARS}, got {text!r}")
    return low, high


@dataclass
class SongConfig(Config):
    """A song's shape: written line by line, each line's length, rhyme and first character planned
    (writing/form.py). Left at their defaults they follow the corpus's habits (fitted/habits.py)."""
    rhyme: str = option("auto", "rhyme scheme: auto = the corpus's habit; AABB, ABAB, AAAA, or none",
                        choices=RHYME_SCHEMES)
    rhyme_class: str | None = option(None, "the rhyme of the first rhyme group (the first line and those rhyming "
                                     "with it): a 十三辙 class such as 江阳, or a final in it such as ang",
                                     metavar="CLASS")
    line_chars: str | None = option(None, "characters per line, MIN-MAX or N (default: the corpus's spread of "
                                    "line lengths)", metavar="MIN-MAX")
    form: str | None = option(None, "sections, e.g. 'verse:4 chorus:4 verse:4 chorus:4' (verse, prechorus, chorus, "
                              "bridge, outro; a chorus is written once and repeated; without :N, the corpus's "
                              "usual section length); blank lines separate them", metavar="SECTIONS")
    acrostic: str | None = option(None, "藏头: line i starts with the i-th character of TEXT (the start word "
                                  "begins with the first)", metavar="TEXT")
    first_line: str | None = option(None, "the song's first line as you wrote it (it begins with the start "
                                    "word); its rhyme starts the first rhyme group", metavar="TEXT")
    theme: str | None = option(None, "a subject the song holds to: its words and their neighbours in modern Chinese "
                               "word vectors are written into about half the lines (extra `theme`)", metavar="TEXT")
    keywords: str | None = option(None, "words the lines carry, comma-separated (their theme: --theme, else the "
                                  "start word)", metavar="W1,W2")
    keep: list[str] | None = option(None, "a line you wrote, kept verbatim where you put it: LINE:TEXT (1-based, "
                                    "blank lines between sections not counted); repeat for more lines. The other "
                                    "lines are written around them, rhyming with them where the scheme says",
                                    metavar="LINE:TEXT")
    line_candidates: int = option(32, "candidate lines searched per line: sampled, or the beam width when greedy",
                                  low=1, high=512)
    phrase_memory: int = option(0, "songs remembered by this writer (process, server): a new song avoids the "
                                "4-character phrases of the last N (0: none, so a request alone decides its song; "
                                "`lyricgen report` uses 64)", low=0, high=100_000)
    rerank: bool = option(True, "choose each line by the checkpoint's reranker, fitted at training time on real lines "
                          "against the model's own (--no-rerank, or a checkpoint without one: by the model's "
                          "log-probability less the word penalties)")
    plain: bool = option(False, "write token by token, the model's plain continuation, without line lengths, "
                         "rhyme or form (the default writes line by line to the corpus's habits)")

    def check(self) -> None:
        if self.rhyme_class is not None:
            try:
                parse_class(self.rhyme_class)
            except OptionError as e:
                raise OptionError(f"rhyme_class: {e}") from None
        if self.line_chars is not None:
            parse_line_chars(self.line_chars)
        if self.form is not None:
            parse_form(self.form)
        for name in ("acrostic", "first_line"):
            value = getattr(self, name)
            if value is not None and not value.strip():
                raise OptionError(f"{name} is empty")
        if self.acrostic is not None and any(ch.isspace() for ch in self.acrostic.strip()):
            raise OptionError("acrostic must be characters without spaces")
        if self.theme is not None and not self.theme.strip():
            raise OptionError("theme is empty")
        if self.keywords is not None:
            words = [w for w in re.split(r"[\s,，、]+", self.keywords) if w]
            if not words:
                raise OptionError("keywords is empty: give words separated by commas, e.g. 月色,夜空")
            if len(words) > MAX_KEYWORDS or any(len(w) > MAX_KEYWORD_CHARS for w in words):
                raise OptionError(f"keywords: at most {MAX_KEYWORDS} words of at most {MAX_KEYWORD_CHARS} characters")
        if self.plain and (self.theme is not None or self.keywords is not None):
            raise OptionError("theme and keywords need a song written line by line, not --plain")
        kept = self.kept()
        if self.plain and kept:
            raise OptionError("keep needs a song written line by line, not --plain")
        if self.first_line is not None and 1 in kept:
            raise OptionError("keep: line 1 and first_line are the same line; give one of them")

    def kept(self) -> dict[int, str]:
        """The kept lines: 1-based line number -> text."""
        return parse_keep(self.keep)

    def opening(self) -> str | None:
        """The song's first line when the writer gave it (first_line, or keep's line 1)."""
        return self.first_line or self.kept().get(1)


GENERATION_CONFIGS = (SamplingConfig, StructureConfig, SongConfig)


def token_budget(structure: StructureConfig, song: SongConfig | None = None) -> int | None:
    """The tokens a candidate may have: --max-tokens when given; none beyond its lines for a song
    whose number of lines is fixed (so a long form, or a kept last line, is never cut short);
    DEFAULT_MAX_TOKENS otherwise."""
    if structure.max_tokens is not None:
        return structure.max_tokens
    if song is not None and not song.plain and (structure.lines or song.form or song.acrostic or song.keep):
        return None
    return DEFAULT_MAX_TOKENS


def generation_configs(options: dict, sample: bool = False) -> tuple[SamplingConfig, StructureConfig, SongConfig]:
    """The generation configs from one dict of option values, by name; `sample` fills the options
    not given from SAMPLE_PRESET. An unknown name is refused."""
    known = {name for cls in GENERATION_CONFIGS for name in cls.__dataclass_fields__}
    unknown = sorted(set(options) - known)
    if unknown:
        raise OptionError(f"unknown generation option {unknown[0]!r}; known: {', '.join(sorted(known))}")
    if sample:
        options = {**SAMPLE_PRESET, **options}
    return tuple(cls(**{k: v for k, v in options.items() if k in cls.__dataclass_fields__})
                 for cls in GENERATION_CONFIGS)


# -- the commands' own options: what each reads, and how it prints -----------------------------------
@dataclass
class GenerateConfig(Config):
    """`lyricgen generate`'s own options; not generation options (GENERATION_CONFIGS), so not the API's."""
    interactive: bool = option(False, "load once, then read start words line by line from stdin", short="-i")
    sample: bool = option(False, "the recommended sampling settings ("
                          + " ".join(f"{flag(k)} {v}" for k, v in SAMPLE_PRESET.items()) + ") for options not given")
    json: bool = option(False, "print a JSON list: text, score, copied_lines, longest_copy per candidate")
    alternatives_for: int | None = option(None, "after the song, alternatives for this line of it (1-based), best "
                                          "first, each fitting its neighbours' rhyme and length", low=1,
                                          high=MAX_SONG_LINES, metavar="LINE")
    alternatives: int = option(5, "how many alternatives --alternatives-for lists", low=1, high=MAX_ALTERNATIVES)


REPORT_MODES = ("both", "greedy", "sampled")
# The SongConfig options `lyricgen report` takes, for both modes (one start word per song: no
# acrostic or first line; no --plain, since the report measures songs).
REPORT_SONG_OPTIONS = ("rhyme", "rhyme_class", "line_chars", "form", "line_candidates", "phrase_memory", "rerank")


@dataclass
class ReportConfig(Config):
    """`lyricgen report`: which songs to write and what to measure them against."""
    words: str | None = option(None, "start words, one per line (default: the vocabulary's most frequent words of "
                               "two or more characters)", metavar="FILE")
    songs: int = option(40, "songs per mode: the first N words", low=1)
    lines: int = option(8, "lines per song", low=1)
    reference: str | None = option(None, "real lyric lines (e.g. the corpus's held-out part) measured the same way, "
                                   "for comparison", metavar="FILE")
    mode: str = option("both", "which songs to write", choices=REPORT_MODES)
    json: bool = option(False, "print one JSON object: the figures and every song's text")


@dataclass
class EvaluateConfig(Config):
    """`lyricgen evaluate FILE`: how FILE is read, what is scored, how it is printed."""
    encoding: str = option("utf-8", "text encoding of FILE")
    held_out: bool = option(False, "score only FILE's held-out tail: its last lines, in the share the checkpoint "
                            "validated on")
    repeat: bool = option(True, "also give the figures with the repeat model mixed in (--no-repeat leaves them out)")
    json: bool = option(False, "print one JSON object instead of a sentence")


@dataclass
class DownloadConfig(Config):
    """`lyricgen download [NAME]`: where from, where to, and what to trust."""
    list: bool = option(False, "show the corpora that can be fetched, with their licences")
    url: str | None = option(None, "fetch from this address instead: a mirror of the zip, or of the chinese-poetry "
                             "repository (songci: of its 宋词 folder)")
    sha256: str | None = option(None, "expected sha256 of the zip (jaychou; default: the published one)")
    out: str | None = option(None, "where to write the text (default: data/NAME.txt; jaychou: data/jaychou_lyrics.txt)")
    force: bool = option(False, "replace an existing file whose content differs")
