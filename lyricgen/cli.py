"""Command line: `lyricgen train | generate | report | evaluate | plot | download | serve`.

It declares the few options that are about the command line itself, derives every other flag from
the typed configs (config.py), calls the library, and prints. Every LyricgenError becomes one
`lyricgen: error: ...` line on stderr and a non-zero exit. The parser imports no torch, so --help is
fast; each command imports what it needs when it runs. Under torchrun (`torchrun ... -m lyricgen
train`), rank 0 alone prints: every rank checks the same input and meets the same error, and torchrun
stops the others when one fails.
"""
import argparse
import json
import sys
from pathlib import Path

from ._version import __version__
from .config import (DEVICES, ModelConfig, RunConfig, SamplingConfig, ServeConfig, SongConfig, StructureConfig,
                     TokenizerConfig, TrainConfig, SAMPLE_PRESET, generation_configs)
from .errors import LyricgenError
from .options import add_options, given

DEFAULT_CHECKPOINT = Path("checkpoints") / "best.pt"


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not usage + error
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def say(*parts) -> None:
    print(*parts, file=sys.stderr)


# -- train ------------------------------------------------------------------------------------------
def add_train(sub) -> None:
    p = sub.add_parser("train", help="train a model on a lyrics corpus (default: the bundled sample)",
                       description="Train on a corpus (UTF-8, one lyric line per line). Writes last.pt, best.pt "
                                   "and metrics.csv to --out. On --resume, only --epochs, --patience, "
                                   "--time-budget and --max-steps may change.")
    add_options(p, RunConfig)
    add_options(p, TrainConfig)
    add_options(p, ModelConfig)
    add_options(p, TokenizerConfig)
    p.add_argument("--quiet", action="store_true", help="no progress bar, no per-epoch lines")
    p.set_defaults(func=cmd_train)


def cmd_train(args) -> int:
    import torch

    from .runtime import resolve_device
    from .training.distributed import from_env

    run = RunConfig(**given(args, RunConfig))
    world = from_env(resolve_device(run.device))  # SINGLE unless started by torchrun
    try:
        return train(args, run, world)
    except torch.distributed.DistError as e:  # another rank stopped (its own message says why)
        raise LyricgenError(f"rank {world.rank} lost contact with the other ranks: "
                            f"{str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__}") from None
    finally:
        world.close()


def train(args, run: RunConfig, world) -> int:
    from .model import count_parameters
    from .training.run import open_run, stop_on_signals

    quiet = args.quiet or not world.is_main
    with TokenizingBar(quiet) as on_tokenized:
        trainer = open_run(run, given(args, TrainConfig, ModelConfig, TokenizerConfig), on_tokenized, world)
    report = (lambda *a: None) if quiet else say
    data, model, config = trainer.data, trainer.model, trainer.config
    report(f"corpus {trainer.corpus.path}: {trainer.corpus.lines} lines; training windows {len(data.train)} x "
           f"{config.seq_len} tokens; validation {len(data.val.ids)} tokens ({data.val_seen_share:.1%} of "
           "validation lines also occur in training)")
    tok = trainer.tokenizer
    units = "characters" if tok.unit == "char" else f"words, min_freq {tok.min_freq}"
    report(f"vocabulary {len(data.vocab)} entries ({units}); model "
           f"{model.config.cell} {count_parameters(model):,} parameters on {trainer.device}"
           + (f", {world.world_size} processes of {config.batch_size} windows per step" if world.distributed else ""))
    with TrainingBar(trainer, quiet) as (on_step, on_epoch), stop_on_signals(trainer):
        reason = trainer.run(on_step=on_step, on_epoch=on_epoch)
    st, out = trainer.state, trainer.out_dir
    if not world.is_main:
        return 128 + trainer.stop_signal if reason == "signal" else 0
    if reason == "signal":
        import signal

        say(f"lyricgen: {signal.Signals(trainer.stop_signal).name}: saved {out / 'last.pt'} at step {st.step}; "
            f"resume with: lyricgen train --resume {out / 'last.pt'}")
        return 128 + trainer.stop_signal
    best = f"best validation loss {st.best_loss:.4f}" if st.best_loss != float("inf") else "no validation yet"
    draw_plot(out, report)
    files = ", ".join(n for n in ("best.pt", "last.pt", "metrics.png") if (out / n).exists())
    report(f"stopped ({reason.replace('_', ' ')}) after {st.epoch} epochs, {st.step} steps; {best}; "
           f"checkpoints in {out}/ ({files})")
    return 0


