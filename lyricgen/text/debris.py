"""Corpus debris: lines of a lyrics file that are not lyrics, recognised so training can leave them out.

Scraped lyrics carry two kinds of them, and a model trained on them writes them as lyrics
('周杰伦 简单', '无双 周杰伦'):

    credit   a credit or source line: 作词/作曲/编曲/词/曲/监制/制作人/和声/演唱 ..., with or without a
             colon (full-width or ASCII), 歌词提供, LRC tags, QQ, www, .com
    title    a title/artist line: 1 to 3 whitespace-separated fields, short, one of which is a name
             of the corpus (below)

No artist is written down here. The names of a corpus are the names given in its credit lines, and
the artist names: a field that recurs as a whole whitespace-separated field of several short lines
and that jieba tags as a person's name (nr); but not a "name" its lyric lines sing often, which is a
word. A lyric line that mentions a name inside a sentence is a lyric and is kept. `find_debris` reads a whole corpus; `is_debris` asks about one line once the
names are known (`lyricgen report` can call it).
"""
import re
from collections import Counter
from dataclasses import dataclass, field

KINDS = ("title", "credit")
MAX_FIELDS = 3  # a title/artist line: title, artist, and perhaps an album or a featured singer
MAX_TITLE_CHARS = 20  # non-space characters of a title/artist line
MIN_ARTIST_LINES = 3  # short lines an unnamed field must recur in to be taken for the artist
SUNG_SHARE = 1 / 2000  # on a large corpus, a name in more lyric lines than this share is a word

# roles a credit line names; matched at the start of a line with a colon after them
_ROLES = ("作词", "作曲", "编曲", "填词", "词曲", "作詞", "編曲", "詞曲", "词", "曲", "詞", "监制", "監製",
          "制作人", "製作人", "制作", "製作", "和声", "和聲", "和音", "演唱", "原唱", "主唱", "歌手", "混音",
          "录音", "錄音", "配唱", "吉他", "贝斯", "貝斯", "鼓", "弦乐", "弦樂", "键盘", "鍵盤", "专辑", "專輯",
          "出品", "发行", "發行", "歌词", "歌詞", "lyrics", "lyricist", "music", "composer", "arranger",
          "arranged by", "producer", "produced by", "vocal", "vocals")
# roles that mark a credit line without a colon when only names follow ("作曲 周小北")
_STRONG_ROLES = ("作词", "作曲", "编曲", "填词", "词曲", "作詞", "編曲", "詞曲", "监制", "監製", "制作人", "製作人")
# sources: a line holding one is a credit line wherever it stands
_SOURCES = (r"歌[词詞](?:提供|来源|來源|网|網)", r"\blrc\b", r"\bqq\s*[:：号群]?\s*\d", r"www\.", r"\.(?:com|cn|net)\b")


def _any(words) -> str:
    return "(?:" + "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)) + ")"


_ROLE_RUN = _any(_ROLES) + r"(?:\s*[/／、&＆]?\s*" + _any(_ROLES) + ")*"  # 作词作曲, 词/曲
_ROLE_AT_START = re.compile(r"^\s*[\[【(（]?\s*" + _ROLE_RUN + r"\s*[:：]", re.IGNORECASE)
_STRONG_AT_START = re.compile(r"^\s*" + _any(_STRONG_ROLES) + r"(?:\s*[/／、&＆]?\s*" + _any(_ROLES) + r")*\s",
                              re.IGNORECASE)
_SOURCE = re.compile("|".join(_SOURCES), re.IGNORECASE)
_LRC_TAG = re.compile(r"^\s*\[(?:ti|ar|al|by|au|offset|re|ve|length)\s*:", re.IGNORECASE)
_ROLE_SPLIT = re.compile(_any(set(_ROLES) | {"歌词提供", "歌詞提供", "歌词来源", "歌詞來源", "提供"}) + r"\s*[:：]?",
                         re.IGNORECASE)
_SITE = re.compile(r"[^\s:：]*(?:网|網|站|\.com|\.cn|\.net)", re.IGNORECASE)  # a source, not a person
_NAME_SEPARATORS = re.compile(r"[\s/／、,，;；&＆|｜+＋·・()（）\[\]【】<>《》\"'“”:：]+")
_LATIN_SPACE = re.compile(r"(?<=[A-Za-z])\s+(?=[A-Za-z])")  # "Tom Lee" is one name
_NOT_NAMES = re.compile(r"\b(?:qq|lrc|by|www|com|cn|net)\b", re.IGNORECASE)
_NAME = re.compile(r"^(?:[\u3400-\u9fff]{2,4}|[A-Za-z][A-Za-z.\- ]{1,29})$")


@dataclass
class Debris:
    """What find_debris made of a corpus: the lines kept, how many of each kind it left out, and the
    names it found (credit names first, in the order met, then the artist names)."""
    kept: list[str]
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    names: list[str] = field(default_factory=list)

    @property
    def left_out(self) -> int:
        return sum(self.counts.values())


