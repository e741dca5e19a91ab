"""Command line: `lyricgen train | generate | report | evaluate | plot | download | serve`.

Every flag comes from a field of a typed config (config.py, through options.add_options); only
positional arguments are declared here. It then calls the library and prints. Every LyricgenError
becomes one `lyricgen: error: ...` line on stderr and a non-zero exit. The parser imports no torch,
so --help is fast; each command imports what it needs when it runs. Under torchrun (`torchrun ... -m
lyricgen train`), rank 0 alone prints: every rank checks the same input and meets the same error,
and torchrun stops the others when one fails.
"""
import argparse
import json
import sys
from pathlib import Path

from ._version import __version__
from .config import (REPORT_SONG_OPTIONS, DownloadConfig, EvaluateConfig, GenerateConfig, LoadConfig, ModelConfig,
                     ReportConfig, RunConfig, SamplingConfig, ServeConfig, SongConfig, StructureConfig,
                     TokenizerConfig, TrainConfig, generation_configs)
from .errors import LyricgenError
from .options import add_options, given
from .text.debris import summary as debris_summary


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
    p.set_defaults(func=cmd_train)


def cmd_train(args) -> int:
    import torch

    from .runtime import resolve_device
    from .training.distributed import from_env

    run = RunConfig(**given(args, RunConfig))
    world = from_env(resolve_device(run.device))  # SINGLE unless started by torchrun
    clean = False
    try:
        rc = train(args, run, world)
        clean = True
        return rc
    except torch.distributed.DistError as e:  # another rank stopped (its own message says why)
        raise LyricgenError(f"rank {world.rank} lost contact with the other ranks: "
                            f"{str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__}") from None
    finally:
        world.close(clean)


def train(args, run: RunConfig, world) -> int:
    from .training.run import open_run, stop_on_signals

    quiet = run.quiet or not world.is_main
    with TokenizingBar(quiet) as on_tokenized:
        trainer = open_run(run, given(args, TrainConfig, ModelConfig, TokenizerConfig), on_tokenized, world)
    report = (lambda *a: None) if quiet else say
    s = trainer.summary()
    report(f"corpus {s.corpus.path}: {s.corpus.lines} lines; training windows {s.windows} x {s.seq_len} tokens; "
           f"validation {s.val_tokens} tokens ({s.val_seen_share:.1%} of validation lines also occur in training)")
    if s.corpus and s.corpus.left_out:
        report(f"{debris_summary(s.corpus.debris)}; --keep-debris keeps them")
    if s.corpus and s.corpus.mix:
        why = ("; chosen for a --time-budget run on a small corpus, --mix none trains on the corpus alone"
               if run.mix is None and run.resume is None else "")
        report(f"mixed in {s.corpus.mix.path}: {s.corpus.mix.lines} lines (validation, line habits and the copy "
               f"guard are the corpus's own{why})")
    units = "characters" if s.tokenizer.unit == "char" else f"words, min_freq {s.tokenizer.min_freq}"
    report(f"vocabulary {s.vocab_size} entries ({units}); model {s.cell} {s.parameters:,} parameters on {s.device}"
           + (f", {s.world_size} processes of {s.batch_size} windows per step" if s.world_size > 1 else ""))
    with TrainingBar(s, quiet) as (on_step, on_epoch), stop_on_signals(trainer):
        reason = trainer.run(on_step=on_step, on_epoch=on_epoch)
    s = trainer.summary()
    if not world.is_main:
        return 128 + s.stop_signal if reason == "signal" else 0
    if reason == "signal":
        import signal

        say(f"lyricgen: {signal.Signals(s.stop_signal).name}: saved {s.files.last} at step {s.step}; "
            f"resume with: lyricgen train --resume {s.files.last}")
        return 128 + s.stop_signal
    best = f"best validation loss {s.best_loss:.4f}" if s.best_loss != float("inf") else "no validation yet"
    draw_plot(s.files.dir, report)
    written = ", ".join(p.name for p in (s.files.best, s.files.last, s.files.plot) if p.exists())
    report(f"stopped ({reason.replace('_', ' ')}) after {s.epoch} epochs, {s.step} steps; {best}; "
           f"checkpoints in {s.files.dir}/ ({written})")
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

    def __init__(self, summary, quiet: bool):
        from tqdm import tqdm

        self.bar = tqdm(total=summary.total_steps, initial=summary.step, unit="step", dynamic_ncols=True,
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
    p.add_argument("start", metavar="START_WORD", nargs="?", help="a word or phrase to start from (not with -i)")
    add_options(p, LoadConfig)
    add_options(p, GenerateConfig)
    add_options(p, StructureConfig)
    add_options(p, SongConfig)
    add_options(p, SamplingConfig)
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
        for note in c.notes or ():
            say(f"lyricgen: note: {note}")
        if c.copied_lines is not None:
            say(f"(copied lines {c.copied_lines:.0%}, longest copied span {c.longest_copy} characters)")


def cmd_generate(args) -> int:
    from .runtime import generation_threads, resolve_device
    from .writing.lyricist import Lyricist

    load, command = LoadConfig(**given(args, LoadConfig)), GenerateConfig(**given(args, GenerateConfig))
    if command.interactive and args.start is not None:
        raise LyricgenError("give either START_WORD or -i, not both")
    configs = generation_configs(given(args, SamplingConfig, StructureConfig, SongConfig), sample=command.sample)
    device = resolve_device(load.device)
    generation_threads(device)
    writer = Lyricist.load(load.checkpoint, device)
    if command.interactive:
        return interactive(writer, configs, command.json)
    if command.alternatives_for is not None:
        return print_alternatives(writer, args.start, configs, command)
    print_candidates(*writer.write(args.start, *configs), command.json)  # an empty start: Lyricist.request says so
    return 0


def print_alternatives(writer, start, configs, command) -> int:
    """The song (its kept lines kept), then alternatives for one of its lines, best first."""
    request = writer.request(start, *configs)
    if request.sampling.num_samples != 1:
        raise LyricgenError("alternatives_for writes one song: leave num_samples at 1")
    song = writer.run(request)[0]
    lines, k = song.lines_text(), command.alternatives_for
    if k > len(lines):
        raise LyricgenError(f"alternatives_for: line {k} is out of range: the song has {len(lines)} lines")
    found = writer.alternatives(request, lines, k, command.alternatives)
    if command.json:
        print(json.dumps({"song": song.to_dict(), "line": k, "alternatives": [a.to_dict() for a in found]},
                         ensure_ascii=False))
        return 0
    print(song.text)
    for note in song.notes or ():
        say(f"lyricgen: note: {note}")
    print(f"--- alternatives for line {k} ({lines[k - 1]}):")
    for a in found:
        print(f"{a.text}\t{a.score:.3f}\t{a.rhyme or '-'}{'  (copies the corpus)' if a.copied else ''}")
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
                                   "beside the corpus's habits and, with --reference, real lines of the corpus. "
                                   "The song options (--rhyme, --form, ...) apply to both modes.")
    add_options(p, LoadConfig)
    add_options(p, ReportConfig)
    add_options(p, SongConfig, only=REPORT_SONG_OPTIONS)
    p.set_defaults(func=cmd_report)


