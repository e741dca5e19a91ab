"""Text -> tokens: the only module that imports jieba.

A lyric line is normalised (every run of whitespace, including the full-width space U+3000 that
lyric sites use between phrases, becomes one ASCII space; the ends are stripped), then segmented by
jieba. The line break itself is a token, LINE_BREAK, so generated lyrics have lines.

jieba is imported on first use only: generating from a start word that is already a vocabulary entry
never pays for loading its dictionary. Its dictionary cache goes to a private directory of ours
(mode 0700), not to the shared, world-writable temp directory jieba uses by default.
"""
import logging
import os
import re
from pathlib import Path

LINE_BREAK = "\n"
SPACE = " "
_WHITESPACE = re.compile(r"\s+")  # \s covers U+3000, NBSP and tabs for str patterns

_jieba = None


def normalize_line(line: str) -> str:
    """One lyric line with its whitespace made consistent."""
    return _WHITESPACE.sub(SPACE, line).strip()


def cache_dir() -> Path:
    """Private cache directory: $LYRICGEN_CACHE, else $XDG_CACHE_HOME/lyricgen, else ~/.cache/lyricgen."""
    root = os.environ.get("LYRICGEN_CACHE")
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(base, "lyricgen")
    return private_dir(Path(root))


def private_dir(path: Path) -> Path:
    """`path` as a directory only its owner can use (created 0700; an existing one is tightened)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        try:
            os.chmod(path, 0o700)
        except OSError:
            from .errors import LyricgenError

            raise LyricgenError(f"cache directory {path} is shared with other users and not ours to fix; "
                                "set LYRICGEN_CACHE to a private directory") from None
    return path


def _segmenter():
    global _jieba
    if _jieba is None:
        import jieba

        jieba.setLogLevel(logging.WARNING)
        try:
            jieba.dt.tmp_dir = str(private_dir(cache_dir() / "jieba"))
        except OSError:  # no usable cache directory: a fresh private one for this process
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
    import tempfile

    if not use_cache:
        return tokenize_lines(lines)
    try:
        path = cache_dir() / "tokens" / f"{cache_key(lines)}.json"
    except OSError:  # no usable cache directory: tokenise without one
        return tokenize_lines(lines)
    try:
        tokens = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(tokens, list) and len(tokens) == len(lines):
            return tokens
    except (OSError, ValueError):
        pass
    tokens = tokenize_lines(lines)
    tmp = None
    try:
        private_dir(path.parent)
        fd, tmp = tempfile.mkstemp(prefix=".tokens-", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(tokens, f, ensure_ascii=False, separators=(",", ":"))
        os.replace(tmp, path)
    except OSError:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return tokens
