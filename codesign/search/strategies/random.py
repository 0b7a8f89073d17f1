"""Uniform random search: the baseline every other strategy must beat."""

from __future__ import annotations

from typing import Any

import numpy as np

from codesign.search.space import SearchSpace
from codesign.search.strategies._base import BaseStrategy


class RandomStrategy(BaseStrategy):
    """Uniform random tokens: the baseline every other strategy must beat."""

    name = "random"

    def __init__(self, space: SearchSpace, seed: int = 0):
        self.space = space
        self.rng = np.random.default_rng(seed)

    def ask(self) -> list[int]:
        return self.space.sample(self.rng)

    def resample_hardware(self, tokens: list[int], n: int) -> list[list[int]]:
        return [self.space.resample_hardware(tokens, self.rng) for _ in range(n)]

    def can_ask(self, pending: int, batch: int) -> int:
        """Every free slot: a proposal never depends on a result."""
        return max(0, batch - pending)

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]



__all__ = ["RandomStrategy"]
