"""The RL controller: an autoregressive GRU policy over a sequence of categorical decisions, one
softmax head per decision, the previous choice embedded and fed back (Zoph & Le / MNASNet style),
trained with REINFORCE, an exponential-moving-average baseline and an entropy bonus."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch single-threaded: the policy's tensors are tiny, and intra-op threads only add
    synchronisation (seconds per step on a busy machine instead of milliseconds)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class Policy(nn.Module):
    """GRU over decisions: step i reads the embedding of choice i-1 and emits logits for decision i.
    `groups[i]` names the head (and embedding) of decision i: decisions of one group (the same kind of
    choice at several layers, e.g. every layer's PE level) share them, so what is learnt about one
    layer's choice moves the others too; by default every decision has its own."""

    def __init__(self, sizes: Sequence[int], hidden: int = 64, embed: int = 32, groups: Sequence[int] | None = None):
        super().__init__()
        self.sizes = list(sizes)
        self.groups = list(range(len(self.sizes))) if groups is None else [int(g) for g in groups]
        n_of = {}
        for g, n in zip(self.groups, self.sizes):
            if n_of.setdefault(g, n) != n:
                raise ValueError(f"decisions of group {g} have different numbers of choices ({n_of[g]} and {n})")
        self.start = nn.Parameter(torch.zeros(embed))
        self.embeds = nn.ModuleList(nn.Embedding(n_of[g], embed) for g in sorted(n_of))
        self.cell = nn.GRUCell(embed, hidden)
        self.heads = nn.ModuleList(nn.Linear(hidden, n_of[g]) for g in sorted(n_of))
        self._slot = {g: k for k, g in enumerate(sorted(n_of))}
        self.hidden = hidden
        with torch.no_grad():  # start near uniform: small output weights, zero biases
            for head in self.heads:
                head.weight.mul_(0.1)
                head.bias.zero_()

    def forward(self, batch: int, tokens: torch.Tensor | None = None, forced: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run the sequence for `batch` samples. With `tokens` (batch, n) the choices are given
        (teacher forcing); otherwise they are sampled, except where `forced` (batch, n; -1 = free)
        fixes them. Returns tokens, log-probabilities and entropies, each (batch, n)."""
        x = self.start.expand(batch, -1)
        h = torch.zeros(batch, self.hidden)
        out_tokens, logps, ents = [], [], []
        for i in range(len(self.sizes)):
            h = self.cell(x, h)
            logits = self.heads[self._slot[self.groups[i]]](h)
            logp_all = torch.log_softmax(logits, dim=-1)
            if tokens is not None:
                tok = tokens[:, i]
            else:
                tok = torch.multinomial(logp_all.exp(), 1, generator=generator).squeeze(1)
                if forced is not None:
                    tok = torch.where(forced[:, i] >= 0, forced[:, i], tok)
            out_tokens.append(tok)
            logps.append(logp_all.gather(1, tok[:, None]).squeeze(1))
            ents.append(-(logp_all.exp() * logp_all).sum(dim=-1))
            x = self.embeds[self._slot[self.groups[i]]](tok)
        return torch.stack(out_tokens, 1), torch.stack(logps, 1), torch.stack(ents, 1)


class Controller:
    """REINFORCE on a Policy: sample decision sequences, then push up the log-probability of the
    active decisions by (reward - baseline), with an entropy bonus against early collapse. Rewards
    are collected and applied `batch` sequences at a time (less variance than one-sample steps)."""

    def __init__(self, sizes: Sequence[int], seed: int = 0, lr: float = 0.01, entropy: float = 0.01,
                 baseline_decay: float = 0.9, batch: int = 4, hidden: int = 64, embed: int = 32,
                 grad_clip: float = 5.0, groups: Sequence[int] | None = None):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.policy = Policy(sizes, hidden, embed, groups)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=lr)
        self.generator = torch.Generator().manual_seed(seed + 1)
        self.entropy = entropy
        self.decay = baseline_decay
        self.batch = batch
        self.grad_clip = grad_clip
        self.baseline: float | None = None
        self.updates = 0
        self.pending: list[tuple[list[int], float, list[bool]]] = []

    @property
    def sizes(self) -> list[int]:
        return self.policy.sizes

    def sample(self, n: int = 1, forced: Sequence[Sequence[int | None]] | None = None) -> list[list[int]]:
        """n sequences; forced[k][i] (if given and not None) fixes decision i of sample k."""
        f = None
        if forced is not None:
            f = torch.tensor([[-1 if v is None else int(v) for v in row] for row in forced], dtype=torch.long)
        with torch.no_grad(), one_thread():
            tokens, _, _ = self.policy(n, forced=f, generator=self.generator)
        return tokens.tolist()

    def probabilities(self, tokens: Sequence[int]) -> list[float]:
        """Probability of each choice in one sequence under the current policy."""
        with torch.no_grad(), one_thread():
            _, logp, _ = self.policy(1, tokens=torch.tensor([list(tokens)], dtype=torch.long))
        return logp.exp()[0].tolist()

    def tell(self, tokens: Sequence[int], reward: float, mask: Sequence[bool] | None = None) -> None:
        """Record the reward of one sequence; `mask` marks the decisions that shaped it. Every
        `batch` records make one policy-gradient step."""
        self.pending.append((list(tokens), float(reward), [True] * len(tokens) if mask is None else list(mask)))
        if len(self.pending) >= self.batch:
            with one_thread():
                self._step()

    def _step(self) -> None:
        advantages = []
        for _, reward, _ in self.pending:
            if self.baseline is None:
                self.baseline = reward
            advantages.append(reward - self.baseline)
            self.baseline = self.decay * self.baseline + (1 - self.decay) * reward
        tokens = torch.tensor([p[0] for p in self.pending], dtype=torch.long)
        mask = torch.tensor([p[2] for p in self.pending], dtype=torch.float32)
        adv = torch.tensor(advantages, dtype=torch.float32)
        _, logp, ent = self.policy(len(self.pending), tokens=tokens)
        loss = -((adv[:, None] * logp * mask).sum(1) + self.entropy * (ent * mask).sum(1)).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.policy.parameters(), self.grad_clip)
        self.optimizer.step()
        self.updates += 1
        self.pending = []

    def state_dict(self) -> dict[str, Any]:
        """A snapshot (deep copy: later steps do not change it)."""
        return copy.deepcopy({"policy": self.policy.state_dict(), "optimizer": self.optimizer.state_dict(),
                              "generator": self.generator.get_state(), "baseline": self.baseline,
                              "updates": self.updates, "pending": [list(p) for p in self.pending]})

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.baseline = state["baseline"]
        self.updates = state["updates"]
        self.pending = [(list(t), float(r), list(m)) for t, r, m in state["pending"]]


__all__ = ["Controller", "Policy"]
