"""Search strategies behind one narrow ask/tell interface, and the Study loop that drives one.

A strategy proposes token sequences (`ask`), redraws only the hardware decisions of a proposal
when the cost model rejects it (`resample_hardware`), learns from results (`tell`) and saves and
restores all its state, random generators included (`state_dict` / `load_state_dict`). The Study
asks, has the Evaluator cost / train / score the proposals, tells, journals and checkpoints.
"""

from __future__ import annotations

import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from codesign.journal import Journal, TrialRecord, save_state
from codesign.pareto import crowding_distance, non_dominated_sort, pareto_mask
from codesign.space import SearchSpace
from hw_space.errors import CodesignError

STRATEGIES = ("rl", "random", "evolution")
RL_MODES = ("combined", "phase", "separate")


class Strategy(Protocol):
    """What the Study needs from a search strategy."""

    name: str

    def ask(self) -> list[int]: ...

    def resample_hardware(self, tokens: list[int], n: int) -> list[list[int]]: ...

    def tell(self, tokens: list[int], reward: float, objectives: dict[str, float] | None = None) -> None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


# ---------------------------------------------------------------- random search

class RandomStrategy:
    """Uniform random tokens: the baseline every other strategy must beat."""

    name = "random"

    def __init__(self, space: SearchSpace, seed: int = 0):
        self.space = space
        self.rng = np.random.default_rng(seed)

    def ask(self) -> list[int]:
        return self.space.sample(self.rng)

    def resample_hardware(self, tokens: list[int], n: int) -> list[list[int]]:
        return [self.space.resample_hardware(tokens, self.rng) for _ in range(n)]

    def tell(self, tokens: list[int], reward: float, objectives: dict[str, float] | None = None) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]


# ---------------------------------------------------------------- evolution (NSGA-II style)

def objective_vector(objectives: dict[str, float] | None) -> list[float] | None:
    """(accuracy, log10 FPS), both maximized; None for a candidate that was never trained."""
    if not objectives or objectives.get("accuracy") is None:
        return None
    return [float(objectives["accuracy"]), math.log10(max(float(objectives.get("fps", 1.0)), 1e-9))]


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


class EvolutionStrategy:
    """Steady-state multi-objective evolution over (accuracy, FPS): NSGA-II survival, binary
    tournaments on (rank, crowding), uniform crossover and per-decision mutation, no repeats."""

    name = "evolution"

    def __init__(self, space: SearchSpace, seed: int = 0, population: int = 16, max_retries: int = 30):
        self.space = space
        self.rng = np.random.default_rng(seed)
        self.population = population
        self.max_retries = max_retries
        self.archive: list[tuple[list[int], list[float] | None]] = []
        self.seen: set[tuple[int, ...]] = set()
        self.asked = 0

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
        self.archive.append((list(tokens), objective_vector(objectives)))
        self.seen.add(tuple(self.space.canonical(tokens)))

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state, "archive": [[t, v] for t, v in self.archive],
                "seen": [list(s) for s in sorted(self.seen)], "asked": self.asked}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.archive = [(list(t), v) for t, v in state["archive"]]
        self.seen = {tuple(s) for s in state["seen"]}
        self.asked = state["asked"]


# ---------------------------------------------------------------- reinforcement learning

