"""The one interface every hardware kind of the cost model implements, and the bundle it reads.

A kind (an MVAU, a sliding window, a FIFO, the tiled engine ...) is a frozen dataclass holding the
shape of one stage. The model scores N designs at once by handing each stage one `FoldArrays`
(the (N,) columns of its layer's folding and bits, plus the word arriving on its input stream) and
calling the same methods on every kind: `stage_cycles`, `stage_resources`, `stage_legal`,
`stage_width`, `out_elems`/`out_bits` (the word it writes), `detail` and `schedule` (for the
cycle-level simulator) and `summary` (for the per-design report). Legality is the folding rule
of `hw_space.fold_axes`: a stage is legal where every FoldAxis it offers is.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, fields
from enum import Enum
from typing import Any, ClassVar

import numpy as np

from hw_space.fold_axes import FoldAxis


@dataclass
class Resources:
    """LUT, FF, BRAM18, URAM and DSP counts (arrays, one entry per design)."""

    LUT: np.ndarray
    FF: np.ndarray
    BRAM18: np.ndarray
    URAM: np.ndarray
    DSP: np.ndarray
    LUTRAM: np.ndarray | int = 0  # the part of LUT used as distributed RAM (only SLICEM LUTs can)

    NAMES = ("LUT", "FF", "BRAM18", "URAM", "DSP")

    @classmethod
    def zeros(cls, n: int) -> Resources:
        return cls(*(np.zeros(n, dtype=np.int64) for _ in cls.NAMES), LUTRAM=np.zeros(n, dtype=np.int64))

    def __add__(self, other: Resources) -> Resources:
        return Resources(*(getattr(self, k) + getattr(other, k) for k in self.NAMES), LUTRAM=self.LUTRAM + other.LUTRAM)

    def as_dict(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in self.NAMES}


def _ints(*values):
    return tuple(np.asarray(v, dtype=np.int64) for v in values)


def _res(n_like, lut=0, ff=0, bram=0, uram=0, dsp=0, lutram=0) -> Resources:
    shape = np.shape(n_like)
    return Resources(*(np.broadcast_to(np.asarray(np.ceil(v), dtype=np.int64), shape).copy()
                       for v in (lut, ff, bram, uram, dsp, lutram)))


@dataclass(frozen=True)
class FoldArrays:
    """The columns one stage reads for N designs: (N,) int64 arrays, except axi (the board's AXI
    width). Fields a stage has no use for hold zeros (FoldArrays.blank)."""

    # the folding and bits of the stage's network layer
    pe: np.ndarray
    simd: np.ndarray
    swg_simd: np.ndarray  # the sliding window's SIMD as the design gives it (0: derived from simd)
    wbits: np.ndarray
    abits: np.ndarray  # the layer's activation bits (0: none, the logits)
    mem: np.ndarray  # weight memory style code (hw_space.memory)
    mac: np.ndarray  # multiplier style code (MAC_CODES)
    layout: np.ndarray  # weight layout code (hw_space.layers.mvau.LAYOUT_CODES)
    # the stream around the stage
    in_elems: np.ndarray  # elements per word arriving on the input stream
    in_bits: np.ndarray  # bits per element arriving (the tiled template: bits of the layer's input)
    next_elems: np.ndarray  # elements per word the next kernel reads (what an adapter writes)
    in_active: np.ndarray  # bool: the producer of the input stream is built (FIFOs)
    depth: np.ndarray  # FIFO depth in words
    axi: int
    # the tiled engine: tile sizes and port widths
    tm: np.ndarray
    tn: np.ndarray
    tr: np.ndarray
    tc: np.ndarray
    in_port: np.ndarray
    w_port: np.ndarray
    out_port: np.ndarray

    @classmethod
    def blank(cls, n: int, axi: int = 0, **columns: Any) -> FoldArrays:
        """A bundle of zeros (in_active: True) for n designs, with the given columns set."""
        zero = np.zeros(n, dtype=np.int64)
        values: dict[str, Any] = {f.name: zero for f in fields(cls)}
        values.update(axi=axi, in_active=np.ones(n, dtype=bool))
        values.update(columns)
        return cls(**values)

    def with_(self, **columns: Any) -> FoldArrays:
        """The same bundle with some columns replaced (dataclasses.replace without re-running
        __init__: the model makes a few per stage and evaluation, so this is on the hot path)."""
        unknown = columns.keys() - self.__dict__.keys()
        if unknown:
            raise TypeError(f"FoldArrays has no column {', '.join(sorted(unknown))}")
        new = object.__new__(FoldArrays)
        new.__dict__.update(self.__dict__)
        new.__dict__.update(columns)
        return new

    @property
    def n(self) -> int:
        return len(self.pe)


class Role(Enum):
    """Where a stage sits: what the simulator and the folding optimizer do with it."""

    KERNEL = "kernel"  # a kernel of the dataflow stream: one pipelined loop with a schedule
    FIFO = "fifo"  # the stream between two kernels
    FIXED = "fixed"  # outside the stream and the folding (the platform shell)
    SEQUENTIAL = "sequential"  # a stage of the tiled template: layers in turn, no stream


class HwKind(ABC):
    """A hardware kind of the cost model; subclasses are frozen dataclasses with a `name` field.

    Class attributes: `kind` (the stage kind reported in BatchResult and estimates), `template`
    (its HLS template), `role`, `AXIS_LABELS` (field -> (what the folded loop is, what folds it),
    for the legality message) and `STYLES` (the LayerFold style fields it reads).
    """

    name: str  # a dataclass field (or class attribute) of every subclass
    kind: ClassVar[str]
    template: ClassVar[str]
    role: ClassVar[Role] = Role.KERNEL
    AXIS_LABELS: ClassVar[dict[str, tuple[str, str]]] = {}
    STYLES: ClassVar[tuple[str, ...]] = ()

    # ------------------------------------------------------------------ folding
    def fold_axes(self) -> tuple[FoldAxis, ...]:
        """The folding axes this stage offers (each value must divide its loop)."""
        return ()

    def resolve(self, a: FoldArrays) -> FoldArrays:
        """The bundle with the fold values this stage derives filled in (see SlidingWindow); every
        other method takes the resolved bundle."""
        return a

    def defaults(self) -> dict[str, int]:
        """Fold values of a layer the design leaves out, where they are not 1."""
        return {}

    def stage_legal(self, a: FoldArrays) -> np.ndarray:
        """Where every folding axis of the stage is legal."""
        ok = np.ones(a.n, dtype=bool)
        for axis in self.fold_axes():
            ok &= axis.legal(getattr(a, axis.field))
        return ok

    def rule(self, layer: str) -> str:
        """The folding rule of the stage, for the message of an illegal design ('' if none)."""
        parts = []
        for axis in self.fold_axes():
            loop, fold = self.AXIS_LABELS[axis.field]
            verb = "must be divisible by" if not parts else "by"
            parts.append(f"{loop} ({axis.total}) {verb} {fold}")
        return f"{layer}: {' and '.join(parts)}" if parts else ""

    # ------------------------------------------------------------------ the stream
    def in_elems(self, a: FoldArrays) -> np.ndarray | None:
        """Elements per word the stage reads; None: it takes whatever arrives (an adapter)."""
        return None

    def out_elems(self, a: FoldArrays) -> np.ndarray:
        """Elements per word the stage writes."""
        return a.in_elems

    def out_bits(self, a: FoldArrays) -> np.ndarray:
        """Bits per element the stage writes."""
        return a.in_bits

    # ------------------------------------------------------------------ cost
    @abstractmethod
    def stage_cycles(self, a: FoldArrays) -> np.ndarray:
        """Cycles per frame."""

    def stage_resources(self, a: FoldArrays) -> Resources:
        return Resources.zeros(a.n)

    def stage_width(self, a: FoldArrays) -> np.ndarray | int:
        """The widest ap_uint the kernel instantiates (bits)."""
        return 0

    def stage_active(self, a: FoldArrays) -> np.ndarray | None:
        """Where the stage is built (None: everywhere)."""
        return None

    def detail(self, a: FoldArrays) -> dict[str, Any]:
        """The loop bounds the simulator's schedule and the report read (StageResult.detail)."""
        return {}

    # ------------------------------------------------------------------ simulator and report
    def schedule(self, d: dict[str, int], cycles: int) -> tuple[np.ndarray, np.ndarray]:
        """(reads, writes) flags of one frame of the kernel's loop, from one design's detail."""
        raise ValueError(f"{self.name}: stage kind {self.kind!r} is not a stream kernel")

    def summary(self, d: dict[str, int], width: int) -> dict[str, Any]:
        """The per-design report's pe, simd, shape (None: the layer's) and depth of this stage."""
        return {}
