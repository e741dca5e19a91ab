"""Co-writing (issue 18): lines the writer keeps (`keep`), written around and never copied;
alternatives for one line of a song; what a line is (`describe`). The tiny trained run writes
nonsense, but kept lines, their positions and their rhyme groups hold whatever it writes."""
import random

import pytest

from conftest import one_error_line
from lyricgen.config import MAX_KEPT_CHARS, SongConfig, parse_keep
from lyricgen.errors import OptionError
from lyricgen.text.rhyme import NAMES, rhyme_id
from lyricgen.writing.form import LinePlan
from lyricgen.writing.lyricist import Lyricist
from lyricgen.writing.song import rule_groups

SAMPLED = {"temperature": 1.0, "top_p": 0.95, "seed": 3}
MODES = pytest.mark.parametrize("mode", [{}, SAMPLED], ids=["greedy", "sampled"])


@pytest.fixture(scope="module")
def writer(tiny_run):
    return Lyricist.load(tiny_run / "best.pt")


def kept_lines(writer, n: int, rng: random.Random) -> list[str]:
    """n lines the tiny model can write (its vocabulary's words), of 4 to 9 characters."""
    words = [t for t in writer.vocab.tokens[3:] if t.strip() and len(t) >= 2]
    out = []
    while len(out) < n:
        line = ""
        while len(line) < rng.randint(4, 9):
            line += rng.choice(words)
        if line not in out:
            out.append(line)
    return out


@pytest.mark.parametrize("entries, message", [
    (["1月光"], "keep: '1月光' must be LINE:TEXT"),
    (["x:月光"], "must be LINE:TEXT"),
    (["0:月光"], "keep: line 0 is out of range"),
    (["2:  "], "keep: line 2 is empty"),
    ([f"3:{'月' * (MAX_KEPT_CHARS + 1)}"], "keep: line 3 is too long"),
    (["2:月光", "2:春天"], "keep: line 2 is given twice"),
])
def test_bad_kept_lines_are_refused_naming_keep(entries, message):
    with pytest.raises(OptionError, match=message):
        parse_keep(entries)
    with pytest.raises(OptionError, match="^keep: "):
        SongConfig(keep=entries)


def test_keep_parses_and_conflicts_with_plain_and_first_line():
    assert parse_keep(["1:月光 洒在窗台", "4:你说过"]) == {1: "月光 洒在窗台", 4: "你说过"}
    assert SongConfig(keep=["1:月光洒在窗台"]).opening() == "月光洒在窗台"
    with pytest.raises(OptionError, match="not --plain"):
        SongConfig(keep=["2:月光"], plain=True)
    with pytest.raises(OptionError, match="first_line"):
        SongConfig(keep=["1:月光"], first_line="月光下")


@MODES
def test_kept_lines_stay_verbatim_where_they_were_put(writer, mode):
    rng = random.Random(5)
    for trial in range(6):
        lines = rng.choice([4, 6, 8])
        where = sorted(rng.sample(range(1, lines + 1), rng.randint(1, 3)))
        texts = kept_lines(writer, len(where), rng)
        c = writer.generate("月光", lines=lines, keep=[f"{k}:{t}" for k, t in zip(where, texts)], **mode)[0]
        song = c.lines_text()
        assert len(song) == lines, song
        for k, t in zip(where, texts):
            assert song[k - 1] == t, (k, t, song)
        assert [x["kept"] for x in c.lines] == [k + 1 in where for k in range(lines)]
        others = [x for k, x in enumerate(song, 1) if k not in where]
        assert not set(others) & set(texts), song  # the kept lines are never copied


def test_kept_first_line_opens_the_song_and_primes_the_model(writer):
    c = writer.generate("月光", lines=4, keep=["1:春天分开了"])[0]
    assert c.lines_text()[0] == "春天分开了"
    request = writer.request("月光", lines=4, keep=["1:春天分开了"])
    assert request.prompt_ids == writer.prompt("春天分开了")[0]


def test_keep_without_a_number_of_lines_writes_a_song_reaching_the_last_kept_line(writer):
    assert len(writer.generate("月光", keep=["2:春天分开了"])[0].lines_text()) == 8
    assert len(writer.generate("月光", keep=["11:春天分开了"])[0].lines_text()) == 11


