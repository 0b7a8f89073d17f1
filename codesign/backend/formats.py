"""Integer formats of stream elements and quantized constants, and their C++ names."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class IntFmt:
    """How one stream element is coded: `bits` wide, signed or not; bipolar codes 0/1 mean -1/+1."""

    bits: int
    signed: bool
    bipolar: bool = False

    @property
    def lo(self) -> int:
        """Smallest value (not code)."""
        if self.bipolar:
            return -1
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def hi(self) -> int:
        """Largest value (not code)."""
        if self.bipolar:
            return 1
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def code_bits(self) -> int:
        """Bits of one code on a stream (1 for bipolar)."""
        return 1 if self.bipolar else self.bits

    @staticmethod
    def for_range(lo: int, hi: int) -> IntFmt:
        """The narrowest integer format holding every value in [lo, hi]."""
        lo, hi = int(lo), int(hi)
        if lo >= 0:
            return IntFmt(max(1, int(hi).bit_length()), False)
        bits = max((-lo - 1).bit_length(), max(hi, 0).bit_length()) + 1
        return IntFmt(bits, True)

    def encode(self, values: np.ndarray) -> np.ndarray:
        """Values to codes (bipolar -1/+1 to 0/1; integers unchanged)."""
        values = np.asarray(values, dtype=np.int64)
        return (values + 1) // 2 if self.bipolar else values

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Codes to values."""
        codes = np.asarray(codes, dtype=np.int64)
        return 2 * codes - 1 if self.bipolar else codes

    def describe(self) -> str:
        """Short name for messages and comments: bipolar, int4, uint8."""
        if self.bipolar:
            return "bipolar"
        return f"{'int' if self.signed else 'uint'}{self.bits}"


@dataclass(frozen=True)
class QTensor:
    """A quantized constant: real value = (values) * scale, with integer values of format fmt."""

    values: np.ndarray
    scale: np.ndarray
    fmt: IntFmt

    def real(self) -> np.ndarray:
        """The float values."""
        return self.values.astype(np.float64) * self.scale


def cpp_fmt(fmt: IntFmt) -> str:
    """The C++ element format class of an IntFmt (hls_templates/kernels/common.h)."""
    if fmt.bipolar:
        return "codesign::BipolarFmt"
    return f"codesign::{'IntFmt' if fmt.signed else 'UintFmt'}<{fmt.bits}>"
