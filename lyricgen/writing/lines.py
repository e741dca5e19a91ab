"""Writing one line: K candidate continuations decoded in one batch under the line's constraints,
returned best first.

From the state after the text so far, K rows decode token by token. Masks keep every row inside the
line's plan: the line break is banned until the line has its minimum characters (and its minimum
tokens) and, when it must rhyme, until its last Han character is in the required class (a soft rhyme
only marks the lines that miss it: Line.rhymes); a token that would run past the maximum is banned;
with an n-gram, ending a line after a token that never ended one in the corpus (mid-word: "快使用双 /
棍") is penalised; a row left with no allowed token dies.
Within a line no token bigram repeats ("我的我的"), no word comes twice in a row ("疯狂疯狂") and no character three times
("让让让"; twice is how lyrics reduplicate: 慢慢); the sampling options act as in plain generation
(sampling.constrain: repetition penalty and no-repeat n-grams over the whole song, never "<unk>").
With the checkpoint's originality hashes no token may stretch a span of a training line past
phrases.COPY_BOUND characters; with jieba's dictionary (words.py) a character that would fuse two
words on a shared one (风火轮 -> 廓) and a line break inside a phrase (飞檐走) are penalised. A character
completing a phrase of the songs written before (phrases.PhraseMemory) is penalised, or banned once
that phrase is stock; a line opening as earlier lines of the song did costs OPENING_PENALTY per line. A
space is a pause after a phrase (SPACED_RUN, LINE_SPACES), a second one costs the beam SPACE_PENALTY,
and no line opens with a particle that closes one (NEVER_FIRST); note brackets (〖〗) are
never written. Sampling draws K rows; greedy is a beam search of width K, so it returns the most
probable lines that meet the constraints, deterministically. Either has a seeded fallback at
temperature 1 for a rhyme it cannot reach (song.py).

Characters are counted from the tokens' text (spaces excluded), never as tokens, so the search works
for any token unit: words and characters, or characters only. Rows that finish or die leave the
batch, so the network steps only the rows still writing. The search is a generator: it yields ""
after every step (nothing to show yet; a consumer that stops iterating cancels it) and returns the lines.
"""
from dataclasses import dataclass, field

import torch

from ..config import SamplingConfig
from ..fitted.habits import count_chars
from .phrases import MAX_SONGS, PHRASE, STOCK_PENALTY
from .sampling import Ngrams, choose_next, constrain
from .words import DANGLING_PENALTY, FUSED_PENALTY

NEG = float("-inf")
# A line should end after a whole word: ending it (or filling it to its maximum) with a token that
# never ended a line of the corpus costs this many nats in the search. A penalty, not a ban: a ban
# left too few ways to meet length and rhyme together, and the fallbacks made songs 2.4x slower.
MID_WORD_PENALTY = 5.0
PHRASE_CHARS = 3  # a phrase of an earlier line this long (in 2 or 3 tokens) is not written again
# Spaces: a space follows at least SPACED_RUN characters, and a line holds at most LINE_SPACES of them.
# Lyrics use a space as a pause between phrases (我在等待 为了这份爱), not between words: in the Jay
# Chou corpus 2.4% of spaces follow a single character and 0.7% of lines hold more than 3. A model that
# also learnt from text spaced more freely wrote "我 用 歌 在 院子里", which blind readers named
# first among its flaws (docs/panels.md).
SPACED_RUN, LINE_SPACES = 2, 3
# A line's second and later spaces cost this many nats in the beam (greedy): a model that also learnt
# from data/open_lyrics.txt (1.4 spaces a line, against Jay Chou's 0.44) still wrote "月光 落在 我的
# 肩上"; with it, 0.93 spaces a line and blind readers scored its greedy songs higher on all four
# measures (docs/panels.md, panel L). A song's sampled lines below temperature 1 are drawn from the
# beam's (song.DRAW_BELOW), so they pay it too. Not rows sampled at temperature 1 or above (the
# fallback's spread): a weak model reaches a rhyme through a space ("照着亮 灯"); the rhyme comes first.
SPACE_PENALTY = 1.5
# Particles that close a phrase never open a line ("的让你疯狂"): of 5,237 Jay Chou lines 9 start with
# 的 or 了 (quoted fragments) and none with the rest; of the 25,075 lines of data/open_lyrics.txt, 1.
NEVER_FIRST = "的了着们吗呢吧"
# A line opening (its first OPENING characters) already used by earlier lines of the song costs this many
# nats per such line: a model that also learnt from data/open_lyrics.txt opened 20% of its greedy lines
# and 27% of its sampled ones with a speech frame (我说 / 你说 / 她说; 1.1% of Jay Chou's lines), and
# blind readers named the chain of speakers first among its flaws (docs/panels.md, panel N). A cost, not
# a ban: lyrics repeat an opening on purpose (我不… 我不…).
OPENING_PENALTY, OPENING = 1.0, 2
# Brackets scraped corpora put around notes (〖韩语Rap译文〗, 【间奏】) are never written in a song: a model
# from the Jay Chou corpus wrote "你是我的秘密〗 / 〖这种压力是一场悲剧".
NEVER_WRITTEN = "〖〗【】"


