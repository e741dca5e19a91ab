"""The FastAPI app: the page, health, the model, lyricgen's own API; /v1/completions comes from
openai_api.py. `create_app(engine)` builds it around an Engine (loaded or still loading).

    GET  /                 the page (static/index.html)
    GET  /health           503 {"status": "loading"} until the model is loaded, then 200 {"status": "ok"}
    GET  /v1/models        the loaded checkpoint, OpenAI's list shape plus a `lyricgen` description
    GET  /api/options      every generation option: type, default, bounds, help (the page's form),
                           the --sample preset, whether themes are available, the desk's limits, and
                           the pool's state (running, waiting)
    POST /api/generate     {"start": "月光", ...options} -> {"candidates": [...], ...}; "stream": true
                           gives server-sent events: `token` per token, then `done` or `error`.
                           "keep": [{"line": 1, "text": "..."}] writes the song around those lines
                           (each candidate's `lines` says which were kept, `notes` what was relaxed)
    POST /api/alternatives {"start", "song": [lines], "line": K, "n": N, ...options} ->
                           {"alternatives": [{"text", "score", "rhyme", "copied"}, ...]}: N lines that
                           could stand in for line K, best first (every other line is kept)
    POST /api/lines        {"lines": [...]} -> {"lines": [{"text", "rhyme", "copied"}, ...]}: lines
                           edited by hand, described as a song's lines are

Every request that writes or reads the model (songs, alternatives, lines) takes a place in the same
bounded pool (pool.py): when workers and queue are full, any of them is a 503 with Retry-After.

Errors: 422 naming the field for a bad option or an unknown start word (with known words
suggested), 400 for malformed JSON, 413 for a body over MAX_BODY_BYTES, 503 with Retry-After while
loading or when the pool is full. /docs is off: Swagger UI loads its scripts from a CDN, and the
server must work offline; /openapi.json describes the API.
"""
import importlib.resources
import time

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse

from .._version import __version__
from ..config import MAX_ALTERNATIVES, MAX_KEPT_CHARS, MAX_SONG_LINES, SAMPLE_PRESET
from .http import (
    SSE_HEADERS,
    ApiError,
    BodyLimit,
    ClientGone,
    TokenStream,
    await_job,
    error_response,
    from_exception,
    is_openai,
    log,
    ready_engine,
    sse,
    validation_error,
)
from .schema import (
    MAX_BODY_BYTES,
    MAX_START_CHARS,
    LinesRequest,
    alternatives_request_model,
    generate_request_model,
    given_options,
    option_specs,
)

# The page may talk to this server only: nothing from elsewhere, so it works offline by construction.
# The desk's own request fields: an OptionError starting with one of them names it (Lyricist.alternatives).
DESK_FIELDS = ("song", "line", "n", "lines")
PAGE_CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; "
            "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def page_html() -> str:
    return importlib.resources.files(__package__).joinpath("static/index.html").read_text(encoding="utf-8")


def result_body(engine, prepared, candidates, elapsed: float) -> dict:
    return {"model": engine.model_id, "start": prepared.start, "unknown": prepared.unknown,
            "options": prepared.options, "candidates": [c.to_dict() for c in candidates],
            "elapsed_s": round(elapsed, 3)}


