"""options.py: an option is declared once, on its config field; the command line's flags, defaults,
help and bounds are derived from it, `given` tells "not given" from "given its default", and
parse_value reads a value the way the flag does (the interactive :set)."""
import argparse
import ast
import dataclasses
import inspect
import json
from pathlib import Path

import pytest

from lyricgen import cli, config
from lyricgen.cli import build_parser
from lyricgen.config import (REPORT_SONG_OPTIONS, SAMPLE_PRESET, DownloadConfig, EvaluateConfig,
                             GenerateConfig, LoadConfig, ModelConfig, ReportConfig, RunConfig, SamplingConfig,
                             ServeConfig, SongConfig, StructureConfig, TokenizerConfig, TrainConfig,
                             generation_configs)
from lyricgen.errors import OptionError
from lyricgen.options import Config, base_type, check_value, flag, given, parse_value
from lyricgen.runfiles import DEFAULT_DIR, RunFiles

COMMANDS = {  # the configs each command derives its flags from (the names `only` takes, or all), and its positionals
    "train": ([(RunConfig, None), (TrainConfig, None), (ModelConfig, None), (TokenizerConfig, None)], set()),
    "generate": ([(LoadConfig, None), (GenerateConfig, None), (StructureConfig, None), (SongConfig, None),
                  (SamplingConfig, None)], {"start"}),
    "report": ([(LoadConfig, None), (ReportConfig, None), (SongConfig, REPORT_SONG_OPTIONS)], set()),
    "evaluate": ([(LoadConfig, None), (EvaluateConfig, None)], {"file"}),
    "download": ([(DownloadConfig, None)], {"name"}),
    "serve": ([(ServeConfig, None)], set()),
    "plot": ([], {"run_dir"}),
}
CONFIGS = [c for c in vars(config).values() if isinstance(c, type) and issubclass(c, Config) and c is not Config]


def subparser(command: str) -> argparse.ArgumentParser:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


def cli_fields(configs):
    return [(cls, f) for cls, only in configs for f in dataclasses.fields(cls)
            if f.metadata.get("cli") and (only is None or f.name in only)]


def parse(capsys, *argv) -> argparse.Namespace | str:
    """The namespace, or the one error line argparse printed."""
    try:
        return build_parser().parse_args([str(a) for a in argv])
    except SystemExit as e:
        assert e.code == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1, err
        return err.strip()


def test_every_command_is_in_this_table():
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == set(COMMANDS)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_flag_of_a_command_is_a_field_of_its_configs(command):
    """Each optional argument is one config field's flag (its help is the field's), each field of the
    command's configs has its flag, and no field name is a flag twice."""
    configs, positionals = COMMANDS[command]
    actions = [a for a in subparser(command)._actions if not isinstance(a, argparse._HelpAction)]
    assert {a.dest for a in actions if not a.option_strings} == positionals
    flags = {a.dest: a for a in actions if a.option_strings}
    declared = cli_fields(configs)
    assert sorted(flags) == sorted(f.name for _, f in declared)
    for _, f in declared:
        assert "--" + f.name.replace("_", "-") in flags[f.name].option_strings
        assert flags[f.name].help.startswith(f.metadata["help"])
        assert flags[f.name].default is argparse.SUPPRESS  # so that `given` sees only what was typed


def test_cli_py_declares_no_flag_by_hand():
    """cli.py's own add_argument calls name positionals (and --version) only: every flag a config
    declares comes through add_options, so its default, bounds and help are written once."""
    tree = ast.parse(Path(cli.__file__).read_text(encoding="utf-8"))
    methods = [n for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr == "add_argument"]
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and n.func in methods]
    assert calls and len(calls) == len(methods)  # no alias (a = p.add_argument) hides a call from this walk
    by_hand = [arg.value for call in calls for arg in call.args if isinstance(arg, ast.Constant)
               and isinstance(arg.value, str) and arg.value.startswith("-")]
    assert by_hand == ["--version"]
    config_flags = {flag(f.name) for cls in CONFIGS for f in dataclasses.fields(cls) if f.metadata.get("cli")}
    assert "--checkpoint" in config_flags and "--version" not in config_flags


