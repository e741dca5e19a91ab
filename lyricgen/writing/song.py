"""Writing a song line by line: the plan (form.py) says where each line may end and what it rhymes
with; the line search (lines.py) offers candidates; the best one that is original is chosen and fed
to the model, so the next line continues from it.

The search never stretches a span of a training line past COPY_BOUND characters (phrases.py). Its
candidates are ranked by what the song explains of them: the model's log-probability of the line after
the song so far, less PRIOR_WEIGHT times its log-probability with no song before it, per character,
plus END_WEIGHT times the log-probability of its line break; less penalties for fused words or a
dangling end (words.py), for the phrases of the songs written before (phrases.PhraseMemory), for
missing the drawn length, for a second pause, and (greedy, under the corpus's rhyme habit) for ending
off the planned rhyme.
A candidate line is passed over when it repeats an earlier line of the song, loops inside itself,
shares a phrase of SONG_SPAN characters with an earlier line, copies the corpus (a training line, or
a span of more than COPY_BOUND characters of one), or holds a phrase already in MAX_SONGS earlier songs. When no candidate is left, the search widens (more
candidates, up to WIDEN times); when even that finds none, the line gives up those preferences,
then its rhyme, then its length window, in that order. --no-copy never gives up on training lines.

A chorus is written once; where the form repeats it, its tokens are fed to the model again and
written out verbatim. A blank line separates sections (and is fed to the model when its corpus had
blank lines, so it knows what follows one).

`SongWriter.write` is a generator: it yields each committed line's token texts (its line break
included), and "" after every step of the line search, so a consumer streams by iterating and cancels
by no longer doing so; it returns the Song. The song so far is one object, a Draft.
"""
import random
import zlib
from dataclasses import dataclass, field, replace

import torch

from ..config import parse_line_chars, token_budget
from ..errors import OptionError
from ..fitted.habits import count_chars
from ..text.rhyme import parse_class
from ..text.tokenizer import normalize_line
from .cast import newcomers, persons
from .form import LENGTH_PENALTY, plan_song, sections_of
from .generate import resolve_start
from .judge import Judge
from .lines import SPACE_PENALTY, LineRequest, LineSearch, SongContext
from .loops import repeats_a_phrase
from .phrases import COPY_BOUND, CopyGuard, PhraseMemory
from .sampling import make_generator
from .theme import FIT_WEIGHT, fit, keyword_bias, song_theme, target
from .words import shared_words

