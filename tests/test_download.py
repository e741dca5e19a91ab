"""text/download.py through `lyricgen download`, against a local HTTP server: no test needs the network.

jaychou: the zip is built in the test from the shared corpus (tests that need it skip without it);
the checksum and error paths use zips of the tiny fixture instead. songci: the shared 全宋词 files
are served as the repository lays them out (skipped without them); a corrupted file, a missing one
and a transfer that breaks off are refused with one line and leave nothing behind.
"""
import functools
import hashlib
import http.server
import io
import socket
import shutil
import threading
import zipfile
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import TINY_CORPUS, one_error_line
from lyricgen.text.download import CORPORA, ci_lines

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
