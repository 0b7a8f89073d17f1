"""The widest arbitrary-precision word an emitted design may instantiate: one rule shared by the
cost model (feasibility), the folding optimizer and the search (through the model) and the HLS
writer (which asserts it and defines it in every generated header).

Vitis HLS (UG1399, "Arbitrary Precision Integer Types"): ap_[u]int is limited to 1024 bits by
default; defining AP_INT_MAX_W before including ap_int.h raises the limit, to at most 4096 bits.
"""

from __future__ import annotations

import numpy as np

AP_INT_MAX_W = 4096


def too_wide(bits) -> np.ndarray:
    """True where a word of `bits` bits cannot be an ap_uint in an emitted design."""
    return np.asarray(bits, dtype=np.int64) > AP_INT_MAX_W


def check_width(bits: int, what: str) -> None:
    """Raise ValueError naming `what` when a generated type would exceed AP_INT_MAX_W."""
    if int(bits) > AP_INT_MAX_W:
        raise ValueError(f"{what}: ap_uint<{int(bits)}> exceeds the {AP_INT_MAX_W}-bit AP_INT_MAX_W limit")
