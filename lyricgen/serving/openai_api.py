"""POST /v1/completions: the OpenAI completions API, the subset a lyrics model can honour.

    client = openai.OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="unused")
    client.completions.create(model=client.models.list().data[0].id, prompt="月光", max_tokens=60,
                              extra_body={"lines": 4})

Supported: model, prompt (the start word), max_tokens, temperature, top_p, n, best_of, seed,
stream (+ stream_options.include_usage), stop (up to 4), echo, user (ignored, as it only labels the
caller). lyricgen's own options (lines, top_k, repetition_penalty, no_copy, ... every generation
option) go as extra fields, as vLLM takes its extra sampling parameters (`extra_body` in the client).
suffix, logprobs, presence_penalty, frequency_penalty and logit_bias are accepted only at their
neutral values (some clients always send them) and otherwise refused with 400; an unknown field is
a 400 too, as OpenAI answers it. Errors are OpenAI's shape: {"error": {"message", "type", "param", "code"}}.

Defaults: options not given take lyricgen's recommended settings (config.SAMPLE_PRESET: temperature
0.5, top_p 0.9, ...), as vLLM applies a model's own generation_config, rather than OpenAI's
temperature 1; max_tokens defaults to lyricgen's 100 (OpenAI's 16 would cut a song short). The text
of a choice is the completion without the prompt, as OpenAI's (unless echo).
"""
import time
import uuid

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, create_model
from starlette.responses import Response, StreamingResponse

from ..config import SAMPLE_PRESET
from ..errors import Cancelled
from .http import SSE_HEADERS, ApiError, ClientGone, TokenStream, await_job, from_exception, ready_engine, sse
from .schema import CAPS, MAX_START_CHARS, STRICT, field_info, given_options, option_fields, option_specs

MAX_STOP = 4  # as OpenAI
MAX_STOP_CHARS = 64
# OpenAI parameters lyricgen cannot honour: accepted at these values only.
NEUTRAL = {"suffix": (None, ""), "logprobs": (None,), "presence_penalty": (None, 0), "frequency_penalty": (None, 0),
           "logit_bias": (None, {})}
OPENAI_NAMES = {"num_samples": "n", "start": "prompt"}  # lyricgen's name -> the OpenAI parameter


class StreamOptions(BaseModel):
    model_config = STRICT
    include_usage: bool = False


def completion_request_model() -> type[BaseModel]:
    specs = option_specs()
    n_spec = next(s for s in specs if s.name == "num_samples")
    own = {
        "model": (str | None, Field(None, description="the served model's id (GET /v1/models); may be left out")),
        "prompt": (str | list[str], Field(description="the start word; a list must hold exactly one")),
        "n": (int, field_info(n_spec, 1, "completions to return, best (highest mean log-probability) first")),
        "best_of": (int | None, Field(None, ge=1, le=CAPS["num_samples"],
                                      description="write this many and return the n best (default: n)")),
        "stream": (bool, Field(False, description="OpenAI's `data: {chunk}` events, then `data: [DONE]`")),
        "stream_options": (StreamOptions | None, None),
        "stop": (str | list[str] | None, Field(None, description=f"up to {MAX_STOP} sequences; the text ends "
                                                                 "before the first one written")),
        "echo": (bool, Field(False, description="put the prompt before the completion")),
        "user": (str | None, Field(None, max_length=256, description="accepted and ignored")),
        "suffix": (str | None, Field(None, description="not supported: null or \"\" only")),
        "logprobs": (int | None, Field(None, description="not supported: null only")),
        "presence_penalty": (float | None, Field(None, description="not supported (see repetition_penalty): 0 only")),
        "frequency_penalty": (float | None, Field(None, description="not supported (see no_repeat_ngram): 0 only")),
        "logit_bias": (dict[str, float] | None, Field(None, description="not supported: {} only")),
    }
    options = option_fields(specs, defaults=SAMPLE_PRESET, skip=("num_samples",))
    clash = sorted(set(own) & set(options))
    if clash:
        raise RuntimeError(f"generation option {clash[0]!r} clashes with an OpenAI parameter of the same name")
    return create_model("CompletionRequest", __config__=STRICT, **own, **options)


