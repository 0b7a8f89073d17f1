"""Per-kernel schedules for the cycle-level simulator (hw_space.simulate): which iterations of one
frame of a kernel's pipelined loop (hls_templates/kernels.h.j2, II=1) read a word and which write
one, from the loop structure alone (the idea of FINN's characteristic functions, FINN PR #1185).
Each hardware kind's `schedule` calls the function of its loop."""

from __future__ import annotations

from functools import lru_cache

import numpy as np


def _frozen(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    for a in arrays:
        a.setflags(write=False)
    return arrays


@lru_cache(maxsize=256)
def gearbox_flags(total: int, n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """The gearbox kernel (I/O adapters and width converters): `total` elements from words of n_in
    to words of n_out. Its loop, iteration by iteration: read a word when `left > 0 && have < OUT`,
    write one when `have >= OUT || (left == 0 && have > 0)`."""
    total, n_in, n_out = int(total), max(int(n_in), 1), max(int(n_out), 1)
    reads: list[bool] = []
    writes: list[bool] = []
    have, left = 0, total
    while left > 0 or have > 0:
        r = left > 0 and have < n_out
        if r:
            n = min(left, n_in)
            have, left = have + n, left - n
        w = have >= n_out or (left == 0 and have > 0)
        if w:
            have = max(have - n_out, 0)
        reads.append(r)
        writes.append(w)
    return _frozen(np.array(reads, dtype=bool), np.array(writes, dtype=bool))


@lru_cache(maxsize=256)
def word_per_iteration_flags(words: int) -> tuple[np.ndarray, np.ndarray]:
    """A kernel that reads a word and writes a word in every one of its WORDS iterations (the add of
    two streams reads one word from each input; the duplicator writes one to each output)."""
    flags = np.ones(int(words), dtype=bool)
    return _frozen(flags, flags.copy())


@lru_cache(maxsize=256)
def sliding_window_flags(h: int, w: int, c: int, k: int, stride: int, pad: int, simd: int) -> tuple[np.ndarray, np.ndarray]:
    """The sliding-window generator on the PADDED map h x w (`pad` on every side), c channels, a
    k x k kernel, SIMD channels per word. A fill phase of k padded rows, then one phase per output
    row, max(OW*K*K*CF, S*WP*CF) iterations each: it reads the next `stride` padded rows (a read on
    real pixels only; padding slots take an iteration but read nothing) while it emits the row's
    windows in the first OW*K*K*CF iterations."""
    cf = c // simd
    row = w * cf  # read slots per padded row
    oh = (h - k) // stride + 1
    ow = (w - k) // stride + 1
    fill = k * row
    emit = ow * k * k * cf
    phase = max(emit, stride * row)
    t = np.arange(fill + oh * phase, dtype=np.int64)
    q = np.where(t < fill, -1, (t - fill) // phase)  # phase of the iteration (-1: the fill)
    p = np.where(t < fill, t, (t - fill) % phase)  # iteration within the phase
    # phase q may read rows up to limit(q) = min(K + (q + 1) * S, HP); it starts where q - 1 stopped
    limit_hi = np.minimum(k + (q + 1) * stride, h)
    limit_lo = np.where(q < 0, 0, np.minimum(k + q * stride, h))
    slot_read = np.where(q < 0, True, p < (limit_hi - limit_lo) * row)
    slot = np.cumsum(slot_read) - 1  # padded-map slot (row, column, channel fold) of each read
    r_row, r_col = slot // row, (slot % row) // cf
    real = (r_row >= pad) & (r_row < h - pad) & (r_col >= pad) & (r_col < w - pad)
    return _frozen(slot_read & real, (q >= 0) & (p < emit))


@lru_cache(maxsize=256)
def mvau_flags(mw: int, mh: int, reps: int, pe: int, simd: int, cycles: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The MVAU: REPS * NF * SF iterations (SF = MW/SIMD, NF = MH/PE); reads a word while nf == 0,
    writes one when sf == SF - 1. With `cycles` above that count (weights streamed from external
    memory, slower than the compute loop) the iterations are spread evenly over `cycles`."""
    sf, nf = mw // simd, mh // pe
    t = np.arange(reps * nf * sf, dtype=np.int64)
    reads = (t // sf) % nf == 0
    writes = t % sf == sf - 1
    if cycles is not None and cycles > len(t):
        at = (t * cycles) // max(len(t), 1)
        r, w = np.zeros(cycles, dtype=bool), np.zeros(cycles, dtype=bool)
        r[at], w[at] = reads, writes
        reads, writes = r, w
    return _frozen(reads, writes)


@lru_cache(maxsize=256)
def max_pool_axis_flags(outer: int, n: int, inner: int, k: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """One max-pool pass (max_pool_axis): OUTER * N * INNER iterations, a read in each, a write when
    position n closes a window (n = start + K - 1, start a multiple of S, start / S < ON)."""
    on = (n - k) // stride + 1
    t = np.arange(outer * n * inner, dtype=np.int64)
    start = (t // inner) % n - k + 1
    writes = (start >= 0) & (start % stride == 0) & (start // stride < on)
    return _frozen(np.ones(len(t), dtype=bool), writes)


@lru_cache(maxsize=256)
def global_pool_flags(pixels: int, folds: int) -> tuple[np.ndarray, np.ndarray]:
    """The global accumulating pool: PIXELS * FOLDS iterations, a read in each; the accumulators of a
    channel fold are written out during the last pixel (its last FOLDS iterations)."""
    t = np.arange(pixels * folds, dtype=np.int64)
    return _frozen(np.ones(len(t), dtype=bool), t >= (pixels - 1) * folds)