def cmd_report(args) -> int:
    from .runtime import generation_threads, resolve_device
    from .text.corpus import read_corpus
    from .writing.lyricist import Lyricist
    from .writing.report import default_words, format_report, song_report

    load, command = LoadConfig(**given(args, LoadConfig)), ReportConfig(**given(args, ReportConfig))
    device = resolve_device(load.device)
    generation_threads(device)
    writer = Lyricist.load(load.checkpoint, device)
    words = ([w.strip() for w in read_corpus(command.words) if w.strip()] if command.words
             else default_words(writer.vocab, command.songs))[:command.songs]
    if not words:
        raise LyricgenError("no start words: the vocabulary knows none of the default ones; pass --words")
    reference = read_corpus(command.reference) if command.reference else None
    options = given(args, SongConfig)
    modes = ("greedy", "sampled") if command.mode == "both" else (command.mode,)
    report = song_report(writer, words, command.lines, reference, options, modes)
    if command.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        print(format_report(report))
    return 0


# -- evaluate ---------------------------------------------------------------------------------------
def add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="score a text file: token perplexity and open-vocabulary bits per character")
    p.add_argument("file", type=Path, metavar="FILE", help="lyrics to score (one line per line)")
    add_options(p, LoadConfig)
    add_options(p, EvaluateConfig)
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args) -> int:
    from .scoring.evaluate import evaluate_file

    load, command = LoadConfig(**given(args, LoadConfig)), EvaluateConfig(**given(args, EvaluateConfig))
    ev = evaluate_file(load.checkpoint, args.file, command.encoding, command.held_out, command.repeat, load.device)
    if command.json:
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
    p.add_argument("name", nargs="?", choices=sorted(CORPORA), help="corpus to fetch (--list shows them)")
    add_options(p, DownloadConfig)
    p.set_defaults(func=cmd_download)


def cmd_download(args) -> int:
    from .text.download import CORPORA, download

    command = DownloadConfig(**given(args, DownloadConfig))
    if command.list:
        width = max(map(len, CORPORA))
        for c in CORPORA.values():
            print(f"{c.name:{width}s} {c.description}\n{'':{width}s} licence: {c.licence}; writes {c.out}")
        return 0
    if args.name is None:
        raise LyricgenError(f"name a corpus to fetch: {', '.join(sorted(CORPORA))} (or --list)")
    path, written = download(args.name, command.out, command.url, command.sha256, command.force)
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
