import copy
import errno
import os
import pickle

import pytest
import torch

from lyricgen import checkpoint as ckpt_mod
from lyricgen.checkpoint import FORMAT, FORMAT_VERSION, load_checkpoint, model_from_checkpoint, save_checkpoint
from lyricgen.errors import LyricgenError
from lyricgen.text.vocab import Vocab


def _clone(ckpt: dict) -> dict:
    return copy.deepcopy(ckpt)


def _load_error(path) -> str:
    with pytest.raises(LyricgenError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert message and "\n" not in message, message
    return message


def test_real_checkpoint_loads_with_weights_only(tiny_run):
    raw = torch.load(tiny_run / "best.pt", map_location="cpu", weights_only=True)
    assert raw["format"] == FORMAT and raw["format_version"] == FORMAT_VERSION
    for key in ("model_config", "train_config", "tokenizer", "vocab", "model", "optimizer", "scheduler",
                "state", "rng"):
        assert key in raw, key


def test_save_load_round_trip(tiny_ckpt, tmp_path):
    path = tmp_path / "sub" / "copy.pt"
    save_checkpoint(tiny_ckpt, path)
    again = load_checkpoint(path)
    assert again["vocab"] == tiny_ckpt["vocab"]
    assert again["model_config"] == tiny_ckpt["model_config"]
    assert again["model"].keys() == tiny_ckpt["model"].keys()
    for name, tensor in tiny_ckpt["model"].items():
        assert torch.equal(again["model"][name], tensor), name
    model, vocab = model_from_checkpoint(again)
    assert isinstance(vocab, Vocab) and len(vocab) == model.config.vocab_size
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, tiny_ckpt["model"][name])
    assert sorted(p.name for p in path.parent.iterdir()) == ["copy.pt"]  # no temp files left


def _failing_save(exc):
    def fake_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise exc
    return fake_save


def test_failed_save_keeps_previous_file(tiny_run, tiny_ckpt, tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    path.write_bytes((tiny_run / "last.pt").read_bytes())
    before = path.read_bytes()
    monkeypatch.setattr("lyricgen.checkpoint.torch.save", _failing_save(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))))
    changed = _clone(tiny_ckpt)
    with pytest.raises(LyricgenError) as info:
        save_checkpoint(changed, path)
    assert "No space left" in str(info.value) and "\n" not in str(info.value)
    monkeypatch.undo()
    assert path.read_bytes() == before
    load_checkpoint(path)
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_interrupted_save_keeps_previous_file(tiny_run, tiny_ckpt, tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    path.write_bytes((tiny_run / "last.pt").read_bytes())
    before = path.read_bytes()
    monkeypatch.setattr("lyricgen.checkpoint.torch.save", _failing_save(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tiny_ckpt, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_stale_temp_files_are_removed(tiny_ckpt, tmp_path):
    stale = [tmp_path / ".last.pt.tmp-abc123", tmp_path / ".last.pt.tmp-zz"]
    for p in stale:
        p.write_bytes(b"left by a killed save")
    other = tmp_path / ".best.pt.tmp-keep"  # another file's temp is not ours to delete
    other.write_bytes(b"x")
    save_checkpoint(tiny_ckpt, tmp_path / "last.pt")
    assert not any(p.exists() for p in stale)
    assert other.exists()
    load_checkpoint(tmp_path / "last.pt")


# -- load errors ---------------------------------------------------------------------------------------
def test_missing(tmp_path):
    assert "not found" in _load_error(tmp_path / "nope.pt")


def test_directory(tmp_path):
    assert "directory" in _load_error(tmp_path)


def test_empty(tmp_path):
    (tmp_path / "e.pt").write_bytes(b"")
    assert "empty" in _load_error(tmp_path / "e.pt")


def test_random_bytes(tmp_path):
    path = tmp_path / "r.pt"
    path.write_bytes(os.urandom(4096))
    assert "not a readable lyricgen checkpoint" in _load_error(path)


@pytest.mark.parametrize("keep", [0.5, 0.9, 200])
def test_truncated_real_checkpoint(tiny_run, tmp_path, keep):
    data = (tiny_run / "best.pt").read_bytes()
    n = keep if isinstance(keep, int) else int(len(data) * keep)
    path = tmp_path / "t.pt"
    path.write_bytes(data[:n])
    assert str(path) in _load_error(path)


class _Evil:
    """Unpickling this would create `marker`: proof that a loader ran code from the file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


def test_payload_really_runs_code_when_unpickled(tmp_path):
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(_Evil(marker)))
    assert marker.exists()  # so the refusal below is meaningful


@pytest.mark.parametrize("how", ["torch.save", "pickle"])
def test_code_running_pickle_is_refused(tiny_ckpt, tmp_path, how):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    bad = {**tiny_ckpt, "state": _Evil(marker)}
    if how == "torch.save":
        torch.save(bad, path)
    else:
        path.write_bytes(pickle.dumps(bad, protocol=2))
    _load_error(path)
    assert not marker.exists()


def _saved(tmp_path, ckpt) -> str:
    path = tmp_path / "bad.pt"
    torch.save(ckpt, path)
    return _load_error(path)


def test_wrong_format_marker(tiny_ckpt, tmp_path):
    assert "format marker" in _saved(tmp_path, {**tiny_ckpt, "format": "nanogpt"})
    assert "format marker" in _saved(tmp_path, {"model": {}})
    assert "format marker" in _saved(tmp_path, [1, 2, 3])


@pytest.mark.parametrize("key", ["vocab", "model", "model_config", "format_version"])
def test_missing_keys(tiny_ckpt, tmp_path, key):
    bad = {k: v for k, v in tiny_ckpt.items() if k != key}
    assert key in _saved(tmp_path, bad)


def test_vocab_size_mismatch(tiny_ckpt, tmp_path):
    bad = _clone(tiny_ckpt)
    bad["vocab"]["tokens"].append("新词")
    bad["vocab"]["counts"].append(0)
    assert "inconsistent" in _saved(tmp_path, bad)


def test_config_mismatch_with_weights(tiny_ckpt, tmp_path):
    bad = _clone(tiny_ckpt)
    bad["model_config"]["hidden_size"] = 32
    path = tmp_path / "bad.pt"
    torch.save(bad, path)
    with pytest.raises(LyricgenError) as info:
        model_from_checkpoint(load_checkpoint(path), path)
    assert "\n" not in str(info.value)


def test_invalid_config(tiny_ckpt, tmp_path):
    bad = _clone(tiny_ckpt)
    bad["model_config"]["cell"] = "transformer"
    assert "transformer" in _saved(tmp_path, bad)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights(tiny_ckpt, tmp_path, value):
    bad = _clone(tiny_ckpt)
    name = next(k for k in bad["model"] if k.startswith("rnn.weight"))
    bad["model"][name][0, 0] = value
    assert name in _saved(tmp_path, bad)


def test_newer_format_version(tiny_ckpt, tmp_path):
    message = _saved(tmp_path, {**tiny_ckpt, "format_version": FORMAT_VERSION + 1})
    assert "newer" in message and "upgrade" in message


@pytest.mark.parametrize("version", [0, "1", None])
def test_invalid_format_version(tiny_ckpt, tmp_path, version):
    assert "format version" in _saved(tmp_path, {**tiny_ckpt, "format_version": version})


def test_weights_that_are_not_tensors(tiny_ckpt, tmp_path):
    bad = _clone(tiny_ckpt)
    bad["model"]["embedding.weight"] = [[0.0] * 8]
    _saved(tmp_path, bad)

