"""text/wordvectors.py and writing/theme.py: the word vectors converted once from a joblib pickle of a
BallTree (a hand-made one here; the real cnsyn when installed), expand/plan/fit, the keyword bias,
--theme and --keywords as options, and a song that holds its theme."""
import importlib.metadata
import random
import struct

import numpy as np
import pytest
import torch

from conftest import one_error_line
from lyricgen.config import SongConfig
from lyricgen.errors import LyricgenError, OptionError
from lyricgen.text import wordvectors
from lyricgen.text.wordvectors import WordVectors, convert, read_tree
from lyricgen.writing import theme as themes
from lyricgen.writing.lyricist import Lyricist


# -- a joblib pickle of {"model": BallTree, "words": [...]}, written opcode by opcode ------------------
def _str(s: str) -> bytes:
    b = s.encode("utf-8")
    return b"\x8c" + bytes([len(b)]) + b if len(b) < 256 else b"X" + struct.pack("<I", len(b)) + b


def _global(module: str, name: str) -> bytes:
    return _str(module) + _str(name) + b"\x93"  # STACK_GLOBAL


def _int(n: int) -> bytes:
    return b"J" + struct.pack("<i", n)  # BININT


def _dtype(code: str) -> bytes:  # numpy's own reduction of a dtype
    return (_global("numpy", "dtype") + _str(code) + b"\x89\x88\x87R"  # (code, False, True), REDUCE
            + b"(" + _int(3) + _str("<") + b"NNN" + _int(-1) + _int(-1) + _int(0) + b"tb")  # BUILD state


def _array(a: np.ndarray) -> bytes:
    """A NumpyArrayWrapper, built, then the array's raw bytes (joblib <= 1.1: no alignment padding)."""
    state = (b"}(" + _str("subclass") + _global("numpy", "ndarray") + _str("shape") + b"(" + b"".join(
        _int(n) for n in a.shape) + b"t" + _str("order") + _str("C") + _str("dtype") + _dtype(a.dtype.str[1:])
             + _str("allow_mmap") + b"\x88u")
    return _global("joblib.numpy_pickle", "NumpyArrayWrapper") + b")\x81" + state + b"b" + a.tobytes()


def tree_pickle(words: list[str], data: np.ndarray, extra: bytes = b"") -> bytes:
    idx = np.arange(len(words), dtype=np.int64)
    metric = (_global("sklearn.metrics._dist_metrics", "newObj") + _global("sklearn.metrics._dist_metrics",
              "EuclideanDistance") + b"\x85R" + b"(" + _int(2) + b"tb")
    tree = (_global("sklearn.neighbors._ball_tree", "newObj") + _global("sklearn.neighbors._ball_tree", "BallTree")
            + b"\x85R" + b"(" + _array(data) + _array(idx) + _int(40) + metric + extra + b"tb")
    word_list = b"](" + b"".join(_str(w) for w in words) + b"e"
    return b"\x80\x04}(" + _str("model") + tree + _str("words") + word_list + b"u."


WORDS = ["月光", "月色", "夜空", "思念", "想念", "雨", "汽车", "月"]
VECS = np.array([[1, 0.1, 0], [0.95, 0.2, 0], [0.8, 0.5, 0], [0, 1, 0.1], [0, 0.97, 0.2], [0.3, 0.1, 0.9],
                 [0, 0, 1], [0.9, 0, 0.1]], dtype=np.float64)


def unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def test_the_converter_reads_the_trees_array_and_words_and_writes_plain_files(tmp_path):
    path = tmp_path / "tree.m"
    path.write_bytes(tree_pickle(WORDS, VECS))
    words, data = read_tree(path)
    assert words == WORDS and data.dtype == np.float64 and np.array_equal(data, VECS)
    convert(path, tmp_path / "vec")
    vectors = wordvectors.load(tmp_path / "vec")
    assert vectors.words == WORDS and vectors.vectors.dtype == np.float16
    assert np.allclose(vectors.vectors.astype(np.float32), unit(VECS), atol=2e-3)
    assert np.load(tmp_path / "vec.npy", allow_pickle=False).shape == (len(WORDS), 3)
    assert [w for w, _ in vectors.nearest(VECS[0], 3)] == ["月光", "月色", "月"]


def test_the_converter_runs_nothing_the_pickle_names(tmp_path):
    marker = tmp_path / "ran"
    call = _global("os", "system") + _str(f"touch {marker}") + b"\x85R"  # os.system("touch ...")
    path = tmp_path / "tree.m"
    path.write_bytes(tree_pickle(WORDS, VECS, extra=call))
    words, data = read_tree(path)
    assert words == WORDS and not marker.exists()
    path.write_bytes(b"\x80\x04" + _str("not a tree") + b".")
    with pytest.raises(LyricgenError, match="not the tree"):
        read_tree(path)


needs_cnsyn = pytest.mark.skipif(not any(True for _ in importlib.metadata.distributions(name="cnsyn")),
                                 reason="cnsyn (extra 'theme') is not installed")


@needs_cnsyn
def test_the_real_vectors_give_sensible_neighbours():
    vectors = wordvectors.load()
    assert len(vectors.words) == 129_691 and vectors.vectors.shape == (129_691, 75)
    near = [w for w, _ in vectors.nearest(vectors.vector("月光"), 12)]
    assert "月色" in near or "夜空" in near, near
    near = [w for w, _ in vectors.nearest(vectors.vector("思念"), 12)]
    assert "想念" in near, near


def test_without_cnsyn_a_theme_is_one_line_naming_the_extra(monkeypatch, tmp_path):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(wordvectors.importlib.metadata, "distribution", missing)
    with pytest.raises(LyricgenError, match=r"lyricgen\[theme\]"):
        wordvectors.load(tmp_path / "none")


