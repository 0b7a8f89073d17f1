"""Quantization-aware training on CPU with a proxy budget: the accuracy signal of the search.

Deterministic for a seed (weights, subset, validation split and batch order all come from it),
early stopping on a validation split carved from the training set, and a NaN/inf loss ends the
run with accuracy 0 and a reason instead of crashing.
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from hw_space.design import Network
from hw_space.errors import CodesignError
from quant.build import QuantNet, build
from quant.data import Dataset, check_design_matches, load_dataset

LR_BINARY = 2e-2   # Adam learning rate when any weight or activation is 1 bit
LR_DEFAULT = 3e-3
EVAL_BATCH = 1024

ProgressFn = Callable[[int, float, "float | None"], None]


@dataclass(frozen=True)
class Budget:
    """How much training one candidate gets. lr None picks LR_BINARY or LR_DEFAULT from the bits;
    patience 0 (the default) disables early stopping and the validation split: on digits, stopping on a
    small, noisy validation set before the one-cycle schedule anneals cost binarized networks 5-10 points.
    threads defaults to 1: these networks gain little from a second thread (4,640 vs 4,420 images/s on an
    idle 2-core machine), while on a busy one 2 threads spin against each other (93 s vs 9 s measured).
    threads None keeps torch's setting."""

    epochs: int = 15
    batch_size: int = 64
    lr: float | None = None
    subset: float = 1.0
    patience: int = 0
    seed: int = 0
    threads: int | None = 1
    val_fraction: float = 0.1
    max_seconds: float | None = None

    def validate(self) -> None:
        """One CodesignError line for a budget that cannot run."""
        checks = [(self.epochs >= 1, "epochs must be >= 1"), (self.batch_size >= 2, "batch_size must be >= 2"),
                  (self.lr is None or (math.isfinite(self.lr) and self.lr > 0), "lr must be a positive number"),
                  (0.0 < self.subset <= 1.0, "subset must be a fraction in (0, 1]"),
                  (self.patience >= 0, "patience must be >= 0"),
                  (self.threads is None or self.threads >= 1, "threads must be >= 1"),
                  (0.0 < self.val_fraction < 1.0, "val_fraction must be in (0, 1)"),
                  (self.max_seconds is None or self.max_seconds > 0, "max_seconds must be > 0")]
        for ok, message in checks:
            if not ok:
                raise CodesignError(f"training budget: {message}")


@dataclass(frozen=True)
class EpochStats:
    """Mean training loss and validation accuracy (None without a validation split) of one epoch."""

    epoch: int
    loss: float
    val_accuracy: float | None


@dataclass
class TrainResult:
    """Outcome of one QAT run; `model` is the trained (best-validation) model in eval mode."""

    accuracy: float
    epochs: int
    train_seconds: float
    model: QuantNet
    reason: str
    val_accuracy: float | None = None
    test_samples: int = 0
    history: list[EpochStats] = field(default_factory=list)


def default_lr(network: Network) -> float:
    """Adam learning rate for a network: binarized layers need larger steps to flip signs."""
    bits = [network.input.bits] + [layer.weight_bits for layer in network.compute_layers]
    bits += [layer.act_bits for layer in network.compute_layers if layer.act_bits is not None]
    return LR_BINARY if min(bits) == 1 else LR_DEFAULT


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so a run repeats exactly."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy in eval mode, in large batches (0 for an empty set)."""
    if len(y) == 0:
        return 0.0
    logits = predict(model, x)
    return float((logits.argmax(dim=1) == y).float().mean().item())


def predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Logits of the model in eval mode (restores the previous mode)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return torch.cat([model(x[i:i + EVAL_BATCH]) for i in range(0, len(x), EVAL_BATCH)])
    finally:
        model.train(was_training)


