"""Fetch a public corpus, verify every file's checksum before using it, write one text file atomically.

    jaychou  the Jay Chou lyrics of the d2l-zh book (a zip of one text file). The lyrics are not ours
             to redistribute: the repository never contains them, users fetch them.
    songci   全宋词, 21,050 ci (song lyrics of the Song dynasty, public domain) as JSON files of
             chinese-poetry/chinese-poetry (MIT licence) at a pinned commit. Each ci becomes its
             lines, one per line, with a blank line between ci: a lyric line ends where a verse line
             ends (its final punctuation, the rhyme position, dropped), and the pauses inside it
             (，、；：) become a space, as lyric sites write them.

    tang, songshi, yuanqu, shijing, chuci, wudai, nalan, caocao, shuimo, youmengying, lunyu, sishu,
    mengxue, classical: the other collections of chinese-poetry/chinese-poetry at the same commit
             (corpora.json beside this file holds each one's files, their sha256 and the text's).
             Each becomes one line per sentence or verse line, a blank line between poems (or
             chapters of prose): the line ends at its final punctuation (dropped), the pauses inside
             it become a space, quotation and title marks go, and the editors' notes in brackets
             (variant readings, stage directions, footnote numbers) go with their contents. A poem
             holding a character the editors could not give (□, a {…} composition, a stray letter)
             is left out whole rather than learnt with a hole. 全唐诗, 全宋诗, 四书五经 and 蒙学 are
             stored in traditional characters and are converted to simplified ones with OpenCC's
             t2s (the extra `corpora`). `classical` is all of them but shuimo (a selection of
             tang) in one file, songci included, oldest first.

Nothing is written unless every file matches its published sha256 and the assembled text matches
its own; a failed or interrupted transfer leaves no file behind.
"""
import hashlib
import io
import json
import re
import urllib.parse
import zipfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from ..errors import LyricgenError
from ..fileio import atomic_write

MAX_BYTES = 64 * 1024 * 1024  # per file: a corpus file is far smaller; refuse to buffer anything huge
SONGCI_COMMIT = "99ebbef7e1345c0985c44b9fd96a3f9e776f117b"
POETRY_URL = f"https://raw.githubusercontent.com/chinese-poetry/chinese-poetry/{SONGCI_COMMIT}"
POETRY_LICENCE = "public domain texts; chinese-poetry/chinese-poetry's JSON is MIT-licensed"
OPENCC_VERSION = "1.4.2"  # the converter the traditional corpora's text checksums were made with
CORPORA_FILE = Path(__file__).with_name("corpora.json")
SONGCI_SHA256 = {  # ci.song.N.json of 宋词/ at SONGCI_COMMIT (README and SHA256SUMS of that copy)
    0: "7761bc5ef50305753ea3dcea9e1ef3164e153e3ee366169e9c5a9a7d85b21b22",
    1000: "5f79a2d9011e6d414f04e51176c5d4f4c762fd784dce98b035968367b6f2ef4e",
    2000: "f700d8e14df62d371dfba7ce18bf1641c304540907b26b68d356c4b6b256fe8d",
    3000: "1791391a8a2ca855e133f7ea48bf0c104b3890d628ae2929f9378960a66c1427",
    4000: "48c3e33bab920e17929ea08300c4c5ca72b246669ed5767e5cb985d894514150",
    5000: "1e10ee4be18e225c2efa0bb8d58691ebb6d40cd83588f308d9635a37392bdadd",
    6000: "8ff2b21b4e92a435f72da04fcb935a6a3498e839cde5c837ea418871f133c248",
    7000: "8fe3f7ac40ab7d6c80cdd42305e848c1dc51cff26bc42b335ddfdfaccd48d1ba",
    8000: "8d9c26a4aa62264d2eea853944e47a1420dd94e7465bee7c3e52cec2cf8bd653",
    9000: "bd6a4d90b17ef195f32e38dfa483b0d39d671db3cdd5b462b292aac6916f26a6",
    10000: "8d37b015132bf9776fb41c44d445572d2cd9bf5e250dde213596c480e5962545",
    11000: "9a4f5082638f82339afbde99f1af7bae1719207f77d5516cb8f6d370c9c1d0c9",
    12000: "a89094fed6b3003c171a9036052ff6a289367b4dd68d97c000b5f5e90ea2df2f",
    13000: "dd51b268dec508d44a18e2d4a84edd109ff8c532b6eace4160ea88674f62515c",
    14000: "9d7410bcaebc31685e3d999c6af218a3583fd8e9f57cacf640c66607121e2dbf",
    15000: "5e441c85494955290138ed8561decb3f302d3628fe390cea3477e1d446039525",
    16000: "d003d66c58e40fab1d2a40f17f6149eef53a126c7e54b035153ceae4fe707742",
    17000: "b46b9f908b5bb0a3b4dd18f268c233a50b8b794d6ab1ec79afcb3612792f0574",
    18000: "751cf8ee2a925f4957d010e6f4bf46cc9e0a90a176cfb731185ba43ecb72b14b",
    19000: "c6becb6a81cc04e25564f501ff768482b6c328d976c48e2003c8b8bd94ef4612",
    20000: "1dfc08051969ab2ecdfa3eea8b29bf79d3dfe9ad1133127f25f622c2b14348c2",
    21000: "3344ba453ae7840339944ce29e4295b5b668d79f79210a99e6e1a58ee874dbc5",
}


