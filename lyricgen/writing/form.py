"""A song's plan, made before a word is written: its sections, and for every line where it may end
(characters), what it must rhyme with, and for an acrostic the character it starts with.

    --form "verse:4 chorus:4 verse:4 chorus:4"    sections; a chorus is written once, then repeated
    --rhyme auto|AABB|ABAB|AAAA|none               which lines rhyme (auto: the corpus's habit)
    --line-chars 6-10                              characters per line (default: the corpus's spread)
    --acrostic 春夏秋冬                             藏头: line i starts with the i-th character
    --theme TEXT --keywords W1,W2                  a subject: about half the lines carry a keyword (theme.py)

The option parsers (parse_form, parse_line_chars) live beside the config they check (config.py).
"""
import random
from dataclasses import dataclass

from ..config import MAX_LINE_CHARS, REPEATED, RHYME_LINKS, parse_form
from ..errors import OptionError
from . import theme as themes

# A line may end this many characters either side of its drawn length. 0 made greedy lengths match the
# corpus exactly (JS 0.000) but padded or cut lines to hit them ("何必让酒牵着我的双"); blind readers
# scored 2 better on every measure, greedy and sampled (docs/panels.md), at JS 0.080 / 0.074.
LENGTH_SLACK = 2
# Inside the window a candidate line's score (nats per character, song.py) loses this much per character
# it is away from its drawn length: with the window alone lines drifted short of their draws (mean 8.6
# characters against the corpus's 9.1, JS 0.080), and a nudge brings the lengths back to the corpus's
# without cutting a line to fit, as the exact window did. On a 300 s Jay Chou run with the mix (the
# default, 40 songs): greedy JS 0.097 with the old 1 nat spread over the line's tokens, 0.015 with 0.3.
LENGTH_PENALTY = 0.3

@dataclass
class LinePlan:
    section: int  # which section it is in (0, 1, ...); a blank line separates sections
    name: str  # the section's name
    repeat_of: int | None = None  # the earlier line it repeats verbatim (a chorus sung again)
    rhyme_with: int | None = None  # the earlier line whose rhyme it must end on
    rhyme_class: int = -1  # the class it must end on whatever it rhymes with (--rhyme-class); -1: none
    first_char: str | None = None  # --acrostic
    low: int = 1  # it may end once it has this many characters ...
    high: int = MAX_LINE_CHARS  # ... and never runs past this many
    target: int | None = None  # the length drawn for it, inside [low, high] (None: any length alike)
    hard_low: int = 1  # the bounds the window may widen to when nothing fits it
    hard_high: int = MAX_LINE_CHARS
    keyword: str | None = None  # a word of the theme the line is written toward (writing/theme.py)
    theme: object = None  # the song's Theme, by which its candidates are ranked (None: no theme)


