"""The add of two streams: the join of a residual block, its sum requantized by thresholds.

FINN's AddStreams (finn-plus, src/finn/custom_op/fpgadataflow/addstreams.py, AddStreams_Batch of
finn-hlslib; finn-plus 1.6.1 replaces it by ElementwiseAdd in elementwise_binary.py with the same
cycle count) reads a word of PE elements from each input and writes their PE sums, one word per
cycle. Ours also requantizes the (bits + 1)-bit sum to act_bits with thresholds, as the average pools
requantize their sums (the "ReLU before addition" residual: both inputs are unsigned codes of one
shared scale).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hw_space.layers.avgpool import RequantPool, pool_out_bits, requant_luts, sum_bits
from hw_space.layers.base import FoldArrays, Resources, _ints, _res
from hw_space.memory import cdiv
from hw_space.schedules import word_per_iteration_flags


@dataclass(frozen=True)
class AddStreams(RequantPool):
    """s = a + b per element of two C x H x W streams, PE channels per word from each input, then
    thresholds to the layer's act_bits. Cycles: FINN AddStreams get_exp_cycles, H*W * C/PE.
    Constraint: C % PE == 0. Both inputs arrive as words of PE elements (each through its own
    width converter)."""

    name: str
    channels: int
    pixels: int  # H * W
    template = "add_streams"
    kind = "add"

    def cycles(self, pe):
        (pe,) = _ints(pe)
        return self.pixels * cdiv(self.channels, pe)

    def resources(self, pe, bits, out_bits=None) -> Resources:
        """FINN has no LUT model of AddStreams (HWCustomOp.lut_estimation: 0; ElementwiseAdd counts
        only constant-operand memories), so ours follows the kernel's structure: requant_luts with a
        (bits + 1)-bit sum per lane (the PE adders) and TMEM = C/PE threshold words; FFs the two
        input words, the PE sums and the output word, plus 64 of loop control."""
        pe, bits = _ints(pe, bits)
        (out,) = _ints(bits if out_bits is None else out_bits)
        acc = sum_bits(2, bits)
        return _res(pe, lut=requant_luts(pe, acc, out, cdiv(self.channels, pe)),
                    ff=64 + pe * (2 * bits + acc + out))

    def stage_width(self, a: FoldArrays) -> np.ndarray:
        """An input word, the output word or one lane's sum, whichever is widest."""
        (pe, bits, out) = _ints(a.pe, a.in_bits, pool_out_bits(a))
        return np.maximum(pe * np.maximum(bits, out), sum_bits(2, bits))

    def detail(self, a: FoldArrays) -> dict[str, Any]:
        return {"pixels": self.pixels, "c": self.channels, "pe": a.pe}

    def schedule(self, d: dict[str, int], cycles: int) -> tuple[np.ndarray, np.ndarray]:
        """A word from each input read and a word written in every iteration."""
        return word_per_iteration_flags(d["pixels"] * (d["c"] // d["pe"]))