@dataclass
class LineRequest:
    low: int  # characters: the line may end once it has this many (the start word's included)
    high: int  # and never has more than this many
    rhyme: int = -1  # the class its last Han character must be in (-1: any)
    soft_rhyme: bool = False  # the rhyme is a preference: a line may end off it (Line.rhymes says if it did)
    first_char: str | None = None  # its first token must start with this character (acrostic)
    prefix_chars: int = 0  # characters already in the line (the start word)
    prefix_class: int = -1  # the rhyme class the prefix ends on
    prefix_tokens: int = 0
    prefix_text: str = ""  # the prefix as written (the copy guard reads the line's text)
    min_tokens: int = 1  # tokens per line, the prefix's included (StructureConfig's line bounds)
    max_tokens: int = 10**9
    bias: object = None  # theme.py's KeywordBias: toks (B, t) -> (B, V) bonus toward the line's keyword


@dataclass
class Line:
    ids: list[int]  # the line's tokens, without the line break
    score: float  # mean log-probability per token under the model, the line break included
    logp: float = 0.0  # their sum
    n: int = 1  # the tokens scored
    rank: float | None = None  # the song writer's ranking score, once ranked (song.SongWriter._ranked)
    end: float = 0.0  # the model's log-probability of the line break that ends it (its share of logp)
    rhymes: bool = True  # whether it ends on the request's rhyme (always, unless the rhyme was soft)


@dataclass
class SongContext:
    """What the song so far contributes to the search: the model after it, and the masks' view of it."""
    sampling: SamplingConfig = field(default_factory=SamplingConfig)  # its repetition penalty and n-grams
    seen: torch.Tensor | None = None  # (V,) bool: tokens in the text (structure tokens excluded)
    ngrams: Ngrams | None = None  # the n-grams of the tokens written so far, with sampling.no_repeat_ngram
    phrases: dict = field(default_factory=dict)  # 1- or 2-token prefix -> tokens ending a phrase of an earlier line
    logp: torch.Tensor | None = None  # (1, V): the model's log-probabilities after the song so far
    state: object = None  # and its state (one row)
    names: object = None  # fitted/credits.NameBan: credited names the line may not complete
    stock: dict = field(default_factory=dict)  # phrases.PhraseMemory.continuations(): earlier songs' phrases
    openings: dict = field(default_factory=dict)  # an opening (OPENING characters) -> lines of the song with it


