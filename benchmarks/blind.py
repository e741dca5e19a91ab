"""The blind reading kit: songs are judged as readers judge them, with real lyrics mixed in.

    python -m benchmarks.blind packet --reference held10.txt --system greedy=greedy.txt \\
        --system sampled=sampled.txt --passages 12 --lines 8 --seed 1 --out panel/
    python -m benchmarks.blind score --key panel/key.json reader1.csv reader2.csv
    python -m benchmarks.blind packet --reference held10.txt --corpus open=data/open_lyrics.txt ...

`packet` cuts N passages of L lines from the reference (real held-out lyrics: consecutive lines of
one block, blank lines skipped) and takes N songs from each system's file (songs separated by a line
`===`, as `lyricgen generate ... --num-samples` or a loop over start words writes them; each song's
first L lines), shuffles them all and gives each a neutral id (P01, P02, ...). It writes

    packet.md   the passages under their ids, nothing else: this is all a reader sees
    sheet.csv   a blank answer sheet: id, fluency, coherence, meaning, lyric (1-5), human (y/n)
    key.json    id -> source; keep it away from the readers (a panel of helper sessions is told to
                read packet.md only)

`score` reads filled-in sheets against the key and prints, per source, the mean of each score over
readers and passages and the share taken for human; a sheet with a missing id, an unknown id or a
score outside 1-5 is refused with one line naming the sheet, the row and the field.
"""
import argparse
import csv
import json
import random
import sys
from pathlib import Path

SCORES = ("fluency", "coherence", "meaning", "lyric")
SONG_SEPARATOR = "==="
REAL = "real"


class KitError(Exception):
    pass


def real_passages(lines: list[str], n: int, length: int, rng: random.Random) -> list[list[str]]:
    """n non-overlapping runs of `length` consecutive non-blank lines of one block (a blank line
    ends a block), at random places."""
    blocks, block = [], []
    for line in lines + [""]:
        line = line.strip()
        if line:
            block.append(line)
        elif block:
            blocks.append(block)
            block = []
    runs = [(b, i) for b, blk in enumerate(blocks) for i in range(0, len(blk) - length + 1, length)]
    if len(runs) < n:  # blocks too short (sections of a few lines): runs across blocks, blanks skipped
        blocks = [[x for blk in blocks for x in blk]]
        runs = [(0, i) for i in range(0, len(blocks[0]) - length + 1, length)]
    rng.shuffle(runs)
    chosen, seen = [], set()
    for b, i in runs:  # a chorus sung twice is one passage, not two: no line may appear in two passages
        passage = blocks[b][i:i + length]
        keys = {"".join(x.split()) for x in passage}
        if keys & seen:
            continue
        chosen.append(passage)
        seen |= keys
        if len(chosen) == n:
            return chosen
    raise KitError(f"the reference has {len(chosen)} passages of {length} lines that share no line; asked for {n}")


def system_songs(path: Path, n: int, length: int) -> list[list[str]]:
    """The first n songs of a file (separated by a line `===`), each cut to its first `length` lines."""
    songs, song = [], []
    for line in path.read_text(encoding="utf-8").splitlines() + [SONG_SEPARATOR]:
        if line.strip() == SONG_SEPARATOR:
            if song:
                songs.append(song[:length])
            song = []
        elif line.strip():
            song.append(line.strip())
    if len(songs) < n:
        raise KitError(f"{path}: {len(songs)} songs (separated by lines '{SONG_SEPARATOR}'); asked for {n}")
    return songs[:n]


def build_packet(reference: Path, systems: dict[str, Path], n: int, length: int, seed: int,
                 corpora: dict[str, Path] | None = None) -> tuple[str, dict]:
    """(packet text, key): every passage under a neutral id, in shuffled order. `corpora` are other
    texts cut into passages the way the reference is (a corpus under test, say)."""
    rng = random.Random(seed)
    items = [(REAL, p) for p in real_passages(reference.read_text(encoding="utf-8").splitlines(), n, length, rng)]
    for name, path in (corpora or {}).items():
        items += [(name, p) for p in real_passages(path.read_text(encoding="utf-8").splitlines(), n, length, rng)]
    for name, path in systems.items():
        items += [(name, s) for s in system_songs(path, n, length)]
    rng.shuffle(items)
    width = len(str(len(items)))
    key, parts = {}, []
    for k, (source, text) in enumerate(items, 1):
        pid = f"P{k:0{width}d}"
        key[pid] = source
        parts.append(f"## {pid}\n\n" + "\n".join(text) + "\n")
    header = (f"# Blind reading: {len(items)} passages of up to {length} lines\n\n"
              "Some are lines of songs people wrote, some were written by machines. For each passage give 1-5 for "
              "fluency (通顺), coherence (连贯: do the lines hold together), meaning (意义: does it say "
              "something) and lyric (reads like song lyrics), and guess human (y) or machine (n). Fill in "
              "sheet.csv.\n")
    return header + "\n" + "\n".join(parts), key


