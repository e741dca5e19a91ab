"""text/debris.py: credit and title/artist lines recognised, lyric lines kept; fitted/credits.py:
the names found are never completed in generation unless the user wrote them. Every line here is
made up (names included); the real corpus is only counted, never quoted."""
import pytest
import torch

from conftest import JAYCHOU, OVERFIT_LINES
from lyricgen.config import SamplingConfig
from lyricgen.fitted import SideModels
from lyricgen.fitted.credits import Credits
from lyricgen.text.corpus import read_corpus
from lyricgen.text.debris import credit_names, find_debris, is_credit, is_debris, summary
from lyricgen.training.run import SAMPLE_CORPUS
from lyricgen.writing.sampling import constrain

ARTIST = "林小岚"
LYRICS = ["晨光照亮小窗台", "火车穿过长隧道", "老街小猫在打盹", "雪花落满了屋檐", "灯塔守护着大海"]
TITLES = [f"{ARTIST} 晨光", f"海边的风 {ARTIST}", f"{ARTIST}   小窗台", f"  {ARTIST} "]
CREDITS = ["作词：陈一舟", "作曲:王大可", "编曲 王大可", "词：陈一舟　曲：王大可", "歌词提供：晚风歌词网", "[ar:陈一舟]",
           "www.example.com", "QQ 123456", "监制：王大可", "Lyrics: Zhou", "曲陈一舟歌词提供晚风", "作词作曲：陈一舟",
           "词/曲：陈一舟", "作词 作曲 陈一舟", "制作人 王大可", "LRC by 小张"]
# lines that look a little like debris and are lyrics: a name inside a sentence, roles inside words
KEPT = [f"我和{ARTIST}在海边唱歌", f"是我和{ARTIST}阿岚", "作曲家的梦想", "我为你作曲写下这首歌", "晨光 照亮 小窗台",
        "迷迷蒙蒙 你给的梦", "我在等 序曲完成", "一首歌 一个人 一座城", f"{ARTIST}说 晚安 明天见 好吗 我的朋友",
        "词不达意", "一曲离歌", "鼓起勇气", "演唱会结束了", "我在QQ上等你", "作词 是我的梦想 你知道吗", "编曲很难"]


def _is_artist(word):
    return word == ARTIST  # jieba is asked in the tests below that read real corpora


@pytest.mark.parametrize("line", CREDITS)
def test_credit_lines(line):
    assert is_credit(line)
    assert is_debris(line) == "credit"


@pytest.mark.parametrize("line, names", [("作词：陈一舟", ["陈一舟"]), ("作曲 陈一舟 编曲 王大可", ["陈一舟", "王大可"]),
                                         ("Music: Tom Lee / 陈一舟", ["Tom Lee", "陈一舟"]), ("[ar:陈一舟]", ["陈一舟"]),
                                         ("歌词提供：晚风歌词网", []), ("QQ 123456", []), ("LRC by 小张", ["小张"]),
                                         ("曲陈一舟歌词提供晚风", ["陈一舟", "晚风"])])
def test_credit_names(line, names):
    assert credit_names(line) == names


@pytest.mark.parametrize("line", KEPT + LYRICS + [""])
def test_lyric_lines_are_kept(line):
    assert is_debris(line, {ARTIST, "陈一舟", "王大可"}) is None


def test_title_lines_need_a_name_of_the_corpus():
    for line in TITLES:
        assert is_debris(line, {ARTIST}) == "title"
        assert is_debris(line, {"陈一舟"}) is None


def test_find_debris_counts_and_names():
    lines = LYRICS + TITLES + KEPT + CREDITS[:3] + ["", "晚风 陈一舟"] + LYRICS
    found = find_debris(lines, is_person=_is_artist)
    assert found.kept == LYRICS + KEPT + [""] + LYRICS
    assert found.counts == {"title": len(TITLES) + 1, "credit": 3}  # 陈一舟 is named by a credit line
    assert found.names == ["陈一舟", "王大可", ARTIST]
    assert found.left_out == len(TITLES) + 4 == 8
    assert summary(found.counts) == "left out 8 debris lines (5 title/artist, 3 credits)"
    assert summary({"title": 0, "credit": 1}) == "left out 1 debris line (0 title/artist, 1 credit)"


