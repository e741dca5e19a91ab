"""The quality report: write songs from a list of start words, greedy and sampled, and measure them
against the corpus's habits, beside the same figures for real lines of the corpus when given.

    report = song_report(writer, words, lines=8, reference=held_out_lines)
    print(format_report(report))

Figures, per set of songs (each written from one start word):

    rhyme_rate      share of adjacent line pairs inside a section whose last Han characters rhyme (十三辙)
    scheme_rate     with an explicit --rhyme scheme: share of the pairs it asks to rhyme that do
    mean_chars      characters per line (spaces excluded)
    js_distance     Jensen-Shannon distance (base 2, one bin per character count) between the lines'
                    length distribution and the corpus's, corrected for sample size: the raw distance
                    of N lines drawn from the corpus itself is not 0 but js_floor (about 0.12 for
                    320 lines), so the divergence expected of such a sample is subtracted before the
                    square root; js_distance_raw is the plain plug-in figure
    fragments       share of lines of FRAGMENT_CHARS (2) characters or fewer
    copied_lines    share of lines that are training lines
    span8_lines     share of lines sharing a span of 8 characters with a training line
    longest_copy    the longest span (characters) any line shares with a training line
    distinct_2      distinct character bigrams / character bigrams inside lines, averaged over songs
    fused_lines     share of lines with two words fused on a shared character (风火轮廓, words.py)
    dangling_lines  share of lines that end inside a phrase (飞檐走, 尝一; words.py)
    phrase_songs    the largest share of songs that hold one 4-character phrase (top_phrase: which)
    theme_fit       mean cosine of each line's word vector with its start word's (text/wordvectors.py;
                    only with the `theme` extra installed): does the song stay on its subject
    adjacent_fit    mean cosine of consecutive lines' word vectors: do the lines follow each other
                    (the reference's real passages give the figure to compare with)
    loop_songs      songs with a line repeated three times in a row (a repeated chorus is a section
                    after a blank line, so it never counts)
    newcomer_lines  share of lines after a song's first that name a person (他, 她, 妈妈 ...; cast.py)
                    no earlier line of the song named: the people changing line by line

The reference lines are cut into songs where they have blank lines, else into songs of `lines` lines.

With a checkpoint that has a reranker (judge.py), the report also gives its held-out accuracy, as
fitted at training time: the share of (real line, model line) pairs, on validation contexts it was
not fitted on, where the real line scores higher; beside it the same share for the ranking it
replaces (mean log-probability less word penalties), and whether the songs were ranked by it.
"""
import math
import random
import time
from collections import Counter

from ..config import RHYME_LINKS, SAMPLE_PRESET
from ..fitted.habits import FRAGMENT_CHARS, count_chars
from ..text.rhyme import adjacent_rhyme_rate, rhyme_id
from ..text.tokenizer import normalize_line
from .cast import newcomers, persons
from .loops import repeats_a_line
from .phrases import phrases_of
from .song import COPY_SPAN
from .words import shared_words

# The songs of a report are written one after another like a session's: each avoids the stock phrases
# of the songs before it (song.py's PhraseMemory), unless the options say otherwise
REPORT_MEMORY = 64
FLOOR_DRAWS = 200  # samples drawn from the corpus's distribution to estimate the distance's floor


# Start words for a vocabulary of characters, which has no words to pick from: common words of
# Chinese lyrics, chosen for this project (not taken from any corpus)
START_WORDS = ("月光 爱情 雨 天空 回忆 微笑 思念 风 梦 故事 夜 星星 海 花 心 眼泪 秋天 春天 远方 时间 "
               "城市 街 窗外 温柔 孤单 幸福 青春 离开 等待 相遇 未来 黑夜 阳光 晚风 旅行 告白 约定 永远 "
               "少年 明天").split()


