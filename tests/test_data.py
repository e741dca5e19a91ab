import hashlib
from collections import Counter

import pytest
import torch

from lyricgen.data import (IGNORE, WindowDataset, copied_share, epoch_order, num_batches, prepare, read_corpus,
                           split_lines)
from lyricgen.errors import LyricgenError
from lyricgen.evaluate import count_chars
from lyricgen.text.tokenizer import normalize_line, tokenize_lines


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


# -- read_corpus -------------------------------------------------------------------------------------
def test_reads_the_fixture(tiny_corpus):
    lines = read_corpus(tiny_corpus)
    assert len(lines) == 80
    assert "月光下\u3000我们不分开" in lines


def test_missing_file(tmp_path):
    assert "not found" in _error(tmp_path / "nope.txt")


def test_directory(tmp_path):
    assert "directory" in _error(tmp_path)


@pytest.mark.parametrize("data", [b"", b"\n\n", b"  \t\n\xe3\x80\x80\n \r\n"])
def test_empty_or_whitespace_only(tmp_path, data):
    assert "no lyrics" in _error(_corpus(tmp_path, data))


def test_non_utf8_names_offset_and_gb18030(tmp_path):
    path = _corpus(tmp_path, "月光\n".encode("utf-8") + "分开".encode("gb18030") + b"\n")
    message = _error(path)
    assert "byte offset 7" in message  # 月光 is 6 bytes, then the line break
    assert "gb18030" in message


def test_gb18030_with_encoding(tmp_path):
    text = "月光照在河面\n我們不分开\n"
    path = _corpus(tmp_path, text.encode("gb18030"))
    assert read_corpus(path, encoding="gb18030") == ["月光照在河面", "我們不分开"]


def test_unknown_encoding(tmp_path):
    assert "unknown encoding" in _error(_corpus(tmp_path, b"abc\n"), encoding="no-such-codec")


def test_bom_is_dropped(tmp_path):
    path = _corpus(tmp_path, "\ufeff月光\n分开\n".encode("utf-8"))
    assert read_corpus(path) == ["月光", "分开"]
    assert read_corpus(path, encoding="UTF-8") == ["月光", "分开"]


def test_crlf_and_cr_become_lf(tmp_path):
    lines = read_corpus(_corpus(tmp_path, "月光\r\n分开\r\n\r\n不\r下雨\r\n".encode("utf-8")))
    assert lines == ["月光", "分开", "", "不", "下雨"]
    assert not any("\r" in line for line in lines)


def test_final_newline_does_not_add_a_line(tmp_path):
    assert read_corpus(_corpus(tmp_path, "a\nb\n".encode())) == ["a", "b"]
    assert read_corpus(_corpus(tmp_path, "a\nb".encode())) == ["a", "b"]


def test_nul_byte_is_refused(tmp_path):
    assert "NUL" in _error(_corpus(tmp_path, b"abc\n\x00def\n"))


def test_utf16_with_bom_reads(tmp_path):
    path = _corpus(tmp_path, "月光\n分开\n".encode("utf-16"))
    assert read_corpus(path, encoding="utf-16") == ["月光", "分开"]


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_without_bom_reads(tmp_path, encoding):
    path = _corpus(tmp_path, "月光\nab\n".encode(encoding))
    assert read_corpus(path, encoding=encoding) == ["月光", "ab"]


@pytest.mark.corpus
def test_shared_corpus_reads(jaychou):
    assert hashlib.sha256(jaychou.read_bytes()).hexdigest() == \
        "f0cab49f5d00e736c7201a0e2aa9c8dd72da1940c9491b309e4cc657be0faa48"
    lines = read_corpus(jaychou)
    assert len(lines) > 1000
    assert not any("\r" in line or "\ufeff" in line for line in lines)


# -- split_lines -------------------------------------------------------------------------------------
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
    with pytest.raises(LyricgenError):
        split_lines(["", " ", "a"], 0.34)


def test_copied_share():
    assert copied_share(["a", "b"], ["a", "c", "", "b "]) == pytest.approx(2 / 3)
    assert copied_share(["a"], []) == 0.0


# -- WindowDataset -----------------------------------------------------------------------------------
def tutorial_windows(stream: torch.Tensor, seq_len: int):
    """The d2l/tutorial data iterator's mistake: window i starts at token i (not i * seq_len), and
    there are len // seq_len of them, so only the first len / seq_len tokens are ever targets."""
    n = (stream.numel() - 1) // seq_len
    return [(stream[i:i + seq_len], stream[i + 1:i + seq_len + 1]) for i in range(n)]


