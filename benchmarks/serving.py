"""Serving under load: `lyricgen serve` in its own process on a free 127.0.0.1 port, driven by
concurrent clients, and a screenshot of its page.

    python -m benchmarks --sections serving --checkpoint CKPT      # or after the quality section

1, 4 and 16 clients in turn, each sending song requests (4 lines, the recommended sampling) back
to back for a bounded count and time; a refused client (503) waits its Retry-After (at most 1 s)
before trying again, as a polite client does. Per phase: requests/s, p50/p95 latency of the answered
requests, and how many were refused. Then 1,000 mixed requests (short songs, streams, OpenAI
completions, invalid bodies) at 4 clients with the server's resident memory before and after: it
should not grow. No request may ever get a 5xx other than 503. All traffic stays on 127.0.0.1.
The page, with a song written in it, is saved as serving-page.png beside bench.json (headless
Chromium; skipped with a note where it is missing).
"""
import asyncio
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from .common import Context, Section, lyricgen_cmd, proc_status_mb

WORKERS, QUEUE = 2, 8  # a 2-core machine: 16 clients overflow workers + queue, so refusals show
CLIENTS = (1, 4, 16)
MEMORY_REQUESTS = 1000
SONG = {"lines": 4, "sample": True}


class Tally:
    def __init__(self):
        self.latencies, self.refused, self.server_errors, self.client_errors, self.failed = [], 0, 0, 0, 0

    def summary(self, wall: float) -> dict:
        lat = sorted(self.latencies)
        pick = (lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000) if lat else (lambda q: None)
        return {"answered": len(lat), "refused_503": self.refused, "errors_5xx": self.server_errors,
                "errors_4xx": self.client_errors, "transport_errors": self.failed, "wall_s": round(wall, 2),
                "requests_per_s": len(lat) / wall if wall else None, "p50_ms": pick(0.5), "p95_ms": pick(0.95),
                "mean_ms": statistics.fmean(lat) * 1000 if lat else None}


async def send(http, request: tuple[str, dict], tally: Tally) -> None:
    path, body = request
    started = time.perf_counter()
    try:
        if body.get("stream"):
            async with http.stream("POST", path, json=body) as r:
                async for _ in r.aiter_raw():
                    pass
        else:
            r = await http.post(path, json=body)
    except Exception:  # noqa: BLE001 - a refused connection or a timeout counts, whatever its kind
        tally.failed += 1
        return
    if r.status_code == 200:
        tally.latencies.append(time.perf_counter() - started)
    elif r.status_code == 503:
        tally.refused += 1
        await asyncio.sleep(min(float(r.headers.get("Retry-After", 1)), 1.0))
    elif r.status_code >= 500:
        tally.server_errors += 1
    else:
        tally.client_errors += 1


async def drive(url: str, clients: int, requests, limit: int, seconds: float) -> dict:
    """`clients` concurrent loops taking requests from `requests` until `limit` were sent or time is up."""
    import httpx

    tally, sent, deadline = Tally(), 0, time.monotonic() + seconds

    async def loop(http):
        nonlocal sent
        while sent < limit and time.monotonic() < deadline:
            sent += 1
            await send(http, requests(sent), tally)

    started = time.perf_counter()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        await asyncio.gather(*(loop(http) for _ in range(clients)))
    return {"clients": clients, "sent": sent, **tally.summary(time.perf_counter() - started)}


def song_requests(words: list[str]):
    return lambda k: ("/api/generate", {"start": words[k % len(words)], "seed": k, **SONG})


def mixed_requests(words: list[str], model: str):
    """Short songs mostly, every 10th streamed, every 10th through /v1/completions, every 10th invalid."""
    def request(k):
        word = words[k % len(words)]
        kind = k % 10
        if kind == 1:
            return "/api/generate", {"start": word, "seed": k, "max_tokens": 20, "sample": True, "stream": True}
        if kind == 2:
            return "/v1/completions", {"model": model, "prompt": word, "max_tokens": 20, "seed": k}
        if kind == 3:
            return "/api/generate", {"start": word, "temperature": -1}
        return "/api/generate", {"start": word, "seed": k, "max_tokens": 20, "sample": True}
    return request


