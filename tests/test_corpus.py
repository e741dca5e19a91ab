"""text/corpus.py: reading and validating corpus files (hostile ones included), the contiguous
train/validation split, the held-out part and the copied share."""
import hashlib

import pytest

from conftest import JAYCHOU_SHA256, TINY_TRAIN
from lyricgen.checkpoint import load_checkpoint
from lyricgen.errors import LyricgenError
from lyricgen.text.corpus import (CorpusInfo, copied_share, held_out_part, load_corpus, read_corpus,
                                  split_lines)

# Original lines (not from any published lyrics), for the corpora made here
LINES = ["晨光照亮小窗台", "火车穿过长隧道", "老街小猫在打盹", "雪花落满了屋檐", "灯塔守护着大海", "星空下有一首歌",
         "秋天稻田一片金黄", "河水慢慢流向远方", "钟声敲响了黄昏", "梦里有一片森林", "晨光里我们出发", "火车载着我的梦"]
QUICK = ["--epochs", "1", "--max-steps", "2", *TINY_TRAIN, "--min-freq", "1"]  # the last --min-freq wins


def _corpus(tmp_path, data: bytes, name="c.txt"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _error(path, **kwargs) -> str:
    with pytest.raises(LyricgenError) as info:
        read_corpus(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def _train(cli, corpus, out, *extra):
    """A two-step training run on `corpus`: (exit code, stderr)."""
    rc, _, err = cli("train", "--corpus", corpus, "--out", out, *QUICK, *extra)
    return rc, err


def _tokens(out) -> list[str]:
    return load_checkpoint(out / "last.pt").vocab.tokens


# -- read_corpus / load_corpus -------------------------------------------------------------------------
def test_reads_the_fixture(tiny_corpus):
    lines = read_corpus(tiny_corpus)
    assert len(lines) == 80
    assert "月光下\u3000我们不分开" in lines


def test_load_corpus_records_what_a_checkpoint_needs(tiny_corpus):
    lines, info = load_corpus(tiny_corpus)
    assert lines == read_corpus(tiny_corpus)
    assert info == CorpusInfo(str(tiny_corpus.resolve()), hashlib.sha256(tiny_corpus.read_bytes()).hexdigest(),
                              80, "utf-8")
    assert CorpusInfo.from_dict(info.to_dict()) == info
    assert CorpusInfo.from_dict({"path": "p", "sha256": "s", "lines": 3}).encoding == "utf-8"  # older files


def test_missing_file(tmp_path):
    assert "not found" in _error(tmp_path / "nope.txt")


def test_directory(tmp_path):
    assert "directory" in _error(tmp_path)


@pytest.mark.parametrize("data", [b"", b"\n\n", b"  \t\n\xe3\x80\x80\n \r\n"])
def test_empty_or_whitespace_only(tmp_path, data):
    assert "no lyrics" in _error(_corpus(tmp_path, data))


def test_gb18030_is_refused_with_a_hint_then_reads_and_trains_with_its_encoding(cli, tmp_path):
    """(The command line's one error line for it is in test_cli.py's table of bad inputs.)"""
    path = _corpus(tmp_path, "月光\n".encode("utf-8") + "分开".encode("gb18030") + b"\n")
    message = _error(path)
    assert str(path) in message
    assert "byte offset 7" in message  # 月光 is 6 bytes, then the line break
    assert "--encoding gb18030" in message
    text = "月光照在河面\n我們不分开\n"
    assert read_corpus(_corpus(tmp_path, text.encode("gb18030")), encoding="gb18030") == ["月光照在河面", "我們不分开"]

    corpus = _corpus(tmp_path, "\n".join(["舊書店的門口有一隻貓", *LINES]).encode("gb18030") + b"\n", "gb.txt")
    rc, err = _train(cli, corpus, tmp_path / "b", "--encoding", "gb18030")
    assert rc == 0, err
    tokens = _tokens(tmp_path / "b")
    assert "晨光" in tokens and "貓" in tokens


def test_unknown_encoding(tmp_path):
    assert "unknown encoding" in _error(_corpus(tmp_path, b"abc\n"), encoding="no-such-codec")


def test_utf8_bom_is_dropped_and_never_a_token(cli, tmp_path):
    path = _corpus(tmp_path, "\ufeff月光\n分开\n".encode("utf-8"))
    assert read_corpus(path) == ["月光", "分开"]
    assert read_corpus(path, encoding="UTF-8") == ["月光", "分开"]

    corpus = _corpus(tmp_path, b"\xef\xbb\xbf" + "\n".join(LINES).encode("utf-8") + b"\n", "bom.txt")
    rc, err = _train(cli, corpus, tmp_path / "run")
    assert rc == 0, err
    tokens = _tokens(tmp_path / "run")
    assert not any("\ufeff" in t for t in tokens)
    assert "晨光" in tokens  # the first word of the first line survived intact


def test_crlf_and_cr_become_lf_and_never_reach_a_token(cli, tmp_path):
    lines = read_corpus(_corpus(tmp_path, "月光\r\n分开\r\n\r\n不\r下雨\r\n".encode("utf-8")))
    assert lines == ["月光", "分开", "", "不", "下雨"]
    assert not any("\r" in line for line in lines)

    corpus = _corpus(tmp_path, "\r\n".join(LINES).encode("utf-8") + b"\r\n" + "最后一行\r".encode("utf-8"), "crlf.txt")
    rc, err = _train(cli, corpus, tmp_path / "run")
    assert rc == 0, err
    tokens = _tokens(tmp_path / "run")
    assert not any("\r" in t for t in tokens)
    assert "\n" in tokens and "晨光" in tokens


def test_final_newline_does_not_add_a_line(tmp_path):
    assert read_corpus(_corpus(tmp_path, "a\nb\n".encode())) == ["a", "b"]
    assert read_corpus(_corpus(tmp_path, "a\nb".encode())) == ["a", "b"]


def test_nul_bytes_are_refused(tmp_path):
    """(The command line's one error line for it is in test_cli.py's table of bad inputs.)"""
    path = _corpus(tmp_path, "\n".join(LINES).encode("utf-8") + b"\n\x00\x00binary\n")
    message = _error(path)
    assert str(path) in message and "NUL byte at offset" in message


def test_utf16_with_bom_reads(tmp_path):
    path = _corpus(tmp_path, "月光\n分开\n".encode("utf-16"))
    assert read_corpus(path, encoding="utf-16") == ["月光", "分开"]


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf_32"])
def test_utf16_and_32_without_bom_read_despite_their_nul_bytes(tmp_path, encoding):
    path = _corpus(tmp_path, "月光\nab\n".encode(encoding))
    assert b"\x00" in path.read_bytes()
    assert read_corpus(path, encoding=encoding) == ["月光", "ab"]


@pytest.mark.corpus
def test_shared_corpus_reads(jaychou):
    assert hashlib.sha256(jaychou.read_bytes()).hexdigest() == JAYCHOU_SHA256
    lines = read_corpus(jaychou)
    assert len(lines) > 1000
    assert not any("\r" in line or "\ufeff" in line for line in lines)


# -- split_lines, held_out_part ------------------------------------------------------------------------
def test_split_is_contiguous_90_10():
    lines = [f"line {i}" for i in range(100)]
    train, val = split_lines(lines, 0.1)
    assert train == lines[:90] and val == lines[90:]


def test_split_without_validation():
    lines = ["a", "b", "c"]
    assert split_lines(lines, 0.0) == (lines, [])


def test_split_keeps_one_validation_line_when_asked():
    assert split_lines(["a", "b"], 0.01) == (["a"], ["b"])


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5])
def test_split_rejects_bad_fraction(fraction):
    with pytest.raises(LyricgenError):
        split_lines(["a", "b"], fraction)


