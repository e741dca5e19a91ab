"""Sampling and structure controls of generation, originality reports, --no-copy, interactive mode.

Most tests use a model overfit (once per module) on ten short original lines of four tokens each, so
greedy decoding from a line's first word reproduces that line: its behaviour is predictable enough to
test structure and copying exactly.
"""
import io
import json
import os
import random
import subprocess
import sys
from itertools import product

import pytest
import torch

from conftest import one_error_line
from lyricgen.errors import LyricgenError
from lyricgen.originality import MAX_SPAN, Originality, fingerprint
from lyricgen.predict import Lyricist, Sampling, Structure, banned_by_ngram, choose_next, generate_ids, \
    penalize_repeats
from lyricgen.text.tokenizer import normalize_line, tokenize_line

LINES = ["晨光照亮小窗台", "火车穿过长隧道", "老街小猫在打盹", "雪花落满了屋檐", "灯塔守护着大海",
         "星空下有一首歌", "秋天稻田一片金黄", "河水慢慢流向远方", "钟声敲响了黄昏", "梦里有一片森林"]
TOKENS_PER_LINE = 4


@pytest.fixture(scope="module")
def overfit(tmp_path_factory):
    """Path of a checkpoint that has memorised LINES (trained with the library's train_step, saved once).

    It learns every line from a fresh state ([line break, w1..w4] -> [w1..w4, line break], the context
    generation primes with) and every ordered pair of lines, so after a line break any other line may
    follow: greedy output is whole training lines, and sampling picks the next line's first word.
    """
    from lyricgen.text.corpus import read_corpus
    from lyricgen.train import TokenizerConfig, TrainConfig, start_run, train_step

    out = tmp_path_factory.mktemp("overfit")
    corpus = out / "corpus.txt"
    corpus.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    lines = read_corpus(corpus)
    config = TrainConfig(epochs=1, batch_size=16, seq_len=TOKENS_PER_LINE + 1, lr=0.03, val_fraction=0.0, seed=1)
    model_options = {"embed_dim": 16, "hidden_size": 32, "num_layers": 1, "dropout": 0.0, "embed_dropout": 0.0}
    trainer = start_run(lines, model_options, TokenizerConfig(min_freq=1), config, out, torch.device("cpu"),
                        {"path": str(corpus)})
    vocab = trainer.data.vocab
    lb = vocab.line_break_id
    ids = [vocab.encode(tokenize_line(line))[0] for line in lines]
    assert all(len(t) == TOKENS_PER_LINE for t in ids) and vocab.unk_id not in sum(ids, [])
    single_x = torch.tensor([[lb] + t for t in ids])
    single_y = torch.tensor([t + [lb] for t in ids])
    pairs = [(i, j) for i in range(len(ids)) for j in range(len(ids)) if i != j]
    pair_x = torch.tensor([[lb] + ids[i] + [lb] + ids[j] for i, j in pairs])
    pair_y = torch.tensor([ids[i] + [lb] + ids[j] + [lb] for i, j in pairs])
    for _ in range(100):
        train_step(trainer.model, trainer.optimizer, single_x, single_y, config.clip)
        train_step(trainer.model, trainer.optimizer, pair_x, pair_y, config.clip)
    return trainer.save("model.pt")


@pytest.fixture(scope="module")
def writer(overfit) -> Lyricist:
    return Lyricist.load(overfit)


FIRST = [tokenize_line(line)[0] for line in LINES]


def gen_ids(writer, start, structure, sampling=None, k=1):
    """(start ids, generated ids per candidate: only the tokens generation kept)."""
    ids, _ = writer.prompt(start)
    out, lengths, _ = generate_ids(writer.model, writer.vocab, ids, structure, sampling, k)
    assert out.shape == (k, structure.max_tokens)
    return ids, [row[:n] for row, n in zip(out.tolist(), lengths.tolist())]


def lines_of(start_ids, ids, lb):
    """Token counts of the lines of start + ids, as (count, ended by a line break, position of that break)."""
    lines, count = [], len(start_ids)
    for t, token in enumerate(ids):
        if token == lb:
            lines.append((count, True, t))
            count = 0
        else:
            count += 1
    if count:
        lines.append((count, False, None))
    return lines


