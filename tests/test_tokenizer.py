import os
import stat
import subprocess
import sys

import pytest

from lyricgen.text import tokenizer
from lyricgen.text.tokenizer import LINE_BREAK, SPACE, normalize_line, tokenize_line, tokenize_lines


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


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_cache_dir_honours_env_and_is_private(tmp_path, monkeypatch):
    target = tmp_path / "a" / "b" / "cache"
    monkeypatch.setenv("LYRICGEN_CACHE", str(target))
    assert tokenizer.cache_dir() == target
    assert target.is_dir()
    assert _mode(target) == 0o700


def test_cache_dir_falls_back_to_xdg(tmp_path, monkeypatch):
    monkeypatch.delenv("LYRICGEN_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert tokenizer.cache_dir() == tmp_path / "xdg" / "lyricgen"
    assert _mode(tmp_path / "xdg" / "lyricgen") == 0o700


def test_existing_cache_dir_is_made_private(tmp_path, monkeypatch):
    target = tmp_path / "shared"
    target.mkdir()
    target.chmod(0o777)
    monkeypatch.setenv("LYRICGEN_CACHE", str(target))
    tokenizer.cache_dir()
    assert _mode(target) == 0o700


def test_jieba_tmp_dir_points_into_private_cache(tmp_path, monkeypatch):
    import jieba

    monkeypatch.setenv("LYRICGEN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(tokenizer, "_jieba", None)  # force the first-use setup again
    monkeypatch.setattr(jieba.dt, "tmp_dir", jieba.dt.tmp_dir)  # restored after the test
    assert tokenizer.segment("月光") == ["月光"]
    private = tmp_path / "cache" / "jieba"
    assert jieba.dt.tmp_dir == str(private)
    assert _mode(private) == 0o700


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
    return tokenizer.cache_dir() / "tokens" / f"{tokenizer.cache_key(lines)}.json"


def test_token_cache_round_trip(tiny_lines, fresh_cache, monkeypatch):
    expected = tokenize_lines(tiny_lines)
    assert tokenizer.tokenize_lines_cached(tiny_lines) == expected
    assert _entry(tiny_lines).is_file()
    assert _mode(fresh_cache / "tokens") == 0o700

    def no_jieba(lines):
        raise AssertionError("tokenised again despite a cache entry")

    monkeypatch.setattr(tokenizer, "tokenize_lines", no_jieba)
    assert tokenizer.tokenize_lines_cached(tiny_lines) == expected
    with pytest.raises(AssertionError):
        tokenizer.tokenize_lines_cached(tiny_lines, use_cache=False)


def test_token_cache_key_follows_the_text(tiny_lines):
    key = tokenizer.cache_key(tiny_lines)
    assert key == tokenizer.cache_key(list(tiny_lines))
    assert key != tokenizer.cache_key(tiny_lines[:-1])
    assert key != tokenizer.cache_key(tiny_lines[:-1] + [tiny_lines[-1] + "。"])
    assert tokenizer.cache_key(["ab", "c"]) != tokenizer.cache_key(["a", "bc"])


@pytest.mark.parametrize("garbage", [b"", b"\x00\xffnot json", b'{"a": 1}', b'[["too", "few"]]'])
def test_bad_token_cache_entry_is_ignored_and_rewritten(tiny_lines, fresh_cache, garbage):
    lines = tiny_lines[:5]
    path = _entry(lines)
    path.parent.mkdir(parents=True)
    path.write_bytes(garbage)
    assert tokenizer.tokenize_lines_cached(lines) == tokenize_lines(lines)
    assert tokenizer.tokenize_lines_cached(lines) == tokenize_lines(lines)
    assert path.read_bytes() != garbage


def test_unwritable_token_cache_does_not_fail(tiny_lines, fresh_cache):
    fresh_cache.mkdir()
    (fresh_cache / "tokens").write_text("a file where the directory should be")
    assert tokenizer.tokenize_lines_cached(tiny_lines[:3]) == tokenize_lines(tiny_lines[:3])