def test_checkpoint_and_device_have_one_default_in_every_command(capsys):
    with_device = {c for c, (configs, _) in COMMANDS.items() for _, f in cli_fields(configs) if f.name == "device"}
    with_checkpoint = {c for c, (configs, _) in COMMANDS.items()
                       for _, f in cli_fields(configs) if f.name == "checkpoint"}
    assert with_device == {"train", "generate", "report", "evaluate", "serve"}
    assert with_checkpoint == {"generate", "report", "evaluate", "serve"}
    for name, commands, default in (("device", with_device, "auto"), ("checkpoint", with_checkpoint,
                                                                       "checkpoints/best.pt")):
        helps = {next(a.help for a in subparser(c)._actions if a.dest == name) for c in commands}
        declared = LoadConfig.__dataclass_fields__[name]
        assert helps == {f"{declared.metadata['help']} (default: {default})"}  # one declaration, one help
        declaring = {cls for cls in CONFIGS if name in cls.__dataclass_fields__}
        assert {cls.__dataclass_fields__[name] for cls in declaring} == {declared}  # inherited, not repeated
        assert declared.default == default
    # the default is spelled once: the run directory's names (runfiles.py), which training writes
    sources = {m.__name__: inspect.getsource(m) for m in (config, cli)}
    assert LoadConfig.__dataclass_fields__["checkpoint"].default == str(RunFiles(DEFAULT_DIR).best)
    assert '"checkpoints/best.pt"' not in sources["lyricgen.config"]
    assert "checkpoints/best.pt" not in sources["lyricgen.cli"] and 'Path("checkpoints")' not in sources["lyricgen.cli"]
    for argv in (["generate", "月光"], ["report"], ["evaluate", "f.txt"], ["serve"]):
        load = LoadConfig(**given(parse(capsys, *argv), LoadConfig))
        assert load == LoadConfig(checkpoint="checkpoints/best.pt", device="auto")
    assert RunConfig(**given(parse(capsys, "train"), RunConfig)).device == "auto"
    assert ServeConfig(**given(parse(capsys, "serve", "--device", "cpu", "--checkpoint", "x.pt"), ServeConfig)) \
        == ServeConfig(checkpoint="x.pt", device="cpu")


def test_report_counts_are_checked_by_the_flag_in_the_configs_words(capsys):
    for name in ("songs", "lines"):
        err = parse(capsys, "report", flag(name), "0")
        with pytest.raises(OptionError) as info:
            ReportConfig(**{name: 0})
        assert err == f"lyricgen report: error: argument {flag(name)}: " + str(info.value).removeprefix(f"{name} ")
    args = parse(capsys, "report", "--songs", "3", "--json", "--rhyme", "AABB")
    assert ReportConfig(**given(args, ReportConfig)) == ReportConfig(songs=3, json=True)
    assert given(args, SongConfig) == {"rhyme": "AABB"}
    assert "acrostic" in parse(capsys, "report", "--acrostic", "春夏")  # not an option of the report


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


BOUNDED = [(command, cls, f) for command, (configs, _) in COMMANDS.items() for cls, f in cli_fields(configs)
           if base_type(cls, f.name)[0] in (int, float)]


@pytest.mark.parametrize("command, cls, f", BOUNDED, ids=[f"{c}-{f.name}" for c, _, f in BOUNDED])
def test_a_bound_refused_by_the_flag_is_refused_by_the_config_in_the_same_words(capsys, command, cls, f):
    kind, _ = base_type(cls, f.name)
    flag = "--" + f.name.replace("_", "-")
    values = _bad_values(f.metadata, kind)
    assert values
    for value in values:
        argv = [command, flag, str(value)] + {"generate": ["月光"], "evaluate": ["f.txt"]}.get(command, [])
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
    assert given(args, RunConfig, ModelConfig, TokenizerConfig) == {"quiet": True}  # a run option now
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
    assert rc_e == 0 and out_d == out_e


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
