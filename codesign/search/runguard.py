"""Guards of a long run: one run per folder (an exclusive lock file), and stop signals that end it
cleanly (SIGINT, SIGTERM and SIGHUP raise StopRequested, a KeyboardInterrupt, in the main thread).

The lock is `fcntl.flock` on RUN/.lock, held for the whole run and released by the kernel on any
exit, SIGKILL included; the file holds the PID of its holder so a refused run can say who holds it.
A PID left in the file by a run that died (the kernel released its lock) is taken over.
"""

from __future__ import annotations

import errno
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hw_space.errors import CodesignError

LOCK = ".lock"


# ---------------------------------------------------------------- the run-folder lock

def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


class RunLock:
    """An exclusive lock of a run folder; `acquire` it, `release` it (or use it as a context manager)."""

    def __init__(self, folder: Path, fd: int, created: list[Path], stale_pid: int | None):
        self.folder = folder
        self.path = folder / LOCK
        self.stale_pid = stale_pid  # PID left by a run that ended without releasing the lock (killed)
        self._fd: int | None = fd
        self._created = created  # folders this lock created (removed again when the run left nothing)

    @classmethod
    def acquire(cls, folder: str | Path, command: str = "codesign search") -> RunLock:
        """Lock `folder` (created when missing) or fail at once with one line naming the holder's PID."""
        folder = Path(folder)
        if os.path.lexists(folder) and not folder.is_dir():
            raise CodesignError("exists and is not a folder; allowed: a run folder (existing or new)", source=str(folder))
        created = []
        probe = folder
        while not os.path.lexists(probe) and probe != probe.parent:
            created.append(probe)
            probe = probe.parent
        path = folder / LOCK
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            _remove_empty(created)
            raise CodesignError(f"cannot create the run folder's lock file: {exc.strerror or exc}",
                                source=str(path)) from None
        try:
            holder = _lock(fd)
            if holder is not None:
                who, stop = (f"PID {holder}", f"stop it with `kill {holder}`") if holder else ("a process", "stop it")
                raise CodesignError(f"{command} is running in this run folder ({who} holds {path.name}); only one "
                                    f"run per folder: wait for it to end, {stop}, or choose another --out",
                                    source=str(folder))
            stale = _read_pid(fd)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            os.fsync(fd)
        except OSError as exc:  # e.g. no space left for the PID
            if created:
                _unlink(path)
            os.close(fd)
            _remove_empty(created)
            raise CodesignError(f"cannot lock the run folder: {exc.strerror or exc}", source=str(path)) from None
        except BaseException:
            os.close(fd)
            _remove_empty(created)
            raise
        return cls(folder, fd, created, stale if stale != os.getpid() else None)

    def release(self) -> None:
        """Clear the PID, unlock; a folder this lock created and nothing else wrote into is removed."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)  # an empty lock file: the run ended (a PID left behind means it was killed)
        except OSError:
            pass
        leave_nothing = bool(self._created) and _only_lock(self.folder)
        if leave_nothing:
            _unlink(self.path)
        os.close(fd)  # closing the last descriptor releases the flock
        if leave_nothing:
            _remove_empty(self._created)

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _lock(fd: int) -> int | None:
    """Take the lock; None on success, else the holder's PID (0 when it has not written it yet)."""
    try:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return None
    except (ImportError, OSError) as exc:
        if not isinstance(exc, OSError) or exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            # no flock here (another OS, some network mounts): fall back to the PID in the file
            pid = _read_pid(fd)
            return pid if pid and pid != os.getpid() and _alive(pid) else None
    for _ in range(20):  # the holder writes its PID right after locking
        pid = _read_pid(fd)
        if pid:
            return pid
        time.sleep(0.025)
    return 0


def _only_lock(folder: Path) -> bool:
    try:
        return [p.name for p in folder.iterdir()] == [LOCK]
    except OSError:
        return False


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def _remove_empty(folders: list[Path]) -> None:
    for f in folders:  # deepest first
        try:
            f.rmdir()
        except OSError:
            return


def is_lock_file(path: Path) -> bool:
    return path.name == LOCK


# ---------------------------------------------------------------- stop signals

class StopRequested(KeyboardInterrupt):
    """A stop signal (SIGINT, SIGTERM, SIGHUP) received by the run: unwinds like Ctrl-C."""

    def __init__(self, signum: int):
        self.signum = int(signum)
        super().__init__(self.name)

    @property
    def name(self) -> str:
        try:
            return signal.Signals(self.signum).name
        except ValueError:
            return f"signal {self.signum}"

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def exit_code(stop: BaseException) -> int:
    """128 + the signal number: 130 for Ctrl-C (a plain KeyboardInterrupt), 143 for SIGTERM."""
    return stop.exit_code if isinstance(stop, StopRequested) else 128 + signal.SIGINT


def stop_name(stop: BaseException) -> str:
    return stop.name if isinstance(stop, StopRequested) else "SIGINT"


_received: list[int] = []


def requested() -> int | None:
    """The stop signal received during `stop_signals()`, if any."""
    return _received[0] if _received else None


def _on_stop(signum: int, frame: object) -> None:
    first = not _received
    _received.append(signum)
    if first:  # later signals do not interrupt the clean-up the first one started
        raise StopRequested(signum)


@contextmanager
def stop_signals() -> Iterator[None]:
    """For the block: SIGINT and SIGTERM (and SIGHUP unless ignored, e.g. under nohup) raise StopRequested
    in the main thread, once. SIGINT is handled even when inherited as ignored (a job started in the
    background by a script), so `kill -INT` stops the run as Ctrl-C does. Handlers are restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is None:
            continue
        current = signal.getsignal(sig)
        if name == "SIGHUP" and current is signal.SIG_IGN:
            continue
        previous[sig] = current
        signal.signal(sig, _on_stop)
    _received.clear()
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        _received.clear()


__all__ = ["LOCK", "RunLock", "StopRequested", "exit_code", "is_lock_file", "requested", "stop_name", "stop_signals"]
