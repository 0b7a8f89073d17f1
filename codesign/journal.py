"""Run storage: the append-only journal of candidates (`journal.jsonl`) and the atomic controller
checkpoint (`controller.pt`), so a search killed at any moment resumes without redoing work."""

from __future__ import annotations

import json
import os
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
    """Append-only JSON-lines file; each record is flushed and fsync'd before `append` returns."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._fh = None

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
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", encoding="utf-8")
        self._fh.write(json.dumps(record.to_dict(), sort_keys=True) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def save_state(path: str | Path, state: dict[str, Any]) -> None:
    """torch.save atomically: a temporary file in the same folder, fsync'd, renamed over the old one."""
    import torch

    with atomic_output(path) as tmp:
        torch.save(state, tmp)


def load_state(path: str | Path) -> dict[str, Any] | None:
    """The saved controller state, or None when there is none yet."""
    import torch

    path = Path(path)
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # a damaged checkpoint: one line, not a traceback
        raise CodesignError(f"cannot read the controller state ({exc})", source=str(path)) from None


__all__ = ["JOURNAL", "STATE", "STATUSES", "Journal", "TrialRecord", "load_state", "save_state"]
