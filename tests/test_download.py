"""text/download.py through `lyricgen download`, against a local HTTP server: no test needs the network.

jaychou: the zip is built in the test from the shared corpus (tests that need it skip without it);
the checksum and error paths use zips of the tiny fixture instead. songci: the shared 全宋词 files
are served as the repository lays them out (skipped without them); a corrupted file, a missing one
and a transfer that breaks off are refused with one line and leave nothing behind. The other
chinese-poetry collections: ../shared/data/chinese-poetry linked under the repository's layout
(skipped without it); every small collection and tang (traditional, converted) are downloaded in
full, songshi and classical only have their pins checked against the published SHA256SUMS (their
25 s and 33 s here are run by hand, not on every run).
"""
import functools
import hashlib
import http.server
import io
import socket
import shutil
import sys
import threading
import zipfile
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from conftest import TINY_CORPUS, one_error_line
from lyricgen.text.download import CORPORA, POETRY_URL, _t2s, ci_lines, pieces, verse_lines

SONGCI = Path(__file__).resolve().parents[2] / "shared" / "data" / "songci"
needs_songci = pytest.mark.skipif(not (SONGCI / "SHA256SUMS").is_file(), reason=f"no 全宋词 files at {SONGCI}")


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    broken: set = set()  # names of files sent with their true length announced, then cut off halfway

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path.rsplit("/", 1)[-1] not in self.broken:
            return super().do_GET()
        data = Path(self.translate_path(self.path)).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.close_connection = True


