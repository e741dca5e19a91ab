"""Text -> tokens: the only module that imports jieba.

A lyric line is normalised (every run of whitespace, including the full-width space U+3000 that
lyric sites use between phrases, becomes one ASCII space; the ends are stripped), then segmented by
jieba. The line break itself is a token, LINE_BREAK, so generated lyrics have lines.

jieba is imported on first use only: generating from a start word that is already a vocabulary entry
never pays for loading its dictionary. Its dictionary cache goes to a private directory of ours
(mode 0700), not to the shared, world-writable temp directory jieba uses by default.
"""
import logging
import re
from dataclasses import astuple, dataclass

import numpy as np

from ..errors import LyricgenError
from ..fileio import atomic_write, cache_dir, private_dir

LINE_BREAK = "\n"
SPACE = " "
_WHITESPACE = re.compile(r"\s+")  # \s covers U+3000, NBSP and tabs for str patterns

_jieba = None


def normalize_line(line: str) -> str:
    """One lyric line with its whitespace made consistent."""
    return _WHITESPACE.sub(SPACE, line).strip()


def _segmenter():
    global _jieba
    if _jieba is None:
        import jieba

        jieba.setLogLevel(logging.WARNING)
        try:
            jieba.dt.tmp_dir = str(private_dir(cache_dir() / "jieba"))
        except (OSError, LyricgenError):  # no usable cache directory: a fresh private one for this process
            import tempfile

            jieba.dt.tmp_dir = tempfile.mkdtemp(prefix="lyricgen-jieba-")
        _jieba = jieba
    return _jieba


MAX_SEGMENT = 2048  # jieba builds a graph over its whole input: feed a huge "line" in slices


def segment(text: str) -> list[str]:
    """jieba's segmentation of already-normalised text (no line breaks inside).

    A lyric line is short; a pathological one (a 10 MB file with no line breaks) is cut into
    MAX_SEGMENT-character slices, so memory stays proportional to the slice, not the line.
    """
    if not text:
        return []
    jieba = _segmenter()
    if len(text) <= MAX_SEGMENT:
        return [tok for tok in jieba.lcut(text, HMM=True) if tok]
    tokens = []
    for start in range(0, len(text), MAX_SEGMENT):
        tokens.extend(tok for tok in jieba.lcut(text[start:start + MAX_SEGMENT], HMM=True) if tok)
    return tokens


def word_frequencies() -> tuple[dict, int]:
    """jieba's dictionary as (word -> frequency, total); a word's every prefix is in it too, with
    frequency 0. Read, never changed (writing/words.py checks generated lines against it)."""
    dt = _segmenter().dt
    dt.check_initialized()
    return dt.FREQ, dt.total


def tokenize_line(line: str) -> list[str]:
    """Tokens of one lyric line, without the line break."""
    return segment(normalize_line(line))


def tokenize_lines(lines: list[str]) -> list[list[str]]:
    """One token list per lyric line (line breaks not included)."""
    return [tokenize_line(line) for line in lines]


def jieba_version() -> str:
    try:
        from importlib.metadata import version

        return version("jieba")
    except Exception:  # not installed as a distribution: report what we know
        return "unknown"


# Bump when normalisation, segmentation or the cache's layout change, so old entries are never reused.
TOKENIZER_VERSION = "2"
LINE_END = -1  # the line break in a TokenStream's ids
PARALLEL_MIN_LINES = 20_000  # below this, starting worker processes costs more than it saves
CHUNK_LINES = 2_000


@dataclass
class TokenStream:
    """A tokenised text, compactly: its distinct tokens, and the whole text as int32 indices into
    them, LINE_END closing every line. A corpus 100x the Jay Chou corpus is 4 million tokens: 16 MB
    here (memory-mappable from the cache), where lists of token strings would take hundreds."""
    table: list[str]  # distinct tokens, in order of first occurrence
    ids: np.ndarray  # (N,) int32

    @classmethod
    def from_lines(cls, token_lines: list[list[str]]) -> "TokenStream":
        index: dict[str, int] = {}
        ids = [i for line in token_lines for i in ([index.setdefault(t, len(index)) for t in line] + [LINE_END])]
        return cls(list(index), np.asarray(ids, dtype=np.int32))

    def to_lines(self) -> list[list[str]]:
        lines, line = [], []
        for i in self.ids.tolist():
            if i == LINE_END:
                lines.append(line)
                line = []
            else:
                line.append(self.table[i])
        return lines

    @property
    def num_lines(self) -> int:
        return int((self.ids == LINE_END).sum())

    def counts(self) -> np.ndarray:
        """Occurrences of each table entry."""
        return np.bincount(self.ids[self.ids != LINE_END], minlength=len(self.table))

    @property
    def chars(self) -> int:
        """Characters of the (normalised) text, each line break counted as one."""
        lengths = np.fromiter((len(t) for t in self.table), dtype=np.int64, count=len(self.table))
        return int((self.counts() * lengths).sum()) + self.num_lines


