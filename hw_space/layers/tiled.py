"""The tiled template: one shared engine (Zhang et al., FPGA'15) runs the layers in turn. TiledConv
and TiledPool are the per-layer stages (cycles only); TiledEngine holds the resources."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hw_space.layers.base import FoldArrays, HwKind, Resources, Role, _ints, _res
from hw_space.layers.mac import acc_bits, dot_bits, mac_array_luts
from hw_space.memory import cdiv, memory_cost


@dataclass(frozen=True)
class TileExtent:
    """What one layer asks of the shared engine: the largest kernel, dot-product length (MW),
    outputs (MH), input channels (N) and padded input rows it must hold."""

    kernel: int = 1
    mw: int = 1
    mh: int = 1
    n: int = 1
    rows: int = 1


@dataclass(frozen=True)
class TiledConv(HwKind):
    """One layer executed on the tiled engine (Tm x Tn multiplier array, Tr x Tc input tile).

    Cycle model of FNAS (Jiang et al., DAC'19), after Zhang et al., FPGA'15:
      Lat_I = Tn*Tr*Tc / I_p,  Lat_W = Tm*Tn*K^2 / W_p,  Lat_C = K^2 * ceil(Tr/S) * ceil(Tc/S),
      Lat_O = Tm * ceil(Tr/S) * ceil(Tc/S) / O_p,  L1 = max(Lat_I, Lat_W, Lat_C),
      L2 = max(ceil(N/Tn) * L1, Lat_O),  cycles = ceil(R/Tr) * ceil(C/Tc) * ceil(M/Tm) * L2,
    with R x C the (padded) input map, N input and M output channels, ports in elements per cycle
    (port bits // element bits). A dense layer is a 1x1 convolution on a 1x1 map. logits: the
    layer has no activation (the network's last); its outputs are its dot products in whole bytes.
    """

    name: str
    rows: int
    cols: int
    n: int
    m: int
    kernel: int
    stride: int
    logits: bool = False
    template = "tiled_engine"
    kind = "tiled"
    role = Role.SEQUENTIAL

    def cycles(self, tm, tn, tr, tc, in_bits, wbits, out_bits, in_port, w_port, out_port):
        tm, tn, tr, tc, in_bits, wbits, out_bits = _ints(tm, tn, tr, tc, in_bits, wbits, out_bits)
        i_p = np.maximum(1, np.asarray(in_port) // in_bits)
        w_p = np.maximum(1, np.asarray(w_port) // wbits)
        o_p = np.maximum(1, np.asarray(out_port) // np.maximum(out_bits, 1))
        k2, s = self.kernel * self.kernel, self.stride
        # the tile never exceeds the map: a 1x1 dense "map" uses one row and column of the tile
        tr_eff, tc_eff = np.minimum(tr, self.rows), np.minimum(tc, self.cols)
        out_px = cdiv(tr_eff, s) * cdiv(tc_eff, s)
        lat_i = cdiv(np.minimum(tn, self.n) * tr_eff * tc_eff, i_p)
        lat_w = cdiv(np.minimum(tm, self.m) * np.minimum(tn, self.n) * k2, w_p)
        lat_c = k2 * out_px
        lat_o = cdiv(np.minimum(tm, self.m) * out_px, o_p)
        l1 = np.maximum(np.maximum(lat_i, lat_w), lat_c)
        l2 = np.maximum(cdiv(self.n, tn) * l1, lat_o)
        return cdiv(self.rows, tr) * cdiv(self.cols, tc) * cdiv(self.m, tm) * l2

    # ------------------------------------------------------------------ the uniform interface
    def extent(self) -> TileExtent:
        return TileExtent(self.kernel, self.n * self.kernel * self.kernel, self.m, self.n, self.rows)

    def out_bits(self, a: FoldArrays) -> np.ndarray:
        """The activation bits, or the logits' dot product rounded up to whole bytes."""
        if self.logits:
            return 8 * cdiv(dot_bits(self.n * self.kernel * self.kernel, a.wbits, a.in_bits), 8)
        return a.abits

    def stage_cycles(self, a: FoldArrays) -> np.ndarray:
        return self.cycles(a.tm, a.tn, a.tr, a.tc, a.in_bits, a.wbits, self.out_bits(a), a.in_port, a.w_port,
                           a.out_port)


@dataclass(frozen=True)
class TiledPool(HwKind):
    """Max-pool on the tiled template: the map streams once through the output port."""

    name: str
    elements: int
    template = "tiled_pool"
    kind = "pool"
    role = Role.SEQUENTIAL

    def cycles(self, bits, out_port):
        (bits,) = _ints(bits)
        return cdiv(self.elements, np.maximum(1, np.asarray(out_port) // bits))

    def extent(self) -> TileExtent:
        return TileExtent()

    def stage_cycles(self, a: FoldArrays) -> np.ndarray:
        return self.cycles(a.in_bits, a.out_port)


@dataclass(frozen=True)
class TiledEngine(HwKind):
    """Resources of the shared engine: Tm*Tn multipliers (DSP at >= 8-bit operands, LUTs below),
    adder trees and thresholds as an MVAU with PE=Tm, SIMD=Tn, and double-buffered input, weight
    and output tile memories partitioned into Tn, Tm*Tn and Tm banks (Zhang FPGA'15). As a stage
    it reads the largest weight, input and output bits of the layers as wbits, in_bits and abits."""

    max_kernel: int
    max_mw: int
    max_mh: int
    max_stride: int = 1
    name = "engine"
    template = "tiled_engine"
    kind = "engine"
    role = Role.SEQUENTIAL

    def resources(self, tm, tn, tr, tc, wbits, in_bits, out_bits) -> Resources:
        tm, tn, tr, tc, wbits, in_bits, out_bits = _ints(tm, tn, tr, tc, wbits, in_bits, out_bits)
        dsp_path = (wbits >= 8) | (in_bits >= 8)
        acc = acc_bits(self.max_mw, wbits, in_bits)
        lut = mac_array_luts(tm, tn, wbits, in_bits, acc, out_bits, cdiv(self.max_mh, tm), dsp_path)
        dsp = np.where(dsp_path, tm * tn, 0)
        k2 = self.max_kernel * self.max_kernel
        out_px = tr * tc  # stride 1 is the largest output tile
        buffers = [  # (banks, width, depth) of each tile memory
            (tn, in_bits, tr * tc),
            (tm * tn, wbits, np.full_like(tm, k2)),
            (tm, acc, out_px),
        ]
        lut_mem = bram = uram = 0
        for banks, width, depth in buffers:
            l, b, u = memory_cost(0, width, depth)
            lut_mem = lut_mem + 2 * banks * l
            bram = bram + 2 * banks * b
            uram = uram + 2 * banks * u
        ff = 500 + tm * tn * (wbits + in_bits) + tm * 2 * acc
        return _res(tm, lut=lut + lut_mem, ff=ff, bram=bram, uram=uram, dsp=dsp, lutram=lut_mem)

    # ------------------------------------------------------------------ the uniform interface
    @classmethod
    def serving(cls, extents: list[TileExtent]) -> TiledEngine:
        """The engine large enough for every layer."""
        return cls(max([1] + [e.kernel for e in extents]), max([1] + [e.mw for e in extents]),
                   max([1] + [e.mh for e in extents]))

    def stage_cycles(self, a: FoldArrays) -> np.ndarray:
        return np.zeros(a.n, dtype=np.int64)

    def stage_resources(self, a: FoldArrays) -> Resources:
        return self.resources(a.tm, a.tn, a.tr, a.tc, a.wbits, a.in_bits, a.abits)

    def stage_legal(self, a: FoldArrays) -> np.ndarray:
        return (a.tm >= 1) & (a.tn >= 1) & (a.tr >= 1) & (a.tc >= 1)

    def rule(self, layer: str) -> str:
        return f"{layer}: tm, tn, tr and tc must be >= 1"
