"""The training loop: one optimisation step, the epoch loop, its stopping rules, checkpoint writing.

Trainer owns the mutable state of a run (model, optimizer, counters, metrics). The data order of
epoch e is a pure function of (seed, e), and the RNG state (dropout) is saved with every checkpoint,
so a resumed run - from an epoch boundary or from the middle of an epoch - continues bit for bit as
the uninterrupted one would.

Under torchrun (distributed.py) each rank trains on its share of every step's batch (share, then
train_step: one process is a world of one, so one step serves both), rank 0 alone writes files, and
every stop and validation result is agreed by all ranks.

Stopping rules, checked around every step: a stop request (a signal), --max-steps, the end of the
last epoch, early stopping (--patience periods without a better validation loss), and the time
budget, which keeps room for the validation that ends it. Every stop leaves last.pt at the last
completed step; best.pt holds the model of the best validation loss.
"""
import csv
import io
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..checkpoint import Checkpoint, RunState, TrainingState, current_versions, load_checkpoint, save_checkpoint
from ..config import TokenizerConfig, TrainConfig
from ..errors import LyricgenError
from ..fileio import atomic_write
from ..fitted import SideModels
from ..model import count_parameters
from ..runfiles import RunFiles
from ..runtime import amp_dtype, cpu_threads
from ..scoring.score import Score, Text, parts_of, selected, token_nll, validation_ngram_logps
from ..text.corpus import CorpusInfo
from .data import IGNORE, Batches, Prepared, WindowDataset
from .distributed import SINGLE, World

MIN_PERIOD_STEPS = 50  # the schedule and early stopping judge periods of at least this many steps
METRIC_FIELDS = ["epoch", "step", "train_loss", "train_bpc", "val_loss", "val_ppl", "val_bpc_open",
                 "val_bpc_open_rnn", "lr", "tokens_per_s", "elapsed_s"]


class NonFiniteLoss(LyricgenError):
    pass


