"""The journal's file backend: an append-only JSON-lines file, fsync'd per append, whose torn last
line (a crash mid-write) is cut on read (Optuna's JournalFileBackend habit)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from codesign.search.journal._base import JournalBackend
from hw_space.errors import CodesignError


class JSONLFile(JournalBackend):
    """Append-only JSON-lines file; logs are written and fsync'd before `append_logs` returns. A
    failed write (disk full, read-only) is one CodesignError line naming the file; whatever part of
    it reached the disk is a torn tail that `read_logs` cuts."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._fd: int | None = None

    def read_logs(self) -> list[dict[str, Any]]:
        """Every complete log. A torn last line (a crash mid-write) is dropped and cut from the file so
        later appends start on a clean line; a broken line elsewhere is an error."""
        if not self.path.exists():
            return []
        raw = self.path.read_bytes()
        body, sep, _torn = raw.rpartition(b"\n")  # anything after the last newline is a torn write
        good_end = len(body) + len(sep)
        logs: list[dict[str, Any]] = []
        for i, line in enumerate(body.split(b"\n") if body else []):
            if not line.strip():
                continue
            try:
                log = json.loads(line)
            except ValueError as exc:
                raise CodesignError(f"line {i + 1} is not a journal record ({exc}); the run folder is damaged",
                                    source=str(self.path)) from None
            logs.append(log)
        if good_end < len(raw):
            with open(self.path, "r+b") as fh:
                fh.truncate(good_end)
                fh.flush()
                os.fsync(fh.fileno())
        return logs

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        """Append logs with one write and one fsync."""
        if not logs:
            return
        data = "".join(json.dumps(log, sort_keys=True) + "\n" for log in logs).encode("utf-8")
        try:
            if self._fd is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
            self._write(data)
            os.fsync(self._fd)
        except OSError as exc:
            raise CodesignError(f"cannot write the journal: {exc.strerror or exc}; the run stays resumable "
                                "(free the space or fix the folder, then add --resume)", source=str(self.path)) from None

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


__all__ = ["JSONLFile"]
