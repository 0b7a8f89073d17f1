"""The one folding rule: a folding axis (PE, SIMD, the window's SIMD) splits a loop of `total`
iterations into equal parts, so its value must divide `total` (FINN's MVAU, ConvolutionInputGenerator
and StreamingMaxPool constraints). The cost model's legality, the folding optimizer's choices and
the backend's check of a design all ask a FoldAxis; nothing else writes the rule."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hw_space.errors import CodesignError


def divisors(n: int) -> list[int]:
    """All positive divisors of n, ascending."""
    small = [d for d in range(1, int(n ** 0.5) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


@dataclass(frozen=True)
class FoldAxis:
    """One folding axis of one hardware stage: its design field, the loop it folds, what that loop counts."""

    field: str   # the Design field that sets it: "pe", "simd" or "swg_simd"
    total: int   # the loop it folds (MH, MW, channels ...)
    what: str    # what the loop counts, for messages ("output channels", "inputs per output (K*K*Cin)")

    def values(self) -> list[int]:
        """Every legal value, ascending."""
        return divisors(self.total)

    def legal(self, value) -> np.ndarray:
        """Vectorized: value >= 1 and divides total."""
        v = np.asarray(value, dtype=np.int64)
        return (v >= 1) & (self.total % np.maximum(v, 1) == 0)

    def check(self, layer: str, value: int) -> None:
        """Refuse an illegal value of this axis in a design, naming the design field."""
        if not bool(self.legal(value)):
            raise CodesignError(f"hardware.layers.{layer}.{self.field}: {value} must divide the layer's "
                                f"{self.total} {self.what}")
