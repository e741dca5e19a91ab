"""writing/loops.py: the loops greedy decoding falls into, detected in a text."""
from lyricgen.writing.loops import repeats_a_line, repeats_a_phrase


def test_repeats_a_line():
    assert repeats_a_line("风吹过\n我想了空\n我想了空\n我想了空\n")
    assert repeats_a_line("我想了空\n 我想了空\u3000\n我想了空")  # the same line after normalisation
    assert not repeats_a_line("我想了空\n我想了空\n风吹过\n我想了空")
    assert not repeats_a_line("\n\n\n\n")  # blank lines are not a loop
    assert repeats_a_line("a\na\nb", times=2) and not repeats_a_line("a\nb\na", times=2)


def test_repeats_a_phrase():
    assert repeats_a_phrase("月光的 我的 我的 我的 我")
    assert repeats_a_phrase("我想了空\n我想了空\n我想了空\n")
    assert not repeats_a_phrase("月光照亮小窗台\n风吹过 我的窗\n我的心")
    assert not repeats_a_phrase("我的 我的 月光")  # twice is not a loop
    assert not repeats_a_phrase("啊啊啊啊")  # one character repeated is not a phrase
