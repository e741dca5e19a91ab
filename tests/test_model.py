"""model.py: shapes, the carried hidden state, tied weights, dropout, and the cost per token; build_model
for every cell (the transformer's own tests are in test_transformer.py)."""
import pytest
import torch

from lyricgen.config import CELLS as ALL_CELLS
from lyricgen.config import ModelConfig
from lyricgen.model import RNN_CLASSES as CELLS
from lyricgen.model import LyricsRNN, LyricsTransformer, build_model, count_parameters, detach_hidden, macs_per_token

V, B, T = 23, 3, 7


def tiny(cell="lstm", **kw) -> LyricsRNN:
    torch.manual_seed(0)
    options = dict(vocab_size=V, cell=cell, embed_dim=8, hidden_size=16, num_layers=2, dropout=0.0,
                   embed_dropout=0.0, tie_weights=False)
    return LyricsRNN(ModelConfig(**{**options, **kw}))


def ids(b=B, t=T):
    return torch.randint(0, V, (b, t), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_forward_shapes(cell):
    model = tiny(cell).eval()
    logits, hidden = model(ids())
    assert logits.shape == (B, T, V)
    states = hidden if cell == "lstm" else (hidden,)
    assert isinstance(hidden, tuple) == (cell == "lstm")
    for h in states:
        assert h.shape == (2, B, 16)
    assert isinstance(model.rnn, CELLS[cell])


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_hidden_state_is_carried(cell):
    model = tiny(cell).eval()
    x = ids()
    with torch.no_grad():
        whole, _ = model(x)
        first, hidden = model(x[:, :3])
        second, _ = model(x[:, 3:], hidden)
        fresh, _ = model(x[:, 3:])
    assert torch.allclose(torch.cat([first, second], dim=1), whole, atol=1e-6)
    assert not torch.allclose(fresh, whole[:, 3:], atol=1e-4)  # the state matters


@pytest.mark.parametrize("cell", ALL_CELLS)
def test_build_model_makes_the_cells_network_and_its_state_carries(cell):
    torch.manual_seed(0)
    model = build_model(ModelConfig(vocab_size=V, cell=cell, embed_dim=8, hidden_size=16, num_heads=2,
                                    dropout=0.0, embed_dropout=0.0)).eval()
    assert isinstance(model, LyricsTransformer if cell == "transformer" else LyricsRNN)
    x = ids()
    with torch.no_grad():
        whole, _ = model(x)
        first, state = model(x[:, :3])
        second, _ = model(x[:, 3:], state)
    assert torch.allclose(torch.cat([first, second], dim=1), whole, atol=1e-5)
    assert macs_per_token(model.config) > 0


def test_detach_hidden():
    h = torch.zeros(1, 2, 3, requires_grad=True) * 2
    assert detach_hidden(None) is None
    assert not detach_hidden(h).requires_grad
    pair = detach_hidden((h, h))
    assert isinstance(pair, tuple) and not any(t.requires_grad for t in pair)


@pytest.mark.parametrize("embed_dim, hidden_size", [(16, 16), (8, 16)])
def test_tie_weights_shares_the_parameter(embed_dim, hidden_size):
    model = tiny(embed_dim=embed_dim, hidden_size=hidden_size, tie_weights=True)
    assert model.decoder.weight is model.embedding.weight
    assert (model.proj is None) == (embed_dim == hidden_size)
    untied = tiny(embed_dim=embed_dim, hidden_size=hidden_size, tie_weights=False)
    extra = 0 if model.proj is None else count_parameters(model.proj)
    assert count_parameters(model) == count_parameters(untied) - V * hidden_size + extra  # counted once
    # a training step keeps them one tensor
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    logits, _ = model(ids())
    logits.sum().backward()
    opt.step()
    assert model.decoder.weight is model.embedding.weight
    # and so does loading a state dict into a fresh model
    again = tiny(embed_dim=embed_dim, hidden_size=hidden_size, tie_weights=True)
    again.load_state_dict(model.state_dict())
    assert again.decoder.weight is again.embedding.weight
    assert torch.equal(again.embedding.weight, model.embedding.weight)


def test_dropout_is_off_in_eval_mode():
    model = tiny(dropout=0.5, embed_dropout=0.5)
    x = ids()
    model.eval()
    with torch.no_grad():
        a, _ = model(x)
        b, _ = model(x)
    assert torch.equal(a, b)
    model.train()
    torch.manual_seed(3)
    with torch.no_grad():
        c, _ = model(x)
    assert not torch.allclose(a, c)  # and on in training mode


def test_embed_dropout_drops_whole_entries():
    model = tiny(embed_dropout=0.5).train()
    every = torch.arange(V).repeat(2).unsqueeze(0)  # (1, 2V): each entry twice
    torch.manual_seed(0)
    e = model.embed(every)[0]  # (2V, E)
    assert torch.equal(e[:V], e[V:])  # both occurrences dropped or kept together
    dropped = (e[:V] == 0).all(dim=1)
    assert 0 < int(dropped.sum()) < V
    kept = ~dropped
    assert torch.allclose(e[:V][kept], model.embedding.weight[kept] * 2)  # rescaled by 1 / (1 - p)


@pytest.mark.parametrize("cell, gates", [("rnn", 1), ("gru", 3), ("lstm", 4)])
@pytest.mark.parametrize("embed_dim, tie_weights", [(16, True), (8, True), (8, False)])
def test_macs_per_token_counts_every_matrix_product(cell, gates, embed_dim, tie_weights):
    model = tiny(cell, embed_dim=embed_dim, tie_weights=tie_weights)
    H, E = 16, embed_dim
    recurrent = gates * (E + H) * H + gates * (H + H) * H  # layer 1 reads the embedding, layer 2 layer 1
    output = (H * E + E * V) if model.proj is not None else H * V
    assert macs_per_token(model.config) == recurrent + output
    # the same count from the weights themselves (biases and the embedding lookup cost no products)
    matrices = sum(p.numel() for name, p in model.named_parameters() if p.dim() == 2 and name != "embedding.weight")
    if tie_weights:
        matrices += V * E  # the decoder shares the embedding's matrix
    assert macs_per_token(model.config) == matrices
