"""The gearbox kernel and the two kinds built on it: the AXI stream adapters at either end of a
dataflow design (StreamIO) and the width converters between kernels (WidthConverter)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hw_space.layers.base import FoldArrays, HwKind, Resources, _ints, _res
from hw_space.memory import cdiv
from hw_space.schedules import gearbox_flags


def gearbox_cycles(total, n_in, n_out):
    """Iterations (= cycles at II=1) of the gearbox kernel (hls_templates/kernels.h.j2) repacking
    `total` elements from words of n_in to words of n_out elements: each iteration reads a word
    while fewer than n_out elements wait and writes a word once n_out are there (or the frame's
    last ones). The I/O adapters and every width converter are this kernel."""
    total, n_in, n_out = _ints(total, n_in, n_out)
    n_in, n_out = np.maximum(n_in, 1), np.maximum(n_out, 1)
    reads = cdiv(total, n_in)
    written = (reads - 1) * n_in // n_out
    slow_in = reads - 1 + cdiv(total - written * n_out, n_out)
    return np.where(n_in >= n_out, cdiv(total, n_out), slow_in)


@dataclass(frozen=True)
class StreamIO(HwKind):
    """The frame entering or leaving through the board's AXI DMA stream.

    cycles = ceil(bits_per_frame / axi_width). FINN's model leaves this out and so overestimates
    small networks (tfc-w1a1: 1.56 M FPS predicted, 837 k measured).

    As a stage it is the gearbox between the AXI word and the adjacent kernel's word: the input
    adapter writes the first kernel's word; the output adapter reads the last kernel's word and
    sends the logits as whole bytes.
    """

    name: str
    elements: int
    direction: str  # "input" or "output"
    template = "axi_stream"
    kind = "io"

    def legal(self, n: int) -> np.ndarray:
        return np.ones(n, dtype=bool)

    @staticmethod
    def per_word(elem_bits, axi_width: int):
        """Elements packed into one AXI word (at least one)."""
        (elem_bits,) = _ints(elem_bits)
        return np.maximum(1, axi_width // np.maximum(elem_bits, 1))

    def port_bits(self, elem_bits, axi_width: int):
        """Width of the AXI-Stream port: the board's AXI width, or one element if wider."""
        (elem_bits,) = _ints(elem_bits)
        return np.maximum(axi_width, self.per_word(elem_bits, axi_width) * elem_bits)

    def cycles(self, elem_bits, axi_width: int, kernel_elems=None):
        """The gearbox between the AXI word and the kernel's word of kernel_elems elements; without
        kernel_elems, the bandwidth bound ceil(bits per frame / AXI width)."""
        (elem_bits,) = _ints(elem_bits)
        if kernel_elems is None:
            return cdiv(self.elements * elem_bits, axi_width)
        p = self.per_word(elem_bits, axi_width)
        n_in, n_out = (p, kernel_elems) if self.direction == "input" else (kernel_elems, p)
        return gearbox_cycles(self.elements, n_in, n_out)

    def width(self, elem_bits, axi_width: int, kernel_elems):
        """Widest word of the adapter: the port or the kernel's word."""
        elem_bits, kernel_elems = _ints(elem_bits, kernel_elems)
        return np.maximum(self.port_bits(elem_bits, axi_width), kernel_elems * elem_bits)

    def resources(self, elem_bits, axi_width: int, kernel_elems=1) -> Resources:
        """The gearbox's element buffer (port + kernel word) in registers, and its shift muxes."""
        elem_bits, kernel_elems = _ints(elem_bits, kernel_elems)
        buf = (self.per_word(elem_bits, axi_width) + kernel_elems) * elem_bits
        return _res(elem_bits, lut=60 + buf, ff=buf + 32)

    # ------------------------------------------------------------------ the uniform interface
    def _elem_bits(self, a: FoldArrays) -> np.ndarray:
        """Bits per element on the AXI side: the input's own, or the logits rounded up to bytes."""
        return a.in_bits if self.direction == "input" else 8 * cdiv(a.in_bits, 8)

    def _kernel_elems(self, a: FoldArrays) -> np.ndarray:
        return a.next_elems if self.direction == "input" else a.in_elems

    def out_elems(self, a: FoldArrays) -> np.ndarray:
        return self._kernel_elems(a)

    def out_bits(self, a: FoldArrays) -> np.ndarray:
        return self._elem_bits(a)

    def stage_cycles(self, a: FoldArrays) -> np.ndarray:
        return self.cycles(self._elem_bits(a), a.axi, self._kernel_elems(a))

    def stage_resources(self, a: FoldArrays) -> Resources:
        return self.resources(self._elem_bits(a), a.axi, self._kernel_elems(a))

    def stage_width(self, a: FoldArrays) -> np.ndarray:
        """The port, or the kernel's word (of the bits the kernel side carries)."""
        return np.maximum(self.port_bits(self._elem_bits(a), a.axi), self._kernel_elems(a) * a.in_bits)

    def detail(self, a: FoldArrays) -> dict[str, Any]:
        return {"per_word": self.per_word(self._elem_bits(a), a.axi), "elems": self._kernel_elems(a),
                "total": self.elements}

    def schedule(self, d: dict[str, int], cycles: int) -> tuple[np.ndarray, np.ndarray]:
        if self.direction == "input":
            return gearbox_flags(d["total"], d["per_word"], d["elems"])
        return gearbox_flags(d["total"], d["elems"], d["per_word"])


