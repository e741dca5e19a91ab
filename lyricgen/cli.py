"""Command line: `lyricgen train | generate | evaluate | download`.

A thin layer over the library: it parses options, prints, shows progress and turns every
LyricgenError into one `lyricgen: error: ...` line on stderr and a non-zero exit.
"""
import argparse
import json
import signal
import sys
from dataclasses import fields
from pathlib import Path

from .errors import LyricgenError

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_CORPUS = ROOT / "data" / "sample_lyrics.txt"
DEFAULT_OUT = Path("checkpoints")
DEFAULT_CHECKPOINT = DEFAULT_OUT / "best.pt"
# options that describe the model or the data; on --resume they come from the checkpoint
FIXED_ON_RESUME = ("cell", "embed_dim", "hidden_size", "num_layers", "dropout", "embed_dropout",
                   "tie_weights", "min_freq", "seq_len", "batch_size", "val_fraction", "seed", "lr",
                   "weight_decay", "clip", "lr_factor", "lr_patience")


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not usage + error
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def _number(kind, low=None, low_ok=True, high=None, high_ok=True):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got {text!r}") from None
        if value != value or value in (float("inf"), float("-inf")) or (low is not None and (value < low or (value == low and not low_ok))) or \
                (high is not None and (value > high or (value == high and not high_ok))):
            lo = "" if low is None else f"{'>=' if low_ok else '>'} {low}"
            hi = "" if high is None else f"{'<=' if high_ok else '<'} {high}"
            raise argparse.ArgumentTypeError(f"must be {' and '.join(x for x in (lo, hi) if x)}, got {text}")
        return value
    return parse


positive_int = _number(int, 1)
non_negative_int = _number(int, 0)
positive_float = _number(float, 0, low_ok=False)
probability = _number(float, 0, high=1, high_ok=False)
seed_int = _number(int, 0, high=2**32 - 1)


def _defaults(cls) -> dict:
    return {f.name: f.default for f in fields(cls)}


# -- train ------------------------------------------------------------------------------------------
def add_train(sub):
    from .model import CELLS, ModelConfig
    from .train import TokenizerConfig, TrainConfig

    t, m, k = _defaults(TrainConfig), _defaults(ModelConfig), _defaults(TokenizerConfig)
    p = sub.add_parser("train", help="train a model on a lyrics corpus (default: the bundled sample)",
                       description="Train on a corpus (UTF-8, one lyric line per line). Writes last.pt, "
                                   "best.pt and metrics.csv to --out.")
    a = p.add_argument
    a("--corpus", type=Path, help=f"lyrics file (default: the bundled {SAMPLE_CORPUS.name}; on --resume, the checkpoint's)")
    a("--encoding", help="text encoding of the corpus, e.g. gb18030 (default: utf-8; on --resume, the checkpoint's)")
    a("--out", type=Path, help="directory for checkpoints and metrics.csv (default: checkpoints/, on --resume the checkpoint's)")
    a("--resume", type=Path, metavar="CKPT", help="continue the run saved in this checkpoint")
    a("--force", action="store_true", help="start a new run even if --out already holds one")
    a("--epochs", type=non_negative_int, help=f"total epochs, an extension on --resume (default: {t['epochs']})")
    a("--time-budget", type=positive_float, metavar="SECONDS", help="stop after this much wall time, keeping best.pt and last.pt")
    a("--max-steps", type=positive_int, help="stop after this many optimizer steps in total, saving last.pt")
    a("--batch-size", type=positive_int, help=f"windows per batch (default: {t['batch_size']})")
    a("--seq-len", type=positive_int, help=f"tokens per window (default: {t['seq_len']})")
    a("--lr", type=_number(float, 0, low_ok=False, high=10), help=f"Adam learning rate (default: {t['lr']})")
    a("--weight-decay", type=_number(float, 0), help=f"Adam weight decay (default: {t['weight_decay']})")
    a("--clip", type=positive_float, help=f"max gradient norm (default: {t['clip']})")
    a("--val-fraction", type=probability, help=f"share of lines held out at the end of the corpus (default: {t['val_fraction']})")
    a("--patience", type=positive_int, help="early stop after this many epochs without improvement; an epoch "
      f"counts as at least 50 steps on tiny corpora (default: {t['patience']})")
    a("--seed", type=seed_int, help=f"random seed (default: {t['seed']})")
    a("--cell", choices=sorted(CELLS), help=f"recurrent cell; rnn is the tutorial's (default: {m['cell']})")
    a("--embed-dim", type=positive_int, help=f"embedding size (default: {m['embed_dim']})")
    a("--hidden-size", type=positive_int, help=f"recurrent state size (default: {m['hidden_size']})")
    a("--num-layers", type=positive_int, help=f"stacked recurrent layers (default: {m['num_layers']})")
    a("--dropout", type=probability, help=f"dropout on activations (default: {m['dropout']})")
    a("--embed-dropout", type=probability, help=f"share of vocabulary entries dropped per batch (default: {m['embed_dropout']})")
    a("--tie-weights", action=argparse.BooleanOptionalAction, default=None,
      help=f"share the embedding and output matrices (default: {m['tie_weights']})")
    a("--min-freq", type=positive_int, help=f"words seen fewer times are spelled as characters (default: {k['min_freq']})")
    a("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where to train; auto = CUDA when available (default: auto)")
    a("--deterministic", action="store_true", help="use deterministic CUDA algorithms (slower; CPU runs are deterministic anyway)")
    a("--no-cache", action="store_true", help="tokenise with jieba even if this text was tokenised before")
    a("--quiet", action="store_true", help="no progress bar, no per-epoch lines")
    p.set_defaults(func=cmd_train)


