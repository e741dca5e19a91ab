"""Options declared once: a dataclass field carries its default, bounds and help text.

    @dataclass
    class SamplingConfig(Config):
        top_p: float = option(1.0, "nucleus sampling threshold (1 = off)", low=0, low_open=True, high=1)

A config validates itself against those bounds when it is made (so the Python API refuses what the
command line refuses), and the command line derives its flags from the same fields (`add_options`):
a default, a bound or a help text is written in exactly one place. Nothing here imports torch, so
`lyricgen --help` stays fast.

`on_resume` says what `lyricgen train --resume` may do with a training option: "fixed" ones come
from the checkpoint and may not be given, "extend" ones may be given to extend the run, and
"per_run" ones apply to one invocation only (a time budget) and reset on resume.
"""
import argparse
import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field, fields

from .errors import OptionError

FIXED, EXTEND, PER_RUN = "fixed", "extend", "per_run"


def option(default, help: str, *, low=None, high=None, low_open: bool = False, high_open: bool = False,
           choices: tuple | None = None, on_resume: str = FIXED, cli: bool = True, metavar: str | None = None,
           short: str | None = None):
    """A config field with its default, its bounds ([low, high]; *_open makes a bound strict), the
    allowed `choices`, its help text, how it behaves on resume, and a one-letter flag (`short`, e.g.
    "-i") beside the long one."""
    meta = {"help": help, "low": low, "high": high, "low_open": low_open, "high_open": high_open,
            "choices": choices, "on_resume": on_resume, "cli": cli, "metavar": metavar, "short": short}
    return field(default=default, metadata=meta)


def base_type(cls, name: str):
    """(type, optional) of a field: `int | None` gives (int, True)."""
    hint = typing.get_type_hints(cls)[name]
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        kinds = [a for a in args if a is not type(None)]
        return kinds[0], len(kinds) < len(args)
    return hint, False


def describe_bounds(meta: dict) -> str:
    low, high = meta.get("low"), meta.get("high")
    if low is not None and high is not None:
        return f"in {'(' if meta['low_open'] else '['}{low}, {high}{')' if meta['high_open'] else ']'}"
    if low is not None:
        return f"{'>' if meta['low_open'] else '>='} {low}"
    if high is not None:
        return f"{'<' if meta['high_open'] else '<='} {high}"
    return ""


def check_value(name: str, value, kind, optional: bool, meta: dict):
    """The value, converted where harmless (an int for a float); OptionError naming `name` otherwise."""
    if value is None:
        if optional:
            return None
        raise OptionError(f"{name} must be given")
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind in (int, float) and (isinstance(value, bool) or not isinstance(value, kind)):
        raise OptionError(f"{name} must be a{'n' if kind is int else ''} {kind.__name__}, got {value!r}")
    if kind is bool and not isinstance(value, bool):
        raise OptionError(f"{name} must be true or false, got {value!r}")
    if kind is float and not math.isfinite(value):
        raise OptionError(f"{name} must be a finite number, got {value}")
    low, high = meta.get("low"), meta.get("high")
    if (low is not None and (value < low or (value == low and meta["low_open"]))) or \
            (high is not None and (value > high or (value == high and meta["high_open"]))):
        raise OptionError(f"{name} must be {describe_bounds(meta)}, got {value}")
    choices = meta.get("choices")
    if choices and value not in choices:
        raise OptionError(f"{name} must be one of {', '.join(map(str, choices))}, got {value!r}")
    return value


@dataclass
class Config:
    """Base of the typed configs: checks every field against its declared bounds when made."""

    def __post_init__(self):
        for f in fields(self):
            if "help" not in f.metadata and "low" not in f.metadata:
                continue
            kind, optional = base_type(type(self), f.name)
            setattr(self, f.name, check_value(f.name, getattr(self, f.name), kind, optional, f.metadata))
        self.check()

    def check(self) -> None:
        """Rules between fields; a subclass raises OptionError naming the options."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict, **overrides):
        """A config from a stored dict; keys this version does not know are ignored, missing ones
        take their defaults (so older and newer checkpoints both load)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in {**d, **overrides}.items() if k in names})

    @classmethod
    def option_names(cls, on_resume: str) -> list[str]:
        """The command-line options that behave so on resume (FIXED, EXTEND or PER_RUN)."""
        return [f.name for f in fields(cls) if f.metadata.get("cli") and f.metadata["on_resume"] == on_resume]


def pick(options: dict, cls) -> dict:
    """The entries of `options` that are fields of `cls`."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in options.items() if k in names}


# -- the command line, derived --------------------------------------------------------------------
def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _parser_for(name: str, kind, meta: dict):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a{'n' if kind is int else ''} {kind.__name__}, got {text!r}") from None
        try:
            return check_value(name, value, kind, False, meta)
        except OptionError as e:
            raise argparse.ArgumentTypeError(str(e).replace(f"{name} must", "must", 1)) from None
    return parse


def add_options(parser: argparse.ArgumentParser, cls, *, only: tuple[str, ...] | None = None) -> None:
    """One flag per CLI field of `cls` (of those named in `only`, when given). Flags default to SUPPRESS,
    so the namespace holds only the options actually given (`given`): resume and presets can tell "not
    given" from "given its default"; `cls(**given(args, cls))` fills in the rest."""
    for f in fields(cls):
        meta = f.metadata
        if not meta.get("cli") or (only is not None and f.name not in only):
            continue
        kind, _ = base_type(cls, f.name)
        shown = f" (default: {f.default})" if f.default not in (None, False, "") else ""
        names = [meta["short"], flag(f.name)] if meta.get("short") else [flag(f.name)]
        kwargs = {"default": argparse.SUPPRESS, "help": meta["help"] + shown, "dest": f.name}
        if kind is bool:
            action = argparse.BooleanOptionalAction if f.default is True else "store_true"
            parser.add_argument(*names, action=action, **kwargs)
            continue
        if typing.get_origin(kind) is list:  # given once per item: --keep 1:TEXT --keep 4:TEXT
            kwargs.update(action="append", type=typing.get_args(kind)[0])
        elif meta.get("choices"):
            kwargs["choices"] = list(meta["choices"])
        else:
            kwargs["type"] = _parser_for(f.name, kind, meta) if kind in (int, float) else kind
        if meta.get("metavar"):
            kwargs["metavar"] = meta["metavar"]
        parser.add_argument(*names, **kwargs)


def given(args: argparse.Namespace, *classes) -> dict:
    """The options of `classes` present in a namespace built with `add_options`."""
    names = {f.name for cls in classes for f in fields(cls)}
    return {k: v for k, v in vars(args).items() if k in names}


def parse_value(cls, name: str, text: str):
    """A field's value from text (the interactive `:set` command): same types and bounds as the flag."""
    kind, optional = base_type(cls, name)
    if optional and text.lower() in ("none", "off"):
        return None
    if typing.get_origin(kind) is list:  # one item (`:set keep 1:TEXT` keeps that line)
        return [text]
    if kind is bool:
        word = text.lower()
        if word not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            raise OptionError(f"{name} needs true or false, got {text!r}")
        return word in ("1", "true", "yes", "on")
    try:
        value = kind(text)
    except ValueError:
        raise OptionError(f"{name} needs a{'n' if kind is int else ''} {kind.__name__}, got {text!r}") from None
    meta = next(f.metadata for f in fields(cls) if f.name == name)
    return check_value(name, value, kind, optional, meta)
