"""MENNDL's view of a search's results (Young et al., ORNL, "Evolving Deep Networks Using HPC", MLHPC
2017, and the MENNDL papers after it): beside accuracy, three computational metrics - inference
time, model size and energy per inference - and, for each, the lowest-metric model, the most
accurate model and the best trade-off (smallest weighted Euclidean distance to the ideal point),
with the lower bound of the metric against accuracy.

Here: inference time is the estimated first-frame latency, model size the bits of the weights,
energy the estimated energy per inference at batch 1 (hw_space.power); the run's own objectives
other than accuracy are added as further metrics. The best trade-off of a metric is taken in the
(accuracy, metric) plane, among the designs on the metric's lower bound: both min-max normalized
over those designs, on the objective's scale (log10 for energy, model bits and FPS, linear for accuracy and latency), weights
TRADE_OFF_WEIGHTS; 0 is the ideal point (best accuracy and best metric), sqrt(2) the worst corner.
Only designs at or above the accuracy floor (twice chance) are considered for the lowest-metric and
best-trade-off picks, as the chooser does (all of them when none reaches it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codesign.search.journal import TrialRecord
from codesign.search.objectives import ACCURACY, ENERGY, LATENCY, MODEL_BITS, Objective, points
from codesign.search.pareto import ideal_point_distances, pareto_mask

MENNDL_METRICS: tuple[Objective, ...] = (LATENCY, MODEL_BITS, ENERGY)  # inference time, model size, energy
TRADE_OFF_WEIGHTS = (1.0, 1.0)  # (accuracy, metric): MENNDL weighs them equally unless told otherwise
ROLES = ("lowest", "most accurate", "best trade-off")


@dataclass(frozen=True)
class Pick:
    """One highlighted design of one metric: its role, the record and its distance to the ideal point."""

    metric: Objective
    role: str
    record: TrialRecord
    distance: float


def metrics_for(objectives: Sequence[Objective]) -> tuple[Objective, ...]:
    """MENNDL's three metrics, then the run's objectives besides accuracy not already among them."""
    names = {o.name for o in MENNDL_METRICS}
    return MENNDL_METRICS + tuple(o for o in objectives if o.name != ACCURACY.name and o.name not in names)


def trade_off_distances(records: Sequence[TrialRecord], metric: Objective) -> np.ndarray:
    """Weighted Euclidean distance of every record to the ideal point of the (accuracy, metric) plane,
    both min-max normalized over these records on their scales."""
    return ideal_point_distances(points(records, (ACCURACY, metric)), TRADE_OFF_WEIGHTS)


def picks(records: Sequence[TrialRecord], metrics: Sequence[Objective], floor: float | None = None) -> list[Pick]:
    """For each metric: its lowest-metric (best, for a maximized one), most accurate and best-trade-off
    design among `records` (scored ones: they have an accuracy and an estimate). Distances are taken
    over the metric's lower bound of the designs at or above the floor, as the chooser normalizes
    over its front (codesign.search.report.choose), so the run's own objective picks the same design."""
    if not records:
        return []
    above = [r for r in records if floor is None or r.accuracy >= floor] or list(records)
    out: list[Pick] = []
    for m in metrics:
        front = sorted(lower_bound(above, m), key=lambda r: -r.accuracy)  # on a tie the more accurate wins
        dist = trade_off_distances(front, m)
        by_id = {id(r): float(d) for r, d in zip(front, dist)}
        # lowest metric; ties: the more accurate
        lowest = max(above, key=lambda r: (m.maximized(m.of(r), scaled=False), r.accuracy))
        # most accurate over every design; ties: the better metric
        accurate = max(records, key=lambda r: (r.accuracy, m.maximized(m.of(r), scaled=False)))
        k = min(range(len(front)), key=lambda i: (round(float(dist[i]), 9), i))
        for role, rec in zip(ROLES, (lowest, accurate, front[k])):
            d = by_id.get(id(rec))
            if d is None:  # not on the bound (a tie, or below the floor): measured on the same scale
                d = float(trade_off_distances([*front, rec], m)[-1])
            out.append(Pick(m, role, rec, d))
    return out


