"""Starting or resuming a training run in a directory: every rule `lyricgen train` follows, as a
library the command line and Python programs both call.

    trainer = open_run(RunConfig(corpus="my.txt", out="runs/my"), {"epochs": 20, "hidden_size": 256})
    with stop_on_signals(trainer):
        reason = trainer.run()

The rules: a directory that already holds a run is continued with `resume` or replaced with
`force`, never mixed; resume takes the architecture, vocabulary, settings and corpus from the
checkpoint (only the options marked `extend` or `per_run` in config.py may be given) and refuses a
corpus whose content changed; a new run needs at least one epoch. A run trained by N torchrun
processes resumes with N (`world`, distributed.py); every rank checks the same input before the ranks
first wait for each other, so a refusal never leaves a rank waiting.
"""
import dataclasses
import math
import signal
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch

from ..checkpoint import Checkpoint, load_checkpoint
from ..config import ModelConfig, RunConfig, TokenizerConfig, TrainConfig
from ..errors import LyricgenError
from ..fitted import SideModels
from ..model import build_model
from ..options import EXTEND, PER_RUN, flag, pick
from ..runfiles import DEFAULT_DIR, RunFiles
from ..runtime import make_deterministic, resolve_device
from ..text.corpus import CorpusInfo, load_corpus, mixed_lines, split_lines
from ..text.rhyme import is_han
from ..text.tokenizer import tokenize_cached
from ..text.vocab import Vocab
from .data import prepare
from .distributed import SINGLE, World
from .trainer import Trainer

SAMPLE_CORPUS = Path(__file__).resolve().parents[2] / "data" / "sample_lyrics.txt"
OPEN_LYRICS = SAMPLE_CORPUS.with_name("open_lyrics.txt")  # --mix bundled
# With a --time-budget and no --mix, a small Chinese corpus is trained with `--mix bundled`. A time
# budget asks for the best model that time allows, and a small corpus alone does not use it: the Jay
# Chou corpus (first 90%, 55 k characters) early-stopped after 153 of 300 s, and four blind panels read
# its songs as collage (fluency 1.5-2.0, coherence 1.1-1.2 of 5) against 3.0-3.3 and 1.8-2.4 for the
# same 300 s with the mix (docs/panels.md, K, L, M and P). Not with --epochs: an epoch would then cover 9-22x the
# text (the bundled sample: 22x), and the README's first command would take an hour, not minutes.
# 500 k characters: the open lyrics are 364 k, so a larger corpus is mostly its own teacher already.
AUTO_MIX_CHARS = 500_000
AUTO_MIX_HAN = 0.5  # an English or other non-Chinese corpus would only learn a second language
NO_MIX = "none"
CHANGEABLE_ON_RESUME = TrainConfig.option_names(EXTEND) + TrainConfig.option_names(PER_RUN)
BASE_CHANGEABLE = ("dropout", "embed_dropout")  # of ModelConfig with --init-from: the rest shape the weights


def open_run(run: RunConfig, options: dict, progress=None, world: World = SINGLE) -> Trainer:
    """A Trainer ready to run: a new run from `options` (fields of ModelConfig, TokenizerConfig and
    TrainConfig; the rest take their defaults), or the run of `run.resume`, extended by them.
    progress(lines, total) follows the tokenisation of a corpus that is not in the cache."""
    device = world.local_device(resolve_device(run.device))
    if run.deterministic:
        make_deterministic(device)
    if run.init_from and run.resume:
        raise LyricgenError("--init-from starts a new run from a base model; it cannot be combined with --resume")
    resumed = load_checkpoint(run.resume) if run.resume else None
    out = Path(run.out) if run.out else (Path(run.resume).parent if run.resume else DEFAULT_DIR)
    check_out(out, run)
    if resumed is None:
        trainer = _start(run, options, out, device, progress, world)
    else:
        trainer = _resume(resumed, run, options, out, device, progress, world)
    if run.force and world.is_main:  # starting over: the old run's files must not mix with the new one's
        for path in RunFiles(out).all():
            if run.resume is None or path.resolve() != Path(run.resume).resolve():
                path.unlink(missing_ok=True)
    return trainer


