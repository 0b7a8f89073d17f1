"""The space's `rule: htas`: channel and feature counts chosen from the board's own latency curve.

HTAS (Jiang, Wang, Zhu, "Hardware-aware transformable architecture search with efficient search
space", ICME 2020) measures a layer's latency m(x) over every count x of an expanded range (e times
the base width), fits f(x) = k*x^alpha + b, scores each count by how much faster it runs than the
fit predicts, s(x) = f(x) - m(x), splits the range into g groups and keeps each group's best count.
Here the "measurement" is the cost model on the run's board (an estimate, not a board measurement):

- Reference network: the deepest network of the space (its most conv blocks, each followed by a
  2x2 max-pool while the map is at least 2x2 and the space offers pooling, its most hidden dense
  layers, the classifier), every conv at the largest kernel, every other width at its field's
  largest choice, weights and activations at the middle of the bit choices (the upper median).
- m(x) at a position (conv block i, hidden dense layer j): the cycles of the layer at that position
  writing x channels (features) plus the cycles of the next compute layer reading them, each at
  the fastest folding whose kernels fit the layer's share of the board (hw_space.width_sweep): the
  board's resources times the default max-util 0.85, divided by the reference network's compute
  layers. Counts that fit no folding in the share have m(x) = inf and score -inf.
- The fit covers every count 1..e*max that fits; the groups split the rule's own min..max into g
  runs of consecutive counts (as equal as can be): e widens what the fit sees, min..max bound what
  the search may pick. A group keeps its best-scoring count (the larger on a tie), or its smallest
  count when none of its counts fits the share.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from hw_space.boards import Board, load_board
from hw_space.design import InputSpec, Layer, Network
from hw_space.errors import CodesignError
from hw_space.model import DEFAULT_MAX_UTIL
from hw_space.width_sweep import share_limit, sweep

if TYPE_CHECKING:
    from codesign.search.space import SearchSpace

DEFAULT_E = 2
DEFAULT_G = 8
MAX_MEASURED = 1024  # e*max: every count up to it is scored, so the sweep stays a second or two
_ALPHA_RANGE = (0.05, 5.0)


# ---------------------------------------------------------------- the fit

@dataclass(frozen=True)
class PowerFit:
    """f(x) = k * x^alpha + b, fitted by least squares."""

    k: float
    alpha: float
    b: float

    def __call__(self, x) -> np.ndarray:
        return self.k * np.asarray(x, dtype=float) ** self.alpha + self.b


def _linear_fit(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[float, float, float]:
    """(k, b, squared error) of the least-squares line y ~ k * x^alpha + b."""
    a = np.stack([x ** alpha, np.ones_like(x)], axis=1)
    (k, b), *_ = np.linalg.lstsq(a, y, rcond=None)
    err = y - (k * x ** alpha + b)
    return float(k), float(b), float(err @ err)


def fit_power_law(x, y, alpha: float | None = None) -> PowerFit:
    """Least-squares k*x^alpha + b through (x, y). Given alpha, k and b are linear; otherwise alpha
    is the minimum of the profiled error over [0.05, 5]: a log-spaced grid, then golden-section search
    between the grid neighbours of the best point."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if alpha is not None:
        k, b, _ = _linear_fit(x, y, alpha)
        return PowerFit(k, float(alpha), b)
    grid = np.geomspace(*_ALPHA_RANGE, 120)
    errors = [_linear_fit(x, y, a)[2] for a in grid]
    i = int(np.argmin(errors))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
    ratio = (np.sqrt(5) - 1) / 2
    c, d = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fc, fd = _linear_fit(x, y, c)[2], _linear_fit(x, y, d)[2]
    for _ in range(80):
        if fc < fd:
            hi, d, fd = d, c, fc
            c = hi - ratio * (hi - lo)
            fc = _linear_fit(x, y, c)[2]
        else:
            lo, c, fc = c, d, fd
            d = lo + ratio * (hi - lo)
            fd = _linear_fit(x, y, d)[2]
    best = (lo + hi) / 2
    k, b, _ = _linear_fit(x, y, best)
    return PowerFit(k, float(best), b)


