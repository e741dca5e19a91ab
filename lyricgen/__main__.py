"""`python -m lyricgen ...` is the same as the `lyricgen` command."""
import sys

from .cli import main

sys.exit(main())