SAMPLINGS = [Sampling(), Sampling(temperature=1.0, seed=1), Sampling(temperature=1.5, top_k=5, seed=2),
             Sampling(temperature=1.0, top_p=0.9, seed=3), Sampling(temperature=2.0, seed=4)]


def test_the_fixture_model_reproduces_its_training_lines(writer):
    texts = [writer.generate(word, lines=1, max_tokens=20)[0].text for word in FIRST]
    assert texts == LINES


# -- pure functions -------------------------------------------------------------------------------------
def test_penalize_repeats_acts_as_defined():
    logits = torch.tensor([[2.0, -1.0, 0.0, 3.0, -0.5],
                           [2.0, -1.0, 0.0, 3.0, -0.5]])
    seen = torch.tensor([[True, True, True, False, False],
                         [False, False, False, True, True]])
    original = logits.clone()
    assert torch.equal(penalize_repeats(logits, seen, 2.0),
                       torch.tensor([[1.0, -2.0, 0.0, 3.0, -0.5],  # seen: 2/2, -1*2, 0 stays 0
                                     [2.0, -1.0, 0.0, 1.5, -1.0]]))  # unseen unchanged
    assert torch.equal(penalize_repeats(logits, seen, 1.0), original)  # penalty 1 = identity
    assert torch.equal(penalize_repeats(logits, seen, 0.5)[0], torch.tensor([4.0, -0.5, 0.0, 3.0, -0.5]))
    assert torch.equal(penalize_repeats(logits, torch.zeros_like(seen), 3.0), original)  # nothing seen
    assert torch.equal(logits, original)  # the input is not modified


@pytest.mark.parametrize("history, n, expected", [
    ([1, 2, 3, 1], 2, {2}),
    ([1, 2, 1, 3, 1], 2, {2, 3}),
    ([1, 2, 3, 4], 2, set()),  # 4 never occurred before
    ([1, 2, 3, 1, 2], 3, {3}),
    ([1, 2, 3, 1, 2, 4, 1, 2], 3, {3, 4}),
    ([5, 5, 5], 3, {5}),
    ([5, 5], 2, {5}),
    ([1, 2, 1, 3], 3, set()),  # (1, 3) was never a prefix
    ([7], 2, set()),  # history shorter than n
    ([1, 2], 3, set()),
    ([], 2, set()),
    ([1, 1, 1], 0, set()),  # off
])
def test_banned_by_ngram_hand_made(history, n, expected):
    assert banned_by_ngram(history, n) == expected


def test_banned_by_ngram_is_exactly_what_would_repeat_an_ngram():
    """Against the definition: token c is banned iff history + [c] ends with an n-gram already in history."""
    rng = random.Random(0)
    for _ in range(300):
        n = rng.randint(1, 4)
        history = [rng.randint(0, 3) for _ in range(rng.randint(0, 12))]
        grams = {tuple(history[i:i + n]) for i in range(len(history) - n + 1)}
        expected = {c for c in range(4) if len(history) >= n and tuple((history + [c])[-n:]) in grams}
        assert banned_by_ngram(history, n) == expected, (history, n)


def _draws(logits_row, sampling, n=600, seed=0) -> set[int]:
    g = torch.Generator().manual_seed(seed)
    return set(choose_next(logits_row.expand(n, -1), sampling, g).tolist())


PROBS = torch.tensor([0.06, 0.40, 0.10, 0.25, 0.04, 0.15], dtype=torch.float64)  # ranked 1, 3, 5, 2, 0, 4


def _nucleus(probs: torch.Tensor, top_p: float) -> set[int]:
    """The definition: the most likely tokens, smallest set whose probability mass reaches top_p."""
    kept, mass = set(), 0.0
    for i in sorted(range(len(probs)), key=lambda i: -float(probs[i])):
        kept.add(i)
        mass += float(probs[i])
        if mass >= top_p:
            break
    return kept