def sections_of(form: str | None, lines: int, habits, acrostic: str | None, open_lines: int = 16
                ) -> list[tuple[str, int]]:
    """(name, lines) per section. No form: sections of the corpus's usual length when it has
    sections, else one; with no number of lines given, `open_lines` (the text stops when its token
    budget runs out)."""
    n = lines or (len(acrostic) if acrostic else 0) or open_lines
    if form:
        sections = [(name, count or habits.lines_per_section) for name, count in parse_form(form)]
        first = {}
        for name, count in sections:
            if name == REPEATED and first.setdefault(name, count) != count:
                raise OptionError(f"form: every chorus repeats the first, so it has {first[name]} lines, not {count}")
        total = sum(count for _, count in sections)
        if lines and lines != total:
            raise OptionError(f"lines is {lines} but form has {total} lines; give one of them")
        if acrostic and len(acrostic) != total:
            raise OptionError(f"acrostic has {len(acrostic)} characters but form has {total} lines")
        if acrostic and sum(name == REPEATED for name, _ in sections) > 1:
            raise OptionError("acrostic: a repeated chorus cannot start its lines anew; use a form without "
                              "a second chorus")
        return sections
    if acrostic and lines and lines != len(acrostic):
        raise OptionError(f"acrostic has {len(acrostic)} characters but lines is {lines}")
    size = habits.lines_per_section if habits.blank_lines else n
    counts = [size] * (n // size) + ([n % size] if n % size else [])
    if len(counts) > 1 and counts[-1] < 2:  # no one-line section at the end
        counts[-2] += counts.pop()
    return [("verse", c) for c in counts]


def plan_song(sections: list[tuple[str, int]], scheme: str, rhyme_class: int, line_chars: tuple[int, int] | None,
              acrostic: str | None, habits, rng: random.Random, theme=None) -> list[LinePlan]:
    """Every line's plan, section by section; with a theme (writing/theme.py), the keywords its lines
    carry (drawn after everything else, so a song without one is planned exactly as before)."""
    plan: list[LinePlan] = []
    chorus_at = None  # where the first chorus's lines start
    for s, (name, count) in enumerate(sections):
        if name == REPEATED and chorus_at is not None:
            plan += [LinePlan(s, name, repeat_of=chorus_at + j) for j in range(count)]
            continue
        if name == REPEATED:
            chorus_at = len(plan)
        start = len(plan)
        links = rhyme_links(scheme, count, habits, rng)
        group = {}  # line in the section -> its rhyme group's first line
        for j, link in enumerate(links):
            group[j] = group[link] if link is not None else j
            plan.append(LinePlan(s, name, rhyme_with=None if link is None else start + link,
                                 rhyme_class=rhyme_class if group[j] == 0 else -1))
    lengths(plan, line_chars, habits, rng)
    if acrostic:
        for p, ch in zip((p for p in plan if p.repeat_of is None), acrostic):
            p.first_char = ch
    if theme is not None:
        written = [p for p in plan if p.repeat_of is None]
        for p, word in zip(written, themes.plan(theme.words, len(written), rng)):
            p.keyword, p.theme = word, theme
    return plan


def rhyme_links(scheme: str, count: int, habits, rng: random.Random) -> list[int | None]:
    """For each line of a section, the earlier line of the section it rhymes with (None: free).

    auto follows the corpus: a line rhymes with the line before at the corpus's adjacent rate, less
    what chance gives (two free lines rhyme by chance as often as the class shares say); otherwise
    with the line before that, at its ABAB rate."""
    if scheme in RHYME_LINKS:
        return [RHYME_LINKS[scheme](j) for j in range(count)]
    chance = habits.rhyme_chance
    adjacent = max(0.0, (habits.rhyme_adjacent - chance) / (1 - chance))
    alternate = max(0.0, (habits.rhyme_alternate_only / max(1 - habits.rhyme_adjacent, 1e-9) - chance) / (1 - chance))
    links: list[int | None] = []
    for j in range(count):
        u = rng.random()
        if j >= 1 and u < adjacent:
            links.append(j - 1)
        elif j >= 2 and rng.random() < alternate:
            links.append(j - 2)
        else:
            links.append(None)
    return links


def lengths(plan: list[LinePlan], line_chars: tuple[int, int] | None, habits, rng: random.Random) -> None:
    """Each written line's window: a length drawn from the corpus's distribution (inside
    --line-chars when given), +-LENGTH_SLACK, within the hard bounds.

    The draws are stratified over the song (line k of n takes a quantile from the k-th n-th of the
    distribution, in shuffled order), so a song's lengths spread like the corpus's even when short."""
    hard = line_chars or habits.char_bounds()
    dist = [p if hard[0] <= n <= hard[1] else 0.0 for n, p in enumerate(habits.line_chars)]
    dist += [0.0] * (hard[1] + 1 - len(dist))
    if sum(dist) <= 0:  # the corpus has no lines in --line-chars: every length in it alike
        dist = [1.0 if hard[0] <= n <= hard[1] else 0.0 for n in range(hard[1] + 1)]
    total = sum(dist)
    written = [p for p in plan if p.repeat_of is None]
    order = list(range(len(written)))
    rng.shuffle(order)
    for p, k in zip(written, order):
        target = _quantile(dist, total * (k + rng.random()) / len(written))
        slack = 0 if line_chars and hard[0] == hard[1] else LENGTH_SLACK
        p.low, p.high = max(hard[0], target - slack), min(hard[1], target + slack)
        p.target = target
        p.hard_low, p.hard_high = hard


def _quantile(dist: list[float], u: float) -> int:
    total = 0.0
    for n, p in enumerate(dist):
        total += p
        if total >= u and p > 0:
            return n
    return max(n for n, p in enumerate(dist) if p > 0)
