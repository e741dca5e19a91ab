"""What both HTTP APIs share: one error type and its two shapes, the body limit, waiting for a
worker while watching the client, and server-sent events.

Errors are raised as ApiError and drawn by `error_response` in the shape of the API the request
went to: under /v1/ OpenAI's `{"error": {"message", "type", "param", "code"}}`, elsewhere a flat
`{"error": message, "error_type", "field"}` as Hugging Face TGI answers. No client ever gets a
traceback: unexpected exceptions are logged here and answered with a 500 and one sentence.
"""
import asyncio
import json
import logging

from starlette.requests import Request
from starlette.responses import JSONResponse

from ..errors import Cancelled, LyricgenError
from .pool import Busy
from .schema import error_field

log = logging.getLogger("lyricgen.serve")
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # no proxy may hold tokens back
KEEPALIVE_S = 15.0  # an SSE comment this often while a stream waits, so idle proxies keep it open


class ApiError(Exception):
    def __init__(self, status: int, message: str, kind: str, field: str | None = None, headers: dict | None = None,
                 **extra):
        super().__init__(message)
        self.status, self.message, self.kind, self.field = status, message, kind, field
        self.headers = headers or {}
        self.extra = extra


class ClientGone(Exception):
    """The client closed its connection before its answer was ready."""


def is_openai(path: str) -> bool:
    return path.startswith("/v1/")


def ready_engine(engine):
    """The engine, once its model has loaded; else the 503 that says why not."""
    if engine.error is not None:
        raise ApiError(503, f"the model could not be loaded: {engine.error}", "load_failed")
    if not engine.ready.is_set():
        raise ApiError(503, "the model is still loading", "loading", headers={"Retry-After": "2"})
    return engine


def error_response(path: str, err: ApiError) -> JSONResponse:
    if is_openai(path):
        kind = "invalid_request_error" if err.status < 500 else "server_error"
        body = {"error": {"message": err.message, "type": kind, "param": err.field, "code": err.kind, **err.extra}}
    else:
        body = {"error": err.message, "error_type": err.kind, **({"field": err.field} if err.field else {}),
                **err.extra}
    return JSONResponse(body, status_code=err.status, headers=err.headers)


def from_exception(exc: Exception, option_names=(), status: int = 422) -> ApiError:
    """An ApiError for what generation can raise; `status` is what a bad option gets on this API."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, Busy):
        return ApiError(503, str(exc), "busy", headers={"Retry-After": str(exc.retry_after)},
                        retry_after=exc.retry_after)
    if isinstance(exc, Cancelled):
        return ApiError(503, "the server is shutting down", "shutting_down", headers={"Retry-After": "5"})
    if isinstance(exc, LyricgenError):
        from ..writing.generate import StartWordError  # only now: torch came with the model, not with the app

        if isinstance(exc, StartWordError):
            return ApiError(status, str(exc), "unknown_start_word", "start", suggestions=exc.suggestions)
        return ApiError(status, str(exc), "validation", error_field(str(exc), option_names))
    log.error("generation failed", exc_info=exc)
    return ApiError(500, "internal error while generating; the server log has the details", "internal")


def validation_error(errors: list[dict], status: int) -> ApiError:
    """FastAPI's RequestValidationError as one sentence naming the field; malformed JSON is a 400."""
    first = errors[0] if errors else {"loc": ("body",), "msg": "invalid request", "type": "invalid"}
    if first.get("type") == "json_invalid":
        return ApiError(400, f"the body is not valid JSON: {first.get('ctx', {}).get('error', first['msg'])}",
                        "invalid_json")
    loc = [str(x) for x in first.get("loc", ()) if x != "body"]
    field = ".".join(loc) or None
    if first.get("type") == "extra_forbidden":
        message = f"unknown field {field!r}"
    elif field is None:
        message = f"the body must be a JSON object: {first['msg']}"
    else:
        message = f"{field}: {first['msg']}"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return ApiError(status, message + more, "validation", field)


class BodyLimit:
    """ASGI middleware: a request body over `limit` bytes is answered with 413 before any parsing,
    whether it declares its length or arrives in chunks. The body is read here, so the app gets it
    whole; after it, `receive` is the server's own again (disconnects still reach the app)."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            return await self.refuse(scope, receive, send, declared.isdigit())
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                return await self.refuse(scope, receive, send, True)
            if not message.get("more_body"):
                break
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def refuse(self, scope, receive, send, too_large: bool):
        err = (ApiError(413, f"the request body is larger than {self.limit} bytes", "too_large") if too_large
               else ApiError(400, "invalid Content-Length header", "invalid_request"))
        await error_response(scope["path"], err)(scope, receive, send)


async def wait_for_disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def await_job(request: Request, job):
    """The job's result; if the client disconnects first, the job is cancelled and ClientGone raised."""
    result = asyncio.wrap_future(job.future)
    gone = asyncio.ensure_future(wait_for_disconnect(request))
    try:
        await asyncio.wait({result, gone}, return_when=asyncio.FIRST_COMPLETED)
        if not result.done():
            raise ClientGone()
    finally:
        gone.cancel()
        if not result.done():  # the client left, or this handler was cancelled (shutdown)
            job.cancel()
            result.cancel()
    if result.cancelled():  # dropped from the queue: the pool is shutting down
        raise Cancelled("the server is shutting down")
    return result.result()


class TokenStream:
    """Tokens from a worker thread to the event loop, then the job's end: ("token", text) items,
    ("ping", None) when nothing came for KEEPALIVE_S, and finally ("done", future)."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.queue: asyncio.Queue = asyncio.Queue()  # at most max_tokens items: bounded by the caps

    def put(self, item) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # the loop has closed: the server stopped, nobody is listening
            pass

    def send(self, text: str) -> None:  # called on the worker, for each piece of text it writes
        self.put(("token", text))

    def attach(self, job) -> None:
        job.future.add_done_callback(lambda future: self.put(("done", future)))

    async def events(self):
        while True:
            try:
                kind, value = await asyncio.wait_for(self.queue.get(), KEEPALIVE_S)
            except asyncio.TimeoutError:
                yield "ping", None
                continue
            yield kind, value
            if kind == "done":
                return


def sse(data, event: str | None = None) -> str:
    """One server-sent event; `data` is JSON-encoded unless it is already text ("[DONE]")."""
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return (f"event: {event}\n" if event else "") + f"data: {text}\n\n"
