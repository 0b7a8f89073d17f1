"""The ops of the dataflow graph, one module per hardware op (each owns its reference execution,
its folding and its HLS template): io, swg, mvau, vvau, maxreduce, streams (add, dup), dwc; front-end float ops in front."""

from codesign.backend.ops.base import (
    HardwareOp,
    Node,
    Op,
    StageTemplate,
    StageView,
    Values,
    register_template,
    template_of,
)
from codesign.backend.ops.dwc import WidthConverter
from codesign.backend.ops.front import Affine, AvgPool, Conv, Layout, MatMul, MaxPool, Quantizer, Relu, Sink, Source, Sum
from codesign.backend.ops.io import InputStage, OutputStage, StreamPort
from codesign.backend.ops.maxreduce import MaxReduce
from codesign.backend.ops.mvau import MVAU
from codesign.backend.ops.streams import AddStreams, DuplicateStreams
from codesign.backend.ops.swg import PoolWindow, SlidingWindow
from codesign.backend.ops.vvau import VVAU, AvgPoolUnit, GlobalAccPool

# Hardware layers (stream stages): in_elems / out_elems are the elements per word they read / write,
# stream_fmt the format and frame_elems the number of the elements they write per frame.
HARDWARE_OPS = (InputStage, SlidingWindow, MVAU, VVAU, AvgPoolUnit, GlobalAccPool, MaxReduce, AddStreams,
                DuplicateStreams, WidthConverter, OutputStage)

__all__ = ["HARDWARE_OPS", "MVAU", "VVAU", "AddStreams", "Affine", "DuplicateStreams", "Sum",
            "AvgPool", "AvgPoolUnit", "Conv", "GlobalAccPool",
            "HardwareOp", "InputStage", "Layout", "MatMul", "MaxPool",
           "MaxReduce", "Node", "Op", "OutputStage", "PoolWindow", "Quantizer", "Relu", "Sink", "SlidingWindow",
           "Source", "StageTemplate", "StageView", "StreamPort", "Values", "WidthConverter", "register_template",
           "template_of"]
