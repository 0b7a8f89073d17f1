"""The streaming max-pool of a dataflow design: two passes, along the rows then down the columns
(hls_templates' max_pool_axis twice), as two stages: MaxPoolRows and MaxPool."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hw_space.layers.base import FoldArrays, Resources, _ints, _res
from hw_space.layers.channel_pool import ChannelPool
from hw_space.memory import cdiv, memory_cost
from hw_space.schedules import max_pool_axis_flags


@dataclass(frozen=True)
class MaxPool(ChannelPool):
    """Streaming max-pool over integer activations, PE channels per cycle.

    Our own formula (FINN marks its StreamingMaxPool estimate inaccurate): the kernel reads every
    input element once, PE per cycle, so cycles = IFMh * IFMw * C / PE. Constraint: C % PE == 0.
    `cycles` is that row pass, the pool's pace; as a stage MaxPool is the column pass (cols_cycles),
    which holds the pool's resources, and MaxPoolRows the row pass.
    """

    name: str
    ifm_h: int
    ifm_w: int
    channels: int
    kernel: int
    stride: int
    template = "maxpool"
    kind = "pool"

    def legal(self, pe):
        return self.fold_axes()[0].legal(pe)

    def cycles(self, pe):
        (pe,) = _ints(pe)
        return self.ifm_h * self.ifm_w * cdiv(self.channels, pe)

    @property
    def ofm_w(self) -> int:
        return (self.ifm_w - self.kernel) // self.stride + 1

    def cols_cycles(self, pe):
        """The second pass (down the columns) reads the row pass's output: IFMh * OFMw * C/PE."""
        (pe,) = _ints(pe)
        return self.ifm_h * self.ofm_w * cdiv(self.channels, pe)

    def width(self, pe, bits):
        pe, bits = _ints(pe, bits)
        return pe * bits

    def resources(self, pe, bits) -> Resources:
        """One output row of running maxima (LUTRAM) plus PE comparators of `bits` bits."""
        pe, bits = _ints(pe, bits)
        depth = cdiv(self.ifm_w, self.stride) * cdiv(self.channels, pe)
        lut, bram, uram = memory_cost(0, pe * bits, depth)
        return _res(pe, lut=100 + 2 * pe * bits + lut, ff=64 + 2 * pe * bits, bram=bram, uram=uram, lutram=lut)

    # ------------------------------------------------------------------ the uniform interface
    def stage_cycles(self, a: FoldArrays) -> np.ndarray:
        return self.cols_cycles(a.pe)

    def stage_width(self, a: FoldArrays) -> np.ndarray:
        return self.width(a.pe, a.in_bits)

    def detail(self, a: FoldArrays) -> dict[str, Any]:
        """The column pass: IFMh positions, each OFMw * C/PE words."""
        return {"outer": 1, "n": self.ifm_h, "inner": self.ofm_w * cdiv(self.channels, a.pe), "k": self.kernel,
                "stride": self.stride, "pe": a.pe}

    def schedule(self, d: dict[str, int], cycles: int) -> tuple[np.ndarray, np.ndarray]:
        return max_pool_axis_flags(d["outer"], d["n"], d["inner"], d["k"], d["stride"])


@dataclass(frozen=True)
class MaxPoolRows(MaxPool):
    """The row pass of a max-pool: IFMh rows of IFMw positions, C/PE words each (MaxPool.cycles).
    Its resources are counted on the column pass."""

    kind = "pool_rows"

    @classmethod
    def of(cls, pool: MaxPool) -> MaxPoolRows:
        """The row pass of `pool`, named <pool>_rows."""
        return cls(f"{pool.name}_rows", pool.ifm_h, pool.ifm_w, pool.channels, pool.kernel, pool.stride)

    def stage_cycles(self, a: FoldArrays) -> np.ndarray:
        return self.cycles(a.pe)

    def stage_resources(self, a: FoldArrays) -> Resources:
        return Resources.zeros(a.n)

    def detail(self, a: FoldArrays) -> dict[str, Any]:
        return {"outer": self.ifm_h, "n": self.ifm_w, "inner": cdiv(self.channels, a.pe), "k": self.kernel,
                "stride": self.stride, "pe": a.pe}
