"""A bounded pool for generation: K worker threads, at most Q requests waiting, Busy past that.

    pool = WorkerPool(workers=2, queue=8)
    job = pool.submit(lambda should_stop: engine.write(prepared, should_stop))  # or Busy
    job.future.result(); job.cancel()

Threads, not processes: the workers share one model in memory, and torch releases the GIL inside
its kernels. The number of torch threads is the process's, set once at start (one: runtime.py). Admission is decided at submit time (like llama.cpp's slots and TGI's
max-concurrent-requests), so an overloaded server answers at once instead of letting a queue grow
without bound. A cancelled job stops at its next step (the worker asks should_stop() before it
takes the next piece of the writing generator) or, still waiting, never runs.
"""
import math
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor


class Busy(Exception):
    """Every worker is busy and the queue is full; retry after `retry_after` seconds."""

    def __init__(self, retry_after: int, pending: int):
        super().__init__(f"the server is busy ({pending} requests running or waiting); retry in {retry_after} s")
        self.retry_after = retry_after
        self.pending = pending


class Job:
    def __init__(self, pool: "WorkerPool"):
        self.pool = pool
        self.cancelled = threading.Event()
        self.future: Future | None = None

    def should_stop(self) -> bool:
        return self.cancelled.is_set() or self.pool.closing.is_set()

    def cancel(self) -> None:
        """Stop at the next token; a job still waiting for a worker is dropped."""
        self.cancelled.set()
        if self.future is not None:
            self.future.cancel()  # succeeds only while it waits; its slot is freed by the done callback


class WorkerPool:
    def __init__(self, workers: int, queue: int):
        if workers < 1 or queue < 0:
            raise ValueError("a pool needs at least one worker and a queue of zero or more")
        self.workers, self.queue = workers, queue
        self.executor = ThreadPoolExecutor(workers, thread_name_prefix="lyricgen-worker")
        self.closing = threading.Event()
        self._lock = threading.Lock()
        self._pending = 0  # running + waiting
        self._job_s = 1.0  # moving average of a job's duration, for Retry-After

    @property
    def capacity(self) -> int:
        return self.workers + self.queue

    def stats(self) -> dict:
        with self._lock:
            pending = self._pending
        return {"workers": self.workers, "queue": self.queue, "running": min(pending, self.workers),
                "waiting": max(pending - self.workers, 0), "mean_job_s": round(self._job_s, 3)}

    def retry_after(self, pending: int) -> int:
        """Seconds until a slot is likely free: the waiting jobs' expected time, spread over the workers."""
        return max(1, min(60, math.ceil(self._job_s * (pending - self.workers + 1) / self.workers)))

    def submit(self, fn) -> Job:
        """Run fn(should_stop) on a worker, or raise Busy when workers + queue are all taken."""
        with self._lock:
            if self.closing.is_set() or self._pending >= self.capacity:
                raise Busy(self.retry_after(self._pending), self._pending)
            self._pending += 1
        job = Job(self)
        try:
            job.future = self.executor.submit(self._run, job, fn)
        except RuntimeError:  # the executor shut down between the check and here
            self._release(None)
            raise Busy(1, 0) from None
        job.future.add_done_callback(self._release)
        return job

    def _run(self, job: Job, fn):
        started = time.monotonic()
        try:
            return fn(job.should_stop)
        finally:
            elapsed = time.monotonic() - started
            with self._lock:
                self._job_s = 0.8 * self._job_s + 0.2 * elapsed

    def _release(self, _future) -> None:
        with self._lock:
            self._pending -= 1

    def shutdown(self) -> None:
        """Stop every job at its next token and wait for the workers to finish."""
        self.closing.set()
        self.executor.shutdown(wait=True, cancel_futures=True)
