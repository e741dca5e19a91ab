"""lyricgen: learn to write song lyrics from a corpus, then write new ones from a start word.

    >>> import lyricgen
    >>> writer = lyricgen.load("checkpoints/best.pt")          # only the checkpoint is read
    >>> for c in writer.generate("月光", lines=4, num_samples=3, temperature=0.8, seed=1):
    ...     print(c.score, c.copied_lines, c.longest_copy, c.text, sep="\\n")

Where things live (one concern per module; a package per group of them):

    config.py        every typed config (model, tokenizer, training, run, sampling, structure, song,
                     serving, loading, report), the rhyme-scheme table, the form/line-length parsers
    options.py       how a config field declares its default, bounds and help; the CLI derived from it
    model.py         Embedding -> RNN/GRU/LSTM -> Linear; computes only
    fitted/          what is fitted beside the network: n-gram mixture, unk, repeat, habits, originality
    checkpoint.py    the checkpoint file format: typed parts (RunState too), atomic save, safe load
    fileio.py        atomic writes and the private cache directory
    runfiles.py      a run directory's file names (best.pt, last.pt, metrics.csv, metrics.png), once
    runtime.py       device choice, threads, determinism
    cli.py           `lyricgen ...`: parses, calls the library, prints
    text/            corpus files, tokenizer (jieba), vocabulary, downloads       (no torch)
    training/        training data, run state, the training loop, starting and resuming runs
    scoring/         perplexity and bpc-open, evaluating a file
    writing/         sampling, generation, songs, the Lyricist API, interactive sessions, loops
    serving/         `lyricgen serve`: the web page, lyricgen's HTTP API, OpenAI completions (extra `serve`)

The groups follow the data: text becomes ids (text), ids train a model (training), a model scores
text (scoring) and writes it (writing). Each group's __init__ says what its modules own.

Floors, lowest first; a module imports only from its own floor or below, and nothing imports in
a circle (tests/test_layers.py checks both):

    errors, _version, fileio, options, runfiles, text/  <  config, runtime  <  model  <  fitted/  <  checkpoint
    <  scoring/  <  training/, writing/  <  serving/  <  cli
"""
from ._version import __version__

__all__ = ["load", "Lyricist", "Candidate", "LyricgenError", "__version__"]


def __getattr__(name):  # lazy: `import lyricgen` alone stays cheap (no torch)
    if name in ("load", "Lyricist", "Candidate"):
        from .writing import lyricist

        return getattr(lyricist, name)
    if name == "LyricgenError":
        from .errors import LyricgenError

        return LyricgenError
    raise AttributeError(f"module 'lyricgen' has no attribute {name!r}")
