"""Executors: the inline one runs a job at submit, the process one in spawned workers that it stops
(at once with kill=True) without reaching into the pool; a dead worker is one CodesignError line; the
Evaluator trains a network once even when two candidates with it are in flight together."""

import math
import os
import time
from concurrent.futures import Future
from pathlib import Path

import pytest
from test_search_robustness import BOARD, SPACE, fake_trainer

from codesign.search.evaluator import Evaluator, Reward
from codesign.search.executors import InlineExecutor, ProcessExecutor, make_executor
from codesign.search.journal import STARTED
from codesign.search.strategies import make_strategy
from codesign.search.training import proxy_budget
from hw_space.boards import load_board
from hw_space.errors import CodesignError


def test_inline_executor_runs_at_submit_and_keeps_the_jobs_error():
    ex = InlineExecutor()
    assert ex.capacity == 1
    calls = []
    f = ex.submit(lambda a, b: calls.append((a, b)) or a + b, 2, 3)
    assert f.done() and f.result() == 5 and calls == [(2, 3)]
    bad = ex.submit(math.sqrt, -1.0)
    with pytest.raises(ValueError):
        bad.result()

    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # Ctrl-C is not a job's failure: it propagates at once
        ex.submit(interrupted)
    ex.close(kill=True)


def test_make_executor_is_inline_for_one_worker():
    assert isinstance(make_executor(1), InlineExecutor)
    ex = make_executor(2, threads=1)
    assert isinstance(ex, ProcessExecutor) and ex.capacity == 2
    ex.close()


def running(pid: int) -> bool:
    """The process exists and is no zombie (read from /proc: Process.is_alive races the pool's own join)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
def test_process_executor_runs_jobs_in_workers_and_kill_leaves_none():
    ex = ProcessExecutor(2, threads=1)
    try:
        pids = {ex.submit(os.getpid).result(timeout=120) for _ in range(4)}
        assert os.getpid() not in pids and 1 <= len(pids) <= 2
        assert ex.submit(math.factorial, 10).result(timeout=60) == 3628800
        ex.submit(time.sleep, 30)  # running when the executor is killed
        workers = list(ex._workers.values())
        assert workers and all(p.is_alive() for p in workers)
    finally:
        ex.close(kill=True)
    assert not any(running(p.pid) for p in workers)  # gone when close returns
    ex.close(kill=True)  # closing twice is harmless


def test_a_dead_worker_is_one_line():
    ex = ProcessExecutor(1, threads=1)
    try:
        with pytest.raises(CodesignError, match="a training worker process died .* --resume"):
            ex.submit(os._exit, 1).result(timeout=120)
    finally:
        ex.close(kill=True)


class HeldExecutor:
    """Jobs run only when the test releases them, in the order it chooses."""

    capacity = 2

    def __init__(self):
        self.jobs: list[tuple[Future, tuple]] = []

    def submit(self, fn, *args):
        future = Future()
        self.jobs.append((future, (fn, args)))
        return future

    def release(self, i):
        future, (fn, args) = self.jobs[i]
        future.set_result(fn(*args))

    def close(self, kill=False):
        pass


def test_two_candidates_in_flight_with_one_network_share_one_training():
    ex = HeldExecutor()
    ev = Evaluator(SPACE, load_board(BOARD), Reward("fps", 10_000.0, "soft"), budget=proxy_budget(1),
                   trainer=fake_trainer, executor=ex)
    assert ev.capacity == 2
    strategy = make_strategy("random", SPACE, seed=3)
    first = None
    while first is None or first.status != STARTED:
        first = ev.propose(0, strategy.ask(), strategy)
    twin = ev.propose(1, first.tokens, strategy)  # the same proposal again: the same network
    assert twin.status == STARTED and twin.network_hash == first.network_hash
    a, b = ev.submit(first), ev.submit(twin)
    assert len(ex.jobs) == 1 and not a.done() and not b.done()
    ex.release(0)
    ra, rb = a.result(), b.result()
    assert (ra.status, rb.status) == ("trained", "cached") and ra.accuracy == rb.accuracy
    assert rb.train_seconds == 0.0 and ra.reward == rb.reward
    again = ev.submit(ev.propose(2, first.tokens, strategy))
    assert again.done() and again.result().status == "cached" and len(ex.jobs) == 1  # from the cache


class DetachedExecutor(InlineExecutor):
    """Runs jobs inline but, like Ray's workers, may not see the run folder."""

    shares_files = False


def writing_trainer(network, dataset, data_dir, budget, model_path=None):
    """fake_trainer that also writes a checkpoint where it is told to."""
    if model_path is not None:
        model_path.parent.mkdir(parents=True, exist_ok=True)
        model_path.write_bytes(b"weights of " + network.content_hash().encode())
    return fake_trainer(network, dataset, data_dir, budget, model_path)


def test_a_detached_training_sends_its_checkpoint_back(tmp_path):
    """An executor whose workers do not see the run folder (Ray): the training writes its checkpoint in a
    temporary folder of the worker, the bytes come back and the search writes them into models/; a failed
    write there is the same one line as a worker's."""
    models = tmp_path / "models"
    ev = Evaluator(SPACE, load_board(BOARD), Reward("fps", 10_000.0, "soft"), budget=proxy_budget(1),
                   trainer=writing_trainer, executor=DetachedExecutor(), models_dir=models)
    strategy = make_strategy("random", SPACE, seed=3)
    record = None
    while record is None or record.status != STARTED:
        record = ev.propose(0, strategy.ask(), strategy)
    done = ev.submit(record).result()
    assert done.status == "trained"
    kept = models / record.network_hash / "model.pt"
    assert kept.read_bytes() == b"weights of " + record.network_hash.encode()
    assert not list(kept.parent.glob(".*"))  # written atomically: no temporary file left
    other = None
    while other is None or other.status != STARTED or other.network_hash == record.network_hash:
        other = ev.propose(1, strategy.ask(), strategy)
    (models / other.network_hash).write_text("a file where the checkpoint's folder should be")
    with pytest.raises(CodesignError, match="cannot write the model checkpoint: .*--resume") as failed:
        ev.submit(other).result()
    assert "\n" not in str(failed.value) and other.network_hash in str(failed.value)