# ---------------------------------------------------------------- scores and groups

def groups(lo: int, hi: int, g: int) -> list[np.ndarray]:
    """lo..hi split into min(g, hi - lo + 1) runs of consecutive counts, as equal as can be."""
    counts = np.arange(lo, hi + 1)
    return [part for part in np.array_split(counts, min(g, counts.size)) if part.size]


@dataclass(frozen=True)
class Choice:
    """The HTAS choices of one position: the measured curve, its fit, the scores and the picks."""

    slot: str
    counts: np.ndarray  # 1..e*max
    measured: np.ndarray  # m(x), cycles (inf: fits no folding in the share)
    fit: PowerFit | None  # None when fewer than 3 counts fit (then s(x) = -m(x))
    scores: np.ndarray  # s(x)
    chosen: tuple[int, ...]
    groups: tuple[tuple[int, int], ...]  # (first, last) count of each group
    reference: str  # what was measured, in words

    def score(self, x: int) -> float:
        return float(self.scores[x - 1])


def choose(measured: np.ndarray, lo: int, hi: int, g: int, alpha: float | None = None
           ) -> tuple[PowerFit | None, np.ndarray, tuple[int, ...], tuple[tuple[int, int], ...]]:
    """(fit, scores, chosen counts, groups) for m(x) given at x = 1..len(measured)."""
    counts = np.arange(1, len(measured) + 1, dtype=float)
    ok = np.isfinite(measured)
    fit = None
    if ok.sum() >= (2 if alpha is not None else 3):
        fit = fit_power_law(counts[ok], measured[ok], alpha)
        scores = np.where(ok, fit(counts) - np.where(ok, measured, 0), -np.inf)
    else:
        scores = np.where(ok, -np.where(ok, measured, 0), -np.inf)
    chosen, bounds = [], []
    for part in groups(lo, hi, g):
        s = scores[part - 1]
        if np.isfinite(s).any():
            best = part[len(part) - 1 - int(np.argmax(s[::-1]))]  # the larger count on a tie
        else:
            best = part[0]
        chosen.append(int(best))
        bounds.append((int(part[0]), int(part[-1])))
    return fit, scores, tuple(chosen), tuple(bounds)


# ---------------------------------------------------------------- the reference network

