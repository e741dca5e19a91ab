"""config.py: the typed configs refuse what they declare out of bounds (naming the field), the rules
between fields, greedy decoding, the --sample preset and generation_configs."""
import math

import pytest

from lyricgen.config import (MAX_SAMPLES, MAX_TOKENS, SAMPLE_PRESET, SEED_MAX, DeviceConfig, DownloadConfig,
                             EvaluateConfig, GenerateConfig, LoadConfig, ModelConfig, ReportConfig, RunConfig,
                             SamplingConfig, ServeConfig, SongConfig, StructureConfig, TokenizerConfig, TrainConfig,
                             generation_configs)
from lyricgen.errors import LyricgenError, OptionError
from lyricgen.options import EXTEND, FIXED, PER_RUN

ALL_CONFIGS = [ModelConfig, TokenizerConfig, TrainConfig, DeviceConfig, LoadConfig, RunConfig, ServeConfig,
               SamplingConfig, StructureConfig, SongConfig, GenerateConfig, ReportConfig, EvaluateConfig,
               DownloadConfig]


def make(cls, **kw):
    return cls(**{**({"vocab_size": 10} if cls is ModelConfig else {}), **kw})


OUT_OF_BOUNDS = [
    (ModelConfig, "vocab_size", 0), (ModelConfig, "embed_dim", 0), (ModelConfig, "hidden_size", -1),
    (ModelConfig, "num_layers", 0), (ModelConfig, "dropout", 1.0), (ModelConfig, "embed_dropout", -0.1),
    (TokenizerConfig, "min_freq", 0),
    (TrainConfig, "epochs", -1), (TrainConfig, "batch_size", 0), (TrainConfig, "seq_len", 0), (TrainConfig, "lr", 0.0),
    (TrainConfig, "lr", 1e39), (TrainConfig, "weight_decay", -1e-4), (TrainConfig, "clip", 0.0),
    (TrainConfig, "val_fraction", 1.0), (TrainConfig, "patience", 0), (TrainConfig, "lr_factor", 1.0),
    (TrainConfig, "lr_patience", -1), (TrainConfig, "seed", SEED_MAX + 1), (TrainConfig, "seed", 2 ** 80),
    (TrainConfig, "max_steps", 0), (TrainConfig, "time_budget", 0.0), (TrainConfig, "time_budget", math.inf),
    (SamplingConfig, "temperature", -1.0), (SamplingConfig, "temperature", math.inf),
    (SamplingConfig, "temperature", math.nan), (SamplingConfig, "top_k", -1), (SamplingConfig, "top_p", 0.0),
    (SamplingConfig, "top_p", 1.5), (SamplingConfig, "repetition_penalty", 0.0),
    (SamplingConfig, "no_repeat_ngram", -1),
    (SamplingConfig, "seed", -1), (SamplingConfig, "num_samples", 0), (SamplingConfig, "num_samples", MAX_SAMPLES + 1),
    (StructureConfig, "max_tokens", 0), (StructureConfig, "max_tokens", MAX_TOKENS + 1), (StructureConfig, "lines", -1),
    (StructureConfig, "min_line_tokens", -1), (StructureConfig, "max_line_tokens", -1),
    (SongConfig, "rhyme", "ABBA"), (SongConfig, "rhyme", "aabb"), (SongConfig, "line_candidates", 0),
    (SongConfig, "line_candidates", 513),
    (ReportConfig, "songs", 0), (ReportConfig, "lines", 0), (ReportConfig, "mode", "all"),
    (ServeConfig, "port", 65536), (ServeConfig, "workers", 0), (ServeConfig, "queue", -1),
]


@pytest.mark.parametrize("cls, name, value", OUT_OF_BOUNDS, ids=lambda x: getattr(x, "__name__", str(x)))
def test_out_of_bounds_values_are_refused_naming_the_field(cls, name, value):
    with pytest.raises(OptionError) as info:
        make(cls, **{name: value})
    assert isinstance(info.value, LyricgenError) and isinstance(info.value, ValueError)
    message = str(info.value)
    assert message.startswith(f"{name} must ") and "\n" not in message


@pytest.mark.parametrize("cls, name, value", [
    (ModelConfig, "embed_dim", "8"), (ModelConfig, "embed_dim", 8.0), (ModelConfig, "hidden_size", True),
    (ModelConfig, "dropout", "0.5"), (ModelConfig, "tie_weights", 1), (TrainConfig, "epochs", None),
    (SamplingConfig, "seed", 1.5), (SamplingConfig, "temperature", False),
], ids=lambda x: getattr(x, "__name__", repr(x)))
def test_values_of_the_wrong_type_are_refused_naming_the_field(cls, name, value):
    with pytest.raises(OptionError, match=f"^{name} must "):
        make(cls, **{name: value})


