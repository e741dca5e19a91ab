"""`lyricgen serve`: the web page and an HTTP API over one loaded model (needs `lyricgen[serve]`).

    lyricgen serve --checkpoint runs/jay/best.pt            # http://127.0.0.1:8000/

    schema.py      request shapes derived from the generation configs, the server's hard caps
    pool.py        the bounded worker pool: K threads, a queue of Q, Busy past it, cancellation
    engine.py      the loaded model: loading, describing it, preparing and running a request
    app.py         the FastAPI app: the page, /health, /v1/models, /api/generate, errors, body limit
    openai_api.py  /v1/completions in OpenAI's shapes, on the same engine
    server.py      binding the socket, uvicorn, loading in the background, shutting down
    static/        index.html: the page, one file, no build step, nothing fetched from elsewhere

The conventions are those text-generation servers share (Hugging Face TGI, vLLM's OpenAI server,
llama.cpp's server); where lyricgen follows one of them in particular, the code says which.
Importing this package imports neither FastAPI nor torch: the command line checks for the extra
with `missing_extra()` before importing the rest.
"""
import importlib.util

INSTALL_HINT = "pip install 'lyricgen[serve]'"


def missing_extra() -> str | None:
    """The first server dependency that is not installed, or None."""
    for name in ("fastapi", "uvicorn"):
        try:
            if importlib.util.find_spec(name) is None:
                return name
        except (ImportError, ValueError):  # a module set to None in sys.modules, a broken install
            return name
    return None
