"""Train a lyrics model: `python scripts/train.py [options]`, the same as `lyricgen train`."""
import sys

from lyricgen.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