@pytest.mark.parametrize("temperature, top_p", list(product([1.0, 2.0], [0.2, 0.5, 0.7, 0.86, 0.93, 0.99])))
def test_top_p_draws_only_and_all_of_the_nucleus(temperature, top_p):
    logits = (PROBS.log() + 3.0).float().unsqueeze(0)  # a shift changes nothing
    tempered = torch.softmax(logits.double() / temperature, dim=-1)[0]
    cumulative = torch.sort(tempered, descending=True).values.cumsum(0)
    assert (cumulative - top_p).abs().min() > 1e-3  # no ties at the boundary: the expectation is unambiguous
    expected = _nucleus(tempered, top_p)
    assert _draws(logits, Sampling(temperature=temperature, top_p=top_p)) == expected


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 6, 50])
def test_top_k_draws_only_and_all_of_the_k_best(k):
    logits = PROBS.log().float().unsqueeze(0)
    best = set(torch.argsort(logits[0], descending=True)[:k].tolist())
    assert _draws(logits, Sampling(temperature=4.0, top_k=k)) == best


# -- --no-repeat-ngram ------------------------------------------------------------------------------------
def _repeated_ngram(seq, n) -> bool:
    grams = [tuple(seq[i:i + n]) for i in range(len(seq) - n + 1)]
    return len(grams) != len(set(grams))


def test_no_repeat_ngram_2_never_repeats_a_bigram(writer):
    max_tokens = 60
    start, plain = gen_ids(writer, "晨光", Structure(max_tokens=max_tokens))
    assert _repeated_ngram(start + plain[0], 2)  # without the constraint this model does repeat itself
    for sampling in SAMPLINGS:
        constrained = Sampling(**{**vars(sampling), "no_repeat_ngram": 2})
        for word in ("晨光", "火车"):
            start, rows = gen_ids(writer, word, Structure(max_tokens=max_tokens), constrained, k=3)
            for ids in rows:
                assert len(ids) == max_tokens
                # the very last token is the forced line break that ends the text: structure, not a choice
                assert not _repeated_ngram(start + ids[:-1], 2), (sampling, writer.vocab.decode(ids))


# -- greedy, temperature, seeds through the command line ----------------------------------------------------
def _gen(cli, ckpt, *args):
    rc, out, err = cli("generate", "晨光", "--checkpoint", ckpt, "--max-tokens", "30", *args)
    assert rc == 0, err
    assert out.startswith("晨光")
    return out


def test_top_k_1_and_temperature_0_are_greedy(cli, overfit):
    greedy = _gen(cli, overfit)
    assert _gen(cli, overfit, "--top-k", "1", "--temperature", "1.5", "--seed", "4") == greedy
    assert _gen(cli, overfit, "--temperature", "0", "--top-p", "0.5", "--top-k", "3", "--seed", "9") == greedy
    assert _gen(cli, overfit, "--temperature", "0", "--seed", "1") == greedy


def test_seeded_sampling_reproduces_and_seeds_differ(cli, overfit):
    runs = [_gen(cli, overfit, "--temperature", "1.0", "--seed", str(seed)) for seed in range(5)]
    assert [_gen(cli, overfit, "--temperature", "1.0", "--seed", str(seed)) for seed in range(5)] == runs
    assert len(set(runs)) >= 2


# -- structure ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n_lines", [1, 2, 3])
def test_lines_bounds_the_number_of_lines(writer, n_lines):
    lb = writer.vocab.line_break_id
    start, unbounded = gen_ids(writer, "晨光", Structure(max_tokens=60))
    assert unbounded[0].count(lb) > 3  # the limit is what stops it
    for sampling in SAMPLINGS:
        start, rows = gen_ids(writer, "晨光", Structure(max_tokens=60, lines=n_lines), sampling, k=3)
        for ids in rows:
            assert ids.count(lb) == n_lines and ids[-1] == lb  # stopped right after the n-th line
        for c in writer.generate("晨光", max_tokens=60, lines=n_lines, num_samples=3, **vars(sampling)):
            assert len(c.text.split("\n")) == n_lines and c.text.startswith("晨光")


@pytest.mark.parametrize("max_tokens", [1, 2, 5, 13, 40])
def test_max_tokens_bounds_every_candidate(writer, max_tokens):
    for sampling in SAMPLINGS:
        for c in writer.generate("火车", max_tokens=max_tokens, num_samples=3, **vars(sampling)):
            assert 1 <= c.tokens <= max_tokens
        _, rows = gen_ids(writer, "火车", Structure(max_tokens=max_tokens), sampling, k=3)
        assert all(1 <= len(ids) <= max_tokens for ids in rows)


