"""The search half of codesign: the space of network + hardware designs (space.py), the strategies
that propose them (strategies/), the Study loop (study.py) with its Evaluator (evaluator.py, training.py),
the executors that run trainings (executors.py), the run's journal (journal/), the objectives
(objectives.py), the Pareto front (pareto.py) and the report (report.py).

The public names are re-exported here and imported on first use, so `import codesign.search.space`
does not pull in torch."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "SearchSpace": "space", "Context": "space", "load_space": "space", "save_space": "space",
    "space_from_dict": "space",
    "Strategy": "strategies", "make_strategy": "strategies", "STRATEGIES": "strategies",
    "RandomStrategy": "strategies", "EvolutionStrategy": "strategies", "RLStrategy": "strategies",
    "Study": "study", "StopRule": "study", "progress_printer": "study",
    "Evaluator": "evaluator", "Reward": "evaluator", "TrainOutcome": "training", "proxy_budget": "training",
    "train_network": "training", "Journal": "journal", "TrialRecord": "journal",
    "Executor": "executors", "InlineExecutor": "executors", "ProcessExecutor": "executors",
    "make_executor": "executors", "Objective": "objectives", "OBJECTIVES": "objectives",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'codesign.search' has no attribute {name!r}")
    return getattr(importlib.import_module(f"codesign.search.{module}"), name)


__all__ = sorted(_EXPORTS)