def test_split_needs_training_lyrics():
    with pytest.raises(LyricgenError, match="training part"):
        split_lines(["", " ", "a"], 0.34)


def test_held_out_part_is_the_validation_tail():
    lines = [f"line {i}" for i in range(20)]
    assert held_out_part(lines, 0.1, "f.txt") == lines[18:] == split_lines(lines, 0.1)[1]
    with pytest.raises(LyricgenError, match="without a held-out part"):
        held_out_part(lines, 0.0, "f.txt")
    with pytest.raises(LyricgenError, match="f.txt is too short"):
        held_out_part(["月光"], 0.1, "f.txt")  # one line: nothing is held out
    with pytest.raises(LyricgenError, match="too short"):
        held_out_part(["月光", "分开", " "], 0.2, "f.txt")  # the tail is blank


def test_copied_share():
    assert copied_share(["a", "b"], ["a", "c", "", "b "]) == pytest.approx(2 / 3)
    assert copied_share(["a"], []) == 0.0
    assert copied_share(["月光\u3000下"], ["月光 下"]) == 1.0  # the same line after normalisation


# -- debris: title/artist and credit lines left out of training (text/debris.py) ------------------------
ARTIST = "林小岚"  # made up, like every line here
DEBRIS = [f"{ARTIST} 晨光", "作词：陈一舟", f"海边的风 {ARTIST}", "编曲：王大可", f"{ARTIST}   雪夜", "歌词提供：晚风歌词网"]


