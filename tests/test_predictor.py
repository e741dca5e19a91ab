"""writing/predictor.py: stepping the generating distribution token by token for a batch of rows."""
import torch
import torch.nn.functional as F

from lyricgen.writing.predictor import Predictor


def test_stepping_equals_reading_the_whole_sequence(tiny_model):
    model, vocab = tiny_model
    ids = [vocab.line_break_id] + list(range(3, 12))
    with torch.no_grad():
        full = F.log_softmax(model(torch.tensor([ids]))[0][0].float(), dim=-1)  # (T, V)
    predictor = Predictor(model)
    logp, state = predictor.start(ids[:4], n=3)
    assert logp.shape == (3, len(vocab)) and state.rows == 3
    assert torch.allclose(logp, full[3].expand(3, -1), atol=1e-5)
    for t in range(4, len(ids)):
        logp, state = predictor.step(state, torch.tensor([ids[t]] * 3))
        assert torch.allclose(logp, full[t].expand(3, -1), atol=1e-5), t
    assert torch.allclose(logp.exp().sum(-1), torch.ones(3), atol=1e-4)  # a distribution per row


def test_feed_and_select(tiny_model):
    model, vocab = tiny_model
    predictor = Predictor(model)
    prefix, line = [vocab.line_break_id, 5, 6], [7, 8, 9, vocab.line_break_id]
    _, state = predictor.start(prefix, n=2)
    fed, fed_state = predictor.feed(state, line)
    stepped, stepped_state = predictor.start(prefix, n=2)
    for token in line:
        stepped, stepped_state = predictor.step(stepped_state, torch.tensor([token, token]))
    assert torch.allclose(fed, stepped, atol=1e-5)
    # rows diverge, then select picks and copies rows (beam search, choosing a line)
    logp, state = predictor.step(fed_state, torch.tensor([10, 11]))
    chosen = predictor.select(state, torch.tensor([1, 1, 0]))
    again, _ = predictor.step(chosen, torch.tensor([12, 12, 12]))
    _, one = predictor.step(fed_state, torch.tensor([11, 10]))
    expected, _ = predictor.step(one, torch.tensor([12, 12]))
    assert torch.allclose(again[0], again[1]) and torch.allclose(again[0], expected[0], atol=1e-5)
    assert torch.allclose(again[2], expected[1], atol=1e-5)


def test_score_reads_rows_in_one_pass_as_stepping_would(tiny_run):
    """score(): every row's log-probability after a prefix in one pass, with the n-gram mixed in as
    in step() (the rows differ in length: padding counts nothing)."""
    from lyricgen.writing.lyricist import Lyricist

    lyricist = Lyricist.load(tiny_run / "best.pt")
    predictor = lyricist.predictor
    assert predictor.mixture is not None and predictor.context > 0
    prefix, rows = [lyricist.vocab.line_break_id], [[5, 6, 7, 8, 9], [10], [11, 12, 13]]
    stepped = []
    for row in rows:
        logp, state = predictor.start(prefix)
        total = 0.0
        for token in row:
            total += float(logp[0, token])
            logp, state = predictor.step(state, torch.tensor([token]))
        stepped.append(total)
    assert torch.allclose(predictor.score(prefix, rows), torch.tensor(stepped), atol=1e-4)