@dataclass(frozen=True)
class Corpus:
    name: str
    description: str
    licence: str
    out: str  # default output path
    url: str  # the zip, or the folder holding the files
    files: tuple[tuple[str, str], ...]  # (file name, sha256) in the order they are assembled
    text_sha256: str  # of the text written
    member: str = ""  # a zip's text file; "" for JSON files
    rules: str = "ci"  # JSON files: "ci" (songci's: a JSON line is a lyric line) or "sentences" (a line per sentence)
    traditional: bool = False  # in traditional characters: converted to simplified (OpenCC's t2s)
    folder: str = ""  # where `url` points inside chinese-poetry ("宋词" for songci; "" is the repository)
    members: tuple["Corpus", ...] = ()  # a bundle: these corpora's texts one after another

    def assemble(self, parts: list[bytes]) -> bytes:
        if self.member:
            return unpack(parts[0], self.member)
        if self.members:
            texts, start = [], 0
            for m in self.members:
                texts.append(m.assemble(parts[start:start + len(m.files)]))
                start += len(m.files)
            return b"\n".join(texts)  # each ends with its newline: a blank line between corpora
        if self.rules == "ci":
            return songci_text(parts)
        text = poetry_text(parts, self.name)
        return to_simplified(text).encode("utf-8") if self.traditional else text.encode("utf-8")

    def file_url(self, base: str, name: str) -> str:
        """The address of one file; the path is percent-encoded as UTF-8 (宋词/ in the repository's)."""
        url = base if name == "" else base.rstrip("/") + "/" + name
        return urllib.parse.quote(url, safe=":/%?=&~+@")


def _songci_files() -> tuple:
    return tuple((f"ci.song.{n}.json", SONGCI_SHA256[n]) for n in sorted(SONGCI_SHA256))


CORPORA = {
    "jaychou": Corpus(
        "jaychou", "Jay Chou lyrics, 5,819 lines (the d2l-zh book's corpus)",
        "copyrighted lyrics: for your own study, never redistributed", "data/jaychou_lyrics.txt",
        "https://raw.githubusercontent.com/d2l-ai/d2l-zh/v1/data/jaychou_lyrics.txt.zip",
        (("", "3cfedd7d174111cdad5a27eaffaa6a2432a2842cf2590a03dd8a97610ea07043"),),
        "f0cab49f5d00e736c7201a0e2aa9c8dd72da1940c9491b309e4cc657be0faa48", member="jaychou_lyrics.txt"),
    "songci": Corpus(
        "songci", "全宋词: 21,050 ci (Song dynasty song lyrics), 159,000 lines, 1.7 million characters",
        POETRY_LICENCE, "data/songci.txt", f"{POETRY_URL}/宋词",
        _songci_files(), "204b8b59a52893911dde996e128ba7dba85b4173696fa7bfba75117a132fada1", folder="宋词"),
}


