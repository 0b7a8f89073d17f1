"""Hardware layer kinds: each class owns its shape, folding constraints, cycles, resources and the
name of its HLS template. One place to read and change a layer kind.

All methods take numpy arrays of folding and bit-width values (one entry per design) or plain
ints, and broadcast; the per-design estimate and the batch model call the same code. Numbers are
ESTIMATES from analytical models (sources cited per formula), not synthesis results.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hw_space.memory import AUTO, BRAM, EXTERNAL, LUTRAM, cdiv, memory_cost, resolve_style

# MAC implementation codes; YAML names map onto them.
MAC_AUTO, MAC_LUT, MAC_DSP = 0, 1, 2
MAC_CODES = {"auto": MAC_AUTO, "lut": MAC_LUT, "dsp": MAC_DSP}
# 'auto' uses DSP slices once an operand pair is this wide: LUT multipliers grow with (W+A)^2.
AUTO_DSP_MIN_BITS = 12


@dataclass
class Resources:
    """LUT, FF, BRAM18, URAM and DSP counts (arrays, one entry per design)."""

    LUT: np.ndarray
    FF: np.ndarray
    BRAM18: np.ndarray
    URAM: np.ndarray
    DSP: np.ndarray
    LUTRAM: np.ndarray | int = 0  # the part of LUT used as distributed RAM (only SLICEM LUTs can)

    NAMES = ("LUT", "FF", "BRAM18", "URAM", "DSP")

    @classmethod
    def zeros(cls, n: int) -> Resources:
        return cls(*(np.zeros(n, dtype=np.int64) for _ in cls.NAMES), LUTRAM=np.zeros(n, dtype=np.int64))

    def __add__(self, other: Resources) -> Resources:
        return Resources(*(getattr(self, k) + getattr(other, k) for k in self.NAMES), LUTRAM=self.LUTRAM + other.LUTRAM)

    def as_dict(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in self.NAMES}


def _ints(*values):
    return tuple(np.asarray(v, dtype=np.int64) for v in values)


def _res(n_like, lut=0, ff=0, bram=0, uram=0, dsp=0, lutram=0) -> Resources:
    shape = np.shape(n_like)
    return Resources(*(np.broadcast_to(np.asarray(np.ceil(v), dtype=np.int64), shape).copy()
                       for v in (lut, ff, bram, uram, dsp, lutram)))


def acc_bits(mw, wbits, abits):
    """Accumulator width of a dot product of length mw.

    Bipolar x bipolar (XNOR-popcount) counts agreements: ceil(log2(mw + 1)) bits. Otherwise
    W + A + ceil(log2(mw)), FINN's MVAU accumulator bound.
    """
    mw, wbits, abits = _ints(mw, wbits, abits)
    log_mw = np.ceil(np.log2(np.maximum(mw, 1))).astype(np.int64)
    popcount = np.ceil(np.log2(mw + 1)).astype(np.int64)
    return np.where((wbits == 1) & (abits == 1), popcount, wbits + abits + log_mw)


def dot_bits(mw, wbits, abits):
    """Bits of the signed dot product a layer without activation (the last one) outputs: its
    accumulator, plus a sign bit for XNOR-popcount, whose dot product is 2*popcount - MW."""
    mw, wbits, abits = _ints(mw, wbits, abits)
    return acc_bits(mw, wbits, abits) + ((wbits == 1) & (abits == 1))


def use_dsp(mac, wbits, abits):
    """True where the multipliers go to DSP slices (explicit 'dsp', or 'auto' on wide operands)."""
    mac, wbits, abits = _ints(mac, wbits, abits)
    xnor = (wbits == 1) & (abits == 1)
    return ~xnor & ((mac == MAC_DSP) | ((mac == MAC_AUTO) & (wbits + abits >= AUTO_DSP_MIN_BITS)))


def mac_array_luts(pe, simd, wbits, abits, acc, out_bits, tmem, dsp):
    """LUTs of a PE x SIMD multiply-accumulate array with threshold activation.

    FINN's MVAU lut_estimation (FINN-R, Blott et al. 2018): 300 + 1.1 * PE * (mult + adder tree +
    accumulator + threshold storage + comparators), with
      mult = SIMD * (2*ceil((W+A)/6) - 1) * (W+A)  (0 on DSPs),  adder = (W+A) * (2*SIMD - 1),
      thresholds = (2^B - 1) * acc * ceil(TMEM/64) (LUTRAM, per PE),  comparators = (2^B - 1) * acc.
    With W = A = 1 the same terms count an XNOR-popcount lane. out_bits = 0 means no activation.
    """
    pe, simd, wbits, abits, acc, out_bits, tmem = _ints(pe, simd, wbits, abits, acc, out_bits, tmem)
    wa = wbits + abits
    mult = np.where(dsp, 0, simd * (2 * cdiv(wa, 6) - 1) * wa)
    adder = wa * (2 * simd - 1)
    n_thr = np.where(out_bits > 0, (1 << out_bits) - 1, 0)
    thr = n_thr * acc * cdiv(tmem, 64)
    comp = n_thr * acc
    return 300 + 1.1 * pe * (mult + adder + acc + thr + comp)


def largest_divisor_at_most(n: int, v):
    """A conv's sliding-window SIMD when the Design names none: the largest divisor of the input
    channels n that is at most the MVAU's SIMD v (v itself whenever it divides n). v may be an
    array (the batch model) or an int (the backend)."""
    divs = np.array([d for d in range(1, n + 1) if n % d == 0], dtype=np.int64)
    out = divs[np.maximum(np.searchsorted(divs, np.asarray(v, dtype=np.int64), side="right") - 1, 0)]
    return int(out) if np.ndim(out) == 0 else out


def gearbox_cycles(total, n_in, n_out):
    """Iterations (= cycles at II=1) of the gearbox kernel (hls_templates/kernels.h.j2) repacking
    `total` elements from words of n_in to words of n_out elements: each iteration reads a word
    while fewer than n_out elements wait and writes a word once n_out are there (or the frame's
    last ones). The I/O adapters and every width converter are this kernel."""
    total, n_in, n_out = _ints(total, n_in, n_out)
    n_in, n_out = np.maximum(n_in, 1), np.maximum(n_out, 1)
    reads = cdiv(total, n_in)
    written = (reads - 1) * n_in // n_out
    slow_in = reads - 1 + cdiv(total - written * n_out, n_out)
    return np.where(n_in >= n_out, cdiv(total, n_out), slow_in)


@dataclass(frozen=True)
class StreamIO:
    """The frame entering or leaving through the board's AXI DMA stream.

    cycles = ceil(bits_per_frame / axi_width). FINN's model leaves this out and so overestimates
    small networks (tfc-w1a1: 1.56 M FPS predicted, 837 k measured).
    """

    name: str
    elements: int
    direction: str  # "input" or "output"
    template = "axi_stream"
    kind = "io"

    def legal(self, n: int) -> np.ndarray:
        return np.ones(n, dtype=bool)

    @staticmethod
    def per_word(elem_bits, axi_width: int):
        """Elements packed into one AXI word (at least one)."""
        (elem_bits,) = _ints(elem_bits)
        return np.maximum(1, axi_width // np.maximum(elem_bits, 1))

    def port_bits(self, elem_bits, axi_width: int):
        """Width of the AXI-Stream port: the board's AXI width, or one element if wider."""
        (elem_bits,) = _ints(elem_bits)
        return np.maximum(axi_width, self.per_word(elem_bits, axi_width) * elem_bits)

    def cycles(self, elem_bits, axi_width: int, kernel_elems=None):
        """The gearbox between the AXI word and the kernel's word of kernel_elems elements; without
        kernel_elems, the bandwidth bound ceil(bits per frame / AXI width)."""
        (elem_bits,) = _ints(elem_bits)
        if kernel_elems is None:
            return cdiv(self.elements * elem_bits, axi_width)
        p = self.per_word(elem_bits, axi_width)
        n_in, n_out = (p, kernel_elems) if self.direction == "input" else (kernel_elems, p)
        return gearbox_cycles(self.elements, n_in, n_out)

    def width(self, elem_bits, axi_width: int, kernel_elems):
        """Widest word of the adapter: the port or the kernel's word."""
        elem_bits, kernel_elems = _ints(elem_bits, kernel_elems)
        return np.maximum(self.port_bits(elem_bits, axi_width), kernel_elems * elem_bits)

    def resources(self, elem_bits, axi_width: int, kernel_elems=1) -> Resources:
        """The gearbox's element buffer (port + kernel word) in registers, and its shift muxes."""
        elem_bits, kernel_elems = _ints(elem_bits, kernel_elems)
        buf = (self.per_word(elem_bits, axi_width) + kernel_elems) * elem_bits
        return _res(elem_bits, lut=60 + buf, ff=buf + 32)


