"""Training: one optimisation step, validation, the epoch loop, checkpoints, resume.

Trainer owns the mutable state of a run (model, optimizer, scheduler, counters, metrics) and turns
it into the checkpoint dict and back. The data order of epoch e is a pure function of (seed, e),
and the torch RNG state (dropout) is saved with every checkpoint, so a resumed run - from an epoch
boundary or from the middle of an epoch - continues bit for bit as the uninterrupted one would.
"""
import csv
import math
import os
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from . import __version__
from .checkpoint import FORMAT, FORMAT_VERSION, model_from_checkpoint, save_checkpoint
from .data import IGNORE, Prepared, epoch_order, num_batches, prepare
from .errors import LyricgenError
from .evaluate import score, token_nll
from .model import LyricsRNN, ModelConfig
from .originality import fingerprint
from .runtime import amp_dtype, cpu_threads
from .tokenizer import jieba_version
from .vocab import Vocab

MIN_PERIOD_STEPS = 50  # the schedule and early stopping judge periods of at least this many steps
METRIC_FIELDS = ["epoch", "step", "train_loss", "val_loss", "val_ppl", "val_bpc_open", "val_bpc_open_rnn",
                 "lr", "tokens_per_s", "elapsed_s"]


@dataclass
class TrainConfig:
    # defaults: see docs/tuning.md for the experiments behind them
    epochs: int = 40
    batch_size: int = 16
    seq_len: int = 32
    lr: float = 5e-3
    weight_decay: float = 0.0
    clip: float = 1.0  # max global gradient norm
    val_fraction: float = 0.1
    patience: int = 5  # early stop after this many epochs (periods, see MIN_PERIOD_STEPS) without improvement
    lr_factor: float = 0.5  # ReduceLROnPlateau: multiply the learning rate by this...
    lr_patience: int = 1  # ...after this many epochs without improvement
    seed: int = 1337
    time_budget: float | None = None  # seconds of wall time for this invocation
    max_steps: int | None = None  # stop (and save last.pt) once this many optimizer steps are done

    def __post_init__(self):
        checks = {
            "epochs": self.epochs >= 0, "batch_size": self.batch_size >= 1, "seq_len": self.seq_len >= 1,
            "lr": self.lr > 0, "weight_decay": self.weight_decay >= 0, "clip": self.clip > 0,
            "val_fraction": 0 <= self.val_fraction < 1, "patience": self.patience >= 1,
            "lr_factor": 0 < self.lr_factor < 1, "lr_patience": self.lr_patience >= 0,
            "time_budget": self.time_budget is None or self.time_budget > 0,
            "max_steps": self.max_steps is None or self.max_steps >= 1,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid {bad[0]}: {getattr(self, bad[0])}")


@dataclass
class TokenizerConfig:
    min_freq: int = 3  # words seen fewer times are spelled as characters

    def __post_init__(self):
        if self.min_freq < 1:
            raise ValueError(f"invalid min_freq: {self.min_freq}")


@dataclass
class RunState:
    epoch: int = 0  # completed epochs
    batch_in_epoch: int = 0  # completed batches of the epoch in progress
    step: int = 0  # optimizer steps so far
    epoch_loss_sum: float = 0.0  # sum of token losses in the epoch in progress
    epoch_tokens: int = 0
    epoch_train_s: float = 0.0  # time spent in optimizer steps in the epoch in progress
    best_val_loss: float = math.inf  # at epoch ends: what the schedule and early stopping follow
    best_saved_loss: float = math.inf  # of best.pt, which a time-budget stop mid-epoch may also write
    period_ref: float = math.inf  # best validation loss when the last period ended
    period_start_step: int = 0
    bad_periods: int = 0  # periods in a row without a better validation loss
    elapsed_s: float = 0.0  # training wall time over all invocations
    metrics: list = field(default_factory=list)


def start_run(lines: list[str], model_options: dict, tokenizer: TokenizerConfig, config: TrainConfig,
              out_dir, device, corpus_info: dict, use_cache: bool = True) -> "Trainer":
    """A new run: tokenise, build the vocabulary, seed, build the model."""
    data = prepare(lines, config.val_fraction, tokenizer.min_freq, config.seq_len, use_cache=use_cache)
    torch.manual_seed(config.seed)
    model = LyricsRNN(ModelConfig(vocab_size=len(data.vocab), **model_options))
    return Trainer(model, data, config, tokenizer, out_dir, device, corpus_info)


RESUME_KEYS = ("train_config", "optimizer", "scheduler", "state", "rng")
RESUME_OVERRIDES = ("epochs", "time_budget", "max_steps", "patience")


def resume_run(ckpt: dict, lines: list[str], overrides: dict, out_dir, device, corpus_info: dict,
               use_cache: bool = True) -> "Trainer":
    """Continue a checkpoint's run: architecture, vocabulary, tokenizer and settings come from the
    file; `overrides` may only extend it (RESUME_OVERRIDES)."""
    missing = [k for k in RESUME_KEYS if k not in ckpt]
    if missing:
        raise LyricgenError(f"the checkpoint holds no training state ({', '.join(missing)} missing): it can "
                            "generate and evaluate, but not resume")
    unknown = set(overrides) - set(RESUME_OVERRIDES)
    if unknown:
        raise LyricgenError(f"--{sorted(unknown)[0].replace('_', '-')} is fixed by the checkpoint and cannot change on resume")
    base = {**ckpt["train_config"], "time_budget": None, "max_steps": None}  # those two are per invocation
    config = TrainConfig(**{**base, **overrides})
    tokenizer = TokenizerConfig(**ckpt["tokenizer"])
    data = prepare(lines, config.val_fraction, tokenizer.min_freq, config.seq_len,
                   vocab=Vocab.from_dict(ckpt["vocab"]), use_cache=use_cache)
    model, _ = model_from_checkpoint(ckpt)
    trainer = Trainer(model, data, config, tokenizer, out_dir, device, corpus_info)
    trainer.restore(ckpt)
    st = trainer.state
    if st.epoch >= config.epochs and (config.max_steps is None or st.step >= config.max_steps):
        raise LyricgenError(f"the checkpoint has already completed {st.epoch} of {config.epochs} epochs; "
                            f"pass --epochs greater than {st.epoch} to train further")
    return trainer


class NonFiniteLoss(LyricgenError):
    pass


def train_step(model, optimizer, x, y, clip: float, dtype=None, step: int = 0) -> tuple[float, int]:
    """One Adam step on a (B, T) batch; returns (mean token loss, number of target tokens).

    A non-finite loss raises before the optimizer touches the weights, so nothing bad is saved.
    """
    model.train()
    with torch.autocast(x.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        logits, _ = model(x)  # (B, T, V)
    loss = F.cross_entropy(logits.float().view(-1, logits.shape[-1]), y.reshape(-1), ignore_index=IGNORE)
    value = loss.item()
    if not math.isfinite(value):
        raise NonFiniteLoss(f"training loss is {value} at step {step}; stopped before the optimizer step "
                            "(the last saved checkpoint is unchanged; try a lower --lr)")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    if not torch.isfinite(norm):
        raise NonFiniteLoss(f"gradient norm is {float(norm)} at step {step}; stopped before the optimizer step "
                            "(the last saved checkpoint is unchanged; try a lower --lr)")
    optimizer.step()
    return value, int((y != IGNORE).sum())


def make_optimizer(model, config: TrainConfig):
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=config.lr_factor, patience=config.lr_patience)
    return optimizer, scheduler


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Trainer:
    """A training run; `run()` trains until done, the time budget, early stopping or a stop request."""

    def __init__(self, model, data: Prepared, config: TrainConfig, tokenizer: TokenizerConfig,
                 out_dir, device, corpus_info: dict, state: RunState | None = None):
        self.model = model.to(device)
        self.data = data
        self.config = config
        self.tokenizer = tokenizer
        self.out_dir = Path(out_dir)
        self.device = device
        self.corpus_info = corpus_info
        self.state = state or RunState()
        self.optimizer, self.scheduler = make_optimizer(model, config)
        self.dtype = amp_dtype(device)
        self.train_data = data.train.to(device)
        self.stop_signal = None  # set by a signal handler: save and leave after the current step
        self.originality = fingerprint(data.train_lines)  # lets generation report copying, corpus-free
        self._clock = time.monotonic()
        self._validation_s = 0.0  # how long the last validation took: the time budget keeps room for one

    # -- checkpoints ---------------------------------------------------------------------------
    def checkpoint(self) -> dict:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "versions": {"lyricgen": __version__, "torch": str(torch.__version__), "jieba": jieba_version()},
            "model_config": self.model.config.to_dict(),
            "train_config": asdict(self.config),
            "tokenizer": asdict(self.tokenizer),
            "vocab": self.data.vocab.to_dict(),
            "unk_prob": self.data.unk_prob,
            "repeat_alpha": list(self.data.repeat_alpha),
            "corpus": dict(self.corpus_info),
            "originality": self.originality,
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "state": asdict(self.state),
            "rng": rng_state(),
        }

    def restore(self, ckpt: dict) -> None:
        """Continue from a checkpoint: optimizer moments, scheduler, counters and RNG states."""
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.state = RunState(**ckpt["state"])
        set_rng_state(ckpt["rng"])

    def save(self, name: str) -> Path:
        path = self.out_dir / name
        save_checkpoint(self.checkpoint(), path)
        return path

    def write_metrics(self) -> None:
        path = self.out_dir / "metrics.csv"
        tmp = path.with_name(".metrics.csv.tmp")
        try:
            with open(tmp, "w", newline="", encoding="utf-8") as f:
                writer = csv.DictWriter(f, fieldnames=METRIC_FIELDS, extrasaction="ignore")
                writer.writeheader()
                writer.writerows(self.state.metrics)
            os.replace(tmp, path)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise LyricgenError(f"cannot write {path}: {e.strerror or e} (the checkpoints are saved)") from None

    # -- evaluation ------------------------------------------------------------------------------
    def validate(self):
        """(model score, network-alone score) on the validation part, or (None, None)."""
        if not self.data.val_ids:
            return None, None
        started = time.monotonic()
        with cpu_threads(1) if self.device.type == "cpu" else nullcontext():
            result = score(self.model, self.data.val_ids, self.data.val_chars, self.data.val_unk_chars,
                           self.data.vocab, self.data.unk_prob, self.device, self.data.repeat_alpha)
        self._validation_s = time.monotonic() - started
        return result

    # -- the loop --------------------------------------------------------------------------------
    def run(self, on_step=None, on_epoch=None) -> str:
        """Train; returns why it stopped: done, early_stop, time_budget, max_steps or signal.

        Every stop leaves last.pt at the last completed step. best.pt follows the validation loss,
        measured at each epoch end and when the time budget runs out.
        """
        cfg, st = self.config, self.state
        self._clock = time.monotonic()
        budget_end = None if cfg.time_budget is None else self._clock + cfg.time_budget
        if budget_end is not None and not self._validation_s:
            self._validation_s = self._estimate_validation_s()
        nb = num_batches(len(self.train_data), cfg.batch_size)
        while st.epoch < cfg.epochs:
            order = epoch_order(len(self.train_data), cfg.seed, st.epoch).to(self.device)
            while st.batch_in_epoch < nb:
                if self.stop_signal is not None:
                    self._save(best=False)
                    return "signal"
                if cfg.max_steps is not None and st.step >= cfg.max_steps:
                    self._save(best=False)
                    return "max_steps"
                b = st.batch_in_epoch
                x, y = self.train_data.get_batch(order[b * cfg.batch_size:(b + 1) * cfg.batch_size])
                t0 = time.perf_counter()
                loss, ntok = train_step(self.model, self.optimizer, x, y, cfg.clip, self.dtype, st.step + 1)
                dt = time.perf_counter() - t0
                st.step += 1
                st.batch_in_epoch += 1
                st.epoch_loss_sum += loss * ntok
                st.epoch_tokens += ntok
                st.epoch_train_s += dt
                if on_step:
                    on_step({"epoch": st.epoch + 1, "batch": b + 1, "batches": nb, "step": st.step,
                             "loss": loss, "tokens_per_s": ntok / max(dt, 1e-9)})
                if budget_end is not None and time.monotonic() + self._validation_s >= budget_end \
                        and st.batch_in_epoch < nb:
                    # a mid-epoch score may update best.pt, never the schedule's best: a resumed run
                    # then goes on exactly as an uninterrupted one would
                    row, _, better = self._record(st.epoch + st.batch_in_epoch / nb, epoch_end=False)
                    self._save(best=better)
                    if on_epoch:
                        on_epoch(row)
                    return "time_budget"
            row, _, better = self._record(st.epoch + 1, epoch_end=True)
            if self.data.val_ids and st.step - st.period_start_step >= MIN_PERIOD_STEPS:
                self._end_period()
            st.epoch += 1
            st.batch_in_epoch, st.epoch_loss_sum, st.epoch_tokens, st.epoch_train_s = 0, 0.0, 0, 0.0
            self._save(best=better or not self.data.val_ids)
            if on_epoch:
                on_epoch(row)
            if st.bad_periods >= cfg.patience:
                return "early_stop"
            if budget_end is not None and time.monotonic() + self._validation_s >= budget_end:
                return "time_budget"
        return "done"

    def _estimate_validation_s(self, sample: int = 512) -> float:
        """Time a validation pass will take, from scoring its first `sample` tokens: a time budget
        must leave room for the validation that ends it (on a large corpus that is many seconds)."""
        ids = self.data.val_ids
        if not ids:
            return 0.0
        started = time.monotonic()
        with cpu_threads(1) if self.device.type == "cpu" else nullcontext():
            token_nll(self.model, ids[:sample], self.data.vocab.line_break_id, self.data.vocab.unk_id,
                      self.data.unk_prob, self.device)
        return (time.monotonic() - started) * len(ids) / min(len(ids), sample)

    def _end_period(self) -> None:
        """Learning-rate schedule and early stopping look at periods of at least MIN_PERIOD_STEPS
        steps (one epoch on a corpus of ordinary size): on a tiny corpus an epoch is a handful of
        steps, too few to judge a plateau by."""
        st = self.state
        self.scheduler.step(st.best_val_loss if st.best_val_loss < st.period_ref else math.inf)
        st.bad_periods = 0 if st.best_val_loss < st.period_ref else st.bad_periods + 1
        st.period_ref = st.best_val_loss
        st.period_start_step = st.step

    def _tick(self) -> None:
        now = time.monotonic()
        self.state.elapsed_s += now - self._clock
        self._clock = now

    def _record(self, epoch_progress: float, epoch_end: bool) -> tuple[dict, bool, bool]:
        """Validate and append a metrics row; returns (row, whether the schedule's best improved,
        whether best.pt should be replaced)."""
        st = self.state
        val, rnn = self.validate()
        self._tick()
        row = {
            "epoch": round(epoch_progress, 3), "step": st.step,
            "train_loss": round(st.epoch_loss_sum / max(st.epoch_tokens, 1), 4),
            "val_loss": val.loss if val else "", "val_ppl": round(val.ppl, 2) if val else "",
            "val_bpc_open": round(val.bpc_open, 4) if val else "",
            "val_bpc_open_rnn": round(rnn.bpc_open, 4) if rnn else "",
            "lr": self.optimizer.param_groups[0]["lr"],
            "tokens_per_s": round(st.epoch_tokens / max(st.epoch_train_s, 1e-9)),
            "elapsed_s": round(st.elapsed_s, 1),
        }
        st.metrics.append(row)
        improved = epoch_end and val is not None and val.loss < st.best_val_loss
        if improved:
            st.best_val_loss = val.loss
        better = val is not None and val.loss < st.best_saved_loss
        if better:
            st.best_saved_loss = val.loss
        return row, improved, better

    def _save(self, best: bool) -> None:
        self._tick()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        ckpt = self.checkpoint()
        save_checkpoint(ckpt, self.out_dir / "last.pt")
        if best:
            save_checkpoint(ckpt, self.out_dir / "best.pt")
        self.write_metrics()