def _debris_corpus(tmp_path):
    lines = LINES[:4] + DEBRIS[:3] + LINES[4:8] + DEBRIS[3:] + LINES[8:] + [f"我和{ARTIST}在海边唱歌"]
    return _corpus(tmp_path, ("\n".join(lines) + "\n").encode()), lines


def test_load_corpus_leaves_debris_out_when_asked(tmp_path):
    path, lines = _debris_corpus(tmp_path)
    kept, info = load_corpus(path, keep_debris=False)
    assert kept == [line for line in lines if line not in DEBRIS]  # the name inside a sentence stays
    assert info.debris == {"title": 3, "credit": 3} and info.left_out == 6
    assert info.names == ["陈一舟", "王大可", ARTIST]
    assert info.lines == len(lines) and info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()  # as read
    assert CorpusInfo.from_dict(info.to_dict()) == info
    assert load_corpus(path) == (lines, CorpusInfo(info.path, info.sha256, len(lines)))  # the default keeps all


def test_a_corpus_of_debris_only_is_one_error_line(tmp_path):
    path = _corpus(tmp_path, "\n".join(DEBRIS).encode())
    with pytest.raises(LyricgenError, match="only title, artist and credit lines; pass --keep-debris") as info:
        load_corpus(path, keep_debris=False)
    assert "\n" not in str(info.value)


def test_train_leaves_debris_out_and_says_so_in_one_line(cli, tmp_path):
    path, _ = _debris_corpus(tmp_path)
    loud = [arg for arg in QUICK if arg != "--quiet"]
    rc, _, err = cli("train", "--corpus", path, "--out", tmp_path / "run", *loud)
    assert rc == 0, err
    said = [line for line in err.splitlines() if "left out" in line]
    assert said == ["left out 6 debris lines (3 title/artist, 3 credits); --keep-debris keeps them"]
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt.tokenizer.keep_debris is False and ckpt.corpus.debris == {"title": 3, "credit": 3}
    assert ckpt.side.credits.names == ["陈一舟", "王大可", ARTIST]
    assert "作词" not in ckpt.vocab.tokens and "词" not in ckpt.vocab.tokens  # no credit line was trained on


def test_keep_debris_trains_on_every_line(cli, tmp_path):
    path, lines = _debris_corpus(tmp_path)
    loud = [arg for arg in QUICK if arg != "--quiet"]
    rc, _, err = cli("train", "--corpus", path, "--out", tmp_path / "run", *loud, "--keep-debris")
    assert rc == 0, err
    assert "left out" not in err
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt.tokenizer.keep_debris is True and ckpt.corpus.debris == {} and ckpt.side.credits is None
    assert "词" in ckpt.vocab.tokens


def test_an_old_checkpoint_resumes_on_every_line_as_before(cli, tmp_path):
    """A checkpoint from before debris has no keep_debris: it was trained on every line, and resumes so."""
    import torch

    path, _ = _debris_corpus(tmp_path)
    loud = [arg for arg in QUICK if arg != "--quiet"]
    rc, _, err = cli("train", "--corpus", path, "--out", tmp_path / "run", *loud, "--keep-debris")
    assert rc == 0, err
    validation = [line for line in err.splitlines() if line.startswith("corpus ")]
    last = tmp_path / "run" / "last.pt"
    d = torch.load(last, weights_only=True)
    del d["tokenizer"]["keep_debris"]
    torch.save(d, last)
    assert load_checkpoint(last).tokenizer.keep_debris is True
    rc, _, err = cli("train", "--resume", last, "--epochs", "2", "--max-steps", "4", "--device", "cpu")
    assert rc == 0, err
    assert [line for line in err.splitlines() if line.startswith("corpus ")] == validation  # the same lines
    assert "left out" not in err
    resumed = load_checkpoint(last)
    assert resumed.tokenizer.keep_debris is True and resumed.corpus.debris == {} and resumed.training.state.step == 4
    rc, _, err = cli("train", "--resume", last, "--epochs", "3", "--keep-debris", "--device", "cpu")
    assert rc != 0 and "--keep-debris is fixed by the checkpoint" in err
