"""The tiled template: one shared engine (Zhang et al., FPGA'15) runs the layers in turn. TiledConv
and TiledPool are the per-layer stages (cycles only); TiledEngine holds the resources.

The formulas are the loop bounds of the HLS kernel (hls_templates/kernels/tiled_engine.h), which
the backend emits and the C-simulation counts: the cycle count is the number of iterations of its
pipelined loops (II = 1). Where they depart from FNAS's closed form (Jiang et al., DAC'19) it is to
count what the kernel does; docs/cost-model.md lists the differences and why.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hw_space.layers.base import FoldArrays, HwKind, Resources, Role, _ints, _res
from hw_space.layers.mac import acc_bits, dot_bits, mac_array_luts
from hw_space.memory import cdiv, memory_cost

# One Vitis HLS m_axi adapter (our estimate, not a synthesis result): its control logic, plus read
# and write data FIFOs of max_read_burst_length (16 by default, UG1399) x num_read_outstanding
# (16) words of the port width, in BRAM by the RAMB18 ladder.
M_AXI_LUT, M_AXI_FF, M_AXI_FIFO_DEPTH = 1200, 1600, 256


def elements_per_word(port, bits):
    """Elements of `bits` bits one port word of `port` bits holds (at least one)."""
    port, bits = _ints(port, bits)
    return np.maximum(1, port // np.maximum(bits, 1))


def tile_geometry(tr, tc, out_rows: int, out_cols: int, kernel: int, stride: int):
    """(tr, tc, input rows, input cols) of one layer's tile: the output tile never exceeds the
    output map (a dense layer's 1x1 map uses one pixel of it), the input tile is its receptive
    field ((T - 1)*S + K per side, the halo included)."""
    tr, tc = _ints(tr, tc)
    tr_l, tc_l = np.minimum(tr, out_rows), np.minimum(tc, out_cols)
    return tr_l, tc_l, (tr_l - 1) * stride + kernel, (tc_l - 1) * stride + kernel


@dataclass(frozen=True)
class TileExtent:
    """What one layer asks of the shared engine: its kernel, dot-product length (MW), outputs (MH),
    input channels (N), output map and stride (the tile buffers' depths)."""

    kernel: int = 1
    mw: int = 1
    mh: int = 1
    n: int = 1
    rows: int = 1  # output rows
    cols: int = 1  # output columns
    stride: int = 1


@dataclass(frozen=True)
class TiledConv(HwKind):
    """One conv or dense layer executed on the tiled engine (Tm x Tn MAC array, Tr x Tc output tile).

    Per output tile (rows, columns, then Tm output channels, as Zhang FPGA'15 orders the loops) the
    engine walks `steps` = ceil(N/Tn) * pixels input-channel groups; it loads group s while it
    computes group s - 1 (double-buffered input and weight tiles), so a tile takes
    (steps + 1) * L1 iterations with
      Lat_I = in_rows * in_cols * ceil(Tn / I_p)    (one pixel's Tn channels into the Tn banks per word)
      Lat_W = K^2 * ceil(Tm*Tn / W_p)               (one kernel position's Tm x Tn weights)
      Lat_C = K^2 * tr * tc                         (Tm x Tn MACs per cycle, kernel loops outside)
      L1 = max(Lat_I, Lat_W, Lat_C)
    and writes the previous tile's outputs meanwhile (double-buffered output tile):
      Lat_O = tr * tc * min(Tm/Tn, ceil(M/Tn)) * ceil(Tn / O_p)
      cycles = T1 + (tiles - 1) * max(T1, Lat_O) + Lat_O,  T1 = (steps + 1) * L1,
      tiles = ceil(OH/tr) * ceil(OW/tc) * ceil(M/Tm),
    I_p, W_p, O_p the elements per port word (port bits // element bits), tr = min(Tr, OH),
    tc = min(Tc, OW), in_rows = (tr - 1)*S + K. Activations sit in DRAM in groups of Tn channels;
    a dense layer reads the map before it as `pixels` groups per Tn input channels (1x1 conv on a
    1x1 map). logits: no activation; its outputs are its dot products in whole bytes.
    """

    name: str
    out_rows: int
    out_cols: int
    n: int
    m: int
    kernel: int
    stride: int
    pixels: int = 1
    logits: bool = False
    template = "tiled_engine"
    kind = "tiled"
    role = Role.SEQUENTIAL

    def latencies(self, tm, tn, tr, tc, in_bits, wbits, out_bits, in_port, w_port, out_port):
        """(steps, Lat_I, Lat_W, Lat_C, Lat_O, tiles): the loop bounds of the kernel for this layer."""
        tm, tn = _ints(tm, tn)
        tr_l, tc_l, in_rows, in_cols = tile_geometry(tr, tc, self.out_rows, self.out_cols, self.kernel, self.stride)
        k2 = self.kernel * self.kernel
        steps = cdiv(self.n, tn) * self.pixels
        lat_i = in_rows * in_cols * cdiv(tn, elements_per_word(in_port, in_bits))
        lat_w = k2 * cdiv(tm * tn, elements_per_word(w_port, wbits))
        lat_c = k2 * tr_l * tc_l
        groups = np.maximum(1, np.minimum(tm // tn, cdiv(self.m, tn)))
        lat_o = tr_l * tc_l * groups * cdiv(tn, elements_per_word(out_port, out_bits))
        tiles = cdiv(self.out_rows, tr_l) * cdiv(self.out_cols, tc_l) * cdiv(self.m, tm)
        return steps, lat_i, lat_w, lat_c, lat_o, tiles

    def cycles(self, tm, tn, tr, tc, in_bits, wbits, out_bits, in_port, w_port, out_port):
        steps, lat_i, lat_w, lat_c, lat_o, tiles = self.latencies(tm, tn, tr, tc, in_bits, wbits, out_bits, in_port,
                                                                  w_port, out_port)
        first = (steps + 1) * np.maximum(np.maximum(lat_i, lat_w), lat_c)
        return first + (tiles - 1) * np.maximum(first, lat_o) + lat_o

    # ------------------------------------------------------------------ the uniform interface
    def extent(self) -> TileExtent:
        return TileExtent(self.kernel, self.n * self.pixels * self.kernel * self.kernel, self.m, self.n,
                          self.out_rows, self.out_cols, self.stride)

    def out_bits(self, a: FoldArrays) -> np.ndarray:
        """The activation bits, or the logits' dot product rounded up to whole bytes."""
        if self.logits:
            return logit_bits(self.n * self.pixels * self.kernel * self.kernel, a.wbits, a.in_bits)
        return a.abits

    def stage_cycles(self, a: FoldArrays) -> np.ndarray:
        return self.cycles(a.tm, a.tn, a.tr, a.tc, a.in_bits, a.wbits, self.out_bits(a), a.in_port, a.w_port,
                           a.out_port)

    def stage_legal(self, a: FoldArrays) -> np.ndarray:
        """Every element fits one word of its port (the engine never splits an element)."""
        return (a.in_bits <= a.in_port) & (a.wbits <= a.w_port) & (self.out_bits(a) <= a.out_port)

    def rule(self, layer: str) -> str:
        return f"{layer}: its inputs, weights and outputs must each fit one word of their engine port"


def logit_bits(mw, wbits, in_bits):
    """Bits of a logit in DRAM: the dot product rounded up to whole bytes (the output port's bytes)."""
    return 8 * cdiv(dot_bits(mw, wbits, in_bits), 8)


@dataclass(frozen=True)
class TiledPool(HwKind):
    """Max-pool on the tiled engine: for every group of Tn channels and output pixel it reads the
    K x K window one port word per iteration and writes the maximum once:
    cycles = ceil(C/Tn) * OH * OW * ceil(Tn / I_p) * K^2."""

    name: str
    out_rows: int
    out_cols: int
    channels: int
    kernel: int
    template = "tiled_pool"
    kind = "pool"
    role = Role.SEQUENTIAL

    def cycles(self, tn, bits, in_port):
        (tn,) = _ints(tn)
        words = cdiv(tn, elements_per_word(in_port, bits))
        return cdiv(self.channels, tn) * self.out_rows * self.out_cols * words * self.kernel * self.kernel

    def extent(self) -> TileExtent:
        return TileExtent()

    def stage_cycles(self, a: FoldArrays) -> np.ndarray:
        return self.cycles(a.tn, a.in_bits, a.in_port)


@dataclass(frozen=True)
class TiledEngine(HwKind):
    """Resources of the shared engine: Tm*Tn multipliers (DSP at >= 8-bit operands, LUTs below),
    adder trees and thresholds as an MVAU with PE=Tm, SIMD=Tn, double-buffered input, weight and
    output tile memories partitioned into Tn, Tm*Tn and Tm banks (Zhang FPGA'15) and sized for the
    largest tile of any layer, and three m_axi adapters (input, weight, output). As a stage it
    reads the largest weight, input and output bits of the layers as wbits, in_bits and abits."""

    max_kernel: int
    max_mw: int
    max_mh: int
    max_stride: int = 1
    maps: tuple[tuple[int, int, int, int], ...] = ()  # (out rows, out cols, kernel, stride) per layer
    name = "engine"
    template = "tiled_engine"
    kind = "engine"
    role = Role.SEQUENTIAL

    def buffer_depths(self, tr, tc):
        """(input tile pixels, output tile pixels): the largest of any layer (tile_geometry)."""
        tr, tc = _ints(tr, tc)
        inp, out = np.ones_like(tr), np.ones_like(tr)
        for rows, cols, kernel, stride in self.maps:
            tr_l, tc_l, in_rows, in_cols = tile_geometry(tr, tc, rows, cols, kernel, stride)
            inp, out = np.maximum(inp, in_rows * in_cols), np.maximum(out, tr_l * tc_l)
        return inp, out

    def resources(self, tm, tn, tr, tc, wbits, in_bits, out_bits, ports=(64, 64, 64)) -> Resources:
        tm, tn, tr, tc, wbits, in_bits, out_bits = _ints(tm, tn, tr, tc, wbits, in_bits, out_bits)
        dsp_path = (wbits >= 8) | (in_bits >= 8)
        acc = acc_bits(self.max_mw, wbits, in_bits)
        lut = mac_array_luts(tm, tn, wbits, in_bits, acc, out_bits, cdiv(self.max_mh, tm), dsp_path)
        dsp = np.where(dsp_path, tm * tn, 0)
        k2 = self.max_kernel * self.max_kernel
        in_px, out_px = self.buffer_depths(tr, tc)
        buffers = [  # (banks, width, depth) of each tile memory; values are signed: one bit more
            (tn, in_bits + 1, in_px),
            (tm * tn, wbits + 1, np.full_like(tm, k2)),
            (tm, acc, out_px),
        ]
        lut_mem = bram = uram = 0
        for banks, width, depth in buffers:
            l, b, u = memory_cost(0, width, depth)
            lut_mem = lut_mem + 2 * banks * l
            bram = bram + 2 * banks * b
            uram = uram + 2 * banks * u
        ff = 500 + tm * tn * (wbits + in_bits) + tm * 2 * acc
        for port in ports:  # the m_axi adapters: control, and a read or write data FIFO each
            port = np.asarray(port, dtype=np.int64)
            l, b, u = memory_cost(0, port, M_AXI_FIFO_DEPTH)
            lut, ff = lut + M_AXI_LUT + l, ff + M_AXI_FF + 2 * port
            lut_mem, bram, uram = lut_mem + l, bram + b, uram + u
        return _res(tm, lut=lut + lut_mem, ff=ff, bram=bram, uram=uram, dsp=dsp, lutram=lut_mem)

    # ------------------------------------------------------------------ the uniform interface
    @classmethod
    def serving(cls, extents: list[TileExtent]) -> TiledEngine:
        """The engine large enough for every layer."""
        return cls(max([1] + [e.kernel for e in extents]), max([1] + [e.mw for e in extents]),
                   max([1] + [e.mh for e in extents]), max([1] + [e.stride for e in extents]),
                   tuple((e.rows, e.cols, e.kernel, e.stride) for e in extents))

    def stage_cycles(self, a: FoldArrays) -> np.ndarray:
        return np.zeros(a.n, dtype=np.int64)

    def stage_resources(self, a: FoldArrays) -> Resources:
        return self.resources(a.tm, a.tn, a.tr, a.tc, a.wbits, a.in_bits, a.abits, (a.in_port, a.w_port, a.out_port))

    def stage_legal(self, a: FoldArrays) -> np.ndarray:
        """Tiles of at least 1; Tm a multiple of Tn (each output tile writes whole Tn-channel groups
        of the next layer's input); one activation port width (the engine writes the maps it reads)."""
        ok = (a.tm >= 1) & (a.tn >= 1) & (a.tr >= 1) & (a.tc >= 1)
        return ok & (a.tm % np.maximum(a.tn, 1) == 0) & (a.in_port == a.out_port)

    def rule(self, layer: str) -> str:
        return (f"{layer}: tm, tn, tr and tc must be >= 1, tm a multiple of tn, and the input and output ports "
                "equally wide")
