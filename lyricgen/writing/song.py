"""Writing a song line by line: the plan (form.py) says where each line may end and what it rhymes
with; the line search (lines.py) offers candidates; the best one that is original is chosen and fed
to the model, so the next line continues from it.

The search never stretches a span of a training line past COPY_BOUND characters (phrases.py). Its
candidates are ranked by the model's log-probability per token less two penalties: for fused words or
a dangling end (words.py), and for the phrases of the songs written before (phrases.PhraseMemory).
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
from .form import plan_song, sections_of
from .lines import LineRequest, LineSearch, SongContext
from .loops import repeats_a_phrase
from .phrases import COPY_BOUND, CopyGuard, PhraseMemory
from .sampling import make_generator
from .words import shared_words
from .theme import FIT_WEIGHT, fit, keyword_bias, song_theme, target

COPY_SPAN = 8  # a line sharing this many characters with a training line is a copy (report.py's span8_lines)
SONG_SPAN = 5  # a line sharing this many characters with an earlier line of the song repeats it
WIDEN = 4  # the search widens to this many times the candidates before giving anything up
MAX_CANDIDATES = 512
FALLBACK_TOP_P = 0.95  # greedy's sampled fallback for a rhyme the beam cannot reach


@dataclass
class Song:
    lines: list[str]  # the text's lines, "" between sections
    tokens: int  # tokens written after the start word, line breaks and repeats included
    score: float  # mean log-probability per token of the lines searched (not those given or repeated)

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

    def feed(self, predictor, ids: list[int]) -> None:
        """The model reads `ids`; they count against the budget."""
        self.logp, self.state = predictor.feed(self.state, ids)
        self.history += ids
        self.budget, self.written = self.budget - len(ids), self.written + len(ids)

    def song(self) -> "Song":
        return Song(self.out, self.written, self.logp_sum / self.scored if self.scored else 0.0)


class SongWriter:
    """Writes songs from a Predictor, a vocabulary, the corpus's habits and its originality hashes."""

    def __init__(self, predictor, vocab, habits, originality=None, credits=None):
        self.predictor, self.vocab, self.habits, self.originality = predictor, vocab, habits, originality
        self.credits = credits  # names of the corpus's credit lines: never written unless the user did
        self.words = shared_words()
        self.search = LineSearch(predictor, vocab, habits.token_classes, CopyGuard.of(originality, vocab.tokens),
                                 self.words)
        self.memory = PhraseMemory(0)  # the phrases of the songs written before (remember() sizes it)

    def remember(self, texts: list[str], size: int) -> None:
        """The songs of a request, written: their phrases are avoided by the next `size` songs' worth."""
        if self.memory.songs.maxlen != size:
            self.memory = PhraseMemory(size)
        for text in texts:
            self.memory.add(text)

    def check(self, start: str, song) -> None:
        """Options that need the vocabulary: every acrostic character must be one it can write."""
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

    def plan(self, start: str, structure, song, generator):
        """The song's plan, drawn from a generator of its own: the sampling seed's, or for greedy
        decoding one seeded by the start word, so that greedy output stays deterministic."""
        seed = generator.initial_seed() if generator is not None else zlib.crc32(start.encode("utf-8"))
        rng = random.Random(seed)
        open_lines = max((token_budget(structure, song) or 0) // 2, 1)  # no more lines than this can fit
        sections = sections_of(song.form, structure.lines, self.habits, song.acrostic, open_lines)
        rhyme_class = parse_class(song.rhyme_class) if song.rhyme_class else -1
        line_chars = parse_line_chars(song.line_chars) if song.line_chars else None
        return plan_song(sections, song.rhyme, rhyme_class, line_chars, song.acrostic, self.habits, rng,
                         song_theme(start, song, self.vocab))

    @torch.no_grad()
    def write(self, start: str, prompt_ids: list[int], sampling, structure, song):
        """One song beginning with `start` (or with song.first_line, whose start word it is): yields
        each committed line's token texts, its line break included ("" after each search step), and
        returns the Song."""
        P, lb = self.predictor, self.vocab.line_break_id
        generator = make_generator(sampling)
        limit = token_budget(structure, song)
        logp, state = P.start([lb] + list(prompt_ids))
        draft = Draft(self.plan(start, structure, song, generator), normalize_line(song.first_line or start),
                      list(prompt_ids), logp, state, list(prompt_ids), limit if limit is not None else 10**9)
        for i, p in enumerate(draft.plan):
            if i and p.section != draft.plan[i - 1].section:  # a blank line between sections
                if draft.budget < 3:
                    break
                draft.out.append("")
                if self.habits.blank_lines:
                    draft.feed(P, [lb])
                yield "\n"
            if p.repeat_of is not None:  # a chorus sung again
                ids = draft.line_ids[p.repeat_of]
                if len(ids) + 1 > draft.budget:
                    break
                text, cls = draft.lines[p.repeat_of], draft.classes[p.repeat_of]
            elif i == 0 and song.first_line:
                ids, text = [], draft.head
                cls = self._class_of_text(text)
            else:
                found = yield from self._line(i, draft, sampling, generator, structure, song)
                if found is None:
                    break
                ids, text, line_logp = found
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
                break
        return draft.song()

    # -- one line ----------------------------------------------------------------------------------
    def _line(self, i: int, draft: Draft, sampling, generator, structure, song):
        """(ids, text, log-probability) of line i of the plan, chosen from the line search (which it
        yields through), or None when nothing can be written."""
        p, budget = draft.plan[i], draft.budget
        head, prefix_ids = (draft.head, draft.prompt_ids) if i == 0 else ("", [])
        rhyme = p.rhyme_class
        if rhyme < 0 and p.rhyme_with is not None:
            rhyme = draft.classes[p.rhyme_with]
        req = LineRequest(low=p.low, high=p.high, rhyme=rhyme, first_char=None if i == 0 else p.first_char,
                          prefix_chars=count_chars(head), prefix_class=self._class_of(prefix_ids),
                          prefix_tokens=len(prefix_ids), prefix_text=head, min_tokens=structure.min_line_tokens,
                          max_tokens=min(structure.max_line_tokens or 10**9, budget - 1 + len(prefix_ids)),
                          bias=keyword_bias(p.keyword, self.vocab.tokens, self.predictor.device))
        if req.prefix_chars >= req.high:  # the start word is a whole line already
            req.low = req.high = req.prefix_chars
        if budget < 2 and not prefix_ids:
            return None
        earlier = [normalize_line(x) for x in draft.lines]
        ctx: SongContext = self.search.context(draft.history, sampling, draft.line_ids, draft.logp, draft.state)
        if self.credits is not None:
            ctx.names = self.credits.ban(self.vocab.tokens, draft.head)
        k = song.line_candidates
        wide = min(k * WIDEN, MAX_CANDIDATES)
        relaxed = replace(req, rhyme=-1)  # then without its rhyme, then anywhere inside the hard bounds
        loose = replace(relaxed, low=min(p.hard_low, req.low), high=max(p.hard_high, req.high))
        tried = []
        for r in (req, relaxed, loose):
            if r in tried:
                continue
            tried.append(r)
            searches = [(sampling, generator, width) for width in ((k, wide) if r is req else (wide,))]
            if sampling.greedy and r.rhyme >= 0:
                # a beam keeps the likeliest prefixes and may prune every one that can end on the rhyme;
                # rows sampled from a generator seeded by the text so far still find it, deterministically
                searches.append(self._fallback(sampling, draft.history, wide))
            for search_sampling, gen, width in searches:
                lines = yield from self.search.search(ctx, r, width, search_sampling, gen)
                found = self._ranked(head, lines, p.theme, earlier)
                for text, line in found:
                    if self._acceptable(text, earlier, True, structure.no_copy):
                        return line.ids, text, line.logp
            for text, line in found:
                if self._acceptable(text, earlier, False, structure.no_copy):
                    return line.ids, text, line.logp
        return None

    def _ranked(self, head: str, lines, theme=None, earlier: list[str] = ()) -> list:
        """(text, line) best first: the model's mean log-probability, less the whole-word penalty
        (words.py) and the stock-phrase penalty (phrases.py), per token; with a theme, plus
        FIT_WEIGHT times the line's fit to it and to the two lines before (theme.py). Ties keep the
        search's order."""
        found = [(head + self.vocab.decode(line.ids), line) for line in lines]
        key = [(line.logp - self.words.penalty(text) - self.memory.penalty(text)) / line.n for text, line in found]
        if theme is not None:
            to = target(theme, earlier[-2:])
            key = [k + FIT_WEIGHT * fit(text, theme, to=to) for k, (text, _) in zip(key, found)]
        order = sorted(range(len(found)), key=lambda j: -key[j])
        return [found[j] for j in order]

    @staticmethod
    def _fallback(sampling, history: list[int], width: int):
        """(sampling, generator, width) of greedy's fallback search: the model's own distribution
        (temperature 1, nucleus 0.95), seeded by the tokens written so far."""
        how = replace(sampling, temperature=1.0, top_k=0, top_p=FALLBACK_TOP_P,
                      seed=zlib.crc32(str(history).encode("ascii")))
        return how, make_generator(how), width

    def _acceptable(self, text: str, earlier: list[str], strict: bool, no_copy: bool) -> bool:
        line = normalize_line(text)
        if not line:
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
        if any(shares_span(line, e, SONG_SPAN) for e in earlier):
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


def shares_span(a: str, b: str, n: int) -> bool:
    """Whether a and b have a common substring of n characters (spaces ignored)."""
    a, b = a.replace(" ", ""), b.replace(" ", "")
    if len(a) < n or len(b) < n:
        return False
    grams = {b[i:i + n] for i in range(len(b) - n + 1)}
    return any(a[i:i + n] in grams for i in range(len(a) - n + 1))
