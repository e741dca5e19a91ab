"""writing/words.py and phrases.py: whole words (no fusion on a shared character, no dangling end),
no span of a training line past the copy bound, no stock phrase song after song, and the report's
figures for them. Made-up lines only."""
import pytest
from conftest import OVERFIT_LINES, one_error_line

from lyricgen.fitted.originality import Originality
from lyricgen.writing.phrases import COPY_BOUND, MAX_SONGS, STOCK_PENALTY, CopyGuard, PhraseMemory, phrases_of
from lyricgen.writing.report import word_figures
from lyricgen.writing.words import shared_words


@pytest.fixture(scope="module")
def words():
    return shared_words()


@pytest.mark.parametrize("line", ["他骑上风火轮廓", "我们说离开始", "慢慢调调整呼吸"])
def test_two_words_fused_on_a_shared_character_are_found(words, line):
    assert words.fused(line) and words.penalty(line) > 0


@pytest.mark.parametrize("line", ["我们在一起", "天空下着雨", "回忆里的你", "落叶飘在湖面上", "他骑上风火轮",
                                  "看清你的轮廓", "飞檐走壁"])
def test_whole_words_pass(words, line):
    assert not words.fused(line) and not words.dangling(line) and words.penalty(line) == 0


@pytest.mark.parametrize("line", ["他在屋顶飞檐走", "我轻轻地尝一", "我们走到了 半", "风吹过 微"])
def test_a_line_ending_inside_a_phrase_is_found(words, line):
    assert words.dangling(line) and words.penalty(line) > 0


def test_the_dictionary_segmentation_prefers_frequent_words(words):
    assert words.segment("我们在一起") == ["我们", "在", "一起"]
    assert words.segment("风火轮") == ["风火轮"]


def test_the_copy_guard_bans_the_token_that_would_stretch_a_training_span():
    line = "春风吹过小河边的老树"  # made up
    tokens = ["<unk>", "\n", " "] + sorted(set(line + "雨"))
    guard = CopyGuard.of(Originality.fit([line]), tokens, bound=6)
    banned = guard.banned("我说春风吹过小河")  # its last 6 characters are a training span
    assert banned is not None and [tokens[i] for i in banned.nonzero()[0]] == ["边"]
    assert guard.banned("春风吹过小雨") is None  # not a training span: nothing to stretch
    spaced = CopyGuard.of(Originality.fit(["春风吹过小河 边的老树"]), tokens, bound=6)
    assert [tokens[i] for i in spaced.banned("春风吹过小河").nonzero()[0]] == [" "]  # a space copies too
    assert guard.banned("风吹过") is None  # shorter than the bound


def test_a_model_that_memorised_its_lines_cannot_write_them_out(overfit_writer):
    orig = overfit_writer.originality
    for line in OVERFIT_LINES[:4]:
        assert len(line) > COPY_BOUND  # without the guard, greedy writes these lines back whole
        text = overfit_writer.generate(line[:2], lines=3, line_chars="7-8")[0].text
        assert max(orig.longest_copy(x) for x in text.split("\n")) <= COPY_BOUND, text
        assert not any(orig.is_training_line(x) for x in text.split("\n")), text


def test_the_phrase_memory_counts_songs_and_forgets_the_oldest():
    memory = PhraseMemory(2)
    memory.add("月光下的小河\n月光下的小河")  # a phrase counts once per song
    assert memory.count["月光下的"] == 1 and memory.penalty("月光下的我") > 0
    memory.add("月光下的你")
    memory.add("一片森林")
    assert memory.count["月光下的"] == 1 and "光下的小" not in memory.count and len(memory.songs) == 2
    assert phrases_of("一片 森林\n") == {"一片森林"}


def test_a_phrase_in_max_songs_songs_is_stock():
    memory = PhraseMemory(64)
    for _ in range(MAX_SONGS):
        memory.add("我用第一人称")
    assert memory.stock("他用第一人称写") and not memory.stock("他写下了名字")
    assert not PhraseMemory(0).stock("我用第一人称") and PhraseMemory(0).penalty("我用第一人称") == 0


