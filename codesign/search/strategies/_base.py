"""The strategy contract: what the Study needs from a search strategy (ask / resample_hardware /
tell / can_ask / state_dict), and BaseStrategy, the defaults a strategy may keep (Optuna's
BaseSampler habit: the interface grows through hooks with defaults)."""

from __future__ import annotations

from typing import Any, Protocol


class Strategy(Protocol):
    """What the Study needs from a search strategy."""

    name: str

    def ask(self) -> list[int]: ...

    def resample_hardware(self, tokens: list[int], n: int) -> list[list[int]]: ...

    def tell(self, tokens: list[int], reward: float, objectives: dict[str, float] | None = None) -> None: ...

    def can_ask(self, pending: int, batch: int) -> int: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class BaseStrategy:
    """Defaults: a strategy learns in rounds of `batch` proposals, and a tell teaches it nothing."""

    name = ""
    # False: it learns from the one scalar reward only, so it refuses a run of several objectives
    # without one (codesign.search.objectives.use_objectives)
    multi_objective = True

    def can_ask(self, pending: int, batch: int) -> int:
        """How many proposals the strategy can make now without waiting for a tell, with `pending` of
        its proposals not yet told, when the study keeps `batch` in flight. Default: a round of
        `batch` once every earlier proposal is told, none before (its next proposals depend on them)."""
        return batch if pending == 0 else 0

    def tell(self, tokens: list[int], reward: float, objectives: dict[str, float] | None = None) -> None:
        """Learn from one result (nothing by default)."""


__all__ = ["BaseStrategy", "Strategy"]
