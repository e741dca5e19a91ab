"""The exception types the CLI turns into a single error line and a non-zero exit."""


class LyricgenError(Exception):
    """A problem with the user's input (a file, an option, a checkpoint), never a bug."""


class OptionError(LyricgenError, ValueError):
    """An option value out of its bounds; also a ValueError, as Python's own argument errors are."""


class Cancelled(Exception):
    """Generation stopped because its caller asked (a client that disconnected); not an input error."""
