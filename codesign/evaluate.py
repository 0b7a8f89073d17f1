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
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from codesign.journal import TrialRecord
from codesign.space import SearchSpace
from hw_space.boards import Board
from hw_space.design import Design, Network, design_from_dict
from hw_space.errors import CodesignError
from hw_space.estimate import estimate
from hw_space.model import CostModel
from quant.train import Budget

MAX_RESAMPLES = 10
SOFT_W = -0.07  # MNASNet (Tan et al. 2019): reward = ACC * (LAT / T)^w with w = -0.07
PENALTY = 0.0   # reward of a candidate pruned by the cost model (never trained)
DEFAULT_TARGET_SAMPLES = 500


# ---------------------------------------------------------------- reward

@dataclass(frozen=True)
class Reward:
    """MNASNet-style reward. metric 'fps' (the ratio is target_fps / fps, i.e. 1/FPS relative to
    1/target) or 'latency' (latency_us / target_us). soft: acc * ratio^w; hard: acc when the
    target is met (w = 0), else the penalty, and such candidates are pruned before training."""

    metric: str = "fps"
    target: float = 10_000.0
    kind: str = "soft"
    w: float = SOFT_W
    penalty: float = PENALTY
    target_note: str = "given by the user"

    def ratio(self, est: dict[str, Any]) -> float:
        if self.metric == "latency":
            return max(float(est["latency_us"]), 1e-9) / self.target
        return self.target / max(float(est["fps"]), 1e-9)

    def meets(self, est: dict[str, Any]) -> bool:
        return self.ratio(est) <= 1.0

    def __call__(self, accuracy: float, est: dict[str, Any]) -> float:
        if self.kind == "hard":
            return float(accuracy) if self.meets(est) else self.penalty
        return float(accuracy) * self.ratio(est) ** self.w

    @property
    def hard(self) -> bool:
        return self.kind == "hard"

    def formula(self) -> str:
        metric = (f"LAT / T, LAT the latency in us (an upper bound), T = {self.target:g} us"
                  if self.metric == "latency" else
                  f"(1/FPS) / (1/T) = T / FPS, T = {self.target:,.0f} FPS")
        if self.kind == "hard":
            return (f"hard constraint: reward = accuracy when {metric.split(',')[0]} <= 1 (w = 0), otherwise "
                    f"the penalty {self.penalty:g} without training; ratio = {metric} ({self.target_note})")
        return (f"soft (MNASNet): reward = accuracy * ratio^w, w = {self.w:g}, ratio = {metric} "
                f"({self.target_note}); pruned candidates get {self.penalty:g}")


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


# ---------------------------------------------------------------- training

def proxy_budget(epochs: int, seed: int = 0, threads: int = 1, subset: float = 1.0) -> Budget:
    """The proxy training budget every candidate gets: a few QAT epochs, no early stopping."""
    return Budget(epochs=epochs, seed=seed, threads=threads, subset=subset, patience=0)


@dataclass(frozen=True)
class TrainOutcome:
    """Accuracy and cost of training one network."""

    accuracy: float
    seconds: float
    epochs: int
    reason: str


Trainer = Callable[[Network, str, "str | None", Budget, "Path | None"], TrainOutcome]


def train_threads(dataset: str, workers: int) -> int:
    """torch threads per training worker: the cores split between workers, but one for the embedded
    digits set, whose tiny models only lose time to intra-op thread synchronisation."""
    return 1 if dataset == "digits" else max(1, (os.cpu_count() or 1) // max(1, workers))


def train_network(network: Network, dataset: str, data_dir: str | None, budget: Budget,
                  model_path: Path | None = None) -> TrainOutcome:
    """QAT one network with quant.train; keep its checkpoint at model_path when given."""
    import quant

    data = quant.load_dataset(dataset, data_dir)
    start = time.perf_counter()
    result = quant.train(network, data, budget)
    seconds = time.perf_counter() - start
    if model_path is not None:
        quant.save_checkpoint(result.model, network, model_path)
    return TrainOutcome(float(result.accuracy), seconds, int(result.epochs), str(result.reason))


def _worker_init(threads: int) -> None:
    """Worker processes: leave Ctrl-C to the parent, and use their share of the cores."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import torch

    torch.set_num_threads(threads)


def _train_job(trainer: Trainer, network_dict: dict[str, Any], dataset: str, data_dir: str | None,
               budget: Budget, model_path: str | None) -> TrainOutcome:
    network = design_from_dict({"network": network_dict}).network
    return trainer(network, dataset, data_dir, budget, Path(model_path) if model_path else None)


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
        target_fps = self.reward.target if self.reward.hard and self.reward.metric == "fps" else None
        for template in {d.hardware.template for d in designs}:
            idx = [i for i, d in enumerate(designs) if d.hardware.template == template]
            first = designs[idx[0]]
            model = CostModel(first.network, self.board, first.hardware.clock_mhz, self.max_util, target_fps)
            result = model.evaluate_designs([designs[i] for i in idx])
            good = result.feasible.copy()
            if self.reward.hard and self.reward.metric == "latency":
                good &= result.latency_cycles / result.clock_mhz <= self.reward.target
            ok[idx] = good
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
        est = estimate(design, self.board, self.max_util)
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
                                             initargs=(self.budget.threads,))
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
        except BaseException:
            self.close(kill=True)
            raise

    def evaluate(self, asks: list[list[int]], strategy: Any, first_number: int) -> list[TrialRecord]:
        """Records (in ask order) of a batch of proposals: pruned, trained or cached."""
        costed = [self.cost(t, strategy) for t in asks]
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
                                 timestamp=time.time())
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
        """Stop the worker processes (at once, when kill is set: Ctrl-C or an error)."""
        if self._pool is None:
            return
        pool, self._pool = self._pool, None
        if kill:
            for p in list(getattr(pool, "_processes", {}).values()):
                p.terminate()
        pool.shutdown(wait=not kill, cancel_futures=True)


__all__ = ["Costed", "Evaluator", "MAX_RESAMPLES", "PENALTY", "Reward", "SOFT_W", "TrainOutcome",
           "default_fps_target", "proxy_budget", "train_network", "train_threads"]