SPECS = option_specs()
NAMES = [s.name for s in SPECS]
CompletionRequest = completion_request_model()
router = APIRouter()


def bad_request(message: str, param: str | None, code: str = "invalid_value") -> ApiError:
    return ApiError(400, message, code, param)


def check_request(body, engine) -> tuple[str, list[str]]:
    """(the start word, the stop sequences), or an ApiError naming the parameter."""
    if body.model is not None and body.model != engine.model_id:
        raise ApiError(404, f"The model `{body.model}` does not exist; this server has `{engine.model_id}`.",
                       "model_not_found", "model")
    for name, neutral in NEUTRAL.items():
        if getattr(body, name) not in neutral:
            raise bad_request(f"{name} is not supported by lyricgen", name, "unsupported_parameter")
    prompt = body.prompt
    if isinstance(prompt, list):
        if len(prompt) != 1:
            raise bad_request("prompt: lyricgen takes one start word per request", "prompt")
        prompt = prompt[0]
    if len(prompt) > MAX_START_CHARS:
        raise bad_request(f"prompt: the start word may have at most {MAX_START_CHARS} characters", "prompt")
    stops = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    if len(stops) > MAX_STOP or any(not s or len(s) > MAX_STOP_CHARS for s in stops):
        raise bad_request(f"stop: at most {MAX_STOP} sequences of 1 to {MAX_STOP_CHARS} characters", "stop")
    if body.best_of is not None and body.best_of < body.n:
        raise bad_request("best_of must be at least n", "best_of")
    return prompt, stops


def cut_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    """The text before the first stop sequence in it, and whether there was one."""
    found = [i for i in (text.find(s) for s in stops) if i >= 0]
    return (text[:min(found)], True) if found else (text, False)


def visible_text(text: str, stops: list[str]) -> tuple[str, bool]:
    """What of a completion still being written can be sent: up to a stop sequence; otherwise all
    but a tail that may be the start of one, and trailing line breaks (the final text drops them)."""
    cut, stopped = cut_at_stop(text, stops)
    if stopped:
        return cut, True
    hold = max((k for s in stops for k in range(1, len(s)) if text.endswith(s[:k])), default=0)
    return text[:len(text) - hold].rstrip("\n"), False


def completion_of(candidate, head: str) -> str:
    return candidate.text[len(head):] if candidate.text.startswith(head) else candidate.text


def choice(index: int, text: str, finish: str | None) -> dict:
    return {"index": index, "text": text, "logprobs": None, "finish_reason": finish}


class Completion:
    """One request's answer in OpenAI's shapes."""

    def __init__(self, engine, prepared, body, stops):
        self.id, self.created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
        self.engine, self.prepared, self.body, self.stops = engine, prepared, body, stops
        self.include_usage = bool(body.stream_options and body.stream_options.include_usage)

    def choices(self, candidates) -> list[dict]:
        out = []
        for k, c in enumerate(candidates[:self.body.n]):
            text, stopped = cut_at_stop(completion_of(c, self.prepared.start), self.stops)
            finish = "stop" if stopped or c.tokens < self.prepared.options["max_tokens"] else "length"
            out.append(choice(k, (self.prepared.start + text) if self.body.echo else text, finish))
        return out

    def usage(self, completion_tokens: int) -> dict:
        prompt = len(self.prepared.prompt_ids)
        return {"prompt_tokens": prompt, "completion_tokens": completion_tokens,
                "total_tokens": prompt + completion_tokens}

    def body_of(self, candidates) -> dict:
        return {"id": self.id, "object": "text_completion", "created": self.created, "model": self.engine.model_id,
                "choices": self.choices(candidates), "usage": self.usage(sum(c.tokens for c in candidates))}

    def chunk(self, choices: list[dict], usage: dict | None = None) -> str:
        data = {"id": self.id, "object": "text_completion", "created": self.created, "model": self.engine.model_id,
                "choices": choices}
        if self.include_usage:
            data["usage"] = usage
        return sse(data)