@dataclass(frozen=True)
class WidthConverter:
    """Repacks a stream from in_elems to out_elems elements per word (FINN's
    StreamingDataWidthConverter): the gearbox kernel, `total` elements per frame.

    cycles = gearbox_cycles(total, in, out); resources: a buffer of in + out elements in registers
    and a shift/mux network of about one LUT per buffered bit (our estimate; FINN prices its DWC
    by the LCM of the two widths)."""

    name: str
    total: int
    template = "width_convert"
    kind = "dwc"

    def active(self, n_in, n_out):
        n_in, n_out = _ints(n_in, n_out)
        return n_in != n_out

    def cycles(self, n_in, n_out):
        return np.where(self.active(n_in, n_out), gearbox_cycles(self.total, n_in, n_out), 0)

    def width(self, n_in, n_out, bits):
        n_in, n_out, bits = _ints(n_in, n_out, bits)
        return np.where(self.active(n_in, n_out), np.maximum(n_in, n_out) * bits, 0)

    def resources(self, n_in, n_out, bits) -> Resources:
        n_in, n_out, bits = _ints(n_in, n_out, bits)
        buf = np.where(self.active(n_in, n_out), (n_in + n_out) * bits, 0)
        return _res(buf, lut=np.where(buf > 0, 20 + buf, 0), ff=np.where(buf > 0, buf + 32, 0))


