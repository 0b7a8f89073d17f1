"""The search's objectives as named objects: what each measures, whether it is maximized or
minimized, and how it is read from a journaled candidate (and, for a hard target, from the cost
model's batch result); the reward, the one scalarization of named objectives the strategies learn
from; and the helpers that turn records into the maximized points the Pareto machinery takes.

A run's objective list (default accuracy and FPS) is saved in its config.json and fixed on resume
(Optuna keeps a study's `directions` in its storage, optuna/study/study.py:91). Adding an objective
is one `OBJECTIVES` entry once the estimate carries the figure (energy and model size are).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from hw_space.boards import RESOURCES
from hw_space.errors import CodesignError

if TYPE_CHECKING:
    from hw_space.model import BatchResult

DIRECTIONS = ("maximize", "minimize")
SCALES = ("linear", "log10")
LOG_FLOOR = 1e-9  # log10 and ratios read values below this as this (a zero FPS has no logarithm)
SOFT_W = -0.07  # MNASNet (Tan et al. 2019): reward = ACC * (LAT / T)^w with w = -0.07
PENALTY = 0.0   # reward of a candidate pruned by the cost model (never trained)


class Measured(Protocol):
    """What objectives read: a candidate's accuracy (None: never trained) and its cost-model estimate
    (`TrialRecord.estimate`, `hw_space.estimate.Estimate.to_dict()`)."""

    accuracy: float | None
    estimate: dict[str, Any] | None


@dataclass(frozen=True)
class Measurement:
    """A candidate's accuracy and estimate before it is a journaled record (the reward reads these)."""

    accuracy: float | None
    estimate: dict[str, Any] | None


@dataclass(frozen=True)
class Objective:
    """One named figure of merit. `of` reads it from a record; `of_batch` (when the cost model
    computes it) from a `BatchResult`, so it can be a hard target checked before training. `scale`
    is how distances are taken (crowding, ideal point): log10 for figures spanning decades (FPS);
    dominance depends on the direction only."""

    name: str
    direction: str
    of: Callable[[Measured], float | None]
    label: str
    unit: str = ""
    scale: str = "linear"
    description: str = ""
    value_format: str = "g"
    symbol: str = ""
    of_batch: Callable[[BatchResult], np.ndarray] | None = None

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise CodesignError(f"objective {self.name}: direction {self.direction!r} is not allowed; "
                                f"allowed: {', '.join(DIRECTIONS)}")
        if self.scale not in SCALES:
            raise CodesignError(f"objective {self.name}: scale {self.scale!r} is not allowed; allowed: {', '.join(SCALES)}")

    @property
    def maximize(self) -> bool:
        return self.direction == "maximize"

    @property
    def short_direction(self) -> str:
        """'max' or 'min', as pareto.json and report.md write it."""
        return self.direction[:3]

    @property
    def scaled_label(self) -> str:
        return f"log10 {self.label}" if self.scale == "log10" else self.label

    def maximized(self, value: float, scaled: bool = True) -> float:
        """The value as a column of a maximized point (negated when minimized), on the objective's
        scale when `scaled` (distances), as read otherwise (dominance alone)."""
        v = math.log10(max(float(value), LOG_FLOOR)) if scaled and self.scale == "log10" else float(value)
        return v if self.maximize else -v

    def best(self, values: Iterable[float]) -> float:
        """The best of some values in this objective's direction."""
        return max(values) if self.maximize else min(values)

    def show(self, value: float) -> str:
        """A value as the report writes it, with its unit."""
        return f"{value:{self.value_format}}" + (f" {self.unit}" if self.unit else "")


def _estimate_field(key: str) -> Callable[[Measured], float]:
    def read(m: Measured) -> float:
        return float((m.estimate or {}).get(key, 0.0))
    return read


def _resource(key: str) -> Callable[[Measured], float]:
    def read(m: Measured) -> float:
        return float((m.estimate or {}).get("resources", {}).get(key, 0))
    return read


def _batch_resource(key: str) -> Callable[[BatchResult], np.ndarray]:
    def read(r: BatchResult) -> np.ndarray:
        return r.resources[key]
    return read


def _accuracy(m: Measured) -> float | None:
    return None if m.accuracy is None else float(m.accuracy)


ACCURACY = Objective("accuracy", "maximize", _accuracy, "accuracy", value_format=".1%",
                     description="test accuracy after the proxy training (quant.train)")
FPS = Objective("fps", "maximize", _estimate_field("fps"), "FPS", unit="FPS", scale="log10", value_format=",.0f",
                description="frames per second of the analytical estimate (clock / II)", symbol="FPS",
                of_batch=lambda r: r.fps)
LATENCY = Objective("latency_us", "minimize", _estimate_field("latency_us"), "latency", unit="us",
                    description="the simulated first-frame latency in us", symbol="LAT",
                    of_batch=lambda r: r.latency_cycles / r.clock_mhz)