class Server:
    """`lyricgen serve` on port 0 in ctx.tmp; its address read from its log."""

    def __init__(self, ctx: Context, checkpoint):
        self.log = ctx.tmp / "serve.log"
        with open(self.log, "w") as err:
            self.proc = subprocess.Popen(lyricgen_cmd("serve", "--checkpoint", checkpoint, "--port", 0, "--workers",
                                                      WORKERS, "--queue", QUEUE, "--no-access-log"),
                                         env=ctx.env, cwd=ctx.tmp, stdout=subprocess.DEVNULL, stderr=err)
        self.url = self.wait_for("serving http://", 120).split("serving ", 1)[1].split(" ", 1)[0]
        self.wait_for("lyricgen: ready", 300)

    def wait_for(self, marker: str, seconds: float) -> str:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for line in self.log.read_text(encoding="utf-8").splitlines():
                if marker in line:
                    return line
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"lyricgen serve did not say {marker!r}: {self.log.read_text(encoding='utf-8')[-800:]}")

    def rss_mb(self) -> float | None:
        return proc_status_mb(self.proc.pid)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def screenshot(url: str, word: str, path: Path) -> str | None:
    """The page with a song written in it, as a PNG; None (with the reason printed) without Chromium."""
    chromium = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    driver_path = shutil.which("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait
    except ImportError:
        chromium = None
    if not (chromium and driver_path):
        print("[bench] serving: no screenshot: needs chromium, chromedriver and selenium", file=sys.stderr)
        return None
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,950"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        driver.get(url)
        WebDriverWait(driver, 20).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
        driver.find_element(By.ID, "start").send_keys(word)
        driver.find_element(By.ID, "opt-lines").send_keys("\b8")
        driver.find_element(By.ID, "generate").click()
        WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".candidate .meta"))
        path.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(path))
    finally:
        driver.quit()
    return str(path)


def run(ctx: Context) -> Section:
    from lyricgen.checkpoint import load_checkpoint

    if ctx.checkpoint is None:
        raise RuntimeError("no checkpoint: run the quality section too, or pass --checkpoint")
    words = load_checkpoint(ctx.checkpoint).vocab.most_frequent(40)[10:]  # real words, not 的 and 我
    limit, seconds = (60, 10) if ctx.quick else (200, 25)
    server = Server(ctx, ctx.checkpoint)
    try:
        asyncio.run(drive(server.url, 2, song_requests(words), 10, 30))  # warm-up
        phases = [asyncio.run(drive(server.url, n, song_requests(words), limit, seconds)) for n in CLIENTS]
        model = str(ctx.checkpoint)  # the server's model id: the checkpoint as given to it
        asyncio.run(drive(server.url, 4, mixed_requests(words, model), 100, 60))  # allocator and caches settle
        rss_before = server.rss_mb()
        memory = asyncio.run(drive(server.url, 4, mixed_requests(words, model), MEMORY_REQUESTS,
                                   300 if ctx.quick else 600))
        rss_after = server.rss_mb()
        shot = screenshot(server.url, words[0], ctx.out / "serving-page.png")
    finally:
        exit_code = server.stop()
    if shot:
        print(f"[bench] serving: page screenshot at {shot}", file=sys.stderr)
    server_errors = sum(p["errors_5xx"] + p["transport_errors"] for p in [*phases, memory])
    section = Section(details={"workers": WORKERS, "queue": QUEUE, "request": SONG, "phases": phases,
                               "memory": {**memory, "rss_before_mb": rss_before, "rss_after_mb": rss_after},
                               "screenshot": shot, "server_exit_code": exit_code, "cpus": os.cpu_count(),
                               "checkpoint": str(ctx.checkpoint)})
    for p in phases:
        label = f"serve {p['clients']} client{'s' * (p['clients'] > 1)} ({WORKERS} workers, queue {QUEUE})"
        section.add(f"{label}: requests/s", p["requests_per_s"], "req/s")
        section.add(f"{label}: p50 latency", p["p50_ms"], "ms")
        section.add(f"{label}: p95 latency", p["p95_ms"], "ms")
        section.add(f"{label}: refused (503)", p["refused_503"], "requests")
    section.add("serve: 5xx other than 503, and failed connections, all phases", server_errors, "requests", "<= 0")
    section.add(f"serve: RSS before {memory['sent']:,} mixed requests", rss_before, "MiB")
    section.add(f"serve: RSS after {memory['sent']:,} mixed requests", rss_after, "MiB")
    growth = rss_after - rss_before if rss_before is not None and rss_after is not None else None
    section.add(f"serve: RSS growth over {memory['sent']:,} mixed requests", growth, "MiB", "<= 10")
    return section
