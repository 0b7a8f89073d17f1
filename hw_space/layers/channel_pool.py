"""What every pool kind shares: PE channels per word, folded over its channels, every channel per
cycle when the design leaves the layer out (FINN's pools take a whole pixel per cycle)."""

from __future__ import annotations

from typing import Any

import numpy as np

from hw_space.fold_axes import FoldAxis
from hw_space.layers.base import FoldArrays, HwKind, Resources


class ChannelPool(HwKind):
    """A pool stage of a dataflow design: `channels` (a dataclass field of the subclass) split into
    words of PE; subclasses give `cycles(pe)` and `resources(pe, bits)`."""

    channels: int
    AXIS_LABELS = {"pe": ("channels", "PE")}

    def cycles(self, pe) -> np.ndarray:
        raise NotImplementedError

    def resources(self, pe, bits) -> Resources:
        raise NotImplementedError

    def fold_axes(self) -> tuple[FoldAxis, ...]:
        return (FoldAxis("pe", self.channels, "channels"),)

    def defaults(self) -> dict[str, int]:
        """All channels per cycle: FINN's pools take a whole pixel per cycle and they are cheap."""
        return {"pe": self.channels}

    def in_elems(self, a: FoldArrays) -> np.ndarray:
        return a.pe

    def out_elems(self, a: FoldArrays) -> np.ndarray:
        return a.pe

    def stage_cycles(self, a: FoldArrays) -> np.ndarray:
        return self.cycles(a.pe)

    def stage_resources(self, a: FoldArrays) -> Resources:
        return self.resources(a.pe, a.in_bits)

    def summary(self, d: dict[str, int], width: int) -> dict[str, Any]:
        return {"pe": d["pe"]}
