"""Trainings on Ray: `RayExecutor` sends each job to a Ray cluster as a task of `cpus_per_task` CPUs
(`ray.init(address=...)`; a local runtime it starts and stops itself when no address is given).

Same contract as the process pool (codesign.search.executors): `capacity` jobs in flight (the search's
--workers, so the candidate sequence does not depend on the executor), a task whose worker dies (out
of memory, a lost node) fails its job with one CodesignError line and is not retried (the run stops,
--resume re-queues it), and `close(kill=True)` cancels the outstanding tasks and stops the local
runtime. The workers may run on other machines, so they do not write into the run folder
(`shares_files` is False: a training's checkpoint comes back with its result).

Ray is optional (`pip install -e '.[ray]'`): this module imports it only when an executor is made.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from codesign.search.executors import relay, worker_died
from hw_space.errors import CodesignError

INSTALL = "pip install -e '.[ray]' in the codesign checkout (or pip install 'ray>=2.9,<3')"
PACKAGES = ("codesign", "hw_space", "quant")  # what a training imports; shipped to a cluster's workers
CONNECT_TIMEOUT_S = 5.0


def require_ray() -> ModuleType:
    """The ray module, or one CodesignError line saying how to install it."""
    try:
        import ray
    except ImportError:
        raise CodesignError(f"--executor ray needs Ray, which is not installed in this Python; install it with: "
                            f"{INSTALL}") from None
    return ray


@dataclass(frozen=True)
class RaySettings:
    """Where the Ray executor runs trainings: the cluster's address (None: a local runtime) and the
    CPUs each training task asks for (its torch threads)."""

    address: str | None = None
    cpus_per_task: int = 1


def _call(fn: Callable[..., Any], *args: Any) -> Any:
    """The Ray task: run one job (a module-level function, pickled by reference)."""
    return fn(*args)


class RayExecutor:
    """Jobs as Ray tasks; connects (or starts the local runtime) when made, so an unreachable cluster
    fails before the run writes anything. See the module docstring."""

    shares_files = False

    def __init__(self, workers: int, settings: RaySettings, local_cpus: int | None = None):
        self.capacity = max(1, workers)
        self.settings = settings
        self._ray = require_ray()
        self._owned = False  # whether this executor connected (and so disconnects / stops the local runtime)
        self._lock = threading.Lock()
        self._running: dict[Any, Future] = {}  # ObjectRef -> the future the caller holds
        self._connect(local_cpus)
        self._task = self._ray.remote(num_cpus=settings.cpus_per_task, max_retries=0, retry_exceptions=False)(_call)

    # ------------------------------------------------------------ connecting
    def _connect(self, local_cpus: int | None) -> None:
        ray, address = self._ray, self.settings.address
        if ray.is_initialized():  # the caller's own connection: used as it is, left open
            self._check_cpus()
            return
        if address:
            _probe(address)
        options: dict[str, Any] = {"logging_level": logging.ERROR}
        if "://" not in (address or ""):  # Ray Client (ray://) takes no dashboard option
            options["include_dashboard"] = False
        if address:
            # the cluster's workers run the driver's code, whatever the nodes have installed
            options["runtime_env"] = {"py_modules": [_package_dir(name) for name in PACKAGES],
                                      "excludes": ["__pycache__", "*.pyc"]}
        else:
            options["num_cpus"] = local_cpus
        handlers = _stop_handlers()
        self._owned = True  # from here on: shut down what ray.init started, also when it fails half-way
        try:
            ray.init(address=address or "local", **options)  # "local": a new runtime, never one a `ray start` left
            self._check_cpus()
        except BaseException as exc:
            self._disconnect()
            if isinstance(exc, SystemExit) and exc.code == getattr(signal, "SIGTERM", None):
                from codesign.search.runguard import StopRequested  # SIGTERM under Ray's handler during ray.init

                raise StopRequested(signal.SIGTERM) from None
            if isinstance(exc, (KeyboardInterrupt, CodesignError)):
                raise
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            if not address:
                raise CodesignError(f"cannot start a local Ray runtime: {first}") from None
            raise CodesignError(f"cannot connect to the Ray cluster at {address}: {first}; check that the driver runs "
                                "the cluster's Ray and Python versions and, where the cluster uses token "
                                "authentication, that RAY_AUTH_MODE=token and its token are set here "
                                "(docs/ray.md)") from None
        finally:
            _restore(handlers)  # ray.init sets its own SIGTERM handler; the search's clean stop keeps its own

    def _check_cpus(self) -> None:
        """Refuse a task size no node of the cluster can run (Ray would wait for it forever)."""
        cpus = [float(n.get("Resources", {}).get("CPU", 0)) for n in self._ray.nodes() if n.get("Alive")]
        need = self.settings.cpus_per_task
        if need > max(cpus, default=0):
            where = f"the Ray cluster at {self.settings.address}" if self.settings.address else "the local Ray runtime"
            raise CodesignError(f"--ray-cpus-per-task {need}: no node of {where} has {need} CPUs (largest: "
                                f"{max(cpus, default=0):g}); allowed: 1 to the CPUs of the largest node")

    def _disconnect(self) -> None:
        if self._owned:
            self._owned = False
            handlers = _stop_handlers()
            try:
                self._ray.shutdown()
            finally:
                _restore(handlers)

    # ------------------------------------------------------------ jobs
    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        ref = self._task.remote(fn, *args)
        outer: Future = Future()
        with self._lock:
            self._running[ref] = outer

        def done(inner: Future) -> None:
            with self._lock:
                self._running.pop(ref, None)
            relay(inner, outer, self._failure)

        ref.future().add_done_callback(done)
        return outer

    def _failure(self, exc: BaseException) -> BaseException:
        """A job's own exception as it is (like the process pool); a task Ray could not finish (its
        worker died, out of memory, a lost node, cancelled) as one line."""
        exceptions = self._ray.exceptions
        if isinstance(exc, exceptions.RayTaskError):
            cause = getattr(exc, "cause", None)
            if isinstance(cause, Exception):
                return cause
        if isinstance(exc, exceptions.RayError):
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200].rstrip(".")
            return worker_died("a Ray worker running a training", f" (Ray: {type(exc).__name__}: {first})")
        return exc

    def close(self, kill: bool = False) -> None:
        """Cancel the tasks still outstanding (force: their workers are killed), then disconnect, which
        stops the local runtime this executor started. Nothing of the run is left running on Ray."""
        with self._lock:
            running, self._running = dict(self._running), {}
        for ref, outer in running.items():
            try:
                self._ray.cancel(ref, force=True)
            except Exception:  # already finished, or the runtime is gone
                pass
            outer.cancel()
        self._disconnect()


def _package_dir(name: str) -> str:
    import importlib
    from pathlib import Path

    return str(Path(importlib.import_module(name).__file__).parent)


def _probe(address: str) -> None:
    """Fail at once on a `host:port` no cluster listens at (Ray itself would wait minutes)."""
    if "://" in address or address in ("auto", "local"):
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise CodesignError(f"--ray-address {address}: not a cluster address; allowed: HOST:PORT of the head node "
                            "(its GCS port, 6379 by default) or auto")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise CodesignError(f"--ray-address {address}: no Ray cluster answers there ({exc.strerror or exc}); start one "
                            "with `ray start --head` on the head node, or check the address") from None


_STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))


def _stop_handlers() -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.getsignal(sig) for sig in _STOP_SIGNALS}


def _restore(handlers: dict[int, Any]) -> None:
    for sig, handler in handlers.items():
        if handler is not None and signal.getsignal(sig) is not handler:
            signal.signal(sig, handler)


__all__ = ["INSTALL", "RayExecutor", "RaySettings", "require_ray"]
