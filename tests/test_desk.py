"""The writing desk's API: songs around kept lines (POST /api/generate with "keep"), alternatives for
one line (POST /api/alternatives), lines edited by hand described (POST /api/lines); their bad input
(422 naming the field) and their place in the bounded pool (503 when it is full).

Against conftest's tiny served checkpoint, through FastAPI's test client; the browser story is in
test_browser.py.
"""
import random
import threading

import pytest

pytest.importorskip("fastapi")
import torch  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from live_server import wait_until  # noqa: E402

from lyricgen.config import MAX_ALTERNATIVES, MAX_KEPT_CHARS, MAX_SONG_LINES  # noqa: E402
from lyricgen.serving.app import create_app  # noqa: E402
from lyricgen.serving.engine import Engine  # noqa: E402
from lyricgen.serving.pool import WorkerPool  # noqa: E402
from lyricgen.serving.schema import KeptLine, generate_request_model, given_options, option_specs  # noqa: E402
from lyricgen.text.rhyme import rhyme_class  # noqa: E402

SONG = {"start": "月光", "form": "verse:4 verse:4", "sample": True, "seed": 5}  # 8 lines in two sections


@pytest.fixture(scope="module")
def written(client) -> list[str]:
    """A song of 8 lines the tiny model wrote: its lines, without the blank line between sections."""
    body = client.post("/api/generate", json=SONG).json()
    return [line["text"] for line in body["candidates"][0]["lines"]]


def known_line(engine, chars: int, rng: random.Random, rhyme: str | None = None) -> str:
    """`chars` characters the model knows (Han only), ending in `rhyme`'s class when given."""
    vocab = engine.writer.vocab
    han = sorted({ch for token in vocab.tokens for ch in token if "\u4e00" <= ch <= "\u9fff" and ch in vocab.index})
    last = [ch for ch in han if rhyme is None or rhyme_class(ch) == rhyme] or han
    return "".join(rng.choice(han) for _ in range(chars - 1)) + rng.choice(last)


def error(r, status=422) -> dict:
    assert r.status_code == status, r.text
    assert "Traceback" not in r.text
    return r.json()


# -- keep: the API's shape and the config's -----------------------------------------------------
def test_keep_is_shown_in_its_api_shape(client):
    [keep] = [o for o in client.get("/api/options").json()["options"] if o["name"] == "keep"]
    assert keep["type"] == "list" and keep["default"] is None
    assert set(keep["items"]) == {"line", "text"}
    assert keep["items"]["line"]["type"] == "integer" and keep["items"]["line"]["minimum"] == 1
    assert keep["items"]["text"]["maxLength"] == MAX_KEPT_CHARS
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    assert "KeptLine" in str(schema["GenerateRequest"]["properties"]["keep"])
    assert set(schema["KeptLine"]["properties"]) == {"line", "text"}


def test_keep_becomes_the_configs_entries():
    specs = option_specs()
    body = generate_request_model().model_validate(
        {"start": "月光", "keep": [{"line": 3, "text": "风:吹"}, {"line": 1, "text": "月光"}]})
    assert given_options(body, specs)["keep"] == ["3:风:吹", "1:月光"]  # a colon in the text stays the text's
    none = generate_request_model().model_validate({"start": "月光", "keep": None})
    assert given_options(none, specs)["keep"] is None
    assert KeptLine(line=2, text="晚风").model_dump() == {"line": 2, "text": "晚风"}


def test_desk_limits_and_themes_are_in_the_options(client, engine):
    info = client.get("/api/options").json()
    assert info["desk"] == {"max_song_lines": MAX_SONG_LINES, "max_alternatives": MAX_ALTERNATIVES,
                            "max_line_chars": MAX_KEPT_CHARS}
    assert info["themes"] is engine.themes


