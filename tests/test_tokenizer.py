"""text/tokenizer.py: line normalisation, jieba segmentation (its cache kept private), pathological
lines, mixed scripts, and the on-disk tokenisation cache."""
import os
import random
import stat
import subprocess
import sys

import numpy as np
import pytest

from conftest import TINY_TRAIN
from lyricgen.checkpoint import load_checkpoint
from lyricgen.fileio import cache_dir
from lyricgen.text import tokenizer
from lyricgen.text.tokenizer import LINE_BREAK, MAX_SEGMENT, SPACE, normalize_line, tokenize_line, tokenize_lines


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("raw, expected", [
    ("月光\u3000下", "月光 下"),
    ("月光\t\t下", "月光 下"),
    ("月光    下", "月光 下"),
    ("月光 \u3000\t 下", "月光 下"),
    ("\u3000 月光下\t ", "月光下"),
    ("月光\u00a0下", "月光 下"),  # no-break space
    ("coffee  shop\u3000等你", "coffee shop 等你"),
    ("", ""),
    ("\u3000\t  ", ""),
])
def test_normalize_line(raw, expected):
    assert normalize_line(raw) == expected


def test_tokens_are_never_empty_nor_line_breaks(tiny_lines):
    for line in tiny_lines:
        tokens = tokenize_line(line)
        assert tokens, line
        for tok in tokens:
            assert tok != "" and LINE_BREAK not in tok
            # whitespace survives only as the single-space token
            assert tok == SPACE or not any(ch.isspace() for ch in tok), (line, tok)


def test_tokens_spell_the_normalized_line(tiny_lines):
    for line, tokens in zip(tiny_lines, tokenize_lines(tiny_lines)):
        assert "".join(tokens) == normalize_line(line)


def test_blank_line_has_no_tokens():
    assert tokenize_line("") == []
    assert tokenize_line(" \u3000\t") == []


def test_space_variants_give_identical_tokens(tiny_lines):
    with_ideographic = [line for line in tiny_lines if "\u3000" in line]
    with_ascii = [line for line in tiny_lines if " " in line]
    assert with_ideographic and with_ascii, "the fixture should hold both kinds of spaces"
    for line in with_ideographic:
        expected = tokenize_line(line)
        assert SPACE in expected
        assert tokenize_line(line.replace("\u3000", " ")) == expected
        assert tokenize_line(line.replace("\u3000", " \t ")) == expected
    for line in with_ascii:
        assert tokenize_line(line.replace(" ", "\u3000")) == tokenize_line(line)
        assert tokenize_line("\u3000" + line + "  ") == tokenize_line(line)


def test_a_huge_line_is_segmented_in_bounded_slices(tmp_path, monkeypatch):
    """A corpus of one huge line (no line breaks) is segmented MAX_SEGMENT characters at a time, so
    memory follows the slice, not the line. (How long a 2 MB line takes is measured by the benchmarks.)"""
    from lyricgen.text.corpus import read_corpus

    chars = "的一是不了人我在有他这中大来上个到说们为子和你地出道也时年"
    rng = random.Random(2)
    corpus = tmp_path / "one_line.txt"
    corpus.write_text("".join(rng.choice(chars) for _ in range(5 * MAX_SEGMENT + 123)) + "\n", encoding="utf-8")
    (line,) = read_corpus(corpus)
    jieba = tokenizer._segmenter()
    real_lcut, seen = jieba.lcut, []

    def lcut(text, *args, **kwargs):
        seen.append(len(text))
        return real_lcut(text, *args, **kwargs)

    monkeypatch.setattr(jieba, "lcut", lcut)
    tokens = tokenize_line(line)
    assert seen == [MAX_SEGMENT] * 5 + [123]
    assert "".join(tokens) == normalize_line(line)
    assert all(tokens) and len(tokens) > 1000


TRAD_MIXED = ["晨光照亮舊書店", "我們在 night market 走散", "燈光下的 guitar 還在唱", "雨後的街道很安靜",
              "night 來了 我不怕", "guitar 陪我度過冬天", "舊書店的門開著", "我們說好 see you tomorrow",
              "燈光照亮回家的路", "安靜的 night 有星星", "雨後我們一起走", "see you 在下一個路口"]