def _given(args, names) -> dict:
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def cmd_train(args) -> int:
    from .checkpoint import load_checkpoint
    from .data import read_corpus_with_digest
    from .model import ModelConfig, count_parameters
    from .runtime import make_deterministic, resolve_device
    from .train import RESUME_OVERRIDES, TokenizerConfig, TrainConfig, resume_run, start_run

    device = resolve_device(args.device)
    if args.deterministic:
        make_deterministic(device)
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr))
    ckpt = load_checkpoint(args.resume) if args.resume else None
    out = args.out or (Path(args.resume).parent if args.resume else DEFAULT_OUT)
    _check_out(out, args)
    if ckpt is not None:
        recorded = ckpt.get("corpus", {}).get("path")
        if args.corpus is None and not recorded:
            raise LyricgenError("the checkpoint does not name its corpus; pass --corpus")
        corpus = args.corpus or Path(recorded)
        encoding = ckpt.get("corpus", {}).get("encoding", "utf-8")
        if args.encoding is not None and args.encoding.lower() != encoding.lower():
            raise LyricgenError(f"the run was trained on {encoding} text; --encoding cannot change on resume")
    else:
        encoding = args.encoding or "utf-8"
        corpus = args.corpus or SAMPLE_CORPUS
        if args.corpus is None and not SAMPLE_CORPUS.exists():
            raise LyricgenError("the bundled sample corpus ships in the repository's data/ folder, which this "
                                "installation lacks; install from a checkout (pip install -e .) or pass --corpus")
        if args.epochs == 0:
            raise LyricgenError("--epochs must be at least 1 for a new run")
    lines, digest = read_corpus_with_digest(corpus, encoding)
    if ckpt is not None and ckpt.get("corpus", {}).get("sha256") not in (None, digest):
        raise LyricgenError(f"{corpus} is not the corpus this checkpoint was trained on (its content changed)")
    corpus_info = {"path": str(Path(corpus).resolve()), "sha256": digest, "lines": len(lines), "encoding": encoding}
    try:
        if ckpt is not None:
            fixed = _given(args, FIXED_ON_RESUME)
            trainer = resume_run(ckpt, lines, {**fixed, **_given(args, RESUME_OVERRIDES)}, out, device,
                                 corpus_info, use_cache=not args.no_cache)
        else:
            config = TrainConfig(**_given(args, [f.name for f in fields(TrainConfig)]))
            tokenizer = TokenizerConfig(**_given(args, ("min_freq",)))
            model_options = _given(args, [f.name for f in fields(ModelConfig)][1:])
            trainer = start_run(lines, model_options, tokenizer, config, out, device, corpus_info,
                                use_cache=not args.no_cache)
    except ValueError as e:  # a config's own validation
        raise LyricgenError(str(e)) from None
    if args.force:  # starting over: the old run's files must not mix with the new one's
        for name in ("best.pt", "last.pt", "metrics.csv"):
            if ckpt is None or (out / name).resolve() != Path(args.resume).resolve():
                (out / name).unlink(missing_ok=True)
    data, model, config = trainer.data, trainer.model, trainer.config
    say(f"corpus {corpus}: {len(lines)} lines; training windows {len(data.train)} x {config.seq_len} tokens; "
        f"validation {len(data.val_ids)} tokens ({data.val_seen_share:.1%} of validation lines also occur in training)")
    say(f"vocabulary {len(data.vocab)} entries (min_freq {trainer.tokenizer.min_freq}); model {model.config.cell} "
        f"{count_parameters(model):,} parameters on {device}")
    return _run(trainer, args, say)