ENERGY = Objective("energy", "minimize", _estimate_field("energy_mj"), "energy", unit="mJ", scale="log10",
                   value_format=".4g", symbol="E",
                   description="estimated energy per inference at batch 1 (PL power x latency; hw_space.power)",
                   of_batch=lambda r: r.energy_mj)
MODEL_BITS = Objective("model_bits", "minimize", _estimate_field("model_bits"), "model bits", unit="bits",
                       scale="log10", value_format=",.0f", symbol="BITS",
                       description="bits of all learned weights (weights x weight bits)",
                       of_batch=lambda r: r.model_bits.astype(float))
RESOURCE_OBJECTIVES = {k: Objective(k, "minimize", _resource(k), k, unit=k, value_format=",.0f",
                                    description=f"{k} count of the analytical estimate", of_batch=_batch_resource(k))
                       for k in RESOURCES}

# the registry: every objective a run may name (config.json `objectives`, --objectives)
OBJECTIVES: dict[str, Objective] = {o.name: o for o in (ACCURACY, FPS, LATENCY, ENERGY, MODEL_BITS,
                                                        *RESOURCE_OBJECTIVES.values())}
DEFAULT_OBJECTIVES: tuple[Objective, ...] = (ACCURACY, FPS)  # the front of a run that names none
# added to the run's objectives for the resource-aware front (pareto.json `resource_front`, the progress line's front)
FRONT_RESOURCES: tuple[str, ...] = ("LUT", "BRAM18", "DSP")


def objective_list(names: Sequence[str] | str) -> tuple[Objective, ...]:
    """The objectives named (a sequence, or one comma-separated string as --objectives takes it)."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    names = [REWARD_ALIASES.get(n, n) for n in names]  # "latency" names latency_us
    if not names:
        raise CodesignError(f"--objectives names no objective; allowed: {', '.join(OBJECTIVES)}")
    unknown = [n for n in names if n not in OBJECTIVES]
    if unknown:
        raise CodesignError(f"objective {unknown[0]!r} is not allowed; allowed: {', '.join(OBJECTIVES)}")
    if len(set(names)) != len(names):
        raise CodesignError(f"--objectives {','.join(names)} names an objective twice")
    return tuple(OBJECTIVES[n] for n in names)


def reward_objective(objectives: Sequence[Objective]) -> Objective:
    """The objective the reward puts accuracy against when the user gives no target: the run's first
    objective other than accuracy that the cost model computes (fps for the default list)."""
    return next((o for o in objectives if o.name != ACCURACY.name and o.of_batch is not None), FPS)


def with_resources(objectives: Sequence[Objective]) -> tuple[Objective, ...]:
    """The resource-aware list: the run's objectives, then FRONT_RESOURCES not already among them."""
    names = {o.name for o in objectives}
    return tuple(objectives) + tuple(OBJECTIVES[k] for k in FRONT_RESOURCES if k not in names)


def values_of(record: Measured) -> dict[str, float | None]:
    """Every registered objective's value for a record (None where it has none), by name."""
    return {name: o.of(record) for name, o in OBJECTIVES.items()}


def points(records: Sequence[Measured], objectives: Sequence[Objective], scaled: bool = True) -> np.ndarray:
    """(n, m) maximized points of the records over the objectives, the Pareto machinery's input
    (codesign.search.pareto): on each objective's scale when `scaled`, as read otherwise."""
    return np.array([[o.maximized(o.of(r), scaled) for o in objectives] for r in records],
                    dtype=float).reshape(len(records), len(objectives))


def objective_vector(values: Mapping[str, float | None] | None,
                     objectives: Sequence[Objective] = DEFAULT_OBJECTIVES) -> list[float] | None:
    """The maximized, scaled point of a candidate from the values it was told with (`values_of`);
    None for a candidate that was never trained (it has no accuracy)."""
    if not values or values.get("accuracy") is None:
        return None
    return [o.maximized(values[o.name]) for o in objectives]


def describe(objectives: Sequence[Objective]) -> str:
    """'accuracy (max) and FPS (max)': each objective with its direction."""
    return and_list([f"{o.label} ({o.short_direction})" for o in objectives])


def describe_grouped(objectives: Sequence[Objective]) -> str:
    """'accuracy and FPS (max) and LUT, BRAM18 and DSP (min)': the objectives grouped by direction."""
    groups = [(d, [o.label for o in objectives if o.direction == d]) for d in DIRECTIONS]
    return " and ".join(f"{and_list(labels)} ({d[:3]})" for d, labels in groups if labels)


