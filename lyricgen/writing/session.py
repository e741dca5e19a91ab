"""An interactive writing session: start words in, candidates out, `:set OPTION VALUE` in between.

The command line's `generate -i` reads lines and prints what `Session.handle` returns; any other
front end (a notebook, a chat bot) can drive the same object.
"""
from dataclasses import asdict, dataclass, field

from ..config import GENERATION_CONFIGS, SamplingConfig, SongConfig, StructureConfig, generation_configs
from ..errors import LyricgenError
from ..options import parse_value
from ..text.tokenizer import normalize_line

OPTION_NAMES = [name for cls in GENERATION_CONFIGS for name in cls.__dataclass_fields__]


@dataclass
class Reply:
    candidates: list = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # characters of the start word left out
    changed: tuple[str, object] | None = None  # (option, new value) after a :set
    error: str | None = None


class Session:
    def __init__(self, writer, sampling: SamplingConfig, structure: StructureConfig, song: SongConfig | None = None):
        self.writer = writer
        self.options = {**asdict(sampling), **asdict(structure), **asdict(song or SongConfig())}

    def handle(self, line: str) -> Reply | None:
        """One input line: None for a blank one; errors come back in the reply, never raised."""
        line = line.strip()
        if not line or (not line.startswith(":set ") and not normalize_line(line)):
            return None
        try:
            if line.startswith(":set "):
                return Reply(changed=self.set(line[5:]))
            request = self.writer.request(line, **self.options)  # checked once, here
            return Reply(candidates=self.writer.run(request), unknown=request.unknown)
        except LyricgenError as e:
            return Reply(error=str(e))

    def set(self, text: str) -> tuple[str, object]:
        """`OPTION VALUE`: checked now, not at the next start word; a rejected value is not kept. The
        value is the rest of the line, so it may hold spaces (`:set form verse:4 chorus:4`)."""
        parts = text.split(None, 1)
        name = parts[0].replace("-", "_") if parts else ""
        if len(parts) != 2 or name not in OPTION_NAMES:
            raise LyricgenError(f"usage: :set OPTION VALUE, OPTION one of {', '.join(OPTION_NAMES)}")
        cls = next(c for c in GENERATION_CONFIGS if name in c.__dataclass_fields__)
        value = parse_value(cls, name, parts[1].strip())
        generation_configs({**self.options, name: value})  # the combination must hold too
        self.options[name] = value
        return name, value