def check_out(out: Path, run: RunConfig) -> None:
    """Refuse an output directory that is a file, or that holds another run, before any training."""
    if out.exists() and not out.is_dir():
        raise LyricgenError(f"--out {out} exists and is not a directory")
    same_run = run.resume is not None and out.resolve() == Path(run.resume).resolve().parent
    files = RunFiles(out)
    existing = [p.name for p in (files.last, files.best) if p.exists()]
    if existing and not same_run and not run.force:
        raise LyricgenError(f"{out} already holds a run ({', '.join(existing)}); continue it with "
                            f"--resume {files.last} or start over with --force")
    last = files.last
    if same_run and last.exists() and last.resolve() != Path(run.resume).resolve() and not run.force:
        raise LyricgenError(f"resuming {run.resume} would overwrite {last}, which holds later steps; "
                            "resume from it, or pass --force")


def _start(run: RunConfig, options: dict, out: Path, device, progress=None, world: World = SINGLE) -> Trainer:
    if run.corpus is None and not SAMPLE_CORPUS.exists():
        raise LyricgenError("the bundled sample corpus ships in the repository's data/ folder, which this "
                            "installation lacks; install from a checkout (pip install -e .) or pass --corpus")
    base = load_checkpoint(run.init_from) if run.init_from else None
    keep = (base.tokenizer if base else TokenizerConfig(**pick(options, TokenizerConfig))).keep_debris
    lines, corpus = load_corpus(run.corpus or SAMPLE_CORPUS, run.encoding or "utf-8", keep)
    mix = None
    chosen = chosen_mix(run, options, lines, corpus)
    if chosen:
        mix, corpus.mix = load_corpus(mix_path(chosen), "utf-8", keep)
    return start_run(lines, options, out, device, corpus, run.cache, run.tokenize_workers(), progress, world, base,
                     mix)


def chosen_mix(run: RunConfig, options: dict, lines: list[str], corpus: CorpusInfo) -> str | None:
    """A new run's --mix: as given (`none`: no mix); when not given, `bundled` for a run with a
    --time-budget on a small Chinese corpus (under AUTO_MIX_CHARS characters, at least AUTO_MIX_HAN of
    them Han) that starts from scratch (no --init-from: a base already knows the language)."""
    if run.mix is not None:
        return None if run.mix == NO_MIX else run.mix
    if run.init_from or options.get("time_budget") is None or not OPEN_LYRICS.exists():
        return None
    if Path(corpus.path).resolve() == OPEN_LYRICS.resolve():
        return None
    text = "".join(lines).replace(" ", "")
    han = sum(map(is_han, text))
    return "bundled" if text and len(text) < AUTO_MIX_CHARS and han >= AUTO_MIX_HAN * len(text) else None


def mix_path(mix: str) -> Path:
    """--mix: `bundled` is data/open_lyrics.txt, anything else a file."""
    if mix != "bundled":
        return Path(mix)
    if not OPEN_LYRICS.exists():
        raise LyricgenError("--mix bundled reads data/open_lyrics.txt, which this installation lacks; install from "
                            "a checkout (pip install -e .) or pass --mix FILE")
    return OPEN_LYRICS