def default_words(vocab, n: int) -> list[str]:
    """n typical start words: the vocabulary's most frequent entries of two or more characters (a
    vocabulary of words), else START_WORDS whose characters the vocabulary knows (one of characters)."""
    words = [t for t in vocab.most_frequent(max(n * 5, 200)) if count_chars(t) >= 2]
    if len(words) < n:
        words += [w for w in START_WORDS if w not in words and all(ch in vocab for ch in w)]
    return words[:n]


def sections(lines: list[str]) -> list[list[str]]:
    """Blank-separated blocks of non-blank lines."""
    blocks, block = [], []
    for line in lines + [""]:
        line = normalize_line(line)
        if line:
            block.append(line)
        elif block:
            blocks.append(block)
            block = []
    return blocks


def scheme_rate(songs: list[list[str]], scheme: str) -> float | None:
    """Share of the line pairs an explicit scheme asks to rhyme (inside each section) that rhyme."""
    if scheme not in RHYME_LINKS or scheme == "none":
        return None
    asked = hit = 0
    for song in songs:
        for block in sections(song):
            ids = [rhyme_id(line) for line in block]
            for j in range(len(block)):
                k = RHYME_LINKS[scheme](j)
                if k is not None:
                    asked += 1
                    hit += ids[j] >= 0 and ids[j] == ids[k]
    return hit / asked if asked else None


def js_divergence(p: list[float], q: list[float]) -> float:
    """Jensen-Shannon divergence in bits (0 .. 1)."""
    size = max(len(p), len(q))
    p, q = p + [0.0] * (size - len(p)), q + [0.0] * (size - len(q))
    total = 0.0
    for a, b in zip(p, q):
        m = (a + b) / 2
        if a > 0:
            total += a * math.log2(a / m) / 2
        if b > 0:
            total += b * math.log2(b / m) / 2
    return max(total, 0.0)


def length_distribution(lengths: list[int], size: int) -> list[float]:
    counts = [0] * size
    for n in lengths:
        counts[min(n, size - 1)] += 1
    return [c / len(lengths) for c in counts] if lengths else []


def js_floor(corpus: list[float], n: int, seed: int = 0) -> float:
    """The divergence expected between n lengths drawn from `corpus` and `corpus` itself."""
    rng = random.Random(seed)
    values = range(len(corpus))
    draws = [js_divergence(length_distribution(rng.choices(values, corpus, k=n), len(corpus)), corpus)
             for _ in range(FLOOR_DRAWS)]
    return sum(draws) / len(draws)


def song_figures(songs: list[list[str]], habits, originality=None, scheme: str = "auto") -> dict:
    """Every figure of a set of songs (each a list of lines, "" between sections)."""
    lines = [normalize_line(x) for song in songs for x in song if normalize_line(x)]
    if not lines:
        return {"songs": len(songs), "lines": 0}
    chars = [count_chars(x) for x in lines]
    flat = [x for song in songs for x in [*song, ""]]
    raw = js_divergence(length_distribution(chars, len(habits.line_chars)), habits.line_chars)
    floor = js_floor(habits.line_chars, len(lines))
    figures = {
        "songs": len(songs), "lines": len(lines),
        "rhyme_rate": adjacent_rhyme_rate(flat),
        "scheme_rate": scheme_rate(songs, scheme),
        "mean_chars": sum(chars) / len(chars),
        "js_distance": math.sqrt(max(raw - floor, 0.0)),
        "js_distance_raw": math.sqrt(raw),
        "js_floor": math.sqrt(floor),
        "fragments": sum(n <= FRAGMENT_CHARS for n in chars) / len(chars),
        "distinct_2": sum(distinct_2(song) for song in songs) / len(songs),
        "loop_songs": sum(repeats_a_line("\n".join(song)) for song in songs),
        "newcomer_lines": newcomer_share(songs),
        **word_figures(lines, songs),
    }
    if originality is not None:
        spans = [originality.longest_copy(x) for x in lines]
        figures.update(copied_lines=sum(map(originality.is_training_line, lines)) / len(lines),
                       span8_lines=sum(s >= COPY_SPAN for s in spans) / len(lines), longest_copy=max(spans))
    return figures


