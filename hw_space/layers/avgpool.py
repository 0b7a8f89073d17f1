"""Average pooling of a dataflow design: a windowed pool (after a DepthwiseWindow) and the global
pool over the whole map. Both accumulate integer codes, then requantize the sum with thresholds
(the mean's scale folded in): the `QuantAvgPool` of FINN's Pool_Batch and its GlobalAccPool followed
by a scaling multi-threshold."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hw_space.layers.base import FoldArrays, Resources, _ints, _res
from hw_space.layers.channel_pool import ChannelPool
from hw_space.memory import cdiv, memory_cost
from hw_space.schedules import global_pool_flags, mvau_flags


def sum_bits(count: int, bits):
    """Bits of an unsigned sum of `count` codes of `bits` bits: bits + ceil(log2(count)) (plus one
    sign bit for bipolar +-1 codes, bits == 1)."""
    (bits,) = _ints(bits)
    return bits + int(np.ceil(np.log2(max(count, 1)))) + (bits == 1)


def pool_out_bits(a: FoldArrays) -> np.ndarray:
    """The requantized mean's bits: the layer's act_bits, or (0) the bits it receives."""
    return np.where(a.abits > 0, a.abits, a.in_bits)


def requant_luts(pe, acc, out_bits, tmem):
    """LUTs of PE accumulators and their threshold requantization, by analogy with FINN-R's MVAU
    terms (Blott et al. 2018, FINN's MVAU lut_estimation): an acc-bit adder per lane, (2^B - 1)
    thresholds of acc bits per channel in LUTRAM (ceil(TMEM/64) words each) and as many comparators,
    plus ~100 LUTs of control."""
    pe, acc, out_bits, tmem = _ints(pe, acc, out_bits, tmem)
    n_thr = (1 << out_bits) - 1
    return 100 + pe * (acc + n_thr * acc * cdiv(tmem, 64) + n_thr * acc)


class RequantPool(ChannelPool):
    """A stage that sums codes and requantizes the sum: its out bits are `pool_out_bits`, and its
    resources are priced at the bits it receives and those it writes (both average pools and the
    add of two streams, hw_space.layers.addstreams)."""

    def out_bits(self, a: FoldArrays) -> np.ndarray:
        return pool_out_bits(a)

    def defaults(self) -> dict[str, int]:
        """PE 1 when the design leaves the layer out, as a compute layer: its thresholds and
        comparators cost as an MVAU's, per lane (a max-pool's comparators are cheap: every channel)."""
        return {}

    def stage_resources(self, a: FoldArrays) -> Resources:
        return self.resources(a.pe, a.in_bits, pool_out_bits(a))


@dataclass(frozen=True)
class AvgPool(RequantPool):
    """Windowed average pool: per output pixel, the sum of each channel over its K*K window, then
    thresholds (out bits = in bits). Reads the window in (channel fold, kh, kw) order, PE channels
    per word. Cycles: FINN Pool_Batch get_exp_cycles, C*K*K/PE * OFM. Constraint: C % PE == 0."""

    name: str
    channels: int
    k2: int
    ofm: int
    template = "avgpool"
    kind = "avgpool"

    def cycles(self, pe):
        (pe,) = _ints(pe)
        return cdiv(self.channels, pe) * self.k2 * self.ofm

    def resources(self, pe, bits, out_bits=None) -> Resources:
        """requant_luts with TMEM = C/PE; FFs: the input word, PE accumulators and the output word."""
        pe, bits = _ints(pe, bits)
        (out,) = _ints(bits if out_bits is None else out_bits)
        acc = sum_bits(self.k2, bits)
        return _res(pe, lut=requant_luts(pe, acc, out, cdiv(self.channels, pe)), ff=64 + pe * (bits + acc + out))

    def stage_width(self, a: FoldArrays) -> np.ndarray:
        (pe, bits, out) = _ints(a.pe, a.in_bits, pool_out_bits(a))
        return np.maximum(pe * np.maximum(bits, out), sum_bits(self.k2, bits))

    def detail(self, a: FoldArrays) -> dict[str, Any]:
        return {"k2": self.k2, "c": self.channels, "reps": self.ofm, "pe": a.pe}

    def schedule(self, d: dict[str, int], cycles: int) -> tuple[np.ndarray, np.ndarray]:
        """The VVAU's loop with SIMD = 1: a read every iteration, a write after each K*K."""
        return mvau_flags(d["k2"], d["pe"], d["reps"] * (d["c"] // d["pe"]), d["pe"], 1)


@dataclass(frozen=True)
class GlobalAvgPool(RequantPool):
    """Global average pool: C running sums over the H*W pixels of the map (read PE channels per
    word), requantized by thresholds and written during the last pixel. Cycles H*W*C/PE (FINN's
    GlobalAccPool_Batch takes C/PE more, for its separate output loop). Constraint: C % PE == 0."""

    name: str
    channels: int
    pixels: int
    template = "global_avgpool"
    kind = "gpool"

    def cycles(self, pe):
        (pe,) = _ints(pe)
        return self.pixels * cdiv(self.channels, pe)

    def resources(self, pe, bits, out_bits=None, style=0) -> Resources:
        """requant_luts with TMEM = C/PE, plus the C running sums: C/PE words of PE*acc bits by the
        memory ladder ('auto'); FFs the input word, PE sums in flight and the output word."""
        pe, bits = _ints(pe, bits)
        (out,) = _ints(bits if out_bits is None else out_bits)
        acc = sum_bits(self.pixels, bits)
        lut, bram, uram = memory_cost(style, pe * acc, cdiv(self.channels, pe))
        return _res(pe, lut=requant_luts(pe, acc, out, cdiv(self.channels, pe)) + lut,
                    ff=64 + pe * (bits + acc + out), bram=bram, uram=uram, lutram=lut)

    def stage_width(self, a: FoldArrays) -> np.ndarray:
        (pe, bits, out) = _ints(a.pe, a.in_bits, pool_out_bits(a))
        return pe * np.maximum(np.maximum(bits, out), sum_bits(self.pixels, bits))

    def detail(self, a: FoldArrays) -> dict[str, Any]:
        return {"pixels": self.pixels, "c": self.channels, "pe": a.pe}

    def schedule(self, d: dict[str, int], cycles: int) -> tuple[np.ndarray, np.ndarray]:
        return global_pool_flags(d["pixels"], d["c"] // d["pe"])