def is_credit(line: str) -> bool:
    """A credit or source line: roles with a colon at its start (作词：, 词/曲:), an LRC tag, a
    source anywhere (歌词提供, www., .com, QQ 123), or a strong role at its start followed by
    names only ("作曲 周小北", not "作曲家的梦想" or "作词 是我的梦想")."""
    if _LRC_TAG.match(line) or _ROLE_AT_START.match(line) or _SOURCE.search(line):
        return True
    if not _STRONG_AT_START.match(line) or len("".join(line.split())) > MAX_TITLE_CHARS:
        return False
    rest = _split_names(_ROLE_SPLIT.sub(" ", line))
    return bool(rest) and all(_NAME.match(p) for p in rest)


def _split_names(text: str) -> list[str]:
    return [p.replace("\x00", " ") for p in _NAME_SEPARATORS.split(_LATIN_SPACE.sub("\x00", text)) if p]


def credit_names(line: str) -> list[str]:
    """The names a credit line gives: what stands between its roles, split at separators; web
    sites (晚风歌词网, x.com) are not names."""
    if _LRC_TAG.match(line):
        tag, _, value = line.strip().strip("[]").partition(":")
        parts = _split_names(value) if tag.strip().lower() in ("ar", "by", "au") else []
    else:
        parts = _split_names(_NOT_NAMES.sub(" ", _ROLE_SPLIT.sub(" ", _SITE.sub(" ", line))))
    return [p for p in parts if _NAME.match(p)]


def title_fields(line: str) -> list[str] | None:
    """The fields of a line short enough to be a title/artist line, else None."""
    fields = line.split()
    if not 1 <= len(fields) <= MAX_FIELDS or sum(map(len, fields)) > MAX_TITLE_CHARS:
        return None
    return fields


def is_title(line: str, names) -> bool:
    """A title/artist line: a short line of 1 to 3 fields, one of them a whole name."""
    fields = title_fields(line)
    return fields is not None and any(f in names for f in fields)


def is_debris(line: str, names=()) -> str | None:
    """'credit', 'title' or None (a lyric line), given the corpus's names (find_debris finds them)."""
    if not line.strip():
        return None
    if is_credit(line):
        return "credit"
    if is_title(line, names):
        return "title"
    return None


def artist_names(lines: list[str], known=(), is_person=None) -> list[str]:
    """Fields that recur as a whole field of at least MIN_ARTIST_LINES distinct short lines of two
    or more fields and that `is_person` (jieba's nr by default) calls a name. (A name alone on a
    line is a title/artist line too, once found; alone, it is no evidence: choruses repeat lines.)"""
    counts = Counter()
    for line in {" ".join(line.split()) for line in lines}:
        fields = title_fields(line)
        if fields and len(fields) >= 2:
            counts.update(f for f in set(fields) if _NAME.match(f) and f not in known)
    candidates = sorted(f for f, n in counts.items() if n >= MIN_ARTIST_LINES)
    if not candidates:
        return []
    if is_person is None:
        from .tokenizer import is_person_name as is_person
    return [f for f in candidates if is_person(f)]


def find_debris(lines: list[str], is_person=None) -> Debris:
    """The corpus without its credit and title/artist lines, their counts, and the names found."""
    names: list[str] = []
    for line in lines:
        if is_credit(line):
            names.extend(n for n in credit_names(line) if n not in names)
    names += artist_names(lines, names, is_person)
    found = set(names) - set(sung_too_often(lines, names))
    names = [n for n in names if n in found]
    debris = Debris(kept=[])
    for line in lines:
        kind = is_debris(line, found)
        if kind is None:
            debris.kept.append(line)
        else:
            debris.counts[kind] += 1
    debris.names = names
    return debris


def sung_too_often(lines: list[str], names: list[str]) -> list[str]:
    """Names that distinct lyric lines (not credit or title/artist lines) hold more often than a
    name would: more than 3 of them, or one in SUNG_SHARE of a large corpus. Such a "name" is a
    word of the lyrics (a credit to 晚风 must not ban 晚风), and lines holding it as a field are kept.
    Distinct lines, as a chorus that sings a name repeats the same few."""
    if not names:
        return []
    pattern = re.compile(_any(names))
    sung = Counter()
    for line in set(lines):
        fields = title_fields(line)
        if not (is_credit(line) or fields and any(f in names for f in fields)):
            sung.update(set(pattern.findall(line)))
    limit = max(3, len(lines) * SUNG_SHARE)
    return [n for n in names if sung[n] > limit]


def summary(counts: dict[str, int]) -> str:
    """'left out 12 debris lines (9 title/artist, 3 credits)'."""
    total = sum(counts.values())
    credits = counts.get("credit", 0)
    parts = [f"{counts.get('title', 0)} title/artist", f"{credits} credit{'s' if credits != 1 else ''}"]
    return f"left out {total} debris line{'s' if total != 1 else ''} ({', '.join(parts)})"