class RLStrategy:
    """REINFORCE controller(s) over the space (Codesign-NAS modes): `combined` - one policy samples
    network and hardware decisions together (hardware conditioned on the network); `separate` -
    a network policy and a hardware policy sample their halves, both learn from the one reward;
    `phase` - the two policies take turns: a network phase samples the network with the hardware
    held at the best candidate's, a hardware phase the other way round."""

    name = "rl"

    def __init__(self, space: SearchSpace, seed: int = 0, mode: str = "combined", phase_length: int = 8,
                 **controller_options: Any):
        from codesign.controller import Controller

        if mode not in RL_MODES:
            raise CodesignError(f"rl mode {mode!r} is not allowed; allowed: {', '.join(RL_MODES)}")
        self.space = space
        self.mode = mode
        self.phase_length = phase_length
        sizes = space.sizes()
        if mode == "combined":
            self.parts = {"all": list(range(len(sizes)))}
        else:
            self.parts = {"nn": space.nn_positions, "hw": space.hw_positions}
        self.controllers = {name: Controller([sizes[i] for i in pos], seed=seed + 1000 * k, **controller_options)
                            for k, (name, pos) in enumerate(self.parts.items())}
        self.best: tuple[float, list[int]] | None = None
        self.asked = 0
        self.phases: list[str] = []  # phase of each ask not yet told, in order

    def _merge(self, base: list[int], part: str, values: list[int]) -> list[int]:
        out = list(base)
        for i, v in zip(self.parts[part], values):
            out[i] = int(v)
        return out

    def phase(self) -> str:
        """'both' until a best candidate exists, then alternating 'nn' and 'hw' phases (phase mode)."""
        if self.mode != "phase":
            return "both"
        if self.best is None:
            return "both"
        return ("nn", "hw")[(self.asked // self.phase_length) % 2]

    def ask(self) -> list[int]:
        phase = self.phase()
        if self.mode == "combined":
            tokens = self.controllers["all"].sample(1)[0]
        else:
            base = self.best[1] if self.best is not None else [0] * len(self.space.sizes())
            tokens = list(base)
            for part in ("nn", "hw"):
                if phase in ("both", part):
                    tokens = self._merge(tokens, part, self.controllers[part].sample(1)[0])
        self.phases.append(phase)
        self.asked += 1
        return tokens

    def resample_hardware(self, tokens: list[int], n: int) -> list[list[int]]:
        if self.mode == "combined":
            hw = set(self.space.hw_positions)
            forced = [[None if i in hw else t for i, t in enumerate(tokens)]] * n
            return self.controllers["all"].sample(n, forced=forced)
        return [self._merge(tokens, "hw", values) for values in self.controllers["hw"].sample(n)]

    def tell(self, tokens: list[int], reward: float, objectives: dict[str, float] | None = None) -> None:
        phase = self.phases.pop(0) if self.phases else "both"
        mask = self.space.active(tokens)
        for part, pos in self.parts.items():
            if part == "all" or phase in ("both", part):
                self.controllers[part].tell([tokens[i] for i in pos], reward, [mask[i] for i in pos])
        if self.best is None or reward > self.best[0]:
            self.best = (float(reward), list(tokens))

    def state_dict(self) -> dict[str, Any]:
        return {"controllers": {k: c.state_dict() for k, c in self.controllers.items()}, "best": self.best,
                "asked": self.asked, "phases": list(self.phases), "mode": self.mode}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("mode") != self.mode:
            raise CodesignError(f"the saved controller ran in rl mode {state.get('mode')!r}, not {self.mode!r}; "
                                "resume with the same --rl-mode")
        for k, c in self.controllers.items():
            c.load_state_dict(state["controllers"][k])
        self.best = state["best"]
        self.asked = state["asked"]
        self.phases = list(state["phases"])


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


# ---------------------------------------------------------------- the study loop

@dataclass(frozen=True)
class StopRule:
    """When the study ends: after max_trials candidates, max_trained trainings or time_budget_s of
    search time (across resumed sessions), whichever comes first."""

    max_trials: int | None = None
    max_trained: int | None = None
    time_budget_s: float | None = None

    def done(self, trials: int, trained: int, elapsed: float) -> bool:
        return ((self.max_trials is not None and trials >= self.max_trials)
                or (self.max_trained is not None and trained >= self.max_trained)
                or (self.time_budget_s is not None and elapsed >= self.time_budget_s))


class Evaluates(Protocol):
    """The Study's view of the Evaluator (codesign.evaluate)."""

    def evaluate(self, asks: list[list[int]], strategy: Strategy, first_number: int) -> list[TrialRecord]: ...

    def restore(self, records: list[TrialRecord]) -> None: ...


def objectives_of(record: TrialRecord) -> dict[str, float] | None:
    """What strategies learn from a journaled candidate besides its reward."""
    est = record.estimate or {}
    res = est.get("resources", {})
    return {"accuracy": record.accuracy, "fps": float(est.get("fps", 0.0)),
            "latency_us": float(est.get("latency_us", 0.0)), **{k: float(v) for k, v in res.items()},
            "feasible": float(record.status != "pruned")}


class Study:
    """Ask `batch` proposals, evaluate them, tell the strategy, journal every record and checkpoint
    the strategy atomically, until the stop rule says so."""

    def __init__(self, strategy: Strategy, evaluator: Evaluates, journal: Journal, state_path: Any,
                 stop: StopRule, batch: int = 1, progress: Callable[[Study], None] | None = None,
                 extra_state: dict[str, Any] | None = None):
        self.strategy = strategy
        self.evaluator = evaluator
        self.journal = journal
        self.state_path = state_path
        self.stop = stop
        self.batch = max(1, batch)
        self.progress = progress
        self.extra_state = dict(extra_state or {})
        self.records: list[TrialRecord] = []
        self.elapsed_before = 0.0
        self._started = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self._started

    def counts(self) -> dict[str, int]:
        out = {"trained": 0, "cached": 0, "pruned": 0}
        for r in self.records:
            out[r.status] += 1
        return out

    def restore(self, records: list[TrialRecord], state: dict[str, Any] | None) -> None:
        """Continue from a journal and the last checkpoint: records journaled after the checkpoint
        are told to the restored strategy, and every trained network goes into the cache."""
        self.records = list(records)
        self.evaluator.restore(self.records)
        told = 0
        if state is not None:
            self.strategy.load_state_dict(state["strategy"])
            told = int(state["trials"])
            self.elapsed_before = float(state.get("elapsed_s", 0.0))
            if "global_rng" in state:
                _set_global_rng(state["global_rng"])
        for r in self.records[told:]:
            self.strategy.tell(r.tokens, r.reward, objectives_of(r))
        self._started = time.perf_counter()

    def checkpoint(self) -> None:
        save_state(self.state_path, {"strategy": self.strategy.state_dict(), "trials": len(self.records),
                                     "elapsed_s": self.elapsed, "global_rng": _global_rng(), **self.extra_state})

    def run(self) -> list[TrialRecord]:
        """Run until the stop rule; a KeyboardInterrupt propagates after the journal and the
        checkpoint are consistent (every told record is journaled)."""
        while True:
            c = self.counts()
            if self.stop.done(len(self.records), c["trained"], self.elapsed):
                break
            k = self.batch
            if self.stop.max_trials is not None:
                k = min(k, self.stop.max_trials - len(self.records))
            asks = [self.strategy.ask() for _ in range(k)]
            records = self.evaluator.evaluate(asks, self.strategy, len(self.records))
            with deferred_interrupt():  # journal, tell and checkpoint stay consistent under Ctrl-C
                for record in records:
                    self.journal.append(record)
                    self.records.append(record)
                    self.strategy.tell(record.tokens, record.reward, objectives_of(record))
                self.checkpoint()
            if self.progress is not None:
                self.progress(self)
        return self.records

    def front_size(self) -> int:
        pts = [[r.accuracy, r.fps] + [-float((r.estimate or {}).get("resources", {}).get(k, 0))
                                      for k in ("LUT", "BRAM18", "DSP")]
               for r in self.records if r.status != "pruned" and r.accuracy is not None]
        return int(pareto_mask(np.array(pts)).sum()) if pts else 0

    def best_reward(self) -> float:
        return max((r.reward for r in self.records), default=float("nan"))


@contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Hold a Ctrl-C (SIGINT) that arrives inside the block until the block has finished."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[Any] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)
    if caught:
        raise KeyboardInterrupt


def _global_rng() -> dict[str, Any]:
    """Python's, NumPy's and torch's global generator states (the strategies keep their own
    generators; these are saved too so a resumed run continues from exactly where it stopped)."""
    import random

    import torch

    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def _set_global_rng(state: dict[str, Any]) -> None:
    import random

    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def progress_printer(total: int | None, stream: Any = None) -> Callable[[Study], None]:
    """A progress line on stderr: trials done, statuses, best reward, front size, time."""
    stream = stream or sys.stderr
    tty = hasattr(stream, "isatty") and stream.isatty()
    last = [0.0]

    def show(study: Study) -> None:
        c = study.counts()
        n = len(study.records)
        line = (f"search: {n}{'/' + str(total) if total else ''} trials (trained {c['trained']}, cached {c['cached']}, "
                f"pruned {c['pruned']}), best reward {study.best_reward():.4f}, front {study.front_size()}, "
                f"{study.elapsed:.0f} s")
        if tty:
            stream.write("\r" + line + "\033[K")
            stream.flush()
        elif study.elapsed - last[0] >= 15 or (total and n >= total):
            last[0] = study.elapsed
            stream.write(line + "\n")
            stream.flush()

    return show


__all__ = ["EvolutionStrategy", "RLStrategy", "RandomStrategy", "STRATEGIES", "RL_MODES", "StopRule", "Strategy",
           "Study", "make_strategy", "nsga2_select", "objective_vector", "objectives_of", "progress_printer"]