def read_sheet(path: Path, ids: set[str]) -> list[dict]:
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for line, row in enumerate(csv.DictReader(f), 2):
            pid = (row.get("id") or "").strip()
            if pid not in ids:
                raise KitError(f"{path}, row {line}: unknown id {pid!r}")
            out = {"id": pid}
            for name in SCORES:
                value = (row.get(name) or "").strip()
                if value not in {"1", "2", "3", "4", "5"}:
                    raise KitError(f"{path}, row {line}: {name} must be 1-5, got {value!r}")
                out[name] = int(value)
            human = (row.get("human") or "").strip().lower()
            if human not in {"y", "n"}:
                raise KitError(f"{path}, row {line}: human must be y or n, got {human!r}")
            out["human"] = human == "y"
            rows.append(out)
    missing = sorted(ids - {r["id"] for r in rows})
    if missing:
        raise KitError(f"{path}: no answer for {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    return rows


def score(key: dict, sheets: list[list[dict]]) -> dict[str, dict]:
    """Per source: the mean of each score over every reader's answers, and the share taken for human."""
    table: dict[str, dict] = {}
    for rows in sheets:
        for row in rows:
            t = table.setdefault(key[row["id"]], {**{s: 0.0 for s in SCORES}, "human": 0.0, "answers": 0})
            for s in SCORES:
                t[s] += row[s]
            t["human"] += row["human"]
            t["answers"] += 1
    for t in table.values():
        for s in (*SCORES, "human"):
            t[s] = round(t[s] / t["answers"], 2)
    order = [REAL] + sorted(s for s in table if s != REAL)
    return {s: table[s] for s in order if s in table}


def markdown(table: dict[str, dict], readers: int) -> str:
    lines = [f"| source ({readers} readers) | fluency | coherence | meaning | lyric | taken for human | answers |",
             "|---|---|---|---|---|---|---|"]
    for source, t in table.items():
        lines.append(f"| {source} | {t['fluency']:.2f} | {t['coherence']:.2f} | {t['meaning']:.2f} | "
                     f"{t['lyric']:.2f} | {t['human']:.0%} | {t['answers']} |")
    return "\n".join(lines)


def system_arg(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=FILE, got {text!r}")
    if name == REAL:
        raise argparse.ArgumentTypeError(f"{REAL!r} names the reference passages; choose another name")
    return name, Path(path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.blind", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    pk = sub.add_parser("packet", help="build a blind packet, its answer sheet and its key")
    pk.add_argument("--reference", type=Path, required=True, help="real held-out lyrics, one line per line")
    pk.add_argument("--system", type=system_arg, action="append", default=[], metavar="NAME=FILE",
                    help="a system's songs, separated by lines '===' (repeat for each system)")
    pk.add_argument("--corpus", type=system_arg, action="append", default=[], metavar="NAME=FILE",
                    help="a corpus cut into passages as the reference is (a corpus under test; repeatable)")
    pk.add_argument("--passages", type=int, default=12, help="passages per source (default %(default)s)")
    pk.add_argument("--lines", type=int, default=8, help="lines per passage (default %(default)s)")
    pk.add_argument("--seed", type=int, default=1, help="shuffle and choice of real passages")
    pk.add_argument("--out", type=Path, required=True, help="folder for packet.md, sheet.csv, key.json")
    sc = sub.add_parser("score", help="score filled-in sheets against the key")
    sc.add_argument("--key", type=Path, required=True)
    sc.add_argument("sheets", type=Path, nargs="+")
    sc.add_argument("--json", action="store_true", help="print the table as JSON")
    args = p.parse_args(argv)
    try:
        if args.command == "packet":
            if args.passages < 1 or args.lines < 1:
                raise KitError("--passages and --lines must be at least 1")
            systems, corpora = dict(args.system), dict(args.corpus)
            if len(systems) + len(corpora) != len({*systems, *corpora}) or len(systems) != len(args.system) \
                    or len(corpora) != len(args.corpus):
                raise KitError("each --system and --corpus needs its own name")
            if not systems and not corpora:
                raise KitError("name at least one --system or --corpus to compare with the reference")
            text, key = build_packet(args.reference, systems, args.passages, args.lines, args.seed, corpora)
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "packet.md").write_text(text, encoding="utf-8")
            (args.out / "key.json").write_text(json.dumps(key, ensure_ascii=False, indent=1), encoding="utf-8")
            with open(args.out / "sheet.csv", "w", newline="", encoding="utf-8") as f:
                w = csv.writer(f)
                w.writerow(["id", *SCORES, "human"])
                w.writerows([pid, "", "", "", "", ""] for pid in sorted(key))
            print(f"{len(key)} passages in {args.out / 'packet.md'}; key in {args.out / 'key.json'} "
                  "(keep it from the readers)")
        else:
            key = json.loads(args.key.read_text(encoding="utf-8"))
            sheets = [read_sheet(path, set(key)) for path in args.sheets]
            table = score(key, sheets)
            print(json.dumps(table, ensure_ascii=False) if args.json else markdown(table, len(sheets)))
    except (KitError, OSError, json.JSONDecodeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
