"""Front-end ops: the cleaned QONNX graph with float semantics, before lowering to hardware stages.

Ops the host may run before the accelerator's input quantizer (Affine, Relu, Layout) know how:
`host_apply` on a float batch (N, ...) and `describe` for the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from codesign.backend.formats import IntFmt, QTensor
from codesign.backend.ops.base import Op, Values


def _along_axis1(c: np.ndarray, ndim: int) -> np.ndarray:
    c = np.asarray(c, dtype=np.float32).reshape(-1)
    return c.reshape((1, -1) + (1,) * (ndim - 2)) if c.size > 1 else c


@dataclass
class Source(Op):
    """The graph's float input, logical shape NCHW or NC."""

    shape: tuple[int, ...] = ()


@dataclass
class Sink(Op):
    """The graph's output."""

    def execute(self, inputs: list[Values]) -> Values:
        """The codes of its input, one row per frame (ends partly lowered graphs in tests)."""
        x = inputs[0]
        return Values(x.fmt.encode(x.values).reshape(len(x.values), -1), x.fmt)


@dataclass
class Quantizer(Op):
    """QONNX Quant / BipolarQuant on activations: code = clip(round_half_even(x/scale + zp), lo, hi) - zp.

    For bipolar, code = 1 if x >= 0 else 0 (value 2*code-1). `scale` is per channel (last axis)
    or a scalar; `zero_point` an integer."""

    scale: np.ndarray = field(default_factory=lambda: np.ones(1))
    zero_point: int = 0
    qmin: int = 0
    qmax: int = 255
    bipolar: bool = False

    @property
    def fmt(self) -> IntFmt:
        if self.bipolar:
            return IntFmt(1, False, True)
        return IntFmt.for_range(self.qmin - self.zero_point, self.qmax - self.zero_point)

    @property
    def levels(self) -> int:
        """Number of thresholds (distinct output codes minus one)."""
        return 1 if self.bipolar else self.qmax - self.qmin

    @property
    def min_code(self) -> int:
        return 0 if self.bipolar else self.qmin - self.zero_point

    def codes(self, x: np.ndarray) -> np.ndarray:
        """Quantize float values (channels on the last axis) to codes, in x's own float precision."""
        x = np.asarray(x)
        scale = self.scale.astype(x.dtype)
        if self.bipolar:
            return (x >= 0).astype(np.int64)
        q = np.round(x / scale + x.dtype.type(self.zero_point))
        return np.clip(q, self.qmin, self.qmax).astype(np.int64) - self.zero_point

    def output_codes(self) -> tuple[IntFmt, np.ndarray]:
        return self.fmt, self.scale

    def float_eval(self, y: np.ndarray) -> np.ndarray:
        """The codes of float64 values, as float64."""
        return self.codes(y).astype(np.float64)

    def non_decreasing(self) -> bool:
        return True


@dataclass
class Affine(Op):
    """Elementwise y = x*mul + add with per-channel (last axis) or scalar constants."""

    mul: np.ndarray = field(default_factory=lambda: np.ones(1))
    add: np.ndarray = field(default_factory=lambda: np.zeros(1))

    def non_decreasing(self) -> bool:
        return bool(np.all(self.mul >= 0))

    def affine(self) -> tuple[np.ndarray, np.ndarray]:
        return self.mul, self.add

    def float_eval(self, y: np.ndarray) -> np.ndarray:
        return y * self.mul + self.add

    def slope_sign(self, channels: int) -> np.ndarray:
        return np.where(np.broadcast_to(self.mul, (channels,)) < 0, -1, 1)

    def host_apply(self, x: np.ndarray) -> np.ndarray:
        """y = x*mul + add on a float32 batch (N, C, ...): constants per channel on axis 1."""
        return x * _along_axis1(self.mul, x.ndim) + _along_axis1(self.add, x.ndim)

    def describe(self) -> dict[str, Any]:
        return {"op": "affine", "mul": self.mul.tolist(), "add": self.add.tolist()}


@dataclass
class Relu(Op):
    """y = max(x, 0)."""

    def non_decreasing(self) -> bool:
        return True

    def float_eval(self, y: np.ndarray) -> np.ndarray:
        return np.maximum(y, 0.0)

    def host_apply(self, x: np.ndarray) -> np.ndarray:
        """max(x, 0) on a float32 batch."""
        return np.maximum(x, np.float32(0))

    def describe(self) -> dict[str, Any]:
        return {"op": "relu"}


@dataclass
class Conv(Op):
    """2D convolution, weights quantized per output channel; bias float or None; `groups` channel
    groups (ONNX `group`: weights (Cout, Cin/groups, KH, KW))."""

    weight: QTensor | None = None
    bias: np.ndarray | None = None
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)  # top, left, bottom, right
    in_shape: tuple[int, int, int] = (1, 1, 1)  # C, H, W
    out_shape: tuple[int, int, int] = (1, 1, 1)
    groups: int = 1


@dataclass
class AvgPool(Op):
    """2D average pool without padding, floor mode (AveragePool), or over the whole map (`whole`:
    GlobalAveragePool, ReduceMean over H and W): the mean of real values, a float."""

    kernel: tuple[int, int] = (2, 2)
    stride: tuple[int, int] = (2, 2)
    in_shape: tuple[int, int, int] = (1, 1, 1)
    out_shape: tuple[int, ...] = (1, 1, 1)
    whole: bool = False


@dataclass
class Sum(Op):
    """The element-wise sum of two data tensors of one shape (ONNX Add of two non-constant inputs):
    a residual join, a float until lowering checks its two inputs are codes at one scale."""

    shape: tuple[int, ...] = (1, 1, 1)  # C, H, W (or N of a vector) of both inputs and the output


@dataclass
class MatMul(Op):
    """x (1, K) @ W (K, N) with W quantized per output column."""

    weight: QTensor | None = None


@dataclass
class MaxPool(Op):
    """2D max-pool without padding, floor mode."""

    kernel: tuple[int, int] = (2, 2)
    stride: tuple[int, int] = (2, 2)
    in_shape: tuple[int, int, int] = (1, 1, 1)
    out_shape: tuple[int, int, int] = (1, 1, 1)

    passes_codes: ClassVar[bool] = True


@dataclass
class Layout(Op):
    """Reshape / Flatten / Transpose: moves elements, computes nothing. `perm` maps every element of
    the output (logical shape) to its index in the input's row-major order."""

    in_shape: tuple[int, ...] = ()
    out_shape: tuple[int, ...] = ()
    perm: np.ndarray | None = None

    passes_codes: ClassVar[bool] = True

    def host_apply(self, x: np.ndarray) -> np.ndarray:
        """The moved elements of a batch (N, ...), in the output's logical shape."""
        assert self.perm is not None
        return x.reshape(len(x), -1)[:, self.perm.reshape(-1)].reshape((len(x),) + tuple(self.out_shape[1:]))

    def describe(self) -> dict[str, Any]:
        assert self.perm is not None
        return {"op": "layout", "out_shape": list(self.out_shape), "perm": self.perm.reshape(-1).tolist()}
