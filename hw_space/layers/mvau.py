"""The matrix-vector-activation unit (MVAU): the compute kernel of a dataflow conv or dense layer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hw_space.fold_axes import FoldAxis
from hw_space.layers.base import FoldArrays, HwKind, Resources, _ints, _res
from hw_space.layers.mac import acc_bits, dot_bits, mac_array_luts, use_dsp
from hw_space.memory import EXTERNAL, cdiv, memory_cost
from hw_space.schedules import mvau_flags

# what the MVAU's MH and MW count, per layer family, in a design's error message: the cost model
# (hw_space.lowering) and the backend's op (codesign.backend.ops.mvau) both read it
AXIS_WHAT: dict[str, tuple[str, str]] = {"conv": ("output channels", "inputs per output (K*K*Cin)"),
                                         "dense": ("outputs", "inputs")}

# The weight layout (the Design's weight_layout): PE memories of SIMD*W bits (the kernel partitions
# its weights by PE, as BNN-PYNQ's and finn-hlslib's MVAU) or one memory of PE*SIMD*W bits (the
# kernel reshapes them into one word per fold step, as FINN's MVAU weight memory). Same depth.
PER_PE, WIDE = 0, 1
LAYOUT_CODES = {"per_pe": PER_PE, "wide": WIDE}

# c1 of FINN's MVAU LUT formula (mac_array_luts), calibrated against three published implementations
# (docs/cost-model.md, tests/test_hw_calibration.py): FINN's cybersecurity MLP tutorial (7,234 LUT,
# Vivado 2022.1 place and route) and BNN-PYNQ's LFC-W1A1 / W1A2 on the Pynq-Z1 (28,360 / 48,981 LUT
# post-place; Umuroglu et al., FPGA'17, and the Xilinx/BNN-PYNQ results table). FINN's own 1.1
# over-counts all three by 47-77 %; 0.65 leaves +5 %, +11 % and -10 % (the smallest largest error
# with the over-count on the side of the binary networks).
MVAU_LUT_FACTOR = 0.65


@dataclass(frozen=True)
class MVAU(HwKind):
    """Matrix-vector-activation unit: PE output lanes x SIMD input lanes, thresholds folded in.

    mw = K*K*Cin (or in_features), mh = Cout (or out_features), ofm = output pixels (1 for dense).
    Constraints: mh % PE == 0 and mw % SIMD == 0. logits: the layer has no activation (the
    network's last): it writes its dot products, not thresholded activations.
    """

    name: str
    mw: int
    mh: int
    ofm: int
    logits: bool = False
    pe_what: str = AXIS_WHAT["dense"][0]  # what MH counts, for a design's error message
    simd_what: str = AXIS_WHAT["dense"][1]  # what MW counts
    template = "mvau"
    kind = "mvau"
    AXIS_LABELS = {"pe": ("MH", "PE"), "simd": ("MW", "SIMD")}
    STYLES = ("weight_memory", "mac")

    def legal(self, pe, simd):
        pe_axis, simd_axis = self.fold_axes()
        return pe_axis.legal(pe) & simd_axis.legal(simd)

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

    def weight_memory(self, pe, simd, wbits, layout=PER_PE):
        """(count, width bits, depth words) of the weight memories, each MW*MH/(PE*SIMD) words deep:
        per_pe, PE memories of SIMD*W bits (weights[PE][...] partitioned by PE, as BNN-PYNQ's MVAU);
        wide, one memory of PE*SIMD*W bits (the same array reshaped, as FINN's MVAU)."""
        pe, simd, wbits, layout = _ints(pe, simd, wbits, layout)
        wide = layout == WIDE
        return np.where(wide, 1, pe), np.where(wide, pe, 1) * simd * wbits, cdiv(self.mw * self.mh, pe * simd)

    def resources(self, pe, simd, wbits, in_bits, out_bits, mem, mac, layout=PER_PE) -> Resources:
        """Weights by the memory ladder, in the layout's memories; LUTs by FINN's formula
        (mac_array_luts); DSPs PE*SIMD*ceil((W+A)/48) on the DSP path (FINN dsp_estimation); FFs a
        rough register count (FINN publishes no FF model): operand registers per lane, accumulator
        and output per PE."""
        pe, simd, wbits, in_bits, out_bits, mem, mac = _ints(pe, simd, wbits, in_bits, out_bits, mem, mac)
        acc = acc_bits(self.mw, wbits, in_bits)
        dsp_path = use_dsp(mac, wbits, in_bits)
        count, width, depth = self.weight_memory(pe, simd, wbits, layout)
        mem_lut, bram, uram = (count * v for v in memory_cost(mem, width, depth))
        lut = mac_array_luts(pe, simd, wbits, in_bits, acc, out_bits, cdiv(self.mh, pe), dsp_path, MVAU_LUT_FACTOR) + mem_lut
        dsp = np.where(dsp_path, pe * simd * cdiv(wbits + in_bits, 48), 0)
        ff = 200 + pe * (simd * (wbits + in_bits) + 2 * acc + np.maximum(out_bits, 1))
        return _res(pe, lut=lut, ff=ff, bram=bram, uram=uram, dsp=dsp, lutram=mem_lut)

    # ------------------------------------------------------------------ the uniform interface
    def fold_axes(self) -> tuple[FoldAxis, ...]:
        return FoldAxis("pe", self.mh, self.pe_what), FoldAxis("simd", self.mw, self.simd_what)

    def in_elems(self, a: FoldArrays) -> np.ndarray:
        return a.simd

    def out_elems(self, a: FoldArrays) -> np.ndarray:
        return a.pe

    def out_bits(self, a: FoldArrays) -> np.ndarray:
        """The activation bits, or the dot product's for the logits."""
        return dot_bits(self.mw, a.wbits, a.in_bits) if self.logits else a.abits

    def stage_cycles(self, a: FoldArrays) -> np.ndarray:
        return self.cycles(a.pe, a.simd, a.wbits, a.mem, a.axi)

    def stage_resources(self, a: FoldArrays) -> Resources:
        return self.resources(a.pe, a.simd, a.wbits, a.in_bits, a.abits, a.mem, a.mac, a.layout)

    def stage_width(self, a: FoldArrays) -> np.ndarray:
        return self.width(a.pe, a.simd, a.wbits, a.in_bits, self.out_bits(a))

    def detail(self, a: FoldArrays) -> dict[str, Any]:
        return {"mw": self.mw, "mh": self.mh, "reps": self.ofm, "pe": a.pe, "simd": a.simd}

    def schedule(self, d: dict[str, int], cycles: int) -> tuple[np.ndarray, np.ndarray]:
        return mvau_flags(d["mw"], d["mh"], d["reps"], d["pe"], d["simd"], cycles)

    def summary(self, d: dict[str, int], width: int) -> dict[str, Any]:
        return {"pe": d["pe"], "simd": d["simd"]}