@contextmanager
def serve(directory, broken=()):
    """A static file server on 127.0.0.1, an OS-chosen port, in a thread; shut down on exit."""
    handler = functools.partial(type("Handler", (QuietHandler,), {"broken": set(broken)}), directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


def make_zip(text: bytes, member="jaychou_lyrics.txt") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(member, text)
    return buf.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def site(tmp_path):
    root = tmp_path / "site"
    root.mkdir()
    return root


@pytest.mark.corpus
def test_download_writes_the_corpus(jaychou, site, tmp_path, cli):
    corpus = jaychou.read_bytes()
    archive = make_zip(corpus)
    (site / "x.zip").write_bytes(archive)
    out = tmp_path / "j" / "j.txt"
    with serve(site) as url:
        args = ("download", "jaychou", "--url", f"{url}/x.zip", "--sha256", sha256(archive), "--out", out)
        rc, stdout, err = cli(*args)
        assert rc == 0, err
        assert "wrote" in stdout
        assert out.read_bytes() == corpus
        assert [p.name for p in out.parent.iterdir()] == ["j.txt"]  # no temp files
        rc, stdout, err = cli(*args)
        assert rc == 0, err
        assert "already present" in stdout
        assert out.read_bytes() == corpus
        out.write_text("my own notes\n", encoding="utf-8")  # other content is replaced only with --force
        rc, stdout, err = cli(*args, "--force")
    assert rc == 0, err
    assert "wrote" in stdout
    assert out.read_bytes() == corpus
    assert [p.name for p in out.parent.iterdir()] == ["j.txt"]


def _fails(cli, *args) -> str:
    rc, stdout, err = cli("download", "jaychou", *args)
    assert rc != 0 and stdout == ""
    return one_error_line(err)


@pytest.mark.parametrize("expected", ["wrong zip checksum", "zip matches, text is not the corpus"])
def test_checksum_mismatch_writes_nothing(site, tmp_path, cli, expected):
    """A wrong zip checksum, or a zip matching the checksum given whose lyrics are not the
    published corpus: refused, and nothing is written."""
    archive = make_zip(TINY_CORPUS.read_bytes())
    (site / "x.zip").write_bytes(archive)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    digest = "0" * 64 if expected == "wrong zip checksum" else sha256(archive)
    with serve(site) as url:
        line = _fails(cli, "--url", f"{url}/x.zip", "--sha256", digest, "--out", out_dir / "j.txt")
    assert "checksum" in line
    assert list(out_dir.iterdir()) == []


@pytest.mark.parametrize("payload, message", [
    (make_zip(b"abc", member="other.txt"), "holds no"),
    (b"this is not a zip at all", "not a valid zip"),
], ids=["no-member", "not-a-zip"])
def test_bad_archives(site, tmp_path, cli, payload, message):
    (site / "x.zip").write_bytes(payload)
    with serve(site) as url:
        line = _fails(cli, "--url", f"{url}/x.zip", "--sha256", sha256(payload), "--out", tmp_path / "o" / "j.txt")
    assert message in line
    assert not (tmp_path / "o" / "j.txt").exists()


def test_not_found_is_one_line(site, tmp_path, cli):
    with serve(site) as url:
        line = _fails(cli, "--url", f"{url}/missing.zip", "--out", tmp_path / "j.txt")
    assert "missing.zip" in line and "failed" in line
    assert not (tmp_path / "j.txt").exists()


def test_unreachable_url_is_one_line(tmp_path, cli):
    with socket.socket() as s:  # a port that nothing listens on any more
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    line = _fails(cli, "--url", f"http://127.0.0.1:{port}/x.zip", "--out", tmp_path / "j.txt")
    assert "failed" in line
    assert list(tmp_path.iterdir()) == []


def test_existing_other_file_needs_force(tmp_path, cli):
    out = tmp_path / "j.txt"
    out.write_text("my own notes\n", encoding="utf-8")
    line = _fails(cli, "--url", "http://127.0.0.1:9/x.zip", "--out", out)
    assert "--force" in line
    assert out.read_text(encoding="utf-8") == "my own notes\n"


def test_out_directory_is_refused(tmp_path, cli):
    assert "directory" in _fails(cli, "--out", tmp_path)


def test_unknown_corpus_name(cli):
    rc, _, err = cli("download", "beatles")
    assert rc == 2
    one_error_line(err)


# -- songci -------------------------------------------------------------------------------------------
@pytest.fixture
def mirror(tmp_path):
    """A copy of the 22 files under site/宋词/, as the repository lays them out."""
    site = tmp_path / "site"
    shutil.copytree(SONGCI, site / "宋词")
    return site


def test_ci_lines_drop_final_punctuation_and_space_the_pauses():
    assert ci_lines(["柳丝无力，低拂清门道。", "暖日笼啼鸟。", "", "曳一缕、轻烟缥缈！", "  "]) == \
        ["柳丝无力 低拂清门道", "暖日笼啼鸟", "曳一缕 轻烟缥缈"]


@needs_songci
def test_download_songci_from_a_local_mirror(cli, mirror, tmp_path):
    out = tmp_path / "data" / "songci.txt"
    with serve(mirror) as root:
        url = f"{root}/宋词"
        rc, stdout, err = cli("download", "songci", "--url", url, "--out", out)
        assert rc == 0, err
        assert stdout.strip() == f"wrote {out}"
        text = out.read_text(encoding="utf-8")
        songs = text.rstrip("\n").split("\n\n")
        assert len(songs) == 21050 and all(songs)
        lines = [x for x in text.split("\n") if x]
        assert len(lines) == 159000  # one per verse line of the JSON
        assert not any(x[-1] in "。！？，" for x in lines)
        rc, stdout, _ = cli("download", "songci", "--url", url, "--out", out)  # present and verified
        assert rc == 0 and stdout.startswith("already present")
    assert sorted(p.name for p in out.parent.iterdir()) == ["songci.txt"]


@needs_songci
@pytest.mark.parametrize("fault", ["corrupted file", "missing file", "transfer breaks off"])
def test_a_bad_file_is_refused_and_nothing_is_written(cli, mirror, tmp_path, fault):
    victim = "ci.song.7000.json"
    if fault == "corrupted file":
        path = mirror / "宋词" / victim
        data = bytearray(path.read_bytes())
        data[1000] ^= 1
        path.write_bytes(bytes(data))
    elif fault == "missing file":
        (mirror / "宋词" / victim).unlink()
    out = tmp_path / "data" / "songci.txt"
    with serve(mirror, broken={victim} if fault == "transfer breaks off" else ()) as root:
        url = f"{root}/宋词"
        rc, stdout, err = cli("download", "songci", "--url", url, "--out", out)
    assert rc != 0 and stdout == ""
    line = one_error_line(err)
    assert victim in line
    assert {"corrupted file": "checksum mismatch", "missing file": "404", "transfer breaks off": "broke off"}[fault] in line
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_list_names_every_corpus_and_its_licence(cli):
    rc, out, err = cli("download", "--list")
    assert rc == 0, err
    for corpus in CORPORA.values():
        assert corpus.name in out and corpus.licence in out
    rc, _, err = cli("download")
    assert rc != 0 and "--list" in one_error_line(err)


# -- the other chinese-poetry collections ---------------------------------------------------------------
POETRY = Path(__file__).resolve().parents[2] / "shared" / "data" / "chinese-poetry"
needs_poetry = pytest.mark.skipif(not (POETRY / "SHA256SUMS").is_file(), reason=f"no chinese-poetry files at {POETRY}")
POETRY_CORPORA = [name for name, c in CORPORA.items() if c.rules == "sentences"]
# poems (or chapters of prose) and lines of each text, as measured from the shared copies
SMALL = {"shijing": (305, 3688), "chuci": (65, 2358), "lunyu": (20, 1283), "sishu": (15, 2665), "caocao": (26, 314),
         "wudai": (541, 1935), "nalan": (257, 1157), "youmengying": (219, 381), "mengxue": (294, 9290),
         "shuimo": (176, 501), "yuanqu": (10767, 50401)}


@pytest.fixture
def poetry_site(tmp_path):
    """The repository's layout on 127.0.0.1: each shared folder linked in place, none copied."""
    site = tmp_path / "site"
    site.mkdir()
    for folder in POETRY.iterdir():
        if folder.is_dir():
            (site / folder.name).symlink_to(folder, target_is_directory=True)
    if SONGCI.is_dir():
        (site / "宋词").symlink_to(SONGCI, target_is_directory=True)
    return site


def check_lines(text: str, poems: int, lines: int) -> list[str]:
    """The line rules: a blank line between poems, no punctuation, no quotation or title marks,
    no notes, single spaces only inside a line."""
    assert text.endswith("\n") and not text.endswith("\n\n")
    found = text.rstrip("\n").split("\n\n")
    assert len(found) == poems and all(found)
    rows = text.rstrip("\n").replace("\n\n", "\n").split("\n")
    assert len(rows) == lines
    assert all(row and row == row.strip() and "  " not in row for row in rows)
    assert not set(text) & set("，。！？、；：“”‘’「」『』《》（）()[]【】〖〗□{}")
    return rows


def test_verse_lines_split_sentences_and_drop_notes_and_marks():
    # made-up lines in the collections' shapes (no corpus text in the repository)
    assert verse_lines(["甲乙丙丁，戊己庚辛。子丑寅卯，辰巳午未！"]) == ["甲乙丙丁 戊己庚辛", "子丑寅卯 辰巳午未"]
    assert verse_lines(["甲曰：“乙丙丁，戊己庚？”", "读《辛壬》"]) == ["甲曰 乙丙丁 戊己庚", "读辛壬"]
    assert verse_lines(["甲乙丙丁（一作「戊己」）庚辛壬，", "(下)。", "〔子丑〕寅卯辰[1]巳午未，"]) == \
        ["甲乙丙丁庚辛壬", "寅卯辰巳午未"]
    assert verse_lines(["甲乙丙丁戊，己□庚辛壬。"]) is None  # a missing character: the whole poem goes
    assert verse_lines(["甲乙丙丁戊，己庚辛{壬/癸}。"]) is None


def test_pieces_reads_each_collections_fields():
    assert pieces([{"title": "t", "author": "a", "paragraphs": ["甲。"], "notes": ["注。"]}]) == [["甲。"]]
    assert pieces([{"title": "t", "para": ["乙"]}, {"content": ["丙。"], "section": "s"}]) == [["乙"], ["丙。"]]
    assert pieces([{"content": "丁。", "comment": ["评。"]}]) == [["丁。"]]
    book = {"title": "t", "abstract": ["序。"], "content": [{"title": "卷", "content": [{"chapter": "c", "paragraphs": ["戊。"]}]}]}
    assert pieces(book) == [["戊。"]]


@needs_poetry
def test_every_pinned_file_is_in_the_published_sums():
    sums = dict(reversed(line.split()) for line in (POETRY / "SHA256SUMS").read_text(encoding="utf-8").splitlines())
    for name in POETRY_CORPORA:
        corpus = CORPORA[name]
        assert corpus.url == POETRY_URL and corpus.licence == CORPORA["songci"].licence
        assert len({f for f, _ in corpus.files}) == len(corpus.files)
        assert all(sums.get(f"./{f}") == digest for f, digest in corpus.files), name
    bundle = CORPORA["classical"]
    assert "songci" in [m.name for m in bundle.members] and "shuimo" not in [m.name for m in bundle.members]
    assert len(bundle.files) == sum(len(m.files) for m in bundle.members)
    assert ("宋词/ci.song.0.json", CORPORA["songci"].files[0][1]) in bundle.files
    assert {f for f, _ in bundle.files} >= {f for f, _ in CORPORA["songshi"].files}


@needs_poetry
def test_a_bundle_is_its_members_one_after_another():
    small = [CORPORA[n] for n in ("caocao", "shuimo")]
    texts = [m.assemble([(POETRY / f).read_bytes() for f, _ in m.files]) for m in small]
    bundle = replace(CORPORA["classical"], members=tuple(small), files=small[0].files + small[1].files)
    assert bundle.assemble([(POETRY / f).read_bytes() for f, _ in bundle.files]) == texts[0] + b"\n" + texts[1]


@needs_poetry
def test_download_each_small_collection(cli, poetry_site, tmp_path):
    with serve(poetry_site) as root:
        for name, (poems, lines) in SMALL.items():
            out = tmp_path / "data" / f"{name}.txt"
            rc, stdout, err = cli("download", name, "--url", root, "--out", out)
            assert rc == 0, err
            assert stdout.strip() == f"wrote {out}"
            check_lines(out.read_text(encoding="utf-8"), poems, lines)
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == sorted(f"{n}.txt" for n in SMALL)


@needs_poetry
def test_download_tang_converts_to_simplified(cli, poetry_site, tmp_path):
    out = tmp_path / "data" / "tang.txt"
    with serve(poetry_site) as root:
        rc, stdout, err = cli("download", "tang", "--url", root, "--out", out)
        assert rc == 0, err
        text = out.read_text(encoding="utf-8")
        check_lines(text, 56812, 252817)
        assert not set(text) & set("壯風雲學國爲與長門見萬無來書")  # traditional forms, all converted
        assert set("壮风云学国为与长门见万无来书") <= set(text)  # to these
        rc, stdout, _ = cli("download", "tang", "--url", root, "--out", out)
        assert rc == 0 and stdout.startswith("already present")


@needs_poetry
@pytest.mark.parametrize("name", ["chuci", "sishu"])
def test_a_tampered_collection_file_is_refused(cli, tmp_path, name):
    site = tmp_path / "site"
    for f, _ in CORPORA[name].files:
        (site / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(POETRY / f, site / f)
    victim = site / CORPORA[name].files[-1][0]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 1
    victim.write_bytes(bytes(data))
    out = tmp_path / "data" / f"{name}.txt"
    with serve(site) as root:
        rc, stdout, err = cli("download", name, "--url", root, "--out", out)
    assert rc != 0 and stdout == ""
    line = one_error_line(err)
    assert "checksum mismatch" in line and victim.name in line and "nothing was written" in line
    assert not out.parent.exists()


def test_a_traditional_collection_without_opencc_names_the_extra(cli, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "opencc", None)  # import opencc now fails
    _t2s.cache_clear()
    try:
        rc, stdout, err = cli("download", "sishu", "--url", "http://127.0.0.1:9", "--out", tmp_path / "s.txt")
    finally:
        _t2s.cache_clear()
    assert rc != 0 and stdout == ""
    line = one_error_line(err)
    assert "OpenCC" in line and "lyricgen[corpora]" in line  # before any download: port 9 was never asked
    assert list(tmp_path.iterdir()) == []
