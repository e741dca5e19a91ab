"""The API's generation options, derived from the configs, and the server's hard caps.

Every generation option is a field of a config in config.GENERATION_CONFIGS, declared there once with
its type, default, bounds and help text. `option_specs()` reads those fields; the request models
(pydantic, so FastAPI validates them and /openapi.json describes them) and the page's form (from
GET /api/options) are both built from the specs. An option added to a config therefore appears in
/api/generate, in /v1/completions as an extra field, and on the page, with no change here.

On top of the configs' bounds, the server caps what one request may ask for (CAPS and the MAX_*
below): the configs bound what makes sense, the caps bound what one anonymous request may cost.

One option has a shape of its own on the API: `keep`, the lines a song must hold verbatim. The config
takes "K:TEXT" strings (what the command line's --keep 1:TEXT gives); a JSON client sends objects,
`{"line": 1, "text": "..."}`, so no text is ever parsed for a colon. SHAPED below declares that, once:
the item model (which the request models, /openapi.json and GET /api/options all show) and the
conversion to the config's value. Everything else about keep (its help, its checks) stays the config's.

The writing desk's other two requests are built here too: /api/alternatives (a song, one of its
lines, how many alternatives; plus every option but keep and stream) and /api/lines (lines to describe).
"""
import math
import typing
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, create_model

from ..config import GENERATION_CONFIGS, MAX_ALTERNATIVES, MAX_KEPT_CHARS, MAX_SONG_LINES
from ..options import base_type

# -- the hard caps, declared once -------------------------------------------------------------------
CAPS = {"max_tokens": 1000, "num_samples": 16}  # upper bounds over the configs' own, by option name
MAX_START_CHARS = 64  # the start word (prompt)
MAX_TEXT_CHARS = 256  # any text option (a first line, an acrostic ...)
MAX_LIST_ITEMS = 64  # any list option
MAX_BODY_BYTES = 64 * 1024  # a request body; larger ones are refused with 413 before parsing

# Strict types, as the command line has: "0.8" is not a number and true is not 1. No NaN or
# infinity (Python's JSON reader accepts them), no unknown fields (a typo must not pass silently).
STRICT = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)


class KeptLine(BaseModel):
    """One entry of `keep` on the API: a line the song holds verbatim, where it stands."""
    model_config = STRICT
    line: int = Field(ge=1, le=MAX_SONG_LINES, description="the line's number in the song, from 1; the blank "
                                                           "lines between sections are not counted")
    text: str = Field(min_length=1, max_length=MAX_KEPT_CHARS, description="the line, kept as it is written")


# Options whose API shape is not the config's, by name: (the model of one item, the config's value of
# a list of them). A shaped option is a list of those items on the API, or null.
SHAPED = {"keep": (KeptLine, lambda items: [f"{k.line}:{k.text}" for k in items])}

# One line of a song on the API (/api/alternatives, /api/lines): no longer than a kept line may be.
SongLine = Annotated[str, StringConstraints(min_length=1, max_length=MAX_KEPT_CHARS)]


@dataclass
class OptionSpec:
    """One generation option as the API shows it: the config field's declaration plus the caps."""
    name: str
    type: str  # "int", "float", "bool", "str" or "list"
    optional: bool  # null is allowed (e.g. seed: null = a fresh seed)
    default: object
    help: str
    group: str  # the config it belongs to
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: list | None = None
    max_length: int | None = None
    items: dict | None = None  # a list of objects (SHAPED): each field's JSON schema, e.g. keep's line and text

    def to_dict(self) -> dict:
        return asdict(self)


def option_specs(configs=GENERATION_CONFIGS) -> list[OptionSpec]:
    """The option fields of `configs`, in declaration order, with the server's caps applied."""
    specs = []
    for cls in configs:
        for f in fields(cls):
            meta = f.metadata
            if "help" not in meta:
                continue
            kind, optional = base_type(cls, f.name)
            default = f.default if f.default is not MISSING else f.default_factory()
            high = meta.get("high")
            cap = CAPS.get(f.name)
            if cap is not None and (high is None or cap < high):
                high = cap
            type_name = "list" if typing.get_origin(kind) is list or kind is list else kind.__name__
            max_length = {"str": MAX_TEXT_CHARS, "list": MAX_LIST_ITEMS}.get(type_name)
            items = SHAPED[f.name][0].model_json_schema()["properties"] if f.name in SHAPED else None
            specs.append(OptionSpec(f.name, type_name, optional, default, meta["help"], cls.__name__,
                                    meta.get("low"), high, meta.get("low_open", False),
                                    meta.get("high_open", False) and high == meta.get("high"),
                                    list(meta["choices"]) if meta.get("choices") else None, max_length, items))
    return specs


