"""The integer dataflow graph: a networkx DiGraph whose nodes hold one op dataclass each.

Front-end ops mirror the cleaned QONNX graph (float semantics, ops/front.py); the lowering
transforms replace them by hardware stages (integer semantics, one module each under ops/). Node
keys are unique strings; the op sits under the node attribute ``op``; edges carry the consumer's
input ``port``. The graph queries and edits (producers, consumers, fork/join, topological order,
the single-chain check) are in dag.py. This module re-exports all of it, so one import reaches
the formats, the ops and the graph helpers.
"""

from __future__ import annotations

from codesign.backend.dag import (
    chain,
    connect,
    consumers,
    edges,
    from_ops,
    insert_after,
    insert_on_edge,
    is_fork,
    is_join,
    op,
    ops,
    predecessor,
    producers,
    remove,
    replace_node,
    sinks,
    sources,
    successor,
    topological,
    unique_key,
)
from codesign.backend.formats import IntFmt, QTensor
from codesign.backend.ops import (
    HARDWARE_OPS,
    MVAU,
    Affine,
    AvgPool,
    Conv,
    HardwareOp,
    InputStage,
    Layout,
    MatMul,
    MaxPool,
    MaxReduce,
    Op,
    OutputStage,
    PoolWindow,
    Quantizer,
    Relu,
    Sink,
    SlidingWindow,
    Source,
    Sum,
    WidthConverter,
)

__all__ = ["HARDWARE_OPS", "MVAU", "Affine", "AvgPool", "Conv", "HardwareOp", "InputStage", "IntFmt", "Layout", "MatMul",
           "MaxPool", "MaxReduce", "Op", "OutputStage", "PoolWindow", "QTensor", "Quantizer", "Relu", "Sink",
           "SlidingWindow", "Source", "Sum", "WidthConverter", "chain", "connect", "consumers", "edges", "from_ops",
           "insert_after", "insert_on_edge", "is_fork", "is_join", "op", "ops", "predecessor", "producers", "remove",
           "replace_node", "sinks", "sources", "successor", "topological", "unique_key"]