def _poetry_corpora(table: dict) -> dict:
    """The chinese-poetry corpora of corpora.json; a bundle's members come before it in the file."""
    corpora = {}
    for name, c in table["corpora"].items():
        members = tuple((corpora | CORPORA)[m] for m in c.get("members", ()))
        traditional = c.get("traditional", False) or any(m.traditional for m in members)
        description = c["description"] + ("; from traditional characters: needs OpenCC" if traditional else "")
        common = (name, description, POETRY_LICENCE, f"data/{name}.txt", POETRY_URL)
        if members:
            files = tuple((f"{m.folder}/{f}" if m.folder else f, h) for m in members for f, h in m.files)
            corpora[name] = Corpus(*common, files, c["text_sha256"], members=members, traditional=traditional)
        else:
            corpora[name] = Corpus(*common, tuple(map(tuple, c["files"])), c["text_sha256"],
                                   rules="sentences", traditional=traditional)
    return corpora


CORPORA |= _poetry_corpora(json.loads(CORPORA_FILE.read_text(encoding="utf-8")))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch(url: str, timeout: float = 60.0) -> bytes:
    # imported here: http.client and urllib.request (email, ssl) would double `lyricgen --help`'s time
    import http.client
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            announced = response.headers.get("Content-Length")
            data = response.read(MAX_BYTES + 1)
        if announced is not None and announced.isdigit() and len(data) < int(announced):
            raise http.client.IncompleteRead(data, int(announced) - len(data))
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        if isinstance(e, urllib.error.HTTPError):
            reason = f"HTTP {e.code} {e.reason}"
        if isinstance(e, http.client.IncompleteRead):
            reason = f"the transfer broke off after {len(e.partial)} bytes"
        raise LyricgenError(f"download of {url} failed: {reason}") from None
    if len(data) > MAX_BYTES:
        raise LyricgenError(f"download of {url} is larger than {MAX_BYTES} bytes; refused")
    return data


def unpack(data: bytes, member: str) -> bytes:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = [n for n in zf.namelist() if n.rsplit("/", 1)[-1] == member]
            if not names:
                raise LyricgenError(f"the zip holds no {member}")
            return zf.read(names[0])
    except zipfile.BadZipFile as e:
        raise LyricgenError(f"the download is not a valid zip: {e}") from None


_PAUSE = re.compile(r"\s*[，、；：,;:]+\s*")
_END = re.compile(r"[。！？!?．…]+$")


def ci_lines(paragraphs: list[str]) -> list[str]:
    """The lyric lines of one ci: a line per verse line, final punctuation dropped, pauses as spaces."""
    lines = []
    for p in paragraphs:
        line = _PAUSE.sub(" ", _END.sub("", p.strip())).strip()
        if line:
            lines.append(line)
    return lines


def songci_text(files: list[bytes]) -> bytes:
    """The verified JSON files, in order, as one text: lines of each ci, a blank line between ci."""
    songs = []
    for data in files:
        try:
            for ci in json.loads(data.decode("utf-8")):
                lines = ci_lines(ci.get("paragraphs") or [])
                if lines:
                    songs.append("\n".join(lines))
        except (ValueError, AttributeError, TypeError) as e:
            raise LyricgenError(f"a 全宋词 file is not the expected JSON: {e}") from None
    return ("\n\n".join(songs) + "\n").encode("utf-8")


# The other collections: a sentence is a line. Editors' notes in brackets go with their contents,
# innermost first (notes nest); marks that only quote or name a title go alone.
_NOTE = re.compile(r"[（(][^（）()]*[）)]|〖[^〖〗]*〗|［[^［］]*］|〔[^〔〕]*〕|<[^<>]*>|\[[0-9A-Za-z.]*\]")
_MARK = re.compile(r"[“”‘’「」『』《》〈〉\"\[\]]")
_STOP = re.compile(r"[。！？!?．.…#]+")  # '##' separates paragraphs in 幽梦影
_SPACE = re.compile(r"[\s，、；：,;:—-]+")
_DAMAGED = re.compile(r"[^\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f〇々 ]")
TEXT_FIELDS = ("paragraphs", "para", "content")  # the first a JSON object has holds its text


