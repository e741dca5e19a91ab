"""--cell transformer: the cache of past keys and values against a full forward pass (one token at a
time, a prompt then steps, chunks, across the sliding window), the Predictor and chunked scoring on
its state, and the whole life of a tiny transformer run through the real command line: train, exact
resume, torchrun DDP with resume, generate (plain and songs), evaluate, serve."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from conftest import TESTS, TINY_CORPUS, TINY_DATA, call_cli, requires_cuda, run_lyricgen, same_tensors
from lyricgen.checkpoint import load_checkpoint
from lyricgen.config import ModelConfig
from lyricgen.errors import OptionError
from lyricgen.model import LyricsTransformer, build_model, count_parameters, detach_hidden, macs_per_token

V, E, HEADS = 23, 16, 2


def tiny(num_layers=2, attention_window=6, **kw) -> LyricsTransformer:
    torch.manual_seed(0)
    options = dict(vocab_size=V, cell="transformer", embed_dim=E, num_heads=HEADS, num_layers=num_layers,
                   attention_window=attention_window, dropout=0.0, embed_dropout=0.0)
    return build_model(ModelConfig(**{**options, **kw}))


def stream(b=3, t=20, seed=1):
    return torch.randint(0, V, (b, t), generator=torch.Generator().manual_seed(seed))


def read_in_pieces(model, x, sizes) -> tuple[torch.Tensor, tuple]:
    """Logits of x (B, T) read in consecutive pieces of `sizes` tokens (then one at a time), the cache carried."""
    out, cache, t = [], None, 0
    sizes = list(sizes)
    while t < x.shape[1]:
        n = sizes.pop(0) if sizes else 1
        logits, cache = model(x[:, t:t + n], cache)
        out.append(logits)
        t += n
    return torch.cat(out, dim=1), cache


# -- the model --------------------------------------------------------------------------------------
def test_shapes_and_the_cache_layout():
    model = tiny(num_layers=3, attention_window=6).eval()
    logits, cache = model(stream(t=4))
    assert logits.shape == (3, 4, V)
    assert isinstance(cache, tuple) and len(cache) == 3  # one tensor per block, the batch in dim 1
    assert all(c.shape == (2, 3, HEADS, 4, E // HEADS) for c in cache)
    _, cache = model(stream(t=20))
    assert all(c.shape == (2, 3, HEADS, 5, E // HEADS) for c in cache)  # the window less the next position
    assert not any(isinstance(m, torch.nn.RNNBase) for m in model.modules())


@pytest.mark.parametrize("window", [64, 6], ids=["inside the window", "across the window"])
@pytest.mark.parametrize("pieces", [[], [5], [7, 7]], ids=["token by token", "prompt then steps", "chunks"])
def test_the_cache_gives_the_logits_of_a_full_forward_pass(window, pieces):
    model = tiny(attention_window=window).eval()
    x = stream(t=20)
    with torch.no_grad():
        full, _ = model(x)  # (B, T, V): one pass, the sliding window as a mask
        stepped, cache = read_in_pieces(model, x, pieces)
    assert torch.allclose(stepped, full, atol=1e-5), (stepped - full).abs().max()
    assert all(c.shape[3] == min(window - 1, 20) for c in cache)  # the cache never outgrows the window


def test_one_block_reads_only_its_window_and_positions_are_relative():
    """With one block each position sees exactly the last `window` tokens: the stepped logits after
    a long stream are those of a fresh forward pass over its last window alone, and no token before
    that window changes them."""
    window = 5
    model = tiny(num_layers=1, attention_window=window).eval()
    x = stream(t=40)
    with torch.no_grad():
        stepped, _ = read_in_pieces(model, x, [3])
        last, _ = model(x[:, -window:])
        changed = x.clone()
        changed[:, :-window] = (changed[:, :-window] + 1) % V
        other, _ = read_in_pieces(model, changed, [3])
    assert torch.allclose(stepped[:, -1], last[:, -1], atol=1e-5)
    assert torch.allclose(other[:, -1], stepped[:, -1], atol=1e-5)
    assert not torch.allclose(other[:, -window - 1], stepped[:, -window - 1], atol=1e-4)  # earlier ones did see it


def test_two_blocks_see_further_than_one_window():
    """Stacked blocks read the window of a window: the second block's cached keys carry what the
    first block saw, so the cache reproduces the full pass, not a pass over the last window alone."""
    model = tiny(num_layers=2, attention_window=4).eval()
    x = stream(t=12)
    with torch.no_grad():
        full, _ = model(x)
        last, _ = model(x[:, -4:])
    assert not torch.allclose(full[:, -1], last[:, -1], atol=1e-4)


def test_training_mode_dropout_and_gradients():
    model = tiny(dropout=0.3, embed_dropout=0.1)
    x = stream()
    model.eval()
    with torch.no_grad():
        a, _ = model(x)
        b, _ = model(x)
    assert torch.equal(a, b)
    model.train()
    logits, _ = model(x)
    assert not torch.allclose(logits, a)
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_tied_weights_and_macs_per_token():
    model = tiny(tie_weights=True, num_layers=2, attention_window=6)
    assert model.decoder.weight is model.embedding.weight
    untied = tiny(tie_weights=False, num_layers=2, attention_window=6)
    assert count_parameters(untied) - count_parameters(model) == V * E
    # every matrix product but attention's own is a weight matrix (norm gains and biases cost none)
    matrices = sum(p.numel() for name, p in model.named_parameters() if p.dim() == 2 and name != "embedding.weight")
    attention = 2 * (2 * E * 6)  # two blocks; scores and weighted sum over a full window of 6
    assert macs_per_token(model.config) == matrices + V * E + attention


def test_heads_must_split_the_width_evenly():
    for embed_dim, heads in ((16, 3), (8, 8)):  # 16 / 3; heads of one dimension cannot rotate
        with pytest.raises(OptionError, match="num_heads"):
            ModelConfig(vocab_size=V, cell="transformer", embed_dim=embed_dim, num_heads=heads)
    ModelConfig(vocab_size=V, cell="lstm", embed_dim=16, num_heads=3)  # the RNNs ignore it


def test_configs_without_the_new_fields_load_with_defaults():
    old = {"vocab_size": V, "cell": "lstm", "embed_dim": 8, "hidden_size": 16, "num_layers": 1, "dropout": 0.1,
           "embed_dropout": 0.0, "tie_weights": True}
    config = ModelConfig.from_dict(old)
    assert (config.num_heads, config.attention_window) == (4, 32)
    assert type(build_model(config)).__name__ == "LyricsRNN"


def test_training_steps_under_strict_deterministic_algorithms_repeat_bit_for_bit():
    """What --deterministic switches on: no operation of the transformer refuses it, and two runs
    of the same steps from the same seed end with the same weights."""
    from lyricgen.config import TrainConfig
    from lyricgen.training.trainer import make_optimizer, train_step

    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        weights = []
        for _ in range(2):
            model = tiny(dropout=0.2, embed_dropout=0.1, attention_window=4)
            optimizer = make_optimizer(model, TrainConfig())
            x = stream(t=9)
            for _ in range(3):
                train_step(model, optimizer, x[:, :-1], x[:, 1:], clip=1.0)
            weights.append(model.state_dict())
    finally:
        torch.use_deterministic_algorithms(before)
    same_tensors(weights[0], weights[1], "weights")


# -- what carries the state: the Predictor and chunked scoring ------------------------------------------
def test_predictor_steps_feeds_and_selects_rows_of_the_cache():
    from lyricgen.writing.predictor import Predictor

    model = tiny(attention_window=5).eval()
    ids = stream(b=1, t=14)[0].tolist()
    with torch.no_grad():
        full = F.log_softmax(model(torch.tensor([ids]))[0][0], dim=-1)  # (T, V)
    predictor = Predictor(model)
    logp, state = predictor.start(ids[:3], n=2)
    assert torch.allclose(logp, full[2].expand(2, -1), atol=1e-5)
    for t in range(3, 8):
        logp, state = predictor.step(state, torch.tensor([ids[t]] * 2))
        assert torch.allclose(logp, full[t].expand(2, -1), atol=1e-5), t
    logp, state = predictor.feed(state, ids[8:12])
    assert torch.allclose(logp, full[11].expand(2, -1), atol=1e-5)
    # rows diverge; select keeps, reorders and copies rows of every block's cache
    _, state = predictor.step(state, torch.tensor([ids[12], 0]))
    chosen = predictor.select(state, torch.tensor([1, 0, 0]))
    assert all(c.shape[1] == 3 for c in chosen.hidden)
    logp, _ = predictor.step(chosen, torch.tensor([ids[13]] * 3))
    assert torch.allclose(logp[1], full[13], atol=1e-5) and torch.allclose(logp[1], logp[2])
    assert not torch.allclose(logp[0], logp[1], atol=1e-4)


def test_chunked_scoring_carries_the_cache():
    from lyricgen.scoring.score import token_nll

    model = tiny(attention_window=6)
    ids = stream(b=1, t=40)[0].tolist()
    whole = token_nll(model, ids, 0, 1, 0.0, torch.device("cpu"), chunk_len=256)
    chunked = token_nll(model, ids, 0, 1, 0.0, torch.device("cpu"), chunk_len=7)
    assert torch.allclose(whole, chunked, atol=1e-5)
    _, cache = model(torch.tensor([ids]))
    assert not any(c.requires_grad for c in detach_hidden(cache))


# -- a tiny run through the command line --------------------------------------------------------------
# two blocks, a window shorter than --seq-len (training uses the band mask too), dropout everywhere
# (embeddings, attention, residual branches): every step draws from the RNG, so exact resume needs it
TRANSFORMER = ["--cell", "transformer", "--embed-dim", "8", "--num-heads", "2", "--num-layers", "2",
               "--attention-window", "6", "--dropout", "0.2", "--embed-dropout", "0.1"]
RESUME_TRAIN = [*TRANSFORMER, *TINY_DATA, "--seed", "7", "--device", "cpu", "--quiet"]
STEPS_PER_EPOCH = 11


def train_argv(out, *extra) -> list:
    return ["train", "--corpus", TINY_CORPUS, "--out", out, *RESUME_TRAIN, *extra]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory) -> Path:
    from lyricgen.cli import main

    out = tmp_path_factory.mktemp("transformer-run")
    assert main([str(a) for a in train_argv(out, "--epochs", "2")]) == 0
    return out


def assert_same_run(a: Path, b: Path, rngs: str = "rng") -> None:
    x, y = load_checkpoint(a / "last.pt"), load_checkpoint(b / "last.pt")
    assert x.training.state.step == y.training.state.step
    same_tensors(x.weights, y.weights, "weights")
    same_tensors(x.training.optimizer, y.training.optimizer, "optimizer")
    same_tensors(getattr(x.training, rngs), getattr(y.training, rngs), rngs)
    keys = ("epoch", "step", "train_loss", "val_loss", "lr")
    assert [{k: r[k] for k in keys} for r in x.training.state.metrics] == \
        [{k: r[k] for k in keys} for r in y.training.state.metrics]


def test_the_checkpoint_is_a_transformer_of_plain_values(full_run):
    raw = torch.load(full_run / "best.pt", map_location="cpu", weights_only=True)
    config = raw["model_config"]
    assert config["cell"] == "transformer" and (config["num_heads"], config["attention_window"]) == (2, 6)
    assert all(isinstance(v, (int, float, str, bool)) for v in config.values())
    ckpt = load_checkpoint(full_run / "best.pt")
    model = ckpt.build_model()
    assert isinstance(model, LyricsTransformer) and len(model.blocks) == 2
    assert ckpt.training.state.step == 2 * STEPS_PER_EPOCH
    rows = ckpt.training.state.metrics
    assert len(rows) == 2 and rows[1]["train_loss"] < rows[0]["train_loss"]  # it learns


def test_resume_mid_epoch_is_exact(full_run, tmp_path, capsys):
    out = tmp_path / "run"
    rc, _, err = call_cli(train_argv(out, "--epochs", "2", "--max-steps", "3"), capsys)
    assert rc == 0, err
    assert load_checkpoint(out / "last.pt").training.state.step == 3
    torch.manual_seed(999)  # whatever the process did in between moves the global RNG
    torch.rand(17)
    rc, _, err = call_cli(["train", "--resume", out / "last.pt", "--device", "cpu", "--quiet"], capsys)
    assert rc == 0, err
    assert_same_run(out, full_run)


def test_generate_plain_and_songs_from_the_checkpoint(full_run, capsys):
    from lyricgen.text.rhyme import rhyme_id
    from lyricgen.writing.lyricist import Lyricist

    rc, out, err = call_cli(["generate", "月光", "--checkpoint", full_run / "best.pt", "--max-tokens", "15",
                             "--plain", "--json"], capsys)
    assert rc == 0, err
    [candidate] = json.loads(out)
    assert candidate["text"].startswith("月光")
    writer = Lyricist.load(full_run / "best.pt")
    song = writer.generate("月光", lines=4, rhyme="AABB", temperature=1.0, top_p=0.95, seed=3)[0]
    lines = song.text.split("\n")
    assert len(lines) == 4 and rhyme_id(lines[0]) == rhyme_id(lines[1]) and rhyme_id(lines[2]) == rhyme_id(lines[3])
    assert writer.generate("月光", lines=4)[0] == writer.generate("月光", lines=4)[0]  # greedy: deterministic


def test_evaluate_scores_what_training_validated(full_run, capsys):
    rc, out, err = call_cli(["evaluate", TINY_CORPUS, "--checkpoint", full_run / "best.pt", "--held-out", "--json",
                             "--device", "cpu"], capsys)
    assert rc == 0, err
    result = json.loads(out)
    best = load_checkpoint(full_run / "best.pt").training.state.best_loss
    assert result["loss"] == pytest.approx(best, abs=1e-6)


def test_serve_generates_with_the_transformer(full_run):
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    from fastapi.testclient import TestClient

    from lyricgen.serving.app import create_app
    from lyricgen.serving.engine import Engine
    from lyricgen.serving.pool import WorkerPool

    engine = Engine(WorkerPool(1, 2))
    engine.load(full_run / "best.pt", torch.device("cpu"), model_id="tiny-transformer")
    try:
        with TestClient(create_app(engine)) as client:
            r = client.post("/api/generate", json={"start": "月光", "max_tokens": 20})
        assert r.status_code == 200, r.text
        assert r.json()["candidates"][0] == engine.writer.generate("月光", max_tokens=20)[0].to_dict()
    finally:
        engine.pool.shutdown()


# -- torchrun: two gloo processes ---------------------------------------------------------------------
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
DDP_TRAIN = [*TRANSFORMER, *TINY_DATA, "--batch-size", "4", "--seed", "7", "--device", "cpu", "--quiet"]


def torchrun(*args) -> subprocess.CompletedProcess:
    return subprocess.run([*TORCHRUN, *map(str, args)], capture_output=True, text=True, encoding="utf-8",
                          timeout=240, env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=TESTS.parent)


def test_ddp_run_stopped_and_resumed_equals_the_uninterrupted_one(tmp_path):
    dist = pytest.importorskip("torch.distributed")
    if not (dist.is_available() and dist.is_gloo_available()):
        pytest.skip("torch.distributed with gloo is unavailable")
    full, out = tmp_path / "full", tmp_path / "run"
    train = ["-m", "lyricgen", "train", "--corpus", TINY_CORPUS, *DDP_TRAIN, "--epochs", "1"]
    r = torchrun(*train, "--out", full)
    assert r.returncode == 0, r.stderr
    r = torchrun(*train, "--out", out, "--max-steps", "5")
    assert r.returncode == 0, r.stderr
    stopped = load_checkpoint(out / "last.pt").training
    assert stopped.world_size == 2 and stopped.state.step == 5
    r = torchrun("-m", "lyricgen", "train", "--resume", out / "last.pt", "--device", "cpu", "--quiet")
    assert r.returncode == 0, r.stderr
    assert load_checkpoint(out / "last.pt").training.state.step == STEPS_PER_EPOCH
    assert_same_run(out, full, rngs="rank_rngs")


# -- CUDA (skipped without a GPU) -----------------------------------------------------------------------
@pytest.mark.cuda
@requires_cuda
def test_deterministic_cuda_runs_repeat_resume_and_generate(tmp_path):
    """--deterministic on a GPU, bf16 autocast included: two runs are bit for bit the same, a stopped
    run resumes, and the checkpoint generates on the GPU and on the CPU."""
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        proc = run_lyricgen("train", "--corpus", TINY_CORPUS, "--out", out, *TRANSFORMER, *TINY_DATA, "--seed", "7",
                            "--epochs", "2", "--max-steps", "5", "--device", "cuda", "--deterministic", "--quiet")
        assert proc.returncode == 0, proc.stderr
        runs.append(load_checkpoint(out / "last.pt"))
    same_tensors(runs[0].weights, runs[1].weights, "weights")
    proc = run_lyricgen("train", "--resume", tmp_path / "a" / "last.pt", "--device", "cuda", "--deterministic",
                        "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert load_checkpoint(tmp_path / "a" / "last.pt").training.state.step == 2 * STEPS_PER_EPOCH
    for device in ("cuda", "cpu"):
        gen = run_lyricgen("generate", "月光", "--checkpoint", tmp_path / "a" / "last.pt", "--device", device,
                           "--max-tokens", "10", "--plain")
        assert gen.returncode == 0 and gen.stdout.startswith("月光"), gen.stderr


def test_training_windows_shorter_than_the_attention_window_are_refused(tmp_path, capsys):
    rc, out, err = call_cli(["train", "--corpus", TINY_CORPUS, "--out", tmp_path / "r", "--cell", "transformer",
                             "--embed-dim", "8", "--num-heads", "2", "--attention-window", "16", "--seq-len", "8",
                             "--epochs", "1"], capsys)
    assert rc != 0 and err.strip().splitlines() == [
        "lyricgen: error: --seq-len (8) must be at least --attention-window (16) with --cell transformer"]
    assert not (tmp_path / "r" / "best.pt").exists()


def test_a_transformer_base_grows_its_vocabulary_on_fine_tuning(full_run, tmp_path, capsys):
    corpus = tmp_path / "new.txt"
    corpus.write_text((Path(TINY_CORPUS).read_text(encoding="utf-8") + "\n蓦然回首灯火处\n") * 2, encoding="utf-8")
    rc, out, err = call_cli(["train", "--init-from", full_run / "best.pt", "--corpus", corpus, "--out",
                             tmp_path / "ft", "--epochs", "1", "--max-steps", "2"], capsys)
    assert rc == 0, err
    base, tuned = load_checkpoint(full_run / "best.pt"), load_checkpoint(tmp_path / "ft" / "last.pt")
    assert tuned.model_config.cell == "transformer"
    grown = tuned.model_config.vocab_size - base.model_config.vocab_size
    assert grown > 0 and all(ch in tuned.vocab for ch in "蓦然回首灯火处")
    assert tuned.vocab.tokens[: base.model_config.vocab_size] == base.vocab.tokens  # old ids keep their place