# -- songs around kept lines ----------------------------------------------------------------------
def test_a_song_keeps_its_kept_lines_and_describes_every_line(client, written):
    keep = [{"line": 1, "text": written[0]}, {"line": 3, "text": written[2]}]
    r = client.post("/api/generate", json={**SONG, "seed": 9, "keep": keep})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["options"]["keep"] == [f"1:{written[0]}", f"3:{written[2]}"]  # the config's form, stated back
    [c] = body["candidates"]
    lines = c["lines"]
    sections = [line["section"] for line in lines]
    assert len(lines) == 8 and sections == [sections[0]] * 4 + [sections[4]] * 4 and sections[0] != sections[4]
    assert lines[0]["text"] == written[0] and lines[2]["text"] == written[2]
    assert [line["kept"] for line in lines] == [True, False, True, False, False, False, False, False]
    for line in lines:
        assert set(line) == {"text", "section", "rhyme", "copied", "kept"} and line["text"]
        assert line["rhyme"] == rhyme_class(line["text"])
    assert [x for x in c["text"].split("\n") if x] == [line["text"] for line in lines]
    assert isinstance(c["notes"], list)


def test_a_streamed_song_keeps_its_kept_lines(client, written):
    keep = [{"line": 2, "text": written[1]}]
    with client.stream("POST", "/api/generate", json={**SONG, "keep": keep, "stream": True}) as r:
        assert r.status_code == 200
        text = r.read().decode("utf-8")
    done = [block for block in text.split("\n\n") if block.startswith("event: done")]
    assert done and written[1] in done[0]


@pytest.mark.parametrize("keep, field", [
    ([{"line": 0, "text": "月光"}], "keep.0.line"),
    ([{"line": MAX_SONG_LINES + 1, "text": "月光"}], "keep.0.line"),
    ([{"line": 9, "text": "月光"}], "keep"),  # a line the song of 8 does not have
    ([{"line": 1, "text": ""}], "keep.0.text"),
    ([{"line": 1, "text": "   "}], "keep"),  # empty once trimmed: the config's own check
    ([{"line": 1, "text": "月" * (MAX_KEPT_CHARS + 1)}], "keep.0.text"),
    ([{"line": 1, "text": "ЖЖЖ"}], "keep"),  # characters the model never saw
    ([{"line": 2, "text": "月光"}, {"line": 2, "text": "晚风"}], "keep"),
    ([{"line": "1", "text": "月光"}], "keep.0.line"),  # strict types
    ([{"line": 1, "text": "月光", "rhyme": "江阳"}], "keep.0.rhyme"),
    ([{"line": 1}], "keep.0.text"),
    (["1:月光"], "keep.0"),  # the config's strings are the command line's, not the API's
    ({"line": 1, "text": "月光"}, "keep"),
    ([{"line": k, "text": "月光"} for k in range(1, MAX_SONG_LINES + 2)], "keep"),
])
def test_bad_kept_lines_are_422_naming_the_field(client, keep, field):
    body = error(client.post("/api/generate", json={**SONG, "keep": keep}))
    assert body["field"] == field and body["error_type"] == "validation", body
    assert field.split(".")[0] in body["error"]


# Rhyme groups within a section of four lines, by scheme (config.RHYME_LINKS, drawn out)
GROUPS = {"AABB": [[0, 1], [2, 3]], "ABAB": [[0, 2], [1, 3]], "AAAA": [[0, 1, 2, 3]]}


