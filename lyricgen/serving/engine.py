"""The loaded model behind every endpoint: loading it once, describing it, and running requests.

    engine = Engine(WorkerPool(2, 16))
    engine.load("runs/jay/best.pt", torch.device("cpu"))      # in the background while /health says 503
    prepared = engine.prepare("月光", {"lines": 4}, sample=True)  # input errors raise here, before queueing
    candidates = engine.generate(prepared, should_stop)            # on a worker

Everything about one request that can be wrong with the input (an option out of bounds, a start word
the model does not know) is found by `prepare`, in the request handler, so it becomes a 4xx before
anything is queued or streamed. No FastAPI here: the HTTP layers (app.py, openai_api.py) call it.
"""
import secrets
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from ..config import SEED_MAX, SamplingConfig, SongConfig, StructureConfig, generation_configs, token_budget
from ..errors import LyricgenError
from ..text.tokenizer import normalize_line
from .schema import CAPS


class StartWordError(LyricgenError):
    """The start word is empty, or the model knows no part of it; `suggestions` are words it knows."""

    def __init__(self, message: str, suggestions: list[str]):
        super().__init__(message)
        self.suggestions = suggestions


@dataclass
class Prepared:
    """One checked request, ready for a worker."""
    start: str
    options: dict  # every generation option's effective value, by name (a seed drawn for it included)
    prompt_ids: list[int]
    unknown: list[str]  # characters of the start word the model never saw, left out of the prompt


def describe(ckpt, model_id: str, model) -> dict:
    """What /v1/models says about a checkpoint: corpus name, vocabulary, shape, training figures.

    The corpus is named by its file name only: the server does not tell clients its directories."""
    corpus = ckpt.corpus
    info = {
        "checkpoint": model_id,
        "corpus": None if corpus is None else {"name": Path(corpus.path).name, "lines": corpus.lines,
                                               "sha256": corpus.sha256},
        "vocab_size": len(ckpt.vocab),
        "unit": ckpt.tokenizer.unit,  # what the vocabulary holds: characters, or jieba words and characters
        "model": {**ckpt.model_config.to_dict(), "parameters": sum(p.numel() for p in model.parameters())},
        "versions": dict(ckpt.versions),
        "training": None,
    }
    if ckpt.training is not None:
        state = ckpt.training.state
        last = state.metrics[-1] if state.metrics else {}
        info["training"] = {
            "epochs": state.epoch, "steps": state.step, "elapsed_s": round(state.elapsed_s, 1),
            "best_val_loss": state.best_loss if state.best_loss != float("inf") else None,
            **{k: last.get(k) for k in ("val_loss", "val_ppl", "val_bpc_open", "val_bpc_open_rnn", "tokens_per_s")
               if last.get(k) not in (None, "")},
        }
    return info


class Engine:
    def __init__(self, pool):
        self.pool = pool
        self.writer = None
        self.info: dict | None = None
        self.model_id: str | None = None
        self.created = 0  # the checkpoint file's modification time, OpenAI's `created`
        self.error: str | None = None  # why loading failed
        self.ready = threading.Event()

    def load(self, path, device, model_id: str | None = None) -> None:
        """Load the checkpoint once; on failure keep the reason in `error` and raise it."""
        from ..checkpoint import load_checkpoint
        from ..text.tokenizer import segment
        from ..writing.lyricist import Lyricist

        try:
            writer = Lyricist.load(path, device)
            self.info = describe(load_checkpoint(path), model_id or str(path), writer.model)
            segment("预热")  # jieba loads its dictionary now, not in the first request with an unknown word
            for word in writer.vocab.most_frequent(1):
                writer.generate(word, max_tokens=2)  # torch's first-call costs, before the first request
        except LyricgenError as e:
            self.error = str(e)
            raise
        self.model_id, self.created = model_id or str(path), int(Path(path).stat().st_mtime)
        self.writer = writer
        self.ready.set()

    def prepare(self, start: str, options: dict, sample: bool = False, stream: bool = False) -> Prepared:
        """Check a request: OptionError (naming the option) or StartWordError; never a worker's time."""
        configs = generation_configs(options, sample=sample)  # every config, whatever configs there are
        values = {k: v for config in configs for k, v in asdict(config).items()}
        sampling = next(c for c in configs if isinstance(c, SamplingConfig))
        if values.get("max_tokens", 0) is None:
            # the effective budget, stated in the reply; a song of given lines is bounded by the server's cap
            budget = token_budget(*(c for c in configs if isinstance(c, (StructureConfig, SongConfig))))
            values["max_tokens"] = budget if budget is not None else CAPS["max_tokens"]
        if stream and sampling.num_samples != 1:
            raise LyricgenError("num_samples must be 1 when streaming (one candidate is written at a time)")
        if not sampling.greedy and sampling.seed is None:
            # a seed drawn here and returned, so any text can be written again (llama.cpp does the same)
            values["seed"] = secrets.randbelow(SEED_MAX + 1)
        if not normalize_line(start):
            raise StartWordError("the start word is empty", self.writer.vocab.most_frequent(12))
        try:
            ids, unknown = self.writer.prompt(start)
        except LyricgenError as e:
            raise StartWordError(str(e), self.writer.vocab.most_frequent(12)) from None
        self.writer.configs(start, **values)  # what only the model can check (an acrostic's characters)
        return Prepared(normalize_line(start), values, ids, unknown)

    def generate(self, prepared: Prepared, should_stop, on_token=None) -> list:
        """The candidates, best first (runs on a worker; raises errors.Cancelled when asked to stop)."""
        # options by name, the Lyricist's stable interface, so that configs added later pass through
        return self.writer.generate(prepared.start, prompt_ids=prepared.prompt_ids, on_token=on_token,
                                    should_stop=should_stop, **prepared.options)

    def submit(self, prepared: Prepared, on_token=None):
        """A pool job generating `prepared` (raises pool.Busy when full)."""
        return self.pool.submit(lambda should_stop: self.generate(prepared, should_stop, on_token))
