"""Multi-objective helpers: non-dominated sorting and crowding (NSGA-II), Pareto fronts, 2-D
hypervolume and the ideal-point choice of one design. Points are rows of an (n, m) array in which
every column is to be MAXIMIZED (negate a column to minimize it)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def dominates(a: np.ndarray, b: np.ndarray) -> bool:
    """a is at least as good as b everywhere and strictly better somewhere (maximization)."""
    return bool(np.all(a >= b) and np.any(a > b))


def non_dominated_sort(points: np.ndarray) -> list[list[int]]:
    """Fronts of row indices, best first (Deb et al. 2002, NSGA-II fast non-dominated sort)."""
    F = np.asarray(points, dtype=float)
    n = len(F)
    if n == 0:
        return []
    ge = np.all(F[:, None, :] >= F[None, :, :], axis=2)
    gt = np.any(F[:, None, :] > F[None, :, :], axis=2)
    dom = ge & gt  # dom[i, j]: i dominates j
    count = dom.sum(axis=0)  # how many dominate j
    fronts: list[list[int]] = []
    current = [int(i) for i in np.flatnonzero(count == 0)]
    while current:
        fronts.append(current)
        nxt = []
        for i in current:
            for j in np.flatnonzero(dom[i]):
                count[j] -= 1
                if count[j] == 0:
                    nxt.append(int(j))
        current = sorted(nxt)
    return fronts


def crowding_distance(points: np.ndarray) -> np.ndarray:
    """NSGA-II crowding distance of each row within its own set: boundary points get infinity,
    others the sum over objectives of the normalized gap between their neighbours."""
    F = np.asarray(points, dtype=float)
    n, m = F.shape if F.ndim == 2 else (len(F), 1)
    dist = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for k in range(m):
        order = np.argsort(F[:, k], kind="stable")
        lo, hi = F[order[0], k], F[order[-1], k]
        dist[order[0]] = dist[order[-1]] = np.inf
        if hi > lo:
            gaps = (F[order[2:], k] - F[order[:-2], k]) / (hi - lo)
            dist[order[1:-1]] += gaps
    return dist


def pareto_mask(points: np.ndarray) -> np.ndarray:
    """True for the rows no other row dominates (duplicates of a front point all stay)."""
    F = np.asarray(points, dtype=float)
    if len(F) == 0:
        return np.zeros(0, dtype=bool)
    ge = np.all(F[:, None, :] >= F[None, :, :], axis=2)
    gt = np.any(F[:, None, :] > F[None, :, :], axis=2)
    return ~np.any(ge & gt, axis=0)


def hypervolume_2d(points: np.ndarray, ref: Sequence[float]) -> float:
    """Area dominated by the points and bounded below by the reference point (both maximized);
    points not better than the reference in both objectives add nothing."""
    F = np.asarray(points, dtype=float).reshape(-1, 2)
    F = F[(F[:, 0] > ref[0]) & (F[:, 1] > ref[1])]
    if len(F) == 0:
        return 0.0
    F = F[np.argsort(-F[:, 0], kind="stable")]  # descending in the first objective
    area, best_y = 0.0, ref[1]
    for x, y in F:
        if y > best_y:
            area += (x - ref[0]) * (y - best_y)
            best_y = y
    return float(area)


def log_normalize(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """log10 of positive values mapped so lo -> 0 and hi -> 1 (FPS spans decades)."""
    v = np.log10(np.maximum(np.asarray(values, dtype=float), 1e-12))
    a, b = np.log10(max(lo, 1e-12)), np.log10(max(hi, 1e-12))
    return (v - a) / (b - a) if b > a else np.zeros_like(v)


def ideal_point_distances(points: np.ndarray, weights: Sequence[float]) -> np.ndarray:
    """Weighted Euclidean distance of every row to the ideal point (the best of every column) after
    min-max normalizing each column over the rows given: 0 at the ideal, sqrt(sum of weights) at
    the nadir. A constant column adds nothing. Pass only the rows that should set the scale."""
    F = np.asarray(points, dtype=float)
    if len(F) == 0:
        return np.zeros(0)
    F = F.reshape(len(F), -1)
    lo, hi = F.min(axis=0), F.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    gap = (hi - F) / span  # 0 at the ideal, 1 at the worst
    return np.sqrt((np.asarray(weights, dtype=float) * gap ** 2).sum(axis=1))


def ideal_point_choice(points: np.ndarray, weights: Sequence[float]) -> int:
    """Index of the row nearest the ideal point (best of every column) by weighted Euclidean
    distance over min-max normalized columns (MENNDL-style selection of one design from a front);
    the first such row on a tie."""
    return int(np.argmin(ideal_point_distances(points, weights)))


__all__ = ["crowding_distance", "dominates", "hypervolume_2d", "ideal_point_choice", "ideal_point_distances",
           "log_normalize", "non_dominated_sort", "pareto_mask"]