# hls::stream FIFOs up to this depth are registers (Vitis HLS's default depth-2 stream is a
# register pair); deeper ones are shift registers (SRL, LUTRAM) or BRAM by the memory ladder.
FIFO_REGISTER_DEPTH = 2


@dataclass(frozen=True)
class Fifo:
    """The hls::stream FIFO between two kernels: `depth` words of `width` bits.

    Depth <= 2: registers (FF = depth * width). Deeper: the 'auto' memory rule of hw_space.memory
    (shallow or small: SRL shift registers, one SRLC32E LUT per bit per 32 words; else BRAM18 by
    the ladder) plus an address counter of 2*ceil(log2(depth)) LUTs (FINN's StreamingFIFO)."""

    name: str
    template = "hls_stream"
    kind = "fifo"

    def resources(self, width, depth, active=True) -> Resources:
        width, depth = _ints(width, depth)
        on = np.asarray(active, dtype=bool) & (width > 0) & (depth > 0)
        regs = depth <= FIFO_REGISTER_DEPTH
        style = resolve_style(AUTO, width, depth)
        srl = np.where(~regs & (style == LUTRAM), cdiv(depth, 32) * width, 0)
        _, bram, _ = memory_cost(np.where(style == LUTRAM, LUTRAM, BRAM), width, depth)
        bram = np.where(~regs & (style == BRAM), bram, 0)
        addr = np.where(regs, 0, 2 * np.ceil(np.log2(np.maximum(depth, 2))).astype(np.int64))
        ff = np.where(regs, depth * width, 2 * addr + 2)
        return _res(width, lut=np.where(on, srl + addr, 0), ff=np.where(on, ff, 0), bram=np.where(on, bram, 0),
                    lutram=np.where(on, srl, 0))