COPY_SPAN = 8  # a line sharing this many characters with a training line is a copy (report.py's span8_lines)
SONG_SPAN = 5  # a line sharing this many characters with an earlier line of the song repeats it
WIDEN = 4  # the search widens to this many times the candidates before giving anything up
MAX_CANDIDATES = 512
FALLBACK_TOP_P = 0.95  # the sampled fallback for a rhyme the search cannot reach (a beam, or cold rows)
THEMES_REMEMBERED = 256
# Alternatives for one line search this many rows per alternative asked for (at least 16, at most
# --line-candidates): the page wants 5 in a few tenths of a second, and a search's cost grows with its
# rows (the masks and word checks run per row); 4 rows per line shown still leaves a choice.
ROWS_PER_ALTERNATIVE, MIN_ALTERNATIVE_ROWS = 4, 16
# Kept lines and no --lines or --form: a song of this many lines (the page's and the report's), or as
# many as the last kept line needs.
KEPT_SONG_LINES = 8
# How candidate lines are ranked (_ranked), chosen by blind panel N (docs/panels.md):
# PRIOR_WEIGHT: a line's score is log p(line | the song so far) less this times log p(line | nothing)
#   (its tokens after a bare song start, the line break left out): pointwise mutual information with the
#   song, as Li et al. (2016, "A Diversity-Promoting Objective for Neural Conversation Models") rank
#   replies. A line the model would write anywhere (a famous line it memorised, "我站在门口 看了很久")
#   gains nothing from the song; a line that follows from it does.
# END_WEIGHT: the model's log-probability of the line break after the line counts this much more, whole,
#   not spread over its tokens: a line that stops mid-phrase ("可照不亮 我就") is one the model would not
#   end there, and the mean per token hid that.
# Per character: the score is divided by the line's characters plus its break, not its tokens, so that
#   a likely space does not raise a line's mean; a line's second and later spaces cost SPACE_PENALTY.
PRIOR_WEIGHT, END_WEIGHT = 0.5, 0.5
# RHYME_COST: under the corpus's own rhyme habit (--rhyme auto, no --rhyme-class) a greedy line may end
#   off its planned rhyme at this cost: the beam offers lines of both kinds, and a forced rhyme no longer
#   beats a whole line by a little ("爱在月" for 爱在你身边, "我存进了加密的相爱"). Adjacent lines then
#   rhyme 0.57 of the time on the default 300 s Jay Chou run, as its corpus's do (0.56; 0.65 forced), and
#   blind readers scored the 15 of 40 songs it changed 2.58 / 1.79 / 1.88 against 2.21 / 1.62 / 1.83
#   (fluency / coherence / meaning, panel R). Lines drawn from the beam (DRAW_BELOW) have it soft too;
#   rows sampled token by token end where they draw the line break, so there a soft rhyme would only
#   shorten lines (JS 0.128): the rhyme stays hard, as it does for a scheme asked for.
# PRIOR_TOP: the prior is computed for this many candidates, the best by the rest of the score (a beam
#   ends hundreds of lines, and scoring them all took greedy songs from 1.3 to 2.2 s).
RHYME_COST, PRIOR_TOP = 1.0, 64
# END_FLOOR: a candidate whose line break the model gives less than this log-probability (e^-1.6 = 0.2)
#   is one it would not end there ("我竟然有点羡", "我们终于可以", "看太阳一下"): the choice takes it
#   only when no candidate of any pass ends whole (the strict pass gives it up first). On the default
#   300 s Jay Chou run, 7 of the 8 greedy lines below it in 12 songs were cut mid-phrase, and 1 of about
#   90 above it; blind panels U and V (4 readers each, docs/panels.md) scored the floor at or above the
#   songs without it on every measure, greedy and sampled.
END_FLOOR = -1.6
# CAST_PENALTY: a line that names a person no earlier line of the song named (他, 她, 妈妈, 书生 ...;
#   cast.py) loses this much per such person. Lines of the Jay Chou corpus bring someone new into their
#   8-line passage 3.4% of the time; the default 300 s model's greedy lines did 11-14% and sampled ones
#   13-21%, and every panel's readers named the changing speaker first. With it: 3.6% / 6.0% (12 songs
#   each), and a crossover panel (W, 6 readers, 24 songs per system) scored it higher on every measure,
#   greedy and sampled (docs/panels.md).
CAST_PENALTY = 1.0
# Sampling below temperature 1 draws each line from the candidates of the greedy beam, with probability
# proportional to exp(score x characters / temperature) (the line's score per character, times the
# characters of its drawn length: about its log-probability, rescaled as the choice rescores it, with
# every candidate counted at one length so that a short line is not likelier for being short: counted at
# its own length, sampled lines averaged 8.5 characters on the default 300 s Jay Chou run against the
# corpus's 9.1; at one length, 9.1), by the Gumbel-max trick; top-k and top-p
# keep the k likeliest lines and the smallest set of them that holds p of that probability. Rows
# sampled token by token at temperature 0.5 wrote "我们 都好 很": blind readers scored drawn lines 3.00 /
# 2.08 / 2.08 against 2.33 / 1.50 / 1.54 (fluency / coherence / meaning, panel S), on a par with greedy,
# and each seed still writes its own song. At temperature 1 or above (the model's own spread, and the
# fallback that reaches a rhyme), rows are sampled token by token.
DRAW_BELOW = 1.0


@dataclass
class Song:
    lines: list[str]  # the text's lines, "" between sections
    tokens: int  # tokens written after the start word, line breaks and repeats included
    score: float  # mean log-probability per token of the lines searched (not those given or repeated)
    notes: list[str] = field(default_factory=list)  # e.g. kept lines whose rhymes disagree (rule_groups)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@dataclass