def test_text_ends_with_a_line_break_when_the_last_line_runs_long(writer):
    """Whenever the last generated token would fall inside a line, a line break is forced."""
    lb = writer.vocab.line_break_id
    for max_tokens, sampling in product([1, 2, 3, 7, 12], SAMPLINGS):
        start, rows = gen_ids(writer, "火车", Structure(max_tokens=max_tokens, max_line_tokens=0), sampling, k=3)
        for ids in rows:
            if len(ids) < 2 or ids[-2] != lb:
                assert ids[-1] == lb, (max_tokens, writer.vocab.decode(ids))


def test_text_always_ends_with_a_complete_line(writer):
    lb = writer.vocab.line_break_id
    for max_tokens in range(1, 30):
        _, (ids,) = gen_ids(writer, "晨光", Structure(max_tokens=max_tokens))
        assert ids[-1] == lb, (max_tokens, writer.vocab.decode(ids))


@pytest.mark.parametrize("limit", [2, 3, 5])
def test_max_line_tokens_bounds_every_line(writer, limit):
    lb = writer.vocab.line_break_id
    for sampling in SAMPLINGS:
        start, rows = gen_ids(writer, "火车", Structure(max_tokens=40, max_line_tokens=limit), sampling, k=3)
        for ids in rows:
            counts = [count for count, _, _ in lines_of(start, ids, lb)]
            assert counts and max(counts) <= limit, (limit, writer.vocab.decode(ids))
            if limit < TOKENS_PER_LINE:
                assert limit in counts  # the limit is what cut these lines


def test_min_line_tokens_blocks_early_breaks(writer):
    lb = writer.vocab.line_break_id
    max_tokens = 45
    start, (plain,) = gen_ids(writer, "火车", Structure(max_tokens=max_tokens))
    assert min(count for count, ended, _ in lines_of(start, plain, lb) if ended) < 7  # lines are 4 tokens
    for sampling in SAMPLINGS:
        start, rows = gen_ids(writer, "火车", Structure(max_tokens=max_tokens, min_line_tokens=7), sampling, k=3)
        for ids in rows:
            for count, ended, at in lines_of(start, ids, lb):
                if ended and at < max_tokens - 1:  # the final break is forced by max_tokens
                    assert count >= 7, writer.vocab.decode(ids)


def test_min_equal_to_max_line_tokens_fixes_the_line_length(writer):
    lb = writer.vocab.line_break_id
    for sampling in SAMPLINGS:
        start, rows = gen_ids(writer, "雪花", Structure(max_tokens=36, min_line_tokens=6, max_line_tokens=6), sampling)
        for ids in rows:
            lines = lines_of(start, ids, lb)
            assert len(lines) >= 5
            assert all(count == 6 for count, ended, at in lines if ended and at < 35), writer.vocab.decode(ids)


def test_structure_rejects_min_above_max():
    with pytest.raises(LyricgenError):
        Structure(min_line_tokens=5, max_line_tokens=4)


# -- candidates and JSON -----------------------------------------------------------------------------------
def test_num_samples_returns_k_candidates_best_first(writer):
    for k in (1, 2, 5):
        candidates = writer.generate("晨光", max_tokens=25, num_samples=k, temperature=1.2, seed=k)
        assert len(candidates) == k
        scores = [c.score for c in candidates]
        assert scores == sorted(scores, reverse=True)
        assert all(s <= 0 and s == s for s in scores)  # mean log-probabilities
    assert len({c.text for c in writer.generate("晨光", max_tokens=25, num_samples=5, temperature=1.2, seed=5)}) > 1


def test_json_output_schema(cli, overfit):
    rc, out, err = cli("generate", "晨光", "--checkpoint", overfit, "--json", "--num-samples", "4",
                       "--temperature", "1.0", "--seed", "6", "--max-tokens", "30", "--lines", "3")
    assert rc == 0, err
    candidates = json.loads(out)
    assert isinstance(candidates, list) and len(candidates) == 4
    for c in candidates:
        assert isinstance(c, dict)
        assert isinstance(c["text"], str) and c["text"].startswith("晨光")
        assert isinstance(c["score"], float)
        assert isinstance(c["copied_lines"], (int, float)) and 0.0 <= c["copied_lines"] <= 1.0
        assert isinstance(c["longest_copy"], int) and c["longest_copy"] >= 0
    assert [c["score"] for c in candidates] == sorted((c["score"] for c in candidates), reverse=True)
    assert any(c["copied_lines"] > 0 for c in candidates)  # this model copies its training lines