@dataclass(frozen=True)
class WidthConverter(HwKind):
    """Repacks a stream from in_elems to out_elems elements per word (FINN's
    StreamingDataWidthConverter): the gearbox kernel, `total` elements per frame.

    cycles = gearbox_cycles(total, in, out); resources: a buffer of in + out elements in registers
    and a shift/mux network of about one LUT per buffered bit (our estimate; FINN prices its DWC
    by the LCM of the two widths). As a stage it writes the next kernel's word and is built only
    where the two words differ."""

    name: str
    total: int
    template = "width_convert"
    kind = "dwc"

    def active(self, n_in, n_out):
        n_in, n_out = _ints(n_in, n_out)
        return n_in != n_out

    def cycles(self, n_in, n_out):
        return np.where(self.active(n_in, n_out), gearbox_cycles(self.total, n_in, n_out), 0)

    def width(self, n_in, n_out, bits):
        n_in, n_out, bits = _ints(n_in, n_out, bits)
        return np.where(self.active(n_in, n_out), np.maximum(n_in, n_out) * bits, 0)

    def resources(self, n_in, n_out, bits) -> Resources:
        n_in, n_out, bits = _ints(n_in, n_out, bits)
        buf = np.where(self.active(n_in, n_out), (n_in + n_out) * bits, 0)
        return _res(buf, lut=np.where(buf > 0, 20 + buf, 0), ff=np.where(buf > 0, buf + 32, 0))

    # ------------------------------------------------------------------ the uniform interface
    def out_elems(self, a: FoldArrays) -> np.ndarray:
        return a.next_elems

    def stage_cycles(self, a: FoldArrays) -> np.ndarray:
        return self.cycles(a.in_elems, a.next_elems)

    def stage_resources(self, a: FoldArrays) -> Resources:
        return self.resources(a.in_elems, a.next_elems, a.in_bits)

    def stage_width(self, a: FoldArrays) -> np.ndarray:
        return self.width(a.in_elems, a.next_elems, a.in_bits)

    def stage_active(self, a: FoldArrays) -> np.ndarray:
        return self.active(a.in_elems, a.next_elems)

    def detail(self, a: FoldArrays) -> dict[str, Any]:
        return {"in_elems": a.in_elems, "out_elems": a.next_elems, "total": self.total}

    def schedule(self, d: dict[str, int], cycles: int) -> tuple[np.ndarray, np.ndarray]:
        return gearbox_flags(d["total"], d["in_elems"], d["out_elems"])

    def summary(self, d: dict[str, int], width: int) -> dict[str, Any]:
        return {"shape": f"{d['in_elems']} -> {d['out_elems']} per word"}
