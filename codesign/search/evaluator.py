"""Evaluating candidates: cost every proposal with the analytical model, resample the hardware of
those that do not fit, train the rest (once per network, on the executor it is given) and score them.

The cost model prunes before any training (FNAS: pruning without training is what makes the
search cheap); accuracy comes from `quant.train` on a proxy budget, cached by the network's
content hash so a network is trained once whatever hardware it is paired with - also when two
candidates with the same network are in flight together (they share one training). Where the
trainings run is the executor's business (codesign.search.executors); the Evaluator knows no process.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from codesign.search.executors import Executor, make_executor
from codesign.search.journal import STARTED, TrialRecord
from codesign.search.objectives import FPS, PENALTY, SOFT_W, Objective, Reward
from codesign.search.space import SearchSpace
from codesign.search.training import (
    Trainer,
    TrainOutcome,
    keep_checkpoint,
    proxy_budget,
    train_job,
    train_job_detached,
    train_network,
    train_threads,
)
from hw_space.boards import Board
from hw_space.design import Design
from hw_space.errors import CodesignError
from hw_space.estimate import estimate
from hw_space.model import CostModel
from quant.train import Budget

MAX_RESAMPLES = 10
DEFAULT_TARGET_SAMPLES = 500
TARGET_DESIGNS_PER_NETWORK = 10  # random hardware settings per random network in default_target


def default_fps_target(space: SearchSpace, board: Board, max_util: float, seed: int = 0,
                       samples: int = DEFAULT_TARGET_SAMPLES) -> float:
    """Median FPS of random designs of the space that fit the board: the reward's target when the
    user gives none (so the reward trades accuracy for speed around a typical design)."""
    return default_target(space, board, max_util, FPS, seed, samples)


def default_target(space: SearchSpace, board: Board, max_util: float, objective: Objective, seed: int = 0,
                   samples: int = DEFAULT_TARGET_SAMPLES, per_network: int = TARGET_DESIGNS_PER_NETWORK) -> float:
    """Median of `objective` (one the cost model computes: of_batch) over `samples` random designs of the
    space that fit the board: the reward's target on that objective when the user gives none. The
    designs come as random networks with `per_network` random hardware settings each, so the cost model
    scores each network's designs in one vectorized call (a network's skeleton is built once)."""
    if objective.of_batch is None:
        raise CodesignError(f"objective {objective.name} is not computed by the cost model; it cannot set a target")
    rng = np.random.default_rng(seed)
    values: list[float] = []
    left = samples
    while left > 0:
        tokens = space.sample(rng)
        designs = [space.decode(tokens)]
        designs += [space.decode(space.resample_hardware(tokens, rng)) for _ in range(min(per_network, left) - 1)]
        left -= len(designs)
        first = designs[0]
        model = CostModel(first.network, board, first.hardware.clock_mhz, max_util)
        for template in dict.fromkeys(d.hardware.template for d in designs):
            r = model.evaluate_designs([d for d in designs if d.hardware.template == template])
            values += [float(v) for v in np.asarray(objective.of_batch(r))[r.feasible]]
    if not values:
        raise CodesignError(f"no design of {samples} random samples of the search space fits board {board.name}; "
                            "narrow the space (fewer channels, lower parallelism levels) or pick a larger board")
    return float(np.median(values))


# ---------------------------------------------------------------- the evaluator

@dataclass
class Costed:
    """A proposal after the cost model: the design kept (resampled or not) and its estimate."""

    tokens: list[int]
    design: Design
    estimate: dict[str, Any]
    fits: bool
    resampled: int
    rejected: int
    seconds: float
    reason: str = ""


class Evaluator:
    """Cost, prune, train (cached, on an executor) and score proposals; see the module docstring.

    `propose` costs one proposal into its start record, `submit` completes it into a future of its
    finish record; `evaluate` does both for a list of proposals and waits."""

    def __init__(self, space: SearchSpace, board: Board, reward: Reward, dataset: str = "digits",
                 data_dir: str | None = None, budget: Budget | None = None, max_util: float = 0.85,
                 workers: int = 1, models_dir: str | Path | None = None, max_resamples: int = MAX_RESAMPLES,
                 trainer: Trainer = train_network, strategy_name: str = "", executor: Executor | None = None):
        self.space = space
        self.board = board
        self.reward = reward
        self.dataset = dataset
        self.data_dir = data_dir
        workers = max(1, workers)
        self.budget = budget or proxy_budget(8, threads=train_threads(dataset, workers))
        self.max_util = max_util
        self.models_dir = Path(models_dir) if models_dir is not None else None
        self.max_resamples = max_resamples
        self.trainer = trainer
        self.strategy_name = strategy_name
        self.executor = executor if executor is not None else make_executor(workers, self.budget.threads)
        self.cache: dict[str, TrainOutcome] = {}  # trainings journaled or finished in this session
        self._trainings: dict[str, Future] = {}   # trainings submitted in this session, by network hash

    @property
    def capacity(self) -> int:
        """Trainings the executor runs at once."""
        return self.executor.capacity

    # ------------------------------------------------------------ cache
    def restore(self, records: list[TrialRecord]) -> None:
        """Rebuild the training cache from journaled records (resume)."""
        for r in records:
            if r.status == "trained" and r.accuracy is not None:
                self.cache[r.network_hash] = TrainOutcome(r.accuracy, r.train_seconds,
                                                          int(r.extra.get("epochs", 0)), r.reason)

    # ------------------------------------------------------------ cost model
    def _fits(self, designs: list[Design]) -> np.ndarray:
        """Vectorized fit (and hard-target) check of designs that share one network."""
        ok = np.zeros(len(designs), dtype=bool)
        for template in {d.hardware.template for d in designs}:
            idx = [i for i, d in enumerate(designs) if d.hardware.template == template]
            first = designs[idx[0]]
            model = CostModel(first.network, self.board, first.hardware.clock_mhz, self.max_util)
            result = model.evaluate_designs([designs[i] for i in idx])
            ok[idx] = result.feasible & self.reward.meets_batch(result)
        return ok

    def cost(self, tokens: list[int], strategy: Any) -> Costed:
        """Cost one proposal; when it does not fit (or misses a hard target) draw up to
        max_resamples hardware-only variants from the strategy, cost them in one batch and keep
        the first that fits."""
        start = time.perf_counter()
        design = self.space.decode(tokens)
        resampled, rejected, fits = 0, 0, bool(self._fits([design])[0])
        if not fits:
            rejected = 1
            alternatives = strategy.resample_hardware(list(tokens), self.max_resamples)
            designs = [self.space.decode(t) for t in alternatives]
            ok = self._fits(designs)
            hits = np.flatnonzero(ok)
            if len(hits):
                k = int(hits[0])
                tokens, design, fits = alternatives[k], designs[k], True
                resampled, rejected = k + 1, rejected + k
            else:
                resampled, rejected = len(alternatives), rejected + len(alternatives)
        # a design that fits at the batch model's FIFO depths is re-estimated with the depths the
        # cycle-level simulation sizes (the ones emit builds): its II, latency and FIFO memory
        est = estimate(design, self.board, self.max_util, simulate=fits)
        if fits and not est.feasible:
            fits, rejected = False, rejected + 1
        est_dict = est.to_dict()
        reason = ""
        if not fits:
            misses = not est.violations and self.reward.hard
            reason = ("misses the hard target" if misses else "; ".join(est.violations[:3])) + \
                f" (after {resampled} hardware resamples)"
        return Costed(list(tokens), design, est_dict, fits, resampled, rejected, time.perf_counter() - start, reason)

    # ------------------------------------------------------------ proposals and trainings
    def propose(self, number: int, tokens: list[int], strategy: Any) -> TrialRecord:
        """The start record of proposal `number`: costed (status 'pruned', or 'started' when it fits).
        Its `replay` keeps the proposal as asked and the calls the cost model made on the strategy
        (its hardware resampling draws from the strategy's generators), so that a resumed run replays
        the strategy exactly (codesign.search.study.Study.restore)."""
        recorder = _CallRecorder(strategy)
        replay: dict[str, Any] = {"asked": _plain(tokens)}
        c = self.cost(tokens, recorder)
        replay["calls"] = recorder.calls
        return TrialRecord(number=number, tokens=c.tokens, design=c.design.to_dict(),
                           network_hash=c.design.network.content_hash(), status=STARTED if c.fits else "pruned",
                           reward=self.reward.penalty, estimate=c.estimate, resampled=c.resampled,
                           rejected=c.rejected, cost_seconds=c.seconds, strategy=self.strategy_name,
                           reason=c.reason, timestamp=time.time(), replay=replay)

    def submit(self, record: TrialRecord) -> Future:
        """A future of the finish record of a start record: pruned as it is, cached at once, or trained
        on the executor (a network already in flight is not trained again: the two share one training)."""
        if record.status != STARTED:
            return _done(replace(record, timestamp=time.time()))
        key = record.network_hash
        if key in self.cache:
            return _done(self._scored(record, self.cache[key], fresh=False))
        shared = self._trainings.get(key)
        if shared is not None:
            return _then(shared, lambda outcome: self._scored(record, outcome, fresh=False))
        path = self._model_path(key)
        if getattr(self.executor, "shares_files", True):  # the worker writes the checkpoint into the run folder
            training = self.executor.submit(train_job, self.trainer, record.design["network"], self.dataset,
                                            self.data_dir, self.budget, str(path) if path else None)
        else:  # a worker on another machine: its checkpoint comes back as bytes, written here
            detached = self.executor.submit(train_job_detached, self.trainer, record.design["network"], self.dataset,
                                            self.data_dir, self.budget, path is not None)
            training = _then(detached, lambda result: keep_checkpoint(result, path))
        self._trainings[key] = training
        return _then(training, lambda outcome: self._scored(record, outcome, fresh=True))

    def _scored(self, record: TrialRecord, outcome: TrainOutcome, fresh: bool) -> TrialRecord:
        if fresh:
            self.cache[record.network_hash] = outcome
        reward = self.reward(outcome.accuracy, record.estimate)
        return replace(record, status="trained" if fresh else "cached", accuracy=outcome.accuracy,
                       train_seconds=outcome.seconds if fresh else 0.0, reason=outcome.reason,
                       extra={"epochs": outcome.epochs}, reward=reward if math.isfinite(reward) else self.reward.penalty,
                       timestamp=time.time())

    def _model_path(self, key: str) -> Path | None:
        return self.models_dir / key / "model.pt" if self.models_dir is not None else None

    def evaluate(self, asks: list[list[int]], strategy: Any, first_number: int) -> list[TrialRecord]:
        """Finish records (in ask order) of a batch of proposals, costed in order, then trained."""
        started = [self.propose(first_number + i, t, strategy) for i, t in enumerate(asks)]
        try:
            return [f.result() for f in [self.submit(r) for r in started]]
        except BaseException:
            self.close(kill=True)
            raise

    def close(self, kill: bool = False) -> None:
        """Stop the executor (at once, abandoning running trainings, when kill is set)."""
        self.executor.close(kill=kill)
        self._trainings.clear()


def _done(value: Any) -> Future:
    future: Future = Future()
    future.set_result(value)
    return future


def _then(future: Future, fn: Callable[[Any], Any]) -> Future:
    """A future of fn(result) once `future` is done (its exception passed on)."""
    out: Future = Future()

    def relay(done: Future) -> None:
        try:
            out.set_result(fn(done.result()))
        except BaseException as exc:  # the training's failure (or a failure to score it) is the record's
            out.set_exception(exc)

    future.add_done_callback(relay)
    return out


class _CallRecorder:
    """Stands in for the strategy while the cost model costs one proposal: every method call is
    passed on and recorded as [name, args, kwargs] (plain JSON values) for the journal."""

    def __init__(self, strategy: Any):
        self._strategy = strategy
        self.calls: list[list[Any]] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._strategy, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append([name, [_plain(a) for a in args], {k: _plain(v) for k, v in kwargs.items()}])
            return attr(*args, **kwargs)

        return call


def _plain(value: Any) -> Any:
    """Tokens and counts as JSON values (numpy integers become ints, tuples lists)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    return value


__all__ = ["Costed", "Evaluator", "MAX_RESAMPLES", "PENALTY", "Reward", "SOFT_W", "default_fps_target",
           "default_target"]
