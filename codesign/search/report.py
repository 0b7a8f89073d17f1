"""Search results: the Pareto front (JSON, CSV, PNG), the choice of one design, and report.md.

The front is over the run's objectives (codesign.search.objectives; default accuracy (max) and FPS
(max)) of every trained or cached candidate; the resource-aware front (those objectives plus LUT,
BRAM18 and DSP) is an extra table and pareto.json key. One design is chosen by a rule (`--choose`):
best-trade-off (MENNDL: nearest the ideal point of the front, normalized over the designs at or
above an accuracy floor of twice chance), most-accurate, fastest or smallest. With a target, only
designs meeting it are considered, and the default rule is most-accurate.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from codesign.search.journal import TrialRecord
from codesign.search.menndl import TRADE_OFF_WEIGHTS, metrics_for, picks, render_table
from codesign.search.objectives import (
    DEFAULT_OBJECTIVES,
    FRONT_RESOURCES,
    Objective,
    and_list,
    describe,
    describe_grouped,
    points,
    with_resources,
)
from codesign.search.pareto import hypervolume_2d, ideal_point_distances, pareto_mask
from hw_space.design import atomic_write_text

CHOOSE_RULES = ("best-trade-off", "most-accurate", "fastest", "smallest")
DEFAULT_CHOOSE = "best-trade-off"
# weight of every objective (on its scale: log10 FPS) in the best-trade-off distance (MENNDL: equal by default)
TRADE_OFF_WEIGHT = 1.0
FLOOR_TIMES_CHANCE = 2.0  # designs below this multiple of chance accuracy are not chosen nor normalized over
CSV_FIELDS = ("number", "network_hash", "accuracy", "fps", "latency_us", "LUT", "FF", "BRAM18", "URAM", "DSP",
              "power_w", "energy_mj", "model_bits", "reward", "status", "summary")


def summary(design: dict[str, Any]) -> str:
    """A one-line description of a design: layers with widths and bits, the template and folding."""
    parts = []
    for layer in design["network"]["layers"]:
        if layer["type"] == "conv":
            parts.append(f"c{layer['out_channels']}k{layer['kernel']}w{layer['weight_bits']}a{layer.get('act_bits', '-')}")
        elif layer["type"] == "dense":
            parts.append(f"d{layer['out_features']}w{layer['weight_bits']}"
                         + (f"a{layer['act_bits']}" if "act_bits" in layer else ""))
        else:
            parts.append("p")
    hw = design["hardware"]
    if hw.get("template") == "tiled":
        e = hw.get("engine", {})
        fold = f"tiled {e.get('tm')}x{e.get('tn')}x{e.get('tr')}x{e.get('tc')}"
    else:
        fold = "dataflow " + " ".join(f"{v.get('pe', 1)}/{v.get('simd', 1)}" for v in hw.get("layers", {}).values())
    return "-".join(parts) + f" @ {fold}"


def scored(records: Sequence[TrialRecord]) -> list[TrialRecord]:
    """Trained or cached candidates (they have an accuracy), one per distinct design, first kept."""
    seen, out = set(), []
    for r in records:
        if r.status == "pruned" or r.accuracy is None or not r.estimate:
            continue
        key = json.dumps(r.design, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def _front(records: Sequence[TrialRecord], objectives: Sequence[Objective]) -> list[TrialRecord]:
    cands = scored(records)
    if not cands:
        return []
    mask = pareto_mask(points(cands, objectives))
    return sorted((r for r, m in zip(cands, mask) if m), key=lambda r: (-r.accuracy, -r.fps))


def pareto_front(records: Sequence[TrialRecord],
                 objectives: Sequence[Objective] = DEFAULT_OBJECTIVES) -> list[TrialRecord]:
    """The distinct designs no other beats in every objective (default accuracy and FPS), by
    decreasing accuracy."""
    return _front(records, objectives)


def resource_front(records: Sequence[TrialRecord],
                   objectives: Sequence[Objective] = DEFAULT_OBJECTIVES) -> list[TrialRecord]:
    """The distinct designs non-dominated over the objectives and LUT, BRAM18 and DSP, by decreasing
    accuracy (a superset of the front; large, so shown as an extra table)."""
    return _front(records, with_resources(objectives))


def front_name(objectives: Sequence[Objective]) -> str:
    """'accuracy-FPS': how the report names a front over these objectives."""
    return "-".join(o.label for o in objectives)


def accuracy_floor(num_classes: int | None) -> float | None:
    """Twice chance accuracy (2 / classes): below it a design has learned little, whatever its speed."""
    return FLOOR_TIMES_CHANCE / num_classes if num_classes else None


def board_share(r: TrialRecord) -> tuple[float, float]:
    """How much of the board a design takes: the utilization of its most used resource (LUT, FF,
    BRAM18, URAM or DSP, each as a share of the board's capacity), then the sum of the shares."""
    est = r.estimate or {}
    util = {k: float(v) for k, v in (est.get("utilization") or {}).items()}
    if not util:  # older records: shares from the resources and the board's capacity
        cap, res = est.get("capacity") or {}, est.get("resources") or {}
        util = {k: float(res.get(k, 0)) / float(cap[k]) for k in cap if cap[k]}
    if not util:
        return float(est.get("resources", {}).get("LUT", 0)), 0.0
    return max(util.values()), sum(util.values())


@dataclass
class Choice:
    """The chosen design, the rule that chose it and one sentence why."""

    record: TrialRecord | None
    why: str
    rule: str = ""
    floor: float | None = None


def _pct(x: float) -> str:
    return f"{x:.0%}" if abs(x * 100 - round(x * 100)) < 1e-9 else f"{x:.1%}"


def choose(records: Sequence[TrialRecord], target_fps: float | None = None, target_latency_us: float | None = None,
           rule: str | None = None, num_classes: int | None = None, floor: float | None = None,
           objectives: Sequence[Objective] = DEFAULT_OBJECTIVES) -> Choice:
    """One design by `rule` (CHOOSE_RULES; None: most-accurate when a target is given, else
    best-trade-off, which reads the front over `objectives`). With a target only the designs
    meeting it are considered (all, with a note, when none does). fastest, smallest and
    best-trade-off consider only designs at or above the accuracy floor (default twice chance,
    2 / num_classes; all, with a note, when none reaches it)."""
    targeted = target_fps is not None or target_latency_us is not None
    if rule is None:
        rule = "most-accurate" if targeted else DEFAULT_CHOOSE
    if rule not in CHOOSE_RULES:
        raise ValueError(f"--choose {rule!r} is not allowed; allowed: {', '.join(CHOOSE_RULES)}")
    floor = accuracy_floor(num_classes) if floor is None else floor
    pool = scored(records)
    if not pool:
        return Choice(None, "no candidate was trained (every design was pruned)", rule, floor)
    notes = []
    if targeted:
        what = f"{target_fps:,.0f} FPS" if target_fps is not None else f"{target_latency_us:g} us latency"
        ok = [r for r in pool if (target_fps is None or r.fps >= target_fps)
              and (target_latency_us is None or float(r.estimate["latency_us"]) <= target_latency_us)]
        if ok:
            pool = ok
            notes.append(f"among the {len(ok)} designs meeting the target of {what}")
        else:
            notes.append(f"no trained design meets the target of {what}, so among all {len(pool)} trained designs")
    if floor is not None and rule != "most-accurate":
        above = [r for r in pool if r.accuracy >= floor]
        below = len(pool) - len(above)
        chance = f"{_pct(floor)} accuracy floor ({FLOOR_TIMES_CHANCE:g} x chance" + \
            (f" for {num_classes} classes)" if num_classes else ")")
        if not above:
            notes.append(f"no design reaches the {chance}, so all of them are considered")
        else:
            pool = above
            if below:
                notes.append(f"{below} design(s) below the {chance} left out")
    how = f" ({'; '.join(notes)})" if notes else ""
    if rule == "most-accurate":
        best = max(pool, key=lambda r: (r.accuracy, r.fps))
        why = f"the most accurate design{how}, ties broken by FPS"
    elif rule == "fastest":
        best = max(pool, key=lambda r: (r.fps, r.accuracy))
        why = f"the fastest design{how}, ties broken by accuracy"
    elif rule == "smallest":
        best = min(pool, key=lambda r: (*board_share(r), -r.accuracy, -r.fps))
        why = (f"the design taking the smallest share of the board{how}: {_pct(board_share(best)[0])} of its most "
               "used resource (the largest of its LUT, FF, BRAM18, URAM and DSP utilizations; ties: the smaller "
               "sum of utilizations, then accuracy)")
    else:
        front = pareto_front(pool, objectives)  # sorted by decreasing accuracy: on a tie the more accurate wins
        weights = [TRADE_OFF_WEIGHT] * len(objectives)
        dist = ideal_point_distances(points(front, objectives), weights)
        k = min(range(len(front)), key=lambda i: (round(float(dist[i]), 9), i))
        best = front[k]
        ideal = ", ".join(o.show(o.best(o.of(r) for r in front)) for o in objectives)
        why = (f"the {front_name(objectives)} front design nearest the ideal point{how}: the ideal is ({ideal}), "
               f"{and_list([f'the best {o.label}' for o in objectives])} of the {len(front)} front designs considered, "
               f"and this design is at weighted Euclidean distance {float(dist[k]):.3f} from it after min-max "
               f"normalizing {and_list([o.scaled_label for o in objectives])} over those designs (MENNDL; weights "
               f"{and_list([f'{w:g}' for w in weights])})")
    return Choice(best, why, rule, floor)


def row(r: TrialRecord) -> dict[str, Any]:
    res = r.estimate["resources"]
    return {"number": r.number, "network_hash": r.network_hash, "accuracy": round(float(r.accuracy), 6),
            "fps": round(r.fps, 3), "latency_us": round(float(r.estimate["latency_us"]), 3),
            **{k: int(res[k]) for k in ("LUT", "FF", "BRAM18", "URAM", "DSP")},
            "power_w": round(float(r.estimate.get("power_w", 0.0)), 6),
            "energy_mj": float(f"{float(r.estimate.get('energy_mj', 0.0)):.6g}"),
            "model_bits": int(r.estimate.get("model_bits", 0)), "reward": round(r.reward, 6),
            "status": r.status, "summary": summary(r.design)}


def write_pareto(run_dir: Path, front: Sequence[TrialRecord], resources: Sequence[TrialRecord] | None = None,
                 objectives: Sequence[Objective] = DEFAULT_OBJECTIVES) -> None:
    """pareto.json and pareto.csv, both written atomically: the front over `objectives` (rows with
    the full designs), and in pareto.json also the resource-aware front under `resource_front`."""
    rows = [row(r) for r in front]
    data: dict[str, Any] = {"objectives": {o.name: o.short_direction for o in objectives},
                            "front": [{**x, "design": r.design} for x, r in zip(rows, front)]}
    if resources is not None:
        data["resource_front"] = {"objectives": {o.name: o.short_direction for o in with_resources(objectives)},
                                  "front": [{**row(r), "design": r.design} for r in resources]}
    atomic_write_text(run_dir / "pareto.json", json.dumps(data, indent=2) + "\n")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(run_dir / "pareto.csv", buf.getvalue())


def plot_pareto(path: Path, records: Sequence[TrialRecord], front: Sequence[TrialRecord],
                chosen: TrialRecord | None = None, title: str = "", floor: float | None = None,
                objectives: Sequence[Objective] = DEFAULT_OBJECTIVES) -> None:
    """Accuracy vs FPS (log x): every candidate grey, pruned ones as red x at accuracy 0, the front
    drawn (with its staircase when it is the accuracy-FPS front, i.e. over the plotted plane), the
    chooser's accuracy floor dashed, the chosen design starred."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    done = [r for r in records if r.status != "pruned" and r.accuracy is not None and r.fps > 0]
    pruned = [r for r in records if r.status == "pruned" and r.fps > 0]
    if done:
        ax.scatter([r.fps for r in done], [r.accuracy for r in done], s=14, c="0.7", label="candidates")
    if pruned:
        ax.scatter([r.fps for r in pruned], [0.0] * len(pruned), s=18, c="tab:red", marker="x",
                   label="pruned by the cost model (not trained)")
    if front:
        two = sorted(front, key=lambda r: r.fps)
        in_plane = tuple(objectives) == DEFAULT_OBJECTIVES
        if in_plane:  # attainment staircase: up to each point's FPS, that point's accuracy is reachable
            ax.step([r.fps for r in two], [r.accuracy for r in two], where="pre", c="navy", lw=1.2, zorder=3)
        ax.scatter([r.fps for r in two], [r.accuracy for r in two], s=34, c="navy", zorder=4,
                   label="Pareto front (accuracy vs FPS)" if in_plane else
                   f"Pareto front over {', '.join(o.label for o in objectives)}")
    if floor is not None:
        ax.axhline(floor, c="tab:red", ls="--", lw=0.8, zorder=2,
                   label=f"accuracy floor {floor:.0%} (not chosen below it)")
    if chosen is not None:
        ax.scatter([chosen.fps], [chosen.accuracy], s=160, marker="*", c="gold", edgecolors="k", zorder=5,
                   label="chosen design")
    ax.set_xscale("log")
    ax.set_xlabel("FPS (analytical estimate, log scale)")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(-0.05, 1.02)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)


# ---------------------------------------------------------------- report.md

@dataclass
class RunSummary:
    """Everything report.md states about a run."""

    board: str
    dataset: str
    strategy: str
    seed: int
    space_lines: list[str]
    space_decisions: tuple[int, int]
    space_size: int
    records: list[TrialRecord]
    reward_formula: str
    front: list[TrialRecord]
    choice: Choice
    stages: dict[str, float]
    hls: dict[str, Any] = field(default_factory=dict)
    budget: str = ""
    notes: list[str] = field(default_factory=list)
    objectives: tuple[Objective, ...] = DEFAULT_OBJECTIVES  # the run's objectives: the front's and the chooser's


def outcome(choice: Choice, hls: dict[str, Any]) -> tuple[bool, str]:
    """Whether the run succeeded and one sentence saying so: report.md's result line and the last
    line `codesign search` prints. It fails when no candidate was trained, or when the chosen design
    was not emitted, could not be C-simulated or did not verify bit-exact (--skip-hls is no failure)."""
    rec = choice.record
    if rec is None:
        return False, f"{choice.why}; nothing to emit (relax the target or --max-util, or widen the space)"
    chosen = f"the chosen design #{rec.number}"
    if hls.get("failed"):
        return False, f"{chosen} has no C-simulation verdict: {hls['failed']}"
    if hls.get("skipped"):
        return True, f"{chosen} was not emitted or C-simulated ({hls['skipped']})"
    if not hls:
        return False, f"{chosen} has no C-simulation verdict"
    if hls.get("bit_exact") is True:
        warned = f", with {len(hls['warnings'])} warning(s)" if hls.get("warnings") else ""
        return True, f"{chosen} verified bit-exact in C-simulation ({hls.get('samples', '?')} samples{warned})"
    why = f"{hls.get('mismatches', '?')} of {hls.get('samples', '?')} samples mismatch"
    if hls.get("problems"):
        why += f"; {hls['problems']}"
    return False, f"{chosen} did not verify bit-exact: {why}"


def pruning_stats(records: Sequence[TrialRecord]) -> dict[str, float]:
    """Counts of the cost model's work and the training time its pruning saved."""
    n = len(records)
    trained = [r for r in records if r.status == "trained"]
    pruned = sum(r.status == "pruned" for r in records)
    mean_train = float(np.mean([r.train_seconds for r in trained])) if trained else 0.0
    samples = sum(1 + r.resampled for r in records)
    rejected = sum(r.rejected for r in records)
    return {"trials": n, "trained": len(trained), "cached": sum(r.status == "cached" for r in records),
            "pruned": pruned, "pruned_share": pruned / n if n else 0.0,
            "resampled_candidates": sum(r.resampled > 0 for r in records),
            "samples": samples, "rejected": rejected, "rejected_share": rejected / samples if samples else 0.0,
            "mean_train_s": mean_train, "saved_s": pruned * mean_train,
            "train_s": float(sum(r.train_seconds for r in trained)),
            "cache_saved_s": sum(r.status == "cached" for r in records) * mean_train}


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def layer_table(est: dict[str, Any]) -> str:
    """The per-stage estimate of one design as a markdown table."""
    rows = [(l["name"], l["kind"], l.get("shape", ""), "" if l.get("pe") is None else l["pe"],
             "" if l.get("simd") is None else l["simd"], f"{l['cycles']:,}", f"{l['LUT']:,}", f"{l['FF']:,}",
             l["BRAM18"], l["URAM"], l["DSP"]) for l in est["layers"]]
    res = est["resources"]
    rows.append(("**total**", "", "", "", "", f"II {est['ii_cycles']:,}", f"{res['LUT']:,}", f"{res['FF']:,}",
                 res["BRAM18"], res["URAM"], res["DSP"]))
    return _table(("stage", "kind", "shape", "PE", "SIMD", "cycles", "LUT", "FF", "BRAM18", "URAM", "DSP"), rows)


RULE_TEXT = {  # {front}: the front's name (front_name)
    "best-trade-off": "the {front} front design nearest the ideal point, MENNDL-style, over the designs at or "
                      "above the accuracy floor",
    "most-accurate": "the highest accuracy, then the highest FPS",
    "fastest": "the highest FPS among the designs at or above the accuracy floor",
    "smallest": "the smallest share of the board among the designs at or above the accuracy floor",
}


def _front_rows(front: Sequence[TrialRecord], floor: float | None) -> list[tuple[Any, ...]]:
    return [(r.number, f"{r.accuracy:.4f}" + (" (below floor)" if floor is not None and r.accuracy < floor else ""),
             f"{r.fps:,.0f}", f"{float(r.estimate['latency_us']):,.1f}",
             f"{float(r.estimate.get('energy_mj', 0.0)):.4g}", f"{int(r.estimate.get('model_bits', 0)):,}",
             *(f"{int(r.estimate['resources'][k]):,}" for k in FRONT_RESOURCES), f"{r.reward:.4f}",
             template_of(r.design), summary(r.design)) for r in front]


def template_of(design: dict[str, Any]) -> str:
    """The accelerator template of a design: dataflow (one engine per layer) or tiled (one shared engine)."""
    return str(design.get("hardware", {}).get("template", "dataflow"))


_FRONT_HEADER = ("#", "accuracy", "FPS", "latency us", "energy mJ", "model bits", "LUT", "BRAM18", "DSP", "reward",
                 "template", "design")


def _front_sections(s: RunSummary) -> list[str]:
    """The front over the run's objectives, then the resource-aware front as an extra table."""
    floor = s.choice.floor
    n = len(scored(s.records))
    out = ["## Pareto front", "",
           f"Non-dominated over {describe(s.objectives)}: {len(s.front)} of the {n} trained designs "
           "(also `pareto.json`, `pareto.csv` and `pareto.png`).", ""]
    out += [_table(_FRONT_HEADER, _front_rows(s.front, floor)) if s.front else "(empty: no candidate was trained)", ""]
    if floor is not None and s.front:
        below = [f"#{r.number}" for r in s.front if r.accuracy < floor]
        out += [f"Accuracy floor of the chooser: {_pct(floor)} (twice chance); designs below it are left out of the "
                f"choice and of the normalization ({', '.join(below) if below else 'none on this front'}).", ""]
    res = resource_front(s.records, s.objectives)
    if res:
        out += ["### Resource-aware front", "",
                f"Non-dominated over {describe_grouped(with_resources(s.objectives))}: {len(res)} of the {n} "
                "trained designs (`resource_front` in `pareto.json`); a design here trades accuracy or speed for "
                "fewer resources.", "", _table(_FRONT_HEADER, _front_rows(res, floor)), ""]
    return out


def front_hypervolume(records: Sequence[TrialRecord], objectives: Sequence[Objective]) -> float | None:
    """Hypervolume of the trained designs over two objectives (accuracy and one other), each min-max
    normalized on its scale over those designs, from the worst corner (0..1; None for another number
    of objectives or fewer than two designs)."""
    cands = scored(records)
    if len(objectives) != 2 or len(cands) < 2:
        return None
    pts = points(cands, objectives)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    return hypervolume_2d((pts - lo) / span, (-1e-9, -1e-9))


def _menndl_section(s: RunSummary) -> list[str]:
    """MENNDL's table (codesign.search.menndl): per metric the lowest-metric, most accurate and
    best-trade-off design, with every metric of each, and the lower-bound plots."""
    cands = scored(s.records)
    metrics = metrics_for(s.objectives)
    out = ["## MENNDL's metrics: inference time, model size, energy", ""]
    if not cands:
        return out + ["(no candidate was trained)", ""]
    floor = s.choice.floor
    out += ["For each metric (MENNDL, Young et al.: inference time = estimated latency, model size = bits of the "
            "weights, energy = estimated energy per inference at batch 1 = PL power x latency; then the run's own "
            "objectives): the design with the lowest metric, the most accurate design and the best trade-off, the "
            "design of the metric's lower bound nearest the ideal point of the (accuracy, metric) plane by Euclidean "
            f"distance with weights {TRADE_OFF_WEIGHTS[0]:g} and {TRADE_OFF_WEIGHTS[1]:g}, both min-max normalized "
            "over the lower bound's designs (log10 for energy, model bits and FPS), as the chooser normalizes over "
            "its front; the last column is each design's distance on that scale. Lowest-metric and best-trade-off "
            "picks consider the "
            f"designs at or above the accuracy floor{f' ({_pct(floor)})' if floor is not None else ''}. Power and "
            "energy are estimates (hw_space.power; docs/cost-model.md says which coefficients have a source).", "",
            render_table(picks(cands, metrics, floor), metrics), "",
            "Lower bound of each metric against accuracy: " + ", ".join(f"`menndl_{m.name}.png`" for m in metrics) + ".",
            ""]
    hv = front_hypervolume(s.records, s.objectives)
    if hv is not None:
        out += [f"Hypervolume over {describe(s.objectives)}: {hv:.4f} (each min-max normalized on its scale over "
                f"the {len(cands)} trained designs, from the worst corner; 1 would be one design best in both).", ""]
    return out


def render_report(s: RunSummary) -> str:
    """report.md of a finished (or stopped) search."""
    p = pruning_stats(s.records)
    ok, result = outcome(s.choice, s.hls)
    out = [f"# codesign search: {s.dataset} on {s.board}", "",
           f"**Result: {'OK' if ok else 'FAILED'}** - {result}.", "",
           f"Strategy **{s.strategy}**, seed {s.seed}, {p['trials']} candidates in "
           f"{s.stages.get('total', 0.0):.0f} s. All hardware figures are analytical estimates "
           "(hw_space cost model), not synthesis results.", ""]
    out += ["## Search space", "",
            f"{s.space_decisions[0] + s.space_decisions[1]} decisions ({s.space_decisions[0]} network, "
            f"{s.space_decisions[1]} hardware); {s.space_size:.3g} distinct token assignments over active "
            "decisions.", ""]
    out += [f"- {line}" for line in s.space_lines] + [""]
    out += ["## Candidates and pruning", "",
            _table(("candidates", "trained", "cached (network trained before)", "pruned (never trained)",
                    "candidates with hardware resampled", "designs costed", "rejected by the cost model"),
                   [(p["trials"], p["trained"], p["cached"], p["pruned"], p["resampled_candidates"], p["samples"],
                     p["rejected"])]), "",
            f"- **{p['pruned_share']:.1%}** of the candidates ({p['pruned']} of {p['trials']}) were rejected by the "
            "cost model even after resampling their hardware up to 10 times, and never trained: at the mean "
            f"training time of {p['mean_train_s']:.2f} s that saved **{p['saved_s']:.0f} s** of training "
            f"(total training time {p['train_s']:.0f} s).",
            f"- Of all {p['samples']} designs costed (proposals plus hardware resamples), {p['rejected']} "
            f"({p['rejected_share']:.1%}) did not fit the board or missed a hard target; each was rejected in "
            "microseconds instead of being trained.",
            f"- The network cache served {p['cached']} candidates whose network had been trained with other "
            f"hardware (about {p['cache_saved_s']:.0f} s of training avoided).", ""]
    if s.budget:
        out += [f"Training budget per candidate: {s.budget}.", ""]
    out += ["## Reward", "", s.reward_formula, ""]
    out += _front_sections(s)
    out += _menndl_section(s)
    out += ["## Chosen design", ""]
    rec = s.choice.record
    rule = s.choice.rule or DEFAULT_CHOOSE
    if rec is None:
        out += [f"None: {s.choice.why}.", ""]
    else:
        share = board_share(rec)[0]
        out += [f"Rule: **{rule}** (`--choose {rule}`; {RULE_TEXT[rule].format(front=front_name(s.objectives))}).", "",
                f"Candidate #{rec.number}: accuracy {rec.accuracy:.4f}, {rec.fps:,.0f} FPS, latency "
                f"{float(rec.estimate['latency_us']):,.1f} us, LUT {int(rec.estimate['resources']['LUT']):,}, BRAM18 "
                f"{int(rec.estimate['resources']['BRAM18'])}, DSP {int(rec.estimate['resources']['DSP'])} "
                f"({_pct(share)} of the board's most used resource), estimated power "
                f"{float(rec.estimate.get('power_w', 0.0)):.3f} W, energy {float(rec.estimate.get('energy_mj', 0.0)):.4g} "
                f"mJ per inference, {int(rec.estimate.get('model_bits', 0)):,} model bits, network hash "
                f"`{rec.network_hash}`.", "",
                f"Why: {s.choice.why}.", "",
                f"Template: **{template_of(rec.design)}**. `{summary(rec.design)}` - see `best/design.yaml`.", "",
                layer_table(rec.estimate), ""]
    out += ["## HLS (C-simulation)", ""]
    if s.hls.get("skipped"):
        out += [f"Skipped: {s.hls['skipped']}.", ""]
    elif s.hls.get("failed"):
        out += [f"No verdict - the HLS step failed: {s.hls['failed']}", ""]
    elif s.hls:
        out += [f"C-simulation verdict: **{s.hls.get('verdict', 'unknown')}**.", ""]
        out += [f"- {k}: {v}" for k, v in s.hls.items() if k not in ("verdict", "bit_exact", "warnings")]
        out += [f"- **warning**: {w}" for w in s.hls.get("warnings", [])] + [""]
    out += ["## Wall time per stage", "", _table(("stage", "seconds"),
                                                 [(k, f"{v:.1f}") for k, v in s.stages.items()]), ""]
    if s.notes:
        out += ["## Notes", ""] + [f"- {n}" for n in s.notes] + [""]
    return "\n".join(out)


def write_report(run_dir: Path, s: RunSummary) -> None:
    atomic_write_text(run_dir / "report.md", render_report(s))


__all__ = ["CHOOSE_RULES", "DEFAULT_CHOOSE", "Choice", "RunSummary", "accuracy_floor", "board_share", "choose",
           "front_hypervolume", "front_name", "layer_table", "outcome", "pareto_front", "plot_pareto", "pruning_stats", "render_report",
           "resource_front", "scored", "summary", "write_pareto", "write_report"]