def test_the_memory_tells_the_search_which_character_completes_a_phrase():
    memory = PhraseMemory(8)
    memory.add("月光下的小河")
    memory.add("月光下的你")
    assert memory.continuations()["月光下"] == {"的": 2} and memory.continuations()["下的小"] == {"河": 1}
    memory.add("月光下雨")
    assert memory.continuations()["月光下"] == {"的": 2, "雨": 1}  # rebuilt after a song is added


def test_the_line_search_steers_away_from_remembered_phrases_and_bans_stock_ones():
    from types import SimpleNamespace

    import torch

    from lyricgen.text.vocab import SPECIALS, Vocab
    from lyricgen.writing.lines import NEG, LineRequest, LineSearch, SongContext

    vocab = Vocab([*SPECIALS, *"月光下的雨你"])
    search = LineSearch(SimpleNamespace(device=torch.device("cpu")), vocab, [-1] * len(vocab))
    memory = PhraseMemory(8)
    memory.add("月光下的")
    for _ in range(MAX_SONGS):
        memory.add("光下的雨")
    ctx = SongContext(stock=memory.continuations())
    ids = lambda text: [vocab.index[c] for c in text]
    toks = torch.tensor([ids("月光下"), ids("光下的"), ids("下的雨")])  # the three rows' lines so far
    adj = search.allowed(torch.zeros(3, len(vocab)), LineRequest(low=1, high=10), ctx, torch.tensor([3, 3, 3]),
                         torch.full((3,), -1), torch.full((3,), 3), toks)
    de, rain, you = vocab.index["的"], vocab.index["雨"], vocab.index["你"]
    assert adj[0, de] == -STOCK_PENALTY and adj[0, you] == 0  # 月光下的: in one song, a penalty
    assert adj[1, rain] == NEG and adj[1, you] == 0  # 光下的雨: in MAX_SONGS songs, banned
    assert adj[2, you] == 0 and adj[2, de] == 0  # 下的雨 starts no remembered phrase


def test_songs_in_a_row_do_not_reuse_their_phrases(tiny_run):
    from lyricgen.writing.lyricist import Lyricist

    forgetful, mindful = Lyricist.load(tiny_run / "best.pt"), Lyricist.load(tiny_run / "best.pt")
    same = [forgetful.generate("月光", lines=4)[0].text for _ in range(4)]
    assert len(set(same)) == 1  # without a memory a request alone decides its song
    songs = [mindful.generate("月光", lines=4, phrase_memory=64)[0].text for _ in range(4)]
    assert songs[0] == same[0] and len(set(songs)) == 4
    held = [phrases_of(s) - phrases_of("月光") for s in songs]
    shared = [g for g in set().union(*held) if sum(g in h for h in held) > MAX_SONGS]
    assert not shared, songs
    again = Lyricist.load(tiny_run / "best.pt")  # the same sequence of requests writes the same songs
    assert [again.generate("月光", lines=4, phrase_memory=64)[0].text for _ in range(4)] == songs


def test_the_report_counts_fused_lines_dangling_ends_and_stock_phrases():
    songs = [["他骑上风火轮廓", "我们在一起"], ["我们在一起", "回忆里的你"], ["天空下着雨", "我轻轻地尝一"],
             ["一片森林"]]
    lines = [x for s in songs for x in s]
    f = word_figures(lines, songs)
    assert f["fused_lines"] == 1 / 7 and f["dangling_lines"] == 1 / 7
    assert f["phrase_songs"] == 2 / 4 and f["top_phrase"] in phrases_of("我们在一起")


def test_a_bad_phrase_memory_is_one_error_line(cli, tiny_run):
    rc, out, err = cli("generate", "月光", "--checkpoint", tiny_run / "best.pt", "--phrase-memory", "-1")
    assert rc != 0 and not out and "--phrase-memory" in one_error_line(err)
