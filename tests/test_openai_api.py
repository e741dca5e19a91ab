"""/v1/completions through the official `openai` client, pointed at a local server (max_retries=0).

The server runs the real app on uvicorn in a thread, on a free 127.0.0.1 port, serving conftest's
tiny checkpoint (word unit: its prompts count jieba words); nothing reaches the network.
"""
import threading

import pytest

openai = pytest.importorskip("openai")
pytest.importorskip("fastapi")
import httpx  # noqa: E402

from lyricgen.serving.app import create_app  # noqa: E402
from lyricgen.serving.openai_api import cut_at_stop, visible_text  # noqa: E402
from live_server import LiveServer, tiny_engine, wait_until  # noqa: E402

MODEL = "tiny-lyrics"


@pytest.fixture(scope="module")
def engine(served_checkpoint):
    engine = tiny_engine(served_checkpoint, MODEL)
    yield engine
    engine.pool.shutdown()


@pytest.fixture(scope="module")
def server(engine):
    live = LiveServer(create_app(engine))
    yield live
    live.stop()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "v1", api_key="unused", max_retries=0, timeout=30)


def complete(client, **kwargs):
    return client.completions.create(**{"model": MODEL, "prompt": "月光", **kwargs})


def streamed(client, **kwargs) -> tuple[str, list]:
    chunks = list(complete(client, stream=True, **kwargs))
    return "".join(c.choices[0].text for c in chunks if c.choices), chunks


def test_models_list(client, engine):
    [model] = client.models.list().data
    assert model.id == MODEL and model.owned_by == "lyricgen"
    assert model.model_extra["lyricgen"]["vocab_size"] == len(engine.writer.vocab) > 0


def test_completion_shape_and_prompt_handling(client):
    c = complete(client, max_tokens=20, seed=1)
    assert c.object == "text_completion" and c.model == MODEL and c.id.startswith("cmpl-")
    [choice] = c.choices
    assert choice.index == 0 and choice.finish_reason in ("stop", "length") and choice.text
    assert c.usage.prompt_tokens == 1 and 0 < c.usage.completion_tokens <= 20
    assert c.usage.total_tokens == c.usage.prompt_tokens + c.usage.completion_tokens
    echoed = complete(client, max_tokens=20, seed=1, echo=True)
    assert echoed.choices[0].text == "月光" + choice.text  # the text is the completion alone, unless echo
    assert complete(client, max_tokens=20, seed=1).choices[0].text == choice.text  # seeds reproduce


def test_stream_matches_the_plain_completion(client):
    plain = complete(client, max_tokens=40, seed=5)
    text, chunks = streamed(client, max_tokens=40, seed=5, stream_options={"include_usage": True})
    assert text == plain.choices[0].text
    assert len([c for c in chunks if c.choices and c.choices[0].text]) > 3  # token by token
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == [plain.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == plain.usage.completion_tokens


def test_n_and_best_of(client):
    c = complete(client, max_tokens=15, n=3, seed=2)
    assert [ch.index for ch in c.choices] == [0, 1, 2]
    best = complete(client, max_tokens=15, n=2, best_of=4, seed=2, extra_body={"plain": True})
    assert len(best.choices) == 2 and best.usage.completion_tokens == 4 * 15  # all four written count
    songs = complete(client, max_tokens=15, n=2, best_of=4, seed=2)  # line by line: whole lines within the budget
    assert len(songs.choices) == 2 and 4 * 2 <= songs.usage.completion_tokens <= 4 * 15
    text, chunks = streamed(client, max_tokens=15, n=2, seed=2)  # streamed too, each choice in one piece
    assert {c.choices[0].index for c in chunks if c.choices} == {0, 1}


def test_stop_sequences_end_the_text(client):
    full = complete(client, max_tokens=40, seed=9, temperature=1.0).choices[0].text
    stop = full[10:12]
    expected = full[:full.find(stop)]
    c = complete(client, max_tokens=40, seed=9, temperature=1.0, stop=[stop, "never-written"])
    assert c.choices[0].text == expected and c.choices[0].finish_reason == "stop"
    text, chunks = streamed(client, max_tokens=40, seed=9, temperature=1.0, stop=stop)
    assert text == expected
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason] == ["stop"]


