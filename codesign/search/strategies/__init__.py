"""Search strategies behind one narrow ask/tell interface (`Strategy`), one module per algorithm,
made by name with `make_strategy`.

A strategy proposes token sequences (`ask`), redraws only the hardware decisions of a proposal
when the cost model rejects it (`resample_hardware`), learns from results (`tell`) and saves and
restores all its state, random generators included (`state_dict` / `load_state_dict`), and says how
many proposals it can make before it needs results (`can_ask`).
"""

from __future__ import annotations

from typing import Any

from codesign.search.space import SearchSpace
from codesign.search.strategies._base import BaseStrategy, Strategy
from codesign.search.strategies.evolution import EvolutionStrategy, nsga2_select, objective_vector
from codesign.search.strategies.random import RandomStrategy
from codesign.search.strategies.rl import RL_MODES, RLStrategy
from hw_space.errors import CodesignError

STRATEGIES = ("rl", "random", "evolution")


def make_strategy(name: str, space: SearchSpace, seed: int = 0, rl_mode: str = "combined",
                  **options: Any) -> Strategy:
    """A strategy by name: rl, random or evolution."""
    if name == "rl":
        return RLStrategy(space, seed=seed, mode=rl_mode, **options)
    if name == "random":
        return RandomStrategy(space, seed=seed)
    if name == "evolution":
        return EvolutionStrategy(space, seed=seed, **options)
    raise CodesignError(f"strategy {name!r} is not allowed; allowed: {', '.join(STRATEGIES)}")


__all__ = ["BaseStrategy", "EvolutionStrategy", "RLStrategy", "RandomStrategy", "RL_MODES", "STRATEGIES", "Strategy", "make_strategy",
           "nsga2_select", "objective_vector"]