class Draft:
    """The song so far: its plan, the lines written (by plan index), the tokens fed to the model and
    the model's state after them, and what is left of the token budget."""
    plan: list  # form.py's plan, one entry per line
    head: str  # the start word (or the user's first line) as written
    prompt_ids: list[int]  # its tokens, which the first line continues
    logp: torch.Tensor  # (1, V): the model's log-probabilities after the text so far
    state: object  # and its state
    history: list[int]  # every token fed to the model after the line break it starts from
    budget: int  # tokens still allowed
    lines: list[str] = field(default_factory=list)  # the written lines, by plan index
    line_ids: list[list[int]] = field(default_factory=list)
    classes: list[int] = field(default_factory=list)  # the rhyme class each line ends on
    out: list[str] = field(default_factory=list)  # the text's lines, "" between sections
    written: int = 0  # tokens written after the start word, line breaks and repeats included
    logp_sum: float = 0.0  # of the lines searched
    scored: int = 0  # their tokens
    fixed: dict = field(default_factory=dict)  # plan index -> (ids, text): the lines the writer kept
    notes: list[str] = field(default_factory=list)  # what gave way to them (rule_groups)
    lazy: bool = False  # feed() only queues the tokens; read() feeds them all in one pass
    pending: list[int] = field(default_factory=list)

    def feed(self, predictor, ids: list[int]) -> None:
        """The model reads `ids` (at once, or when lazy at the next read()); they count against the budget."""
        if self.lazy:
            self.pending += ids
        else:
            self.logp, self.state = predictor.feed(self.state, ids)
        self.history += ids
        self.budget, self.written = self.budget - len(ids), self.written + len(ids)

    def read(self, predictor) -> None:
        """The queued tokens fed: one pass over a song's kept lines instead of one per line."""
        if self.pending:
            self.logp, self.state = predictor.feed(self.state, self.pending)
            self.pending = []

    def song(self) -> "Song":
        return Song(self.out, self.written, self.logp_sum / self.scored if self.scored else 0.0, self.notes)


