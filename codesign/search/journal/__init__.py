"""Run storage: the append-only journal of candidates and the atomic controller checkpoint, so a
search killed at any moment resumes without redoing work.

The journal is the run's one source of truth: a resumed search rebuilds its strategy by replaying it
(codesign.search.study.Study.restore), so the checkpoint (checkpoint.py) is a snapshot that may lag
behind it without harm. Storage and meaning are apart: a backend (_base.py) reads and appends logs,
records.py says what a log means, `RunLog` puts the two together. `Journal` is the run folder's:
RUN/journal.jsonl holds the finish record of every evaluated candidate, in candidate order (the
format journals always had), and RUN/journal.started.jsonl the start record of every candidate
submitted for evaluation, so a resume re-queues the ones that were in flight. (Two files: tools and
users that read journal.jsonl keep seeing finished candidates only.)
"""

from __future__ import annotations

from pathlib import Path

from codesign.search.journal._base import JournalBackend
from codesign.search.journal.checkpoint import STATE, load_state, save_state
from codesign.search.journal.file import JSONLFile
from codesign.search.journal.records import START, STARTED, STATUSES, TrialRecord, from_log, to_log
from hw_space.errors import CodesignError

JOURNAL = "journal.jsonl"
STARTED_SUFFIX = ".started"  # journal.jsonl -> journal.started.jsonl


class RunLog:
    """The records of a run over storage backends: finish records through this object's own
    `read_logs` / `append_logs`, start records through `self.starts` (a mixin over a backend)."""

    starts: JournalBackend  # and, from the backend mixed in after it: read_logs, append_logs, path

    def _records(self, logs: list[dict], op: str | None, what: str, source: JournalBackend) -> list[TrialRecord]:
        out = []
        for i, log in enumerate(logs):
            try:
                got, record = from_log(log)
                if got != op:
                    raise ValueError(f"a {got or 'finish'} record among the {op or 'finish'} records")
            except ValueError as exc:
                raise CodesignError(f"{what} {i + 1} is not a journal record ({exc}); the run folder is damaged",
                                    source=str(getattr(source, "path", "")) or None) from None
            out.append(record)
        return out

    def load(self) -> list[TrialRecord]:
        """Every finish record, in the order journaled."""
        return self._records(self.read_logs(), None, "record", self)

    def load_started(self) -> dict[int, TrialRecord]:
        """The start record of every candidate submitted for evaluation, by number (the last one when
        a resumed run re-queued it), whether or not it has finished since."""
        return {r.number: r for r in self._records(self.starts.read_logs(), START, "start record", self.starts)}

    def append(self, record: TrialRecord) -> None:
        self.append_many([record])

    def append_many(self, records: list[TrialRecord]) -> None:
        """Finish records, with one write where the storage allows it."""
        self.append_logs([to_log(r) for r in records])

    def start(self, records: list[TrialRecord]) -> None:
        """Start records of candidates about to be submitted, with one write."""
        self.starts.append_logs([to_log(r, START) for r in records])


class Journal(RunLog, JSONLFile):
    """The run folder's journal: finish records in `path` (JSONL), start records beside it."""

    def __init__(self, path: str | Path):
        JSONLFile.__init__(self, path)
        self.starts = JSONLFile(self.path.with_name(self.path.stem + STARTED_SUFFIX + self.path.suffix))

    def close(self) -> None:
        JSONLFile.close(self)
        self.starts.close()


__all__ = ["JOURNAL", "STARTED", "STATE", "STATUSES", "Journal", "JournalBackend", "JSONLFile", "RunLog", "TrialRecord",
           "load_state", "save_state"]
