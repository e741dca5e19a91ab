"""options.py: an option is declared once, on its config field; the command line's flags, defaults,
help and bounds are derived from it, `given` tells "not given" from "given its default", and
parse_value reads a value the way the flag does (the interactive :set)."""
import argparse
import dataclasses
import json

import pytest

from lyricgen.cli import build_parser
from lyricgen.config import (SAMPLE_PRESET, ModelConfig, RunConfig, SamplingConfig, SongConfig, StructureConfig,
                             TokenizerConfig, TrainConfig, generation_configs)
from lyricgen.errors import OptionError
from lyricgen.options import base_type, check_value, given, parse_value

COMMANDS = {  # the configs each command derives its flags from, and the flags it declares itself
    "train": ((RunConfig, TrainConfig, ModelConfig, TokenizerConfig), {"help", "quiet"}),
    "generate": ((StructureConfig, SongConfig, SamplingConfig),
                 {"help", "start", "checkpoint", "interactive", "sample", "json", "device"}),
}


def subparser(command: str) -> argparse.ArgumentParser:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


def cli_fields(classes):
    return [(cls, f) for cls in classes for f in dataclasses.fields(cls) if f.metadata.get("cli")]


def parse(capsys, *argv) -> argparse.Namespace | str:
    """The namespace, or the one error line argparse printed."""
    try:
        return build_parser().parse_args([str(a) for a in argv])
    except SystemExit as e:
        assert e.code == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1, err
        return err.strip()


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_flag_comes_from_exactly_one_config_field(command):
    classes, own = COMMANDS[command]
    actions = {a.dest: a for a in subparser(command)._actions}
    declared = cli_fields(classes)
    names = [f.name for _, f in declared]
    assert len(names) == len(set(names)), "a field name used twice in one command"
    assert set(actions) - own == set(names)
    for cls, f in declared:
        a, meta = actions[f.name], f.metadata
        flag = "--" + f.name.replace("_", "-")
        kind, _ = base_type(cls, f.name)
        assert a.option_strings == ([flag, "--no-" + flag[2:]] if f.default is True else [flag])
        assert a.default is argparse.SUPPRESS  # so that `given` sees only what was typed
        shown = f" (default: {f.default})" if f.default not in (None, False, "") else ""
        assert a.help == meta["help"] + shown
        assert a.choices == (list(meta["choices"]) if meta["choices"] else None)
        assert a.metavar == meta["metavar"]
        if kind in (int, float):
            assert a.type(str(f.default if f.default is not None else meta["low"] + 1)) is not None
    # the fields that are not options of the command line have no flag
    assert "vocab_size" not in actions and "lr_factor" not in actions and "lr_patience" not in actions


def _bad_values(meta, kind):
    """Values just outside each declared bound (and non-finite ones for floats)."""
    step = 1 if kind is int else 0.5
    low, high = meta["low"], meta["high"]
    values = []
    if low is not None:
        values.append(kind(low) if meta["low_open"] else kind(low - step))
    if high is not None:
        values.append(kind(high) if meta["high_open"] else kind(high + step))
    if kind is float:
        values += [float("inf"), float("nan")]
    return values


BOUNDED = [(command, cls, f) for command, (classes, _) in COMMANDS.items() for cls, f in cli_fields(classes)
           if base_type(cls, f.name)[0] in (int, float)]


@pytest.mark.parametrize("command, cls, f", BOUNDED, ids=[f"{c}-{f.name}" for c, _, f in BOUNDED])
def test_a_bound_refused_by_the_flag_is_refused_by_the_config_in_the_same_words(capsys, command, cls, f):
    kind, _ = base_type(cls, f.name)
    flag = "--" + f.name.replace("_", "-")
    values = _bad_values(f.metadata, kind)
    assert values
    for value in values:
        argv = [command, flag, str(value)] + (["月光"] if command == "generate" else [])
        err = parse(capsys, *argv)
        assert isinstance(err, str), f"{flag} {value} was accepted"
        with pytest.raises(OptionError) as info:
            cls(**{f.name: value, **({"vocab_size": 10} if cls is ModelConfig else {})})
        prefix = f"argument {flag}: "
        assert prefix in err
        assert err.split(prefix, 1)[1] == str(info.value).removeprefix(f"{f.name} "), (err, str(info.value))