def _middle(values) -> int:
    return sorted(values)[len(values) // 2]


def _widest(spec) -> int:
    return int(spec.rule["max"]) if spec.rule else max(spec.values)


def reference_network(space: SearchSpace) -> Network:
    """The deepest network of the space at its widest (see the module docstring)."""
    ctx = space.context
    wb, ab, k = _middle(space.weight_bits.values), _middle(space.act_bits.values), max(space.kernel.values)
    pool = True in space.pool.values
    layers, size = [], min(ctx.height, ctx.width)
    for i in range(space.max_conv):
        layers.append(Layer(name=f"conv{i}", type="conv", out_channels=_widest(space.channels), kernel=k, stride=1,
                            padding=k // 2, weight_bits=wb, act_bits=ab))
        if pool and size >= 2:
            layers.append(Layer(name=f"pool{i}", type="maxpool", kernel=2, stride=2))
            size //= 2
    for j in range(space.max_dense):
        layers.append(Layer(name=f"fc{j}", type="dense", out_features=_widest(space.dense_features), weight_bits=wb,
                            act_bits=ab))
    layers.append(Layer(name="cls", type="dense", out_features=ctx.num_classes, weight_bits=wb, act_bits=None))
    return Network(input=InputSpec(ctx.channels, ctx.height, ctx.width, space.input_bits), layers=tuple(layers))


def _width_of(layer: Layer, x: int) -> Layer:
    return replace(layer, out_channels=x) if layer.type == "conv" else replace(layer, out_features=x)


@lru_cache(maxsize=128)
def _curve(producer: Layer, source: InputSpec, consumer: Layer, after: tuple[int, int, int], n: int, board: Board,
           share: float) -> np.ndarray:
    """m(x), x = 1..n: the producer writing x plus the consumer reading x (after: its input's other
    dimensions and bits), each at its fastest folding within `share` of the board."""
    limit = share_limit(board, share)
    xs = range(1, n + 1)
    made = sweep([(_width_of(producer, x), source) for x in xs], board, limit)
    h, w, bits = after
    read = sweep([(consumer, InputSpec(x, h, w, bits)) for x in xs], board, limit)
    return made + read


def position_choice(space: SearchSpace, field: str, slot: str, board: Board) -> Choice:
    """The HTAS choices of one position ("conv0", "fc1" ...) of a rule field (channels, dense_features)."""
    rule = getattr(space, field).rule
    lo, hi, e, g, alpha = rule["min"], rule["max"], rule["e"], rule["g"], rule.get("alpha")
    net = reference_network(space)
    shapes = net.shapes()
    names = [layer.name for layer in net.layers]
    j = names.index(slot)
    nxt = next(i for i in range(j + 1, len(net.layers)) if net.layers[i].is_compute)
    ishape, after = shapes[j][0], shapes[nxt][0]
    bits = net.input_bits_of(j)  # the network input's bits, or the activations of the layer before
    n = e * hi
    measured = _curve(net.layers[j], InputSpec(ishape.channels, ishape.height, ishape.width, bits), net.layers[nxt],
                      (after.height, after.width, net.layers[j].act_bits), n, board,
                      DEFAULT_MAX_UTIL / len(net.compute_layers))
    fit, scores, chosen, bounds = choose(measured, lo, hi, g, alpha)
    consumer = net.layers[nxt]
    reads = f"{consumer.name} ({consumer.type}" + (f" {consumer.kernel}x{consumer.kernel}" if consumer.type == "conv" else "") \
        + f" -> {consumer.out_channels or consumer.out_features}, reading x channels of {after.height}x{after.width})"
    layer = net.layers[j]
    kind = f"{layer.kernel}x{layer.kernel} conv" if layer.type == "conv" else "dense"
    reference = (f"{slot}: {kind} on {ishape.channels}x{ishape.height}x{ishape.width} writing x, plus {reads}; "
                 f"W{layer.weight_bits}A{layer.act_bits}, each within 1/{len(net.compute_layers)} of "
                 f"{DEFAULT_MAX_UTIL:.0%} of {board.name}")
    return Choice(slot, np.arange(1, n + 1), measured, fit, scores, chosen, bounds, reference)


def slots_of(space: SearchSpace, field: str) -> list[str]:
    """The positions a rule field decides: every conv block (channels) or hidden dense layer."""
    if field == "channels":
        return [f"conv{i}" for i in range(space.max_conv)]
    return [f"fc{j}" for j in range(space.max_dense)]


def context_key(space: SearchSpace) -> tuple[Any, ...]:
    """What the resolved choices depend on beyond the space: the board and the dataset's frame."""
    ctx = space.context
    return (ctx.board, ctx.channels, ctx.height, ctx.width, ctx.num_classes)


def board_of(space: SearchSpace) -> Board:
    try:
        return load_board(space.context.board)
    except CodesignError as exc:
        raise CodesignError(f"the htas rule measures on the run's board: {exc}") from None


def choices(space: SearchSpace, field: str) -> list[Choice]:
    """The HTAS choices of every position of a rule field (measured now, cached per process)."""
    board = board_of(space)
    return [position_choice(space, field, slot, board) for slot in slots_of(space, field)]


__all__ = ["Choice", "PowerFit", "choices", "choose", "context_key", "fit_power_law", "groups", "position_choice",
           "reference_network", "slots_of"]
