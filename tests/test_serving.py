"""lyricgen serve: the API through FastAPI's test client, the pool, disconnects on a real server, the CLI.

Everything runs against conftest's tiny served checkpoint (trained once per session). Slow or blocked
generations are simulated by wrapping the loaded writer's generate, so the tests never wait on a
real model to be slow.
"""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, fields
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
import httpx  # noqa: E402
import torch  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from lyricgen.config import GENERATION_CONFIGS, SAMPLE_PRESET, SamplingConfig, SongConfig, StructureConfig  # noqa: E402
from lyricgen.errors import LyricgenError  # noqa: E402
from lyricgen.options import Config, option  # noqa: E402
from lyricgen.serving.app import create_app  # noqa: E402
from lyricgen.serving.engine import Engine  # noqa: E402
from lyricgen.serving.pool import Busy, WorkerPool  # noqa: E402
from lyricgen.serving.schema import CAPS, MAX_BODY_BYTES, generate_request_model, option_specs  # noqa: E402
from conftest import TINY_OPTIONS  # noqa: E402
from live_server import LiveServer, wait_until  # noqa: E402

CPU = torch.device("cpu")


# -- fixtures and helpers ---------------------------------------------------------------------------
def loaded(checkpoint, workers=2, queue=4) -> Engine:
    engine = Engine(WorkerPool(workers, queue))
    engine.load(checkpoint, CPU, model_id="tiny")
    return engine


def gated(writer, gate: threading.Event, stopped: threading.Event | None = None):
    """A stream that writes the start word, then waits for `gate` before writing; `stopped` is set
    when the worker stops iterating it (closes it) first."""
    real = writer.stream

    def stream(request):
        try:
            yield request.start
            deadline = time.monotonic() + 20
            while not gate.wait(0.01) and time.monotonic() < deadline:
                yield "的"
        except GeneratorExit:
            if stopped is not None:
                stopped.set()
            raise
        return (yield from real(request))

    return stream


def events(text: str) -> list[tuple[str, dict]]:
    """Server-sent events as (event, data) pairs."""
    out = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n") if not line.startswith(":"))
        if "data" in lines:
            out.append((lines.get("event", "message"), json.loads(lines["data"])))
    return out


# -- health and the model ---------------------------------------------------------------------------
def test_health_is_503_while_loading_then_ok(served_checkpoint):
    engine = Engine(WorkerPool(1, 0))
    with TestClient(create_app(engine)) as c:
        r = c.get("/health")
        assert r.status_code == 503 and r.json() == {"status": "loading"} and r.headers["Retry-After"]
        r = c.post("/api/generate", json={"start": "月光"})
        assert r.status_code == 503 and r.json()["error_type"] == "loading"
        engine.load(served_checkpoint, CPU)
        assert c.get("/health").status_code == 200 and c.get("/health").json() == {"status": "ok"}
        assert c.post("/api/generate", json={"start": "月光", "max_tokens": 3}).status_code == 200
    engine.pool.shutdown()


