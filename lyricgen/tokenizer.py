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
    path = Path(root)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def _segmenter():
    global _jieba
    if _jieba is None:
        import jieba

        jieba.setLogLevel(logging.WARNING)
        private = cache_dir() / "jieba"
        private.mkdir(mode=0o700, exist_ok=True)
        jieba.dt.tmp_dir = str(private)
        _jieba = jieba
    return _jieba


def segment(text: str) -> list[str]:
    """jieba's segmentation of already-normalised text (no line breaks inside)."""
    if not text:
        return []
    return [tok for tok in _segmenter().lcut(text, HMM=True) if tok]


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