def test_traditional_and_mixed_english_lines_train_and_generate(cli, tmp_path):
    corpus = tmp_path / "trad.txt"
    corpus.write_text("\n".join(TRAD_MIXED) + "\n", encoding="utf-8")
    out = tmp_path / "run"
    rc, _, err = cli("train", "--corpus", corpus, "--out", out, "--epochs", "1", "--max-steps", "2", *TINY_TRAIN,
                     "--min-freq", "1")
    assert rc == 0, err
    tokens = load_checkpoint(out / "last.pt").vocab.tokens
    assert "night" in tokens and "書" in "".join(tokens) and "guitar" in tokens
    for start in ("night", "燈光", "舊書店"):
        rc, text, err = cli("generate", start, "--checkpoint", out / "last.pt", "--max-tokens", "12")
        assert rc == 0, err
        assert text.startswith(start) and len(text.strip()) > len(start)
        assert "Traceback" not in err


# -- jieba's dictionary cache stays private ------------------------------------------------------------
@pytest.fixture
def fresh_jieba(monkeypatch):
    """The next segment() sets jieba up again; jieba's own setting is restored after the test."""
    import jieba

    monkeypatch.setattr(tokenizer, "_jieba", None)
    monkeypatch.setattr(jieba.dt, "tmp_dir", jieba.dt.tmp_dir)
    return jieba


def test_jieba_tmp_dir_points_into_private_cache(tmp_path, monkeypatch, fresh_jieba):
    monkeypatch.setenv("LYRICGEN_CACHE", str(tmp_path / "cache"))
    assert tokenizer.segment("月光") == ["月光"]
    private = tmp_path / "cache" / "jieba"
    assert fresh_jieba.dt.tmp_dir == str(private)
    assert _mode(private) == 0o700


def test_unusable_cache_directory_falls_back_to_a_fresh_private_one(tmp_path, monkeypatch, fresh_jieba):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the fallback goes
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("LYRICGEN_CACHE", str(blocker / "cache"))
    assert tokenizer.segment("我们不分开") == ["我们", "不", "分开"]
    assert os.path.dirname(fresh_jieba.dt.tmp_dir) == str(tmp_path)
    assert os.path.basename(fresh_jieba.dt.tmp_dir).startswith("lyricgen-jieba-")
    assert _mode(fresh_jieba.dt.tmp_dir) == 0o700
    # and the token cache is skipped, not an error
    assert tokenizer.tokenize_cached(["我们不分开"]).to_lines() == [["我们", "不", "分开"]]
    assert blocker.read_text() == "not a directory"


def test_fresh_process_writes_jieba_cache_only_to_private_dir(tmp_path):
    """In a fresh interpreter the dictionary cache lands in our directory, not in $TMPDIR."""
    cache, tmp = tmp_path / "cache", tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "LYRICGEN_CACHE": str(cache), "TMPDIR": str(tmp)}
    code = "from lyricgen.text.tokenizer import segment; print(segment('我们不分开'))"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "分开" in proc.stdout
    assert list((cache / "jieba").glob("jieba*.cache")), list(cache.rglob("*"))
    assert list(tmp.iterdir()) == []


# -- the on-disk tokenisation cache --------------------------------------------------------------------
@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LYRICGEN_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _entry(lines):
    """(ids file, table file) of a cache entry."""
    key = tokenizer.cache_key(lines)
    return cache_dir() / "tokens" / f"{key}.ids.npy", cache_dir() / "tokens" / f"{key}.table.json"


def test_token_cache_round_trip(tiny_lines, fresh_cache, monkeypatch):
    expected = tokenize_lines(tiny_lines)
    assert tokenizer.tokenize_cached(tiny_lines).to_lines() == expected
    ids_file, table_file = _entry(tiny_lines)
    assert ids_file.is_file() and table_file.is_file()
    assert _mode(fresh_cache / "tokens") == 0o700

    def no_jieba(lines):
        raise AssertionError("tokenised again despite a cache entry")

    monkeypatch.setattr(tokenizer, "tokenize_lines", no_jieba)
    hit = tokenizer.tokenize_cached(tiny_lines)
    assert hit.to_lines() == expected
    assert isinstance(hit.ids, np.memmap) and hit.ids.dtype == np.int32  # read in place, not copied
    with pytest.raises(AssertionError):
        tokenizer.tokenize_cached(tiny_lines, use_cache=False)


