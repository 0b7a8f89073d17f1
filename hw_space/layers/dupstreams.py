"""The fork of a dataflow design: one stream copied to several, a word to every output at once.

FINN's DuplicateStreams (finn-plus 1.6.1, src/finn/custom_op/fpgadataflow/duplicatestreams.py,
DuplicateStreams_Batch of finn-hlslib): each iteration reads one word and writes it to each of its
NumOutputStreams outputs; cycles = the words of a frame (get_exp_cycles: the folded shape without
its PE dimension). FINN has no resource model of it (HWCustomOp's estimates: 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hw_space.layers.base import FoldArrays, HwKind, Resources, _ints, _res
from hw_space.memory import cdiv
from hw_space.schedules import word_per_iteration_flags


@dataclass(frozen=True)
class DuplicateStreams(HwKind):
    """Copies the `elements` of a frame, word by word, to `outputs` streams. Its word is the word
    that arrives (its producer's output word): no folding of its own. An iteration that writes needs
    every output FIFO non-full, so the slowest consumer paces all of them; the skip path of a
    residual block is the FIFO after it that must absorb the other branch's latency."""

    name: str
    elements: int  # elements per frame
    outputs: int = 2
    template = "duplicate_streams"
    kind = "dup"

    def cycles(self, in_elems):
        """One word per cycle: ceil(elements / elements per word)."""
        (in_elems,) = _ints(in_elems)
        return cdiv(self.elements, np.maximum(in_elems, 1))

    def resources(self, width) -> Resources:
        """Our estimate from the kernel's structure: the word is wired to every output, so no LUT per
        bit; one register of the word (FF = width) plus 32 of loop counter, and 20 LUTs of loop control
        plus 2 per output for its handshake (the AND of every output's not-full with the input's
        not-empty)."""
        (width,) = _ints(width)
        return _res(width, lut=20 + 2 * self.outputs, ff=width + 32)

    # ------------------------------------------------------------------ the uniform interface
    def stage_cycles(self, a: FoldArrays) -> np.ndarray:
        return self.cycles(a.in_elems)

    def stage_resources(self, a: FoldArrays) -> Resources:
        return self.resources(a.in_elems * a.in_bits)

    def stage_width(self, a: FoldArrays) -> np.ndarray:
        return a.in_elems * a.in_bits

    def detail(self, a: FoldArrays) -> dict[str, Any]:
        return {"words": self.cycles(a.in_elems), "outputs": self.outputs}

    def schedule(self, d: dict[str, int], cycles: int) -> tuple[np.ndarray, np.ndarray]:
        """A word read and written (to every output) in every iteration."""
        return word_per_iteration_flags(d["words"])

    def summary(self, d: dict[str, int], width: int) -> dict[str, Any]:
        return {"shape": f"1 -> {d['outputs']} streams"}