@router.post("/v1/completions")
async def completions(request: Request, body: CompletionRequest):  # noqa: F821 (built above)
    engine = ready_engine(request.app.state.engine)
    try:
        prompt, stops = check_request(body, engine)
        options = {**given_options(body, SPECS), "num_samples": body.best_of or body.n}
        prepared = engine.prepare(prompt, options, sample=True)
        completion = Completion(engine, prepared, body, stops)
        if body.stream:
            return stream_completion(engine, completion)
        candidates = await await_job(request, engine.submit(prepared))
    except ClientGone:
        return Response(status_code=499)
    except Exception as e:
        err = from_exception(e, NAMES, status=400)
        err.field = OPENAI_NAMES.get(err.field, err.field)
        raise err from None
    return completion.body_of(candidates)


def stream_completion(engine, completion: Completion) -> StreamingResponse:
    """Token by token for one candidate (n = best_of = 1, no no_copy); otherwise, since lines are
    final only with the candidate, each choice whole in one chunk once written. Then a chunk with
    finish_reason, the usage chunk if asked, and [DONE]. A stop sequence ends the generation."""
    import asyncio

    prepared = completion.prepared
    incremental = prepared.options["num_samples"] == 1 and not prepared.options.get("no_copy")
    tokens = TokenStream(asyncio.get_running_loop())
    job = engine.submit(prepared, tokens if incremental else None)
    tokens.attach(job)

    async def events():
        head_seen, written, sent, shown, count, stopped = False, "", "", "", 0, False  # shown: of choice 0
        try:
            async for kind, value in tokens.events():
                if kind == "ping":
                    yield ": keep-alive\n\n"
                elif kind == "done":
                    async for text in finish(completion, value, shown, count, stopped):
                        yield text
                elif not head_seen:  # the start word comes first
                    head_seen = True
                    if completion.body.echo:
                        shown = value
                        yield completion.chunk([choice(0, value, None)])
                elif not stopped:
                    written, count = written + value, count + 1
                    visible, stopped = visible_text(written, completion.stops)
                    if stopped:
                        job.cancel()  # the text is complete: writing on would be for nobody
                    if len(visible) > len(sent):
                        delta, sent = visible[len(sent):], visible
                        shown += delta
                        yield completion.chunk([choice(0, delta, None)])
        finally:
            job.cancel()

    return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)


async def finish(completion: Completion, future, shown: str, count: int, stopped: bool):
    """The end of a stream: what is left of each choice, finish_reason, usage, [DONE]."""
    error = None if future.cancelled() else future.exception()
    if stopped and (future.cancelled() or isinstance(error, Cancelled)):
        choices, used = [choice(0, "", "stop")], count
    elif future.cancelled() or error is not None:
        err = from_exception(error or Cancelled("cancelled"), NAMES, status=400)
        yield sse({"error": {"message": err.message, "type": "server_error", "param": None, "code": err.kind}})
        yield sse("[DONE]")
        return
    else:
        candidates = future.result()
        choices, used = completion.choices(candidates), sum(c.tokens for c in candidates)
        if shown:  # choice 0 was streamed: only its rest is left (the final text is authoritative)
            full = choices[0]["text"]
            choices[0] = {**choices[0], "text": full[len(shown):] if full.startswith(shown) else ""}
    for c in choices:
        if c["text"]:
            yield completion.chunk([{**c, "finish_reason": None}])
        yield completion.chunk([choice(c["index"], "", c["finish_reason"])])
    if completion.include_usage:
        yield completion.chunk([], completion.usage(used))
    yield sse("[DONE]")