def test_keep_errors_that_need_the_model(writer):
    with pytest.raises(OptionError, match="keep: line 9 is out of range: the song has 8 lines"):
        writer.request("月光", lines=8, keep=["9:春天分开了"])
    with pytest.raises(OptionError, match="keep: line 2 has characters the model does not know: 鑫"):
        writer.request("月光", lines=8, keep=["2:春天鑫"])


def test_a_kept_line_rules_its_rhyme_group():
    plan = [LinePlan(0, "verse"), LinePlan(0, "verse", rhyme_with=0), LinePlan(0, "verse"),
            LinePlan(0, "verse", rhyme_with=2)]
    jiang, yan = NAMES.index("江阳"), NAMES.index("言前")
    assert rule_groups(plan, {1: jiang}) == []
    assert [p.rhyme_class for p in plan] == [jiang, jiang, -1, -1]  # line 1 is written to rhyme with kept line 2
    plan = [LinePlan(0, "verse", rhyme_class=yan), LinePlan(0, "verse", rhyme_with=0)]
    notes = rule_groups(plan, {0: jiang})
    assert [p.rhyme_class for p in plan] == [jiang, jiang] and notes == [
        "line 1 is kept with the rhyme 江阳; the lines rhyming with it follow it, not rhyme_class 言前"]
    plan = [LinePlan(0, "verse"), LinePlan(0, "verse", rhyme_with=0), LinePlan(0, "verse", rhyme_with=1)]
    notes = rule_groups(plan, {0: jiang, 2: yan})  # contradictory locks: kept as written, with a note
    assert [p.rhyme_class for p in plan] == [jiang] * 3 and "lines 1 and 3" in notes[0]


@MODES
def test_lines_written_around_a_kept_line_rhyme_with_it(writer, mode):
    kept = next(t for t in writer.vocab.tokens if rhyme_id(t) == NAMES.index("江阳") and len(t) >= 2)
    c = writer.generate("月光", lines=4, rhyme="AAAA", keep=[f"3:春天{kept}"], **mode)[0]
    song = c.lines_text()
    assert song[2] == f"春天{kept}" and c.notes == []
    assert all(rhyme_id(x) == NAMES.index("江阳") for x in song), song


@MODES
def test_alternatives_fit_the_song_and_differ_from_the_line(writer, mode):
    request = writer.request("月光", lines=6, rhyme="AABB", **mode)
    song = writer.run(request)[0].lines_text()
    for k in (1, 2, 5):
        found = writer.alternatives(request, song, k, 5)
        assert 1 <= len(found) <= 5
        texts = [a.text for a in found]
        assert len(set(texts)) == len(texts) and song[k - 1] not in texts
        assert all(t not in song for t in texts)  # no copy of another line of the song
        if k == 2:  # AABB: line 2 rhymes with line 1, which is kept
            assert all(rhyme_id(t) == rhyme_id(song[0]) for t in texts), (song, texts)
        if k == 1:  # line 1 continues the start word
            assert all(t.startswith("月光") for t in texts)
        assert all(a.rhyme == (NAMES[rhyme_id(a.text)] if rhyme_id(a.text) >= 0 else None) for a in found)
        assert all(isinstance(a.score, float) and a.score <= 0 and a.copied in (True, False) for a in found)


def test_alternatives_are_deterministic_when_greedy(writer):
    request = writer.request("月光", lines=4)
    song = writer.run(request)[0].lines_text()
    assert writer.alternatives(request, song, 3, 4) == writer.alternatives(request, song, 3, 4)


@pytest.mark.parametrize("song, line, n, message", [
    ([], 1, 5, "song must have from 1 to 64 lines"),
    (["春天"] * 200, 1, 5, "song must have from 1 to 64 lines, got 200"),
    (["春天分开", "月光"], 3, 5, "line must be a line of the song, from 1 to 2, got 3"),
    (["春天分开", "月光"], 0, 5, "line must be"),
    (["春天分开", "月光"], 1, 0, "n must be from 1 to 16"),
    (["春天分开", "月光"], 1, 17, "n must be from 1 to 16"),
    (["春天分开", "  ", "月光"], 1, 5, "song: line 2 is empty"),
    (["春天分开", "鑫鑫", "月光"], 1, 5, "song: line 2 has characters the model does not know: 鑫"),
    (["春天分开", "月" * 41], 1, 5, "song: line 2 is too long"),
])
def test_bad_alternatives_requests_name_the_field(writer, song, line, n, message):
    request = writer.request("月光", lines=4)
    with pytest.raises(OptionError, match=message):
        writer.alternatives(request, song, line, n)