def lower_bound(records: Sequence[TrialRecord], metric: Objective) -> list[TrialRecord]:
    """The designs on the lower bound of the metric against accuracy (no design is both more accurate
    and better in the metric), by increasing metric."""
    if not records:
        return []
    mask = pareto_mask(points(records, (ACCURACY, metric), scaled=False))
    front = [r for r, keep in zip(records, mask) if keep]
    return sorted(front, key=lambda r: -metric.maximized(metric.of(r), scaled=False))


def _cell(o: Objective, r: TrialRecord) -> str:
    value = o.of(r)
    return "-" if value is None else o.show(value)


def render_table(chosen: Sequence[Pick], metrics: Sequence[Objective]) -> str:
    """One markdown row per (metric, role) with every metric of the design picked."""
    columns = (ACCURACY, *metrics)
    head = ["metric", "model", "#", *[f"{o.label} ({o.short_direction})" for o in columns], "distance to ideal"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for p in chosen:
        role = f"lowest {p.metric.label}" if p.role == "lowest" and not p.metric.maximize else \
            f"highest {p.metric.label}" if p.role == "lowest" else p.role
        cells = [p.metric.label, role, str(p.record.number), *[_cell(o, p.record) for o in columns], f"{p.distance:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_lower_bounds(out_dir: Path, records: Sequence[TrialRecord], metrics: Sequence[Objective],
                      chosen: Sequence[Pick], title: str = "") -> list[Path]:
    """One PNG per metric (menndl_<name>.png): every design's metric against accuracy (grey), the lower
    bound drawn as a staircase, the three picks marked. Written atomically; returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    marks = {"lowest": ("v", "tab:green"), "most accurate": ("^", "tab:blue"), "best trade-off": ("*", "gold")}
    paths = []
    for m in metrics:
        fig, ax = plt.subplots(figsize=(6.5, 4.2), dpi=110)
        xs = [m.of(r) for r in records]
        ax.scatter(xs, [r.accuracy for r in records], s=14, c="0.7", label="trained designs")
        bound = sorted(lower_bound(records, m), key=m.of)  # left to right
        if bound:  # a minimized metric's bound holds from each point rightwards, a maximized one's leftwards
            ax.step([m.of(r) for r in bound], [r.accuracy for r in bound], where="pre" if m.maximize else "post",
                    c="navy", lw=1.2, label=f"lower bound of {m.label} per accuracy")
        for p in (p for p in chosen if p.metric.name == m.name):
            shape, color = marks[p.role]
            ax.scatter([m.of(p.record)], [p.record.accuracy], s=140 if shape == "*" else 60, marker=shape, c=color,
                       edgecolors="k", zorder=5, label=f"{p.role} (#{p.record.number})")
        if m.scale == "log10" and all(x and x > 0 for x in xs):
            ax.set_xscale("log")
        ax.set_xlabel(f"{m.label} ({m.unit}, analytical estimate)" if m.unit else m.label)
        ax.set_ylabel("test accuracy")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
        if title:
            ax.set_title(f"{title}: {m.label} against accuracy", fontsize=9)
        fig.tight_layout()
        path = out_dir / f"menndl_{m.name}.png"
        tmp = path.with_name(f".{path.name}.tmp.png")
        out_dir.mkdir(parents=True, exist_ok=True)
        fig.savefig(tmp)
        plt.close(fig)
        tmp.replace(path)
        paths.append(path)
    return paths


__all__ = ["MENNDL_METRICS", "Pick", "ROLES", "TRADE_OFF_WEIGHTS", "lower_bound", "metrics_for", "picks",
           "plot_lower_bounds", "render_table", "trade_off_distances"]
