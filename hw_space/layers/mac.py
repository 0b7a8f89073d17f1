"""Multiply-accumulate arithmetic shared by the MVAU and the tiled engine: accumulator widths, the
multiplier style (LUT or DSP) and FINN's LUT formula of a PE x SIMD MAC array."""

from __future__ import annotations

import numpy as np

from hw_space.layers.base import _ints
from hw_space.memory import cdiv

# MAC implementation codes; YAML names map onto them.
MAC_AUTO, MAC_LUT, MAC_DSP = 0, 1, 2
MAC_CODES = {"auto": MAC_AUTO, "lut": MAC_LUT, "dsp": MAC_DSP}
# 'auto' uses DSP slices once an operand pair is this wide: LUT multipliers grow with (W+A)^2.
AUTO_DSP_MIN_BITS = 12
# c1 of FINN's MVAU lut_estimation (FINN-R, Blott et al., TRETS 2018; finn-plus
# src/finn/custom_op/fpgadataflow/matrixvectoractivation.py): the tiled engine keeps it.
FINN_LUT_FACTOR = 1.1


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


def mac_array_luts(pe, simd, wbits, abits, acc, out_bits, tmem, dsp, factor: float = FINN_LUT_FACTOR):
    """LUTs of a PE x SIMD multiply-accumulate array with threshold activation.

    FINN's MVAU lut_estimation (FINN-R, Blott et al. 2018): 300 + c1 * PE * (mult + adder tree +
    accumulator + threshold storage + comparators), c1 = `factor` (FINN: 1.1), with
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
    return 300 + factor * pe * (mult + adder + acc + thr + comp)
