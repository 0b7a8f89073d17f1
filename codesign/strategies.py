"""Search strategies behind one narrow ask/tell interface, and the Study loop that drives one.

A strategy proposes token sequences (`ask`), redraws only the hardware decisions of a proposal
when the cost model rejects it (`resample_hardware`), learns from results (`tell`) and saves and
restores all its state, random generators included (`state_dict` / `load_state_dict`). The Study
asks, has the Evaluator cost / train / score the proposals, journals them, tells and checkpoints; a
resumed Study rebuilds its strategy by replaying the journal (`Study.restore`).
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


REPLAYABLE = ("resample_hardware",)  # the strategy calls the cost model makes (journaled, replayed on resume)


@dataclass
class _Batch:
    """Proposals asked together (numbers start .. start+size-1): those still to evaluate, and the
    records already journaled (told with the rest once the whole batch is journaled)."""

    start: int
    size: int
    asks: list[list[int]]
    journaled: list[TrialRecord]


class Study:
    """Ask `batch` proposals, evaluate them, journal the batch, tell the strategy and checkpoint it
    atomically, until the stop rule says so. The journal is the source of truth: `restore` rebuilds
    the strategy by replaying it, so a crash at any point resumes the uninterrupted run's sequence."""

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
        self._unfinished: _Batch | None = None  # a journaled batch cut short, completed first by run()

    @property
    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self._started

    def counts(self) -> dict[str, int]:
        out = {"trained": 0, "cached": 0, "pruned": 0}
        for r in self.records:
            out[r.status] += 1
        return out

    def restore(self, records: list[TrialRecord], state: dict[str, Any] | None = None) -> None:
        """Continue a journaled run; `self.strategy` must be freshly made with the run's seed.

        The strategy state is derived from the journal, never from the checkpoint (which may lag
        behind it): every journaled batch is asked again, the calls the cost model made on the
        strategy (its hardware resampling) are made again and the journaled rewards told, in the
        original order - the same calls as the uninterrupted run, so the same state, random
        generators included. Each replayed proposal must equal the journaled one, else the run
        folder is refused. A last batch cut short (a crash or a full disk between its records) is
        completed first by `run`. Trained networks go into the evaluator's cache; the checkpoint
        only gives the search time spent before."""
        self.records = list(records)
        source = str(getattr(self.journal, "path", "")) or None
        for i, r in enumerate(self.records):
            if r.number != i:
                raise CodesignError(f"journal record {i + 1} is candidate #{r.number}, expected #{i}: the journal is "
                                    "damaged (did two searches write into this run folder at once?)", source=source)
            if not isinstance(r.replay, dict):
                raise CodesignError(f"candidate #{r.number}: replay is not a mapping: the journal is damaged",
                                    source=source)
        self.evaluator.restore(self.records)
        self._unfinished = self._replay(self.records, source)
        if state is not None:
            self.elapsed_before = float(state.get("elapsed_s", 0.0))
        self._started = time.perf_counter()

    def _replay(self, records: list[TrialRecord], source: str | None) -> _Batch | None:
        """Re-run the strategy's side of every journaled batch; the last batch when it was cut short."""
        i = 0
        while i < len(records):
            first = records[i]
            batch = first.replay.get("batch")
            try:
                start, size = (first.number, self.batch) if batch is None else (int(batch[0]), int(batch[1]))
            except (TypeError, ValueError, IndexError):
                raise CodesignError(f"candidate #{first.number}: batch {str(batch)[:40]} is not [first, size]: the "
                                    "journal is damaged", source=source) from None
            group = [first]
            while i + len(group) < len(records) and len(group) < size and \
                    records[i + len(group)].replay.get("batch") == batch:
                group.append(records[i + len(group)])
            i += len(group)
            if batch is None:  # journaled before batches were recorded: the batch ends where the records say
                size = len(group)
            if start != first.number or size < 1:
                raise CodesignError(f"candidate #{first.number} opens no batch (batch {batch}): the journal is "
                                    "damaged", source=source)
            asks = [self.strategy.ask() for _ in range(size)]
            for ask, record in zip(asks, group):
                self._replay_cost(ask, record, source)
            if len(group) < size:
                if i < len(records):
                    raise CodesignError(f"the batch of candidate #{start} has {len(group)} of its {size} records and "
                                        "more records follow: the journal is damaged", source=source)
                return _Batch(start, size, asks[len(group):], group)
            for record in group:
                self.strategy.tell(record.tokens, record.reward, objectives_of(record))
        return None

    def _replay_cost(self, ask: list[int], record: TrialRecord, source: str | None) -> None:
        """The strategy calls the cost model made for one journaled proposal, made again."""
        def refuse(got: Any) -> CodesignError:
            return CodesignError(f"cannot resume: replaying the journal, candidate #{record.number} comes out as "
                                 f"{got}, not as journaled (was the run folder written by another version of "
                                 "codesign, or edited?)", source=source)

        if "asked" not in record.replay:  # journaled before the calls were recorded: cost it again
            cost = getattr(self.evaluator, "cost", None)
            tokens = list(cost(ask, self.strategy).tokens) if cost is not None else list(ask)
            if tokens != list(record.tokens):
                raise refuse(tokens)
            return
        if list(ask) != list(record.replay["asked"]):
            raise refuse(list(ask))
        made = [list(ask)]
        for call in record.replay.get("calls", []):
            try:
                name, args, kwargs = call[0], list(call[1]), dict(call[2] if len(call) > 2 else {})
            except (TypeError, ValueError, IndexError, KeyError):
                name = None
            if name not in REPLAYABLE:
                raise CodesignError(f"candidate #{record.number}: the journal asks to replay {str(call)[:80]}, which "
                                    f"is not a strategy call the cost model makes ({', '.join(REPLAYABLE)}): the "
                                    "journal is damaged", source=source)
            result = getattr(self.strategy, name)(*args, **kwargs)
            if isinstance(result, list):
                made += [list(r) for r in result if isinstance(r, (list, tuple))]
        if list(record.tokens) not in made:
            raise refuse(f"one of {len(made)} proposals none of which is {list(record.tokens)}")

    def checkpoint(self) -> None:
        """A snapshot of the strategy (tensors and plain values only: loaded with weights_only=True)."""
        save_state(self.state_path, {"strategy": self.strategy.state_dict(), "trials": len(self.records),
                                     "elapsed_s": self.elapsed, **self.extra_state})

    def run(self) -> list[TrialRecord]:
        """Run until the stop rule. Each batch is journaled with one write before the strategy is
        told; a stop signal (Ctrl-C, SIGTERM) is held while a batch is journaled, told and
        checkpointed, then propagates. A crash anywhere leaves a journal `restore` resumes from."""
        while True:
            c = self.counts()
            n = len(self.records)
            if self.stop.done(n, c["trained"], self.elapsed):
                break
            room = self.stop.max_trials - n if self.stop.max_trials is not None else None
            if self._unfinished is not None:
                batch, self._unfinished = self._unfinished, None
            else:
                k = self.batch if room is None else min(self.batch, room)
                batch = _Batch(n, k, [self.strategy.ask() for _ in range(k)], [])
            asks = batch.asks if room is None else batch.asks[:room]
            records = self.evaluator.evaluate(asks, self.strategy, n)
            for record in records:
                record.replay["batch"] = [batch.start, batch.size]
            with deferred_interrupt():  # journal, tell and checkpoint stay together under Ctrl-C / SIGTERM
                self.journal.append_many(records)
                self.records.extend(records)
                done = batch.journaled + records
                if len(done) == batch.size:
                    for record in done:
                        self.strategy.tell(record.tokens, record.reward, objectives_of(record))
                else:  # a resumed batch cut short by --trials: the rest waits for a later resume
                    self._unfinished = _Batch(batch.start, batch.size, batch.asks[len(asks):], done)
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


_DEFERRED = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


@contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Hold a stop signal (SIGINT, SIGTERM, SIGHUP) that arrives inside the block until the block has
    finished, then deliver the first one to the handler in place before (Ctrl-C's KeyboardInterrupt,
    the search's clean stop, or the default action). Ignored signals stay ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous: dict[int, Any] = {}
    for sig in _DEFERRED:
        handler = signal.getsignal(sig)
        if handler is signal.SIG_IGN or handler is None:  # None: installed outside Python, cannot be restored
            continue
        previous[sig] = signal.signal(sig, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if caught:
        signal.raise_signal(caught[0])


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