def word_figures(lines: list[str], songs: list[list[str]]) -> dict:
    """Whole words (words.py) and stock phrases: the share of lines with fused words or a dangling
    end, and the largest share of songs holding one 4-character phrase (with that phrase)."""
    words = shared_words()
    held = Counter(g for song in songs for g in phrases_of("\n".join(song)))
    phrase, n = max(held.items(), key=lambda kv: (kv[1], kv[0]), default=("", 0))
    return {"fused_lines": sum(map(words.fused, lines)) / len(lines),
            "dangling_lines": sum(map(words.dangling, lines)) / len(lines),
            "phrase_songs": n / len(songs), "top_phrase": phrase}


def newcomer_share(songs: list[list[str]]) -> float | None:
    """The share of lines after a song's first that name a person no earlier line of the song named
    (cast.py): the speaker and the people changing line by line."""
    new = total = 0
    for song in songs:
        seen: set[str] = set()
        for k, line in enumerate(x for x in song if normalize_line(x)):
            total += k > 0
            new += k > 0 and newcomers(line, seen) > 0
            seen |= persons(line)
    return new / total if total else None


def distinct_2(song: list[str]) -> float:
    grams = [x[i:i + 2] for x in (line.replace(" ", "") for line in song) for i in range(len(x) - 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def corpus_figures(habits) -> dict:
    """What the checkpoint knows of its corpus (its habits), in the report's terms."""
    return {"rhyme_rate": habits.rhyme_adjacent, "alternate_rate": habits.rhyme_alternate,
            "mean_chars": habits.mean_chars, "fragments": sum(habits.line_chars[:FRAGMENT_CHARS + 1]),
            "rhyme_chance": habits.rhyme_chance, "source": habits.source}


def reference_songs(lines: list[str], song_lines: int) -> list[list[str]]:
    """Real lines as songs: their own blank-separated blocks, or runs of song_lines lines."""
    lines = [normalize_line(x) for x in lines]
    if sum(1 for x in lines if not x) >= 2:
        return [block for block in sections(lines)]
    body = [x for x in lines if x]
    return [body[i:i + song_lines] for i in range(0, len(body), song_lines)]


def song_report(writer, words: list[str], lines: int = 8, reference: list[str] | None = None,
                options: dict | None = None, modes=("greedy", "sampled")) -> dict:
    """Songs from every word, for each mode ("greedy": the defaults; "sampled": the --sample preset
    with seed i for word i), measured; `options` are generation options for both (e.g. rhyme)."""
    options = {"phrase_memory": REPORT_MEMORY, **(options or {})}
    scheme = options.get("rhyme", "auto")
    report = {"words": list(words), "lines": lines, "options": options, "corpus": corpus_figures(writer.habits)}
    for mode in modes:
        songs, t0 = [], time.perf_counter()
        for k, word in enumerate(words):
            extra = {**SAMPLE_PRESET, "seed": k} if mode == "sampled" else {}
            c = writer.generate(word, **{"lines": lines, **extra, **options})[0]
            songs.append(c.text.split("\n"))
        seconds = time.perf_counter() - t0
        report[mode] = {**song_figures(songs, writer.habits, writer.originality, scheme),
                        **fit_figures(songs, words), "seconds_per_song": seconds / max(len(words), 1)}
        report.setdefault("texts", {})[mode] = ["\n".join(song) for song in songs]
    reranker = getattr(writer, "reranker", None)
    if reranker is not None:
        report["reranker"] = reranker_figures(reranker, options.get("rerank", True))
    if reference is not None:
        real = reference_songs(reference, lines)
        report["reference"] = {**song_figures(real, writer.habits, writer.originality, scheme),
                               **fit_figures(real, None)}
    return report


def fit_figures(songs: list[list[str]], words: list[str] | None) -> dict:
    """theme_fit (with the songs' start words) and adjacent_fit, by the word vectors; {} without them."""
    from ..errors import LyricgenError
    from ..text import wordvectors
    from .theme import line_vector

    try:
        vectors = wordvectors.load()
    except LyricgenError:  # the `theme` extra is not installed: nothing to measure fit with
        return {}
    theme, adjacent = [], []
    for k, song in enumerate(songs):
        vs = [line_vector(x, vectors) for x in song if x.strip()]
        t = line_vector(words[k], vectors) if words is not None else None
        theme += [float(v @ t) for v in vs if v is not None and t is not None]
        adjacent += [float(a @ b) for a, b in zip(vs, vs[1:]) if a is not None and b is not None]
    mean = lambda xs: sum(xs) / len(xs) if xs else None  # noqa: E731
    return {"theme_fit": mean(theme), "adjacent_fit": mean(adjacent)}


def reranker_figures(reranker, used: bool = True) -> dict:
    """What the checkpoint's reranker (fitted/rerank.py) measured at training time."""
    return {"accuracy": reranker.accuracy, "base_accuracy": reranker.base_accuracy, "contexts": reranker.contexts,
            "pairs": reranker.pairs, "fit_contexts": reranker.fit_contexts, "seconds": reranker.seconds,
            "used": bool(used)}


ROWS = [("rhyme_rate", "adjacent lines that rhyme", "{:.2f}"), ("scheme_rate", "pairs the scheme asks that rhyme",
                                                                  "{:.2f}"),
        ("mean_chars", "characters per line", "{:.1f}"), ("js_distance", "line lengths: JS distance to corpus",
                                                          "{:.3f}"),
        ("js_distance_raw", "  (raw, before the sample-size floor)", "{:.3f}"),
        ("fragments", "fragment lines (<= 2 characters)", "{:.1%}"),
        ("copied_lines", "copied lines (training lines)", "{:.1%}"),
        ("span8_lines", "lines sharing 8 characters with training", "{:.1%}"),
        ("longest_copy", "longest copied span (characters)", "{}"), ("distinct_2", "distinct-2 (per song)", "{:.2f}"),
        ("fused_lines", "lines with fused words (words.py)", "{:.1%}"),
        ("dangling_lines", "lines ending inside a phrase", "{:.1%}"),
        ("phrase_songs", "most songs holding one 4-char phrase", "{:.1%}"),
        ("theme_fit", "lines' fit to the start word (cosine)", "{:.3f}"),
        ("adjacent_fit", "adjacent lines' fit (cosine)", "{:.3f}"),
        ("newcomer_lines", "lines naming someone new to the song", "{:.1%}"),
        ("loop_songs", "songs with a line 3x in a row", "{}"), ("seconds_per_song", "seconds per song", "{:.2f}")]


def format_report(report: dict) -> str:
    """The figures as a table: the corpus, each mode, the reference."""
    columns = [c for c in ("corpus", "greedy", "sampled", "reference") if c in report]
    width = max(len(label) for _, label, _ in ROWS)
    out = [f"{'':<{width}}  " + "  ".join(f"{c:>9}" for c in columns)]
    for key, label, fmt in ROWS:
        cells = []
        for c in columns:
            value = report[c].get(key)
            cells.append(f"{fmt.format(value) if value is not None else '-':>9}")
        if any(cell.strip() != "-" for cell in cells):
            out.append(f"{label:<{width}}  " + "  ".join(cells))
    r = report.get("reranker")
    if r and r["accuracy"] is not None:
        base = ""
        if r["base_accuracy"] is not None:
            base = f" (log-probability less word penalties: {r['base_accuracy']:.1%})"
        out.append(f"reranker: real line ranked above the model's {r['accuracy']:.1%} of {r['pairs']} held-out pairs "
                   f"({r['contexts']} contexts){base}; fitted in {r['seconds']:.0f} s; "
                   + ("songs ranked by it" if r["used"] else "not used (--no-rerank)"))
    n = report.get("greedy", report.get("sampled", {})).get("songs", 0)
    out.append(f"{n} songs of {report['lines']} lines per mode; corpus = the checkpoint's habits "
               f"({report['corpus']['source']}); sampled = --sample with seed i for word i")
    return "\n".join(out)