def test_given_tells_not_given_from_given_its_default(capsys):
    args = parse(capsys, "generate", "月光", "--sample", "--temperature", "0")
    assert given(args, SamplingConfig, StructureConfig) == {"temperature": 0.0}
    sampling, _, _ = generation_configs(given(args, SamplingConfig, StructureConfig), sample=args.sample)
    assert sampling.greedy and sampling.temperature == 0.0  # --sample does not override what was typed
    assert sampling.top_p == SAMPLE_PRESET["top_p"]
    args = parse(capsys, "generate", "月光", "--sample")
    assert given(args, SamplingConfig, StructureConfig) == {}
    assert generation_configs({}, sample=args.sample)[0] == SamplingConfig(**SAMPLE_PRESET)
    args = parse(capsys, "generate", "月光", "--json", "--top-k", "0")
    assert given(args, SamplingConfig, StructureConfig) == {"top_k": 0}  # the default, but given

    args = parse(capsys, "train", "--epochs", "40", "--quiet")
    assert given(args, TrainConfig) == {"epochs": 40}  # 40 is the default
    assert given(args, RunConfig, ModelConfig, TokenizerConfig) == {}
    assert given(parse(capsys, "train"), RunConfig, TrainConfig, ModelConfig, TokenizerConfig) == {}
    args = parse(capsys, "train", "--no-cache", "--force", "--no-tie-weights", "--seed", "3")
    assert given(args, RunConfig) == {"cache": False, "force": True}
    assert given(args, ModelConfig) == {"tie_weights": False}
    assert given(args, TrainConfig) == {"seed": 3}
    assert given(parse(capsys, "train", "--cache"), RunConfig) == {"cache": True}


def test_sample_writes_what_the_preset_flags_write(cli, overfit_ckpt):
    # token by token: the bans then change what greedy decoding writes on this overfit model
    base = ["generate", "--checkpoint", overfit_ckpt, "晨光", "--lines", "4", "--seed", "5", "--json", "--plain"]
    explicit = [x for k, v in SAMPLE_PRESET.items() for x in ("--" + k.replace("_", "-"), str(v))]
    rc_a, out_a, _ = cli(*base, "--sample")
    rc_b, out_b, _ = cli(*base, *explicit)
    assert rc_a == rc_b == 0 and out_a == out_b and json.loads(out_a)
    rc_c, out_c, _ = cli(*base)  # greedy
    assert rc_c == 0 and out_c != out_a
    rc_d, out_d, _ = cli(*base, "--sample", "--temperature", "0")  # greedy again, with the preset's bans
    assert rc_d == 0 and out_d not in (out_a, out_c)
    rc_e, out_e, _ = cli(*base, *explicit, "--temperature", "0")
    assert out_d == out_e


def test_check_value_converts_only_what_is_harmless():
    meta = TrainConfig.__dataclass_fields__["lr"].metadata
    converted = check_value("lr", 1, float, False, meta)
    assert converted == 1.0 and isinstance(converted, float)
    for bad in (True, "0.1", None):
        with pytest.raises(OptionError, match="^lr must"):
            check_value("lr", bad, float, False, meta)
    assert check_value("max_steps", None, int, True, TrainConfig.__dataclass_fields__["max_steps"].metadata) is None


def test_from_dict_ignores_unknown_keys_and_defaults_missing_ones():
    stored = {**TrainConfig(epochs=7).to_dict(), "option_of_a_newer_version": 1}
    del stored["patience"]  # an option an older version did not have
    config = TrainConfig.from_dict(stored, max_steps=9)
    assert config == TrainConfig(epochs=7, max_steps=9)
    with pytest.raises(OptionError, match="^epochs must"):
        TrainConfig.from_dict({"epochs": -3})  # a stored dict is validated like any other


def test_parse_value_reads_text_like_the_flag(capsys):
    assert parse_value(SamplingConfig, "temperature", "0.9") == 0.9
    assert parse_value(SamplingConfig, "top_k", "3") == 3
    assert parse_value(SamplingConfig, "seed", "none") is None and parse_value(SamplingConfig, "seed", "OFF") is None
    assert parse_value(StructureConfig, "max_tokens", "12") == 12
    for text in ("1", "true", "Yes", "on"):
        assert parse_value(StructureConfig, "no_copy", text) is True
    for text in ("0", "false", "No", "off"):
        assert parse_value(StructureConfig, "no_copy", text) is False
    with pytest.raises(OptionError, match="no_copy.*'maybe'"):
        parse_value(StructureConfig, "no_copy", "maybe")  # not silently false
    with pytest.raises(OptionError, match="top_k needs an int, got 'many'"):
        parse_value(SamplingConfig, "top_k", "many")
    with pytest.raises(OptionError, match="top_k needs an int, got '1.5'"):
        parse_value(SamplingConfig, "top_k", "1.5")
    # out of bounds: the config's words, which are also the flag's
    with pytest.raises(OptionError) as info:
        parse_value(SamplingConfig, "top_p", "0")
    err = parse(capsys, "generate", "月光", "--top-p", "0")
    assert str(info.value) == "top_p " + err.split("argument --top-p: ", 1)[1]
    with pytest.raises(OptionError, match="^temperature must be a finite number"):
        parse_value(SamplingConfig, "temperature", "inf")
