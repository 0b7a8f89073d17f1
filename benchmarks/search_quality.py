"""Search quality: hypervolume of the accuracy-FPS front reached by rl, evolution and random at the
same number of trained candidates and the same seeds, printed as ratios to random.

Each (strategy, seed) run is a Study on the default space with the real cost model and real QAT
(quant.train) on digits, stopped after --trained trainings. Hypervolume: accuracy in [0, 1] and
log10 FPS min-max normalized over every candidate of every run; reference point (accuracy 0, FPS min).
Runs execute in parallel processes (--jobs), one torch thread each.

    /work/venv/bin/python benchmarks/search_quality.py            # ~10-15 min on 2 cores
    /work/venv/bin/python benchmarks/search_quality.py --trained 20 --seeds 3 --epochs 2   # quick look
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from codesign.search.pareto import hypervolume_2d, log_normalize


def run_one(strategy: str, seed: int, board: str, trained: int, epochs: int, rl_mode: str) -> dict:
    """One search; returns its (accuracy, FPS) points and pruning counts."""
    import torch

    from codesign.search.evaluator import Evaluator, Reward, default_fps_target
    from codesign.search.journal import Journal
    from codesign.search.report import pruning_stats
    from codesign.search.space import Context, load_space
    from codesign.search.strategies import make_strategy
    from codesign.search.study import StopRule, Study
    from codesign.search.training import proxy_budget
    from hw_space.boards import load_board

    torch.set_num_threads(1)
    b = load_board(board)
    space = load_space(context=Context(1, 8, 8, 10, board=board))
    target = default_fps_target(space, b, 0.85, seed=0)  # the same reward for every run
    evaluator = Evaluator(space, b, Reward("fps", target, "soft"), "digits",
                          budget=proxy_budget(epochs, seed=0, threads=1), workers=1)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="codesign-bench-") as tmp:
        study = Study(make_strategy(strategy, space, seed=seed, rl_mode=rl_mode), evaluator,
                      Journal(Path(tmp) / "journal.jsonl"), Path(tmp) / "state.pt",
                      StopRule(max_trained=trained, max_trials=trained * 20))
        records = study.run()
    points = [(r.accuracy, r.fps) for r in records if r.status != "pruned" and r.accuracy is not None]
    stats = pruning_stats(records)
    return {"strategy": strategy, "seed": seed, "points": points, "seconds": time.perf_counter() - start,
            "trials": stats["trials"], "trained": stats["trained"], "cached": stats["cached"],
            "pruned": stats["pruned"], "rejected_share": stats["rejected_share"], "saved_s": stats["saved_s"],
            "best_accuracy": max((p[0] for p in points), default=0.0)}


def hypervolumes(runs: list[dict]) -> list[float]:
    """Normalized accuracy x log-FPS hypervolume of each run, with bounds shared by all runs."""
    fps = np.array([p[1] for r in runs for p in r["points"]])
    lo, hi = float(fps.min()), float(fps.max())
    out = []
    for r in runs:
        pts = np.array(r["points"], dtype=float).reshape(-1, 2)
        norm = np.stack([pts[:, 0], log_normalize(pts[:, 1], lo, hi)], axis=1) if len(pts) else pts
        # the reference is (accuracy 0, FPS min): a point at the slowest FPS still adds its width
        out.append(hypervolume_2d(norm, (0.0, -1e-9)))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--board", default="zc706")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--trained", type=int, default=40, help="trained candidates per run (default 40)")
    ap.add_argument("--epochs", type=int, default=4, help="QAT epochs per candidate (default 4)")
    ap.add_argument("--strategies", default="rl,evolution,random")
    ap.add_argument("--rl-mode", default="combined", choices=("combined", "phase", "separate"))
    ap.add_argument("--jobs", type=int, default=2, help="runs in parallel (default 2)")
    ap.add_argument("--json", help="also write every run's numbers to this file")
    args = ap.parse_args(argv)
    strategies = args.strategies.split(",")
    jobs = [(s, seed) for seed in range(args.seeds) for s in strategies]
    start = time.perf_counter()
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=ctx) as pool:
        futures = [pool.submit(run_one, s, seed, args.board, args.trained, args.epochs, args.rl_mode)
                   for s, seed in jobs]
        runs = []
        for f in futures:
            runs.append(f.result())
            r = runs[-1]
            print(f"  {r['strategy']:<10} seed {r['seed']}: {r['trials']} candidates ({r['trained']} trained, "
                  f"{r['cached']} cached, {r['pruned']} pruned), best accuracy {r['best_accuracy']:.4f}, "
                  f"{r['seconds']:.0f} s", file=sys.stderr, flush=True)
    hv = hypervolumes(runs)
    for r, h in zip(runs, hv):
        r["hypervolume"] = h
    by = {s: [r for r in runs if r["strategy"] == s] for s in strategies}
    mean = {s: float(np.mean([r["hypervolume"] for r in rs])) for s, rs in by.items()}
    base = mean.get("random")
    label = "rl" if args.rl_mode == "combined" else f"rl ({args.rl_mode})"
    print(f"search quality on digits / {args.board}: {args.trained} trained candidates per run, {args.epochs} epochs, "
          f"seeds 0..{args.seeds - 1}; hypervolume of the accuracy x log-FPS front (normalized, reference "
          "accuracy 0 / FPS min)")
    print(f"{'strategy':<16}{'HV mean':>9}{'HV std':>8}{'vs random':>11}  {'per seed':<30}{'candidates':>12}"
          f"{'rejected':>10}")
    for s, rs in by.items():
        hvs = [r["hypervolume"] for r in rs]
        ratio = f"{mean[s] / base:.3f}" if base else "n/a"
        name = label if s == "rl" else s
        print(f"{name:<16}{mean[s]:>9.4f}{np.std(hvs):>8.4f}{ratio:>11}  {' '.join(f'{h:.3f}' for h in hvs):<30}"
              f"{np.mean([r['trials'] for r in rs]):>12.1f}{np.mean([r['rejected_share'] for r in rs]):>10.1%}")
    print(f"wall time {time.perf_counter() - start:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "mean": mean, "runs": runs}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
