"""Songs (issue 10): `lyricgen report` on the trained checkpoint - 40 start words x 8 lines, greedy and
sampled, the defaults (rhyme auto) and an explicit AABB scheme - beside the corpus's held-out lines;
and the wall time of a whole `lyricgen generate` process writing one 8-line rhymed song against
`python -c "import torch"` (median of interleaved runs)."""

from .common import Context, Section, against_import_torch, lyricgen_cmd, protocol_files, run_json

SONGS, LINES = 40, 8
TARGETS = {"rhyme_rate": ">= 0.45", "scheme_rate": ">= 0.95", "js_distance": "<= 0.05", "fragments": "<= 0.01",
           "copied_lines": "<= 0.05", "span8_lines": "<= 0.1", "loop_songs": "<= 0"}
UNITS = {"fragments": "share", "copied_lines": "share", "span8_lines": "share", "loop_songs": "songs",
         "mean_chars": "chars", "seconds_per_song": "s"}
STARTUP_TARGET = "<= 2"


def report(ctx: Context, checkpoint, reference, *options) -> dict:
    songs, lines = (10, 4) if ctx.quick else (SONGS, LINES)
    return run_json(lyricgen_cmd("report", "--checkpoint", checkpoint, "--songs", songs, "--lines", lines,
                                 "--reference", reference, "--json", *options), ctx)


def startup(ctx: Context, checkpoint, repeats: int) -> dict:
    generate = lyricgen_cmd("generate", "--checkpoint", checkpoint, "月光", "--lines", LINES, "--rhyme", "AABB")
    return against_import_torch(ctx, generate, repeats)


def add_figures(section: Section, label: str, figures: dict, keys, targets: bool) -> None:
    for key in keys:
        if figures.get(key) is not None:
            section.add(f"songs {label}: {key}", figures[key], UNITS.get(key, ""),
                        TARGETS.get(key, "") if targets else "")


def run(ctx: Context) -> Section:
    if ctx.checkpoint is None:
        raise RuntimeError("no checkpoint: run the quality section too, or pass --checkpoint")
    _, held_out = protocol_files(ctx)
    default = report(ctx, ctx.checkpoint, held_out)
    scheme = report(ctx, ctx.checkpoint, held_out, "--rhyme", "AABB")
    s = startup(ctx, ctx.checkpoint, 3 if ctx.quick else 5)
    section = Section(details={"default": default, "aabb": scheme, "startup": s, "checkpoint": str(ctx.checkpoint)})
    keys = ("rhyme_rate", "mean_chars", "js_distance", "fragments", "copied_lines", "span8_lines", "longest_copy",
            "distinct_2", "loop_songs", "seconds_per_song")
    corpus_mean = default["corpus"]["mean_chars"]
    section.add("songs corpus: rhyme_rate", default["corpus"]["rhyme_rate"])
    section.add("songs corpus: mean_chars", corpus_mean, "chars")
    add_figures(section, "held-out lines", default["reference"], keys[:-1], targets=False)
    for mode in ("greedy", "sampled"):
        add_figures(section, f"{mode}", default[mode], keys, targets=True)
        section.add(f"songs {mode}: mean_chars / corpus's", default[mode]["mean_chars"] / corpus_mean, "x")
        add_figures(section, f"{mode} AABB", scheme[mode], ("scheme_rate", "loop_songs"), targets=True)
    section.add("one 8-line AABB song: whole generate process", s["generate_s"], "s")
    section.add("python -c 'import torch'", s["import_torch_s"], "s")
    section.add("song process / import torch", s["ratio"], "x", STARTUP_TARGET)
    return section