class LineSearch:
    def __init__(self, predictor, vocab, token_classes: list[int], guard=None, words=None):
        self.predictor = predictor
        self.guard = guard  # phrases.CopyGuard: no span of a training line longer than its bound
        self.words = words  # words.Words: no fused words, no line ending inside a phrase
        self.vocab = vocab
        device = predictor.device
        self.V = len(vocab)
        self.lb, self.unk = vocab.line_break_id, vocab.unk_id
        self.space = vocab.index.get(" ", -1)
        self.chars = torch.tensor([count_chars(t) if i >= 3 else 0 for i, t in enumerate(vocab.tokens)],
                                  device=device)  # (V,)
        self.classes = torch.tensor(token_classes, dtype=torch.long, device=device)  # (V,)
        self.structure = torch.zeros(self.V, dtype=torch.bool, device=device)
        self.structure[[i for i in (self.lb, self.unk, self.space) if i >= 0]] = True
        self._starts: dict[str, torch.Tensor] = {}
        self.never_first = [vocab.index[c] for c in NEVER_FIRST if c in vocab.index]
        self.never = [i for i, t in enumerate(vocab.tokens) if i >= 3 and any(c in t for c in NEVER_WRITTEN)]
        # (V,) bool: the tokens after which a line of the corpus ended (the mixture's n-gram saw "x\n").
        # Lines end there, after whole words: never "快使用双 / 棍" mid-word. None without an n-gram.
        mixture = getattr(predictor, "mixture", None)
        self.ends_line = None
        if mixture is not None:
            self.ends_line = mixture.ngram.followed_by(self.lb).to(device)
            self.ends_line[self.structure] = False

    def starts_with(self, ch: str) -> torch.Tensor:
        """(V,) bool: the entries whose text starts with `ch` (a character, or more)."""
        if ch not in self._starts:
            mask = torch.tensor([i >= 3 and t.startswith(ch) for i, t in enumerate(self.vocab.tokens)],
                                device=self.predictor.device)
            self._starts[ch] = mask
        return self._starts[ch]

    def context(self, history: list[int], sampling, earlier: list[list[int]] = (), logp=None, state=None) -> SongContext:
        """The song so far: its tokens, the token ids of its earlier lines (their phrases of
        PHRASE_CHARS or more characters, two or three tokens long, are not written again), and the
        model's logp (1, V) and state after it."""
        ctx = SongContext(sampling, logp=logp, state=state)
        chars = self.chars.tolist()
        for ids in earlier:
            opening = self.vocab.decode(ids).replace(" ", "")[:OPENING]
            if len(opening) == OPENING:
                ctx.openings[opening] = ctx.openings.get(opening, 0) + 1
            for n in (2, 3):
                for i in range(len(ids) - n + 1):
                    gram = ids[i:i + n]
                    if sum(chars[t] for t in gram) >= PHRASE_CHARS:
                        ctx.phrases.setdefault(tuple(gram[:-1]), set()).add(gram[-1])
        if sampling.repetition_penalty != 1.0:
            seen = torch.zeros(self.V, dtype=torch.bool, device=self.predictor.device)
            seen[list(history)] = True
            ctx.seen = seen & ~self.structure
        if sampling.no_repeat_ngram:
            ctx.ngrams = Ngrams(sampling.no_repeat_ngram, history)
        return ctx

    # -- the masks ---------------------------------------------------------------------------------
    def allowed(self, logp, req: LineRequest, ctx: SongContext, chars, cls, ntok, toks) -> torch.Tensor:
        """logp (B, V) with every token the constraints ban set to -inf (and the penalties applied).
        chars, cls, ntok (B,): the line so far; toks (B, t): its tokens (t = steps taken)."""
        B, t = logp.shape[0], toks.shape[1]
        seen = None
        if ctx.seen is not None:
            seen = ctx.seen.unsqueeze(0).expand(B, -1).clone()
            if t:
                seen.scatter_(1, toks, True)
                seen[:, self.structure] = False
        ngrams = [ctx.ngrams] * B if ctx.ngrams is not None else None  # the song's n-grams, continued into each row
        row_ids = toks.tolist()
        texts = None  # each row's line so far, as written: read by the name ban, the copy guard and words
        if ctx.names or ctx.stock or ctx.openings or self.guard is not None or self.words is not None \
                or self.space >= 0:
            tokens = self.vocab.tokens
            texts = [req.prefix_text + "".join(tokens[i] for i in row) for row in row_ids]
        banned = [ctx.names.banned(text) for text in texts] if ctx.names else None  # no credited name completed
        adj = constrain(logp, ctx.sampling, self.unk, seen, ngrams, row_ids if ngrams else None, banned)
        if req.bias is not None:
            adj = adj + req.bias(toks)
        adj[:, self.never] = NEG
        if t == 0 and req.prefix_tokens == 0:  # the line's first token
            if self.space >= 0:
                adj[:, self.space] = NEG
            adj[:, self.never_first] = NEG
            if req.first_char:
                adj[:, ~self.starts_with(req.first_char)] = NEG
        fills = chars.unsqueeze(1) + self.chars.unsqueeze(0)
        adj.masked_fill_(fills > req.high, NEG)
        can_end = (chars >= req.low) & (ntok >= req.min_tokens)
        mid_word = None  # (B,) rows whose last token never ended a line of the corpus
        if self.ends_line is not None:  # a token that fills the line should be one a line ends on
            adj = adj - MID_WORD_PENALTY * ((fills == req.high) & ~self.ends_line)
            if t:
                mid_word = ~self.ends_line[toks[:, -1]]
        if req.rhyme >= 0 and not req.soft_rhyme:
            can_end &= cls == req.rhyme
        forced = ntok >= req.max_tokens  # the token bounds end a line whatever else it lacks
        must_end = (chars >= req.high) | forced
        lb = torch.where(can_end | forced, adj[:, self.lb], torch.full_like(adj[:, self.lb], NEG))
        if mid_word is not None:
            lb = lb - MID_WORD_PENALTY * mid_word
        adj[must_end] = NEG
        if t:
            last = toks[:, -1]
            if self.space >= 0:  # no double spaces, no line ending in one
                after_space = last == self.space
                adj[after_space, self.space] = NEG
                lb = torch.where(after_space, torch.full_like(lb, NEG), lb)
            # no word twice in a row ("疯狂疯狂"); a character may double (慢慢, 轻轻: with the character
            # unit that is how lyrics reduplicate) but never triples ("让让让")
            twice = self.chars[last] > 1
            if t >= 2:
                twice |= toks[:, -2] == last
            rows = twice.nonzero().squeeze(1)
            adj[rows, last[rows]] = NEG
            self._ban_repeated_bigrams(adj, toks, last)
        if self.space >= 0 and (t or req.prefix_tokens):  # a pause after a phrase, and only a few
            for b, text in enumerate(texts):
                if len(text) - text.rfind(" ") - 1 < SPACED_RUN or text.count(" ") >= LINE_SPACES:
                    adj[b, self.space] = NEG
        adj[:, self.lb] = lb
        if ctx.phrases and t:
            self._ban_phrases(adj, ctx, toks)
        if self.guard is not None or self.words is not None:
            self._whole(adj, texts)
        if ctx.stock:
            self._avoid_stock(adj, ctx.stock, texts)
        if ctx.openings:
            self._vary_openings(adj, ctx.openings, texts)
        return adj

    def _vary_openings(self, adj, openings: dict, texts: list[str]) -> None:
        """Per row still writing its first OPENING characters: a token that would make the line open as
        earlier lines of the song did costs OPENING_PENALTY per such line."""
        for b, text in enumerate(texts):
            text = text.replace(" ", "")
            if len(text) >= OPENING:
                continue
            for opening, lines in openings.items():
                if opening.startswith(text):  # the tokens that would complete it
                    adj[b, self.starts_with(opening[len(text):])] -= OPENING_PENALTY * lines

    def _avoid_stock(self, adj, stock: dict, texts: list[str]) -> None:
        """Per row: a token whose first character would complete a phrase of the songs written before
        costs STOCK_PENALTY per song holding it, and is banned once MAX_SONGS hold it (phrases.py). Exact
        for characters; with words, a phrase ending inside a longer token is left to the choice's check."""
        for b, text in enumerate(texts):
            tail = text.replace(" ", "").replace("\u3000", "")[-(PHRASE - 1):]
            nxt = stock.get(tail) if len(tail) == PHRASE - 1 else None
            for ch, songs in (nxt or {}).items():
                mask = self.starts_with(ch)
                if songs >= MAX_SONGS:
                    adj[b, mask] = NEG
                else:
                    adj[b, mask] -= STOCK_PENALTY * songs

    def _whole(self, adj, texts: list[str]) -> None:
        """Per row (its line so far): no token that would stretch a span copied from a training line
        past the guard's bound; a penalty on a character that would fuse two words (风火轮 -> 廓) and on
        ending the line inside a phrase (飞檐走)."""
        index = self.vocab.index
        for b, text in enumerate(texts):
            if self.guard is not None:
                banned = self.guard.banned(text)
                if banned is not None:
                    adj[b, torch.from_numpy(banned).to(adj.device)] = NEG
            if self.words is not None and text:
                fusing = [index[c] for c in self.words.fusing_next(text) if c in index]
                if fusing:
                    adj[b, fusing] -= FUSED_PENALTY
                if torch.isfinite(adj[b, self.lb]) and self.words.dangling(text):
                    adj[b, self.lb] -= DANGLING_PENALTY

    def _ban_repeated_bigrams(self, adj, toks, last) -> None:
        """No token may follow the line's last token if it already followed it in this line."""
        if toks.shape[1] < 2:
            return
        hit = toks[:, :-1] == last.unsqueeze(1)  # (B, t-1)
        followers = torch.where(hit, toks[:, 1:], torch.full_like(toks[:, 1:], self.V))
        banned = torch.zeros(adj.shape[0], self.V + 1, dtype=torch.bool, device=adj.device)
        banned.scatter_(1, followers, True)
        adj.masked_fill_(banned[:, :self.V], NEG)

    def _ban_phrases(self, adj, ctx: SongContext, toks) -> None:
        """No phrase of an earlier line again: the tokens that would complete one are banned."""
        for b, row in enumerate(toks[:, -2:].tolist()):
            banned = set(ctx.phrases.get((row[-1],), ()))
            if len(row) == 2:
                banned |= ctx.phrases.get(tuple(row), set())
            if banned:
                adj[b, list(banned)] = NEG

    # -- decoding ----------------------------------------------------------------------------------
    @torch.no_grad()
    def search(self, ctx: SongContext, req: LineRequest, k: int, sampling, generator):
        """Lines that meet `req`, best (highest mean log-probability) first (the return value): from
        k sampled rows, or from a beam of width k when decoding is greedy, continuing ctx.logp and
        ctx.state. Yields "" after each step."""
        if sampling.greedy:
            return (yield from self._beam(ctx, req, k))
        return (yield from self._sample(ctx, req, k, sampling, generator))

    def _steps(self, req: LineRequest) -> int:
        return max(req.high - req.prefix_chars, 0) * 2 + 2  # spaces count no characters

    def _sample(self, ctx, req, k, sampling, generator):
        P, device = self.predictor, self.predictor.device
        rows = torch.zeros(k, dtype=torch.long, device=device)
        state, logp = P.select(ctx.state, rows), ctx.logp.expand(k, -1)
        chars = torch.full((k,), req.prefix_chars, device=device)
        cls = torch.full((k,), req.prefix_class, device=device)
        ntok = torch.full((k,), req.prefix_tokens, device=device)
        total = torch.zeros(k, device=device)
        toks = torch.empty(k, 0, dtype=torch.long, device=device)
        done: list[Line] = []
        for _ in range(self._steps(req)):
            yield ""
            adj = self.allowed(logp, req, ctx, chars, cls, ntok, toks)
            alive = torch.isfinite(adj).any(dim=-1)
            if not bool(alive.all()):  # rows with no allowed token die here
                keep = alive.nonzero().flatten()
                if not len(keep):
                    break
                adj, logp, chars, cls, ntok, total, toks = (x[keep] for x in (adj, logp, chars, cls, ntok, total, toks))
                state = P.select(state, keep)
            nxt = choose_next(adj, sampling, generator)
            total = total + logp.gather(1, nxt.unsqueeze(1)).squeeze(1)
            ntok, toks = ntok + 1, torch.cat([toks, nxt.unsqueeze(1)], dim=1)
            ended = nxt == self.lb
            for b in ended.nonzero().flatten().tolist():
                n = int(ntok[b]) - req.prefix_tokens
                done.append(Line(toks[b, :-1].tolist(), float(total[b]) / n, float(total[b]), n,
                                 end=float(logp[b, self.lb]), rhymes=req.rhyme < 0 or int(cls[b]) == req.rhyme))
            keep = (~ended).nonzero().flatten()
            if not len(keep):
                break
            nxt = nxt[keep]
            chars = chars[keep] + self.chars[nxt]
            c = self.classes[nxt]
            cls = torch.where(c >= 0, c, cls[keep])
            ntok, total, toks = ntok[keep], total[keep], toks[keep]
            logp, state = P.step(P.select(state, keep), nxt)
        return sorted(done, key=lambda line: -line.score)

    def _beam(self, ctx, req, k):
        P, device = self.predictor, self.predictor.device
        logp, state = ctx.logp, ctx.state
        chars = torch.full((1,), req.prefix_chars, device=device)
        cls = torch.full((1,), req.prefix_class, device=device)
        ntok = torch.full((1,), req.prefix_tokens, device=device)
        total = torch.zeros(1, device=device)  # the model's log-probability of each beam
        search = torch.zeros(1, device=device)  # the same with the penalties: what the beam ranks by
        toks = torch.empty(1, 0, dtype=torch.long, device=device)
        done: list[Line] = []
        for _ in range(self._steps(req)):
            yield ""
            adj = self.allowed(logp, req, ctx, chars, cls, ntok, toks)
            if self.space >= 0 and SPACE_PENALTY:  # a second pause in the line costs
                spaced = (toks == self.space).any(dim=1) | (" " in req.prefix_text)
                adj[spaced, self.space] -= SPACE_PENALTY
            ends = torch.isfinite(adj[:, self.lb]).nonzero().flatten().tolist()
            for b in ends:  # a finished line: kept aside, no longer a beam
                n = int(ntok[b]) + 1 - req.prefix_tokens
                t = float(total[b] + logp[b, self.lb])
                done.append(Line(toks[b].tolist(), t / n, t, n, end=float(logp[b, self.lb]),
                                 rhymes=req.rhyme < 0 or int(cls[b]) == req.rhyme))
            adj[:, self.lb] = NEG
            cand = (search.unsqueeze(1) + adj).flatten()  # (B * V,)
            width = min(k, int(torch.isfinite(cand).sum()))
            if width == 0:
                break
            best, flat = torch.topk(cand, width)
            rows, nxt = flat // self.V, flat % self.V
            total = total[rows] + logp[rows, nxt]
            search = best
            chars = chars[rows] + self.chars[nxt]
            c = self.classes[nxt]
            cls = torch.where(c >= 0, c, cls[rows])
            ntok, toks = ntok[rows] + 1, torch.cat([toks[rows], nxt.unsqueeze(1)], dim=1)
            logp, state = P.step(P.select(state, rows), nxt)
        return sorted(done, key=lambda line: -line.score)
