"""fitted/originality.py: copied lines and the longest copied span, from hashes of the training lines
(the checkpoint never holds the corpus text)."""
import numpy as np
import pytest
import torch

from conftest import OVERFIT_LINES as LINES
from lyricgen.fitted.originality import MAX_LINE, MAX_SPAN, MIN_SPAN, Originality, blake2b_hash, poly_hash

UNRELATED = "电脑键盘坏掉"  # no two consecutive characters of it occur together in LINES


def test_reports(overfit_writer):
    assert not any(UNRELATED[i:i + 2] in line for line in LINES for i in range(len(UNRELATED) - 1))
    direct = Originality.fit(LINES)
    from_checkpoint = overfit_writer.originality  # the hashes stored in the checkpoint
    for o in (direct, from_checkpoint):
        line = LINES[4]
        assert o.report(line) == {"copied_lines": 1.0, "longest_copy": len(line)}
        assert o.report(f" {line}\u3000") == {"copied_lines": 1.0, "longest_copy": len(line)}  # normalised
        assert o.report(UNRELATED) == {"copied_lines": 0.0, "longest_copy": 0}
        mixed = "\n".join([LINES[0], UNRELATED, LINES[8], "冰箱牛奶过期", ""])
        assert o.report(mixed) == {"copied_lines": 0.5, "longest_copy": len(LINES[0])}
        partial = "电脑" + LINES[4][1:5] + "键盘"  # 塔守护着 copied inside an original line
        assert o.report(partial) == {"copied_lines": 0.0, "longest_copy": 4}
        assert o.report("") == {"copied_lines": 0.0, "longest_copy": 0}
        assert o.is_training_line(LINES[4]) and not o.is_training_line(LINES[4][:-1]) and not o.is_training_line("")


def test_spans_shorter_than_min_span_are_not_copies():
    o = Originality.fit(["晨光照亮小窗台"])
    assert MIN_SPAN == 4
    assert o.longest_copy("电脑晨光照") == 0  # 3 shared characters: an everyday phrase
    assert o.longest_copy("电脑晨光照亮") == 4
    assert o.longest_copy("亮小窗台晨光照") == 4  # the longest of two copies


def test_originality_of_a_line_longer_than_max_span():
    long_line = "".join(LINES)[: MAX_SPAN + 9]
    o = Originality.fit([long_line, "别的一行"])
    assert o.report(long_line) == {"copied_lines": 1.0, "longest_copy": MAX_SPAN}
    assert o.report(long_line[:-1])["copied_lines"] == 0.0


def test_a_line_longer_than_max_line_has_a_line_hash_but_no_span_hashes():
    huge = ("".join(LINES) * 20)[: MAX_LINE + 1]
    o = Originality.fit([huge, LINES[0]])
    assert o.is_training_line(huge)
    assert o.longest_copy(huge[7:27]) == 0  # its spans were not hashed (memory stays bounded)
    assert o.longest_copy(LINES[0]) == len(LINES[0])


def test_stored_as_sorted_hashes_only(tmp_path):
    o = Originality.fit(LINES)
    d = o.to_dict()
    assert set(d) == {"line_hashes", "span_hashes", "max_span", "hash"} and d["max_span"] == MAX_SPAN
    for key in ("line_hashes", "span_hashes"):
        t = d[key]
        assert t.dtype == torch.int64 and t.dim() == 1 and torch.equal(t, t.sort().values)
    assert len(d["line_hashes"]) == len(LINES)
    torch.save(d, tmp_path / "o.pt")
    again = Originality.from_dict(torch.load(tmp_path / "o.pt", weights_only=True))
    assert np.array_equal(again.line_hashes, o.line_hashes) and np.array_equal(again.span_hashes, o.span_hashes)
    assert (again.max_span, again.hash_name) == (o.max_span, "poly64")
    assert again.report(LINES[3]) == o.report(LINES[3])


def test_all_spans_hashed_at_once_equal_hashing_each_span():
    lines = LINES + ["".join(LINES)[:40], "短句", "a b 混合 English 行"]
    o = Originality.fit(lines)
    spans = {x[i:j] for x in lines for i in range(len(x)) for j in range(i + MIN_SPAN, min(len(x), i + MAX_SPAN) + 1)}
    assert np.array_equal(o.span_hashes, np.unique([poly_hash(x) for x in spans]))
    assert np.array_equal(o.line_hashes, np.unique([poly_hash(x) for x in lines]))


def test_hashes_of_lyricgen_0_1_are_read_with_its_hash():
    """0.1 stored blake2b hashes and no `hash` key: they keep answering the same questions."""
    old = {"line_hashes": torch.tensor(sorted(blake2b_hash(x) for x in LINES)),
           "span_hashes": torch.tensor(sorted({blake2b_hash(LINES[4][i:i + 4]) for i in range(len(LINES[4]) - 3)})),
           "max_span": MAX_SPAN}
    o = Originality.from_dict(old)
    assert o.hash_name == "blake2b64" and o.is_training_line(LINES[2])
    assert o.longest_copy("电脑" + LINES[4][1:5] + "键盘") == 4


@pytest.mark.parametrize("blank", ["", "   ", "\u3000"])
def test_blank_training_lines_are_not_lines(blank):
    o = Originality.fit([blank, LINES[0]])
    assert len(o.line_hashes) == 1 and not o.is_training_line(blank)