def start_run(lines: list[str], options: dict, out, device, corpus: CorpusInfo | None = None,
              use_cache: bool = True, workers: int = 1, progress=None, world: World = SINGLE,
              base: Checkpoint | None = None, mix: list[str] | None = None) -> Trainer:
    """A new run on lyric lines: split, tokenise, build the vocabulary, fit the side models, seed,
    build the model. With `mix` (--mix) the network and the n-gram also learn from those lines
    (text/corpus.mixed_lines); validation, habits and originality stay the corpus's own.
    `options` are fields of ModelConfig, TokenizerConfig and TrainConfig. From a
    `base` checkpoint (fine-tuning), the tokenizer and network come from it, and its vocabulary
    grows by the tokens a scratch run on these lines would have and it lacks (grown_vocab), so no
    text has more `<unk>` than from scratch; the network gets rows for them (grown_model), and the
    base's n-gram joins the mixture as a component of its own."""
    config = TrainConfig(**pick(options, TrainConfig))
    tokenizer = base.tokenizer if base else TokenizerConfig(**pick(options, TokenizerConfig))
    if config.epochs == 0:
        raise LyricgenError("--epochs must be at least 1 for a new run")
    if base is not None:
        fixed = sorted(set(pick(options, ModelConfig)) - set(BASE_CHANGEABLE) | set(pick(options, TokenizerConfig)))
        if fixed:
            raise LyricgenError(f"{flag(fixed[0])} is fixed by the --init-from checkpoint")
    shape = base.model_config if base else ModelConfig(vocab_size=1, **pick(options, ModelConfig))
    if shape.cell == "transformer" and config.seq_len < shape.attention_window:
        # generation keeps attention_window tokens of context: training must have seen such distances
        raise LyricgenError(f"--seq-len ({config.seq_len}) must be at least --attention-window "
                            f"({shape.attention_window}) with --cell transformer")
    train_lines, val_lines = split_lines(lines, config.val_fraction)
    trained = mixed_lines(train_lines, mix) if mix else train_lines
    with world.main_first() if use_cache else nullcontext():  # one rank per node fills the token cache
        vocab = base and grown_vocab(base.vocab, trained, tokenizer, use_cache, workers)
        data = prepare(trained, val_lines, tokenizer.min_freq, config.seq_len, vocab=vocab,
                       use_cache=use_cache, workers=workers,
                       progress=progress and (lambda n: progress(n, len(trained))), unit=tokenizer.unit)
    side = SideModels.fit(train_lines, data.train.stream, data.vocab, data.val.ids, corpus.names if corpus else ())
    torch.manual_seed(config.seed)
    if base is None:
        model = build_model(ModelConfig(vocab_size=len(data.vocab), **pick(options, ModelConfig)))
    else:
        config_grown = dataclasses.replace(base.model_config, vocab_size=len(data.vocab), **pick(options, ModelConfig))
        model = grown_model(base, config_grown, data.vocab, data.train.stream)
        base_mixture = base.side.mixture
        if base_mixture is not None and side.mixture is not None:
            side.mixture = side.mixture.with_base(base_mixture.ngram.widen(len(data.vocab)), data.val.ids,
                                                  data.vocab.line_break_id)
    if world.rank:  # the same initial weights on every rank, then other dropout masks (each state is saved)
        torch.manual_seed(config.seed + world.rank)
    return Trainer(model, data, config, tokenizer, side, out, torch.device(device), corpus, world)


def grown_vocab(vocab: Vocab, train_lines: list[str], tokenizer: TokenizerConfig, use_cache: bool = True,
                workers: int = 1) -> Vocab:
    """A base's vocabulary grown by the tokens that a scratch run on `train_lines` (the same unit and
    min_freq) would have and it lacks: old ids keep their meaning, new ones follow (vocab.py)."""
    stream = tokenize_cached(train_lines, use_cache, workers)
    return vocab.grow(Vocab.build_stream(stream, min_freq=tokenizer.min_freq, unit=tokenizer.unit))


NEW_ROW_NOISE = 0.01  # new embedding rows: the old rows' mean plus this share of their spread as noise
CALIBRATION_TOKENS = 4096  # of the training stream, to set the new tokens' output biases


@torch.no_grad()
def grown_model(base: Checkpoint, config: ModelConfig, vocab: Vocab, stream: torch.Tensor) -> torch.nn.Module:
    """The base's network with rows for the tokens its vocabulary grew by (config.vocab_size > the
    base's). Every old row and every other weight is copied exactly. A new embedding row (the
    output row too: tied, or untied likewise) is the mean of the old rows plus noise of
    NEW_ROW_NOISE of their per-column spread, so a new token starts as an average one. Its output
    bias is set so that, over the first CALIBRATION_TOKENS of the training `stream`, the network
    gives it on average its unigram frequency there (vocab.counts: the fine-tuning corpus's):
    on held-out text that cost the new tokens 8.6 nats each at the start against 12.8 with zero
    biases (docs/tuning.md)."""
    old, new = base.model_config.vocab_size, config.vocab_size
    weights = dict(base.weights)
    for name in ("embedding.weight", "decoder.weight"):
        t = weights[name]
        noise = NEW_ROW_NOISE * t.std(0, keepdim=True) * torch.randn(new - old, t.shape[1], dtype=t.dtype)
        weights[name] = torch.cat([t, t.mean(0, keepdim=True) + noise])
    if config.tie_weights:
        weights["decoder.weight"] = weights["embedding.weight"]
    weights["decoder.bias"] = torch.cat([weights["decoder.bias"], weights["decoder.bias"].new_zeros(new - old)])
    model = build_model(config)
    model.load_state_dict(weights)
    if new > old:
        model.eval()
        logits, _ = model(stream[: CALIBRATION_TOKENS].long().unsqueeze(0))  # (1, T, V), new biases 0
        logits = logits[0].float()
        logp_new = logits[:, old:] - torch.logsumexp(logits[:, :old], 1, keepdim=True)  # against the old tokens' mass
        mean_p = torch.logsumexp(logp_new, 0) - math.log(logp_new.shape[0])  # (new - old,) ln of the mean p
        counts = torch.tensor(vocab.counts[old:], dtype=torch.float32).clamp(min=0.5)
        model.decoder.bias[old:] = torch.log(counts / max(stream.numel() - 1, 1)) - mean_p
    return model