def create_app(engine) -> FastAPI:
    from .openai_api import router as openai_router

    specs = option_specs()
    names = [s.name for s in specs]
    GenerateRequest = generate_request_model()
    AlternativesRequest = alternatives_request_model()
    page = page_html()
    app = FastAPI(title="lyricgen", version=__version__, docs_url=None, redoc_url=None,
                  description="Song lyrics from a start word; OpenAI-compatible completions at /v1/completions.")
    app.state.engine = engine
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)
    install_error_handlers(app)

    @app.get("/", include_in_schema=False)
    async def index():
        return HTMLResponse(page, headers={"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-cache"})

    @app.get("/health")
    async def health():
        if engine.ready.is_set():
            return {"status": "ok"}
        if engine.error is not None:
            return JSONResponse({"status": "error", "error": engine.error}, status_code=503)
        return JSONResponse({"status": "loading"}, status_code=503, headers={"Retry-After": "2"})

    @app.get("/v1/models")
    async def models():
        ready_engine(engine)
        return {"object": "list", "data": [{"id": engine.model_id, "object": "model", "created": engine.created,
                                            "owned_by": "lyricgen", "lyricgen": engine.info}]}

    @app.get("/api/options")
    async def options():
        return {"options": [s.to_dict() for s in specs], "sample_preset": SAMPLE_PRESET,
                "start": {"max_length": MAX_START_CHARS}, "themes": engine.themes,
                "desk": {"max_song_lines": MAX_SONG_LINES, "max_alternatives": MAX_ALTERNATIVES,
                         "max_line_chars": MAX_KEPT_CHARS},
                "pool": engine.pool.stats()}

    @app.post("/api/generate")
    async def generate(request: Request, body: GenerateRequest):
        started = time.monotonic()
        ready_engine(engine)
        try:
            prepared = engine.prepare(body.start, given_options(body, specs), body.sample, body.stream)
            if body.stream:
                return stream_generate(engine, prepared, started)
            candidates = await await_job(request, engine.submit(prepared))
        except ClientGone:
            return Response(status_code=499)  # nginx's "client closed request"; nobody reads it
        except Exception as e:
            raise from_exception(e, names) from None
        return result_body(engine, prepared, candidates, time.monotonic() - started)

    @app.post("/api/alternatives")
    async def alternatives(request: Request, body: AlternativesRequest):
        started = time.monotonic()
        ready_engine(engine)
        try:
            prepared = engine.prepare(body.start, given_options(body, specs), body.sample)
            found = await await_job(request, engine.alternatives(prepared, list(body.song), body.line, body.n))
        except ClientGone:
            return Response(status_code=499)
        except Exception as e:  # noqa: BLE001 - every failure becomes an ApiError (the unexpected logged, a 500)
            raise from_exception(e, [*names, *DESK_FIELDS]) from None
        return {"model": engine.model_id, "start": prepared.start, "line": body.line, "options": prepared.options,
                "alternatives": [a.to_dict() for a in found], "elapsed_s": round(time.monotonic() - started, 3)}

    @app.post("/api/lines")
    async def lines(request: Request, body: LinesRequest):
        ready_engine(engine)
        try:
            described = await await_job(request, engine.describe(list(body.lines)))
        except ClientGone:
            return Response(status_code=499)
        except Exception as e:  # noqa: BLE001 - as above
            raise from_exception(e, DESK_FIELDS) from None
        return {"lines": described}

    app.include_router(openai_router)
    return app


def stream_generate(engine, prepared, started: float) -> StreamingResponse:
    """`token` events as the worker writes, then `done` (the body /api/generate returns, whose text is
    authoritative: --no-copy may drop a line after it streamed) or `error`. The job is submitted
    before the response starts, so a full pool is still a plain 503."""
    import asyncio

    tokens = TokenStream(asyncio.get_running_loop())
    job = engine.submit(prepared, tokens)
    tokens.attach(job)

    async def events():
        try:
            async for kind, value in tokens.events():
                if kind == "ping":
                    yield ": keep-alive\n\n"
                elif kind == "token":
                    yield sse({"text": value}, "token")
                elif value.cancelled():
                    yield sse({"error": "the server is shutting down", "error_type": "shutting_down"}, "error")
                elif value.exception() is not None:
                    err = from_exception(value.exception())
                    yield sse({"error": err.message, "error_type": err.kind}, "error")
                else:
                    yield sse(result_body(engine, prepared, value.result(), time.monotonic() - started), "done")
        finally:
            job.cancel()  # the client went away (or the stream ended): stop writing for nobody

    return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError):
        return error_response(request.url.path, exc)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        path = request.url.path
        if "json" not in request.headers.get("content-type", ""):  # FastAPI then never read the body
            return error_response(path, ApiError(415, "send the body as JSON, with Content-Type: application/json",
                                                 "unsupported_media_type"))
        return error_response(path, validation_error(list(exc.errors()), 400 if is_openai(path) else 422))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(request.url.path, ApiError(exc.status_code, str(exc.detail), kind,
                                                         headers=exc.headers))

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception):
        log.error("unhandled error on %s", request.url.path, exc_info=exc)
        return error_response(request.url.path, ApiError(500, "internal server error", "internal"))
