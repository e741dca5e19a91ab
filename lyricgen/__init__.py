"""lyricgen: learn to write song lyrics from a corpus, then write new ones from a start word.

    >>> import lyricgen
    >>> writer = lyricgen.load("checkpoints/best.pt")          # only the checkpoint is read
    >>> for c in writer.generate("月光", lines=4, num_samples=3, temperature=0.8, seed=1):
    ...     print(c.score, c.copied_lines, c.longest_copy, c.text, sep="\n")

The library modules are tokenizer, vocab, data, model, train, checkpoint, evaluate, predict; the
command line (`lyricgen ...`, `python -m lyricgen ...`) is a thin layer over them in cli.
"""
__version__ = "0.1.0"
__all__ = ["load", "Lyricist", "Candidate", "LyricgenError"]


def __getattr__(name):  # lazy: `import lyricgen` alone stays cheap (no torch)
    if name in ("load", "Lyricist", "Candidate"):
        from . import predict

        return getattr(predict, name)
    if name == "LyricgenError":
        from .errors import LyricgenError

        return LyricgenError
    raise AttributeError(f"module 'lyricgen' has no attribute {name!r}")