# -- originality ------------------------------------------------------------------------------------------
UNRELATED = "电脑键盘坏掉"  # no two consecutive characters of it occur together in LINES


def test_originality_reports(overfit):
    assert not any(UNRELATED[i:i + 2] in line for line in LINES for i in range(len(UNRELATED) - 1))
    direct = Originality(fingerprint(LINES))
    from_checkpoint = Lyricist.load(overfit).originality  # the fingerprint stored in the checkpoint
    for o in (direct, from_checkpoint):
        line = LINES[4]
        assert o.report(line) == {"copied_lines": 1.0, "longest_copy": len(line)}
        assert o.report(f" {line}\u3000") == {"copied_lines": 1.0, "longest_copy": len(line)}  # normalised
        assert o.report(UNRELATED) == {"copied_lines": 0.0, "longest_copy": 0}
        mixed = "\n".join([LINES[0], UNRELATED, LINES[8], "冰箱牛奶过期", ""])
        assert o.report(mixed) == {"copied_lines": 0.5, "longest_copy": len(LINES[0])}
        partial = "电脑" + LINES[4][1:5] + "键盘"  # 塔守护着 copied inside an original line
        assert o.report(partial) == {"copied_lines": 0.0, "longest_copy": 4}
        assert o.report("") == {"copied_lines": 0.0, "longest_copy": 0}


def test_originality_of_a_line_longer_than_max_span():
    long_line = "".join(LINES)[: MAX_SPAN + 9]
    o = Originality(fingerprint([long_line, "别的一行"]))
    assert o.report(long_line) == {"copied_lines": 1.0, "longest_copy": MAX_SPAN}
    assert o.report(long_line[:-1])["copied_lines"] == 0.0


def test_without_no_copy_greedy_copies_training_lines(writer):
    for word, line in zip(FIRST, LINES):
        c = writer.generate(word, lines=1, max_tokens=20)[0]
        assert c.text == line and c.copied_lines == 1.0 and c.longest_copy == len(line)


def test_no_copy_never_ends_a_training_line(writer, cli, overfit):
    known = {normalize_line(line) for line in LINES}
    for word in FIRST:
        for sampling in (Sampling(), Sampling(temperature=1.0, seed=3)):
            for c in writer.generate(word, lines=3, max_tokens=40, no_copy=True, num_samples=2, **vars(sampling)):
                assert not known & {normalize_line(x) for x in c.text.split("\n")}, c.text
                assert c.copied_lines == 0.0
    rc, out, err = cli("generate", "灯塔", "--checkpoint", overfit, "--no-copy", "--json", "--lines", "2",
                       "--max-tokens", "40")
    assert rc == 0, err
    (c,) = json.loads(out)
    assert c["copied_lines"] == 0.0 and c["text"].startswith(LINES[4])  # it goes on past the training line


@pytest.mark.parametrize("limit", [{"max_tokens": 4}, {"max_tokens": 30, "max_line_tokens": 4, "lines": 1}])
def test_no_copy_holds_when_the_structure_forces_a_break(writer, limit):
    c = writer.generate("晨光", no_copy=True, **limit)[0]
    assert c.copied_lines == 0.0, c.text


# -- token exhaustion --------------------------------------------------------------------------------------
def test_no_repeat_unigram_greedy_never_writes_unk(writer):
    max_tokens = len(writer.vocab) + 10
    try:
        _, (ids,) = gen_ids(writer, "晨光", Structure(max_tokens=max_tokens), Sampling(no_repeat_ngram=1))
    except LyricgenError:
        return  # refusing in one clear line would be fine too
    assert writer.vocab.unk_id not in ids


