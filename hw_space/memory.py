"""On-chip memory cost: BRAM18 by the SDP width/depth ladder, URAM, LUTRAM, and the 'auto' choice.

Every function takes numpy arrays (or plain ints) and broadcasts, so the per-design and the batch
paths share one formula.
"""

from __future__ import annotations

import numpy as np

# Memory-style codes used in arrays; the YAML names map onto them.
AUTO, BRAM, LUTRAM, URAM, EXTERNAL = 0, 1, 2, 3, 4
MEM_CODES = {"auto": AUTO, "bram": BRAM, "lutram": LUTRAM, "uram": URAM, "external": EXTERNAL}

# 'auto' puts a memory in LUTRAM when it holds at most this many bits (a tiny array would waste most
# of a BRAM18), in BRAM otherwise, however shallow. Calibrated (issue 9, docs/cost-model.md): FINN's
# cybersecurity MLP build (Vivado 2022.1, `ram_style auto`) put its 64-word x 128-bit weight
# memories in BRAM (its published 44 BRAM18 count them), and BNN-PYNQ's LFC (Umuroglu et al., FPGA'17)
# its 512 x 8-bit ones; a depth rule ("shallow: LUTRAM") under-counted both.
AUTO_LUTRAM_MAX_BITS = 1024


def cdiv(a, b):
    """Ceiling division that works on ints and integer arrays alike."""
    return -(-a // b)


def bram18_count(width, depth):
    """RAMB18 blocks for a width x depth memory.

    The ladder is the simple-dual-port aspect ratios of a 7-series/UltraScale RAMB18 (16Kx1, 8Kx2,
    4Kx4, 2Kx9, 1Kx18, 512x36), counting the parity bits as data (FINN's MVAU bram_estimation
    uses the same depths but 8/16/32-bit widths, so it counts more blocks for 9/18/36-bit words).
    """
    width = np.asarray(width, dtype=np.int64)
    depth = np.asarray(depth, dtype=np.int64)
    count = np.select(
        [width <= 0, width == 1, width == 2, width <= 4, width <= 9, (width <= 18) | (depth > 512)],
        [0, cdiv(depth, 16384), cdiv(depth, 8192), cdiv(depth, 4096) * cdiv(width, 4),
         cdiv(depth, 2048) * cdiv(width, 9), cdiv(depth, 1024) * cdiv(width, 18)],
        default=cdiv(depth, 512) * cdiv(width, 36),
    )
    return np.where(depth <= 0, 0, count)


def uram_count(width, depth):
    """UltraRAM blocks (4K x 72 each), as FINN's uram_estimation."""
    width = np.asarray(width, dtype=np.int64)
    depth = np.asarray(depth, dtype=np.int64)
    return np.where((width <= 0) | (depth <= 0), 0, cdiv(width, 72) * cdiv(depth, 4096))


def lutram_luts(width, depth):
    """LUTs used as distributed RAM: one RAM64X1 primitive (one LUT6) stores 64 words of 1 bit."""
    width = np.asarray(width, dtype=np.int64)
    depth = np.asarray(depth, dtype=np.int64)
    return np.where((width <= 0) | (depth <= 0), 0, cdiv(depth, 64) * width)


def resolve_style(style, width, depth, max_bits: int = AUTO_LUTRAM_MAX_BITS, max_depth: int = 0):
    """Map 'auto' to LUTRAM (at most max_bits, or at most max_depth words deep) or BRAM; leave
    explicit styles alone. The defaults are the memory rule; a FIFO passes its own (fifo.py)."""
    style = np.asarray(style, dtype=np.int64)
    width = np.asarray(width, dtype=np.int64)
    depth = np.asarray(depth, dtype=np.int64)
    small = (depth <= max_depth) | (width * depth <= max_bits)
    return np.where(style == AUTO, np.where(small, LUTRAM, BRAM), style)


def memory_cost(style, width, depth):
    """(LUT, BRAM18, URAM) of one memory in the given (already resolved or 'auto') style.

    A depth-1 memory holds constants that synthesis folds into logic: no RAM at all.
    External memories live in DRAM and cost no on-chip RAM (their bandwidth is costed by the layer).
    """
    style = resolve_style(style, width, depth)
    depth = np.asarray(depth, dtype=np.int64)
    on_chip = depth > 1
    lut = np.where(on_chip & (style == LUTRAM), lutram_luts(width, depth), 0)
    bram = np.where(on_chip & (style == BRAM), bram18_count(width, depth), 0)
    uram = np.where(on_chip & (style == URAM), uram_count(width, depth), 0)
    return lut, bram, uram
