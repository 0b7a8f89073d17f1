"""Typed reads of plain YAML data for the Design loader: one `CodesignError` line per problem,
naming the file, the field and what is allowed."""

from __future__ import annotations

from typing import Any

from hw_space.errors import CodesignError
from hw_space.files import INT64_MAX


class Reader:
    """Reads typed fields out of plain YAML data, raising one clear line per problem."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, where: str, message: str) -> CodesignError:
        """The error for field `where` of this source (returned, for the caller to raise)."""
        return CodesignError(f"{where}: {message}", source=self.source)

    def mapping(self, value: Any, where: str) -> dict[str, Any]:
        """`value` itself, if it is a mapping."""
        if not isinstance(value, dict):
            raise self.fail(where, f"expected a mapping, got {kind_of(value)}")
        return value

    def keys(self, data: dict[str, Any], where: str, allowed: tuple[str, ...]) -> None:
        """Refuse any key of `data` outside `allowed`."""
        for key in data:
            if key not in allowed:
                raise self.fail(f"{where}.{key}", f"unknown field; allowed: {', '.join(allowed)}")

    def int(self, data: dict[str, Any], key: str, where: str, lo: int, hi: int = INT64_MAX,
            default: int | None = None) -> int:
        """An integer in lo..hi (required unless a default is given)."""
        if key not in data:
            if default is None:
                raise self.fail(f"{where}.{key}", "missing (required)")
            return default
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(f"{where}.{key}", f"expected an integer, got {value!r}")
        if not lo <= value <= hi:
            allowed = f"{lo}..{hi}" if hi != INT64_MAX else f">= {lo} (64-bit)"
            shown = str(value) if len(str(value)) <= 24 else f"{str(value)[:20]}...({len(str(value))} digits)"
            raise self.fail(f"{where}.{key}", f"{shown} is out of range; allowed: {allowed}")
        return value

    def choice(self, data: dict[str, Any], key: str, where: str, allowed: tuple[str, ...],
               default: str) -> str:
        """One of `allowed` (default when absent)."""
        value = data.get(key, default)
        if value not in allowed:
            raise self.fail(f"{where}.{key}", f"{value!r} is not allowed; allowed: {', '.join(allowed)}")
        return value


def kind_of(value: Any) -> str:
    """How an error names the YAML type of `value` ("nothing" for a missing/empty value)."""
    return "nothing" if value is None else type(value).__name__
