"""Steady-state multi-objective evolution (NSGA-II survival, Deb et al. 2002) over the run's objectives
(codesign.search.objectives; default accuracy and FPS)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from codesign.search.objectives import DEFAULT_OBJECTIVES, Objective, objective_vector
from codesign.search.pareto import crowding_distance, non_dominated_sort
from codesign.search.space import SearchSpace
from codesign.search.strategies._base import BaseStrategy


def nsga2_select(vectors: list[list[float] | None], k: int) -> tuple[list[int], dict[int, tuple[int, float]]]:
    """NSGA-II survival (Deb et al. 2002): fill k slots front by front, the last front by crowding
    distance; infeasible members (None) rank after every feasible one. Returns the survivors and
    their (rank, crowding) for tournament selection."""
    feasible = [i for i, v in enumerate(vectors) if v is not None]
    infeasible = [i for i, v in enumerate(vectors) if v is None]
    chosen: list[int] = []
    info: dict[int, tuple[int, float]] = {}
    fronts = non_dominated_sort(np.array([vectors[i] for i in feasible])) if feasible else []
    for rank, front in enumerate(fronts):
        members = [feasible[j] for j in front]
        crowd = crowding_distance(np.array([vectors[i] for i in members]))
        order = sorted(range(len(members)), key=lambda j: -crowd[j])
        for j in order:
            info[members[j]] = (rank, float(crowd[j]))
        if len(chosen) + len(members) <= k:
            chosen += members
        else:
            chosen += [members[j] for j in order[:k - len(chosen)]]
        if len(chosen) >= k:
            return chosen, info
    for i in infeasible[-(k - len(chosen)):] if k > len(chosen) else []:
        info[i] = (len(fronts), 0.0)
        chosen.append(i)
    return chosen, info


class EvolutionStrategy(BaseStrategy):
    """Steady-state multi-objective evolution over the run's objectives (default accuracy and FPS):
    NSGA-II survival, binary tournaments on (rank, crowding), uniform crossover and per-decision
    mutation, no repeats."""

    name = "evolution"
    multi_objective = True  # selects on the objectives themselves (codesign.search.objectives.use_objectives)

    def __init__(self, space: SearchSpace, seed: int = 0, population: int = 16, max_retries: int = 30,
                 objectives: tuple[Objective, ...] = DEFAULT_OBJECTIVES):
        self.space = space
        self.objectives = tuple(objectives)
        self.rng = np.random.default_rng(seed)
        self.population = population
        self.max_retries = max_retries
        self.archive: list[tuple[list[int], list[float] | None]] = []
        self.seen: set[tuple[int, ...]] = set()
        self.asked = 0

    def short_run_warning(self, trials: int) -> str | None:
        """What a run of `trials` candidates does when it is too short to breed anything, else None."""
        if trials > self.population:
            return None
        return (f"--strategy evolution with --trials {trials} and a population of {self.population}: evolution breeds "
                f"(NSGA-II selection, crossover, mutation) only after {self.population} candidates have been evaluated, "
                "so every candidate of this run is a uniform random sample of the space (without repeats), as with "
                f"--strategy random; give --trials well above {self.population} (e.g. {4 * self.population}) for "
                "evolution to act")

    def _fresh(self, make: Callable[[], list[int]]) -> list[int]:
        tokens = make()
        for _ in range(self.max_retries):
            if tuple(self.space.canonical(tokens)) not in self.seen:
                break
            tokens = make()
        self.seen.add(tuple(self.space.canonical(tokens)))
        return tokens

    def ask(self) -> list[int]:
        self.asked += 1
        if len(self.archive) < self.population:
            return self._fresh(lambda: self.space.sample(self.rng))
        survivors, info = nsga2_select([v for _, v in self.archive], self.population)

        def pick() -> list[int]:
            a, b = self.rng.choice(survivors, size=2, replace=len(survivors) < 2)
            ka, kb = info[int(a)], info[int(b)]
            best = a if (ka[0], -ka[1]) <= (kb[0], -kb[1]) else b
            return self.archive[int(best)][0]

        def child() -> list[int]:
            p1, p2 = pick(), pick()
            take = self.rng.random(len(p1)) < 0.5
            c = [x if t else y for x, y, t in zip(p1, p2, take)]
            return self._mutate(c)

        return self._fresh(child)

    def _mutate(self, tokens: list[int]) -> list[int]:
        sizes = self.space.sizes()
        active = [i for i, a in enumerate(self.space.active(tokens)) if a]
        if not active:
            return tokens
        out = list(tokens)
        rate = 1.0 / len(active)
        hits = [i for i in active if self.rng.random() < rate] or [int(self.rng.choice(active))]
        for i in hits:
            others = [t for t in range(sizes[i]) if t != out[i]]
            out[i] = int(self.rng.choice(others))
        return out

    def resample_hardware(self, tokens: list[int], n: int) -> list[list[int]]:
        return [self.space.resample_hardware(tokens, self.rng) for _ in range(n)]

    def tell(self, tokens: list[int], reward: float, objectives: dict[str, float] | None = None) -> None:
        self.archive.append((list(tokens), objective_vector(objectives, self.objectives)))
        self.seen.add(tuple(self.space.canonical(tokens)))

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state, "archive": [[t, v] for t, v in self.archive],
                "seen": [list(s) for s in sorted(self.seen)], "asked": self.asked}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.archive = [(list(t), v) for t, v in state["archive"]]
        self.seen = {tuple(s) for s in state["seen"]}
        self.asked = state["asked"]



__all__ = ["EvolutionStrategy", "nsga2_select", "objective_vector"]