def draw_plot(run_dir: Path, report) -> None:
    """metrics.png after training; without matplotlib, one line says so and training still succeeds."""
    from .training.plot import PlotUnavailable, plot_run

    try:
        plot_run(run_dir)
    except PlotUnavailable as e:
        say(f"lyricgen: note: {e}")
    except LyricgenError as e:  # a plot is a convenience: it never fails a finished run
        report(f"lyricgen: note: no plot drawn: {e}")


class TokenizingBar:
    """A tqdm bar over the lines being tokenised (shown only when a corpus is not in the cache)."""

    def __init__(self, quiet: bool):
        self.quiet, self.bar = quiet, None

    def __enter__(self):
        return self.update

    def update(self, done: int, total: int) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=total, unit="line", desc="tokenising", dynamic_ncols=True, leave=False,
                            disable=True if self.quiet else None)
        self.bar.update(done - self.bar.n)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()


class TrainingBar:
    """A tqdm bar over the steps and one line per validation, unless quiet."""

    def __init__(self, trainer, quiet: bool):
        from tqdm import tqdm

        st = trainer.state
        total = max(trainer.config.epochs * trainer.num_batches, st.step)
        self.bar = tqdm(total=total, initial=st.step, unit="step", dynamic_ncols=True,
                        disable=True if quiet else None, leave=False)
        self.quiet = quiet

    def __enter__(self):
        return self.on_step, self.on_epoch

    def __exit__(self, *exc):
        self.bar.close()

    def on_step(self, info: dict) -> None:
        self.bar.update(1)
        self.bar.set_postfix(epoch=info["epoch"], loss=f"{info['loss']:.3f}", tok_s=f"{info['tokens_per_s']:,.0f}")

    def on_epoch(self, row: dict) -> None:
        if self.quiet:
            return
        line = f"epoch {row['epoch']:g}  step {row['step']}  train_loss {row['train_loss']:.3f}"
        if row["val_loss"] != "":
            line += (f"  val_loss {row['val_loss']:.3f}  val_ppl {row['val_ppl']:.1f}  bpc-open "
                     f"{row['val_bpc_open']:.3f} (network alone {row['val_bpc_open_rnn']:.3f})")
        self.bar.write(line + f"  {row['tokens_per_s']:,} tok/s  {row['elapsed_s']}s", file=sys.stderr)


# -- plot ---------------------------------------------------------------------------------------------
def add_plot(sub) -> None:
    p = sub.add_parser("plot", help="draw a run's metrics.png from its metrics.csv",
                       description="Redraw RUN_DIR/metrics.png: loss, bits per character and learning rate per epoch.")
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a training run's directory (holding metrics.csv)")
    p.set_defaults(func=cmd_plot)


def cmd_plot(args) -> int:
    from .training.plot import plot_run

    print(plot_run(args.run_dir))
    return 0


# -- generate ---------------------------------------------------------------------------------------
def add_generate(sub) -> None:
    p = sub.add_parser("generate", help="write lyrics from a start word",
                       description="Write lyrics that continue START_WORD (greedy by default). With -i, read "
                                   "start words from standard input, one per line; a line ':set temperature 0.8' "
                                   "changes an option for the lines after it.")
    a = p.add_argument
    a("start", metavar="START_WORD", nargs="?", help="a word or phrase to start from (not with -i)")
    a("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help=f"model checkpoint (default: {DEFAULT_CHECKPOINT})")
    a("-i", "--interactive", action="store_true", help="load once, then read start words line by line from stdin")
    add_options(p, StructureConfig)
    add_options(p, SongConfig)
    add_options(p, SamplingConfig)
    preset = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in SAMPLE_PRESET.items())
    a("--sample", action="store_true", help=f"the recommended sampling settings ({preset}) for options not given")
    a("--json", action="store_true", help="print a JSON list: text, score, copied_lines, longest_copy per candidate")
    a("--device", default="cpu", choices=DEVICES, help="where to run (default: cpu, fastest for a few texts)")
    p.set_defaults(func=cmd_generate)


def print_candidates(candidates, unknown, as_json: bool) -> None:
    if unknown:
        say(f"lyricgen: note: not in the vocabulary, left out of the prompt: {''.join(unknown)}")
    if as_json:
        print(json.dumps([c.to_dict() for c in candidates], ensure_ascii=False))
        return
    for k, c in enumerate(candidates):
        if len(candidates) > 1:
            print(f"--- candidate {k + 1}, score {c.score:.3f}")
        print(c.text)
        if c.copied_lines is not None:
            say(f"(copied lines {c.copied_lines:.0%}, longest copied span {c.longest_copy} characters)")


