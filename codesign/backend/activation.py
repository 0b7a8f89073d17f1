"""Per-channel float op chains after an accumulator, and their exact integer thresholds.

A chain (Affine / Relu ops, then a Quantizer) maps the integer accumulator of one output channel to
an output code. Every op is monotone per channel, so the chain is a staircase in the accumulator:
the thresholds are the accumulator values where it steps up. They are found by bisection on the
integers against the float64 evaluation of the chain itself, so the integer result equals that
evaluation for every accumulator value (rounding half to even, as Brevitas does).
"""

from __future__ import annotations

import numpy as np

from codesign.backend.ops.base import Op
from codesign.backend.ops.front import Quantizer
from hw_space.errors import CodesignError


def eval_chain(chain: list[Op], x: np.ndarray) -> np.ndarray:
    """Apply Affine/Relu ops in float64 to x (channels on the last axis); a final Quantizer gives codes."""
    y = np.asarray(x, dtype=np.float64)
    for item in chain:
        y = item.float_eval(y)
    return y


def slope_sign(chain: list[Op], channels: int) -> np.ndarray:
    """Per channel +1 if the chain is non-decreasing, -1 if non-increasing (0 slopes count as +1)."""
    sign = np.ones(channels, dtype=np.int64)
    for item in chain:
        sign = sign * item.slope_sign(channels)
    return sign


def compose_affine(chain: list[Op], channels: int) -> tuple[np.ndarray, np.ndarray]:
    """(mul, add) per channel of a chain of Affine ops."""
    mul, add = np.ones(channels), np.zeros(channels)
    for item in chain:
        params = item.affine()
        if params is None:
            raise CodesignError(f"node {item.name!r} ({item.onnx_op}): only affine ops (Mul, Add, Sub, Div, "
                                "BatchNormalization) may follow the last layer")
        mul, add = mul * params[0], add * params[0] + params[1]
    return mul, add


def thresholds(chain: list[Op], quant: Quantizer, acc_lo: np.ndarray, acc_hi: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """Thresholds (C, levels) and per-channel sign s such that for every acc in [acc_lo, acc_hi]:
    quant(chain(acc)) == quant.min_code + count(s*acc >= thresholds[c])."""
    channels = len(acc_lo)
    sign = slope_sign(chain, channels)
    lo = np.where(sign > 0, acc_lo, -acc_hi).astype(np.int64)
    hi = np.where(sign > 0, acc_hi, -acc_lo).astype(np.int64)
    full = list(chain) + [quant]
    targets = quant.min_code + np.arange(1, quant.levels + 1, dtype=np.int64)  # (levels,)
    low = np.repeat(lo[None, :], quant.levels, axis=0)  # (levels, C): smallest a with code >= target
    high = np.repeat(hi[None, :] + 1, quant.levels, axis=0)  # hi+1 stands for "never reached"
    while True:
        active = low < high
        if not active.any():
            break
        mid = (low + high) // 2
        codes = eval_chain(full, mid * sign[None, :])
        ok = codes >= targets[:, None]
        high = np.where(active & ok, mid, high)
        low = np.where(active & ~ok, mid + 1, low)
    return low.T.copy(), sign


def apply_thresholds(acc: np.ndarray, thr: np.ndarray, offset: int) -> np.ndarray:
    """offset + number of thresholds reached, per channel (channels on the last axis; rows of thr sorted)."""
    out = np.empty(acc.shape, dtype=np.int64)
    for c in range(thr.shape[0]):
        out[..., c] = np.searchsorted(thr[c], acc[..., c], side="right")
    return out + offset
