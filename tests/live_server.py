"""A real server for the tests that need one (streaming, the browser, the OpenAI client): the app
on uvicorn in a thread, on a free port of 127.0.0.1."""
import threading
import time


def wait_until(condition, timeout=10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


class LiveServer:
    """The app on a real uvicorn in a thread, on a free port: for what the test client cannot do."""

    def __init__(self, app):
        import uvicorn

        from lyricgen.serving.server import bind, url_of

        sock = bind("127.0.0.1", 0)
        self.url = url_of(sock)
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        assert wait_until(lambda: self.server.started), "server did not start"

    def stop(self):
        self.server.should_exit = True
        self.thread.join(10)


def tiny_engine(checkpoint, model_id: str):
    """An Engine serving `checkpoint` (conftest's `served_checkpoint`) with one worker and no queue: a
    second request while one runs is refused, so the busy paths are easy to bring about."""
    import torch

    from lyricgen.serving.engine import Engine
    from lyricgen.serving.pool import WorkerPool

    engine = Engine(WorkerPool(1, 0))
    engine.load(checkpoint, torch.device("cpu"), model_id=model_id)
    return engine
