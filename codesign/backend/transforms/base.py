"""The transformation contract (qonnx habit): a Transform's apply(graph) returns a new graph; its
run(graph) edits a private deep copy in place. Options go to __init__, never to apply."""

from __future__ import annotations

import copy

import networkx as nx

from codesign.backend.ops.base import Op


class Transform:
    """One step of the lowering; subclasses implement run(graph) on a private copy."""

    def apply(self, g: nx.DiGraph) -> nx.DiGraph:
        """A transformed copy of g."""
        g = copy.deepcopy(g)
        self.run(g)
        return g

    def run(self, g: nx.DiGraph) -> None:
        raise NotImplementedError


def where(item: Op) -> str:
    """How messages name a node: its name and the ONNX op it came from."""
    return f"node {item.name!r} ({item.onnx_op or type(item).__name__})"
