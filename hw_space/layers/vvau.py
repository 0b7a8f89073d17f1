"""The vector-vector-activation unit (VVAU): the compute kernel of a depthwise convolution.

FINN's VectorVectorActivation (finn, src/finn/custom_op/fpgadataflow/vectorvectoractivation.py and
hls/vectorvectoractivation_hls.py): every channel has its own K*K filter, so there is no reuse of an
input across output channels; PE channels and SIMD kernel positions are computed per cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hw_space.fold_axes import FoldAxis
from hw_space.layers.base import FoldArrays, HwKind, Resources, _ints, _res
from hw_space.layers.mac import acc_bits, dot_bits, mac_array_luts, use_dsp
from hw_space.memory import cdiv, memory_cost
from hw_space.schedules import mvau_flags


@dataclass(frozen=True)
class VVAU(HwKind):
    """Depthwise dot products: per output pixel and channel, K*K weights times the channel's window.

    channels = C (in = out), k2 = K*K, ofm = output pixels. Constraints (FINN): C % PE == 0 and
    K*K % SIMD == 0. It reads words of PE*SIMD elements (SIMD kernel positions of PE channels) and
    writes words of PE outputs. logits: the layer has no activation (the network's last).
    """

    name: str
    channels: int
    k2: int
    ofm: int
    logits: bool = False
    template = "vvau"
    kind = "vvau"
    AXIS_LABELS = {"pe": ("channels", "PE"), "simd": ("kernel positions (K*K)", "SIMD")}
    STYLES = ("weight_memory", "mac")

    def cycles(self, pe, simd):
        """FINN VVAU get_exp_cycles: (C * K*K) / (PE * SIMD) * OFM."""
        pe, simd = _ints(pe, simd)
        return cdiv(self.channels, pe) * cdiv(self.k2, simd) * self.ofm

    def weight_memory(self, pe, simd, wbits):
        """(width bits, depth words) of ONE PE's weight memory: SIMD weights per word, C*K*K/(PE*SIMD)
        words (FINN calc_wmem; FINN keeps the PE memories side by side in one PE*SIMD*W-bit word,
        our kernel partitions them by PE as the MVAU's)."""
        pe, simd, wbits = _ints(pe, simd, wbits)
        return simd * wbits, cdiv(self.channels * self.k2, pe * simd)

    def width(self, pe, simd, wbits, in_bits, out_bits):
        """Widest word: the input word (PE*SIMD lanes), a PE's weight word, the output word or the accumulator."""
        pe, simd, wbits, in_bits, out_bits = _ints(pe, simd, wbits, in_bits, out_bits)
        acc = acc_bits(self.k2, wbits, in_bits)
        return np.maximum(np.maximum(pe * simd * in_bits, simd * wbits), np.maximum(pe * out_bits, acc))

    def resources(self, pe, simd, wbits, in_bits, out_bits, mem, mac) -> Resources:
        """By analogy with the MVAU (FINN's VVAU lut_estimation is FINN-R's MVAU formula with
        TMEM = C/PE): LUTs mac_array_luts(PE, SIMD, ..., TMEM = C/PE) + the weight LUTRAM; weights by
        the memory ladder, one memory per PE; DSPs PE*SIMD*ceil((W+A)/48) on the DSP path (FINN's
        VVAU dsp_estimation counts P*ceil((W+A)/48), leaving SIMD out; we count every multiplier);
        FFs the MVAU's register count."""
        pe, simd, wbits, in_bits, out_bits, mem, mac = _ints(pe, simd, wbits, in_bits, out_bits, mem, mac)
        acc = acc_bits(self.k2, wbits, in_bits)
        dsp_path = use_dsp(mac, wbits, in_bits)
        width, depth = self.weight_memory(pe, simd, wbits)
        mem_lut, bram, uram = (pe * v for v in memory_cost(mem, width, depth))
        lut = mac_array_luts(pe, simd, wbits, in_bits, acc, out_bits, cdiv(self.channels, pe), dsp_path) + mem_lut
        dsp = np.where(dsp_path, pe * simd * cdiv(wbits + in_bits, 48), 0)
        ff = 200 + pe * (simd * (wbits + in_bits) + 2 * acc + np.maximum(out_bits, 1))
        return _res(pe, lut=lut, ff=ff, bram=bram, uram=uram, dsp=dsp, lutram=mem_lut)

    # ------------------------------------------------------------------ the uniform interface
    def fold_axes(self) -> tuple[FoldAxis, ...]:
        return FoldAxis("pe", self.channels, "channels"), FoldAxis("simd", self.k2, "kernel positions (K*K)")

    def in_elems(self, a: FoldArrays) -> np.ndarray:
        return a.pe * a.simd

    def out_elems(self, a: FoldArrays) -> np.ndarray:
        return a.pe

    def out_bits(self, a: FoldArrays) -> np.ndarray:
        return dot_bits(self.k2, a.wbits, a.in_bits) if self.logits else a.abits

    def stage_cycles(self, a: FoldArrays) -> np.ndarray:
        return self.cycles(a.pe, a.simd)

    def stage_resources(self, a: FoldArrays) -> Resources:
        return self.resources(a.pe, a.simd, a.wbits, a.in_bits, a.abits, a.mem, a.mac)

    def stage_width(self, a: FoldArrays) -> np.ndarray:
        return self.width(a.pe, a.simd, a.wbits, a.in_bits, self.out_bits(a))

    def detail(self, a: FoldArrays) -> dict[str, Any]:
        return {"k2": self.k2, "c": self.channels, "reps": self.ofm, "pe": a.pe, "simd": a.simd}

    def schedule(self, d: dict[str, int], cycles: int) -> tuple[np.ndarray, np.ndarray]:
        """A word read every iteration; a word written after the last kernel fold of each channel
        fold: the MVAU's loop with one neuron fold (NF = 1) and OFM * C/PE repetitions."""
        return mvau_flags(d["k2"], d["pe"], d["reps"] * (d["c"] // d["pe"]), d["pe"], d["simd"])

    def summary(self, d: dict[str, int], width: int) -> dict[str, Any]:
        return {"pe": d["pe"], "simd": d["simd"]}
