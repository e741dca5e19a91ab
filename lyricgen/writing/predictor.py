"""The distribution generation samples from, stepped one token at a time for a batch of candidates.

    predictor = Predictor(model, mixture)                  # mixture: side_models' n-gram and weight
    logp, state = predictor.start(prompt_ids, n=8)        # (8, V) log-probabilities, state of 8 rows
    logp, state = predictor.step(state, next_ids)          # next_ids (8,): one token per row
    state = predictor.select(state, torch.tensor([3, 3]))  # rows 3 and 3: keep, reorder or copy rows
    logp = predictor.score(prefix_ids, [ids, ids2])         # (2,) log p of each row after the prefix

The state carries the network's hidden state (never re-reading the prefix) and the last few tokens
of every row, which a component that looks at the recent context (an n-gram) needs. Generation, line
search and any front end go through this one object, so what they sample from is what is scored.
"""
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class State:
    hidden: object  # the network's: a tensor (layers, B, H), or an LSTM's pair of them
    recent: torch.Tensor  # (B, context) the last tokens of each row, oldest first (-1 = none yet)

    @property
    def rows(self) -> int:
        return self.recent.shape[0]


def _index_hidden(hidden, index: torch.Tensor):
    if isinstance(hidden, tuple):
        return tuple(h.index_select(1, index).contiguous() for h in hidden)
    return hidden.index_select(1, index).contiguous()


class Predictor:
    def __init__(self, model, mixture=None):
        self.model = model.eval()
        self.device = next(model.parameters()).device
        self.mixture = mixture  # fitted/mixture.py: the n-gram mixed in, or None (the network alone)
        # tokens of recent context the n-gram reads beyond the network (0: the network alone)
        self.context = mixture.context if mixture is not None else 0

    def log_probs(self, logits: torch.Tensor, recent: torch.Tensor) -> torch.Tensor:
        """Next-token log-probabilities (B, V) from the network's logits (B, V) and the recent tokens."""
        logp = F.log_softmax(logits.float(), dim=-1)
        if self.mixture is None:
            return logp
        return self.mixture.next_logp(logp, recent)

    @torch.no_grad()
    def start(self, ids: list[int], n: int = 1) -> tuple[torch.Tensor, State]:
        """Read `ids` (the whole prefix, its leading line break included); n identical rows."""
        logits, hidden = self.model(torch.tensor([list(ids)], device=self.device))  # (1, T, V)
        recent = torch.full((1, self.context), -1, dtype=torch.long, device=self.device)
        state = State(hidden, self._push(recent, torch.tensor(ids[-self.context:] if self.context else [],
                                                              dtype=torch.long, device=self.device)))
        logp = self.log_probs(logits[:, -1], state.recent)
        index = torch.zeros(n, dtype=torch.long, device=self.device)
        return logp.index_select(0, index), self.select(state, index)

    @torch.no_grad()
    def step(self, state: State, tokens: torch.Tensor) -> tuple[torch.Tensor, State]:
        """Feed one token per row; (B, V) log-probabilities of the next one, and the new state."""
        logits, hidden = self.model(tokens.to(self.device).unsqueeze(1), state.hidden)
        state = State(hidden, self._push(state.recent, tokens.to(self.device).unsqueeze(1)))
        return self.log_probs(logits[:, -1], state.recent), state

    @torch.no_grad()
    def feed(self, state: State, ids: list[int]) -> tuple[torch.Tensor, State]:
        """Feed the same tokens to every row (a chosen line, a repeated chorus) in one pass."""
        if not ids:
            raise ValueError("nothing to feed")
        x = torch.tensor([list(ids)], device=self.device).expand(state.rows, -1)
        logits, hidden = self.model(x, state.hidden)
        state = State(hidden, self._push(state.recent, x))
        return self.log_probs(logits[:, -1], state.recent), state

    @torch.no_grad()
    def score(self, prefix: list[int], rows: list[list[int]]) -> torch.Tensor:
        """(R,) the log-probability of each row's tokens after `prefix` (its leading line break
        included), all rows read in one pass: what step() would give token by token."""
        T, P = max(map(len, rows)), len(prefix)
        x = torch.tensor([list(prefix) + r + [0] * (T - len(r)) for r in rows], device=self.device)  # (R, P+T)
        logits, _ = self.model(x[:, :-1])
        logp = F.log_softmax(logits[:, P - 1:].float(), dim=-1)  # (R, T, V): the row's tokens, predicted
        R, V = logp.shape[0], logp.shape[-1]
        if self.mixture is not None:
            C = self.context
            full = torch.cat([torch.full((R, C), -1, dtype=torch.long, device=self.device), x], dim=1)
            recent = full.unfold(1, C, 1)[:, P:P + T]  # (R, T, C): the C tokens before each row token
            logp = self.mixture.next_logp(logp.reshape(-1, V), recent.reshape(-1, C)).view(R, T, V)
        got = logp.gather(2, x[:, P:].unsqueeze(2)).squeeze(2)  # (R, T)
        live = torch.arange(T, device=self.device).unsqueeze(0) < torch.tensor([len(r) for r in rows],
                                                                                device=self.device).unsqueeze(1)
        return (got * live).sum(dim=1)

    def select(self, state: State, index: torch.Tensor) -> State:
        """The rows `index` of a state (in that order, repeats allowed)."""
        index = index.to(self.device)
        return State(_index_hidden(state.hidden, index), state.recent.index_select(0, index))

    def _push(self, recent: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """recent (B, C) followed by tokens (B, k) or (k,), keeping the last C."""
        if not self.context:
            return recent
        if tokens.dim() == 1:
            tokens = tokens.unsqueeze(0).expand(recent.shape[0], -1)
        return torch.cat([recent, tokens], dim=1)[:, -self.context:]
