"""The page in a real browser: headless Chromium (Debian's chromium and chromium-driver packages)
driven by selenium, against the app on a real server on a free 127.0.0.1 port.

Skips when Chromium, its driver or selenium are missing (.ci/run installs them). The driver's path
is given, so selenium never tries to download one.
"""
import shutil
import threading

import pytest

pytest.importorskip("fastapi")
webdriver = pytest.importorskip("selenium.webdriver")
import httpx  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from lyricgen.serving.app import create_app  # noqa: E402
from live_server import LiveServer, tiny_engine, wait_until  # noqa: E402

CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
DRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs chromium and chromedriver "
                                                                    "(apt-get install chromium chromium-driver)")


def blocked_until(writer, gate: threading.Event):
    """A stream that writes the start word and one token, then waits for `gate`."""
    real = writer.stream

    def stream(request):
        yield request.start
        yield "的"
        while not gate.wait(0.01):
            yield ""  # the worker may stop here
        return (yield from real(request))

    return stream


@pytest.fixture(scope="module")
def engine(served_checkpoint):
    engine = tiny_engine(served_checkpoint, "tiny")
    yield engine
    engine.pool.shutdown()


@pytest.fixture(scope="module")
def server(engine):
    live = LiveServer(create_app(engine))
    yield live
    live.stop()


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1100,900"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture
def page(browser, server):
    browser.get(server.url)
    WebDriverWait(browser, 10).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
    return browser


def generate(page, start: str) -> None:
    box = page.find_element(By.ID, "start")
    box.clear()
    box.send_keys(start)
    page.find_element(By.ID, "generate").click()


def described_model(page, words: str) -> str:
    """The page's line about the model, once it holds `words`."""
    return WebDriverWait(page, 10).until(
        lambda d: words in d.find_element(By.ID, "model").text and d.find_element(By.ID, "model").text)


def test_page_writes_a_song(page, engine, server):
    assert "tiny_lyrics.txt" in described_model(page, f"{len(engine.writer.vocab):,} words")  # a word vocabulary
    generate(page, "月光")
    card = WebDriverWait(page, 15).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".candidate .meta"))[0]
    text = page.find_element(By.CSS_SELECTOR, ".candidate .text").text
    assert text.startswith("月光") and len(text) > 2
    assert "score" in card.text and "copied lines" in card.text and card.find_element(By.CSS_SELECTOR, "button.copy")
    origins = page.execute_script("return performance.getEntriesByType('resource').map(e => new URL(e.name).origin)")
    assert set(origins) <= {server.url.rstrip("/")}  # nothing from elsewhere: works offline
    errors = [e for e in page.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors


def test_page_counts_a_character_vocabulary_in_characters(page, engine, monkeypatch):
    monkeypatch.setitem(engine.info, "unit", "char")  # what /v1/models says of a character checkpoint
    page.refresh()
    assert "tiny_lyrics.txt" in described_model(page, f"{len(engine.writer.vocab):,} characters")


def test_page_streams_tokens_as_they_come(page, engine, monkeypatch):
    gate = threading.Event()
    monkeypatch.setattr(engine.writer, "stream", blocked_until(engine.writer, gate))
    generate(page, "月光")
    writing = WebDriverWait(page, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".candidate.writing .text"))
    assert WebDriverWait(page, 10).until(lambda d: writing[0].text == "月光的")  # before the song is finished
    gate.set()
    WebDriverWait(page, 15).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".candidate .meta"))


def test_page_says_when_the_server_is_busy(page, engine, server, monkeypatch):
    gate = threading.Event()
    monkeypatch.setattr(engine.writer, "stream", blocked_until(engine.writer, gate))
    other = threading.Thread(target=lambda: httpx.post(server.url + "api/generate", json={"start": "月光"}, timeout=30))
    other.start()  # another user holds the only worker; the queue is 0
    try:
        assert wait_until(lambda: engine.pool.stats()["running"] == 1)
        generate(page, "月光")
        message = WebDriverWait(page, 10).until(lambda d: d.find_element(By.CSS_SELECTOR, "#message.busy"))
        assert "busy" in message.text and "try again" in message.text
        assert page.find_element(By.ID, "generate").is_enabled()
    finally:
        gate.set()
        other.join(15)


def test_page_suggests_known_words_for_an_unknown_start(page):
    generate(page, "ЖЖЖ")
    words = WebDriverWait(page, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#message.error .suggestion"))
    word = words[0].text
    words[0].click()
    WebDriverWait(page, 15).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".candidate .meta"))
    assert page.find_element(By.CSS_SELECTOR, ".candidate .text").text.startswith(word)
