"""The lowering steps, qonnx/FINN style: each is an object whose apply(graph) returns a new graph.

lowering.py turns front-end (float) ops into hardware stages with integer semantics (LOWERING:
input quantizer, layout ops, convolutions and products, the float ops after them, activations as
thresholds, max-pools, the output); hardware.py holds the steps on the hardware graph (arithmetic,
folding, width converters, FIFO depths), which ask the ops and know no op kinds.
"""

from codesign.backend.transforms.base import Transform, where
from codesign.backend.transforms.hardware import (
    ApplyFolding,
    InsertWidthConverters,
    MarkXnor,
    SetFifoDepths,
    hardware_steps,
    model_kind,
)
from codesign.backend.transforms.lowering import (
    LOWERING,
    MAX_ACT_LEVELS,
    AbsorbEpilogue,
    AbsorbLayout,
    CheckLowered,
    InsertDuplicates,
    LowerActivation,
    LowerCompute,
    LowerInput,
    LowerMaxPool,
    LowerOutput,
    replace_weight,
    stream_positions,
    value_format,
)

__all__ = ["LOWERING", "MAX_ACT_LEVELS", "AbsorbEpilogue", "AbsorbLayout", "ApplyFolding", "CheckLowered",
           "InsertDuplicates", "InsertWidthConverters", "LowerActivation", "LowerCompute", "LowerInput", "LowerMaxPool", "LowerOutput",
           "MarkXnor", "SetFifoDepths", "Transform", "hardware_steps", "model_kind", "replace_weight",
           "stream_positions", "value_format", "where"]