def _resume(ckpt: Checkpoint, run: RunConfig, options: dict, out: Path, device, progress=None,
            world: World = SINGLE) -> Trainer:
    fixed = sorted(set(options) - set(CHANGEABLE_ON_RESUME))
    if fixed:
        raise LyricgenError(f"{flag(fixed[0])} is fixed by the checkpoint and cannot change on resume")
    if ckpt.training is None:
        raise LyricgenError("the checkpoint holds no training state: it can generate and evaluate, but not resume")
    if ckpt.training.world_size != world.world_size:
        raise LyricgenError(f"{run.resume} was trained by {ckpt.training.world_size} process(es) and this run has "
                            f"{world.world_size}: resume with the same world size (torchrun --nproc-per-node "
                            f"{ckpt.training.world_size}, or plain lyricgen for 1), as the data order depends on it")
    recorded = ckpt.corpus
    if run.corpus is None and not (recorded and recorded.path):
        raise LyricgenError("the checkpoint does not name its corpus; pass --corpus")
    encoding = recorded.encoding if recorded else "utf-8"
    if run.encoding is not None and run.encoding.lower() != encoding.lower():
        raise LyricgenError(f"the run was trained on {encoding} text; --encoding cannot change on resume")
    lines, corpus = load_corpus(run.corpus or recorded.path, encoding, ckpt.tokenizer.keep_debris)
    if recorded and recorded.sha256 and recorded.sha256 != corpus.sha256:
        raise LyricgenError(f"{run.corpus or recorded.path} is not the corpus this checkpoint was trained on "
                            "(its content changed)")
    mixed = recorded.mix if recorded else None
    if run.mix not in (None, NO_MIX) and mixed is None:
        raise LyricgenError("--mix cannot be added on resume: the run was trained without one")
    if run.mix == NO_MIX and mixed is not None:
        raise LyricgenError(f"--mix none cannot drop the mix on resume: the run was trained with {mixed.path}")
    mix = None
    if mixed is not None:  # the same text as before, or the run would not continue exactly
        where = mix_path(run.mix) if run.mix else mixed.path
        mix, corpus.mix = load_corpus(where, "utf-8", ckpt.tokenizer.keep_debris)
        if mixed.sha256 != corpus.mix.sha256:
            raise LyricgenError(f"{where} is not the --mix text this checkpoint was trained on (its content changed)")
    per_run = {name: None for name in TrainConfig.option_names(PER_RUN)}  # a budget is for one invocation
    config = TrainConfig.from_dict(ckpt.training.config.to_dict(), **{**per_run, **options})
    train_lines, val_lines = split_lines(lines, config.val_fraction)
    if mix is not None:
        train_lines = mixed_lines(train_lines, mix)
    with world.main_first() if run.cache else nullcontext():
        data = prepare(train_lines, val_lines, ckpt.tokenizer.min_freq, config.seq_len, vocab=ckpt.vocab,
                       use_cache=run.cache, workers=run.tokenize_workers(),
                       progress=progress and (lambda n: progress(n, len(train_lines))))
    trainer = Trainer(ckpt.build_model(), data, config, ckpt.tokenizer, ckpt.side, out, device, corpus, world)
    trainer.restore(ckpt.training)
    st = trainer.state
    if st.epoch >= config.epochs and (config.max_steps is None or st.step >= config.max_steps):
        raise LyricgenError(f"the checkpoint has already completed {st.epoch} of {config.epochs} epochs; "
                            f"pass --epochs greater than {st.epoch} to train further")
    return trainer


@contextmanager
def stop_on_signals(trainer: Trainer, signals=(signal.SIGINT, signal.SIGTERM)):
    """Ctrl-C or SIGTERM asks the trainer to save last.pt and stop before its next step. Once it
    stopped for a signal, further signals are ignored (a held-down Ctrl-C must not break the save
    or the exit); otherwise the previous handlers come back."""
    def on_signal(signum, frame):
        trainer.stop_signal = signum

    previous = {s: signal.signal(s, on_signal) for s in signals}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, signal.SIG_IGN if trainer.stop_signal is not None else handler)
