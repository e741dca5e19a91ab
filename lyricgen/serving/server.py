"""`lyricgen serve` as a library call: bind, start uvicorn at once, load the model beside it.

    serve(ServeConfig(checkpoint="runs/jay/best.pt", port=8000), say=print)

The socket is bound here, before uvicorn starts, so a port in use is one clear error, and port 0
gets a free port whose address is printed. The server answers from the first moment (/health says
503 "loading", like TGI's router before its shards are up) while a thread loads the checkpoint; if
loading fails, the server stops and serve() raises the reason. Torch threads are set once for the
process (one per worker on the CPU, runtime.generation_threads). Ctrl-C or SIGTERM stops accepting
requests, gives streams in flight a few seconds, then cancels what is left.
"""
import ipaddress
import socket
import threading
from pathlib import Path

from ..config import ServeConfig, usable_cores
from ..errors import LyricgenError

MAX_DEFAULT_WORKERS = 8
GRACEFUL_SHUTDOWN_S = 5


def default_workers() -> int:
    """One worker per CPU core this process may use (taskset and cgroups included where visible)."""
    return max(1, min(usable_cores(), MAX_DEFAULT_WORKERS))


def bind(host: str, port: int) -> socket.socket:
    """A bound socket for uvicorn; LyricgenError naming the address when that fails."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)  # connections queue from now on, before uvicorn is up: the printed address works at once
    except OSError as e:
        raise LyricgenError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(config: ServeConfig, say=print) -> int:
    """Run the server until Ctrl-C or SIGTERM; returns 0, or raises LyricgenError (bad checkpoint,
    address in use)."""
    import uvicorn

    from ..runtime import generation_threads, resolve_device
    from .app import create_app
    from .engine import Engine
    from .pool import WorkerPool

    checkpoint = Path(config.checkpoint)
    if not checkpoint.is_file():  # the common mistake, caught before anything starts
        raise LyricgenError(f"checkpoint not found: {checkpoint}")
    device = resolve_device(config.device)
    generation_threads(device)
    workers = config.workers or default_workers()
    pool = WorkerPool(workers, config.queue)
    engine = Engine(pool)
    sock = bind(config.host, config.port)
    server = uvicorn.Server(uvicorn.Config(create_app(engine), log_level="info", access_log=config.access_log,
                                           timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S, lifespan="off"))

    def load():
        try:
            engine.load(checkpoint, device, model_id=config.checkpoint)
        except Exception as e:  # noqa: BLE001 - any failure must stop the server with its reason
            engine.error = engine.error or f"{type(e).__name__}: {e}"
            server.should_exit = True
            return
        info = engine.info
        corpus = f", corpus {info['corpus']['name']}" if info["corpus"] else ""
        say(f"lyricgen: ready: {config.checkpoint} ({info['vocab_size']:,} vocabulary entries{corpus}) on {device}")

    say(f"lyricgen: serving {url_of(sock)} ({workers} worker{'s' * (workers != 1)}, queue {config.queue}); "
        f"loading {checkpoint} ...")
    if not is_loopback(config.host):
        say(f"lyricgen: note: listening on {config.host}: anyone who can reach this machine can use the server "
            "(it has no authentication)")
    threading.Thread(target=load, name="lyricgen-load", daemon=True).start()
    try:
        server.run(sockets=[sock])
    finally:
        pool.shutdown()
        sock.close()
    if engine.error is not None:
        raise LyricgenError(f"could not load the model: {engine.error}")
    return 0
