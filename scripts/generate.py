"""Write lyrics from a start word: `python scripts/generate.py START_WORD [options]`, the same as `lyricgen generate`."""
import sys

from lyricgen.cli import main

if __name__ == "__main__":
    sys.exit(main(["generate", *sys.argv[1:]]))