def test_a_credited_name_the_lyrics_sing_often_is_a_word():
    often = ["晚风吹过小窗台", "晚风轻轻地唱", "我在晚风里等你", "晚风带走了夏天"]
    lines = ["曲：晚风", "作词：陈一舟", "晚风 轻轻吹", "晚风 陈一舟"] + often + LYRICS
    found = find_debris(lines, is_person=_is_artist)
    assert found.names == ["陈一舟"]
    assert found.kept == ["晚风 轻轻吹"] + often + LYRICS
    assert find_debris(["曲：晚风", "晚风 轻轻吹"] + often[:3], is_person=_is_artist).names == ["晚风"]  # 3 is not often


def test_a_recurring_field_that_is_not_a_name_is_kept():
    lines = ["晨光 小窗台", "晨光 大海", "晨光 长隧道", "晨光 屋檐"]
    assert find_debris(lines, is_person=_is_artist).kept == lines
    assert find_debris(lines, is_person=lambda w: True).left_out == 4  # the name test decides


def test_a_name_on_fewer_than_three_short_lines_is_not_an_artist():
    lines = TITLES[:2] + LYRICS
    assert find_debris(lines, is_person=_is_artist).kept == lines


def test_jieba_names_the_artist():
    found = find_debris(LYRICS + TITLES + LYRICS)  # the real is_person_name: jieba's nr tag
    assert found.names == [ARTIST] and found.counts["title"] == len(TITLES)


def test_nothing_dropped_from_the_sample_and_fixture_corpora(tiny_lines):
    for lines in (read_corpus(SAMPLE_CORPUS), tiny_lines, OVERFIT_LINES):
        found = find_debris(lines)
        assert found.left_out == 0 and found.names == []


@pytest.mark.corpus
def test_the_shared_corpus(jaychou):
    lines = read_corpus(JAYCHOU)
    found = find_debris(lines)
    assert found.counts == {"title": 9, "credit": 1}  # checked by hand: all title/artist or credit lines
    assert len(found.names) == 2
    dropped = [line for line in lines if is_debris(line, set(found.names))]
    assert all(len("".join(line.split())) <= 12 for line in dropped)


# -- fitted/credits.py: names banned in generation ----------------------------------------------------------
CHARS = ["<unk>", "\n", " ", "我", "和", "林", "小", "岚", "在", "唱", "歌", "陈", "一", "舟"]


def test_the_last_character_of_a_name_is_banned_after_the_rest():
    ban = Credits([ARTIST, "陈一舟"]).ban(CHARS)
    assert ban.banned("我和林小") == {CHARS.index("岚")}
    assert ban.banned("我和陈一") == {CHARS.index("舟")}
    assert ban.banned("我和小") == set() and ban.banned("") == set()


def test_a_name_the_user_wrote_is_allowed():
    ban = Credits([ARTIST, "陈一舟"]).ban(CHARS, user_text=f"{ARTIST}的歌")
    assert ban.banned("我和林小") == set()
    assert ban.banned("我和陈一") == {CHARS.index("舟")}
    assert not Credits([ARTIST]).ban(CHARS, user_text=ARTIST)


def test_word_tokens_that_complete_or_hold_a_name_are_banned():
    words = ["<unk>", "\n", "林", "小岚", "林小岚", "小", "岚山", "歌"]
    ban = Credits([ARTIST]).ban(words)
    assert ban.banned("我和") == {4}  # a token holding the whole name, always
    assert ban.banned("我和林") == {3, 4}  # "小岚" completes it
    assert ban.banned("我和林小") == {4, 6}  # "岚山" completes it too