def _check_out(out: Path, args) -> None:
    """Refuse an --out that is a file, or that holds another run, before any training."""
    if out.exists() and not out.is_dir():
        raise LyricgenError(f"--out {out} exists and is not a directory")
    same_run = args.resume is not None and out.resolve() == Path(args.resume).resolve().parent
    existing = [n for n in ("last.pt", "best.pt") if (out / n).exists()]
    if existing and not same_run and not args.force:
        raise LyricgenError(f"{out} already holds a run ({', '.join(existing)}); continue it with "
                            f"--resume {out / 'last.pt'} or start over with --force")
    last = out / "last.pt"
    if same_run and last.exists() and last.resolve() != Path(args.resume).resolve() and not args.force:
        raise LyricgenError(f"resuming {args.resume} would overwrite {last}, which holds later steps; "
                            "resume from it, or pass --force")


def _run(trainer, args, say) -> int:
    from tqdm import tqdm

    from .data import num_batches

    st, cfg = trainer.state, trainer.config
    nb = num_batches(len(trainer.train_data), cfg.batch_size)
    bar = tqdm(total=max(cfg.epochs * nb, st.step), initial=st.step, unit="step", dynamic_ncols=True,
               disable=True if args.quiet else None, leave=False)

    def on_step(info):
        bar.update(1)
        bar.set_postfix(epoch=info["epoch"], loss=f"{info['loss']:.3f}", tok_s=f"{info['tokens_per_s']:,.0f}")

    def on_epoch(row):
        line = (f"epoch {row['epoch']:g}  step {row['step']}  train_loss {row['train_loss']:.3f}")
        if row["val_loss"] != "":
            line += (f"  val_loss {row['val_loss']:.3f}  val_ppl {row['val_ppl']:.1f}  bpc-open {row['val_bpc_open']:.3f}"
                     f" (network alone {row['val_bpc_open_rnn']:.3f})")
        line += f"  {row['tokens_per_s']:,} tok/s  {row['elapsed_s']}s"
        if args.quiet:
            return
        bar.write(line, file=sys.stderr)

    def on_signal(signum, frame):
        trainer.stop_signal = signum

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    reason = None
    try:
        reason = trainer.run(on_step=on_step, on_epoch=on_epoch)
    finally:
        bar.close()
        for s, handler in previous.items():
            # after a stop request we are on our way out: more Ctrl-C's (a held-down key) are ignored
            signal.signal(s, signal.SIG_IGN if reason == "signal" else handler)
    out = trainer.out_dir
    if reason == "signal":
        name = signal.Signals(trainer.stop_signal).name
        print(f"lyricgen: {name}: saved {out / 'last.pt'} at step {st.step}; resume with: "
              f"lyricgen train --resume {out / 'last.pt'}", file=sys.stderr)
        return 128 + trainer.stop_signal
    best = f"best validation loss {st.best_saved_loss:.4f}" if st.best_saved_loss != float("inf") else "no validation yet"
    files = ", ".join(n for n in ("best.pt", "last.pt") if (out / n).exists())
    say(f"stopped ({reason.replace('_', ' ')}) after {st.epoch} epochs, {st.step} steps; {best}; "
        f"checkpoints in {out}/ ({files})")
    return 0