def test_alternatives_for_a_song_whose_form_disagrees_is_refused(writer):
    request = writer.request("月光", form="verse:4 chorus:4")
    with pytest.raises(OptionError, match="song has 3 lines but form has 8"):
        writer.alternatives(request, ["春天分开", "月光", "分开"], 1, 3)


def test_describe_gives_rhyme_and_copy(writer, tiny_lines):
    info = writer.describe([tiny_lines[0], "月光"])
    assert info[0]["copied"] is True and info[1]["copied"] is False
    assert info[1]["rhyme"] == "江阳" and info[0]["text"] == tiny_lines[0].strip()


def test_cli_keep_and_alternatives_for(cli, tiny_run):
    ckpt = tiny_run / "best.pt"
    rc, out, err = cli("generate", "月光", "--checkpoint", ckpt, "--lines", "4", "--keep", "2:春天分开了",
                       "--keep", "4:月光分开", "--alternatives-for", "3", "--alternatives", "3")
    assert rc == 0, err
    song, _, alternatives = out.partition("--- alternatives for line 3")
    assert song.split("\n")[1] == "春天分开了" and song.split("\n")[3] == "月光分开"
    rows = [x for x in alternatives.split("\n")[1:] if x]
    assert 1 <= len(rows) <= 3 and all(len(x.split("\t")) == 3 for x in rows)


@pytest.mark.parametrize("args, message", [
    (["--keep", "2春天"], "keep: '2春天' must be LINE:TEXT"),
    (["--lines", "4", "--keep", "5:春天"], "keep: line 5 is out of range: the song has 4 lines"),
    (["--lines", "4", "--alternatives-for", "7"], "alternatives_for: line 7 is out of range"),
    (["--alternatives-for", "0"], "must be"),
])
def test_cli_bad_keep_is_one_error_line(cli, tiny_run, args, message):
    rc, out, err = cli("generate", "月光", "--checkpoint", tiny_run / "best.pt", *args)
    assert rc != 0 and one_error_line(err) and message in err, err


def test_alternatives_keep_the_rhyme_the_song_has_whatever_the_plan_draws(writer):
    song = writer.generate("月光", lines=4, rhyme="AABB")[0].lines_text()
    assert rhyme_id(song[0]) == rhyme_id(song[1]) >= 0
    request = writer.request("月光", lines=4, rhyme="none", **SAMPLED)  # a plan that links no line
    found = writer.alternatives(request, song, 2, 5)
    assert found and all(rhyme_id(a.text) == rhyme_id(song[0]) for a in found), (song, found)


def test_alternatives_for_a_chorus_sung_again(writer):
    request = writer.request("月光", form="verse:2 chorus:2 chorus:2", **SAMPLED)
    song = writer.run(request)[0].lines_text()
    assert len(song) == 6 and song[2:4] == song[4:6]
    found = writer.alternatives(request, song, 5, 3)
    assert found and all(a.text != song[4] and a.text not in song for a in found)


def test_sampled_alternatives_survive_rows_that_all_die(tiny_run, monkeypatch):
    """When every sampled row dies on the way, the seeded temperature-1 fallback still writes a line:
    a search that finds nothing at the song's own temperature is followed by one at the model's spread."""
    from lyricgen.writing import song as song_module
    from lyricgen.writing.lyricist import Lyricist

    writer = Lyricist.load(tiny_run / "best.pt")
    request = writer.request("月光", sample=True, seed=3, lines=4)
    lines = [x for x in writer.run(request)[0].text.split("\n") if x.strip()]
    search = writer.songs.search.search
    temperatures = []

    def only_the_fallback_finds(ctx, req, k, sampling, generator):
        temperatures.append(sampling.temperature)
        found = yield from search(ctx, req, k, sampling, generator)
        return found if sampling.temperature == 1.0 else []  # every row at the song's temperature died

    monkeypatch.setattr(writer.songs.search, "search", only_the_fallback_finds)
    found = writer.alternatives(request, lines, 2, 3)
    assert found and all(a.text != lines[1] for a in found)
    # at the song's temperature (0.5) its lines are drawn from a beam's (searched at 0): all found nothing
    assert temperatures[-1] == 1.0 and song_module.FALLBACK_TOP_P == 0.95 and set(temperatures[:-1]) == {0.0}