def _batches(order: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """Split an index order into batches; a last batch of one sample joins the previous (BatchNorm needs 2)."""
    parts = list(torch.split(order, batch_size))
    if len(parts) > 1 and len(parts[-1]) < 2:
        parts[-2] = torch.cat([parts[-2], parts.pop()])
    return parts


def _split(n: int, budget: Budget, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded subset of the training indices, then a validation part when early stopping is on."""
    order = torch.randperm(n, generator=gen)
    keep = max(2, int(round(n * budget.subset)))
    order = order[:keep]
    if budget.patience == 0:
        return order, order[:0]
    n_val = max(1, int(round(len(order) * budget.val_fraction)))
    if len(order) - n_val < 2:
        raise CodesignError(f"training budget: subset {budget.subset} leaves too few training samples ({len(order)})")
    return order[n_val:], order[:n_val]


def train(network: Network, dataset: Dataset | str, budget: Budget | None = None,
          progress: ProgressFn | None = None) -> TrainResult:
    """Train `network` on `dataset` (a Dataset or a name) with QAT and return its test accuracy.

    progress(epoch, mean_loss, val_accuracy) is called after every epoch (epochs count from 1)."""
    budget = budget or Budget()
    budget.validate()
    data = load_dataset(dataset) if isinstance(dataset, str) else dataset
    check_design_matches(network, data)
    old_threads = torch.get_num_threads()
    if budget.threads is not None:
        torch.set_num_threads(budget.threads)
    try:
        return _train(network, data, budget, progress)
    finally:
        torch.set_num_threads(old_threads)


def _train(network: Network, data: Dataset, budget: Budget, progress: ProgressFn | None) -> TrainResult:
    start = time.perf_counter()
    seed_everything(budget.seed)
    gen = torch.Generator().manual_seed(budget.seed)
    model = build(network)
    train_idx, val_idx = _split(len(data.y_train), budget, gen)
    x_tr, y_tr = data.x_train[train_idx], data.y_train[train_idx]
    x_val, y_val = data.x_train[val_idx], data.y_train[val_idx]
    lr = budget.lr if budget.lr is not None else default_lr(network)
    steps = len(_batches(torch.arange(len(y_tr)), budget.batch_size))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, epochs=budget.epochs,
                                                   steps_per_epoch=steps, pct_start=0.15)
    loss_fn = nn.CrossEntropyLoss()
    history: list[EpochStats] = []
    best_state, best_val, since_best = None, -1.0, 0
    reason = f"completed {budget.epochs} epochs"
    diverged = False
    epoch = 0
    for epoch in range(1, budget.epochs + 1):
        model.train()
        total, count = 0.0, 0
        for idx in _batches(torch.randperm(len(y_tr), generator=gen), budget.batch_size):
            loss = loss_fn(model(x_tr[idx]), y_tr[idx])
            value = loss.item()
            if not math.isfinite(value):
                diverged = True
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += value * len(idx)
            count += len(idx)
        if diverged:
            reason = f"loss became {value} in epoch {epoch}; stopped"
            break
        val_acc = evaluate(model, x_val, y_val) if len(val_idx) else None
        history.append(EpochStats(epoch, total / max(count, 1), val_acc))
        if progress is not None:
            progress(epoch, total / max(count, 1), val_acc)
        if val_acc is not None:
            if val_acc > best_val:
                best_val, since_best, best_state = val_acc, 0, copy.deepcopy(model.state_dict())
            else:
                since_best += 1
                if since_best >= budget.patience:
                    reason = f"early stop: no validation gain for {budget.patience} epochs (best {best_val:.4f})"
                    break
        if budget.max_seconds is not None and time.perf_counter() - start > budget.max_seconds:
            reason = f"time limit of {budget.max_seconds:g} s reached after {epoch} epochs"
            break
    if best_state is not None and not diverged:
        model.load_state_dict(best_state)
    model.eval()
    seconds = time.perf_counter() - start
    if diverged:
        return TrainResult(accuracy=0.0, epochs=epoch, train_seconds=seconds, model=model, reason=reason,
                           test_samples=len(data.y_test), history=history)
    accuracy = evaluate(model, data.x_test, data.y_test)
    return TrainResult(accuracy=accuracy, epochs=epoch, train_seconds=seconds, model=model, reason=reason,
                       val_accuracy=best_val if best_state is not None else None,
                       test_samples=len(data.y_test), history=history)