def train_step(net, optimizer, x, y, clip: float, dtype=None, step: int = 0, world: World = SINGLE,
               tokens: int | None = None) -> tuple[float, int]:
    """One Adam step on this process's (B, T) share of a batch; returns (the whole batch's mean token
    loss, its number of target tokens). One process is a world of one, whose share is the batch.

    tokens: the whole batch's target tokens over all ranks (default: this share's). The share's mean
    token loss is weighted by its part of them, times the world size as DDP averages the ranks'
    gradients: every world takes the step one process takes on the whole batch, whatever the
    padding or a short last batch leave to each rank (a world of one: weight 1, the plain mean). The
    loss is summed over the ranks before anyone steps, and a non-finite loss or gradient raises
    before the optimizer touches the weights: one bad rank stops them all, and nothing bad is saved.
    """
    net.train()
    with torch.autocast(x.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        logits, _ = net(x)  # (B, T, V)
    logits, y = logits.float().view(-1, logits.shape[-1]), y.reshape(-1).long()
    mine = int((y != IGNORE).sum())
    tokens = mine if tokens is None else tokens
    if mine:
        loss = F.cross_entropy(logits, y, ignore_index=IGNORE) * (world.world_size * mine / tokens)
    else:  # a short last batch left this rank nothing: no loss, but a backward pass DDP waits for
        loss = logits.sum() * 0.0
    value = world.all_reduce_sum(loss.detach().double()).item() / world.world_size
    check_finite("training loss", value, step)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(net.parameters(), clip)  # the same averaged gradients everywhere
    check_finite("gradient norm", float(norm), step)
    optimizer.step()
    return value, tokens


def check_finite(what: str, value: float, step: int) -> None:
    if not math.isfinite(value):
        raise NonFiniteLoss(f"{what} is {value} at step {step}; stopped before the optimizer step "
                            "(the last saved checkpoint is unchanged; try a lower --lr)")


def share(windows: WindowDataset, window: torch.Tensor, world: World) -> tuple[torch.Tensor, torch.Tensor, int]:
    """This rank's share of a step's windows `window` (the same indices on every rank): windows r,
    r+W, r+2W... as (B, T) inputs and targets, and the whole step's number of target tokens. A world
    of one takes them all."""
    tokens = int((windows.targets[window] != IGNORE).sum())
    mine = window[world.rank::world.world_size]
    x, y = windows.get_batch(mine if len(mine) else window[:1])
    if not len(mine):  # a short last batch left nothing to this rank: a window that adds no loss
        y = torch.full_like(y, IGNORE)
    return x, y, tokens


def make_optimizer(model, config: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def end_period(state: RunState, config: TrainConfig) -> bool:
    """Close a period of training for the schedule and early stopping; True when the learning rate
    must be cut (more than lr_patience periods in a row without a better validation loss)."""
    improved = state.period_best < state.period_ref
    state.bad_periods = 0 if improved else state.bad_periods + 1
    state.lr_bad_periods = 0 if improved else state.lr_bad_periods + 1
    state.period_ref = state.period_best
    state.period_start_step = state.step
    if state.lr_bad_periods > config.lr_patience:
        state.lr_bad_periods = 0
        return True
    return False


def validation_scores(model, val: Text, vocab, side: SideModels, device) -> tuple[Score, Score]:
    """(the score training selects by, the network alone's) on the validation text, the mixture's
    weights fitted on it first: EM on the network's and the train-only n-gram's (and a base's)
    probabilities of the validation targets. Training sets the weights generation mixes with;
    scoring only reads them."""
    nll = token_nll(model, val.ids, vocab.line_break_id, vocab.unk_id, side.unk.prob, device).cpu()
    ngrams = validation_ngram_logps(side.mixture, val, vocab, side.unk)
    if ngrams is not None:
        side.mixture.fit_weight(-nll, *ngrams)
    return selected(parts_of(nll, val, vocab, side.unk, side.repeat, side.mixture, validation=True), side.mixture)


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class Placement:
    """Where a run's steps happen and what they write, set up once."""
    device: torch.device
    dtype: torch.dtype | None  # autocast's, or None for float32 throughout
    world: World  # this process's place among the ranks (SINGLE: a world of one)
    net: torch.nn.Module  # what trains: the model, or its DistributedDataParallel wrapper
    files: RunFiles


class Clock:
    """A run's wall time: the seconds it adds to RunState.elapsed_s, and the time budget, which keeps
    room for the validation that ends it (validation_s: how long the last one took)."""

    def __init__(self):
        self.last = time.monotonic()
        self.budget_end = None
        self.validation_s = 0.0

    def start(self, budget: float | None) -> None:
        self.last = time.monotonic()
        self.budget_end = None if budget is None else self.last + budget

    def tick(self, state: RunState) -> None:
        now = time.monotonic()
        state.elapsed_s += now - self.last
        self.last = now

    def out_of_time(self) -> bool:
        return time.monotonic() + self.validation_s >= self.budget_end


@dataclass(frozen=True)
class RunSummary:
    """What `lyricgen train` reports about a run: its data and model before it trains, where it
    stands after."""
    corpus: CorpusInfo | None
    windows: int  # training windows of seq_len tokens
    seq_len: int
    val_tokens: int
    val_seen_share: float  # share of validation lines that also occur in training
    vocab_size: int
    tokenizer: TokenizerConfig
    cell: str
    parameters: int
    device: torch.device
    world_size: int
    batch_size: int  # windows per step and process
    files: RunFiles
    epoch: int
    step: int
    total_steps: int  # what --epochs (or a run already past it) comes to
    best_loss: float  # inf before any validation
    stop_signal: int | None


class Trainer:
    """A training run; `run()` trains until a stopping rule says why it stopped.

    model, optimizer, state: what trains and where the run stands (every checkpoint saves them).
    config, data, side, tokenizer, corpus: what it learns from and how, fixed for the run.
    place, batches, clock, stop_signal: where it runs, its steps' windows, its wall time, a stop request.
    """

    def __init__(self, model, data: Prepared, config: TrainConfig, tokenizer: TokenizerConfig, side: SideModels,
                 out_dir, device, corpus: CorpusInfo | None = None, world: World = SINGLE):
        self.model = model.to(device)
        self.optimizer = make_optimizer(model, config)
        self.state = RunState()
        self.config, self.data, self.side, self.tokenizer, self.corpus = config, data, side, tokenizer, corpus
        self.place = Placement(device, amp_dtype(device), world, world.wrap(self.model), RunFiles(out_dir))
        self.batches = Batches(data.train.to(device), config.batch_size * world.world_size, config.seed)
        self.clock = Clock()
        self.stop_signal = None  # set by a signal handler: save and leave before the next step

    def summary(self) -> RunSummary:
        data, model, st = self.data, self.model, self.state
        return RunSummary(
            self.corpus, len(data.train), self.config.seq_len, len(data.val.ids), data.val_seen_share, len(data.vocab),
            self.tokenizer, model.config.cell, count_parameters(model), self.place.device,
            self.place.world.world_size, self.config.batch_size, self.place.files, st.epoch, st.step,
            max(self.config.epochs * self.batches.per_epoch, st.step), st.best_loss, self.stop_signal)

    # -- checkpoints ------------------------------------------------------------------------------
    def checkpoint(self, rank_rngs: list | None = None) -> Checkpoint:
        """rank_rngs: every rank's RNG state, in a data-parallel run (see _save)."""
        training = TrainingState(self.config, self.state, self.optimizer.state_dict(), rng_state(),
                                 self.place.world.world_size, rank_rngs)
        return Checkpoint(self.model.config, self.tokenizer, self.data.vocab, self.model.state_dict(), self.side,
                          self.corpus, training, current_versions())

    def restore(self, training: TrainingState) -> None:
        """Continue from a checkpoint: optimizer moments and learning rate, counters, RNG states."""
        world = self.place.world
        self.optimizer.load_state_dict(training.optimizer)
        self.state = RunState.from_dict(training.state.to_dict())
        set_rng_state(training.rank_rngs[world.rank] if world.distributed else training.rng)

    def save(self, name: str) -> Path:
        path = self.place.files.dir / name
        save_checkpoint(self.checkpoint(), path)
        return path

    def _save(self, best: bool) -> None:
        """last.pt (and best.pt) and metrics.csv, all written atomically, by rank 0 alone."""
        world, files = self.place.world, self.place.files
        self.clock.tick(self.state)
        rank_rngs = world.gather(rng_state()) if world.distributed else None
        if not world.is_main:
            return
        ckpt = self.checkpoint(rank_rngs)
        save_checkpoint(ckpt, files.last)
        if best:
            save_checkpoint(ckpt, files.best)
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=METRIC_FIELDS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.state.metrics)
        atomic_write(files.metrics, text.getvalue().encode("utf-8"), "metrics")

    # -- validation ---------------------------------------------------------------------------------
    def validate(self):
        """(model score, network-alone score) on the validation part, or (None, None). Rank 0 scores,
        every rank takes its result: they all judge the schedule and early stopping alike."""
        if not self.data.val.ids:
            return None, None
        world, device, clock = self.place.world, self.place.device, self.clock
        result = None
        if world.is_main:
            started = time.monotonic()
            with cpu_threads(1) if device.type == "cpu" else nullcontext():
                result = validation_scores(self.model, self.data.val, self.data.vocab, self.side, device)
            clock.validation_s = time.monotonic() - started
        if world.distributed:
            result, clock.validation_s = world.broadcast((result, clock.validation_s))
        return result

    def _estimate_validation_s(self, sample: int = 512) -> float:
        """Time a validation pass will take, from scoring its first `sample` tokens: a time budget
        must leave room for the validation that ends it (on a large corpus that is many seconds)."""
        ids, device = self.data.val.ids, self.place.device
        if not ids:
            return 0.0
        started = time.monotonic()
        with cpu_threads(1) if device.type == "cpu" else nullcontext():
            token_nll(self.model, ids[:sample], self.data.vocab.line_break_id, self.data.vocab.unk_id,
                      self.side.unk.prob, device)
        return (time.monotonic() - started) * len(ids) / min(len(ids), sample)

    def _record(self, epoch_progress: float, epoch_end: bool) -> tuple[dict, bool]:
        """Validate and append a metrics row; returns (row, whether best.pt should be replaced)."""
        st = self.state
        val, rnn = self.validate()
        self.clock.tick(st)
        train_loss = st.epoch_loss_sum / max(st.epoch_tokens, 1)
        row = {
            "epoch": round(epoch_progress, 3), "step": st.step, "train_loss": round(train_loss, 4),
            # the same loss per character (closed vocabulary: dropout on, no <unk> surcharge)
            "train_bpc": round(train_loss / math.log(2) / self.data.train_chars_per_token, 4),
            "val_loss": val.loss if val else "", "val_ppl": round(val.ppl, 2) if val else "",
            "val_bpc_open": round(val.bpc_open, 4) if val else "",
            "val_bpc_open_rnn": round(rnn.bpc_open, 4) if rnn else "",
            "lr": self.optimizer.param_groups[0]["lr"],
            "tokens_per_s": round(st.epoch_tokens / max(st.epoch_train_s, 1e-9)),
            "elapsed_s": round(st.elapsed_s, 1),
        }
        st.metrics.append(row)
        if val is None:
            return row, False
        if epoch_end:
            st.period_best = min(st.period_best, val.loss)
        better = val.loss < st.best_loss
        st.best_loss = min(st.best_loss, val.loss)
        return row, better

    # -- the loop -----------------------------------------------------------------------------------
    def run(self, on_step=None, on_epoch=None) -> str:
        """Train; returns why it stopped: done, early_stop, time_budget, max_steps or signal.

        on_step(info) is called after every optimizer step, on_epoch(row) after every validation.
        """
        self.clock.start(self.config.time_budget)
        if self.config.time_budget is not None and not self.clock.validation_s:
            self.clock.validation_s = self._estimate_validation_s()
        while True:
            reason = self._stop_before_step()
            if reason is None:
                self._train_batch(on_step)
                reason = self._end_epoch(on_epoch) if self.state.batch_in_epoch == self.batches.per_epoch else None
                reason = reason or self._stop_for_time(on_epoch)
            if reason is not None:
                if reason != "signal":  # a signal asks to stop now
                    self.fit_reranker()
                return reason

    def fit_reranker(self) -> None:
        """Once training ends: the reranker of best.pt's model (writing/judge.py), fitted on up to
        config.rerank_lines validation lines and written into best.pt, and into last.pt when its
        weights are best.pt's (else last.pt holds none: one fitted for other weights would mislead).
        Rank 0 alone; it adds to the run's wall time after any --time-budget: for the Jay Chou LSTM
        (2.3M parameters) and 60 contexts, 88 CPU seconds, 102 s of wall time on a 2-core CPU shared
        with other jobs (4-7 minutes when it was busier); --rerank-lines sets the number of contexts (the cost is per
        context) and 0 skips it. It leaves the RNG state as it found it, so a later resume goes on as
        before."""
        world, files = self.place.world, self.place.files
        if not world.is_main or not self.config.rerank_lines or not self.data.val.ids or not files.best.exists():
            return
        from ..writing.judge import fit_reranker

        best = load_checkpoint(files.best)
        rng = rng_state()
        model = best.build_model().to(self.place.device)
        reranker = fit_reranker(model, best.vocab, best.side, self.data.train.stream.cpu(), self.data.val.ids,
                                seed=self.config.seed, max_contexts=self.config.rerank_lines)
        set_rng_state(rng)
        if reranker is None:
            return
        best.side.reranker = reranker
        save_checkpoint(best, files.best)
        mine = self.model.state_dict()
        same = mine.keys() == best.weights.keys() and all(torch.equal(mine[k].cpu(), best.weights[k]) for k in mine)
        if not world.distributed and (same or self.side.reranker is not None):  # (last.pt of ranks: as saved)
            self.side.reranker = reranker if same else None
            save_checkpoint(self.checkpoint(), files.last)

    def _stop_before_step(self) -> str | None:
        st, cfg = self.state, self.config
        if st.epoch >= cfg.epochs:
            return "done"
        signum = self.place.world.agree_max(self.stop_signal or 0)  # a signal to any rank stops them all
        if signum:
            self.stop_signal = signum
            self._save(best=False)
            return "signal"
        if cfg.max_steps is not None and st.step >= cfg.max_steps:
            self._save(best=False)
            return "max_steps"
        return None

    def _train_batch(self, on_step) -> None:
        st, place = self.state, self.place
        b = st.batch_in_epoch
        x, y, tokens = share(self.batches.windows, self.batches.window(st.epoch, b), place.world)
        t0 = time.perf_counter()
        loss, ntok = train_step(place.net, self.optimizer, x, y, self.config.clip, place.dtype, st.step + 1,
                                place.world, tokens)
        dt = time.perf_counter() - t0
        st.step += 1
        st.batch_in_epoch += 1
        st.epoch_loss_sum += loss * ntok
        st.epoch_tokens += ntok
        st.epoch_train_s += dt
        if on_step:
            on_step({"epoch": st.epoch + 1, "batch": b + 1, "batches": self.batches.per_epoch, "step": st.step,
                     "loss": loss, "tokens_per_s": ntok / max(dt, 1e-9)})

    def _end_epoch(self, on_epoch) -> str | None:
        """Validate, let the schedule judge the period, save; "early_stop" when patience runs out."""
        st, cfg = self.state, self.config
        row, better = self._record(st.epoch + 1, epoch_end=True)
        if self.data.val.ids and st.step - st.period_start_step >= MIN_PERIOD_STEPS and end_period(st, cfg):
            for group in self.optimizer.param_groups:
                group["lr"] *= cfg.lr_factor
        st.epoch += 1
        st.batch_in_epoch, st.epoch_loss_sum, st.epoch_tokens, st.epoch_train_s = 0, 0.0, 0, 0.0
        self._save(best=better or not self.data.val.ids)
        if on_epoch:
            on_epoch(row)
        return "early_stop" if st.bad_periods >= cfg.patience else None

    def _stop_for_time(self, on_epoch) -> str | None:
        """"time_budget" once the budget, less room for one validation, is spent. Mid-epoch, that
        validation may replace best.pt but never touches the schedule (see RunState), so a resumed
        run goes on exactly as an uninterrupted one would."""
        if self.clock.budget_end is None:
            return None
        if not self.place.world.agree_max(self.clock.out_of_time()):  # any rank's clock
            return None
        st = self.state
        if st.batch_in_epoch:  # mid-epoch: the epoch end did not validate and save
            row, better = self._record(st.epoch + st.batch_in_epoch / self.batches.per_epoch, epoch_end=False)
            self._save(best=better)
            if on_epoch:
                on_epoch(row)
        return "time_budget"
