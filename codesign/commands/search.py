"""`codesign search`: the whole co-design loop in one run folder.

Sample designs (RL, random or evolutionary), prune them with the cost model, train the rest on a
proxy budget (cached per network), journal everything, then write the Pareto front, pick one
design, rebuild its model, emit and verify its HLS project, and write report.md.

Exit codes: 0 when the chosen design verified bit-exact (or --skip-hls was given), 1 when no candidate
was trained or the chosen design's emit or verify failed (the last line and report.md say why), 2 bad
input (also: the run folder is in use by another search, or cannot be written), 130 Ctrl-C (SIGINT),
143 SIGTERM, 129 SIGHUP.

One run per folder: RUN/.lock is locked for the whole run (codesign.search.runguard). SIGINT, SIGTERM and
SIGHUP stop the run cleanly (the running trainings are abandoned, the journal stays consistent, the
resume command is printed); workers die with the search even when it is killed outright. The journal
is the run's source of truth: --resume replays it to rebuild the strategy and re-queues the candidates that
were in flight (codesign.search.study.Study).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from hw_space.errors import CodesignError

NAME = "search"
HELP = "co-design search over network + hardware (RL, random or evolution), pruned by the cost model"

EXIT_OK, EXIT_FAILED = 0, 1
DEFAULT_TRIALS = 120
DEFAULT_EPOCHS = 8
CONFIG = "config.json"
SPACE = "space.yaml"


@dataclass(frozen=True)
class SearchConfig:
    """Everything that defines a run; saved in RUN/config.json so --resume continues the same run."""

    board: str
    dataset: str = "digits"
    data_dir: str | None = None
    trials: int = DEFAULT_TRIALS
    time_budget_min: float | None = None
    target_fps: float | None = None
    target_latency_us: float | None = None
    max_util: float = 0.85
    strategy: str = "rl"
    rl_mode: str = "combined"
    reward: str = "auto"
    seed: int = 0
    workers: int = 2
    epochs: int = DEFAULT_EPOCHS
    skip_hls: bool = False
    # the Pareto front's objectives (codesign.search.objectives.OBJECTIVES): evolution's selection, the
    # front, the best-trade-off choice, and the reward's metric when no target is given
    objectives: tuple[str, ...] = ("accuracy", "fps")
    # where trainings run: "process" (a pool of --workers processes, inline for one) or "ray" (Ray tasks,
    # codesign.search.ray_executor; on the cluster at ray_address, else a local runtime)
    executor: str = "process"
    ray_address: str | None = None
    ray_cpus_per_task: int | None = None  # None: the torch threads per worker (train_threads)
    # the objective the reward is on when no target is given (set at the start of a run, so a resume keeps
    # it; a run saved before it existed was rewarded on fps whatever its objectives)
    reward_metric: str | None = None

    @property
    def reward_kind(self) -> str:
        if self.reward != "auto":
            return self.reward
        return "hard" if self.target_fps is not None or self.target_latency_us is not None else "soft"


# fields that must not change when a run is resumed (the others may: more trials, other workers)
_FIXED_ON_RESUME = ("board", "dataset", "target_fps", "target_latency_us", "max_util", "strategy", "rl_mode",
                    "reward", "seed", "epochs", "objectives")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--board", required=True, help="board name (see `codesign boards`) or a board YAML file")
    parser.add_argument("--dataset", help="digits (embedded, default), mnist, fashion-mnist or cifar10")
    parser.add_argument("--data-dir", help="folder with the dataset: torchvision's layout, or for mnist/fashion-mnist a "
                        "folder holding the four IDX files, plain or .gz (not for digits; see docs/datasets.md)")
    parser.add_argument("--trials", type=int, help=f"candidates to sample (default {DEFAULT_TRIALS})")
    parser.add_argument("--time-budget", type=float, metavar="MIN",
                        help="stop sampling after this many minutes of search (the final steps come on top)")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--target-fps", type=float, help="target throughput in frames per second")
    target.add_argument("--target-latency-us", type=float, help="target latency in microseconds")
    parser.add_argument("--max-util", type=float, help="largest usable share of every board resource (default 0.85)")
    parser.add_argument("--strategy", choices=("rl", "random", "evolution"), help="search strategy (default rl)")
    parser.add_argument("--rl-mode", choices=("combined", "phase", "separate"),
                        help="RL controllers: one over network+hardware (combined, default), alternating "
                             "phases, or two policies sharing the reward (separate)")
    parser.add_argument("--reward", choices=("auto", "soft", "hard"),
                        help="soft: MNASNet acc*(metric/target)^-0.07; hard: the target must be met; auto (default): "
                             "hard when a target is given, soft otherwise")
    from codesign.search.objectives import OBJECTIVES

    parser.add_argument("--objectives", metavar="NAMES",
                        help="the Pareto front's objectives, comma-separated, from: " + ", ".join(OBJECTIVES)
                             + " (default accuracy,fps; latency names latency_us); evolution selects on them, "
                             "--choose best-trade-off and report.md (front, hypervolume, MENNDL table) read them; "
                             "without a target the reward (what rl learns from) is soft on the first after accuracy")
    parser.add_argument("--space", help="search space YAML (default: codesign/data/default_space.yaml)")
    parser.add_argument("--seed", type=int, help="random seed of the whole run (default 0)")
    parser.add_argument("--out", default="codesign-search", help="run folder (default ./codesign-search)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out where it stopped")
    parser.add_argument("--workers", type=int, help="candidates trained in parallel processes (default 2, or 1 "
                        "on a one-core machine)")
    parser.add_argument("--executor", choices=("process", "ray"),
                        help="where candidates train: process (default: --workers local processes) or ray (Ray tasks; "
                             "needs pip install -e '.[ray]'; see docs/ray.md)")
    parser.add_argument("--ray-address", metavar="ADDR",
                        help="with --executor ray: the cluster's address (HOST:PORT of the head node, or auto: the cluster "
                             "started on this machine; default: start a local Ray runtime)")
    parser.add_argument("--ray-cpus-per-task", type=int, metavar="N",
                        help="with --executor ray: CPUs each training task asks Ray for, and its torch threads "
                             "(default: the threads per worker of the process pool)")
    parser.add_argument("--epochs", type=int, help=f"training epochs per candidate (default {DEFAULT_EPOCHS})")
    parser.add_argument("--skip-hls", action="store_true", help="do not emit and verify the HLS of the chosen design")
    from codesign.search.report import CHOOSE_RULES  # the rules choosing one design from the front

    parser.add_argument("--choose", choices=CHOOSE_RULES,
                        help="how to choose one design: best-trade-off (default without a target: MENNDL, nearest the "
                             "ideal point of the accuracy-FPS front, over designs at or above twice chance accuracy), "
                             "most-accurate (default with a target; with a target every rule picks among the designs "
                             "meeting it), fastest, smallest (least share of the board's most used resource)")


def _config_from(args: argparse.Namespace, saved: dict[str, Any] | None) -> SearchConfig:
    from codesign.search.objectives import objective_list

    names = getattr(args, "objectives", None)
    given = {"objectives": tuple(o.name for o in objective_list(names)) if names is not None else None,
             "board": args.board, "dataset": args.dataset, "data_dir": args.data_dir, "trials": args.trials,
             "time_budget_min": args.time_budget, "target_fps": args.target_fps,
             "target_latency_us": args.target_latency_us, "max_util": args.max_util, "strategy": args.strategy,
             "rl_mode": args.rl_mode, "reward": args.reward, "seed": args.seed, "workers": args.workers,
             "epochs": args.epochs, "skip_hls": args.skip_hls or None, "executor": getattr(args, "executor", None),
             "ray_address": getattr(args, "ray_address", None),
             "ray_cpus_per_task": getattr(args, "ray_cpus_per_task", None)}
    if saved is None:
        workers = min(2, os.cpu_count() or 1)
        base = SearchConfig(board=args.board, workers=workers)
        cfg = replace(base, **{k: v for k, v in given.items() if v is not None})
    else:
        cfg = SearchConfig(**{"reward_metric": "fps", **saved})
        cfg = replace(cfg, objectives=tuple(o.name for o in objective_list(cfg.objectives)))  # a JSON list
        for key in _FIXED_ON_RESUME:
            value = given[key]
            if value is not None and value != getattr(cfg, key):
                raise CodesignError(f"--{key.replace('_', '-')} {_setting(value)} differs from the run being resumed "
                                    f"({_setting(getattr(cfg, key))}); a resumed run keeps its settings (use another "
                                    "--out for a new run)")
        cfg = replace(cfg, **{k: v for k, v in given.items() if v is not None and k not in _FIXED_ON_RESUME})
        cfg = replace(cfg, skip_hls=bool(args.skip_hls))  # a per-invocation choice, not a setting of the run
        if args.time_budget is None:
            cfg = replace(cfg, time_budget_min=saved.get("time_budget_min"))
    _validate(cfg)
    _check_executor(cfg, given)
    return cfg


def _check_executor(cfg: SearchConfig, given: dict[str, Any]) -> None:
    """The Ray flags go with --executor ray, which needs Ray installed (one line saying how, else)."""
    if cfg.executor != "ray":
        for key in ("ray_address", "ray_cpus_per_task"):
            if given[key] is not None:
                raise CodesignError(f"--{key.replace('_', '-')} needs --executor ray (the run's executor is "
                                    f"{cfg.executor})")
        return
    if cfg.ray_cpus_per_task is not None and cfg.ray_cpus_per_task < 1:
        raise CodesignError("--ray-cpus-per-task must be >= 1")
    from codesign.search.ray_executor import require_ray

    require_ray()


def _setting(value: Any) -> str:
    """A setting as the command line writes it (a list comma-separated)."""
    return ",".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)


def _validate(cfg: SearchConfig) -> None:
    checks = [(cfg.trials >= 1, "--trials must be >= 1"), (cfg.epochs >= 1, "--epochs must be >= 1"),
              (cfg.workers >= 1, "--workers must be >= 1"), (0 < cfg.max_util <= 1, "--max-util must be in (0, 1]"),
              (cfg.time_budget_min is None or cfg.time_budget_min > 0, "--time-budget must be > 0 minutes"),
              (cfg.target_fps is None or cfg.target_fps > 0, "--target-fps must be > 0"),
              (cfg.target_latency_us is None or cfg.target_latency_us > 0, "--target-latency-us must be > 0")]
    for ok, message in checks:
        if not ok:
            raise CodesignError(message)
    from codesign.search.objectives import OBJECTIVES

    if cfg.reward_metric is not None and cfg.reward_metric not in OBJECTIVES:
        raise CodesignError(f"reward_metric {cfg.reward_metric!r} in the run's {CONFIG} is not allowed; allowed: "
                            f"{', '.join(OBJECTIVES)}")
    if cfg.reward == "hard" and cfg.target_fps is None and cfg.target_latency_us is None:
        raise CodesignError("--reward hard needs --target-fps or --target-latency-us")


def _prepare_folder(out: Path, resume: bool) -> dict[str, Any] | None:
    """The saved config when resuming; refuse to overwrite an existing run otherwise."""
    from codesign.search.journal import JOURNAL
    from codesign.search.runguard import is_lock_file

    if out.exists() and not out.is_dir():
        raise CodesignError(f"--out {out} exists and is not a folder")
    has_run = (out / JOURNAL).exists() or (out / CONFIG).exists()
    if not resume:
        if out.exists() and any(not is_lock_file(p) for p in out.iterdir()):
            raise CodesignError(f"run folder {out} already exists; add --resume to continue it, or choose "
                                "another --out")
        return None
    if not has_run:
        return None  # nothing to resume: start the run
    try:
        return json.loads((out / CONFIG).read_text())
    except (OSError, ValueError) as exc:
        raise CodesignError(f"cannot read the run's settings ({exc}); the run folder is damaged",
                            source=str(out / CONFIG)) from None


def run(args: argparse.Namespace) -> int:
    from codesign.search.runguard import RunLock, StopRequested, stop_signals

    out = Path(args.out)
    with stop_signals():  # SIGINT, SIGTERM, SIGHUP: a clean stop (StopRequested) from here on
        try:
            with RunLock.acquire(out, "codesign search") as lock:  # one run per folder, or exit 2 at once
                if lock.stale_pid:
                    print(f"codesign: note: taking over the lock of {out}, left by PID {lock.stale_pid} which ended "
                          "without releasing it (killed?)", file=sys.stderr, flush=True)
                saved = _prepare_folder(out, args.resume)
                cfg = _config_from(args, saved)
                search = SearchRun(cfg, out, space_path=args.space, resuming=saved is not None)
                search.choose_rule = getattr(args, "choose", None)  # None: the chooser's default
                return search.execute()
        except StopRequested as stop:  # stopped outside the search loop (setup, the final steps)
            hint = (f"; continue with: {_resume_command(args.board, out)}" if (out / "journal.jsonl").exists()
                    else "")
            print(f"\ncodesign: {_stopped(stop)}{hint}", file=sys.stderr, flush=True)
            return stop.exit_code


def _stopped(stop: BaseException) -> str:
    from codesign.search.runguard import stop_name

    name = stop_name(stop)
    return "interrupted" if name == "SIGINT" else f"stopped by {name}"


def _resume_command(board: str, out: Path) -> str:
    import shlex

    return f"codesign search --board {shlex.quote(str(board))} --out {shlex.quote(str(out))} --resume"


class SearchRun:
    """One `codesign search` run: setup, search, results, the chosen design's HLS, the report."""

    choose_rule: str | None = None  # --choose: per invocation (the chooser runs after the search)

    def __init__(self, cfg: SearchConfig, out: Path, space_path: str | None = None, resuming: bool = False):
        self.cfg = cfg
        self.out = out
        self.space_path = space_path
        self.resuming = resuming
        self.stages: dict[str, float] = {}
        self.notes: list[str] = []

    def _stage(self, name: str, start: float) -> None:
        self.stages[name] = self.stages.get(name, 0.0) + time.perf_counter() - start

    def _log(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    def execute(self) -> int:
        t_total = time.perf_counter()
        t = time.perf_counter()
        self._setup()
        self._stage("setup (space, board, reward target)", t)
        try:
            study = self._study()
        except BaseException:  # e.g. a journal that does not replay: stop what the executor started (Ray)
            self.executor.close(kill=True)
            raise
        try:
            study.run()
        except KeyboardInterrupt as stop:  # Ctrl-C, SIGTERM, SIGHUP (codesign.search.runguard.StopRequested)
            from codesign.search.runguard import exit_code

            self.evaluator.close(kill=True)  # the running trainings are abandoned; their candidates rerun on resume
            self.journal.close()
            sys.stderr.write("\n")
            self._log(f"codesign: {_stopped(stop)} after {len(study.records)} candidates; the journal and the "
                      f"controller state are kept in {self.out}. Continue with: "
                      f"{_resume_command(self.cfg.board, self.out)}")
            return exit_code(stop)
        finally:
            self.evaluator.close()
            self.journal.close()
        if sys.stderr.isatty():
            sys.stderr.write("\n")
        self.stages["search (cost model + training)"] = study.elapsed
        self._results(study)
        ok = self._report(study, time.perf_counter() - t_total + study.elapsed_before)
        return EXIT_OK if ok else EXIT_FAILED

    # ------------------------------------------------------------ setup
    def _setup(self) -> None:
        from codesign.search.space import Context, load_space, save_space
        from hw_space.boards import load_board
        from quant.data import dataset_info

        cfg = self.cfg
        self.board = load_board(cfg.board)
        info = dataset_info(cfg.dataset)
        context = Context(info.shape.channels, info.shape.height, info.shape.width, info.num_classes,
                          board=self.board.name)
        space_file = self.out / SPACE if self.resuming else self.space_path
        if self.resuming and self.space_path:
            self.notes.append(f"--space {self.space_path} ignored: a resumed run keeps its saved space.yaml")
        self.space = load_space(space_file, context)
        self._check_target_fps()  # fail before training when no design can reach --target-fps
        from hw_space.files import check_output_folder

        check_output_folder(self.out)  # all validation before the first file: a failed start leaves nothing
        from codesign.search.objectives import objective_list

        self.objectives = objective_list(cfg.objectives)
        self.reward = self._reward()
        cfg = self.cfg = replace(cfg, reward_metric=self.reward.objective.name)
        self.executor = self._executor()  # connects to Ray: an unreachable cluster fails before the first file
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            if not self.resuming:
                save_space(self.space, self.out / SPACE)
            from hw_space.design import atomic_write_text

            atomic_write_text(self.out / CONFIG, json.dumps(asdict(cfg), indent=2) + "\n")
        except BaseException:
            self.executor.close(kill=True)
            raise

    def _executor(self):
        """The run's proxy training budget and the executor its trainings run on (codesign.search.executors)."""
        from codesign.search.executors import make_executor
        from codesign.search.training import proxy_budget, train_threads

        cfg = self.cfg
        ray = None
        threads = train_threads(cfg.dataset, cfg.workers)
        if cfg.executor == "ray":
            from codesign.search.ray_executor import RaySettings

            threads = cfg.ray_cpus_per_task or threads
            ray = RaySettings(cfg.ray_address, threads)
        self.train_budget = proxy_budget(cfg.epochs, seed=cfg.seed, threads=threads)
        return make_executor(cfg.workers, threads, ray=ray)

    def _executor_label(self) -> str:
        cfg = self.cfg
        if cfg.executor != "ray":
            return f"{cfg.workers} worker(s)"
        where = f"the Ray cluster at {cfg.ray_address}" if cfg.ray_address else "a local Ray runtime"
        return f"{cfg.workers} Ray task(s) at once on {where}, {self.train_budget.threads} CPU(s) each"

    def _reward(self):
        from codesign.search.evaluator import Reward, default_target
        from codesign.search.objectives import OBJECTIVES, reward_objective

        cfg = self.cfg
        kind = cfg.reward_kind
        if cfg.target_latency_us is not None:
            return Reward("latency", cfg.target_latency_us, kind)
        if cfg.target_fps is not None:
            return Reward("fps", cfg.target_fps, kind)
        # no target: soft on the run's first objective besides accuracy (fps for the default list)
        objective = OBJECTIVES[cfg.reward_metric] if cfg.reward_metric else reward_objective(self.objectives)
        target = default_target(self.space, self.board, cfg.max_util, objective, seed=cfg.seed)
        return Reward(objective.name, float(f"{target:.4g}") if objective.name != "fps" else round(target, 1), kind,
                      target_note=f"no target given: T is the median {objective.label} of the 500 random designs "
                                  "of the space (50 random networks, 10 random hardware settings each) that fit "
                                  "the board, seeded")

    def _study(self):
        from codesign.search.evaluator import Evaluator
        from codesign.search.journal import JOURNAL, STATE, Journal, load_state
        from codesign.search.objectives import use_objectives
        from codesign.search.strategies import make_strategy
        from codesign.search.study import StopRule, Study, progress_printer

        cfg = self.cfg
        self.strategy = make_strategy(cfg.strategy, self.space, seed=cfg.seed, rl_mode=cfg.rl_mode)
        use_objectives(self.strategy, self.objectives, self.reward)
        short = getattr(self.strategy, "short_run_warning", lambda trials: None)(cfg.trials)
        if short:
            self._log(f"warning: {short}")
            self.notes.append(short)
        self.evaluator = Evaluator(self.space, self.board, self.reward, cfg.dataset, cfg.data_dir, self.train_budget,
                                   cfg.max_util, models_dir=self.out / "models", strategy_name=self._strategy_label(),
                                   executor=self.executor)
        self.journal = Journal(self.out / JOURNAL)
        stop = StopRule(max_trials=cfg.trials,
                        time_budget_s=cfg.time_budget_min * 60 if cfg.time_budget_min is not None else None)
        study = Study(self.strategy, self.evaluator, self.journal, self.out / STATE, stop, batch=cfg.workers,
                      progress=progress_printer(cfg.trials))
        study.objectives = self.objectives
        records = self.journal.load()
        if self.resuming:
            study.restore(records, load_state(self.out / STATE))
            again = f", {len(study.in_flight)} re-queued" if study.in_flight else ""
            self._log(f"resuming {self.out}: {len(records)} candidates journaled, "
                      f"{sum(r.status == 'trained' for r in records)} networks trained{again}")
        self._log(f"search: {self._strategy_label()} on {cfg.dataset} / {self.board.name}, {cfg.trials} candidates, "
                  f"{cfg.epochs} epochs each, {self._executor_label()}; reward {self.reward.kind}, "
                  f"target {self.reward.target:,.6g} {self.reward.objective.unit}")
        return study

    def _strategy_label(self) -> str:
        return f"rl ({self.cfg.rl_mode})" if self.cfg.strategy == "rl" else self.cfg.strategy

    # ------------------------------------------------------------ --target-fps reachability
    def _check_target_fps(self) -> None:
        """Refuse a --target-fps above the FPS ceiling of the space on the board (see fps_ceiling);
        warn when it is above what the folding optimizer reaches with the space's smallest network."""
        target = self.cfg.target_fps
        if target is None:
            return
        ceiling, why = fps_ceiling(self.space, self.board)
        reached = folded_fps(self.space, self.board, self.cfg.max_util)
        if target > ceiling:
            folding = "" if reached is None else (f"the folding optimizer's fastest folding of the space's smallest "
                                                  f"network reaches {reached:,.0f} FPS, and ")
            raise CodesignError(f"--target-fps {target:,.0f} is out of reach on {self.board.name}: {folding}no design "
                                f"of the search space can exceed {ceiling:,.0f} FPS ({why}); lower --target-fps")
        if reached is not None and target > reached:
            self._log(f"warning: --target-fps {target:,.0f} is above {reached:,.0f} FPS, what the folding optimizer "
                      f"reaches with the space's smallest network (the ceiling is {ceiling:,.0f} FPS); most "
                      "candidates may be pruned")

    # ------------------------------------------------------------ results
    def _results(self, study) -> None:
        from codesign.search.report import choose, pareto_front, plot_pareto, resource_front, write_pareto

        t = time.perf_counter()
        self.records = study.records
        self.front = pareto_front(self.records, self.objectives)
        self.choice = choose(self.records, self.cfg.target_fps, self.cfg.target_latency_us, rule=self.choose_rule,
                             num_classes=self.space.context.num_classes, objectives=self.objectives)
        write_pareto(self.out, self.front, resource_front(self.records, self.objectives), self.objectives)
        plot_pareto(self.out / "pareto.png", self.records, self.front, self.choice.record,
                    title=f"{self._strategy_label()} on {self.cfg.dataset} / {self.board.name}", floor=self.choice.floor,
                    objectives=self.objectives)
        from codesign.search.menndl import metrics_for, picks, plot_lower_bounds
        from codesign.search.report import scored

        done = scored(self.records)
        metrics = metrics_for(self.objectives)
        plot_lower_bounds(self.out, done, metrics, picks(done, metrics, self.choice.floor),
                          title=f"{self._strategy_label()} on {self.cfg.dataset} / {self.board.name}")
        self._stage("Pareto front and plot", t)
        self.hls: dict[str, Any] = {}
        if self.choice.record is None:
            self.hls = {"skipped": "no design was trained"}
            return
        t = time.perf_counter()
        best = self.out / "best"
        self._best_model(best)
        self._stage("chosen design: model, QONNX, test data", t)
        self._prune_models()
        if self.cfg.skip_hls:
            self.hls = {"skipped": "--skip-hls was given"}
        else:
            self._hls(best)
            self._finn(best)

    def _finn(self, best: Path) -> None:
        """best/finn/: the chosen design as FINN's build_dataflow takes it (codesign export-finn), for
        users who build with FINN; a failure here is reported, not fatal."""
        from codesign.backend.finn_export import export_finn
        from hw_space.design import load_design

        t = time.perf_counter()
        try:
            export_finn(best / "model.onnx", load_design(best / "design.yaml"), self.board, best / "finn")
            self.hls["FINN build folder"] = str(best / "finn")
        except CodesignError as exc:
            self.hls["FINN export"] = f"not written: {exc}"
        self._stage("FINN export (best/finn)", t)

    def _best_model(self, best: Path) -> None:
        """best/design.yaml, model.pt (the kept checkpoint, or retrained with the same seed and budget),
        model.onnx and test_data.npz (inputs, labels, reference logits and integer inputs)."""

        import quant
        from codesign.search.training import train_network
        from hw_space.design import design_from_dict, save_design

        rec = self.choice.record
        design = design_from_dict(rec.design)
        best.mkdir(parents=True, exist_ok=True)
        save_design(design, best / "design.yaml")
        kept = self.out / "models" / rec.network_hash / "model.pt"
        if not kept.exists():
            self.notes.append("the chosen network's checkpoint was not kept; retrained with the same seed and budget")
            train_network(design.network, self.cfg.dataset, self.cfg.data_dir, self.train_budget, kept)
        shutil.copyfile(kept, best / "model.pt")
        model, network = quant.load_checkpoint(best / "model.pt")
        quant.export_qonnx(model, network, best / "model.onnx")
        data = quant.load_dataset(self.cfg.dataset, self.cfg.data_dir)
        logits = quant.save_test_data(model, data, best / "test_data.npz")
        accuracy = float((logits.argmax(axis=1) == data.y_test.numpy()).mean())
        if abs(accuracy - float(rec.accuracy)) > 1e-9:
            self.notes.append(f"the chosen model scores {accuracy:.4f} on reload vs {rec.accuracy:.4f} in the search")
        from hw_space.design import atomic_write_text

        atomic_write_text(best / "metrics.json", json.dumps(
            {"accuracy": accuracy, "network_hash": rec.network_hash, "candidate": rec.number,
             "estimate": {k: rec.estimate[k] for k in ("fps", "latency_us", "resources", "utilization", "feasible")},
             "why": self.choice.why}, indent=2) + "\n")

    def _prune_models(self) -> None:
        """Keep the checkpoints of front networks only (a dominated design never re-enters the front)."""
        keep = {r.network_hash for r in self.front}
        models = self.out / "models"
        if models.is_dir():
            for folder in models.iterdir():
                if folder.is_dir() and folder.name not in keep:
                    shutil.rmtree(folder, ignore_errors=True)

    def _hls(self, best: Path) -> None:
        """Emit the HLS project of the chosen design and C-simulate it, through the backend's CLI;
        best/verify.json gets the verdict, or an `error` field when there is none."""
        hls = best / "hls"
        cmd = [sys.executable, "-m", "codesign"]
        (best / "verify.json").unlink(missing_ok=True)
        t = time.perf_counter()
        if hls.exists():
            shutil.rmtree(hls)
        emit = subprocess.run(cmd + ["emit", "--qonnx", str(best / "model.onnx"), "--design", str(best / "design.yaml"),
                                     "--test-data", str(best / "test_data.npz"), "--out", str(hls)],
                              capture_output=True, text=True)
        self._stage("HLS emit", t)
        if emit.returncode != 0:
            why = _error_text(emit.stderr) or f"exit code {emit.returncode}"
            if "invalid choice" in emit.stderr:
                why = f"the HLS backend is not available in this installation ({why})"
            self._no_verdict(best, f"`codesign emit` failed: {why}", emit.returncode, "emit")
            return
        t = time.perf_counter()
        verify = subprocess.run(cmd + ["verify", str(hls), "--json"], capture_output=True, text=True)
        self._stage("HLS C-simulation (verify)", t)
        try:
            verdict = json.loads(verify.stdout)
        except ValueError:
            verdict = None
        if not isinstance(verdict, dict) or "error" in verdict or "bit_exact" not in verdict:
            why = (verdict or {}).get("error") if isinstance(verdict, dict) else None
            why = why or _error_text(verify.stderr) or f"exit code {verify.returncode}"
            self._no_verdict(best, f"`codesign verify` could not build or run the C-simulation "
                                   f"(exit code {verify.returncode}): {why}", verify.returncode, "verify")
            return
        from hw_space.design import atomic_write_text

        atomic_write_text(best / "verify.json", json.dumps(verdict, indent=2) + "\n")
        self.hls = _verdict_summary(verdict, verify.returncode)

    def _no_verdict(self, best: Path, why: str, exit_code: int, stage: str) -> None:
        """Record a failed HLS step: self.hls and best/verify.json say why there is no verdict."""
        from hw_space.design import atomic_write_text

        self.hls = {"failed": why}
        atomic_write_text(best / "verify.json", json.dumps({"error": why, "exit_code": exit_code, "stage": stage},
                                                           indent=2) + "\n")

    # ------------------------------------------------------------ report
    def _report(self, study, total: float) -> bool:
        """Write report.md and print the summary; the last line is the run's outcome. True when it succeeded."""
        from codesign.search.report import RunSummary, outcome, pruning_stats, write_report

        self.stages["total"] = total
        nn = len(self.space.nn_positions)
        summary = RunSummary(
            board=self.board.name, dataset=self.cfg.dataset, strategy=self._strategy_label(), seed=self.cfg.seed,
            space_lines=self.space.describe(), space_decisions=(nn, len(self.space.decisions) - nn),
            space_size=self.space.count(), records=self.records, reward_formula=self.reward.formula(),
            front=self.front, choice=self.choice, stages=self.stages, hls=self.hls,
            budget=f"{self.cfg.epochs} epochs of QAT (quant.train, seed {self.cfg.seed}, batch 64, "
                   f"{self.train_budget.threads} torch thread(s) per worker, {self._executor_label()})",
            notes=self.notes, objectives=self.objectives)
        write_report(self.out, summary)
        p = pruning_stats(self.records)
        rec = self.choice.record
        print(f"{p['trials']} candidates: {p['trained']} trained, {p['cached']} cached, {p['pruned']} pruned "
              f"({p['pruned_share']:.1%}, ~{p['saved_s']:.0f} s of training saved); front of {len(self.front)}")
        if rec is not None:
            print(f"chosen: #{rec.number} accuracy {rec.accuracy:.4f}, {rec.fps:,.0f} FPS (estimate), "
                  f"LUT {rec.estimate['resources']['LUT']:,}, {float(rec.estimate.get('energy_mj', 0.0)):.4g} mJ, "
                  f"{int(rec.estimate.get('model_bits', 0)):,} model bits -> {self.out / 'best' / 'design.yaml'}")
        hls = self.hls.get("skipped") or self.hls.get("failed") or f"C-simulation {self.hls.get('verdict')}"
        print(f"HLS: {hls}")
        for warning in self.hls.get("warnings", []):
            print(f"HLS warning: {warning}")
        print(f"report: {self.out / 'report.md'}")
        ok, text = outcome(self.choice, self.hls)
        if ok:
            print(f"OK: {text}; run folder {self.out}", flush=True)
        else:
            print(f"FAILED: {text}; see {self.out / 'report.md'}", flush=True)
        return ok


def _error_text(text: str) -> str:
    """The error a subcommand printed: its `codesign: error:` line and the line after it, else its last line."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if line.startswith("codesign: error:"):
            return " / ".join(lines[i:i + 2])[:600]
    return lines[-1][:600] if lines else ""


def _verdict_summary(verdict: Any, returncode: int) -> dict[str, Any]:
    """The verify JSON reduced to what report.md shows."""
    if not isinstance(verdict, dict):
        return {"verdict": "unknown", "raw": str(verdict)[:200]}
    exact = verdict.get("bit_exact")
    out: dict[str, Any] = {"verdict": "PASS (bit-exact)" if exact is True else
                           ("FAIL (not bit-exact)" if exact is False else "unknown"), "bit_exact": exact is True}
    for key in ("samples", "mismatches", "argmax_agreement", "label_accuracy", "compile_seconds", "run_seconds"):
        if key in verdict:
            out[key] = verdict[key]
    if verdict.get("problems"):
        out["problems"] = "; ".join(map(str, verdict["problems"]))[:500]
    if verdict.get("warnings"):
        out["warnings"] = [str(w) for w in verdict["warnings"]]
    if returncode not in (0, 1):
        out["exit_code"] = returncode
    return out


# ---------------------------------------------------------------- --target-fps reachability

def fps_ceiling(space, board) -> tuple[float, str]:
    """An upper bound of the FPS any design of the space reaches on the board (cost model), and why.

    Every frame takes at least (a) one cycle per output pixel of the network's first layer - a
    dataflow MVAU takes MH/PE * MW/SIMD >= 1 cycles per output pixel, the tiled engine k^2 cycles per
    pixel of each tile - and (b) the cycles to read the frame through the input port, C*H*W elements
    packed port // input_bits to a word (the board's AXI width; at least 64 bits, the tiled engine's
    input port, when the space has the tiled template). The II is at least the larger, so FPS <=
    clock / max(a, b) for every network, folding and memory style."""
    import math

    ctx = space.context
    clock = float(ctx.clock_mhz or board.clock_mhz)
    port = max(board.axi_width, 64) if "tiled" in space.templates.values else board.axi_width
    io = math.ceil(ctx.channels * ctx.height * ctx.width / max(1, port // space.input_bits))
    pixels, first = None, ""
    index = {d.name: i for i, d in enumerate(space.decisions)}
    base = _smallest_tokens(space)
    for n in sorted(set(space.conv_blocks.values)):
        for k in (range(len(space.kernel.values)) if n else [0]):
            tokens = list(base)
            tokens[index["conv_blocks"]] = list(space.conv_blocks.values).index(n)
            if n:
                tokens[index["conv0.kernel"]] = k
            net = space.decode(tokens).network
            shape = net.shapes()[0][1]
            p = shape.height * shape.width  # a dense first layer outputs a 1x1 map
            if pixels is None or p < pixels:
                pixels, first = p, (f"{shape.height}x{shape.width} first conv" if p > 1 else "first (dense) layer")
    pixels = pixels or 1
    cycles = max(io, pixels)
    compute = f"one per output pixel of the {first}"
    enter = (f"entering the {ctx.channels}x{ctx.height}x{ctx.width} {space.input_bits}-bit input through the "
             f"{port}-bit port")
    why = (f"at {clock:g} MHz a frame takes at least {cycles:,} cycles, "
           + (f"{compute}; {enter} takes {io:,}" if pixels >= io else f"{enter}; {compute} takes {pixels:,}"))
    return clock * 1e6 / cycles, why


def _smallest_tokens(space) -> list[int]:
    """Tokens of the space's smallest network: the least of every numeric network decision (bits,
    channels, kernels, layers; no pooling), the dataflow template when the space has it."""
    tokens = []
    for d in space.decisions:
        values = list(d.choices)
        if d.name == "template":
            tokens.append(values.index("dataflow") if "dataflow" in values else 0)
        elif all(isinstance(v, (int, float)) for v in values):
            tokens.append(min(range(len(values)), key=lambda i: values[i]))
        else:
            tokens.append(0)
    return tokens


def folded_fps(space, board, max_util: float) -> float | None:
    """FPS of `hw_space.folding.fold` (no target: the fastest folding that fits) of the space's
    smallest network, or None when it does not fit the board. A reachable figure, not a bound."""
    from hw_space.folding import fold
    from hw_space.model import CostModel

    design = space.decode(_smallest_tokens(space))
    try:
        folded = fold(design, board, max_util=max_util)
    except CodesignError:
        return None
    return float(CostModel(folded.network, board, folded.hardware.clock_mhz, max_util).evaluate_designs([folded]).fps[0])