class SongWriter:
    """Writes songs from a Predictor, a vocabulary, the corpus's habits and its originality hashes."""

    def __init__(self, predictor, vocab, habits, originality=None, credits=None, reranker=None):
        self.predictor, self.vocab, self.habits, self.originality = predictor, vocab, habits, originality
        self.credits = credits  # names of the corpus's credit lines: never written unless the user did
        self.words = shared_words()
        # judge.py: the checkpoint's reranker (None without one, or one of other features); each request
        # says whether to use it (SongConfig.rerank), passed down: a server's workers share this writer
        self.judge = Judge(reranker, self.words, originality, habits) if Judge.usable(reranker) else None
        self.search = LineSearch(predictor, vocab, habits.token_classes, CopyGuard.of(originality, vocab.tokens),
                                 self.words)
        self.memory = PhraseMemory(0)  # the phrases of the songs written before (remember() sizes it)
        self._themes = {}  # (theme, keywords) -> Theme (_theme)

    def remember(self, texts: list[str], size: int) -> None:
        """The songs of a request, written: their phrases are avoided by the next `size` songs' worth."""
        if self.memory.songs.maxlen != size:
            self.memory = PhraseMemory(size)
        for text in texts:
            self.memory.add(text)

    def check(self, start: str, structure, song) -> None:
        """Options that need the vocabulary: every acrostic character must be one it can write, and
        every kept line must fit the song and be writable."""
        if song.acrostic:
            missing = [ch for ch in dict.fromkeys(song.acrostic) if not bool(self.search.starts_with(ch).any())]
            if missing:
                raise OptionError(f"acrostic: the model cannot start a line with {''.join(missing)} (not in its "
                                  "vocabulary)")
            if not normalize_line(start).startswith(song.acrostic[0]):
                raise OptionError(f"acrostic: the start word must begin with {song.acrostic[0]!r}, the first "
                                  "line's character")
        if song.first_line and not normalize_line(song.first_line).startswith(normalize_line(start)):
            raise OptionError("first_line must begin with the start word")
        if song.keep:
            self.kept(structure, song)

    def kept(self, structure, song) -> dict[int, tuple[list[int], str]]:
        """The kept lines by plan index: (ids, text). OptionError (keep: ...) for a line past the
        song's last or one with characters the model does not know."""
        total = self.line_count(structure, song)
        fixed = {}
        for k, text in song.kept().items():
            if k > total:
                raise OptionError(f"keep: line {k} is out of range: the song has {total} lines")
            unknown = [ch for ch in dict.fromkeys(text.replace(" ", "")) if ch not in self.vocab.index]
            if unknown:
                raise OptionError(f"keep: line {k} has characters the model does not know: {''.join(unknown)}")
            fixed[k - 1] = (resolve_start(text, self.vocab)[0], text)
        return fixed

    def line_count(self, structure, song) -> int:
        """How many lines the song's plan has (its blank lines not counted)."""
        return sum(n for _, n in self._sections(structure, song))

    def _sections(self, structure, song) -> list[tuple[str, int]]:
        open_lines = max((token_budget(structure, song) or 0) // 2, 1)  # no more lines than this can fit
        lines = structure.lines
        if not lines and song.keep and not song.form and not song.acrostic:
            lines = max(KEPT_SONG_LINES, *song.kept())  # kept lines: a whole song, reaching the last of them
        return sections_of(song.form, lines, self.habits, song.acrostic, open_lines)

    def plan(self, start: str, structure, song, generator):
        """The song's plan, drawn from a generator of its own: the sampling seed's, or for greedy
        decoding one seeded by the start word, so that greedy output stays deterministic."""
        seed = generator.initial_seed() if generator is not None else zlib.crc32(start.encode("utf-8"))
        rng = random.Random(seed)
        rhyme_class = parse_class(song.rhyme_class) if song.rhyme_class else -1
        line_chars = parse_line_chars(song.line_chars) if song.line_chars else None
        return plan_song(self._sections(structure, song), song.rhyme, rhyme_class, line_chars, song.acrostic,
                         self.habits, rng, self._theme(start, song))

    def _theme(self, start: str, song):
        """song_theme, remembered: expanding a theme takes a nearest-neighbour search over 129,691 word
        vectors (~35 ms), and a writer at the page asks for the same theme request after request."""
        if song.theme is None and song.keywords is None:
            return None
        key = (song.theme or start, song.keywords)
        theme = self._themes.get(key)  # read once: another worker may clear the dict meanwhile
        if theme is None:
            if len(self._themes) >= THEMES_REMEMBERED:
                self._themes.clear()
            theme = self._themes[key] = song_theme(start, song, self.vocab)
        return theme

    def draft(self, start: str, prompt_ids: list[int], sampling, structure, song, generator) -> Draft:
        """A song not yet written: its plan (kept lines ruling their rhyme groups) and the model
        primed with the start word (or the first line, given or kept)."""
        limit = token_budget(structure, song)
        logp, state = self.predictor.start([self.vocab.line_break_id] + list(prompt_ids))
        draft = Draft(self.plan(start, structure, song, generator), normalize_line(song.opening() or start),
                      list(prompt_ids), logp, state, list(prompt_ids), limit if limit is not None else 10**9)
        if song.keep:
            draft.fixed = self.kept(structure, song)
            classes = {i: self._class_of(ids) if i else self._class_of_text(text)
                       for i, (ids, text) in draft.fixed.items()}
            draft.notes = rule_groups(draft.plan, classes)
        return draft

    @torch.no_grad()
    def write(self, start: str, prompt_ids: list[int], sampling, structure, song):
        """One song beginning with `start` (or with its first line, given or kept): yields each
        committed line's token texts, its line break included ("" after each search step), and
        returns the Song."""
        generator = make_generator(sampling)
        draft = self.draft(start, prompt_ids, sampling, structure, song, generator)
        yield from self._lines(draft, len(draft.plan), sampling, generator, structure, song)
        return draft.song()

    @torch.no_grad()
    def alternatives(self, start: str, prompt_ids: list[int], sampling, structure, song, line: int, n: int,
                     current: str = ""):
        """Up to n other lines for line `line` (1-based) of a song whose other lines are all kept
        (song.keep): yields "" after each search step and returns [(ids, text, logp, rank)], best first,
        each fitting the plan's length and the rhyme of its group and differing from `current`.

        The rhyme is the song's before the plan's: a plan drawn for this request (rhyme auto draws its
        links) may link the line otherwise than the song it is part of, so when `current` rhymes with
        a line near it (one or two away, same section), the alternatives end on that rhyme."""
        generator = make_generator(sampling)
        draft = self.draft(start, prompt_ids, sampling, structure, song, generator)
        draft.lazy = True  # every line before this one is kept (or a chorus sung again): read them at once
        i = line - 1
        c = self._class_of_text(current) if normalize_line(current) else -1
        near = [j for j in (i - 1, i + 1, i - 2, i + 2) if j in draft.fixed and j >= 0
                and draft.plan[j].section == draft.plan[i].section]
        if c >= 0 and any(self._class_of_text(draft.fixed[j][1]) == c for j in near):
            here = draft.plan[i]  # a chorus sung again takes its first singing's window, in its own section
            p = draft.plan[here.repeat_of] if here.repeat_of is not None else here
            draft.plan[i] = replace(p, section=here.section, name=here.name, repeat_of=None, rhyme_class=c,
                                    rhyme_with=None)
        committed = yield from self._lines(draft, i, sampling, generator, structure, song)
        if committed < i:
            return []
        if i and draft.plan[i].section != draft.plan[i - 1].section and self.habits.blank_lines:
            draft.feed(self.predictor, [self.vocab.line_break_id])
        rows = min(song.line_candidates, max(ROWS_PER_ALTERNATIVE * n, MIN_ALTERNATIVE_ROWS))
        found = yield from self._choices(i, draft, sampling, generator, structure, song, want=n,
                                         exclude={normalize_line(current)}, rows=rows)
        return found

    def _lines(self, draft: Draft, until: int, sampling, generator, structure, song):
        """Writes (or feeds, where kept or repeated) the plan's lines before index `until`; yields as
        write() does; returns how many lines it committed."""
        P, lb = self.predictor, self.vocab.line_break_id
        for i, p in enumerate(draft.plan[:until]):
            if i and p.section != draft.plan[i - 1].section:  # a blank line between sections
                if draft.budget < 3:
                    return i
                draft.out.append("")
                if self.habits.blank_lines:
                    draft.feed(P, [lb])
                yield "\n"
            if i and i in draft.fixed:  # a line the writer kept (line 1's primes the model: below)
                ids, text = draft.fixed[i]
                cls = self._class_of(ids)
            elif p.repeat_of is not None:  # a chorus sung again
                ids = draft.line_ids[p.repeat_of]
                if len(ids) + 1 > draft.budget:
                    return i
                text, cls = draft.lines[p.repeat_of], draft.classes[p.repeat_of]
            elif i == 0 and song.opening():
                ids, text = [], draft.head
                cls = self._class_of_text(text)
            else:
                found = yield from self._choices(i, draft, sampling, generator, structure, song)
                if not found:
                    return i
                ids, text, line_logp, _ = found[0]
                cls = self._class_of(list(draft.prompt_ids if i == 0 else []) + ids)
                draft.logp_sum, draft.scored = draft.logp_sum + line_logp, draft.scored + len(ids) + 1
            draft.lines.append(text)
            draft.line_ids.append(ids)
            draft.classes.append(cls)
            draft.out.append(text)
            draft.feed(P, ids + [lb])
            for t in ids:
                yield self.vocab.tokens[t]
            yield "\n"
            if draft.budget < 2:
                return i + 1
        return until

    # -- one line ----------------------------------------------------------------------------------
    def _choices(self, i: int, draft: Draft, sampling, generator, structure, song, want: int = 1, exclude=(),
                 rows: int | None = None):
        """Up to `want` (ids, text, log-probability, rank score) for line i of the plan, best first, chosen from the
        line search (which it yields through); [] when nothing can be written. Lines in `exclude` are
        passed over. With want 1 this is the song's own choice: the first acceptable line of the first
        search that has one. `rows`: the first search's width (default --line-candidates)."""
        draft.read(self.predictor)
        p, budget = draft.plan[i], draft.budget
        if p.repeat_of is not None:  # a chorus line asked for anew: its first singing's window and rhyme
            p = draft.plan[p.repeat_of]
        head, prefix_ids = (draft.head, draft.prompt_ids) if i == 0 else ("", [])
        rhyme = p.rhyme_class
        if rhyme < 0 and p.rhyme_with is not None:
            rhyme = draft.classes[p.rhyme_with]
        req = LineRequest(low=p.low, high=p.high, rhyme=rhyme, first_char=None if i == 0 else p.first_char,
                          prefix_chars=count_chars(head), prefix_class=self._class_of(prefix_ids),
                          prefix_tokens=len(prefix_ids), prefix_text=head, min_tokens=structure.min_line_tokens,
                          soft_rhyme=song.rhyme == "auto" and p.rhyme_class < 0
                          and (sampling.greedy or drawn(sampling)),
                          max_tokens=min(structure.max_line_tokens or 10**9, budget - 1 + len(prefix_ids)),
                          bias=keyword_bias(p.keyword, self.vocab.tokens, self.predictor.device))
        if req.prefix_chars >= req.high:  # the start word is a whole line already
            req.low = req.high = req.prefix_chars
        if budget < 2 and not prefix_ids:
            return []
        earlier = [normalize_line(x) for x in draft.lines]  # the lines before, which it follows
        later = [(ids, text) for j, (ids, text) in sorted(draft.fixed.items()) if j > i]  # kept lines after it
        kept = [normalize_line(text) for _, text in later]  # which it may not copy either
        ctx: SongContext = self.search.context(draft.history, sampling, draft.line_ids + [ids for ids, _ in later],
                                               draft.logp, draft.state)
        if self.credits is not None:
            ctx.names = self.credits.ban(self.vocab.tokens, draft.head)
        ctx.stock = self.memory.continuations()
        k = max(rows or song.line_candidates, want)
        wide = min(k * WIDEN, MAX_CANDIDATES)
        relaxed = replace(req, rhyme=-1)  # then without its rhyme, then anywhere inside the hard bounds
        loose = replace(relaxed, low=min(p.hard_low, req.low), high=max(p.hard_high, req.high))
        chosen, seen = [], set(exclude)

        def take(found, strict: bool) -> None:
            for text, line in found:
                key = normalize_line(text)
                if strict and line.end < END_FLOOR:  # a line the model would not end there
                    continue
                if len(chosen) < want and key not in seen and self._acceptable(text, earlier, strict,
                                                                              structure.no_copy, kept):
                    seen.add(key)
                    chosen.append((line.ids, text, line.logp, line.rank))

        passes = []  # (request, [(sampling, generator, rows)]): each gives up more than the one before
        for r in (req, relaxed, loose):
            if any(r == q for q, _ in passes):
                continue
            searches = [(sampling, generator, width) for width in ((k, wide) if r is req else (wide,))]
            if r.rhyme >= 0:
                # a beam keeps the likeliest prefixes and may prune every one that can end on the rhyme;
                # rows sampled from a generator seeded by the text so far still find it, deterministically
                searches.append(self._fallback(sampling, draft.history, wide))
            passes.append((r, searches))
        if not sampling.greedy:
            # When every search came back empty: a weak model's beam (or its rows) can all run down one
            # path to a dead end (a theme's keyword, a kept line's n-grams). The model's own spread
            # (temperature 1, seeded by the text so far) still finds a line.
            passes.append((loose, [self._fallback(sampling, draft.history, wide)]))
        for r, searches in passes:
            for search_sampling, gen, width in searches:
                draw = drawn(search_sampling)
                lines = yield from self.search.search(ctx, r, width, replace(search_sampling, temperature=0.0)
                                                      if draw else search_sampling, gen)
                found = self._ranked(head, lines, p.theme, earlier, song.rerank, p.target)
                if draw:
                    found = self._drawn(found, head, search_sampling, gen, p.target)
                take(found, True)
                if len(chosen) >= want:
                    return chosen
            if chosen:
                return chosen
            take(found, False)
            if chosen:
                return chosen
        return chosen

    def _ranked(self, head: str, lines, theme=None, earlier: list[str] = (), rerank: bool = True,
                length: int | None = None) -> list:
        """(text, line) best first: the model's log-probability of the line after the song so far less
        PRIOR_WEIGHT times its log-probability after nothing (predictor.score), less the whole-word
        penalty (words.py), the stock-phrase penalty (phrases.py) and the cost of a second pause, per
        character (its line break counted), plus END_WEIGHT times the log-probability of its line
        break, less form.LENGTH_PENALTY per character away from the drawn length; with a reranker
        (judge.py, unless --no-rerank) its score per token in place of the model's and the whole-word
        penalty; with a theme, plus FIT_WEIGHT times the line's fit to it and to the two lines before
        (theme.py); less RHYME_COST for a line off its soft rhyme, and CAST_PENALTY per person it
        names whom no earlier line named (cast.py). The prior is computed for the PRIOR_TOP best by the
        rest only. Ties keep the search's order."""
        found = [(head + self.vocab.decode(line.ids), line) for line in lines]

        def off(text: str) -> float:  # nats for missing the drawn length
            return 0.0 if length is None else LENGTH_PENALTY * abs(count_chars(text) - length)

        if self.judge is not None and rerank:
            key = [s - self.memory.penalty(text) / line.n - off(text)
                   for s, (text, line) in zip(self.judge.scores(found, earlier), found)]
        else:
            def spaces(text: str) -> float:
                return SPACE_PENALTY * max(0, text.count(" ") - 1)

            chars = [count_chars(text) - count_chars(head) + 1 for text, _ in found]
            key = [(line.logp - self.words.penalty(text) - self.memory.penalty(text) - spaces(text)) / n
                   + END_WEIGHT * line.end - off(text) for (text, line), n in zip(found, chars)]
            # the prior, for the PRIOR_TOP best by the rest (a beam ends hundreds of lines; the rest stay behind)
            top = sorted(range(len(found)), key=lambda j: -key[j])[:PRIOR_TOP]
            if top:
                lb = self.vocab.line_break_id
                prior = self.predictor.score([lb], [found[j][1].ids or [lb] for j in top]).tolist()
                for j, p in zip(top, prior):
                    key[j] -= PRIOR_WEIGHT * p / chars[j]
        if theme is not None:
            to = target(theme, earlier[-2:])
            key = [k + FIT_WEIGHT * fit(text, theme, to=to) for k, (text, _) in zip(key, found)]
        key = [k - (0.0 if line.rhymes else RHYME_COST) for k, (_, line) in zip(key, found)]
        if earlier and CAST_PENALTY:
            cast = set().union(*(persons(e) for e in earlier))
            key = [k - CAST_PENALTY * newcomers(text, cast) for k, (text, _) in zip(key, found)]
        order = sorted(range(len(found)), key=lambda j: -key[j])
        for j in order:
            found[j][1].rank = key[j]
        return [found[j] for j in order]

    @staticmethod
    def _drawn(found: list, head: str, sampling, generator, length: int | None = None) -> list:
        """`found` (ranked) in the order a draw at the temperature takes them (DRAW_BELOW): the lines
        top-k and top-p keep, in Gumbel-max order (sampling without replacement), then the rest as ranked.
        Every candidate's score per character is scaled by the same characters (`length`, the line's
        drawn length, and its break; without one, the candidates' mean), not its own: a score summed
        over its own characters made a short line likelier for being short."""
        if not found:
            return found
        if length is not None:
            scale = max(length - count_chars(head), 0) + 1
        else:
            scale = sum(count_chars(text) - count_chars(head) for text, _ in found) / len(found) + 1
        logits = torch.tensor([line.rank * scale for _, line in found])
        logits, likeliest = torch.sort(logits / sampling.temperature, descending=True, stable=True)
        keep = len(found) if not sampling.top_k else min(sampling.top_k, len(found))
        if sampling.top_p < 1.0:
            mass = torch.softmax(logits, dim=0).cumsum(0)
            keep = min(keep, int((mass < sampling.top_p).sum()) + 1)
        u = torch.rand(keep, generator=generator).clamp_(1e-9, 1 - 1e-9)
        order = torch.argsort(logits[:keep] - torch.log(-torch.log(u)), descending=True)
        kept = likeliest[order].tolist()
        rest = set(range(len(found))) - set(kept)
        return [found[j] for j in kept] + [x for j, x in enumerate(found) if j in rest]

    @staticmethod
    def _fallback(sampling, history: list[int], width: int):
        """(sampling, generator, width) of the fallback search (for what the search at the song's own
        settings did not find): the model's own distribution (temperature 1, nucleus 0.95), seeded by
        the tokens written so far."""
        how = replace(sampling, temperature=1.0, top_k=0, top_p=FALLBACK_TOP_P,
                      seed=zlib.crc32(str(history).encode("ascii")))
        return how, make_generator(how), width

    def _acceptable(self, text: str, earlier: list[str], strict: bool, no_copy: bool, kept=()) -> bool:
        """Whether a candidate may follow `earlier` (the song's lines before it) beside `kept` (lines
        the writer kept after it, never copied); `strict` adds the preferences the search gives up last."""
        line = normalize_line(text)
        if not line or line in kept:
            return False
        orig = self.originality
        if no_copy and orig is not None and orig.is_training_line(line):
            return False
        if earlier and line == earlier[-1]:
            return False  # never the same line twice in a row (a loop), whatever else gives
        if not strict:
            return True
        if line in earlier or repeats_a_phrase(line):
            return False
        if any(shares_span(line, e, SONG_SPAN) for e in (*earlier, *kept)):
            return False
        if orig is not None and (orig.is_training_line(line) or orig.longest_copy(line) > COPY_BOUND):
            return False
        return not self.memory.stock(line)

    def _class_of(self, ids: list[int]) -> int:
        """The rhyme class a token sequence ends on (its last token with one), from the table."""
        table = self.habits.token_classes
        for t in reversed(ids):
            if table[t] >= 0:
                return table[t]
        return -1

    @staticmethod
    def _class_of_text(text: str) -> int:
        from ..text.rhyme import rhyme_id  # pypinyin: only for a line the user wrote

        return rhyme_id(text)


def drawn(sampling) -> bool:
    """Whether a sampled line is drawn from the beam's candidates (DRAW_BELOW) rather than sampled in rows."""
    return not sampling.greedy and sampling.temperature < DRAW_BELOW


def rule_groups(plan: list, classes: dict[int, int]) -> list[str]:
    """Kept lines rule their rhyme groups: every line of a group holding a kept line (plan index ->
    its rhyme class) must end on that line's class. Two kept lines of one group that disagree, or a
    kept line against --rhyme-class, are not refused: the kept lines stay as written, the group follows
    the first of them, and a note says so (returned). Plans are changed in place."""
    def root(j: int) -> int:
        while plan[j].rhyme_with is not None:
            j = plan[j].rhyme_with
        return j

    from ..text.rhyme import NAMES

    notes, ruled = [], {}
    for i in sorted(classes):
        c = classes[i]
        if c < 0 or plan[i].repeat_of is not None:
            continue
        r = root(i)
        if r in ruled:
            first, fc = ruled[r]
            if fc != c:
                notes.append(f"lines {first + 1} and {i + 1} are kept with different rhymes ({NAMES[fc]}, {NAMES[c]}); "
                             f"the lines rhyming with them follow line {first + 1}")
            continue
        asked = plan[r].rhyme_class
        if asked >= 0 and asked != c:
            notes.append(f"line {i + 1} is kept with the rhyme {NAMES[c]}; the lines rhyming with it follow it, "
                         f"not rhyme_class {NAMES[asked]}")
        ruled[r] = (i, c)
        for j, p in enumerate(plan):
            if p.repeat_of is None and root(j) == r:
                p.rhyme_class = c
    return notes


def shares_span(a: str, b: str, n: int) -> bool:
    """Whether a and b have a common substring of n characters (spaces ignored)."""
    a, b = a.replace(" ", ""), b.replace(" ", "")
    if len(a) < n or len(b) < n:
        return False
    grams = {b[i:i + n] for i in range(len(b) - n + 1)}
    return any(a[i:i + n] in grams for i in range(len(a) - n + 1))
