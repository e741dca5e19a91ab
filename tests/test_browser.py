"""The page in a real browser: headless Chromium (Debian's chromium and chromium-driver packages)
driven by selenium, against the app on a real server on a free 127.0.0.1 port: writing a song, and
the writing desk (locks, rewriting the unlocked lines, alternatives, hand edits, undo, copy,
download), with the mouse, with the keyboard, and in a phone-width window.

Skips when Chromium, its driver or selenium are missing (.ci/run installs them). The driver's path
is given, so selenium never tries to download one.
"""
import shutil
import threading

import pytest

pytest.importorskip("fastapi")
webdriver = pytest.importorskip("selenium.webdriver")
import httpx  # noqa: E402
from live_server import LiveServer, tiny_engine, wait_until  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from lyricgen.serving.app import create_app  # noqa: E402

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
    browser.set_window_size(1100, 900)
    browser.get(server.url)
    WebDriverWait(browser, 10).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
    browser.get_log("browser")  # drained: what an earlier test logged is not this one's
    return browser


def generate(page, start: str) -> None:
    box = page.find_element(By.ID, "start")
    box.clear()
    box.send_keys(start)
    page.find_element(By.ID, "generate").click()


def song_lines(page, timeout=30) -> list[str]:
    """The desk's lines, once a song is on it."""
    rows = WebDriverWait(page, timeout).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#desk:not([hidden]) li.line"))
    return [row.find_element(By.CSS_SELECTOR, ".text").text for row in rows]


def locked(page) -> list[int]:
    """The numbers of the locked lines, as their lock buttons say (aria-pressed)."""
    buttons = page.find_elements(By.CSS_SELECTOR, "li.line button.lock")
    return [k for k, b in enumerate(buttons, 1) if b.get_attribute("aria-pressed") == "true"]


def labelled(page, label: str):
    return page.find_element(By.CSS_SELECTOR, f'button[aria-label="{label}"]')


def message_says(page, words: str, timeout=30) -> str:
    return WebDriverWait(page, timeout).until(
        lambda d: words in d.find_element(By.ID, "message").text and d.find_element(By.ID, "message").text)


def clipboard(page) -> str:
    return page.execute_async_script(
        "navigator.clipboard.readText().then(arguments[0], (e) => arguments[0]('ERR ' + e))")


def described_model(page, words: str) -> str:
    """The page's line about the model, once it holds `words`."""
    return WebDriverWait(page, 10).until(
        lambda d: words in d.find_element(By.ID, "model").text and d.find_element(By.ID, "model").text)


def test_page_writes_a_song(page, engine, server):
    assert "tiny_lyrics.txt" in described_model(page, f"{len(engine.writer.vocab):,} words")  # a word vocabulary
    generate(page, "月光")
    lines = song_lines(page)
    assert lines[0].startswith("月光") and len(lines) == 8  # the page's default: 8 lines in two sections
    assert len(page.find_elements(By.CSS_SELECTOR, "li.line.section-start")) == 2
    facts = page.find_element(By.ID, "facts").text
    assert "score" in facts and "copied lines" in facts and page.find_element(By.CSS_SELECTOR, "#desk button.copy")
    for row in page.find_elements(By.CSS_SELECTOR, "li.line"):  # every line shows its rhyme class
        assert row.find_element(By.CSS_SELECTOR, ".tag.rhyme").text
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
    song_lines(page)


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
    assert song_lines(page)[0].startswith(word)