# -- generate ---------------------------------------------------------------------------------------
def add_generate(sub):
    p = sub.add_parser("generate", help="write lyrics from a start word",
                       description="Write lyrics that continue START_WORD (greedy by default). With -i, read "
                                   "start words from standard input, one per line; a line ':set temperature 0.8' "
                                   "changes an option for the lines after it.")
    a = p.add_argument
    a("start", metavar="START_WORD", nargs="?", help="a word or phrase to start from (not with -i)")
    a("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help=f"model checkpoint (default: {DEFAULT_CHECKPOINT})")
    a("-i", "--interactive", action="store_true", help="load once, then read start words line by line from stdin")
    a("--max-tokens", type=positive_int, default=100, help="at most this many tokens per candidate (default: 100)")
    a("--lines", type=non_negative_int, default=0, help="stop after this many lines (default: 0 = no limit)")
    a("--min-line-tokens", type=non_negative_int, default=1,
      help="no line break before this many tokens in a line (default: 1, no blank lines; 0 allows them)")
    a("--max-line-tokens", type=non_negative_int, default=0, help="break a line after this many tokens (0 = off)")
    a("--temperature", type=_number(float, 0), default=0.0, help="0 = greedy (default); higher = more random")
    a("--top-k", type=non_negative_int, default=0, help="sample only from the k most likely tokens (0 = all)")
    a("--top-p", type=_number(float, 0, low_ok=False, high=1), default=1.0, help="nucleus sampling threshold (1.0 = off)")
    a("--repetition-penalty", type=positive_float, default=1.0, help="> 1 discourages repeating tokens (1.0 = off)")
    a("--no-repeat-ngram", type=non_negative_int, default=0, help="never repeat an n-gram of this many tokens (0 = off)")
    a("--num-samples", type=positive_int, default=1, help="candidates to write in one batch, ranked by mean log-probability")
    a("--no-copy", action="store_true", help="never end a line that occurs verbatim in the training corpus")
    a("--seed", type=seed_int, help="seed for sampling, for reproducible output")
    a("--sample", action="store_true", help="the recommended sampling settings (--temperature 0.8 --top-p 0.9 "
      "--repetition-penalty 1.2 --no-repeat-ngram 4) for options not given")
    a("--json", action="store_true", help="print a JSON list: text, score, copied_lines, longest_copy per candidate")
    a("--device", default="cpu", choices=["auto", "cpu", "cuda"], help="where to run (default: cpu, fastest for a few texts)")
    p.set_defaults(func=cmd_generate)


GENERATE_OPTIONS = ("max_tokens", "lines", "min_line_tokens", "max_line_tokens", "no_copy", "num_samples",
                    "temperature", "top_k", "top_p", "repetition_penalty", "no_repeat_ngram", "seed")


def _write(writer, start: str, options: dict, as_json: bool) -> None:
    ids, unknown = writer.prompt(start)
    if unknown:
        print(f"lyricgen: note: not in the vocabulary, left out of the prompt: {''.join(unknown)}", file=sys.stderr)
    candidates = writer.generate(start, **options, prompt_ids=ids)
    if as_json:
        print(json.dumps([vars(c) for c in candidates], ensure_ascii=False))
        return
    for k, c in enumerate(candidates):
        if len(candidates) > 1:
            print(f"--- candidate {k + 1}, score {c.score:.3f}")
        print(c.text)
        if c.copied_lines is not None:
            print(f"(copied lines {c.copied_lines:.0%}, longest copied span {c.longest_copy} characters)",
                  file=sys.stderr)


def _interactive(writer, options: dict, as_json: bool) -> int:
    from .tokenizer import normalize_line

    tty = sys.stdin.isatty()
    while True:
        if tty:
            print("start word (or :set OPTION VALUE, Ctrl-D to quit)> ", end="", file=sys.stderr, flush=True)
        try:
            line = sys.stdin.readline()
        except KeyboardInterrupt:
            print(file=sys.stderr)
            return 0
        if not line:
            return 0
        line = line.strip()
        if not line:
            continue
        try:
            if line.startswith(":set "):
                _set_option(options, line[5:])
            elif normalize_line(line):
                _write(writer, line, options, as_json)
        except LyricgenError as e:
            print(f"lyricgen: error: {e}", file=sys.stderr)
        sys.stdout.flush()


def _set_option(options: dict, text: str) -> None:
    parts = text.split()
    if len(parts) != 2 or parts[0].replace("-", "_") not in GENERATE_OPTIONS:
        raise LyricgenError(f"usage: :set OPTION VALUE, OPTION one of {', '.join(GENERATE_OPTIONS)}")
    name, value = parts[0].replace("-", "_"), parts[1]
    kind = type(options[name]) if options[name] is not None else int
    try:
        parsed = value.lower() in ("1", "true", "yes", "on") if kind is bool else kind(value)
    except ValueError:
        raise LyricgenError(f"{name} needs a {kind.__name__}, got {value!r}") from None
    _validate({**options, name: parsed})  # now, not at the next start word; a rejected value is not kept
    options[name] = parsed
    print(f"{name} = {options[name]}", file=sys.stderr)


def _validate(options: dict) -> None:
    from .predict import Sampling, Structure

    Structure(*(options[k] for k in ("max_tokens", "lines", "min_line_tokens", "max_line_tokens", "no_copy")))
    Sampling(*(options[k] for k in ("temperature", "top_k", "top_p", "repetition_penalty", "no_repeat_ngram", "seed")))


def cmd_generate(args) -> int:
    import torch

    from .predict import Lyricist
    from .runtime import resolve_device
    from .tokenizer import normalize_line

    if args.interactive and args.start is not None:
        raise LyricgenError("give either START_WORD or -i, not both")
    if not args.interactive and (args.start is None or not normalize_line(args.start)):
        raise LyricgenError("the start word is empty")
    options = {name: getattr(args, name) for name in GENERATE_OPTIONS}
    if args.sample:
        from .predict import RECOMMENDED_SAMPLING

        defaults = {"temperature": 0.0, "top_p": 1.0, "repetition_penalty": 1.0, "no_repeat_ngram": 0}
        options.update({k: v for k, v in RECOMMENDED_SAMPLING.items() if options[k] == defaults[k]})
    _validate(options)
    device = resolve_device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)  # a chain of tiny products: one thread is fastest (docs/tuning.md)
    writer = Lyricist.load(args.checkpoint, device)
    if args.interactive:
        return _interactive(writer, options, args.json)
    _write(writer, args.start, options, args.json)
    return 0


