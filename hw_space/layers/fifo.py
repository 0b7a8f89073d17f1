"""The hls::stream FIFO between two kernels of a dataflow design."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hw_space.layers.base import FoldArrays, HwKind, Resources, Role, _ints, _res
from hw_space.memory import AUTO, BRAM, LUTRAM, cdiv, memory_cost, resolve_style

# hls::stream FIFOs up to this depth are registers (Vitis HLS's default depth-2 stream is a
# register pair); deeper ones are shift registers (SRL, LUTRAM) when at most FIFO_SRL_MAX_DEPTH deep
# or FIFO_SRL_MAX_BITS in all, else BRAM by the memory ladder (our estimate, not calibrated).
FIFO_REGISTER_DEPTH = 2
FIFO_SRL_MAX_DEPTH = 64
FIFO_SRL_MAX_BITS = 4096


@dataclass(frozen=True)
class Fifo(HwKind):
    """The hls::stream FIFO between two kernels: `depth` words of `width` bits.

    Depth <= 2: registers (FF = depth * width). Deeper: SRL shift registers when shallow or small
    (FIFO_SRL_MAX_*; one SRLC32E LUT per bit per 32 words), else BRAM18 by the ladder; plus an
    address counter of 2*ceil(log2(depth)) LUTs (FINN's StreamingFIFO).
    As a stage its word is its producer's output word, and it is built where the producer is."""

    name: str
    producer: str = ""  # the stage that writes into it
    template = "hls_stream"
    kind = "fifo"
    role = Role.FIFO

    def resources(self, width, depth, active=True) -> Resources:
        width, depth = _ints(width, depth)
        on = np.asarray(active, dtype=bool) & (width > 0) & (depth > 0)
        regs = depth <= FIFO_REGISTER_DEPTH
        style = resolve_style(AUTO, width, depth, FIFO_SRL_MAX_BITS, FIFO_SRL_MAX_DEPTH)
        srl = np.where(~regs & (style == LUTRAM), cdiv(depth, 32) * width, 0)
        _, bram, _ = memory_cost(np.where(style == LUTRAM, LUTRAM, BRAM), width, depth)
        bram = np.where(~regs & (style == BRAM), bram, 0)
        addr = np.where(regs, 0, 2 * np.ceil(np.log2(np.maximum(depth, 2))).astype(np.int64))
        ff = np.where(regs, depth * width, 2 * addr + 2)
        return _res(width, lut=np.where(on, srl + addr, 0), ff=np.where(on, ff, 0), bram=np.where(on, bram, 0),
                    lutram=np.where(on, srl, 0))

    # ------------------------------------------------------------------ the uniform interface
    def stage_cycles(self, a: FoldArrays) -> np.ndarray:
        return np.zeros(a.n, dtype=np.int64)

    def stage_resources(self, a: FoldArrays) -> Resources:
        return self.resources(a.in_elems * a.in_bits, a.depth, a.in_active)

    def stage_width(self, a: FoldArrays) -> np.ndarray:
        return np.where(a.in_active, a.in_elems * a.in_bits, 0)

    def stage_active(self, a: FoldArrays) -> np.ndarray:
        return a.in_active.copy()

    def detail(self, a: FoldArrays) -> dict[str, Any]:
        return {"depth": a.depth, "producer": self.producer}

    def summary(self, d: dict[str, int], width: int) -> dict[str, Any]:
        return {"depth": d["depth"], "shape": f"{d['depth']} x {width} bits"}
