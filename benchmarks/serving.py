"""Serving under load: `lyricgen serve` in its own process on a free 127.0.0.1 port, driven by
concurrent clients, and a screenshot of its page.

    python -m benchmarks --sections serving --checkpoint CKPT      # or after the quality section

1, 4 and 16 clients in turn, each sending song requests (4 lines, the recommended sampling) back
to back for a bounded count and time; a refused client (503) waits its Retry-After (at most 1 s)
before trying again, as a polite client does. Per phase: requests/s, p50/p95 latency of the answered
requests, and how many were refused. The same at 1, 4 and 16 clients for the writing desk's
/api/alternatives (5 alternatives for one line of an 8-line song, as the page asks). Then 1,000
mixed requests (short songs, streams, OpenAI completions, invalid bodies) at 4 clients with the
server's resident memory before and after: it should not grow. No request may ever get a 5xx other
than 503. All traffic stays on 127.0.0.1.

In process (this process, one torch thread, as a server worker has): Lyricist.alternatives for
N = 5 (target <= 0.3 s) and a song of 8 lines with two kept lines (target <= 2 s), median over
several lines and seeds, with the page's options (its form, the recommended sampling, and the
start word as the theme when the word vectors are installed).

The page mid-edit (a song written, lines 1 and 3 locked, the rest rewritten, alternatives shown for
line 2) is saved as serving-page.png beside bench.json (headless Chromium; skipped with a note where
it is missing).
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
PAGE_SONG = {"form": "verse:4 chorus:4", "sample": True}  # what the page asks for by default (index.html)
ALTERNATIVES = 5  # the page's number of alternatives for a line
IN_PROCESS_REPEATS = 16


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


def alternatives_requests(word: str, song: list[str], options: dict):
    """Alternatives for each line of `song` in turn, a fresh seed each, as the page's rewrite button asks."""
    return lambda k: ("/api/alternatives", {"start": word, "song": song, "line": k % len(song) + 1, "seed": k,
                                            "n": ALTERNATIVES, **options})


def page_options(url: str, word: str) -> dict:
    """The page's default options on this server: its song, and the start word as the theme when the
    server has word vectors."""
    import httpx

    themes = httpx.get(url + "api/options", timeout=30).json()["themes"]
    return {**PAGE_SONG, **({"theme": word} if themes else {})}


def desk_song(url: str, word: str, options: dict) -> list[str]:
    """A song written as the page writes it: its lines, the song the alternatives phases rewrite."""
    import httpx

    r = httpx.post(url + "api/generate", json={"start": word, "seed": 1, **options}, timeout=120)
    r.raise_for_status()
    return [line["text"] for line in r.json()["candidates"][0]["lines"]]


def quantiles(seconds: list[float]) -> dict:
    s = sorted(seconds)
    return {"n": len(s), "p50_s": statistics.median(s), "p95_s": s[min(len(s) - 1, int(0.95 * len(s)))],
            "max_s": s[-1]}


