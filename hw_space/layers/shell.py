"""The platform shell around every accelerator: a fixed cost, outside the stream and the folding."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hw_space.layers.base import FoldArrays, HwKind, Resources, Role

# The AXI DMA, its interconnect and reset logic around every accelerator. Approximate utilization
# of an AXI DMA (MM2S + S2MM, 64-bit stream) plus a SmartConnect, from the IP product guides
# (PG021, PG247); a fixed cost so small designs are not reported as free.
PLATFORM_SHELL = {"LUT": 2500, "FF": 3500, "BRAM18": 4, "URAM": 0, "DSP": 0}


@dataclass(frozen=True)
class PlatformShell(HwKind):
    """The AXI DMA and interconnect (PLATFORM_SHELL), as the stage named `platform`."""

    name: str = "platform"
    template = "axi_dma"
    kind = "shell"
    role = Role.FIXED

    def stage_cycles(self, a: FoldArrays) -> np.ndarray:
        return np.zeros(a.n, dtype=np.int64)

    def stage_resources(self, a: FoldArrays) -> Resources:
        return Resources(*(np.full(a.n, PLATFORM_SHELL[k], dtype=np.int64) for k in Resources.NAMES),
                         LUTRAM=np.zeros(a.n, dtype=np.int64))
