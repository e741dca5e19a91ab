"""The loaded model behind every endpoint: loading it once, describing it, and running requests.

    engine = Engine(WorkerPool(2, 16))
    engine.load("runs/jay/best.pt", torch.device("cpu"))      # in the background while /health says 503
    prepared = engine.prepare("月光", {"lines": 4}, sample=True)  # input errors raise here, before queueing
    job = engine.submit(prepared, tokens)                          # written on a worker
    job = engine.alternatives(prepared, song, line=2, n=5)        # the writing desk's short jobs,
    job = engine.describe(["月光下的我"])                          # on the same pool

Everything about one request that can be wrong with the input (an option out of bounds, a start word
the model does not know) is found by `prepare`, in the request handler, so it becomes a 4xx before
anything is queued or streamed: it asks the Lyricist's `request`, the one place each rule is
checked, and the worker trusts what it returns. The worker iterates the Lyricist's `stream`: it
streams by passing each piece of text on, and a cancelled job stops by no longer iterating.
No FastAPI here: the HTTP layers (app.py, openai_api.py) call it.
"""
import secrets
import threading
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from ..config import SEED_MAX, token_budget
from ..errors import Cancelled, LyricgenError
from ..text.tokenizer import normalize_line
from .schema import CAPS


@dataclass
class Prepared:
    """One checked request, ready for a worker."""
    start: str
    options: dict  # every generation option's effective value, by name (a seed drawn for it included)
    request: object  # the Lyricist's Request those values make

    @property
    def prompt_ids(self) -> list[int]:
        return self.request.start_ids

    @property
    def unknown(self) -> list[str]:  # characters of the start word the model never saw, left out of the prompt
        return self.request.unknown


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
        self.themes = False  # whether the word vectors are installed, so a song can hold to a theme
        self.ready = threading.Event()

    def load(self, path, device, model_id: str | None = None) -> None:
        """Load the checkpoint once; on failure keep the reason in `error` and raise it."""
        from ..checkpoint import load_checkpoint
        from ..text import wordvectors
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
        try:
            wordvectors.load()  # loaded now (converted once, the first time), not in the first themed request
            self.themes = True
        except LyricgenError:  # not installed: the page then leaves the theme empty (GET /api/options says)
            self.themes = False
        self.model_id, self.created = model_id or str(path), int(Path(path).stat().st_mtime)
        self.writer = writer
        self.ready.set()

    def prepare(self, start: str, options: dict, sample: bool = False, stream: bool = False) -> Prepared:
        """Check a request: OptionError (naming the option) or StartWordError; never a worker's time."""
        request = self.writer.request(normalize_line(start), sample=sample, stream=stream, **options)
        sampling, structure, song = request.sampling, request.structure, request.song
        values = {k: v for config in (sampling, structure, song) for k, v in asdict(config).items()}
        if structure.max_tokens is None:
            # the effective budget, stated in the reply; a song of given lines is bounded by the server's cap
            budget = token_budget(structure, song)
            structure = replace(structure, max_tokens=budget if budget is not None else CAPS["max_tokens"])
        if not sampling.greedy and sampling.seed is None:
            # a seed drawn here and returned, so any text can be written again (llama.cpp does the same)
            sampling = replace(sampling, seed=secrets.randbelow(SEED_MAX + 1))
        values.update(max_tokens=structure.max_tokens, seed=sampling.seed)
        request = replace(request, sampling=sampling, structure=structure)
        return Prepared(normalize_line(request.start), values, request)

    def write(self, prepared: Prepared, should_stop, tokens=None) -> list:
        """The candidates, best first (runs on a worker): the Lyricist's stream, iterated until it ends
        or should_stop() (then closed, and errors.Cancelled raised); each piece of text written goes
        to tokens.send (an http.TokenStream) when streaming."""
        return run_steps(self.writer.stream(prepared.request), should_stop, tokens)

    def submit(self, prepared: Prepared, tokens=None):
        """A pool job writing `prepared` (raises pool.Busy when full)."""
        return self.pool.submit(lambda should_stop: self.write(prepared, should_stop, tokens))

    # The desk's requests take the same pool as songs, so the server's load stays bounded by
    # workers + queue whatever the mix of songs, alternatives and lines.
    def alternatives(self, prepared: Prepared, song: list[str], line: int, n: int):
        """A pool job: up to n alternatives for line `line` (from 1) of `song`, written with the options
        of `prepared`, best first; it stops at the next search step when cancelled. The Lyricist checks
        the song, the line and n (OptionError naming which: a 422 from the job's result)."""
        return self.pool.submit(lambda should_stop: run_steps(
            self.writer.alternatives_steps(prepared.request, song, line, n), should_stop))

    def describe(self, lines: list[str]):
        """A pool job: each line's rhyme class and whether it copies the corpus (a lookup, no model:
        it is short, and still queued with the rest so a flood of them is refused like any other)."""
        def run(should_stop):
            if should_stop():
                raise Cancelled("the request was cancelled")
            return self.writer.describe(lines)

        return self.pool.submit(run)


def run_steps(steps, should_stop, tokens=None):
    """A writing generator (yields text, or "" after a step) iterated to its return value, or until
    should_stop() (then closed, and errors.Cancelled raised); each piece of text goes to tokens.send
    when given."""
    try:
        while True:
            if should_stop():
                raise Cancelled("generation was cancelled")
            try:
                piece = next(steps)
            except StopIteration as done:
                return done.value
            if piece and tokens is not None:
                tokens.send(piece)
    finally:
        steps.close()
