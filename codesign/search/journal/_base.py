"""The journal's storage contract: two methods (Optuna's JournalBaseBackend habit), so a run can
keep its logs in a file, or elsewhere (e.g. an object store for a Ray run), without the Study knowing.

A log is one JSON-serializable mapping. `append_logs` makes the logs durable before it returns, all
or a prefix of them (a crash mid-write may lose the tail, never reorder or damage earlier logs);
`read_logs` returns every durable log in append order."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any


class JournalBackend(ABC):
    """Where a journal's logs live."""

    @abstractmethod
    def read_logs(self) -> list[dict[str, Any]]:
        """Every complete log, in the order appended."""

    @abstractmethod
    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        """Append logs durably (one write where the storage allows it)."""

    def close(self) -> None:
        """Release what the backend holds open (nothing by default)."""
        return None


__all__ = ["JournalBackend"]