def test_lyricgen_options_as_extra_fields(client):
    c = complete(client, temperature=0, extra_body={"lines": 2, "no_repeat_ngram": 2})
    assert ("月光" + c.choices[0].text).count("\n") <= 1
    with pytest.raises(openai.BadRequestError) as e:
        complete(client, extra_body={"lines": -1})
    assert e.value.body["param"] == "lines"


@pytest.mark.parametrize("kwargs, param", [
    ({"logprobs": 1}, "logprobs"),
    ({"frequency_penalty": 0.5}, "frequency_penalty"),
    ({"suffix": "end"}, "suffix"),
    ({"temperature": -1}, "temperature"),
    ({"n": 100}, "n"),
    ({"max_tokens": 100_000}, "max_tokens"),
    ({"extra_body": {"temprature": 1}}, "temprature"),
    ({"extra_body": {"num_samples": 2}}, "num_samples"),  # OpenAI's n sets it
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"n": 3, "best_of": 2}, "best_of"),
    ({"prompt": "月" * 65}, "prompt"),  # the server's cap on the start word
    ({"prompt": ["月光", "夜晚"]}, "prompt"),
])
def test_unsupported_and_invalid_parameters_are_400(client, kwargs, param):
    with pytest.raises(openai.BadRequestError) as e:
        complete(client, **kwargs)
    assert e.value.status_code == 400
    assert e.value.body["type"] == "invalid_request_error" and e.value.body["param"] == param


def test_neutral_values_of_unsupported_parameters_pass(client):
    plain = complete(client, max_tokens=5, seed=4)
    c = complete(client, max_tokens=5, seed=4, presence_penalty=0, frequency_penalty=0, user="someone", logit_bias={})
    [choice], [expected] = c.choices, plain.choices
    assert expected.text and c.usage.completion_tokens > 0
    # the same completion as without them: accepted and ignored
    assert (choice.text, choice.finish_reason, c.usage) == (expected.text, expected.finish_reason, plain.usage)


def test_unknown_model_and_unknown_start_word(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.completions.create(model="gpt-5", prompt="月光")
    assert e.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=MODEL, prompt="ЖЖЖ")
    assert e.value.body["param"] == "prompt" and e.value.body["code"] == "unknown_start_word"
    assert "try one of" in e.value.body["message"]


def test_malformed_json_is_400_in_openai_shape(server):
    r = httpx.post(server.url + "v1/completions", content=b'{"prompt": ', headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"


def test_busy_server_is_503_with_retry_after(client, engine, monkeypatch):
    gate = threading.Event()
    real = engine.writer.stream

    def blocked(request):
        while not gate.wait(0.01):
            yield ""  # the worker may stop here
        return (yield from real(request))

    monkeypatch.setattr(engine.writer, "stream", blocked)
    first = threading.Thread(target=lambda: complete(client, max_tokens=5))
    first.start()
    try:
        assert wait_until(lambda: engine.pool.stats()["running"] == 1)
        with pytest.raises(openai.InternalServerError) as e:
            complete(client, max_tokens=5)
        assert e.value.status_code == 503 and int(e.value.response.headers["retry-after"]) >= 1
        assert e.value.body["code"] == "busy"
    finally:
        gate.set()
        first.join(10)


def test_visible_text_holds_back_what_may_become_a_stop():
    assert cut_at_stop("月光照在河面", ["照在", "河"]) == ("月光", True)
    assert visible_text("月光照", ["照在"]) == ("月光", False)  # "照" may start "照在"
    assert visible_text("月光照在河", ["照在"]) == ("月光", True)
    assert visible_text("月光\n", []) == ("月光", False)  # a trailing line break may be the text's end