def and_list(words: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c': words as a sentence lists them."""
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


# ---------------------------------------------------------------- the reward: one scalarization

REWARD_ALIASES = {"latency": "latency_us"}  # --target-latency-us's historical metric name


@dataclass(frozen=True)
class Reward:
    """The scalarization the strategies learn from: accuracy times a ratio of one other objective to
    its target T (MNASNet, Tan et al. 2019). The ratio is <= 1 when the target is met: T / value for
    a maximized objective (fps: (1/FPS) / (1/T)), value / T for a minimized one (latency). soft:
    accuracy * ratio^w; hard: accuracy when the target is met (w = 0), else the penalty, and such
    candidates are pruned before training (the objective must be one the cost model computes)."""

    metric: str = "fps"
    target: float = 10_000.0
    kind: str = "soft"
    w: float = SOFT_W
    penalty: float = PENALTY
    target_note: str = "given by the user"

    def __post_init__(self) -> None:
        name = REWARD_ALIASES.get(self.metric, self.metric)
        if name not in OBJECTIVES or name == ACCURACY.name:
            allowed = [*REWARD_ALIASES, *(n for n in OBJECTIVES if n != ACCURACY.name)]
            raise CodesignError(f"reward metric {self.metric!r} is not allowed; allowed: {', '.join(allowed)}")
        if self.kind not in ("soft", "hard"):
            raise CodesignError(f"reward kind {self.kind!r} is not allowed; allowed: soft, hard")
        if self.kind == "hard" and OBJECTIVES[name].of_batch is None:
            raise CodesignError(f"a hard target on {name} cannot be checked by the cost model")

    @property
    def objective(self) -> Objective:
        """The objective the target is on."""
        return OBJECTIVES[REWARD_ALIASES.get(self.metric, self.metric)]

    @property
    def objectives(self) -> tuple[Objective, ...]:
        """The named objectives this reward scalarizes."""
        return (ACCURACY, self.objective)

    @property
    def hard(self) -> bool:
        return self.kind == "hard"

    def ratio(self, est: dict[str, Any]) -> float:
        value = max(self.objective.of(Measurement(None, est)), LOG_FLOOR)
        return self.target / value if self.objective.maximize else value / self.target

    def meets(self, est: dict[str, Any]) -> bool:
        return self.ratio(est) <= 1.0

    def meets_batch(self, result: BatchResult) -> np.ndarray:
        """Which designs of a cost-model batch meet a hard target (all of them for a soft reward)."""
        if not self.hard:
            return np.ones(len(result), dtype=bool)
        values = self.objective.of_batch(result)
        return values >= self.target if self.objective.maximize else values <= self.target

    def __call__(self, accuracy: float, est: dict[str, Any]) -> float:
        acc = ACCURACY.of(Measurement(accuracy, est))
        if self.hard:
            return acc if self.meets(est) else self.penalty
        return acc * self.ratio(est) ** self.w

    def formula(self) -> str:
        o = self.objective
        s = o.symbol or o.label
        t = f"{self.target:{o.value_format}}"
        metric = (f"(1/{s}) / (1/T) = T / {s}, T = {t} {o.unit}" if o.maximize else
                  f"{s} / T, {s} {o.description}, T = {t} {o.unit}")
        if self.hard:
            return (f"hard constraint: reward = accuracy when {metric.split(',')[0]} <= 1 (w = 0), otherwise "
                    f"the penalty {self.penalty:g} without training; ratio = {metric} ({self.target_note})")
        return (f"soft (MNASNet): reward = accuracy * ratio^w, w = {self.w:g}, ratio = {metric} "
                f"({self.target_note}); pruned candidates get {self.penalty:g}")


def use_objectives(strategy: Any, objectives: Sequence[Objective], reward: Reward | None) -> None:
    """Give a strategy the run's objectives before it is asked or told anything. A strategy that
    selects on them (it has an `objectives` attribute: evolution) takes the list; one that learns
    from one number (`multi_objective = False`: RL) needs the reward to scalarize them, and is
    refused without one (Optuna's `_raise_error_if_multi_objective`, samplers/_base.py:232-237)."""
    if hasattr(strategy, "objectives"):
        strategy.objectives = tuple(objectives)
    if not getattr(strategy, "multi_objective", True) and len(objectives) > 1 and reward is None:
        raise CodesignError(f"strategy {strategy.name} learns from one score and the run has {len(objectives)} "
                            f"objectives ({', '.join(o.name for o in objectives)}) without a reward to combine "
                            "them; give a reward or use --strategy evolution")


__all__ = ["ACCURACY", "DEFAULT_OBJECTIVES", "ENERGY", "FPS", "MODEL_BITS", "FRONT_RESOURCES", "LATENCY", "Measured", "Measurement",
           "OBJECTIVES", "Objective", "PENALTY", "REWARD_ALIASES", "Reward", "SOFT_W", "and_list", "describe", "describe_grouped",
           "objective_list", "objective_vector", "points", "reward_objective", "use_objectives", "values_of", "with_resources"]
