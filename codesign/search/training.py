"""Training one candidate network: the proxy budget every candidate gets, QAT with quant.train, the
checkpoint kept per network, and the job (plain values in and out) an executor runs."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codesign.search.executors import exit_if_orphaned
from hw_space.design import Network, design_from_dict
from hw_space.errors import CodesignError
from hw_space.files import atomic_output
from quant.train import Budget


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
    """QAT one network with quant.train; keep its checkpoint at model_path when given (a failed
    write, e.g. a full disk, is one CodesignError line naming the file)."""
    import quant

    data = quant.load_dataset(dataset, data_dir)
    start = time.perf_counter()
    result = quant.train(network, data, budget)
    seconds = time.perf_counter() - start
    if model_path is not None:
        exit_if_orphaned()  # a worker whose search is gone writes nothing into its run folder
        try:
            quant.save_checkpoint(result.model, network, model_path)
        except (OSError, RuntimeError) as exc:  # torch reports a full disk as RuntimeError("... unexpected pos")
            raise _unwritable(exc, model_path) from None
    return TrainOutcome(float(result.accuracy), seconds, int(result.epochs), str(result.reason))


def _unwritable(exc: BaseException, model_path: Path) -> CodesignError:
    return CodesignError(f"cannot write the model checkpoint: {_write_failure(exc, model_path)}; the run stays "
                         "resumable (free the space or fix the folder, then add --resume)", source=str(model_path))


def _write_failure(exc: BaseException, path: Path) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    try:
        free = shutil.disk_usage(Path(path).parent).free
    except OSError:
        free = None
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return "No space left on device" if free is not None and free < (1 << 20) else first[:200]


def train_job(trainer: Trainer, network_dict: dict[str, Any], dataset: str, data_dir: str | None,
              budget: Budget, model_path: str | None) -> TrainOutcome:
    """Train one network given as plain values, so the job can be sent to a worker process."""
    exit_if_orphaned()
    network = design_from_dict({"network": network_dict}).network
    return trainer(network, dataset, data_dir, budget, Path(model_path) if model_path else None)


def train_job_detached(trainer: Trainer, network_dict: dict[str, Any], dataset: str, data_dir: str | None,
                       budget: Budget, keep_model: bool) -> tuple[TrainOutcome, bytes | None]:
    """train_job for a worker that may not see the run folder (a node of a Ray cluster): the checkpoint
    is written to a temporary folder of the worker and comes back as bytes, for `keep_checkpoint`."""
    with tempfile.TemporaryDirectory(prefix="codesign-train-") as tmp:
        path = Path(tmp) / "model.pt" if keep_model else None
        outcome = train_job(trainer, network_dict, dataset, data_dir, budget, str(path) if path else None)
        return outcome, path.read_bytes() if path is not None and path.exists() else None


def keep_checkpoint(result: tuple[TrainOutcome, bytes | None], model_path: Path | None) -> TrainOutcome:
    """Write the checkpoint bytes a detached training returned to model_path (atomically; a failed write
    is the same CodesignError line as in train_network); its outcome."""
    outcome, data = result
    if model_path is not None and data is not None:
        try:
            with atomic_output(model_path) as tmp:
                tmp.write_bytes(data)
        except OSError as exc:
            raise _unwritable(exc, model_path) from None
    return outcome


__all__ = ["TrainOutcome", "Trainer", "keep_checkpoint", "proxy_budget", "train_job", "train_job_detached",
           "train_network", "train_threads"]