def test_kept_lines_are_kept_verbatim_in_200_random_requests(client, engine):
    """Random positions (1 to 3 of 8 lines), lengths (2 to 9 characters), rhyme classes and schemes:
    every kept line comes back verbatim where it was put, and the other lines keep to line_chars and
    mostly take the rhyme of the kept line in their group. The tiny model knows few characters of
    some classes (乜斜), so not every line can rhyme: 104 of 121 did in a 60-request trial of this
    test's kind (331 of 448 here with line_candidates 16 instead of 32); the bar is 75%."""
    rng = random.Random(18)
    classes = sorted({rhyme_class(ch) for token in engine.writer.vocab.tokens for ch in token} - {None})
    kept_total, rhymed, ruled = 0, 0, 0
    for k in range(200):
        positions = rng.sample(range(1, 9), rng.randint(1, 3))
        keep = {p: known_line(engine, rng.randint(2, 9), rng, rng.choice(classes)) for p in positions}
        scheme = rng.choice(sorted(GROUPS))
        r = client.post("/api/generate", json={**SONG, "seed": k, "rhyme": scheme, "line_chars": "5-9",
                                               "keep": [{"line": p, "text": t} for p, t in keep.items()]})
        assert r.status_code == 200, (keep, r.text)
        lines = r.json()["candidates"][0]["lines"]
        assert len(lines) == 8
        for p, text in keep.items():
            assert lines[p - 1]["text"] == text and lines[p - 1]["kept"], (keep, lines)
            assert lines[p - 1]["rhyme"] == rhyme_class(text)
            kept_total += 1
        assert sum(line["kept"] for line in lines) == len(keep)
        free = [line["text"] for j, line in enumerate(lines, 1) if j not in keep]
        assert all(5 <= len(x.replace(" ", "")) <= 9 for x in free), (keep, lines)
        for section in (0, 4):
            for group in GROUPS[scheme]:
                members = [section + j + 1 for j in group]
                ruling = {rhyme_class(keep[m]) for m in members if m in keep}
                if len(ruling) == 1:  # two kept lines that disagree are relaxed with a note instead
                    [cls] = ruling
                    others = [lines[m - 1]["rhyme"] for m in members if m not in keep]
                    ruled += len(others)
                    rhymed += sum(x == cls for x in others)
                elif len(ruling) > 1:
                    assert r.json()["candidates"][0]["notes"], (keep, lines)
    assert kept_total >= 200
    assert ruled > 100 and rhymed / ruled >= 0.75, (rhymed, ruled)