def target_counts(windows) -> Counter:
    counts = Counter()
    for _, y in windows:
        counts.update(int(t) for t in y if t != IGNORE)
    return counts


@pytest.mark.parametrize("length, seq_len", [(2, 1), (9, 8), (10, 8), (16, 8), (17, 8), (100, 7), (101, 10),
                                             (64, 16), (1000, 64)])
def test_every_token_is_the_target_of_exactly_one_window(length, seq_len):
    stream = torch.arange(length) + 1000  # distinct ids: a target's value says which token it is
    ds = WindowDataset(stream, seq_len)
    assert len(ds) == -(-(length - 1) // seq_len)
    counts = target_counts(ds[i] for i in range(len(ds)))
    assert counts == Counter(stream[1:].tolist())  # every token but the leading context, once each
    if length - 1 >= 2 * seq_len:  # the tutorial's windows fail the same check
        assert target_counts(tutorial_windows(stream, seq_len)) != Counter(stream[1:].tolist())


@pytest.mark.parametrize("length, seq_len", [(9, 8), (23, 5), (100, 7)])
def test_targets_are_inputs_shifted_by_one(length, seq_len):
    stream = torch.arange(length) + 1000
    ds = WindowDataset(stream, seq_len)
    for i in range(len(ds)):
        x, y = ds[i]
        assert x.shape == y.shape == (seq_len,)
        real = y != IGNORE
        assert torch.equal(y[real], x[real] + 1)  # the token after each input
        assert x[0] == stream[i * seq_len]
    # padding only at the very end
    flat = ds.targets.flatten()
    assert (flat[: length - 1] != IGNORE).all() and (flat[length - 1:] == IGNORE).all()


def test_get_batch_equals_stacked_items():
    ds = WindowDataset(torch.arange(50), 6)
    idx = torch.tensor([3, 0, 7, 3])
    x, y = ds.get_batch(idx)
    assert x.shape == y.shape == (4, 6)
    assert torch.equal(x, torch.stack([ds[int(i)][0] for i in idx]))
    assert torch.equal(y, torch.stack([ds[int(i)][1] for i in idx]))


def test_too_short_stream_is_an_input_error():
    with pytest.raises(LyricgenError, match="seq-len"):
        WindowDataset(torch.arange(8), 8)
    assert len(WindowDataset(torch.arange(9), 8)) == 1


def test_nonpositive_seq_len():
    with pytest.raises(ValueError):
        WindowDataset(torch.arange(10), 0)


def test_epoch_order():
    a = epoch_order(50, seed=1, epoch=0)
    assert torch.equal(a, epoch_order(50, seed=1, epoch=0))
    assert sorted(a.tolist()) == list(range(50))
    assert not torch.equal(a, epoch_order(50, seed=1, epoch=1))
    assert not torch.equal(a, epoch_order(50, seed=2, epoch=0))
    assert torch.equal(epoch_order(50, seed=1, epoch=1), epoch_order(50, seed=1, epoch=1))


def test_num_batches():
    assert [num_batches(n, 8) for n in (1, 8, 9, 16, 17)] == [1, 1, 2, 2, 3]


# -- prepare -----------------------------------------------------------------------------------------
def test_prepare(tiny_lines):
    data = prepare(tiny_lines, val_fraction=0.1, min_freq=2, seq_len=8)
    train_lines, val_lines = tiny_lines[:72], tiny_lines[72:]
    assert data.train_lines == train_lines
    vocab = data.vocab
    stream = torch.cat([data.train.inputs.flatten()[:1], data.train.targets.flatten()])
    stream = stream[stream != IGNORE]
    assert stream[0] == vocab.line_break_id  # the context of the first token
    assert vocab.decode(stream[1:].tolist()) == "".join(normalize_line(line) + "\n" for line in train_lines)
    assert data.val_ids[-1] == vocab.line_break_id
    assert data.val_ids.count(vocab.line_break_id) == len(val_lines)
    assert data.val_chars == count_chars(tokenize_lines(val_lines))
    assert 0 < data.unk_prob < 1
    again = prepare(tiny_lines, 0.1, 2, 8, vocab=vocab)  # on resume the vocabulary is reused
    assert again.vocab is vocab and again.val_ids == data.val_ids


def test_prepare_too_short_corpus():
    with pytest.raises(LyricgenError, match="too short"):
        prepare(["月光"], val_fraction=0.1, min_freq=1, seq_len=8)
