"""Search results: the Pareto front (JSON, CSV, PNG), the choice of one design, and report.md.

The front is over accuracy (max), FPS (max) and LUT, BRAM18, DSP (min) of every trained or cached
candidate; the chosen design is the most accurate one meeting the target when a target is given,
otherwise the front member nearest the ideal point (weighted distance, MENNDL-style).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from codesign.journal import TrialRecord
from codesign.pareto import ideal_point_choice, pareto_mask
from hw_space.design import atomic_write_text

FRONT_RESOURCES = ("LUT", "BRAM18", "DSP")
# weights of accuracy, log FPS, LUT, BRAM18, DSP in the ideal-point distance
IDEAL_WEIGHTS = (1.0, 0.5, 0.1, 0.1, 0.1)
CSV_FIELDS = ("number", "network_hash", "accuracy", "fps", "latency_us", "LUT", "FF", "BRAM18", "URAM", "DSP",
              "reward", "status", "summary")


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


def objectives(records: Sequence[TrialRecord]) -> np.ndarray:
    """(n, 5) maximized objectives: accuracy, log10 FPS, -LUT, -BRAM18, -DSP."""
    return np.array([[r.accuracy, math.log10(max(r.fps, 1e-9))]
                     + [-float(r.estimate["resources"][k]) for k in FRONT_RESOURCES] for r in records], dtype=float)


def pareto_front(records: Sequence[TrialRecord]) -> list[TrialRecord]:
    """The non-dominated distinct designs, by decreasing accuracy."""
    cands = scored(records)
    if not cands:
        return []
    mask = pareto_mask(objectives(cands))
    return sorted((r for r, m in zip(cands, mask) if m), key=lambda r: (-r.accuracy, -r.fps))


@dataclass
class Choice:
    """The chosen design and why it was chosen."""

    record: TrialRecord | None
    why: str


def choose(records: Sequence[TrialRecord], target_fps: float | None = None,
           target_latency_us: float | None = None) -> Choice:
    """The most accurate design meeting the user's target, or the front member nearest the ideal."""
    front = pareto_front(records)
    if not front:
        return Choice(None, "no candidate was trained (every design was pruned)")
    if target_fps is not None or target_latency_us is not None:
        ok = [r for r in front  # a design meeting the target is dominated only by front designs meeting it
              if (target_fps is None or r.fps >= target_fps)
              and (target_latency_us is None or float(r.estimate["latency_us"]) <= target_latency_us)]
        what = f"{target_fps:,.0f} FPS" if target_fps is not None else f"{target_latency_us:g} us latency"
        if ok:
            best = max(ok, key=lambda r: (r.accuracy, r.fps))
            return Choice(best, f"the most accurate design meeting the target of {what}")
        note = f"no trained design meets the target of {what}; "
    else:
        note = ""
    k = ideal_point_choice(objectives(front), IDEAL_WEIGHTS)
    return Choice(front[k], note + "the Pareto-front design nearest the ideal point (weighted Euclidean distance "
                  f"over min-max normalized objectives, weights accuracy {IDEAL_WEIGHTS[0]}, log FPS "
                  f"{IDEAL_WEIGHTS[1]}, LUT/BRAM18/DSP {IDEAL_WEIGHTS[2]} each)")


def row(r: TrialRecord) -> dict[str, Any]:
    res = r.estimate["resources"]
    return {"number": r.number, "network_hash": r.network_hash, "accuracy": round(float(r.accuracy), 6),
            "fps": round(r.fps, 3), "latency_us": round(float(r.estimate["latency_us"]), 3),
            **{k: int(res[k]) for k in ("LUT", "FF", "BRAM18", "URAM", "DSP")}, "reward": round(r.reward, 6),
            "status": r.status, "summary": summary(r.design)}


def write_pareto(run_dir: Path, front: Sequence[TrialRecord]) -> None:
    """pareto.json (rows with the full designs) and pareto.csv, both written atomically."""
    rows = [row(r) for r in front]
    data = {"objectives": {"accuracy": "max", "fps": "max", **{k: "min" for k in FRONT_RESOURCES}},
            "front": [{**x, "design": r.design} for x, r in zip(rows, front)]}
    atomic_write_text(run_dir / "pareto.json", json.dumps(data, indent=2) + "\n")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(run_dir / "pareto.csv", buf.getvalue())


