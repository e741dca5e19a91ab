"""lyricgen: learn to write song lyrics from a corpus, then write new ones from a start word."""
__version__ = "0.1.0"