def verse_lines(paragraphs: list[str]) -> list[str] | None:
    """The lines of one poem or chapter: one per sentence, final punctuation dropped, pauses as
    spaces, notes and quotation marks removed; None when a character is missing or unreadable."""
    text = "\n".join(paragraphs)
    while (stripped := _NOTE.sub("", text)) != text:
        text = stripped
    lines = []
    for sentence in _STOP.split(_MARK.sub("", text).replace("\n", "。")):
        line = _SPACE.sub(" ", sentence).strip()
        if _DAMAGED.search(line):
            return None
        if line:
            lines.append(line)
    return lines


def pieces(node) -> list[list[str]]:
    """Every poem or chapter in a collection's JSON, as its list of paragraphs, in file order:
    {"paragraphs": [...]} (most), {"para": [...]} (纳兰性德), {"content": [...]} (诗经, 楚辞),
    {"content": "..."} (幽梦影); a "content" of objects (蒙学's books) is searched in turn. Titles,
    authors, notes, comments and prefaces are other fields, never read."""
    if isinstance(node, list):
        return [p for x in node for p in pieces(x)]
    if not isinstance(node, dict):
        return []
    for field in TEXT_FIELDS:
        value = node.get(field)
        if isinstance(value, str):
            return [[value]]
        if isinstance(value, list) and value and all(isinstance(x, str) for x in value):
            return [value]
        if isinstance(value, list):
            return pieces(value)
    return []


def poetry_text(files: list[bytes], name: str) -> str:
    """The verified JSON files, in order, as one text: the lines of each poem, a blank line between."""
    poems = []
    for data in files:
        try:
            found = pieces(json.loads(data.decode("utf-8")))
        except ValueError as e:
            raise LyricgenError(f"a {name} file is not the expected JSON: {e}") from None
        poems += ["\n".join(lines) for lines in map(verse_lines, found) if lines]
    return "\n\n".join(poems) + "\n"


@cache
def _t2s():
    try:
        import opencc
    except ImportError:
        raise LyricgenError("converting traditional characters to simplified needs OpenCC: "
                            "pip install 'lyricgen[corpora]'") from None
    return opencc.OpenCC("t2s")


def to_simplified(text: str) -> str:
    return _t2s().convert(text)


def opencc_note() -> str:
    """Why a converted text may differ from its checksum: another OpenCC than the one it was made with."""
    import opencc

    version = getattr(opencc, "__version__", "?")
    return "" if version == OPENCC_VERSION else \
        f" (OpenCC {version} converts differently from {OPENCC_VERSION}: pip install 'lyricgen[corpora]')"


def fetch_verified(corpus: Corpus, url: str | None = None, file_sha256: str | None = None) -> bytes:
    """The corpus text, every file checked against its sha256 before it is used."""
    base = url or corpus.url
    if corpus.traditional:
        _t2s()  # without OpenCC, say so before any download
    parts = []
    for name, expected in corpus.files:
        expected = (file_sha256 or expected).lower() if len(corpus.files) == 1 else expected
        where = corpus.file_url(base, name)
        data = fetch(where)
        got = sha256(data)
        if got != expected:
            raise LyricgenError(f"checksum mismatch for {where}: expected sha256 {expected}, got {got}; "
                                "nothing was written")
        parts.append(data)
    text = corpus.assemble(parts)
    if sha256(text) != corpus.text_sha256:
        raise LyricgenError(f"the assembled {corpus.name} text does not match its known checksum; nothing was written"
                            + (opencc_note() if corpus.traditional else ""))
    return text


def download(name: str, out=None, url: str | None = None, file_sha256: str | None = None,
             force: bool = False) -> tuple[Path, bool]:
    """Download corpus `name`; returns (path, whether it was written). `url` is a mirror (of the zip,
    or of the folder of files); `file_sha256` replaces the zip's expected checksum (one-file corpora)."""
    if name not in CORPORA:
        raise LyricgenError(f"unknown corpus {name!r}; known: {', '.join(CORPORA)}")
    corpus = CORPORA[name]
    path = Path(out or corpus.out)
    if path.is_dir():
        raise LyricgenError(f"{path} is a directory; give a file path with --out")
    if path.exists():
        if sha256(path.read_bytes()) == corpus.text_sha256:
            return path, False
        if not force:
            raise LyricgenError(f"{path} exists with other content; pass --force to replace it")
    atomic_write(path, fetch_verified(corpus, url, file_sha256), "corpus")
    return path, True
