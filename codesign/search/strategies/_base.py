"""The strategy contract: what the Study needs from a search strategy (ask / resample_hardware /
tell / state_dict), and BaseStrategy, its no-op defaults (Optuna's BaseSampler habit)."""

from __future__ import annotations

from typing import Any, Protocol


class Strategy(Protocol):
    """What the Study needs from a search strategy."""

    name: str

    def ask(self) -> list[int]: ...

    def resample_hardware(self, tokens: list[int], n: int) -> list[list[int]]: ...

    def tell(self, tokens: list[int], reward: float, objectives: dict[str, float] | None = None) -> None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...



__all__ = ["Strategy"]