def annotation(spec: OptionSpec, configs=GENERATION_CONFIGS):
    """The pydantic type of an option: the config's own type hint, a Literal of its choices, or a list
    of its SHAPED items."""
    if spec.name in SHAPED:
        return list[SHAPED[spec.name][0]] | None
    cls = next(c for c in configs if c.__name__ == spec.group)
    hint = typing.get_type_hints(cls)[spec.name]
    if spec.choices:
        hint = typing.Literal[tuple(spec.choices)]
        return hint | None if spec.optional else hint
    return hint


def field_info(spec: OptionSpec, default=MISSING, help: str | None = None):
    """A pydantic Field with the option's bounds, help text and default."""
    bounds = {}
    if spec.low is not None:
        bounds["gt" if spec.low_open else "ge"] = spec.low
    if spec.high is not None and math.isfinite(spec.high):
        bounds["lt" if spec.high_open else "le"] = spec.high
    if spec.max_length is not None:
        bounds["max_length"] = spec.max_length
    value = spec.default if default is MISSING else default
    return Field(value, description=help or spec.help, **bounds)


def option_fields(specs: list[OptionSpec], configs=GENERATION_CONFIGS, defaults: dict | None = None,
                  skip: tuple = ()) -> dict:
    """{name: (type, Field)} for create_model; `defaults` overrides shown defaults (a preset)."""
    defaults = defaults or {}
    return {s.name: (annotation(s, configs), field_info(s, defaults.get(s.name, MISSING)))
            for s in specs if s.name not in skip}


def own_fields(preset: dict | None = None) -> dict:
    """The start word and `sample`: what every lyricgen request (not OpenAI's) has besides the options."""
    from ..config import SAMPLE_PRESET

    preset = SAMPLE_PRESET if preset is None else preset
    return {
        "start": (str, Field(description="the start word or phrase the lyrics continue", min_length=1,
                             max_length=MAX_START_CHARS)),
        "sample": (bool, Field(False, description="the recommended sampling settings ("
                                                  + ", ".join(f"{k} {v}" for k, v in preset.items())
                                                  + ") for the options not given, as the CLI's --sample")),
    }


def request_model(name: str, own: dict, configs=GENERATION_CONFIGS, skip: tuple = ()) -> type[BaseModel]:
    options = option_fields(option_specs(configs), configs, skip=skip)
    clash = sorted(set(own) & set(options))
    if clash:
        raise RuntimeError(f"generation option {clash[0]!r} clashes with a request field of the same name")
    return create_model(name, __config__=STRICT, **own, **options)


def generate_request_model(configs=GENERATION_CONFIGS, preset: dict | None = None) -> type[BaseModel]:
    """The body of POST /api/generate: the start word, stream, sample, and every option."""
    own = {
        **own_fields(preset),
        "stream": (bool, Field(False, description="server-sent events: one `token` event per token, then a "
                                                  "`done` event with the candidate (num_samples must be 1)")),
    }
    return request_model("GenerateRequest", own, configs)


def alternatives_request_model(configs=GENERATION_CONFIGS, preset: dict | None = None) -> type[BaseModel]:
    """The body of POST /api/alternatives: a song, the line to replace, how many alternatives, and
    the options the song was written with. Not keep: every other line of the song is kept."""
    own = {
        **own_fields(preset),
        "song": (list[SongLine], Field(min_length=1, max_length=MAX_SONG_LINES,
                                       description="the song's lines as they stand, in order, without the blank "
                                                   "lines between sections")),
        "line": (int, Field(ge=1, le=MAX_SONG_LINES, description="the line to write alternatives for, from 1")),
        "n": (int, Field(5, ge=1, le=MAX_ALTERNATIVES, description="how many alternatives, best first")),
    }
    return request_model("AlternativesRequest", own, configs, skip=("keep",))


class LinesRequest(BaseModel):
    """The body of POST /api/lines: lines (edited by hand) to describe."""
    model_config = STRICT
    lines: list[SongLine] = Field(min_length=1, max_length=MAX_SONG_LINES,
                                  description="the lines, each described by its rhyme class and whether it copies "
                                              "the corpus")


def given_options(request: BaseModel, specs: list[OptionSpec]) -> dict:
    """The options a request actually set (so presets fill only the others, as on the CLI), as the
    configs take them (a SHAPED option's items converted)."""
    names = {s.name for s in specs}
    given = {k: getattr(request, k) for k in request.model_fields_set if k in names}
    for name, (_, to_config) in SHAPED.items():
        if given.get(name) is not None:
            given[name] = to_config(given[name])
    return given


def error_field(message: str, names) -> str | None:
    """The option a config's error message names (OptionError messages start with it)."""
    first = message.split(" ", 1)[0].strip(":,'\"")
    return first if first in names else None

