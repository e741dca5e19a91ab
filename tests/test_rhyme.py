"""Rhyme classes (十三辙) of line endings, polyphones read in their word's context."""
import pytest

from lyricgen.errors import OptionError
from lyricgen.text.rhyme import (CLASSES, NAMES, adjacent_rhyme_rate, final, last_han_run, parse_class, rhyme_class,
                                 rhyme_id, rhymes)


@pytest.mark.parametrize("text, expected_final, expected_class", [
    ("失落", "uo", "梭波"),  # 落 is luo here (not lao / la)
    ("音乐", "ve", "乜斜"),  # 乐 is yue in 音乐 ...
    ("快乐", "e", "梭波"),  # ... and le in 快乐
    ("成长", "ang", "江阳"),  # 长 is zhang, the final is the same either way
    ("银行", "ang", "江阳"),  # 行 is hang in 银行 ...
    ("步行", "ing", "中东"),  # ... and xing in 步行: another class
    ("觉得", "e", "梭波"),
    ("睡觉", "iao", "遥条"),  # 觉 is jiao in 睡觉, jue in 觉得
    ("雨", "v", "一七"),  # ü and i rhyme in 一七
    ("吃", "i", "一七"),  # so does the -i of zhi/chi/shi
    ("远", "van", "言前"),
    ("回", "uei", "灰堆"),
    ("军", "vn", "人辰"),
])
def test_finals_and_classes_in_context(text, expected_final, expected_class):
    assert final(text) == expected_final
    assert rhyme_class(text) == expected_class


def test_a_line_ends_at_its_last_han_character():
    assert last_han_run("我们的失落 ") == "我们的失落"
    assert last_han_run("爱你 baby") == "爱你"
    assert rhyme_class("走过那段失落 yeah") == "梭波"
    assert rhyme_class("hello") is None and rhyme_id("") == -1 and final("123") is None


def test_every_final_belongs_to_exactly_one_class():
    finals = [f for group in CLASSES.values() for f in group]
    assert len(finals) == len(set(finals)) and len(NAMES) == 13


def test_rhymes_and_the_adjacent_rate_respect_sections():
    assert rhymes("月光洒满窗台", "我在等你回来")  # ai / ai
    assert rhymes("天边", "走得很远")  # ian / üan: both 言前
    assert not rhymes("月光", "心")  # ang / in
    assert not rhymes("hello", "hello")  # no class, no rhyme
    lines = ["月光洒满窗台", "我在等你回来", "", "风吹过山岗", "心里的远方", "我想你"]
    # pairs: (窗台, 回来) yes; the blank line ends the section; (山岗, 远方) yes, (远方, 想你) no
    assert adjacent_rhyme_rate(lines) == pytest.approx(2 / 3)
    assert adjacent_rhyme_rate(["一行"]) == 0.0


def test_classes_by_name_or_final():
    assert parse_class("江阳") == parse_class("ang") == parse_class("iang") == NAMES.index("江阳")
    assert parse_class("ü") == NAMES.index("一七")
    with pytest.raises(OptionError, match="江阳"):
        parse_class("xyz")