# -- evaluate ---------------------------------------------------------------------------------------
def add_evaluate(sub):
    p = sub.add_parser("evaluate", help="score a text file: token perplexity and open-vocabulary bits per character")
    a = p.add_argument
    a("file", type=Path, metavar="FILE", help="lyrics to score (one line per line)")
    a("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help=f"model checkpoint (default: {DEFAULT_CHECKPOINT})")
    a("--encoding", default="utf-8", help="text encoding of FILE (default: utf-8)")
    a("--json", action="store_true", help="print one JSON object instead of a sentence")
    a("--no-repeat", action="store_true", help="score with the network alone, without the repeat model")
    a("--held-out", action="store_true",
      help="score only FILE's held-out tail: its last lines, in the share the checkpoint validated on")
    a("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where to run (default: auto)")
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args) -> int:
    import torch

    from .checkpoint import load_checkpoint, model_from_checkpoint
    from .data import read_corpus, split_lines
    from .evaluate import score_lines
    from .runtime import resolve_device
    from .tokenizer import tokenize_lines

    device = resolve_device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)  # one stream scored token by token: one thread is fastest
    ckpt = load_checkpoint(args.checkpoint)
    model, vocab = model_from_checkpoint(ckpt, args.checkpoint)
    model.to(device)
    lines = read_corpus(args.file, args.encoding)
    if args.held_out:
        fraction = float(ckpt.get("train_config", {}).get("val_fraction", 0.1))
        if fraction <= 0:
            raise LyricgenError("the checkpoint was trained without a held-out part (--val-fraction 0)")
        lines = split_lines(lines, fraction)[1]
        if not any(line.strip() for line in lines):
            raise LyricgenError(f"{args.file} is too short to have a held-out part")
    alpha = None if args.no_repeat else ckpt.get("repeat_alpha")
    result, rnn = score_lines(model, vocab, tokenize_lines(lines), float(ckpt.get("unk_prob", 0.0)), device, alpha)
    if args.json:
        print(json.dumps({"ppl": result.ppl, "bpc_open": result.bpc_open, "loss": result.loss,
                          "ppl_rnn": rnn.ppl, "bpc_open_rnn": rnn.bpc_open, "repeat_model": alpha is not None,
                          "tokens": result.tokens, "chars": result.chars, "unk": result.unk,
                          "unk_chars": result.unk_chars, "file": str(args.file)}))
    else:
        print(f"{args.file}: {result.tokens} tokens, {result.chars} characters ({result.unk} <unk> covering "
              f"{result.unk_chars}): token perplexity {result.ppl:.2f}, bpc-open {result.bpc_open:.3f}"
              + (f" (network alone: perplexity {rnn.ppl:.2f}, bpc-open {rnn.bpc_open:.3f})" if alpha else ""))
    return 0


# -- download ---------------------------------------------------------------------------------------
def add_download(sub):
    from .download import CORPORA

    p = sub.add_parser("download", help="fetch a public lyrics corpus, checking its sha256")
    a = p.add_argument
    a("name", choices=sorted(CORPORA), help="corpus to fetch")
    a("--url", help="fetch from this address instead (a mirror)")
    a("--sha256", help="expected sha256 of the zip (default: the published one)")
    a("--out", type=Path, help="where to write the text (default: data/<name>_lyrics.txt)")
    a("--force", action="store_true", help="replace an existing file whose content differs")
    p.set_defaults(func=cmd_download)


def cmd_download(args) -> int:
    from .download import download

    path, written = download(args.name, args.out, args.url, args.sha256, args.force)
    print(f"{'wrote' if written else 'already present, checksum verified:'} {path}")
    return 0


def build_parser() -> Parser:
    parser = Parser(prog="lyricgen", description="Learn to write song lyrics from a corpus; write new ones from a start word.")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"lyricgen {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_train(sub)
    add_generate(sub)
    add_evaluate(sub)
    add_download(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except LyricgenError as e:
        print(f"lyricgen: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lyricgen: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
