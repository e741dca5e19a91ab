"""Loops: the degeneration greedy decoding of a small model falls into, measured on a text."""
import re

from ..text.tokenizer import normalize_line

_PHRASE_LOOP = re.compile(r"(\S.{1,23}?)\1{2,}", re.DOTALL)


def repeats_a_phrase(text: str) -> bool:
    """True when a phrase of 2 to 24 characters occurs 3 times in a row anywhere, across line
    breaks too ("我的 我的 我的"): the loop greedy decoding falls into inside one long line."""
    return _PHRASE_LOOP.search(text) is not None


def repeats_a_line(text: str, times: int = 3) -> bool:
    """True when the same non-empty line occurs `times` times in a row: the loop greedy decoding
    of a small model falls into ("我想了空 / 我想了空 / 我想了空")."""
    lines = [normalize_line(x) for x in text.split("\n")]
    run = 1
    for prev, line in zip(lines, lines[1:]):
        run = run + 1 if line and line == prev else 1
        if run >= times:
            return True
    return False
