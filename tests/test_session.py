"""writing/session.py: the interactive loop's logic. Start words in, candidates out; `:set OPTION
VALUE` checked at once, and a rejected value never kept."""
import pytest

from conftest import OVERFIT_LINES as LINES
from lyricgen.config import SamplingConfig, SongConfig, StructureConfig
from lyricgen.writing.session import OPTION_NAMES, Session


@pytest.fixture
def session(overfit_writer):
    # plain: the overfit model's greedy line is then its training line, which the tests name
    return Session(overfit_writer, SamplingConfig(), StructureConfig(lines=1, max_tokens=12), SongConfig(plain=True))


def texts(reply) -> list[str]:
    assert reply is not None and reply.error is None and reply.changed is None, reply
    return [c.text for c in reply.candidates]


@pytest.mark.parametrize("line", ["", "\n", "   \n", "\u3000\t"])
def test_blank_lines_are_skipped(session, line):
    assert session.handle(line) is None


def test_start_words_write_with_the_sessions_options(session, overfit_writer):
    assert texts(session.handle("晨光\n")) == [LINES[0]]
    assert texts(session.handle("  火车 ")) == [LINES[1]]
    reply = session.handle("晨光龘")
    assert reply.unknown == ["龘"] and texts(reply)[0].startswith("晨光龘")
    expected, _ = overfit_writer.write("雪花", SamplingConfig(), StructureConfig(lines=1, max_tokens=12),
                                       SongConfig(plain=True))
    assert session.handle("雪花").candidates == expected


def test_an_unknown_start_word_is_an_error_reply_and_the_session_goes_on(session):
    reply = session.handle("xqz")
    assert reply.error and "xqz" in reply.error and "\n" not in reply.error and not reply.candidates
    assert texts(session.handle("晨光")) == [LINES[0]]


def test_set_changes_the_options_for_the_next_start_words(session, overfit_writer):
    assert session.handle(":set temperature 0.9").changed == ("temperature", 0.9)
    assert session.handle(":set seed 3").changed == ("seed", 3)
    assert session.handle(":set lines 2").changed == ("lines", 2)
    assert session.handle(":set top-k 5").changed == ("top_k", 5)  # the flag's spelling works too
    sampled = overfit_writer.generate("火车", lines=2, max_tokens=12, temperature=0.9, seed=3, top_k=5, plain=True)
    assert session.handle("火车").candidates == sampled
    greedy = overfit_writer.generate("火车", lines=2, max_tokens=12, plain=True)
    assert [c.text for c in sampled] != [c.text for c in greedy]
    assert session.handle(":set plain no").changed == ("plain", False)
    assert session.handle(":set form verse:1 chorus:1").changed == ("form", "verse:1 chorus:1")  # spaces kept
    song = session.handle("火车").candidates[0].text.split("\n")
    assert len(song) == 3 and song[1] == ""  # two sections, a blank line between them
    assert session.handle(":set seed off").changed == ("seed", None)
    assert session.handle(":set no_copy yes").changed == ("no_copy", True)
    assert session.options["no_copy"] is True and session.options["seed"] is None


@pytest.mark.parametrize("command, names", [
    (":set temperature -1", ["temperature", "-1"]),  # out of bounds
    (":set temperature warm", ["temperature", "warm"]),  # not a number
    (":set top_k many", ["top_k", "many"]),
    (":set no_copy maybe", ["no_copy", "maybe"]),
    (":set max_line_tokens 0.5", ["max_line_tokens", "0.5"]),
    (":set min_line_tokens 9", ["min_line_tokens", "max_line_tokens"]),  # the combination must hold too
    (":set colour red", ["usage", "temperature", "no_copy"]),  # unknown option: the usage, every option
    (":set temperature", ["usage"]),
    (":set temperature 1 2", ["temperature", "1 2"]),  # the value is the rest of the line
])
def test_a_rejected_set_is_an_error_reply_and_is_not_kept(overfit_writer, command, names):
    session = Session(overfit_writer, SamplingConfig(), StructureConfig(lines=1, max_tokens=12, max_line_tokens=5),
                      SongConfig(plain=True))
    before = dict(session.options)
    reply = session.handle(command)
    assert reply.error and reply.changed is None and "\n" not in reply.error
    for name in names:
        assert name in reply.error, reply.error
    assert session.options == before
    assert texts(session.handle("火车")) == [LINES[1]]  # greedy as before


def test_the_usage_lists_every_option():
    assert OPTION_NAMES == [*SamplingConfig.__dataclass_fields__, *StructureConfig.__dataclass_fields__,
                            *SongConfig.__dataclass_fields__]
