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


# Bump when normalisation or segmentation changes, so old cache entries are never reused.
TOKENIZER_VERSION = "1"


def cache_key(lines: list[str]) -> str:
    """Content address of a tokenisation: the text itself, our tokenizer version, jieba's version."""
    import hashlib

    h = hashlib.sha256(f"lyricgen-tokens {TOKENIZER_VERSION} jieba {jieba_version()} hmm 1\n".encode())
    for line in lines:
        h.update(line.encode("utf-8", "surrogatepass"))
        h.update(b"\n")
    return h.hexdigest()


def tokenize_lines_cached(lines: list[str], use_cache: bool = True) -> list[list[str]]:
    """tokenize_lines, remembered on disk by content: a second run on the same text skips jieba.

    A changed corpus or tokenizer gives another key, so a stale entry is never read. An unreadable
    or corrupt entry is ignored and rewritten; failing to write the cache never fails the caller.
    """
    import json

    if not use_cache:
        return tokenize_lines(lines)
    try:
        path = cache_dir() / "tokens" / f"{cache_key(lines)}.json"
    except (OSError, LyricgenError):  # no usable cache directory: tokenise without one
        return tokenize_lines(lines)
    try:
        tokens = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(tokens, list) and len(tokens) == len(lines):
            return tokens
    except (OSError, ValueError):
        pass
    tokens = tokenize_lines(lines)
    try:
        private_dir(path.parent)
        atomic_write(path, json.dumps(tokens, ensure_ascii=False, separators=(",", ":")).encode("utf-8"), "token cache")
    except (OSError, LyricgenError):
        pass
    return tokens