# -- expand, plan, fit, the bias -----------------------------------------------------------------------
@pytest.fixture
def vectors():
    return WordVectors(WORDS, unit(VECS).astype(np.float16))


def test_expand_finds_the_neighbours_the_model_can_write(vectors):
    theme = themes.expand("月光", [], 4, vectors, writable=lambda w: w != "夜空")
    assert theme.words[0] == "月光" and "月色" in theme.words and "夜空" not in theme.words
    assert "汽车" not in theme.words[:3]
    theme = themes.expand("月光", ["思念"], 3, vectors, writable=lambda w: True)
    assert theme.words[:2] == ["思念", "月光"]  # keywords first
    with pytest.raises(OptionError, match="theme"):
        themes.expand("汽油", [], 3, vectors, writable=lambda w: True)  # no character of it has a vector


def test_plan_puts_a_keyword_in_about_half_the_lines_spread_over_the_song():
    words = ["月光", "月色", "夜空", "思念", "想念", "雨"]
    for n in (1, 4, 8, 16):
        placed = themes.plan(words, n, random.Random(n))
        assert len(placed) == n
        carried = [i for i, w in enumerate(placed) if w]
        assert len(carried) == max(n // 2, 1)
        assert n == 1 or carried[-1] >= n - 2  # the end of the song too, not only its start
    assert themes.plan([], 4, random.Random(0)) == [None] * 4
    assert themes.plan(words, 8, random.Random(1)) == themes.plan(words, 8, random.Random(1))


def test_fit_is_higher_for_a_line_on_the_theme(vectors):
    theme = themes.expand("月光", [], 3, vectors, writable=lambda w: True)
    assert themes.fit("月色", theme) > 0.9 > themes.fit("汽车", theme)
    assert themes.fit("abc", theme) == 0.0
    assert themes.fit("月色", theme, ["汽车"]) < themes.fit("月色", theme)  # the line before counts too


def test_the_report_measures_theme_and_adjacent_fit(vectors, monkeypatch):
    from lyricgen.writing.report import fit_figures

    monkeypatch.setattr(wordvectors, "load", lambda *a, **k: vectors)
    on, off = fit_figures([["月光", "", "月色"]], ["月光"]), fit_figures([["月光", "汽车"]], ["月光"])
    assert on["theme_fit"] > off["theme_fit"] and on["adjacent_fit"] > off["adjacent_fit"]
    assert abs(on["adjacent_fit"] - float(unit(VECS[0]) @ unit(VECS[1]))) < 1e-3  # the blank line is skipped
    assert fit_figures([["月光", "月色"]], None)["theme_fit"] is None  # real passages: no start word

    def missing(*a, **k):
        raise LyricgenError("no vectors")

    monkeypatch.setattr(wordvectors, "load", missing)
    assert fit_figures([["月光", "月色"]], ["月光"]) == {}


def test_the_keyword_bias_favours_its_first_character_then_the_next():
    tokens = ["<pad>", "<unk>", "\n", "月", "色", "夜", "月色", "我"]
    bias = themes.KeywordBias("月色", tokens, "cpu")
    toks = torch.tensor([[7], [3], [6]])  # 我 | 月 | 月色
    b = bias(toks)
    assert b[0, 3] == themes.FIRST_BONUS and b[0, 6] == themes.FIRST_BONUS and b[0, 4] == 0 and b[0, 7] == 0
    assert b[1, 4] == themes.NEXT_BONUS and b[1, 5] == 0
    assert not b[2].any()  # written whole: nothing more
    assert themes.keyword_bias(None, tokens, "cpu") is None


# -- the options, and songs ----------------------------------------------------------------------------
@pytest.mark.parametrize("kw,words", [({"theme": " "}, ["theme", "empty"]), ({"keywords": " ,，"}, ["keywords"]),
                                      ({"keywords": ",".join(["月"] * 40)}, ["keywords"]),
                                      ({"keywords": "月光", "plain": True}, ["plain"])])
def test_bad_theme_options_are_refused(kw, words):
    with pytest.raises(OptionError) as e:
        SongConfig(**kw)
    for word in words:
        assert word in str(e.value)


def test_keywords_the_model_cannot_write_are_one_error_line(cli, tiny_run, monkeypatch, vectors):
    monkeypatch.setattr(wordvectors, "load", lambda: vectors)
    rc, out, err = cli("generate", "月光", "--checkpoint", tiny_run / "best.pt", "--lines", "4", "--keywords", "龘龘")
    assert rc != 0 and not out
    line = one_error_line(err)
    assert "keywords" in line and "龘龘" in line


@pytest.fixture(scope="module")
def writer(tiny_run):
    return Lyricist.load(tiny_run / "best.pt")


def test_a_song_with_a_theme_carries_its_words(writer, monkeypatch, tiny_lines):
    """On the tiny run (greedy, deterministic), lines carry the theme's words far more often with it."""
    known = [w for w in ("月光", "思念", "雨", "夜空", "月色") if w in writer.vocab]
    assert len(known) >= 2, "the tiny corpus should have these words"
    vectors = WordVectors(WORDS, unit(VECS).astype(np.float16))
    monkeypatch.setattr(wordvectors, "load", lambda: vectors)

    def share(keywords):
        hits = total = 0
        for start in ("我们", "晚风", "城市"):
            song = SongConfig(keywords=keywords) if keywords else SongConfig()
            text = writer.generate(start, lines=8, song=song)[0].text
            lines = [x for x in text.split("\n") if x]
            hits += sum(any(w in x for w in known) for x in lines)
            total += len(lines)
        return hits / total

    without, with_theme = share(None), share(",".join(known))
    assert with_theme >= without + 0.25, (without, with_theme)