def test_an_int_is_a_float_where_a_float_is_declared():
    config = TrainConfig(lr=1, time_budget=60)
    assert isinstance(config.lr, float) and config.lr == 1.0
    assert isinstance(config.time_budget, float)
    assert TrainConfig(max_steps=None).max_steps is None  # optional fields take None


@pytest.mark.parametrize("cls, name, value", [(ModelConfig, "cell", "foo"), (RunConfig, "device", "gpu"),
                                              (LoadConfig, "device", "tpu"), (ServeConfig, "device", "gpu")])
def test_unknown_choice_is_named_with_the_choices(cls, name, value):
    with pytest.raises(OptionError) as info:
        make(cls, **{name: value})
    message = str(info.value)
    assert name in message and repr(value) in message
    assert ("lstm" if name == "cell" else "cuda") in message


def test_all_configs_lists_every_config():
    from lyricgen import config
    from lyricgen.options import Config

    assert set(ALL_CONFIGS) == {c for c in vars(config).values() if isinstance(c, type) and issubclass(c, Config)
                                and c is not Config}


@pytest.mark.parametrize("cls", ALL_CONFIGS)
def test_defaults_are_valid_and_round_trip_as_plain_dicts(cls):
    config = make(cls)
    d = config.to_dict()
    assert all(isinstance(v, (int, float, str, bool, type(None))) for v in d.values())
    assert cls.from_dict(d) == config
    assert cls(**d) == config
    other = ModelConfig(vocab_size=10, cell="gru", embed_dim=4)
    assert ModelConfig(**other.to_dict()) == other


def test_one_device_default_and_one_checkpoint_default_for_every_command():
    """auto: CUDA when available, else the CPU, for training, generation, reports, evaluation and
    serving alike; serve loads the checkpoint the other commands load by default."""
    assert {cls().device for cls in (DeviceConfig, LoadConfig, RunConfig, ServeConfig)} == {"auto"}
    assert LoadConfig().checkpoint == ServeConfig().checkpoint == "checkpoints/best.pt"
    assert issubclass(ServeConfig, LoadConfig) and issubclass(RunConfig, DeviceConfig)


def test_structure_min_line_tokens_cannot_exceed_max_line_tokens():
    with pytest.raises(OptionError) as info:
        StructureConfig(min_line_tokens=5, max_line_tokens=4)
    assert "min_line_tokens" in str(info.value) and "max_line_tokens" in str(info.value)
    assert StructureConfig(min_line_tokens=5, max_line_tokens=5).max_line_tokens == 5
    assert StructureConfig(min_line_tokens=5, max_line_tokens=0).min_line_tokens == 5  # 0: no maximum


def test_greedy_means_temperature_0_or_top_k_1():
    assert SamplingConfig().greedy  # the default
    assert SamplingConfig(temperature=0.0, top_p=0.5, top_k=3).greedy
    assert SamplingConfig(temperature=1.5, top_k=1).greedy
    assert not SamplingConfig(temperature=1e-6).greedy
    assert not SamplingConfig(temperature=1.0, top_k=2).greedy


def test_the_sample_preset_is_a_valid_sampling_config():
    sampling = SamplingConfig(**SAMPLE_PRESET)
    assert not sampling.greedy
    assert sampling.to_dict() == {**SamplingConfig().to_dict(), **SAMPLE_PRESET}


def test_generation_configs_split_options_by_name_and_refuse_unknown_ones():
    sampling, structure, song = generation_configs({"temperature": 0.5, "lines": 3, "no_copy": True, "seed": 4,
                                                    "rhyme": "AABB"})
    assert sampling == SamplingConfig(temperature=0.5, seed=4)
    assert structure == StructureConfig(lines=3, no_copy=True)
    assert song == SongConfig(rhyme="AABB")
    assert generation_configs({}) == (SamplingConfig(), StructureConfig(), SongConfig())
    with pytest.raises(OptionError) as info:
        generation_configs({"colour": "red", "lines": 2})
    message = str(info.value)
    assert "'colour'" in message and "temperature" in message and "max_tokens" in message


def test_sample_fills_only_the_options_not_given():
    sampling, _, song = generation_configs({}, sample=True)
    assert sampling == SamplingConfig(**SAMPLE_PRESET) and song == SongConfig()
    sampling, structure, _ = generation_configs({"temperature": 0.0, "lines": 2}, sample=True)
    assert sampling.temperature == 0.0 and sampling.greedy  # given, even at its default: kept
    assert sampling.top_p == SAMPLE_PRESET["top_p"] and sampling.no_repeat_ngram == SAMPLE_PRESET["no_repeat_ngram"]
    assert structure.lines == 2


def test_what_resume_may_change():
    assert TrainConfig.option_names(EXTEND) == ["epochs", "patience"]
    assert TrainConfig.option_names(PER_RUN) == ["time_budget", "max_steps"]
    fixed = TrainConfig.option_names(FIXED)
    assert "seq_len" in fixed and "lr" in fixed
    assert "lr_factor" not in fixed and "lr_patience" not in fixed  # no flag: not options of the command line
