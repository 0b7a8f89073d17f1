"""Evaluating candidates: cost every proposal with the analytical model, resample the hardware of
those that do not fit, train the rest (once per network, in parallel workers) and score them.

The cost model prunes before any training (FNAS: pruning without training is what makes the
search cheap); accuracy comes from `quant.train` on a proxy budget, cached by the network's
content hash so a network is trained once whatever hardware it is paired with.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from codesign.search.journal import TrialRecord
from codesign.search.objectives import PENALTY, SOFT_W, Reward
from codesign.search.space import SearchSpace
from codesign.search.training import (
    Trainer,
    TrainOutcome,
    _train_job,
    _worker_init,
    proxy_budget,
    train_network,
    train_threads,
)
from hw_space.boards import Board
from hw_space.design import Design, Network
from hw_space.errors import CodesignError
from hw_space.estimate import estimate
from hw_space.model import CostModel
from quant.train import Budget

MAX_RESAMPLES = 10
DEFAULT_TARGET_SAMPLES = 500


def default_fps_target(space: SearchSpace, board: Board, max_util: float, seed: int = 0,
                       samples: int = DEFAULT_TARGET_SAMPLES) -> float:
    """Median FPS of random designs of the space that fit the board: the reward's target when the
    user gives none (so the reward trades accuracy for speed around a typical design)."""
    rng = np.random.default_rng(seed)
    fps = []
    for _ in range(samples):
        design = space.decode(space.sample(rng))
        r = CostModel(design.network, board, design.hardware.clock_mhz, max_util).evaluate_designs([design])
        if bool(r.feasible[0]):
            fps.append(float(r.fps[0]))
    if not fps:
        raise CodesignError(f"no design of {samples} random samples of the search space fits board {board.name}; "
                            "narrow the space (fewer channels, lower parallelism levels) or pick a larger board")
    return float(np.median(fps))


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
    """Cost, prune, train (cached, in parallel) and score proposals; see the module docstring."""

    def __init__(self, space: SearchSpace, board: Board, reward: Reward, dataset: str = "digits",
                 data_dir: str | None = None, budget: Budget | None = None, max_util: float = 0.85,
                 workers: int = 1, models_dir: str | Path | None = None, max_resamples: int = MAX_RESAMPLES,
                 trainer: Trainer = train_network, strategy_name: str = ""):
        self.space = space
        self.board = board
        self.reward = reward
        self.dataset = dataset
        self.data_dir = data_dir
        self.workers = max(1, workers)
        self.budget = budget or proxy_budget(8, threads=train_threads(dataset, self.workers))
        self.max_util = max_util
        self.models_dir = Path(models_dir) if models_dir is not None else None
        self.max_resamples = max_resamples
        self.trainer = trainer
        self.strategy_name = strategy_name
        self.cache: dict[str, TrainOutcome] = {}
        self._pool: ProcessPoolExecutor | None = None

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

    # ------------------------------------------------------------ training
    def _pool_for(self) -> ProcessPoolExecutor:
        if self._pool is None:
            ctx = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx, initializer=_worker_init,
                                             initargs=(self.budget.threads, os.getpid()))
        return self._pool

    def _model_path(self, key: str) -> Path | None:
        return self.models_dir / key / "model.pt" if self.models_dir is not None else None

    def _train_many(self, jobs: dict[str, Network]) -> dict[str, TrainOutcome]:
        if not jobs:
            return {}
        if self.workers == 1:
            return {k: self.trainer(net, self.dataset, self.data_dir, self.budget, self._model_path(k))
                    for k, net in jobs.items()}
        pool = self._pool_for()
        futures: dict[str, Future] = {}
        for k, net in jobs.items():
            path = self._model_path(k)
            futures[k] = pool.submit(_train_job, self.trainer, net.to_dict(), self.dataset, self.data_dir,
                                     self.budget, str(path) if path else None)
        try:
            return {k: f.result() for k, f in futures.items()}
        except BrokenProcessPool:
            self.close(kill=True)
            from codesign.search import runguard

            if runguard.requested() is not None:  # a stop signal sent to the whole process group
                raise runguard.StopRequested(runguard.requested()) from None
            raise CodesignError("a training worker process died (out of memory, or killed?); the journal is "
                                "consistent: continue the run with --resume") from None
        except BaseException:
            self.close(kill=True)
            raise

    def evaluate(self, asks: list[list[int]], strategy: Any, first_number: int) -> list[TrialRecord]:
        """Records (in ask order) of a batch of proposals: pruned, trained or cached. Each record's
        `replay` keeps the proposal as asked and the calls the cost model made on the strategy (its
        hardware resampling draws from the strategy's generators), so that a resumed run replays
        the strategy exactly (codesign.search.study.Study.restore)."""
        costed, replays = [], []
        for t in asks:
            recorder = _CallRecorder(strategy)
            replays.append({"asked": _plain(t)})
            costed.append(self.cost(t, recorder))
            replays[-1]["calls"] = recorder.calls
        jobs: dict[str, Network] = {}
        for c in costed:
            key = c.design.network.content_hash()
            if c.fits and key not in self.cache and key not in jobs:
                jobs[key] = c.design.network
        trained = self._train_many(jobs)
        self.cache.update(trained)
        records = []
        for i, c in enumerate(costed):
            key = c.design.network.content_hash()
            record = TrialRecord(number=first_number + i, tokens=c.tokens, design=c.design.to_dict(),
                                 network_hash=key, status="pruned", reward=self.reward.penalty,
                                 estimate=c.estimate, resampled=c.resampled, rejected=c.rejected,
                                 cost_seconds=c.seconds, strategy=self.strategy_name, reason=c.reason,
                                 timestamp=time.time(), replay=replays[i])
            if c.fits:
                outcome = self.cache[key]
                fresh = trained.pop(key, None) is not None
                record.status = "trained" if fresh else "cached"
                record.accuracy = outcome.accuracy
                record.train_seconds = outcome.seconds if fresh else 0.0
                record.reason = outcome.reason
                record.extra = {"epochs": outcome.epochs}
                record.reward = self.reward(outcome.accuracy, c.estimate)
                if not math.isfinite(record.reward):
                    record.reward = self.reward.penalty
            records.append(record)
        return records

    def close(self, kill: bool = False) -> None:
        """Stop the worker processes (at once, when kill is set: Ctrl-C, SIGTERM or an error; the
        workers are gone when this returns, so nothing of theirs is written after the run ends)."""
        if self._pool is None:
            return
        pool, self._pool = self._pool, None
        processes = list((getattr(pool, "_processes", None) or {}).values())
        if kill:
            for p in processes:
                p.terminate()
        pool.shutdown(wait=not kill, cancel_futures=True)
        if kill:
            _reap(processes)


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


def _reap(processes: list[Any], timeout: float = 5.0) -> None:
    """Wait until terminated worker processes have exited; SIGKILL those still there after `timeout`."""
    from multiprocessing.connection import wait

    pending = {}
    for p in processes:
        try:
            pending[p.sentinel] = p
        except ValueError:  # already closed
            pass
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for sentinel in wait(list(pending), timeout=max(0.0, deadline - time.monotonic())):
            pending.pop(sentinel, None)
    for p in pending.values():
        try:
            p.kill()
        except (OSError, ValueError):
            pass
    if pending:
        wait(list(pending), timeout=2.0)


__all__ = ["Costed", "Evaluator", "MAX_RESAMPLES", "PENALTY", "Reward", "SOFT_W", "default_fps_target"]