def test_token_cache_key_follows_the_text_and_the_tokenizer(tiny_lines, monkeypatch):
    key = tokenizer.cache_key(tiny_lines)
    assert key == tokenizer.cache_key(list(tiny_lines))
    assert key != tokenizer.cache_key(tiny_lines[:-1])
    assert key != tokenizer.cache_key(tiny_lines[:-1] + [tiny_lines[-1] + "。"])
    assert tokenizer.cache_key(["ab", "c"]) != tokenizer.cache_key(["a", "bc"])
    monkeypatch.setattr(tokenizer, "TOKENIZER_VERSION", "next")
    assert tokenizer.cache_key(tiny_lines) != key
    monkeypatch.undo()
    monkeypatch.setattr(tokenizer, "jieba_version", lambda: "0.43")
    assert tokenizer.cache_key(tiny_lines) != key


@pytest.mark.parametrize("garbage", [b"", b"\x00\xffnot json", b'{"a": 1}', b'["too", "few"]'])
@pytest.mark.parametrize("which", ["ids", "table"])
def test_bad_token_cache_entry_is_ignored_and_rewritten(tiny_lines, fresh_cache, garbage, which):
    lines = tiny_lines[:5]
    tokenizer.tokenize_cached(lines)
    path = _entry(lines)[0 if which == "ids" else 1]
    path.write_bytes(garbage)
    assert tokenizer.tokenize_cached(lines).to_lines() == tokenize_lines(lines)
    assert path.read_bytes() != garbage
    assert tokenizer.tokenize_cached(lines).to_lines() == tokenize_lines(lines)


def test_a_table_that_does_not_fit_the_ids_is_a_miss(tiny_lines, fresh_cache):
    lines = tiny_lines[:5]
    tokenizer.tokenize_cached(lines)
    _entry(lines)[1].write_text('["只有一个"]', encoding="utf-8")  # the ids index far past it
    assert tokenizer.tokenize_cached(lines).to_lines() == tokenize_lines(lines)


def test_unwritable_token_cache_does_not_fail(tiny_lines, fresh_cache):
    fresh_cache.mkdir()
    (fresh_cache / "tokens").write_text("a file where the directory should be")
    assert tokenizer.tokenize_cached(tiny_lines[:3]).to_lines() == tokenize_lines(tiny_lines[:3])
    assert (fresh_cache / "tokens").read_text() == "a file where the directory should be"


# -- the compact token stream, and tokenising over processes ------------------------------------------
def test_token_stream_holds_the_text_compactly(tiny_lines):
    lines = tiny_lines + ["", "  "]  # blank lines are lines too
    token_lines = tokenize_lines(lines)
    stream = tokenizer.TokenStream.from_lines(token_lines)
    assert stream.ids.dtype == np.int32 and len(stream.table) == len(set(stream.table))
    assert stream.to_lines() == token_lines and stream.num_lines == len(lines)
    from collections import Counter

    counts = Counter(t for line in token_lines for t in line)
    assert dict(zip(stream.table, stream.counts().tolist())) == counts
    assert stream.chars == sum(len("".join(line)) + 1 for line in token_lines)


def test_tokenising_over_processes_gives_the_same_stream(tiny_lines, monkeypatch):
    lines = tiny_lines * 30  # 2,400 lines in 3 chunks of 1,000
    monkeypatch.setattr(tokenizer, "PARALLEL_MIN_LINES", 1)
    monkeypatch.setattr(tokenizer, "CHUNK_LINES", 1000)
    done = []
    parallel = tokenizer.tokenize(lines, workers=2, progress=done.append)
    single = tokenizer.tokenize(lines, workers=1)
    assert parallel.table == single.table and np.array_equal(parallel.ids, single.ids)
    assert parallel.to_lines() == tokenize_lines(lines)
    assert done == [1000, 2000, 2400]