# -- the writing desk -----------------------------------------------------------------------------
def test_a_writer_locks_rewrites_chooses_and_undoes(page, server):
    """Generate, lock lines 1 and 3, rewrite the rest, replace line 2 with its third alternative,
    undo once, copy: the locked lines never change, and each step leaves the song it should."""
    page.execute_cdp_cmd("Browser.grantPermissions", {"origin": server.url.rstrip("/"),
                                                      "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]})
    generate(page, "月光")
    first = song_lines(page)
    assert len(first) == 8 and locked(page) == []
    assert not page.find_element(By.ID, "undo").is_enabled()  # nothing before the first song

    labelled(page, "lock line 1").click()
    labelled(page, "lock line 3").click()
    assert locked(page) == [1, 3]
    assert page.find_elements(By.CSS_SELECTOR, "li.line.locked")[0].get_attribute("data-line") == "1"

    page.find_element(By.ID, "rewrite").click()
    message_says(page, "Rewrote 6 lines")
    rewritten = song_lines(page)
    assert rewritten[0] == first[0] and rewritten[2] == first[2]  # kept verbatim
    assert rewritten != first and len(rewritten) == 8
    assert locked(page) == [1, 3]

    labelled(page, "alternatives for line 2").click()
    options = WebDriverWait(page, 30).until(
        lambda d: len(found := d.find_elements(By.CSS_SELECTOR, 'li.line[data-line="2"] button.alternative')) >= 3
        and found)
    texts = [o.find_element(By.CSS_SELECTOR, ".alt-text").text for o in options]
    assert rewritten[1] not in texts and len(set(texts)) == len(texts)
    options[2].click()
    chosen = song_lines(page)
    assert chosen == [rewritten[0], texts[2], *rewritten[2:]]
    assert not page.find_elements(By.CSS_SELECTOR, "ul.alternatives")  # closed once chosen

    page.find_element(By.ID, "undo").click()
    assert song_lines(page) == rewritten and locked(page) == [1, 3]

    page.find_element(By.ID, "copy").click()
    WebDriverWait(page, 10).until(lambda d: d.find_element(By.ID, "copy").text == "Copied")
    assert clipboard(page) == "\n".join(rewritten[:4]) + "\n\n" + "\n".join(rewritten[4:])
    errors = [e for e in page.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors


def test_a_line_edited_by_hand_is_described_and_locked(page):
    generate(page, "月光")
    before = song_lines(page)
    labelled(page, "edit line 2").click()
    box = page.find_element(By.CSS_SELECTOR, 'input[aria-label="line 2 text"]')
    assert box.get_attribute("value") == before[1]
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys("月光照在安静的河面", Keys.ENTER)  # a line of the tiny corpus
    row = WebDriverWait(page, 30).until(lambda d: d.find_element(By.CSS_SELECTOR, 'li.line[data-line="2"].copied'))
    assert song_lines(page)[1] == "月光照在安静的河面" and locked(page) == [2]  # you wrote it: kept on a rewrite
    assert "in the corpus" in row.text and row.find_element(By.CSS_SELECTOR, ".tag.rhyme").text
    labelled(page, "edit line 3").click()
    box = page.find_element(By.CSS_SELECTOR, 'input[aria-label="line 3 text"]')
    box.send_keys("字", Keys.ESCAPE)  # Escape leaves the line as it was
    assert song_lines(page)[2] == before[2]
    page.find_element(By.ID, "undo").click()
    assert song_lines(page) == before


def test_the_desk_works_with_the_keyboard(page):
    generate(page, "月光")
    before = song_lines(page)
    lock = labelled(page, "lock line 4")
    lock.send_keys(Keys.ENTER)  # a focused button pressed with Enter
    assert locked(page) == [4]
    assert page.switch_to.active_element.get_attribute("aria-label") == "lock line 4"  # focus stays
    page.switch_to.active_element.send_keys(Keys.TAB)
    assert page.switch_to.active_element.get_attribute("aria-label") == "alternatives for line 4"
    page.switch_to.active_element.send_keys(Keys.ENTER)
    WebDriverWait(page, 30).until(
        lambda d: "alternative 1 for line 4" in (d.switch_to.active_element.get_attribute("aria-label") or ""))
    page.switch_to.active_element.send_keys(Keys.ARROW_DOWN)
    second = page.switch_to.active_element
    assert "alternative 2 for line 4" in second.get_attribute("aria-label")
    text = second.find_element(By.CSS_SELECTOR, ".alt-text").text
    second.send_keys(Keys.ENTER)
    assert song_lines(page)[3] == text
    page.find_element(By.TAG_NAME, "body").click()
    ActionChains(page).key_down(Keys.CONTROL).send_keys("z").key_up(Keys.CONTROL).perform()
    assert song_lines(page) == before and locked(page) == [4]


def test_the_song_downloads_as_text(page, tmp_path):
    page.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)})
    generate(page, "月光")
    lines = song_lines(page)
    page.find_element(By.ID, "download").click()
    target = tmp_path / "月光.txt"
    assert wait_until(target.is_file, 10), list(tmp_path.iterdir())
    assert target.read_text(encoding="utf-8") == "\n".join(lines[:4]) + "\n\n" + "\n".join(lines[4:]) + "\n"


def test_the_desk_fits_a_phone(page):
    page.set_window_size(390, 844)
    generate(page, "月光")
    song_lines(page)
    overflow = page.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    for label in ("lock line 8", "alternatives for line 8", "edit line 8"):
        button = labelled(page, label)
        assert button.is_displayed() and button.rect["x"] + button.rect["width"] <= 390


def test_the_theme_is_the_start_word_unless_it_has_no_word_vector(browser, server, engine, monkeypatch):
    """With word vectors on the server the page sends the start word as the theme; when the server
    finds no vector for it (a 422 naming theme), the page writes the song again without a theme."""
    from lyricgen.errors import OptionError

    real, themes = engine.writer.request, []

    def request(start, *args, **options):
        themes.append(options.get("theme"))
        if options.get("theme"):
            raise OptionError(f"theme: no word of {options['theme']!r} has a word vector")
        return real(start, *args, **options)

    monkeypatch.setattr(engine, "themes", True)
    monkeypatch.setattr(engine.writer, "request", request)
    browser.get(server.url)
    WebDriverWait(browser, 10).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
    assert browser.find_element(By.ID, "opt-theme").get_attribute("placeholder") == "the start word"
    generate(browser, "月光")
    assert song_lines(browser)[0].startswith("月光")
    assert themes == ["月光", None]


def test_the_keep_option_is_shown_in_its_api_shape(page):
    page.find_element(By.CSS_SELECTOR, "#more summary").click()
    hint = page.find_element(By.ID, "keep-hint").text
    assert hint.startswith("keep — ") and '[{"line": K, "text": …}, …]' in hint and "lock buttons" in hint
    assert not page.find_elements(By.ID, "opt-keep")  # set by the locks, not typed