def cmd_generate(args) -> int:
    from .runtime import generation_threads, resolve_device
    from .writing.lyricist import Lyricist

    if args.interactive and args.start is not None:
        raise LyricgenError("give either START_WORD or -i, not both")
    configs = generation_configs(given(args, SamplingConfig, StructureConfig, SongConfig), sample=args.sample)
    device = resolve_device(args.device)
    generation_threads(device)
    writer = Lyricist.load(args.checkpoint, device)
    if args.interactive:
        return interactive(writer, configs, args.json)
    print_candidates(*writer.write(args.start, *configs), args.json)  # an empty start: Lyricist.request says so
    return 0


def interactive(writer, configs, as_json: bool) -> int:
    from .writing.session import Session

    session = Session(writer, *configs)
    tty = sys.stdin.isatty()
    while True:
        if tty:
            print("start word (or :set OPTION VALUE, Ctrl-D to quit)> ", end="", file=sys.stderr, flush=True)
        try:
            line = sys.stdin.readline()
        except KeyboardInterrupt:
            say()
            return 0
        if not line:
            return 0
        reply = session.handle(line)
        if reply is None:
            continue
        if reply.error:
            say(f"lyricgen: error: {reply.error}")
        elif reply.changed:
            say(f"{reply.changed[0]} = {reply.changed[1]}")
        else:
            print_candidates(reply.candidates, reply.unknown, as_json)
        sys.stdout.flush()


# -- report -----------------------------------------------------------------------------------------
def add_report(sub) -> None:
    p = sub.add_parser("report", help="write songs from many start words and measure them against the corpus",
                       description="Write one song per start word, greedy (the defaults) and sampled (--sample, "
                                   "seed i for word i), and print rhyme rate, line lengths (mean, Jensen-Shannon "
                                   "distance to the corpus's), fragment lines, copying, distinct-2 and loops, "
                                   "beside the corpus's habits and, with --reference, real lines of the corpus.")
    a = p.add_argument
    a("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help=f"model checkpoint (default: {DEFAULT_CHECKPOINT})")
    a("--words", type=Path, metavar="FILE", help="start words, one per line (default: the vocabulary's most "
                                                   "frequent words of two or more characters)")
    a("--songs", type=int, default=40, help="songs per mode: the first N words (default: 40)")
    a("--lines", type=int, default=8, help="lines per song (default: 8)")
    a("--reference", type=Path, metavar="FILE", help="real lyric lines (e.g. the corpus's held-out part) measured "
                                                      "the same way, for comparison")
    a("--mode", choices=("both", "greedy", "sampled"), default="both", help="which songs to write (default: both)")
    a("--json", action="store_true", help="print one JSON object: the figures and every song's text")
    add_options(p, SongConfig, only=["rhyme", "rhyme_class", "line_chars", "form", "line_candidates"],
                note=" (for both modes)")
    p.set_defaults(func=cmd_report)


def cmd_report(args) -> int:
    from .runtime import generation_threads, resolve_device
    from .text.corpus import read_corpus
    from .writing.lyricist import Lyricist
    from .writing.report import default_words, format_report, song_report

    if args.songs < 1 or args.lines < 1:
        raise LyricgenError("--songs and --lines must be at least 1")
    device = resolve_device("cpu")
    generation_threads(device)
    writer = Lyricist.load(args.checkpoint, device)
    words = ([w.strip() for w in read_corpus(args.words) if w.strip()] if args.words
             else default_words(writer.vocab, args.songs))[:args.songs]
    if not words:
        raise LyricgenError("no start words: the vocabulary knows none of the default ones; pass --words")
    reference = read_corpus(args.reference) if args.reference else None
    options = given(args, SongConfig)
    modes = ("greedy", "sampled") if args.mode == "both" else (args.mode,)
    report = song_report(writer, words, args.lines, reference, options, modes)
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        print(format_report(report))
    return 0


# -- evaluate ---------------------------------------------------------------------------------------
def add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="score a text file: token perplexity and open-vocabulary bits per character")
    a = p.add_argument
    a("file", type=Path, metavar="FILE", help="lyrics to score (one line per line)")
    a("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help=f"model checkpoint (default: {DEFAULT_CHECKPOINT})")
    a("--encoding", default="utf-8", help="text encoding of FILE (default: utf-8)")
    a("--json", action="store_true", help="print one JSON object instead of a sentence")
    a("--no-repeat", action="store_true", help="leave out the figure with the repeat model mixed in")
    a("--held-out", action="store_true",
      help="score only FILE's held-out tail: its last lines, in the share the checkpoint validated on")
    a("--device", default="auto", choices=DEVICES, help="where to run (default: auto)")
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args) -> int:
    from .scoring.evaluate import evaluate_file

    ev = evaluate_file(args.checkpoint, args.file, args.encoding, args.held_out, not args.no_repeat, args.device)
    if args.json:
        print(json.dumps(ev.to_dict()))
        return 0
    r, n, rep = ev.result, ev.network, ev.repeat
    what = "network + n-gram" if ev.mixture else "network"
    print(f"{args.file}: {r.tokens} tokens, {r.chars} characters ({r.unk} <unk> covering {r.unk_chars}): "
          f"{what} (what generate samples from): token perplexity {r.ppl:.2f}, bpc-open {r.bpc_open:.3f}"
          + (f"; network alone: perplexity {n.ppl:.2f}, bpc-open {n.bpc_open:.3f}" if ev.mixture else "")
          + (f"; with the repeat model: perplexity {rep.ppl:.2f}, bpc-open {rep.bpc_open:.3f}" if rep else ""))
    return 0


