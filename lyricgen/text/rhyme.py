"""Rhyme in Chinese lyrics: the final (韵母) of a line's last Han character, in one of the thirteen
rhyme classes of 十三辙.

Why 十三辙: it is how sung Chinese rhymes - opera, folk song and the manuals Mandarin pop lyricists
write by - and it groups the finals the way singers hear them: an/ian/uan/üan rhyme (言前), so do
ie/üe (乜斜) and i/ü/er (一七), while in/ing and en/eng stay apart. It is coarser than pinyin finals
(which would call 天/年/远 three rhymes) and than 中华新韵's 18 classes, closer to what lyricists
accept; SongNet's 13 classes are the same idea.

pypinyin reads the final in the context of the word around the character, so polyphones come out
right: 落 in 失落 is luo, 乐 in 音乐 is yue, 长 in 成长 is zhang. It is imported on first use only.
"""
from functools import lru_cache

CLASSES = {
    "发花": ("a", "ia", "ua"),
    "梭波": ("o", "uo", "e"),
    "乜斜": ("ie", "ve"),
    "一七": ("i", "v", "er"),
    "姑苏": ("u",),
    "怀来": ("ai", "uai"),
    "灰堆": ("ei", "uei"),
    "遥条": ("ao", "iao"),
    "油求": ("ou", "iou"),
    "言前": ("an", "ian", "uan", "van"),
    "人辰": ("en", "in", "uen", "vn"),
    "江阳": ("ang", "iang", "uang"),
    "中东": ("eng", "ing", "ong", "iong", "ueng"),
}
NAMES = tuple(CLASSES)  # a class's index in NAMES is its id; -1 is "no class"
FINAL_CLASS = {final: NAMES.index(name) for name, finals in CLASSES.items() for final in finals}
CONTEXT = 8  # characters of the word context read before the last one: plenty for any word


def is_han(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf" or "\uf900" <= ch <= "\ufaff"


def last_han_run(text: str) -> str:
    """The run of Han characters that ends at the text's last Han character ("" if it has none)."""
    end = len(text)
    while end and not is_han(text[end - 1]):
        end -= 1
    start = end
    while start and is_han(text[start - 1]):
        start -= 1
    return text[start:end]


@lru_cache(maxsize=65536)
def _run_final(run: str) -> str:
    from pypinyin import Style, lazy_pinyin

    finals = lazy_pinyin(run[-CONTEXT:], style=Style.FINALS, strict=True)
    return finals[-1] if finals else ""


def final(text: str) -> str | None:
    """Pinyin final (no tone; ü written v) of the last Han character, read in its word's context."""
    run = last_han_run(text)
    return (_run_final(run) or None) if run else None


def rhyme_id(text: str) -> int:
    """Index in NAMES of the text's rhyme class; -1 when it ends in no Han character we can read."""
    f = final(text)
    return FINAL_CLASS.get(f, -1) if f else -1


def rhyme_class(text: str) -> str | None:
    """十三辙 class of a line or word, by name; None when it has none."""
    i = rhyme_id(text)
    return NAMES[i] if i >= 0 else None


def rhymes(a: str, b: str) -> bool:
    i = rhyme_id(a)
    return i >= 0 and i == rhyme_id(b)


def adjacent_pairs(lines: list[str]):
    """(previous, line) for each pair of consecutive non-blank lines inside a section: a blank line
    ends a section (or a song), and no pair spans it."""
    prev = None
    for line in lines:
        line = line.strip()
        if not line:
            prev = None
            continue
        if prev is not None:
            yield prev, line
        prev = line


def adjacent_rhyme_rate(lines: list[str]) -> float:
    """Share of adjacent pairs of lines (inside a section) whose last characters rhyme."""
    pairs = list(adjacent_pairs(lines))
    return sum(rhymes(a, b) for a, b in pairs) / len(pairs) if pairs else 0.0


def parse_class(name: str) -> int:
    """A class by its name (发花) or by a final in it (a, ang, ...)."""
    if name in NAMES:
        return NAMES.index(name)
    if name.lower().replace("ü", "v") in FINAL_CLASS:
        return FINAL_CLASS[name.lower().replace("ü", "v")]
    from ..errors import OptionError

    raise OptionError(f"unknown rhyme class {name!r}: one of {' '.join(NAMES)}, or a final such as ang")
