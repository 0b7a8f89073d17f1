"""`codesign search --executor ray`: without Ray the flag is one line (exit 2); with Ray (the `ray`
extra) the Ray executor runs jobs as tasks, turns a dead worker into one line and leaves nothing
running on close, and a real search runs through a local Ray runtime, resumes, gives the process
pool's results for the same seed and stops cleanly on Ctrl-C."""

import functools
import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from test_search_cli import TINY, search_cmd, trained_twice, wait_for_lines
from test_search_robustness import BOARD, FAST, LINUX, SPACE, TRIALS, running, wait_gone

from codesign.cli import main
from codesign.search.journal import Journal, load_state
from hw_space.errors import CodesignError

HAS_RAY = importlib.util.find_spec("ray") is not None
NEEDS_RAY = pytest.mark.skipif(not HAS_RAY, reason="Ray is not installed (pip install -e '.[ray]')")
RAY = ["--executor", "ray", "--workers", "2"]


def test_without_ray_the_flag_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as where it is not installed
    out = tmp_path / "run"
    assert main(["search", *TINY, *FAST, "--executor", "ray", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--executor ray needs Ray" in err and "pip install -e '.[ray]'" in err, err
    assert not out.exists()  # refused before the run folder was made
    assert main(["search", *TINY, *FAST, "--ray-address", "127.0.0.1:6379", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--ray-address needs --executor ray" in err, err
    assert main(["search", *TINY, *FAST, "--executor", "ray", "--ray-cpus-per-task", "0", "--out", str(out)]) == 2
    assert "--ray-cpus-per-task must be >= 1" in capsys.readouterr().err


# ---------------------------------------------------------------- with Ray

def ray_processes(pid: int, seen: dict[int, str]) -> None:
    """Add the descendants of `pid` that belong to Ray (its GCS, raylet, workers, agents) to `seen` (one
    pass over /proc)."""
    parent, command = {}, {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parent[int(entry)] = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
                command[int(entry)] = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(
                    errors="replace")
            except (OSError, ValueError, IndexError):
                continue
    below = {pid}
    for _ in range(4):  # driver -> raylet -> workers and agents
        below |= {p for p, pp in parent.items() if pp in below}
    seen.update((p, command[p]) for p in below - {pid} if "ray::" in command[p] or "/ray/" in command[p])


class Watch:
    """Collects this process's Ray descendants in the background while a block runs."""

    def __enter__(self):
        self.seen: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self):
        while not self._stop.is_set():
            ray_processes(os.getpid(), self.seen)
            time.sleep(1.0)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def hashed_outcome(network):
    """Deterministic stand-in for QAT (as test_search_robustness.fake_trainer)."""
    from codesign.search.training import TrainOutcome

    return TrainOutcome(int(network.content_hash()[:6], 16) % 1000 / 1000, 0.01, 1, "fake")


def fake_trainer(network, dataset, data_dir, budget, model_path=None):
    return hashed_outcome(network)


def dying_trainer(doomed, network, dataset, data_dir, budget, model_path=None):
    """The worker training network `doomed` dies outright (as the out-of-memory killer leaves it)."""
    if network.content_hash() == doomed:
        os.kill(os.getpid(), signal.SIGKILL)
    return hashed_outcome(network)


def study_on(folder: Path, executor, trainer):
    """The robustness tests' random-strategy study (batch 2) on the given executor and trainer."""
    from codesign.search.evaluator import Evaluator, Reward
    from codesign.search.journal import Journal
    from codesign.search.strategies import make_strategy
    from codesign.search.study import StopRule, Study
    from codesign.search.training import proxy_budget
    from hw_space.boards import load_board

    evaluator = Evaluator(SPACE, load_board(BOARD), Reward("fps", 10_000.0, "soft"), budget=proxy_budget(1),
                          trainer=trainer, executor=executor)
    return Study(make_strategy("random", SPACE, seed=11), evaluator, Journal(folder / "journal.jsonl"),
                 folder / "controller.pt", StopRule(max_trials=TRIALS), batch=2)


@NEEDS_RAY
@LINUX
def test_ray_executor_jobs_a_dead_worker_and_ctrl_c(tmp_path):
    """Jobs run in Ray workers; a job's exception passes as it is; a worker that dies is one line, and in a
    Study it leaves a journal whose --resume gives the uninterrupted run; the failure (as Ctrl-C) cancels
    the outstanding tasks and stops the local runtime, leaving no Ray process behind."""
    import ray

    from codesign.search.executors import InlineExecutor
    from codesign.search.ray_executor import RayExecutor, RaySettings

    reference = study_on(tmp_path / "reference", InlineExecutor(), fake_trainer).run()
    doomed = [r.network_hash for r in reference if r.status == "trained"][2]
    run = tmp_path / "run"
    with Watch() as watch:
        ex = RayExecutor(2, RaySettings(None, 1), local_cpus=2)
        try:
            assert ex.capacity == 2 and not ex.shares_files
            pids = {ex.submit(os.getpid).result(timeout=120) for _ in range(3)}
            assert os.getpid() not in pids
            with pytest.raises(ValueError):  # a job's own failure passes as it is, like the process pool's
                ex.submit(int, "not a number").result(timeout=60)
            with pytest.raises(CodesignError) as died:
                ex.submit(os._exit, 1).result(timeout=120)
            assert "\n" not in str(died.value) and "a Ray worker running a training died" in str(died.value)
            assert "continue the run with --resume" in str(died.value)
            with pytest.raises(CodesignError, match="--ray-cpus-per-task 8: no node of the local Ray runtime has 8"):
                RayExecutor(2, RaySettings(None, 8))  # on the runtime in place (not its owner: it stays up)
            assert ray.is_initialized()
            sleeping = ex.submit(time.sleep, 300)  # outstanding when the study fails
            ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the trainers travel with the tasks
            study = study_on(run, ex, functools.partial(dying_trainer, doomed))
            start = time.perf_counter()
            with pytest.raises(CodesignError, match="a Ray worker running a training died"):
                study.run()
            assert time.perf_counter() - start < 300 and sleeping.cancelled()
            study.journal.close()
        finally:
            ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
            ex.close(kill=True)
    assert not ray.is_initialized()
    assert watch.seen and wait_gone(watch.seen, 15) == []
    ex.close(kill=True)  # closing twice is harmless
    journaled = Journal(run / "journal.jsonl").load()
    assert len(journaled) < len(reference) and doomed not in {r.network_hash for r in journaled}
    resumed = study_on(run, InlineExecutor(), fake_trainer)  # resumed on another executor: the same run
    resumed.restore(journaled, load_state(run / "controller.pt"))
    records = resumed.run()
    assert [(r.tokens, r.status, r.accuracy) for r in records] == [(r.tokens, r.status, r.accuracy) for r in reference]


@NEEDS_RAY
@LINUX
def test_search_through_a_local_ray_runtime_and_resume(tmp_path, capsys):
    """The search starts a local Ray runtime (2 CPUs here), journals every candidate, writes the checkpoints
    the workers send back, stops the runtime; --resume continues it through Ray again."""
    import ray

    out = tmp_path / "run"
    args = ["search", *TINY, *FAST, *RAY, "--seed", "5", "--out", str(out)]
    with Watch() as watch:
        assert main(args + ["--trials", "4"]) == 0
    err = capsys.readouterr().err
    assert "2 Ray task(s) at once on a local Ray runtime, 1 CPU(s) each" in err and "Traceback" not in err
    assert not ray.is_initialized() and watch.seen and wait_gone(watch.seen, 15) == []
    first = Journal(out / "journal.jsonl").load()
    assert [r.number for r in first] == [0, 1, 2, 3] and {r.status for r in first} <= {"trained", "cached", "pruned"}
    assert all(0 <= r.accuracy <= 1 for r in first if r.status != "pruned")
    assert (out / "best" / "model.pt").is_file() and "was not kept" not in (out / "report.md").read_text()
    with Watch() as watch:
        assert main(args + ["--trials", "6", "--resume"]) == 0
    assert "resuming" in capsys.readouterr().err
    assert not ray.is_initialized() and wait_gone(watch.seen, 15) == []
    records = Journal(out / "journal.jsonl").load()
    assert [r.number for r in records] == list(range(6)) and records[:4] == first
    assert trained_twice(records) == []
    assert load_state(out / "controller.pt")["trials"] == 6


@NEEDS_RAY
def test_an_address_no_cluster_answers_at_fails_at_once(tmp_path, capsys):
    import socket

    with socket.socket() as probe:  # a port nothing listens at
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = tmp_path / "run"
    for address, why in ((f"127.0.0.1:{port}", "no Ray cluster answers there"), ("head-node", "not a cluster address")):
        start = time.perf_counter()
        assert main(["search", *TINY, *FAST, "--executor", "ray", "--ray-address", address, "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and f"--ray-address {address}: {why}" in err and time.perf_counter() - start < 30, err
        assert not out.exists()


@pytest.mark.slow
@NEEDS_RAY
def test_ray_and_the_process_pool_give_the_same_run(tmp_path, capsys):
    """Trainings are seeded by the run's seed and the candidates committed in order: the executor changes
    nothing in the journal."""
    journals = []
    for name, executor in (("ray", ["--executor", "ray"]), ("process", ["--executor", "process"])):
        out = tmp_path / name
        assert main(["search", *TINY, *FAST, "--workers", "2", *executor, "--trials", "6", "--seed", "5",
                     "--out", str(out)]) == 0
        journals.append([(r.tokens, r.status, r.accuracy, r.reward, r.design) for r in
                         Journal(out / "journal.jsonl").load()])
    assert journals[0] == journals[1] and len(journals[0]) == 6


@pytest.mark.slow
@NEEDS_RAY
@LINUX
def test_ctrl_c_through_ray_cancels_the_tasks_and_stops_the_runtime(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(search_cmd(out, *FAST, *RAY, "--trials", "40", "--epochs", "3"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    seen: dict[int, str] = {}
    try:
        wait_for_lines(out / "journal.jsonl", 2, proc, timeout=300)
        ray_processes(proc.pid, seen)
        assert any("raylet" in c for c in seen.values()), seen
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "--resume" in err and "Traceback" not in err
    assert wait_gone(seen, 15) == [], {p: c for p, c in seen.items() if running(p, c)}
    records = Journal(out / "journal.jsonl").load()
    assert records and load_state(out / "controller.pt")["trials"] == len(records)
    assert (out / ".lock").read_text() == ""
