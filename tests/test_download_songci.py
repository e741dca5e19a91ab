"""`lyricgen download songci` against a local server of the shared 全宋词 files (skips without them):
the real files assemble into the pinned text; a corrupted file, a missing file and a transfer that
breaks off are refused with one line and leave nothing behind."""
import functools
import http.server
import shutil
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import one_error_line
from lyricgen.text.download import CORPORA, ci_lines

SONGCI = Path(__file__).resolve().parents[2] / "shared" / "data" / "songci"
needs_songci = pytest.mark.skipif(not (SONGCI / "SHA256SUMS").is_file(), reason=f"no 全宋词 files at {SONGCI}")


class Handler(http.server.SimpleHTTPRequestHandler):
    broken: set = set()  # file names sent with their true length announced but cut off halfway

    def log_message(self, *args):
        pass

    def do_GET(self):
        name = self.path.rsplit("/", 1)[-1]
        if name in self.broken:
            data = Path(self.translate_path(self.path)).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()


@contextmanager
def serve(directory, broken=()):
    handler = functools.partial(type("H", (Handler,), {"broken": set(broken)}), directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/宋词"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A copy of the 22 files under site/宋词/, as the repository lays them out."""
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    site = tmp_path / "site"
    shutil.copytree(SONGCI, site / "宋词")
    return site


def test_ci_lines_drop_final_punctuation_and_space_the_pauses():
    assert ci_lines(["柳丝无力，低拂清门道。", "暖日笼啼鸟。", "", "曳一缕、轻烟缥缈！", "  "]) == \
        ["柳丝无力 低拂清门道", "暖日笼啼鸟", "曳一缕 轻烟缥缈"]


@needs_songci
def test_download_songci_from_a_local_mirror(cli, mirror, tmp_path):
    out = tmp_path / "data" / "songci.txt"
    with serve(mirror) as url:
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
    with serve(mirror, broken={victim} if fault == "transfer breaks off" else ()) as url:
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
