"""Search quality: hypervolume of the accuracy-FPS front reached by rl (each mode), evolution and random at
the same number of trained candidates and the same seeds, printed as ratios to random with their spread.

Each (strategy, seed) run is a Study with the real cost model and real QAT (quant.train), stopped after
--trained trainings (a network trained earlier in the same run is "cached" and not counted; candidates the
cost model prunes are never trained). Hypervolume: accuracy in [0, 1] (reference 0) times log10 FPS
min-max normalized over every candidate of every run of the invocation (reference: the slowest FPS).
The ratio of a run is its hypervolume over the mean hypervolume of the random runs.

Datasets and their proxy training (the defaults; every value has a flag):
- digits: the default space on 1x8x8, 40 trained candidates per run, 4 QAT epochs on the whole
  training split (1,437 frames), accuracy on the whole test split (360 frames).
- fashion-mnist (--data-dir with the four IDX files, e.g. /usr/share/datasets/fashion-mnist):
  benchmarks/spaces/fashion_mnist.yaml on 1x28x28, 20 trained candidates per run, 1 QAT epoch on a
  10 % subset of the training set (6,000 frames drawn with training seed 0, the same for every
  network), accuracy on the first 2,000 of the 10,000 test images.
Every training uses seed 0, batch 64, no early stopping, one torch thread; it is deterministic (the
same network gives the same accuracy), so trainings are cached on disk (--cache-dir) by the network's
content hash and the training settings, and shared by every strategy, seed and later invocation: a
network that two runs both train is trained once. Each run still counts it as one of its trainings.
Runs execute in parallel processes (--jobs).

    PYTHONPATH=. python benchmarks/search_quality.py --dataset fashion-mnist \\
        --data-dir /usr/share/datasets/fashion-mnist          # 15 runs; see docs/benchmarks.md
    PYTHONPATH=. python benchmarks/search_quality.py          # digits, rl (combined) / evolution / random

Latest fashion-mnist table (2026-12-02, commits 88907b2-88b3393, seeds 0-2, one normalization over 27 runs;
details, wall times and the RL options tried: docs/benchmarks.md). HV over random's mean, mean +-
sample sd (min-max):
    rl:combined 0.983 +- 0.035 (0.946-1.016)   rl:phase 1.037 +- 0.151 (0.868-1.158)
    rl:separate 0.925 +- 0.059 (0.880-0.992)   evolution 0.946 +- 0.047 (0.905-0.998)
    random 1.000 +- 0.110 (0.889-1.110)
    --rl-option hw_variants=2: rl:combined 1.073 +- 0.055 (1.012-1.119)
    --rl-option hw_variants=2 --rl-option lr=0.05: rl:combined 0.909 +- 0.088 (0.828-1.002),
    rl:phase 1.084 +- 0.045 (1.034-1.120), rl:separate 1.055 +- 0.046 (1.029-1.108)
No strategy reaches 1.2x random at this budget.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np

from codesign.search.pareto import hypervolume_2d, log_normalize

SPACES = Path(__file__).parent / "spaces"


@dataclass(frozen=True)
class Setting:
    """What every run of one invocation shares: data, proxy training, space, board, budget."""

    dataset: str
    data_dir: str | None
    board: str
    space: str | None      # a space file; None = the default space
    trained: int           # trained candidates per run
    epochs: int
    subset: float          # fraction of the training set each candidate trains on
    test_samples: int      # accuracy on the first N test images (0 = all)
    asked: int             # candidates per run at most (trained, cached and pruned)
    cache_dir: str
    population: int        # evolution's population (it breeds only after this many candidates)
    rl_options: tuple[tuple[str, float], ...] = ()  # RLStrategy options other than the mode


DEFAULTS = {
    "digits": {"trained": 40, "asked": 800, "epochs": 4, "subset": 1.0, "test_samples": 0, "space": None,
               "population": 16},
    "fashion-mnist": {"trained": 12, "asked": 36, "epochs": 1, "subset": 0.05, "test_samples": 2000,
                      "space": str(SPACES / "fashion_mnist.yaml"), "population": 6},
}


class CachedTrainer:
    """quant.train on the fixed test subset, behind a cache on disk keyed by the network's content hash
    and every training setting (a Trainer: codesign.search.training). Safe across processes: each
    entry is one file written atomically (two runs training one network at once both write it)."""

    def __init__(self, cache_dir: str, test_samples: int):
        self.cache_dir = Path(cache_dir)
        self.test_samples = test_samples
        self.hits = 0
        self.trained_s = 0.0

    def key(self, network, dataset: str, budget) -> str:
        settings = {k: v for k, v in asdict(budget).items() if k != "threads"}
        text = json.dumps({"network": network.content_hash(), "dataset": dataset, "budget": settings,
                           "test_samples": self.test_samples}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def __call__(self, network, dataset: str, data_dir: str | None, budget, model_path=None):
        import quant
        from codesign.search.training import TrainOutcome
        from hw_space.files import atomic_write_text

        path = self.cache_dir / f"{self.key(network, dataset, budget)}.json"
        if path.exists():
            self.hits += 1
            return TrainOutcome(**json.loads(path.read_text()))
        data = quant.load_dataset(dataset, data_dir)
        if self.test_samples:
            data = replace(data, x_test=data.x_test[:self.test_samples], y_test=data.y_test[:self.test_samples])
        result = quant.train(network, data, budget)
        outcome = TrainOutcome(float(result.accuracy), float(result.train_seconds), int(result.epochs),
                               str(result.reason))
        self.trained_s += outcome.seconds
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(asdict(outcome)))
        return outcome


def label(strategy: str, mode: str, options: tuple[tuple[str, float], ...] = ()) -> str:
    """A run's row name: the strategy, rl's mode and the rl options given."""
    if strategy != "rl":
        return strategy
    return f"rl:{mode}" + (f"[{','.join(f'{k}={v:g}' for k, v in options)}]" if options else "")


COMPARABLE = ("dataset", "board", "space", "trained", "asked", "epochs", "subset", "test_samples")


def _refuse(message: str) -> None:
    """Bad input: one line, exit code 2."""
    print(f"search_quality: {message}", file=sys.stderr)
    sys.exit(2)


def merged_runs(path: str, setting: Setting, skip: set[str]) -> list[dict]:
    """The runs of an earlier invocation's --json file (so that one table shows both), refused in one
    line when they ran with other comparable settings; rows this invocation runs again are left out."""
    try:
        data = json.loads(Path(path).read_text())
        earlier, runs = data["setting"], data["runs"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        _refuse(f"--merge {path}: not a --json file of this benchmark ({exc})")
    for key in COMPARABLE:
        if earlier.get(key) != getattr(setting, key):
            _refuse(f"--merge {path}: its runs had {key} = {earlier.get(key)!r}, this one {getattr(setting, key)!r}; "
                    "merge only runs of the same settings")
    return [r for r in runs if r["strategy"] not in skip]


def bench_space(s: Setting):
    """The run's search space bound to the dataset's frame and the board."""
    from codesign.search.space import Context, load_space
    from quant.data import dataset_info

    shape = dataset_info(s.dataset).shape
    return load_space(s.space, context=Context(shape.channels, shape.height, shape.width, 10, board=s.board))


def fps_target(s: Setting) -> float:
    """The reward's FPS target, the same for every run: the median FPS of 500 random fitting designs
    (kept in the cache folder, by space and board: it takes minutes on a busy machine)."""
    from codesign.search.evaluator import default_fps_target
    from hw_space.boards import load_board
    from hw_space.files import atomic_write_text

    space = bench_space(s)
    key = hashlib.sha256(json.dumps([space.to_dict(), s.board], sort_keys=True).encode()).hexdigest()[:32]
    path = Path(s.cache_dir) / f"target-{key}.json"
    if path.exists():
        return float(json.loads(path.read_text())["fps"])
    fps = default_fps_target(space, load_board(s.board), 0.85, seed=0)
    Path(s.cache_dir).mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps({"fps": fps}))
    return fps


def run_one(strategy: str, mode: str, seed: int, s: Setting, target: float) -> dict:
    """One search; returns its (accuracy, FPS) points, pruning counts and the cache's work."""
    import torch

    from codesign.search.evaluator import Evaluator, Reward
    from codesign.search.journal import Journal
    from codesign.search.report import pruning_stats
    from codesign.search.strategies import make_strategy
    from codesign.search.study import StopRule, Study
    from codesign.search.training import proxy_budget
    from hw_space.boards import load_board

    torch.set_num_threads(1)
    b = load_board(s.board)
    space = bench_space(s)
    trainer = CachedTrainer(s.cache_dir, s.test_samples)
    evaluator = Evaluator(space, b, Reward("fps", target, "soft"), s.dataset, data_dir=s.data_dir,
                          budget=proxy_budget(s.epochs, seed=0, threads=1, subset=s.subset), workers=1,
                          trainer=trainer)
    options = ({"rl_mode": mode, **dict(s.rl_options)} if strategy == "rl" else
               {"population": s.population} if strategy == "evolution" else {})
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="codesign-bench-") as tmp:
        study = Study(make_strategy(strategy, space, seed=seed, **options), evaluator,
                      Journal(Path(tmp) / "journal.jsonl"), Path(tmp) / "state.pt",
                      StopRule(max_trained=s.trained, max_trials=s.asked))
        records = study.run()
    points = [(r.accuracy, r.fps) for r in records if r.status != "pruned" and r.accuracy is not None]
    stats = pruning_stats(records)
    return {"strategy": label(strategy, mode, s.rl_options), "seed": seed, "points": points,
            "seconds": time.perf_counter() - start, "trials": stats["trials"], "trained": stats["trained"],
            "cached": stats["cached"], "pruned": stats["pruned"], "rejected_share": stats["rejected_share"],
            "cache_hits": trainer.hits, "train_s": trainer.trained_s,
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


def _mean(runs: list[dict], key: str) -> float:
    return float(np.mean([r[key] for r in runs]))


def table(runs: list[dict], order: list[str]) -> list[str]:
    """The summary lines: per strategy the ratio to random's mean hypervolume (mean +- sd, min-max and
    per seed), best accuracy, and the mean candidate counts per run."""
    base = float(np.mean([r["hypervolume"] for r in runs if r["strategy"] == "random"] or [np.nan]))
    w = max([13, *(len(n) + 2 for n in order)])
    head = (f"{'strategy':<{w}}{'HV/random':>10}{'sd':>7}{'min-max':>13}  {'per seed':<22}{'HV':>7}{'best acc':>9}"
            f"{'trained':>8}{'cached':>7}{'pruned':>7}{'asked':>6}")
    lines = [head]
    for name in order:
        rs = sorted((r for r in runs if r["strategy"] == name), key=lambda r: r["seed"])
        ratios = [r["hypervolume"] / base for r in rs]
        mean = partial(_mean, rs)
        lines.append(f"{name:<{w}}{np.mean(ratios):>10.3f}{np.std(ratios, ddof=1) if len(rs) > 1 else 0:>7.3f}"
                     f"{min(ratios):>7.3f}-{max(ratios):.3f}  {' '.join(f'{x:.3f}' for x in ratios):<22}"
                     f"{mean('hypervolume'):>7.4f}{max(r['best_accuracy'] for r in rs):>9.4f}"
                     f"{mean('trained'):>8.1f}{mean('cached'):>7.1f}{mean('pruned'):>7.1f}{mean('trials'):>6.1f}")
    return lines


def rl_options(ap: argparse.ArgumentParser, items: list[str]) -> tuple[tuple[str, float], ...]:
    """NAME=VALUE pairs as (name, number); a malformed one is an argparse error (exit code 2)."""
    out = []
    for item in items:
        name, _, value = item.partition("=")
        try:
            number = float(value)
        except ValueError:
            ap.error(f"--rl-option {item!r}: expected NAME=NUMBER, e.g. hw_variants=2")
        out.append((name, int(number) if number.is_integer() and name in ("hw_variants", "batch") else number))
    return tuple(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="digits", choices=tuple(DEFAULTS))
    ap.add_argument("--data-dir", help="folder with the dataset's files (fashion-mnist)")
    ap.add_argument("--board", default="zc706")
    ap.add_argument("--space", help="space file (default: per dataset, see the docstring)")
    ap.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per strategy (default 3)")
    ap.add_argument("--trained", type=int, help="trained candidates per run")
    ap.add_argument("--asked", type=int, help="candidates per run at most (the cost model's work; default 3x --trained "
                    "on fashion-mnist, 20x on digits)")
    ap.add_argument("--epochs", type=int, help="QAT epochs per candidate")
    ap.add_argument("--subset", type=float, help="fraction of the training set per candidate")
    ap.add_argument("--test-samples", type=int, help="accuracy on the first N test images (0 = all)")
    ap.add_argument("--strategies", default="rl,evolution,random")
    ap.add_argument("--rl-modes", default="combined,phase,separate", help="rl modes to run (comma list)")
    ap.add_argument("--population", type=int, help="evolution's population (default 6 on fashion-mnist, 16 on digits)")
    ap.add_argument("--rl-option", action="append", default=[], metavar="NAME=VALUE",
                    help="an RLStrategy option for every rl run, e.g. hw_variants=2 or lr=0.02 (repeatable)")
    ap.add_argument("--jobs", type=int, default=2, help="runs in parallel (default 2)")
    ap.add_argument("--cache-dir", default="build/search_quality_cache",
                    help="training cache shared by runs and invocations (default build/search_quality_cache)")
    ap.add_argument("--json", help="also write every run's numbers to this file")
    ap.add_argument("--merge", action="append", default=[], metavar="JSON",
                    help="add the runs of an earlier --json file of the same settings to the table (repeatable)")
    args = ap.parse_args(argv)
    d = DEFAULTS[args.dataset]
    if args.dataset != "digits" and not args.data_dir:
        ap.error(f"--dataset {args.dataset} needs --data-dir (e.g. /usr/share/datasets/fashion-mnist)")
    pick = lambda key: getattr(args, key) if getattr(args, key) is not None else d[key]  # noqa: E731
    asked = args.asked if args.asked is not None else (d["asked"] if args.trained is None else
                                                       args.trained * d["asked"] // d["trained"])
    setting = Setting(args.dataset, args.data_dir, args.board, pick("space"), pick("trained"), pick("epochs"),
                      pick("subset"), pick("test_samples"), asked, args.cache_dir,
                      pick("population"), rl_options(ap, args.rl_option))
    runs_of = [(s, m) for s in filter(None, args.strategies.split(",")) for m in (args.rl_modes.split(",") if s == "rl" else [""])]
    order = [label(s, m, setting.rl_options) for s, m in runs_of]
    jobs = [(s, m, seed) for seed in range(args.seeds) for s, m in runs_of]
    print(f"search quality on {setting.dataset} / {setting.board}: {setting.trained} trained candidates per run "
          f"(at most {setting.asked} asked), "
          f"{setting.epochs} epoch(s) on {setting.subset:.0%} of the training set, test "
          f"{setting.test_samples or 'all'} images, space {setting.space or 'default'}, seeds 0..{args.seeds - 1}",
          flush=True)
    start = time.perf_counter()
    target = fps_target(setting) if jobs else 0.0
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=ctx) as pool:
        futures = [pool.submit(run_one, s, m, seed, setting, target) for s, m, seed in jobs]
        runs = []
        for f in futures:
            runs.append(f.result())
            r = runs[-1]
            print(f"  {r['strategy']:<12} seed {r['seed']}: {r['trials']} candidates ({r['trained']} trained, "
                  f"{r['cached']} cached, {r['pruned']} pruned), best accuracy {r['best_accuracy']:.4f}, "
                  f"{r['seconds']:.0f} s ({r['train_s']:.0f} s training, {r['cache_hits']} from the cache)",
                  file=sys.stderr, flush=True)
    new = list(runs)
    for path in args.merge:
        earlier = merged_runs(path, setting, set(order))
        order += [name for name in dict.fromkeys(r["strategy"] for r in earlier) if name not in order]
        runs += earlier
    for r, h in zip(runs, hypervolumes(runs)):
        r["hypervolume"] = h
    print("hypervolume of the accuracy x log-FPS front (normalized over all runs; reference accuracy 0 / FPS min); "
          "HV/random: a run's HV over the mean HV of the random runs (mean, sd and min-max over seeds)")
    print("\n".join(table(runs, order)))
    print(f"wall time {time.perf_counter() - start:.0f} s for {len(new)} runs, {sum(r['train_s'] for r in new):.0f} s "
          f"of new training ({sum(r['cache_hits'] for r in new)} trainings from the cache)"
          + (f"; {len(runs) - len(new)} runs merged from {', '.join(args.merge)}" if args.merge else ""))
    if args.json:
        Path(args.json).write_text(json.dumps({"setting": asdict(setting), "args": vars(args), "runs": new}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