@dataclass(frozen=True)
class SlidingWindow:
    """Sliding-window generator (SWG) of a convolution: a K-row line buffer feeding the MVAU.

    Padding is applied inside the generator, so ifm_h/ifm_w are the padded input dimensions.
    Constraint: channels % SIMD == 0 (it emits SIMD channels of one pixel per cycle).
    """

    name: str
    ifm_h: int
    ifm_w: int
    channels: int
    kernel: int
    stride: int
    ofm_h: int
    ofm_w: int
    template = "sliding_window"
    kind = "swg"

    def legal(self, simd):
        (simd,) = _ints(simd)
        return (simd >= 1) & (self.channels % np.maximum(simd, 1) == 0)

    def width(self, simd, in_bits, out_bits):
        """Widest word: SIMD input lanes (line buffer and input stream) or output lanes."""
        simd, in_bits, out_bits = _ints(simd, in_bits, out_bits)
        return simd * np.maximum(in_bits, out_bits)

    def cycles(self, simd):
        """FINN ConvolutionInputGenerator expected cycles:
        IFMw*K*C/SIMD + OFMh * max(OFMw*K*K*C/SIMD, stride*IFMw*C/SIMD)."""
        (simd,) = _ints(simd)
        c = cdiv(self.channels, simd)
        k = self.kernel
        return self.ifm_w * k * c + self.ofm_h * np.maximum(self.ofm_w * k * k * c, self.stride * self.ifm_w * c)

    def buffer(self, simd, in_bits):
        """(blocks, width bits, depth words) of the line buffer. As in finn-hlslib's
        ConvolutionInputGenerator: K/S + 1 row blocks (K + S rows in all), each S*IFMw*C/SIMD words
        of SIMD*A bits, kept as separate memories so one is written while the others are read."""
        simd, in_bits = _ints(simd, in_bits)
        blocks = cdiv(self.kernel, self.stride) + 1
        return blocks, simd * in_bits, self.stride * self.ifm_w * cdiv(self.channels, simd)

    def resources(self, simd, in_bits, style=0) -> Resources:
        """Line buffer by the memory ladder (the model passes 'auto': the weights' memory style
        does not apply to it) plus ~300 LUTs of address/control logic (FINN's ConvolutionInputGenerator
        lut_estimation constant) and a SIMD-wide output register."""
        blocks, width, depth = self.buffer(simd, in_bits)
        lut, bram, uram = memory_cost(style, width, depth)
        return _res(width, lut=300 + blocks * lut, ff=2 * width + 64, bram=blocks * bram, uram=blocks * uram,
                    lutram=blocks * lut)


@dataclass(frozen=True)
class MVAU:
    """Matrix-vector-activation unit: PE output lanes x SIMD input lanes, thresholds folded in.

    mw = K*K*Cin (or in_features), mh = Cout (or out_features), ofm = output pixels (1 for dense).
    Constraints: mh % PE == 0 and mw % SIMD == 0.
    """

    name: str
    mw: int
    mh: int
    ofm: int
    template = "mvau"
    kind = "mvau"

    def legal(self, pe, simd):
        pe, simd = _ints(pe, simd)
        return (pe >= 1) & (simd >= 1) & (self.mh % np.maximum(pe, 1) == 0) & (self.mw % np.maximum(simd, 1) == 0)

    def compute_cycles(self, pe, simd):
        """FINN MVAU expected cycles: (MH/PE) * (MW/SIMD) * OFM."""
        pe, simd = _ints(pe, simd)
        return cdiv(self.mh, pe) * cdiv(self.mw, simd) * self.ofm

    def cycles(self, pe, simd, wbits, mem, axi_width: int):
        """Compute cycles, or the weight stream's cycles when weights come from external memory
        (all MW*MH*W weight bits per frame through one AXI port of axi_width bits per cycle)."""
        pe, simd, wbits, mem = _ints(pe, simd, wbits, mem)
        stream = cdiv(self.mw * self.mh * wbits, axi_width)
        return np.where(mem == EXTERNAL, np.maximum(self.compute_cycles(pe, simd), stream),
                        self.compute_cycles(pe, simd))

    def width(self, pe, simd, wbits, in_bits, out_bits):
        """Widest word of the kernel: the input vector (SIMD lanes), the weight word (SIMD
        weights), the output word (PE lanes of out_bits) or the accumulator."""
        pe, simd, wbits, in_bits, out_bits = _ints(pe, simd, wbits, in_bits, out_bits)
        acc = acc_bits(self.mw, wbits, in_bits)
        return np.maximum(np.maximum(simd * in_bits, simd * wbits), np.maximum(pe * out_bits, acc))

    def weight_memory(self, pe, simd, wbits):
        """(width bits, depth words) of ONE PE's weight memory: depth MW*MH/(PE*SIMD), width SIMD*W.
        The kernel partitions its weights by PE (weights[PE][...], ARRAY_PARTITION dim=1), so there
        are PE such memories, as in FINN-R's and BNN-PYNQ's MVAU."""
        pe, simd, wbits = _ints(pe, simd, wbits)
        return simd * wbits, cdiv(self.mw * self.mh, pe * simd)

    def resources(self, pe, simd, wbits, in_bits, out_bits, mem, mac) -> Resources:
        """Weights by the memory ladder; LUTs by FINN's formula (mac_array_luts); DSPs
        PE*SIMD*ceil((W+A)/48) on the DSP path (FINN dsp_estimation); FFs a rough register count
        (FINN publishes no FF model): operand registers per lane, accumulator and output per PE."""
        pe, simd, wbits, in_bits, out_bits, mem, mac = _ints(pe, simd, wbits, in_bits, out_bits, mem, mac)
        acc = acc_bits(self.mw, wbits, in_bits)
        dsp_path = use_dsp(mac, wbits, in_bits)
        width, depth = self.weight_memory(pe, simd, wbits)
        mem_lut, bram, uram = (pe * v for v in memory_cost(mem, width, depth))  # one memory per PE
        lut = mac_array_luts(pe, simd, wbits, in_bits, acc, out_bits, cdiv(self.mh, pe), dsp_path) + mem_lut
        dsp = np.where(dsp_path, pe * simd * cdiv(wbits + in_bits, 48), 0)
        ff = 200 + pe * (simd * (wbits + in_bits) + 2 * acc + np.maximum(out_bits, 1))
        return _res(pe, lut=lut, ff=ff, bram=bram, uram=uram, dsp=dsp, lutram=mem_lut)