def plot_pareto(path: Path, records: Sequence[TrialRecord], front: Sequence[TrialRecord],
                chosen: TrialRecord | None = None, title: str = "") -> None:
    """Accuracy vs FPS (log x): every candidate grey, pruned ones as red x at accuracy 0, the
    front highlighted and its accuracy/FPS staircase drawn, the chosen design starred."""
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
        ax.scatter([r.fps for r in front], [r.accuracy for r in front], s=22, c="tab:blue", alpha=0.45, zorder=3,
                   label="Pareto front over accuracy, FPS, LUT, BRAM, DSP")
        pts = np.array([[r.accuracy, math.log10(r.fps)] for r in front])
        two = sorted((front[i] for i in np.flatnonzero(pareto_mask(pts))), key=lambda r: r.fps)
        # attainment staircase: up to each point's FPS, that point's accuracy is reachable
        ax.step([r.fps for r in two], [r.accuracy for r in two], where="pre", c="navy", lw=1.2, zorder=3)
        ax.scatter([r.fps for r in two], [r.accuracy for r in two], s=34, c="navy", zorder=4,
                   label="accuracy-FPS front")
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


def render_report(s: RunSummary) -> str:
    """report.md of a finished (or stopped) search."""
    p = pruning_stats(s.records)
    out = [f"# codesign search: {s.dataset} on {s.board}", "",
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
    out += ["## Pareto front", "",
            "Non-dominated over accuracy (max), FPS (max), LUT, BRAM18 and DSP (min):", ""]
    rows = [(r.number, f"{r.accuracy:.4f}", f"{r.fps:,.0f}", f"{float(r.estimate['latency_us']):,.1f}",
             *(f"{int(r.estimate['resources'][k]):,}" for k in ("LUT", "BRAM18", "DSP")), f"{r.reward:.4f}",
             summary(r.design)) for r in s.front]
    out += [_table(("#", "accuracy", "FPS", "latency us", "LUT", "BRAM18", "DSP", "reward", "design"), rows)
            if rows else "(empty: no candidate was trained)", ""]
    out += ["## Chosen design", ""]
    rec = s.choice.record
    if rec is None:
        out += [f"None: {s.choice.why}.", ""]
    else:
        out += [f"Candidate #{rec.number} ({s.choice.why}): accuracy {rec.accuracy:.4f}, {rec.fps:,.0f} FPS, "
                f"latency {float(rec.estimate['latency_us']):,.1f} us, network hash `{rec.network_hash}`.", "",
                f"`{summary(rec.design)}` - see `best/design.yaml`.", "", layer_table(rec.estimate), ""]
    out += ["## HLS (C-simulation)", ""]
    if s.hls.get("skipped"):
        out += [f"Skipped: {s.hls['skipped']}.", ""]
    elif s.hls.get("failed"):
        out += [f"No verdict - the HLS step failed: {s.hls['failed']}", ""]
    elif s.hls:
        out += [f"C-simulation verdict: **{s.hls.get('verdict', 'unknown')}**.", ""]
        out += [f"- {k}: {v}" for k, v in s.hls.items() if k not in ("verdict",)] + [""]
    out += ["## Wall time per stage", "", _table(("stage", "seconds"),
                                                 [(k, f"{v:.1f}") for k, v in s.stages.items()]), ""]
    if s.notes:
        out += ["## Notes", ""] + [f"- {n}" for n in s.notes] + [""]
    return "\n".join(out)


def write_report(run_dir: Path, s: RunSummary) -> None:
    atomic_write_text(run_dir / "report.md", render_report(s))


__all__ = ["Choice", "RunSummary", "choose", "layer_table", "pareto_front", "plot_pareto", "pruning_stats",
           "render_report", "scored", "summary", "write_pareto", "write_report"]