def test_health_reports_a_checkpoint_that_failed_to_load(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    engine = Engine(WorkerPool(1, 0))
    with pytest.raises(LyricgenError):
        engine.load(bad, CPU)
    with TestClient(create_app(engine)) as c:
        r = c.get("/health")
        assert r.status_code == 503 and r.json()["status"] == "error" and "bad.pt" in r.json()["error"]
    engine.pool.shutdown()


def test_models_describes_the_checkpoint(client, engine, tiny_ckpt):
    r = client.get("/v1/models")
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "list" and len(body["data"]) == 1
    model = body["data"][0]
    assert model["id"] == "tiny" and model["object"] == "model" and model["owned_by"] == "lyricgen"
    info = model["lyricgen"]
    assert info["corpus"]["name"] == "tiny_lyrics.txt" and info["corpus"]["lines"] > 0
    assert info["vocab_size"] == len(engine.writer.vocab) and info["unit"] == TINY_OPTIONS["unit"]
    assert info["model"]["hidden_size"] == TINY_OPTIONS["hidden_size"] and info["model"]["parameters"] > 0
    training, state = info["training"], tiny_ckpt.training.state  # best.pt: the epoch of the best validation
    assert training["epochs"] == state.epoch and training["steps"] == state.step > 0 and training["val_ppl"] > 1


def test_page_is_served_with_a_strict_content_policy(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in r.headers["Content-Security-Policy"]
    assert "api/generate" in r.text and "http://" not in r.text and "https://" not in r.text  # nothing from elsewhere


def test_page_ships_as_package_data():
    """A non-editable install carries the page: pyproject declares it as package data."""
    text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text(encoding="utf-8")
    assert '"lyricgen.serving" = ["static/*.html"]' in text


# -- /api/generate ----------------------------------------------------------------------------------
def test_generate_has_the_cli_defaults(client, engine):
    r = client.post("/api/generate", json={"start": "月光", "max_tokens": 20})
    assert r.status_code == 200, r.text
    body = r.json()
    defaults = {**SamplingConfig().to_dict(), **StructureConfig().to_dict(), **SongConfig().to_dict(), "max_tokens": 20}
    assert body["options"] == defaults  # greedy, as `lyricgen generate` without --sample
    expected = engine.writer.generate("月光", max_tokens=20)[0]
    [candidate] = body["candidates"]
    assert candidate == expected.to_dict()
    assert body["start"] == "月光" and body["unknown"] == [] and body["model"] == "tiny"


def test_sample_preset_and_seeds_reproduce(client):
    first = client.post("/api/generate", json={"start": "月光", "sample": True, "seed": 7, "max_tokens": 30}).json()
    again = client.post("/api/generate", json={"start": "月光", "sample": True, "seed": 7, "max_tokens": 30}).json()
    assert first["candidates"] == again["candidates"]
    assert {k: first["options"][k] for k in SAMPLE_PRESET} == SAMPLE_PRESET
    given = client.post("/api/generate", json={"start": "月光", "sample": True, "top_p": 0.5}).json()
    assert given["options"]["top_p"] == 0.5 and given["options"]["temperature"] == SAMPLE_PRESET["temperature"]
    drawn = client.post("/api/generate", json={"start": "月光", "sample": True, "max_tokens": 30}).json()
    seed = drawn["options"]["seed"]  # drawn by the server and returned, so the text can be written again
    assert isinstance(seed, int)
    same = client.post("/api/generate", json={"start": "月光", "sample": True, "max_tokens": 30, "seed": seed}).json()
    assert same["candidates"] == drawn["candidates"]


def test_candidates_come_ranked_with_originality(client):
    body = client.post("/api/generate", json={"start": "月光", "num_samples": 3, "temperature": 0.9, "seed": 1,
                                              "lines": 2}).json()
    candidates = body["candidates"]
    assert len(candidates) == 3
    assert [c["score"] for c in candidates] == sorted((c["score"] for c in candidates), reverse=True)
    for c in candidates:
        assert c["text"].startswith("月光") and c["text"].count("\n") <= 1
        assert 0 <= c["copied_lines"] <= 1 and c["longest_copy"] >= 0 and c["tokens"] > 0


@pytest.mark.parametrize("change, field", [
    ({"temperature": -1}, "temperature"),
    ({"temperature": "0.8"}, "temperature"),  # strict types, as the CLI's
    ({"top_k": True}, "top_k"),
    ({"top_p": 0}, "top_p"),
    ({"top_p": 1.5}, "top_p"),
    ({"seed": -1}, "seed"),
    ({"max_tokens": CAPS["max_tokens"] + 1}, "max_tokens"),  # the server's cap, below the config's bound
    ({"num_samples": CAPS["num_samples"] + 1}, "num_samples"),
    ({"num_samples": 0}, "num_samples"),
    ({"start": "月" * 65}, "start"),
    ({"start": ""}, "start"),
    ({"lines": 1.5}, "lines"),
    ({"no_copy": "yes"}, "no_copy"),
    ({"temprature": 0.8}, "temprature"),  # an unknown field is refused, not ignored
    ({"min_line_tokens": 5, "max_line_tokens": 2}, "min_line_tokens"),  # the config's own cross-field rule
    ({"stream": True, "num_samples": 2}, "num_samples"),
])
def test_bad_input_is_422_naming_the_field(client, change, field):
    r = client.post("/api/generate", json={"start": "月光", **change})
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["field"] == field and field in body["error"] and body["error_type"] == "validation"


def test_unknown_start_word_is_422_with_known_words(client, engine):
    r = client.post("/api/generate", json={"start": "ЖЖЖ"})
    assert r.status_code == 422
    body = r.json()
    assert body["field"] == "start" and body["error_type"] == "unknown_start_word"
    assert body["suggestions"] and all(w in engine.writer.vocab for w in body["suggestions"])
    r = client.post("/api/generate", json={"start": "   "})
    assert r.status_code == 422 and r.json()["field"] == "start"


def test_unknown_characters_are_reported(client):
    body = client.post("/api/generate", json={"start": "月光Ж", "max_tokens": 3}).json()
    assert body["unknown"] == ["Ж"]


@pytest.mark.parametrize("content, headers, status", [
    (b'{"start": ', {"content-type": "application/json"}, 400),
    (b'[1, 2]', {"content-type": "application/json"}, 422),
    (b'"text"', {"content-type": "application/json"}, 422),
    (b'{"start": "a", "temperature": NaN}', {"content-type": "application/json"}, 422),
    (b'{"start": "a", "temperature": Infinity}', {"content-type": "application/json"}, 422),
    (b'{"start": "a"}', {"content-type": "text/plain"}, 415),
    (b'{"start": "' + b"a" * MAX_BODY_BYTES + b'"}', {"content-type": "application/json"}, 413),
    (b'{}', {"content-type": "application/json", "content-length": "abc"}, 400),
])
def test_malformed_and_oversized_bodies_are_4xx(client, content, headers, status):
    r = client.post("/api/generate", content=content, headers=headers)
    assert r.status_code == status, r.text
    assert r.json()["error"] and "Traceback" not in r.text


def test_oversized_chunked_body_is_413(client):
    def chunks():
        for _ in range(MAX_BODY_BYTES // 1000 + 2):
            yield b" " * 1000

    r = client.post("/api/generate", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_unknown_path_and_method_keep_the_error_shape(client):
    assert client.get("/nowhere").json()["error_type"] == "not_found"
    assert client.get("/api/generate").status_code == 405


# -- streaming --------------------------------------------------------------------------------------
def test_stream_sends_tokens_then_the_candidate(client):
    body = {"start": "月光", "sample": True, "seed": 3, "lines": 2}
    with client.stream("POST", "/api/generate", json={**body, "stream": True}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        got = events(r.read().decode("utf-8"))
    kinds = [k for k, _ in got]
    assert kinds[-1] == "done" and set(kinds[:-1]) == {"token"} and len(kinds) > 3
    streamed = "".join(d["text"] for k, d in got if k == "token")
    [candidate] = got[-1][1]["candidates"]
    assert streamed.startswith("月光") and streamed.rstrip("\n") == candidate["text"]
    assert candidate == client.post("/api/generate", json=body).json()["candidates"][0]  # same as unstreamed


def test_stream_reports_a_failure_after_it_began(client, engine, monkeypatch):
    def failing(request):
        yield request.start
        yield "的"
        raise RuntimeError("boom")

    monkeypatch.setattr(engine.writer, "stream", failing)
    with client.stream("POST", "/api/generate", json={"start": "月光", "stream": True}) as r:
        assert r.status_code == 200
        got = events(r.read().decode("utf-8"))
    assert [k for k, _ in got] == ["token", "token", "error"]
    assert got[-1][1]["error_type"] == "internal" and "boom" not in got[-1][1]["error"]
    r = client.post("/api/generate", json={"start": "月光"})
    assert r.status_code == 500 and r.json()["error_type"] == "internal" and "Traceback" not in r.text


# -- the pool and load ------------------------------------------------------------------------------
def test_pool_admits_workers_plus_queue_then_refuses():
    pool = WorkerPool(1, 1)
    gate = threading.Event()
    running = pool.submit(lambda stop: gate.wait(10))
    waiting = pool.submit(lambda stop: "second")
    with pytest.raises(Busy) as refused:
        pool.submit(lambda stop: "third")
    assert refused.value.retry_after >= 1
    waiting.cancel()  # a waiting job leaves the queue at once, freeing its slot
    assert wait_until(lambda: pool.stats()["waiting"] == 0)
    again = pool.submit(lambda stop: "again")
    gate.set()
    assert running.future.result(5) is True and again.future.result(5) == "again"
    started = threading.Event()
    stopped = pool.submit(lambda stop: started.set() or wait_until(stop, 10))
    assert started.wait(5)
    stopped.cancel()  # a running job sees should_stop()
    assert stopped.future.result(5) is True
    pool.shutdown()
    with pytest.raises(Busy):
        pool.submit(lambda stop: None)


def test_full_queue_is_503_with_retry_after(served_checkpoint, monkeypatch):
    engine = loaded(served_checkpoint, workers=1, queue=0)
    gate = threading.Event()
    monkeypatch.setattr(engine.writer, "stream", gated(engine.writer, gate))
    with TestClient(create_app(engine)) as c:
        first = {}
        worker = threading.Thread(target=lambda: first.update(r=c.post("/api/generate", json={"start": "月光"})))
        worker.start()
        assert wait_until(lambda: engine.pool.stats()["running"] == 1)
        for path, body in (("/api/generate", {"start": "月光"}), ("/v1/completions", {"prompt": "月光"})):
            r = c.post(path, json=body)
            assert r.status_code == 503, r.text
            assert int(r.headers["Retry-After"]) >= 1
        assert r.json()["error"]["code"] == "busy"  # OpenAI's shape under /v1
        gate.set()
        worker.join(10)
        assert first["r"].status_code == 200
    engine.pool.shutdown()


def test_a_client_that_disconnects_stops_its_generation(served_checkpoint, monkeypatch):
    engine = loaded(served_checkpoint, workers=1, queue=1)
    never, stopped = threading.Event(), threading.Event()
    monkeypatch.setattr(engine.writer, "stream", gated(engine.writer, never, stopped))
    server = LiveServer(create_app(engine))
    try:
        with httpx.Client(base_url=server.url, timeout=10) as http:  # streamed: leave after the first event
            with http.stream("POST", "/api/generate", json={"start": "月光", "stream": True}) as r:
                assert r.status_code == 200
                next(r.iter_lines())
        assert stopped.wait(5), "the generation went on after the client left"
        stopped.clear()
        with pytest.raises(httpx.ReadTimeout):  # not streamed: give up waiting
            httpx.post(server.url + "api/generate", json={"start": "月光"}, timeout=0.5)
        assert stopped.wait(5), "the generation went on after the client left"
        assert wait_until(lambda: engine.pool.stats()["running"] == 0)
    finally:
        server.stop()
        engine.pool.shutdown()


# -- the schema follows the configs -----------------------------------------------------------------
def test_every_config_option_is_in_the_api(client):
    listed = {o["name"]: o for o in client.get("/api/options").json()["options"]}
    schema = client.get("/openapi.json").json()["components"]["schemas"]["GenerateRequest"]["properties"]
    for cls in GENERATION_CONFIGS:
        for f in fields(cls):
            assert listed[f.name]["default"] == f.default and listed[f.name]["help"] == f.metadata["help"]
            assert schema[f.name]["description"] == f.metadata["help"]
    assert listed["max_tokens"]["high"] == CAPS["max_tokens"] and listed["num_samples"]["high"] == CAPS["num_samples"]
    assert set(CAPS) <= set(listed)  # every cap names a real option


def test_an_option_added_to_a_config_appears_by_itself():
    @dataclass
    class FormConfig(Config):
        rhyme_scheme: str | None = option(None, "rhyme pattern of the lines", choices=("AABB", "ABAB"))
        first_line: str = option("", "the song's first line")

    configs = (*GENERATION_CONFIGS, FormConfig)
    names = [s.name for s in option_specs(configs)]
    assert "rhyme_scheme" in names and "first_line" in names
    Request = generate_request_model(configs)
    assert Request.model_validate({"start": "a", "rhyme_scheme": "ABAB"}).rhyme_scheme == "ABAB"
    for bad in ({"rhyme_scheme": "XYZ"}, {"first_line": "字" * 1000}):
        with pytest.raises(Exception) as e:
            Request.model_validate({"start": "a", **bad})
        assert next(iter(bad)) in str(e.value)
    properties = Request.model_json_schema()["properties"]
    assert properties["rhyme_scheme"]["description"] == "rhyme pattern of the lines"


# -- the command line -------------------------------------------------------------------------------
def test_serve_without_the_extra_says_how_to_install_it(monkeypatch, capsys):
    from lyricgen.cli import main

    monkeypatch.setitem(sys.modules, "fastapi", None)
    assert main(["serve", "--checkpoint", "x.pt"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install 'lyricgen[serve]'" in err


def test_serve_refuses_a_missing_checkpoint_and_a_taken_port(served_checkpoint, capsys):
    from lyricgen.cli import main
    from lyricgen.serving.server import bind

    assert main(["serve", "--checkpoint", str(served_checkpoint.parent / "none.pt")]) == 1
    assert "checkpoint not found" in capsys.readouterr().err
    taken = bind("127.0.0.1", 0)
    taken.listen()
    try:
        assert main(["serve", "--checkpoint", str(served_checkpoint), "--port", str(taken.getsockname()[1])]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "cannot listen on 127.0.0.1" in err
    finally:
        taken.close()


def test_help_imports_neither_torch_nor_fastapi():
    code = ("import sys; from lyricgen.cli import build_parser; build_parser().format_help(); "
            "print(sorted(m for m in ('torch', 'fastapi', 'uvicorn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr


def test_serve_command_end_to_end(served_checkpoint, tmp_path):
    """The real `lyricgen serve`: free port, loading, a song, Ctrl-C."""
    log = tmp_path / "serve.log"
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "lyricgen", "serve", "--checkpoint", str(served_checkpoint),
                                 "--port", "0", "--workers", "1", "--queue", "2", "--no-access-log"],
                                stderr=err, stdout=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        assert wait_until(lambda: "serving http://" in log.read_text(), 60), log.read_text()
        url = log.read_text().split("serving ", 1)[1].split(" ", 1)[0]
        assert url.startswith("http://127.0.0.1:")  # loopback unless told otherwise
        assert wait_until(lambda: httpx.get(url + "health").status_code == 200, 60), log.read_text()
        r = httpx.post(url + "api/generate", json={"start": "月光", "lines": 2}, timeout=30)
        assert r.status_code == 200 and r.json()["candidates"][0]["text"].startswith("月光")
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(30)
    assert code in (0, 130), log.read_text()
    assert "Traceback" not in log.read_text()
