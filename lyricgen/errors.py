"""The one exception type the CLI turns into a single error line and a non-zero exit."""


class LyricgenError(Exception):
    """A problem with the user's input (a file, an option, a checkpoint), never a bug."""
