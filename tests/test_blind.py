"""benchmarks/blind.py: the packet hides its sources, the key holds them, and scoring averages the
sheets per source; a malformed sheet is one error line."""
import csv
import json

import pytest

from benchmarks import blind


def write_songs(path, songs):
    path.write_text("\n===\n".join("\n".join(s) for s in songs) + "\n", encoding="utf-8")


@pytest.fixture
def kit(tmp_path):
    ref = tmp_path / "held.txt"
    ref.write_text("\n".join(f"真的第{i}行歌词" for i in range(40)) + "\n", encoding="utf-8")
    write_songs(tmp_path / "a.txt", [[f"甲{k}号歌第{j}行" for j in range(6)] for k in range(3)])
    write_songs(tmp_path / "b.txt", [[f"乙{k}号歌第{j}行" for j in range(5)] for k in range(4)])
    out = tmp_path / "panel"
    rc = blind.main(["packet", "--reference", str(ref), "--system", f"greedy={tmp_path / 'a.txt'}",
                     "--system", f"sampled={tmp_path / 'b.txt'}", "--passages", "3", "--lines", "4",
                     "--seed", "7", "--out", str(out)])
    assert rc == 0
    return out


def test_the_packet_names_no_source_and_the_key_names_every_passage(kit):
    packet = (kit / "packet.md").read_text(encoding="utf-8")
    key = json.loads((kit / "key.json").read_text(encoding="utf-8"))
    assert sorted(key) == [f"P{k}" for k in range(1, 10)]
    assert sorted(key.values()) == ["greedy"] * 3 + ["real"] * 3 + ["sampled"] * 3
    for word in ("greedy", "sampled", "real", "a.txt", "b.txt"):
        assert word not in packet
    # each passage is cut to 4 lines, real passages are consecutive reference lines
    bodies = [b.split("\n\n", 1)[1].strip().splitlines() for b in packet.split("## ")[1:]]
    assert [len(b) for b in bodies] == [4] * 9
    real = [b for b in bodies if "真的" in b[0]]
    assert len(real) == 3
    for lines in real:
        numbers = [int(x.removeprefix("真的第").removesuffix("行歌词")) for x in lines]
        assert numbers == list(range(numbers[0], numbers[0] + 4))
    # shuffled: the sources are not in blocks of three
    order = [key[f"P{k}"] for k in range(1, 10)]
    assert order != sorted(order)
    with open(kit / "sheet.csv", encoding="utf-8") as f:
        assert [r["id"] for r in csv.DictReader(f)] == sorted(key)


def fill(path, key, answers):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", *blind.SCORES, "human"])
        for pid, source in key.items():
            w.writerow([pid, *answers[source]])


def test_scores_are_averaged_per_source_over_readers(kit, capsys):
    key = json.loads((kit / "key.json").read_text(encoding="utf-8"))
    fill(kit / "r1.csv", key, {"real": [5, 4, 4, 5, "y"], "greedy": [2, 1, 1, 2, "n"], "sampled": [3, 2, 2, 2, "y"]})
    fill(kit / "r2.csv", key, {"real": [4, 4, 3, 5, "y"], "greedy": [2, 2, 1, 2, "n"], "sampled": [1, 1, 1, 1, "n"]})
    assert blind.main(["score", "--key", str(kit / "key.json"), str(kit / "r1.csv"), str(kit / "r2.csv"),
                       "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert list(table) == ["real", "greedy", "sampled"]
    assert table["real"] == {"fluency": 4.5, "coherence": 4.0, "meaning": 3.5, "lyric": 5.0, "human": 1.0, "answers": 6}
    assert table["greedy"]["coherence"] == 1.5 and table["greedy"]["human"] == 0.0
    assert table["sampled"]["fluency"] == 2.0 and table["sampled"]["human"] == 0.5


@pytest.mark.parametrize("edit, message", [
    (lambda rows: rows[0].__setitem__(1, "6"), "fluency must be 1-5"),
    (lambda rows: rows[1].__setitem__(5, "maybe"), "human must be y or n"),
    (lambda rows: rows[2].__setitem__(0, "P99"), "unknown id 'P99'"),
    (lambda rows: rows.pop(), "no answer for"),
])
def test_a_malformed_sheet_is_one_error_line(kit, capsys, edit, message):
    key = json.loads((kit / "key.json").read_text(encoding="utf-8"))
    rows = [[pid, "3", "3", "3", "3", "n"] for pid in key]
    edit(rows)
    with open(kit / "bad.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["id", *blind.SCORES, "human"], *rows])
    assert blind.main(["score", "--key", str(kit / "key.json"), str(kit / "bad.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "bad.csv" in err[0]


def test_too_few_songs_or_passages_is_one_error_line(tmp_path, capsys):
    ref = tmp_path / "held.txt"
    ref.write_text("一\n二\n三\n", encoding="utf-8")
    write_songs(tmp_path / "a.txt", [["甲", "乙"]])
    assert blind.main(["packet", "--reference", str(ref), "--system", f"x={tmp_path / 'a.txt'}",
                       "--passages", "2", "--lines", "2", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "passages of 2 lines" in err[0]


def test_a_corpus_is_cut_into_passages_as_the_reference_is(tmp_path):
    ref, other = tmp_path / "held.txt", tmp_path / "open.txt"
    ref.write_text("\n".join(f"真的第{i}行" for i in range(20)) + "\n", encoding="utf-8")
    other.write_text("\n\n".join("\n".join(f"新歌{k}第{j}行" for j in range(4)) for k in range(6)) + "\n", encoding="utf-8")
    assert blind.main(["packet", "--reference", str(ref), "--corpus", f"open={other}", "--passages", "2",
                       "--lines", "4", "--out", str(tmp_path / "o")]) == 0
    key = json.loads((tmp_path / "o" / "key.json").read_text(encoding="utf-8"))
    assert sorted(key.values()) == ["open", "open", "real", "real"]
    packet = (tmp_path / "o" / "packet.md").read_text(encoding="utf-8")
    assert "open" not in packet and packet.count("新歌") == 8  # whole sections of 4 lines, 2 passages


def test_passages_never_repeat_a_line(tmp_path):
    chorus = [f"副歌第{j}行" for j in range(4)]
    text = []
    for k in range(6):  # verse, chorus, verse, chorus ...: the chorus comes back verbatim
        text += [f"主歌{k}第{j}行" for j in range(4)] + chorus
    ref = tmp_path / "held.txt"
    ref.write_text("\n".join(text) + "\n", encoding="utf-8")
    passages = blind.real_passages(text, 6, 4, __import__("random").Random(3))
    lines = [x for p in passages for x in p]
    assert len(lines) == len(set(lines)) == 24
    with pytest.raises(blind.KitError, match="share no line"):
        blind.real_passages(text, 8, 4, __import__("random").Random(3))