@dataclass(frozen=True)
class MaxPool:
    """Streaming max-pool over integer activations, PE channels per cycle.

    Our own formula (FINN marks its StreamingMaxPool estimate inaccurate): the kernel reads every
    input element once, PE per cycle, so cycles = IFMh * IFMw * C / PE. Constraint: C % PE == 0.
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
        (pe,) = _ints(pe)
        return (pe >= 1) & (self.channels % np.maximum(pe, 1) == 0)

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


@dataclass(frozen=True)
class TiledConv:
    """One layer executed on the tiled engine (Tm x Tn multiplier array, Tr x Tc input tile).

    Cycle model of FNAS (Jiang et al., DAC'19), after Zhang et al., FPGA'15:
      Lat_I = Tn*Tr*Tc / I_p,  Lat_W = Tm*Tn*K^2 / W_p,  Lat_C = K^2 * ceil(Tr/S) * ceil(Tc/S),
      Lat_O = Tm * ceil(Tr/S) * ceil(Tc/S) / O_p,  L1 = max(Lat_I, Lat_W, Lat_C),
      L2 = max(ceil(N/Tn) * L1, Lat_O),  cycles = ceil(R/Tr) * ceil(C/Tc) * ceil(M/Tm) * L2,
    with R x C the (padded) input map, N input and M output channels, ports in elements per cycle
    (port bits // element bits). A dense layer is a 1x1 convolution on a 1x1 map.
    """

    name: str
    rows: int
    cols: int
    n: int
    m: int
    kernel: int
    stride: int
    template = "tiled_engine"
    kind = "tiled"

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


@dataclass(frozen=True)
class TiledPool:
    """Max-pool on the tiled template: the map streams once through the output port."""

    name: str
    elements: int
    template = "tiled_pool"
    kind = "pool"

    def cycles(self, bits, out_port):
        (bits,) = _ints(bits)
        return cdiv(self.elements, np.maximum(1, np.asarray(out_port) // bits))


@dataclass(frozen=True)
class TiledEngine:
    """Resources of the shared engine: Tm*Tn multipliers (DSP at >= 8-bit operands, LUTs below),
    adder trees and thresholds as an MVAU with PE=Tm, SIMD=Tn, and double-buffered input, weight
    and output tile memories partitioned into Tn, Tm*Tn and Tm banks (Zhang FPGA'15)."""

    max_kernel: int
    max_mw: int
    max_mh: int
    max_stride: int = 1
    template = "tiled_engine"

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


# The AXI DMA, its interconnect and reset logic around every accelerator. Approximate utilization
# of an AXI DMA (MM2S + S2MM, 64-bit stream) plus a SmartConnect, from the IP product guides
# (PG021, PG247); a fixed cost so small designs are not reported as free.
PLATFORM_SHELL = {"LUT": 2500, "FF": 3500, "BRAM18": 4, "URAM": 0, "DSP": 0}