# -- download ---------------------------------------------------------------------------------------
def add_download(sub) -> None:
    from .text.download import CORPORA

    p = sub.add_parser("download", help="fetch a public corpus, checking every file's sha256",
                       description="Fetch a corpus and write it as one text file, one lyric line per line. "
                                   "Nothing is written unless every file matches its published checksum.")
    a = p.add_argument
    a("name", nargs="?", choices=sorted(CORPORA), help="corpus to fetch (--list shows them)")
    a("--list", action="store_true", help="show the corpora that can be fetched, with their licences")
    a("--url", help="fetch from this address instead: a mirror of the zip, or of the folder of files")
    a("--sha256", help="expected sha256 of the zip (jaychou; default: the published one)")
    a("--out", type=Path, help="where to write the text (default: data/jaychou_lyrics.txt, data/songci.txt)")
    a("--force", action="store_true", help="replace an existing file whose content differs")
    p.set_defaults(func=cmd_download)


def cmd_download(args) -> int:
    from .text.download import CORPORA, download

    if args.list:
        for c in CORPORA.values():
            print(f"{c.name:8s} {c.description}\n{'':8s} licence: {c.licence}; writes {c.out}")
        return 0
    if args.name is None:
        raise LyricgenError(f"name a corpus to fetch: {', '.join(sorted(CORPORA))} (or --list)")
    path, written = download(args.name, args.out, args.url, args.sha256, args.force)
    print(f"{'wrote' if written else 'already present, checksum verified:'} {path}")
    return 0


# -- serve ------------------------------------------------------------------------------------------
def add_serve(sub) -> None:
    p = sub.add_parser("serve", help="serve a web page and an HTTP API (OpenAI-compatible completions)",
                       description="Load a checkpoint once and serve the page at /, lyricgen's API at /api/generate "
                                   "and OpenAI's completions at /v1/completions (README, 'serve'). Needs the serve "
                                   "extra: pip install 'lyricgen[serve]'.")
    add_options(p, ServeConfig)
    p.set_defaults(func=cmd_serve)


def cmd_serve(args) -> int:
    from .serving import INSTALL_HINT, missing_extra

    missing = missing_extra()
    if missing:
        raise LyricgenError(f"serve needs {missing}, which is not installed: {INSTALL_HINT}")
    from .serving.server import serve

    return serve(ServeConfig(**given(args, ServeConfig)), say)


def build_parser() -> Parser:
    parser = Parser(prog="lyricgen", description="Learn to write song lyrics from a corpus; write new ones from a start word.")
    parser.add_argument("--version", action="version", version=f"lyricgen {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_train(sub)
    add_generate(sub)
    add_report(sub)
    add_evaluate(sub)
    add_plot(sub)
    add_download(sub)
    add_serve(sub)
    return parser


def is_main_process() -> bool:
    """Rank 0 of a torchrun job, or no job at all: the process that prints errors."""
    import os

    return os.environ.get("RANK", "0") in ("", "0")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except LyricgenError as e:
        if is_main_process():
            print(f"lyricgen: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if is_main_process():
            print("lyricgen: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