def in_process(checkpoint, word: str, repeats: int) -> dict:
    """Lyricist.alternatives (N = 5) over each line of a page-default song, and songs with lines 1 and 3
    kept, timed in this process with one torch thread (a server worker's). Each timing includes
    checking the request (Lyricist.request), as a server request pays it too."""
    import torch

    from lyricgen.errors import LyricgenError
    from lyricgen.text import wordvectors
    from lyricgen.writing.lyricist import Lyricist

    torch.set_num_threads(1)
    writer = Lyricist.load(checkpoint)
    try:
        wordvectors.load()
        options = {**PAGE_SONG, "theme": word}
    except LyricgenError:
        options = dict(PAGE_SONG)
    song = writer.generate(word, seed=1, **options)[0].lines_text()
    writer.alternatives(writer.request(word, **options), song, 2, ALTERNATIVES)  # first-call costs
    alternatives, kept = [], []
    for k in range(repeats):
        started = time.perf_counter()
        writer.alternatives(writer.request(word, seed=k, **options), song, k % len(song) + 1, ALTERNATIVES)
        alternatives.append(time.perf_counter() - started)
    keep = [f"1:{song[0]}", f"3:{song[2]}"]
    for k in range(max(4, repeats // 2)):
        started = time.perf_counter()
        written = writer.generate(word, seed=100 + k, keep=keep, **options)[0]
        kept.append(time.perf_counter() - started)
        assert written.lines_text()[0] == song[0] and written.lines_text()[2] == song[2], "kept lines not kept"
    return {"options": options, "song_lines": len(song), "alternatives_n5": quantiles(alternatives),
            "song_two_kept": quantiles(kept), "torch_threads": 1}


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
    """The page mid-edit as a PNG: a song written, lines 1 and 3 locked, the rest rewritten around them,
    alternatives shown for line 2. None (with the reason printed) without Chromium."""
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
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,1300"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)

    def press(label: str):
        driver.find_element(By.CSS_SELECTOR, f'button[aria-label="{label}"]').click()

    try:
        driver.get(url)
        WebDriverWait(driver, 20).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
        driver.find_element(By.ID, "start").send_keys(word)
        driver.find_element(By.ID, "generate").click()
        WebDriverWait(driver, 120).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#desk:not([hidden]) li.line"))
        press("lock line 1")
        press("lock line 3")
        driver.find_element(By.ID, "rewrite").click()
        WebDriverWait(driver, 120).until(lambda d: "Rewrote" in d.find_element(By.ID, "message").text)
        press("alternatives for line 2")
        WebDriverWait(driver, 120).until(lambda d: d.find_elements(By.CSS_SELECTOR, "button.alternative"))
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
        desk = page_options(server.url, words[0])
        song = desk_song(server.url, words[0], desk)
        asyncio.run(drive(server.url, 1, alternatives_requests(words[0], song, desk), 4, 30))  # warm-up
        desk_phases = [asyncio.run(drive(server.url, n, alternatives_requests(words[0], song, desk), limit, seconds))
                       for n in CLIENTS]
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
        print(f"[bench] serving: page screenshot (mid-edit) at {shot}", file=sys.stderr)
    timing = in_process(ctx.checkpoint, words[0], 8 if ctx.quick else IN_PROCESS_REPEATS)
    server_errors = sum(p["errors_5xx"] + p["transport_errors"] for p in [*phases, *desk_phases, memory])
    section = Section(details={"workers": WORKERS, "queue": QUEUE, "request": SONG, "phases": phases,
                               "alternatives": {"options": desk, "song": song, "n": ALTERNATIVES,
                                                "phases": desk_phases},
                               "in_process": timing,
                               "memory": {**memory, "rss_before_mb": rss_before, "rss_after_mb": rss_after},
                               "screenshot": shot, "server_exit_code": exit_code, "cpus": os.cpu_count(),
                               "checkpoint": str(ctx.checkpoint)})
    for p in phases:
        label = f"serve {p['clients']} client{'s' * (p['clients'] > 1)} ({WORKERS} workers, queue {QUEUE})"
        section.add(f"{label}: requests/s", p["requests_per_s"], "req/s")
        section.add(f"{label}: p50 latency", p["p50_ms"], "ms")
        section.add(f"{label}: p95 latency", p["p95_ms"], "ms")
        section.add(f"{label}: refused (503)", p["refused_503"], "requests")
    for p in desk_phases:
        label = f"serve /api/alternatives n={ALTERNATIVES}, {p['clients']} client{'s' * (p['clients'] > 1)}"
        section.add(f"{label}: p50 latency", p["p50_ms"], "ms")
        section.add(f"{label}: p95 latency", p["p95_ms"], "ms")
        section.add(f"{label}: refused (503)", p["refused_503"], "requests")
    alt, kept = timing["alternatives_n5"], timing["song_two_kept"]
    section.add(f"in process: Lyricist.alternatives n={ALTERNATIVES}, median of {alt['n']}", alt["p50_s"], "s",
                "<= 0.3")
    section.add(f"in process: Lyricist.alternatives n={ALTERNATIVES}, p95", alt["p95_s"], "s")
    section.add(f"in process: an 8-line song with 2 kept lines, median of {kept['n']}", kept["p50_s"], "s", "<= 2")
    section.add("in process: an 8-line song with 2 kept lines, slowest", kept["max_s"], "s")
    section.add("serve: 5xx other than 503, and failed connections, all phases", server_errors, "requests", "<= 0")
    section.add(f"serve: RSS before {memory['sent']:,} mixed requests", rss_before, "MiB")
    section.add(f"serve: RSS after {memory['sent']:,} mixed requests", rss_after, "MiB")
    growth = rss_after - rss_before if rss_before is not None and rss_after is not None else None
    section.add(f"serve: RSS growth over {memory['sent']:,} mixed requests", growth, "MiB", "<= 10")
    return section
