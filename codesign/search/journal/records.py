"""What the journal's logs mean: a finish record per evaluated candidate (TrialRecord, the format
journals have always had: no op tag) and a start record per candidate submitted for evaluation
(op "start", written before submission, so a resume re-queues what was in flight)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from hw_space.errors import CodesignError

STATUSES = ("trained", "cached", "pruned")
STARTED = "started"  # status of a start record whose candidate fits (it is trained or served from the cache)
OP = "op"            # key of a log's operation tag; absent: a finish record
START = "start"      # the tag of a start record


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
        record = cls(**known)
        record.estimate = with_energy(record.estimate, record.design)
        return record


def with_energy(est: dict[str, Any] | None, design: dict[str, Any] | None) -> dict[str, Any] | None:
    """An estimate with the power, energy and model-size keys: as it is when it has them; for a record
    journaled before they existed, computed from its resources, latency and design (hw_space.estimate.
    energy_fields), so old journals load, resume and rank by energy. Unchanged when that fails."""
    if not est or "energy_mj" in est or not isinstance(design, dict):
        return est
    from hw_space.design import design_from_dict
    from hw_space.estimate import energy_fields

    try:
        return {**est, **energy_fields(est, design_from_dict(design, "<journal record>"))}
    except (CodesignError, KeyError, TypeError, ValueError, ZeroDivisionError):  # damaged: keep what it has
        return est


def to_log(record: TrialRecord, op: str | None = None) -> dict[str, Any]:
    """A record as one log: a finish record as it always was, a start record tagged with its op."""
    log = record.to_dict()
    if op is not None:
        log[OP] = op
    return log


def from_log(log: Any) -> tuple[str | None, TrialRecord]:
    """(op, record) of one log (op None: a finish record); ValueError when the log is no record."""
    if not isinstance(log, dict):
        raise ValueError("not a mapping")
    op = log.get(OP)
    if op not in (None, START):
        raise ValueError(f"unknown op {str(op)[:40]!r}")
    try:
        return op, TrialRecord.from_dict(log)
    except TypeError as exc:
        raise ValueError(str(exc)) from None


__all__ = ["OP", "START", "STARTED", "STATUSES", "TrialRecord", "from_log", "to_log", "with_energy"]