# -- alternatives for one line --------------------------------------------------------------------
def test_alternatives_for_a_line_are_ranked_and_new(client, engine, written):
    r = client.post("/api/alternatives", json={**SONG, "song": written, "line": 2, "n": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["line"] == 2 and body["model"] == "tiny" and body["elapsed_s"] >= 0
    found = body["alternatives"]
    assert 1 <= len(found) <= 5 and len({a["text"] for a in found}) == len(found)
    # best first as the Lyricist ranks them (its rank adds more than the score shown: a theme's fit ...)
    request = engine.writer.request("月光", **{k: v for k, v in SONG.items() if k != "start"})
    assert found == [a.to_dict() for a in engine.writer.alternatives(request, written, 2, 5)]
    for a in found:
        assert set(a) == {"text", "score", "rhyme", "copied"}
        assert a["text"] and a["text"] != written[1] and a["rhyme"] == rhyme_class(a["text"])
        assert isinstance(a["copied"], bool)
    again = client.post("/api/alternatives", json={**SONG, "song": written, "line": 2, "n": 5}).json()
    assert again["alternatives"] == found  # the same seed, the same alternatives


def test_alternatives_for_the_first_and_last_lines(client, written):
    for line in (1, 8):
        r = client.post("/api/alternatives", json={"start": "月光", "song": written, "line": line, "n": 3})
        assert r.status_code == 200, r.text
        assert all(a["text"] != written[line - 1] for a in r.json()["alternatives"])


@pytest.mark.parametrize("change, field", [
    ({"line": 0}, "line"),
    ({"line": 9}, "line"),  # the song has 8
    ({"line": MAX_SONG_LINES + 1}, "line"),
    ({"n": 0}, "n"),
    ({"n": MAX_ALTERNATIVES + 1}, "n"),
    ({"n": 2.5}, "n"),
    ({"song": []}, "song"),
    ({"song": ["月光"] * 200}, "song"),
    ({"song": ["月光", ""]}, "song.1"),
    ({"song": ["月光", "月" * (MAX_KEPT_CHARS + 1)]}, "song.1"),
    ({"song": ["月光照在河面", "ЖЖЖ的夜"], "line": 1}, "song"),  # an unknown character in a kept line
    ({"song": "月光"}, "song"),
    ({"keep": [{"line": 1, "text": "月光"}]}, "keep"),  # every other line is kept already
    ({"stream": True}, "stream"),
    ({"temperature": -1}, "temperature"),
    ({"start": ""}, "start"),
    ({"start": "ЖЖЖ"}, "start"),
])
def test_bad_alternatives_requests_are_422_naming_the_field(client, written, change, field):
    body = error(client.post("/api/alternatives", json={"start": "月光", "song": written, "line": 2, **change}))
    assert body["field"] == field, body


# -- lines edited by hand -------------------------------------------------------------------------
def test_lines_are_described(client):
    corpus_line = "月光照在安静的河面"  # a line of the tiny corpus (tests/fixtures/tiny_lyrics.txt)
    r = client.post("/api/lines", json={"lines": [corpus_line, "月光照在安静的小河", "晚风"]})
    assert r.status_code == 200, r.text
    lines = r.json()["lines"]
    assert [line["text"] for line in lines] == [corpus_line, "月光照在安静的小河", "晚风"]
    assert [line["copied"] for line in lines] == [True, False, False]
    assert [line["rhyme"] for line in lines] == [rhyme_class(x) for x in (corpus_line, "月光照在安静的小河", "晚风")]


@pytest.mark.parametrize("body, field", [
    ({"lines": []}, "lines"),
    ({"lines": ["月光"] * 200}, "lines"),
    ({"lines": [""]}, "lines.0"),
    ({"lines": ["月" * (MAX_KEPT_CHARS + 1)]}, "lines.0"),
    ({"lines": "月光"}, "lines"),
    ({"lines": [1]}, "lines.0"),
    ({}, "lines"),
    ({"lines": ["月光"], "start": "月光"}, "start"),
])
def test_bad_lines_requests_are_422_naming_the_field(client, body, field):
    assert error(client.post("/api/lines", json=body))["field"] == field


# -- the pool -------------------------------------------------------------------------------------
def test_the_desk_shares_the_pool_with_songs(served_checkpoint, monkeypatch):
    """While the one worker writes a song (and the queue is 0), alternatives and lines are refused
    with 503 and Retry-After, as another song is; once it is done, they are answered."""
    engine = Engine(WorkerPool(1, 0))
    engine.load(served_checkpoint, torch.device("cpu"), model_id="tiny")
    gate = threading.Event()
    real = engine.writer.stream

    def held(request):
        yield request.start
        while not gate.wait(0.01):
            yield ""
        return (yield from real(request))

    monkeypatch.setattr(engine.writer, "stream", held)
    song = ["月光照在安静的河面", "我们说好不要分开"]
    requests = [("/api/generate", {"start": "月光"}), ("/api/alternatives", {"start": "月光", "song": song, "line": 2}),
                ("/api/lines", {"lines": song})]
    try:
        with TestClient(create_app(engine)) as c:
            first = {}
            worker = threading.Thread(target=lambda: first.update(r=c.post("/api/generate", json={"start": "月光"})))
            worker.start()
            assert wait_until(lambda: engine.pool.stats()["running"] == 1)
            for path, body in requests:
                r = c.post(path, json=body)
                assert r.status_code == 503 and r.json()["error_type"] == "busy", (path, r.text)
                assert int(r.headers["Retry-After"]) >= 1
            gate.set()
            worker.join(30)
            assert first["r"].status_code == 200
            for path, body in requests:
                assert c.post(path, json=body).status_code == 200, path
    finally:
        gate.set()
        engine.pool.shutdown()


def test_the_desk_answers_503_while_loading(served_checkpoint):
    engine = Engine(WorkerPool(1, 0))
    with TestClient(create_app(engine)) as c:
        for path, body in (("/api/alternatives", {"start": "月光", "song": ["月光"], "line": 1}),
                           ("/api/lines", {"lines": ["月光"]})):
            r = c.post(path, json=body)
            assert r.status_code == 503 and r.json()["error_type"] == "loading"
    engine.pool.shutdown()