def test_credits_round_trip_and_old_side_models():
    side = SideModels(credits=Credits([ARTIST]))
    assert SideModels.from_dict(side.to_dict()).credits == Credits([ARTIST])
    assert SideModels.from_dict(SideModels().to_dict()).credits is None  # checkpoints from before it


def _decode(logp_of, ban, steps=6):
    """Greedy decoding of a made-up model that always wants to write the name next."""
    text = ""
    for _ in range(steps):
        logp = logp_of(text).unsqueeze(0)
        adj = constrain(logp, SamplingConfig(temperature=0, no_repeat_ngram=0), 0,
                        banned_ids=[ban.banned(text)] if ban is not None else None)
        text += CHARS[int(adj.argmax(dim=-1))]
    return text


def _eager_for(name):
    def logp_of(text):
        logp = torch.full((len(CHARS),), -10.0)
        nxt = name[len(text) % len(name)]
        logp[CHARS.index(nxt)] = -0.1  # the name, over and over
        logp[CHARS.index("歌")] = -1.0  # then this
        return logp
    return logp_of


def test_generation_never_completes_a_credited_name():
    logp_of = _eager_for(ARTIST)
    assert ARTIST in _decode(logp_of, None)
    text = _decode(logp_of, Credits([ARTIST]).ban(CHARS))
    assert ARTIST not in text and text.startswith("林小歌")
    assert ARTIST in _decode(logp_of, Credits([ARTIST]).ban(CHARS, user_text=ARTIST))  # the user's start word


def test_a_trained_model_does_not_write_a_credited_name(cli, tmp_path):
    """A tiny model trained on made-up lines that sing a name, with a credit line that names it: the
    name is found, stored in the checkpoint, and greedy decoding that would write it writes another
    token instead, unless the user's start word holds the name."""
    from lyricgen.checkpoint import load_checkpoint
    from lyricgen.writing.predictor import Predictor

    song = ["我和陈一舟去看海", "海风吹过小窗台", "陈一舟唱着歌", "晨光照亮了大海"]
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(["作词：陈一舟"] + song * 12) + "\n", encoding="utf-8")
    rc, _, err = cli("train", "--corpus", corpus, "--out", tmp_path / "run", "--unit", "char", "--epochs", "3",
                     "--embed-dim", "16", "--hidden-size", "32", "--seq-len", "16", "--batch-size", "8",
                     "--device", "cpu", "--quiet")
    assert rc == 0, err
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt.side.credits.names == ["陈一舟"] and ckpt.corpus.debris == {"title": 0, "credit": 1}
    vocab, predictor = ckpt.vocab, Predictor(ckpt.build_model(), ckpt.side.mixture)

    def next_token(start, ban):
        ids = [vocab.index[c] for c in start]
        logp, _ = predictor.start([vocab.line_break_id] + ids)
        adj = constrain(logp, SamplingConfig(), vocab.unk_id, banned_ids=[ban.banned(start)] if ban else None)
        return vocab.tokens[int(adj.argmax(dim=-1))]

    assert next_token("我和陈一", None) == "舟"  # what the model learnt
    assert next_token("我和陈一", ckpt.side.credits.ban(vocab.tokens)) != "舟"
    assert next_token("我和陈一", ckpt.side.credits.ban(vocab.tokens, user_text="陈一舟")) == "舟"
    # and songs, through the Lyricist as `lyricgen generate` writes them: never the name, unless asked
    from lyricgen.writing.lyricist import Lyricist

    writer = Lyricist.load(tmp_path / "run" / "last.pt")
    songs = [c.text for w in ("我和陈一", "海风") for c in writer.generate(w, lines=6, num_samples=4, seed=1,
                                                                          temperature=1.0)]
    assert all("陈一舟" not in s for s in songs)
    assert any("陈一舟" in c.text for c in writer.generate("我和陈一舟", lines=6, num_samples=8, seed=1,
                                                          temperature=1.0))