def test_no_repeat_unigram_sampling_does_not_crash(writer):
    max_tokens = len(writer.vocab) + 10
    try:
        _, (ids,) = gen_ids(writer, "晨光", Structure(max_tokens=max_tokens),
                            Sampling(temperature=1.0, no_repeat_ngram=1, seed=0))
    except LyricgenError:
        return
    assert writer.vocab.unk_id not in ids


# -- interactive -------------------------------------------------------------------------------------------
def test_interactive_through_a_pipe(writer, overfit, private_cache):
    script = "晨光\n:set temperature 0.9\n:set seed 3\n\n   \n:set temperature warm\n火车\n"
    greedy = writer.generate("晨光", lines=2, max_tokens=20)[0].text
    sampled = writer.generate("火车", lines=2, max_tokens=20, temperature=0.9, seed=3)[0].text
    assert sampled != writer.generate("火车", lines=2, max_tokens=20)[0].text  # so the :set lines matter
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LYRICGEN_CACHE": str(private_cache)}
    proc = subprocess.run([sys.executable, "-m", "lyricgen", "generate", "--checkpoint", str(overfit), "-i",
                           "--lines", "2", "--max-tokens", "20"], input=script, capture_output=True, text=True,
                          encoding="utf-8", env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == f"{greedy}\n{sampled}\n"
    assert "temperature = 0.9" in proc.stderr and "seed = 3" in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "warm" in errors[0]


def test_interactive_rejected_value_is_not_kept(cli, overfit, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("晨光\n:set temperature -1\n火车\n"))
    rc, out, err = cli("generate", "-i", "--checkpoint", overfit, "--lines", "1", "--max-tokens", "12")
    assert rc == 0 and "Traceback" not in err
    errors = [line for line in err.splitlines() if "error" in line]
    assert len(errors) == 1 and "temperature" in errors[0]
    assert out.splitlines() == [LINES[0], LINES[1]]  # the session goes on with the previous temperature


def test_interactive_bad_value_type_is_one_error_line(cli, overfit, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(":set top_k many\n\n火车\n"))
    rc, out, err = cli("generate", "-i", "--checkpoint", overfit, "--lines", "1", "--max-tokens", "12")
    assert rc == 0
    assert out.splitlines() == [LINES[1]]
    assert "many" in one_error_line("\n".join(line for line in err.splitlines() if "error" in line))


# -- defaults: no blank lines, --sample --------------------------------------------------------------
def test_no_blank_lines_unless_asked(writer):
    sampling = Sampling(temperature=3.0, seed=0)  # hot enough to reach for line breaks anywhere
    for seed in range(5):
        texts = [c.text for c in writer.generate("晨光", max_tokens=60, temperature=3.0, seed=seed, num_samples=4)]
        assert all("\n\n" not in t for t in texts)
    _, rows = gen_ids(writer, "晨光", Structure(max_tokens=60, min_line_tokens=0), sampling, k=8)
    assert any(a == b == writer.vocab.line_break_id for ids in rows for a, b in zip(ids, ids[1:]))


def test_sample_flag_is_the_recommended_settings(cli, overfit):
    from lyricgen.predict import RECOMMENDED_SAMPLING as R

    base = ["generate", "--checkpoint", overfit, "晨光", "--lines", "4", "--seed", "5", "--json"]
    explicit = ["--temperature", str(R["temperature"]), "--top-p", str(R["top_p"]),
                "--repetition-penalty", str(R["repetition_penalty"]), "--no-repeat-ngram", str(R["no_repeat_ngram"])]
    rc_a, out_a, _ = cli(*base, "--sample")
    rc_b, out_b, _ = cli(*base, *explicit)
    assert rc_a == rc_b == 0 and out_a == out_b and json.loads(out_a)
    rc_c, out_c, _ = cli(*base)  # greedy
    assert out_c != out_a


def test_loop_detectors():
    from lyricgen.originality import repeats_a_line, repeats_a_phrase

    assert repeats_a_line("风吹过\n我想了空\n我想了空\n我想了空\n")
    assert not repeats_a_line("我想了空\n我想了空\n风吹过\n我想了空")
    assert repeats_a_phrase("月光的 我的 我的 我的 我")
    assert repeats_a_phrase("我想了空\n我想了空\n我想了空\n")
    assert not repeats_a_phrase("月光照亮小窗台\n风吹过 我的窗\n我的心")
