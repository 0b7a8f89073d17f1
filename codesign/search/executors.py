"""Where trainings run: an `Executor` takes a job and returns a `concurrent.futures.Future`, keeps at
most `capacity` jobs running, and is `close`d (at once, abandoning running jobs, with kill=True).

`InlineExecutor` runs each job when it is submitted (capacity 1: debugging and one-worker runs, the
habit of qonnx's inline path for one worker). `ProcessExecutor` runs jobs in spawned worker processes
that leave Ctrl-C to the search, use their share of the cores and die with the search even when it is
killed outright. `RayExecutor` (codesign.search.ray_executor, Ray being optional) sends jobs to a Ray
cluster as tasks. Executors whose workers may not see the run folder say so (`shares_files` False).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any, Protocol

from hw_space.errors import CodesignError

if TYPE_CHECKING:
    from codesign.search.ray_executor import RaySettings


class Executor(Protocol):
    """What the Evaluator needs to run trainings (and, optionally, `shares_files`: whether the jobs
    run where the run folder is; True when absent)."""

    capacity: int

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future: ...

    def close(self, kill: bool = False) -> None: ...


class InlineExecutor:
    """Runs a job in the calling thread when it is submitted; its future is done when submit returns
    (an exception the job raises is the future's; Ctrl-C and other BaseExceptions propagate)."""

    capacity = 1
    shares_files = True

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except Exception as exc:  # the job's failure, reported by future.result() like a worker's
            future.set_exception(exc)
        return future

    def close(self, kill: bool = False) -> None:
        """Nothing runs between calls: nothing to stop."""


class ProcessExecutor:
    """Jobs in `workers` spawned processes (a ProcessPoolExecutor, created on first submit). A worker
    that dies (out of memory, killed) fails its job with one CodesignError line, or with the stop
    request when a stop signal went to the whole process group (codesign.search.runguard)."""

    shares_files = True

    def __init__(self, workers: int, threads: int = 1):
        self.capacity = max(1, workers)
        self.threads = threads
        self._pool: ProcessPoolExecutor | None = None
        self._workers: dict[int, multiprocessing.process.BaseProcess] = {}

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        if self._pool is None:
            ctx = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(max_workers=self.capacity, mp_context=ctx, initializer=worker_init,
                                             initargs=(self.threads, os.getpid()))
        before = {p.pid for p in multiprocessing.active_children()}
        inner = self._pool.submit(fn, *args)  # spawns a worker here when all are busy (spawn context)
        self._workers.update((p.pid, p) for p in multiprocessing.active_children() if p.pid not in before)
        outer: Future = Future()
        inner.add_done_callback(lambda done: relay(done, outer, _pool_failure))
        return outer

    def close(self, kill: bool = False) -> None:
        """Stop the workers (at once, when kill is set: Ctrl-C, SIGTERM or an error; the workers are gone
        when this returns, so nothing of theirs is written after the run ends)."""
        if self._pool is None:
            return
        pool, self._pool = self._pool, None
        workers, self._workers = list(self._workers.values()), {}
        if kill:
            for p in workers:
                p.terminate()
        pool.shutdown(wait=not kill, cancel_futures=True)
        if kill:
            _reap(workers)


def make_executor(workers: int, threads: int = 1, ray: RaySettings | None = None) -> Executor:
    """Inline for one worker (no process to spawn, tracebacks in place), else a process pool; Ray tasks
    when `ray` (codesign.search.ray_executor.RaySettings) is given."""
    if ray is not None:
        from codesign.search.ray_executor import RayExecutor

        return RayExecutor(workers, ray)
    return InlineExecutor() if workers <= 1 else ProcessExecutor(workers, threads)


def relay(done: Future, outer: Future, translate: Callable[[BaseException], BaseException]) -> None:
    """Pass an inner future's outcome on to the future a caller holds, its failure translated (nothing
    when the caller's future is already cancelled: its executor was closed)."""
    if outer.done():
        return
    if done.cancelled():
        outer.cancel()
        return
    exc = done.exception()
    if exc is not None:
        outer.set_exception(translate(exc))
    else:
        outer.set_result(done.result())


def worker_died(what: str, detail: str = "") -> BaseException:
    """A worker that died, as the run sees it: the stop request when a stop signal went to the whole
    process group (codesign.search.runguard), else one line saying the run can be resumed."""
    from codesign.search import runguard

    stop = runguard.requested()
    if stop is not None:
        return runguard.StopRequested(stop)
    return CodesignError(f"{what} died (out of memory, or killed?){detail}; the journal is consistent: continue the run "
                         "with --resume")


def _pool_failure(exc: BaseException) -> BaseException:
    """A broken pool (a worker died) becomes one line; a job's own exception passes as it is."""
    return worker_died("a training worker process") if isinstance(exc, BrokenProcessPool) else exc


def _reap(processes: list[Any], timeout: float = 5.0) -> None:
    """Wait until terminated worker processes have exited; SIGKILL those still there after `timeout`."""
    from multiprocessing.connection import wait

    pending = {}
    for p in processes:
        try:
            pending[p.sentinel] = p
        except ValueError:  # already closed
            pass
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for sentinel in wait(list(pending), timeout=max(0.0, deadline - time.monotonic())):
            pending.pop(sentinel, None)
    for p in pending.values():
        try:
            p.kill()
        except (OSError, ValueError):
            pass
    # SIGKILL cannot be ignored, but a process in uninterruptible I/O (a worker still importing torch
    # on a loaded machine) dies only when that I/O ends: wait for it, so none outlives the run
    deadline = time.monotonic() + 60.0
    while pending and time.monotonic() < deadline:
        for sentinel in wait(list(pending), timeout=max(0.0, deadline - time.monotonic())):
            pending.pop(sentinel, None)
    # a sentinel is ready when the worker closes its files, a moment before it has exited: join
    # (waitpid) each one so that none is still running when close returns
    for p in processes:
        try:
            p.join(timeout=max(0.1, deadline - time.monotonic()))
        except (AssertionError, ValueError):  # not started by us, or already closed
            pass


# ---------------------------------------------------------------- inside a worker process

_PARENT_PID: int | None = None  # in a worker: the search process it works for


def exit_if_orphaned() -> None:
    """In a worker whose search process is gone (killed): exit at once, writing nothing."""
    if _PARENT_PID is not None and os.getppid() != _PARENT_PID:
        os._exit(1)


def _watch_parent() -> None:
    while True:
        time.sleep(0.5)
        exit_if_orphaned()


def worker_init(threads: int, parent_pid: int | None = None) -> None:
    """Worker processes: leave Ctrl-C to the parent, die with the parent, use their share of the cores.

    The parent stops its workers itself on Ctrl-C, SIGTERM or an error; when it is killed outright
    (SIGKILL) the kernel kills the workers too (Linux: PR_SET_PDEATHSIG), and a watchdog thread
    (every system) exits a worker whose parent is gone within half a second."""
    import signal

    global _PARENT_PID
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if parent_pid is not None:
        _PARENT_PID = parent_pid
        if sys.platform.startswith("linux"):
            try:
                import ctypes

                libc = ctypes.CDLL(None, use_errno=True)
                libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG = 1
            except (OSError, AttributeError):
                pass  # the watchdog below still works
        exit_if_orphaned()  # the parent died before prctl took effect
        threading.Thread(target=_watch_parent, name="codesign-parent-watch", daemon=True).start()
    import torch

    torch.set_num_threads(threads)


__all__ = ["Executor", "InlineExecutor", "ProcessExecutor", "exit_if_orphaned", "make_executor", "relay", "worker_died",
           "worker_init"]
