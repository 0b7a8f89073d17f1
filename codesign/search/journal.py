"""Run storage: the append-only journal of candidates (`journal.jsonl`) and the atomic controller
checkpoint (`controller.pt`), so a search killed at any moment resumes without redoing work.

The journal is the run's one source of truth: a resumed search rebuilds its strategy by replaying
it (codesign.search.study.Study.restore), so the checkpoint is a snapshot that may lag behind the
journal without harm. The checkpoint holds tensors and plain values only and is read with
`torch.load(weights_only=True)`: a run folder from elsewhere can never make us execute a pickle."""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hw_space.errors import CodesignError
from hw_space.files import atomic_output

JOURNAL = "journal.jsonl"
STATE = "controller.pt"
STATUSES = ("trained", "cached", "pruned")


@dataclass
class TrialRecord:
    """One evaluated candidate, as journaled: what was sampled, what it cost, what it scored."""

    number: int
    tokens: list[int]
    design: dict[str, Any]
    network_hash: str
    status: str
    reward: float
    accuracy: float | None = None
    estimate: dict[str, Any] | None = None
    resampled: int = 0
    rejected: int = 0
    train_seconds: float = 0.0
    cost_seconds: float = 0.0
    strategy: str = ""
    reason: str = ""
    timestamp: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    # what a resumed run replays to rebuild the strategy (codesign.search.study.Study.restore): "batch"
    # [number of the batch's first candidate, candidates asked in it], "asked" the proposal as the
    # strategy made it, "calls" the calls [method, args, kwargs] the cost model made on the strategy
    replay: dict[str, Any] = field(default_factory=dict)

    @property
    def fps(self) -> float:
        return float(self.estimate["fps"]) if self.estimate else 0.0

    @property
    def feasible(self) -> bool:
        return self.status != "pruned"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialRecord:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


class Journal:
    """Append-only JSON-lines file; records are written and fsync'd before `append` returns. A
    failed write (disk full, read-only) is one CodesignError line naming the file; whatever part of
    it reached the disk is a torn tail that `load` cuts."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._fd: int | None = None

    def load(self) -> list[TrialRecord]:
        """Every complete record. A torn last line (a crash mid-write) is dropped and cut from the
        file so later appends start on a clean line; a broken line elsewhere is an error."""
        if not self.path.exists():
            return []
        raw = self.path.read_bytes()
        body, sep, _torn = raw.rpartition(b"\n")  # anything after the last newline is a torn write
        good_end = len(body) + len(sep)
        records: list[TrialRecord] = []
        for i, line in enumerate(body.split(b"\n") if body else []):
            if not line.strip():
                continue
            try:
                records.append(TrialRecord.from_dict(json.loads(line)))
            except (ValueError, TypeError) as exc:
                raise CodesignError(f"line {i + 1} is not a journal record ({exc}); the run folder is damaged",
                                    source=str(self.path)) from None
        if good_end < len(raw):
            with open(self.path, "r+b") as fh:
                fh.truncate(good_end)
                fh.flush()
                os.fsync(fh.fileno())
        return records

    def append(self, record: TrialRecord) -> None:
        self.append_many([record])

    def append_many(self, records: list[TrialRecord]) -> None:
        """Append records with one write and one fsync."""
        if not records:
            return
        data = "".join(json.dumps(r.to_dict(), sort_keys=True) + "\n" for r in records).encode("utf-8")
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


def save_state(path: str | Path, state: dict[str, Any]) -> None:
    """torch.save atomically: a temporary file in the same folder, fsync'd, renamed over the old one.
    A failed write (disk full, read-only folder) is one CodesignError line naming the file."""
    import torch

    try:
        with atomic_output(path) as tmp:
            with open(tmp, "wb") as fh:  # through a Python file: a full disk is an OSError, not torch's RuntimeError
                torch.save(state, fh)
    except OSError as exc:
        raise CodesignError(f"cannot write the controller state: {exc.strerror or exc}; the run stays resumable "
                            "(free the space or fix the folder, then add --resume)", source=str(path)) from None


_WITHOUT = "a run resumes from its journal alone: delete the file to resume (only the search time spent is lost)"


def load_state(path: str | Path) -> dict[str, Any] | None:
    """The saved controller state, or None when there is none yet. Loaded with weights_only=True
    (tensors and plain values): a file that would run code when unpickled is refused, one line."""
    import pickle

    import torch

    path = Path(path)
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if found:
            raise CodesignError(f"refusing to load the controller state: loading it would call {found.group(1)}, "
                                "and a controller checkpoint holds tensors and plain values only (this file was not "
                                f"written by this version of codesign); {_WITHOUT}", source=str(path)) from None
        raise CodesignError("cannot read the controller state (not a checkpoint of tensors and plain values; "
                            f"damaged?); {_WITHOUT}", source=str(path)) from None
    except Exception as exc:  # a damaged checkpoint: one line, not a traceback
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CodesignError(f"cannot read the controller state ({first}); {_WITHOUT}", source=str(path)) from None
    if not isinstance(state, dict):
        raise CodesignError("not a controller state (expected a dict)", source=str(path))
    return state


__all__ = ["JOURNAL", "STATE", "STATUSES", "Journal", "TrialRecord", "load_state", "save_state"]