def _tokenize_chunk(lines: list[str]) -> tuple[list[str], np.ndarray]:
    return astuple(TokenStream.from_lines(tokenize_lines(lines)))


def tokenize(lines: list[str], workers: int = 1, progress=None) -> TokenStream:
    """tokenize_lines as a TokenStream; with workers > 1 (and a corpus large enough to gain), over
    that many processes. progress(n) is called with the number of lines done so far."""
    chunks = [lines[i:i + CHUNK_LINES] for i in range(0, len(lines), CHUNK_LINES)]
    if workers > 1 and len(lines) >= PARALLEL_MIN_LINES:
        import multiprocessing

        _segmenter().initialize()  # the dictionary is loaded once, here; forked workers share it
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        with multiprocessing.get_context(method).Pool(min(workers, len(chunks))) as pool:
            return _merge(pool.imap(_tokenize_chunk, chunks), chunks, progress)
    return _merge(map(_tokenize_chunk, chunks), chunks, progress)


def _merge(results, chunks, progress) -> TokenStream:
    """One stream from the chunks' own (table, ids), renumbered into one table, in order."""
    index: dict[str, int] = {}
    parts, done = [], 0
    for (table, ids), chunk in zip(results, chunks):
        remap = np.fromiter((index.setdefault(t, len(index)) for t in table), dtype=np.int32, count=len(table))
        parts.append(np.where(ids == LINE_END, LINE_END, remap[np.maximum(ids, 0)]).astype(np.int32)
                     if len(table) else ids)
        done += len(chunk)
        if progress:
            progress(done)
    return TokenStream(list(index), np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32))


def cache_key(lines: list[str]) -> str:
    """Content address of a tokenisation: the text itself, our tokenizer version, jieba's version."""
    import hashlib

    h = hashlib.sha256(f"lyricgen-tokens {TOKENIZER_VERSION} jieba {jieba_version()} hmm 1\n".encode())
    for line in lines:
        h.update(line.encode("utf-8", "surrogatepass"))
        h.update(b"\n")
    return h.hexdigest()


def tokenize_cached(lines: list[str], use_cache: bool = True, workers: int = 1, progress=None) -> TokenStream:
    """tokenize(), remembered on disk by content: a second run on the same text skips jieba.

    The entry is two files: KEY.ids.npy (int32, read memory-mapped) and KEY.table.json, written
    last, so an entry is complete once its table exists. A changed corpus or tokenizer gives another
    key, so a stale entry is never read; an unreadable or corrupt one is ignored and rewritten; failing
    to write the cache never fails the caller.
    """
    import json

    if not use_cache:
        return tokenize(lines, workers, progress)
    try:
        folder = cache_dir() / "tokens"
    except (OSError, LyricgenError):  # no usable cache directory: tokenise without one
        return tokenize(lines, workers, progress)
    key = cache_key(lines)
    ids_path, table_path = folder / f"{key}.ids.npy", folder / f"{key}.table.json"
    try:
        table = json.loads(table_path.read_text(encoding="utf-8"))
        ids = np.load(ids_path, mmap_mode="r", allow_pickle=False)
        if isinstance(table, list) and ids.dtype == np.int32 and ids.ndim == 1 and \
                int((ids == LINE_END).sum()) == len(lines) and (ids.size == 0 or int(ids.max()) < len(table)):
            return TokenStream(table, ids)
    except (OSError, ValueError, EOFError):  # missing, truncated or foreign: tokenise again
        pass
    stream = tokenize(lines, workers, progress)
    try:
        private_dir(folder)
        atomic_write(ids_path, lambda f: np.save(f, stream.ids, allow_pickle=False), "token cache")
        atomic_write(table_path, json.dumps(stream.table, ensure_ascii=False).encode("utf-8"), "token cache")
    except (OSError, LyricgenError):
        pass
    return stream


def is_person_name(word: str) -> bool:
    """Whether jieba's part-of-speech tagger reads `word` as one word that is a person's name (nr).
    It also tags some plain words so (安静): text/debris.py asks only about fields that recur."""
    _segmenter()  # jieba set up as everywhere here (its cache in our private directory)
    import jieba.posseg

    tagged = jieba.posseg.lcut(word, HMM=True)
    return len(tagged) == 1 and tagged[0].flag == "nr"
