"""Queries and edits of the dataflow DAG (qonnx ModelWrapper habit), independent of op kinds.

Nodes are unique string keys holding one op under the attribute ``op``; an edge u -> v carries
``port`` (which input of v it feeds, 0 for the first) and, once sized, ``depth`` (its FIFO).
Everything walks `topological(g)`: a deterministic topological order (ties by insertion order), which
is the stream order of a chain.
"""

from __future__ import annotations

from typing import Any

import networkx as nx

from hw_space.errors import CodesignError


def op(g: nx.DiGraph, key: str) -> Any:
    """The op of a node."""
    return g.nodes[key]["op"]


def producers(g: nx.DiGraph, key: str) -> list[str]:
    """The nodes a node reads, by input port."""
    return [u for u, _, _ in sorted(g.in_edges(key, data="port", default=0), key=lambda e: e[2])]


def consumers(g: nx.DiGraph, key: str) -> list[str]:
    """The nodes that read a node's output, in insertion order."""
    return list(g.successors(key))


def is_fork(g: nx.DiGraph, key: str) -> bool:
    """True when more than one node reads the node's output."""
    return g.out_degree(key) > 1


def is_join(g: nx.DiGraph, key: str) -> bool:
    """True when the node reads more than one node."""
    return g.in_degree(key) > 1


def topological(g: nx.DiGraph) -> list[str]:
    """Every node once, producers before consumers; ties broken by insertion order (deterministic)."""
    rank = {k: i for i, k in enumerate(g.nodes)}
    try:
        return list(nx.lexicographical_topological_sort(g, key=rank.__getitem__))
    except nx.NetworkXUnfeasible:
        raise CodesignError("the graph has a cycle; a dataflow graph must be acyclic") from None


def edges(g: nx.DiGraph) -> list[tuple[str, str]]:
    """Every edge, in topological order of the producer, then of the consumer."""
    order = {k: i for i, k in enumerate(topological(g))}
    return sorted(g.edges, key=lambda e: (order[e[0]], order[e[1]]))


def sources(g: nx.DiGraph) -> list[str]:
    """The nodes that read nothing."""
    return [k for k in topological(g) if g.in_degree(k) == 0]


def sinks(g: nx.DiGraph) -> list[str]:
    """The nodes nothing reads."""
    return [k for k in topological(g) if g.out_degree(k) == 0]


def _name(g: nx.DiGraph, key: str) -> str:
    return getattr(op(g, key), "name", key)


def chain(g: nx.DiGraph) -> list[str]:
    """Node keys from source to sink, for the features that still need a single chain of layers."""
    starts = sources(g)
    if len(starts) != 1:
        raise CodesignError(f"the graph must have exactly one input, found {len(starts)}")
    order = topological(g)
    for key in order:
        if is_fork(g, key):
            raise CodesignError(f"node {_name(g, key)!r}: its output feeds {g.out_degree(key)} nodes; "
                                "only chains of layers are supported (no branches or residual connections)")
        if is_join(g, key):
            raise CodesignError(f"node {_name(g, key)!r}: it reads {g.in_degree(key)} nodes; "
                                "only chains of layers are supported (no branches or residual connections)")
    return order


def ops(g: nx.DiGraph) -> list[Any]:
    """The ops in topological order (stream order of a chain)."""
    return [op(g, k) for k in topological(g)]


def successor(g: nx.DiGraph, key: str) -> str | None:
    """The first node reading this one, or None."""
    succ = consumers(g, key)
    return succ[0] if succ else None


def predecessor(g: nx.DiGraph, key: str) -> str | None:
    """The node feeding input port 0, or None."""
    pred = producers(g, key)
    return pred[0] if pred else None


def unique_key(g: nx.DiGraph, base: str) -> str:
    """`base`, or `base#i` for the first i that is not a node yet."""
    key, i = base, 1
    while key in g:
        key = f"{base}#{i}"
        i += 1
    return key


def connect(g: nx.DiGraph, u: str, v: str, port: int = 0) -> None:
    """An edge u -> v into input `port` of v."""
    g.add_edge(u, v, port=port)


def from_ops(items: list[Any]) -> nx.DiGraph:
    """A chain graph from ops in order (keys are the op names, made unique)."""
    g = nx.DiGraph()
    prev = None
    for item in items:
        key = unique_key(g, item.name)
        g.add_node(key, op=item)
        if prev is not None:
            connect(g, prev, key)
        prev = key
    return g


def _outs(g: nx.DiGraph, key: str) -> list[tuple[str, int]]:
    return [(v, p) for _, v, p in g.out_edges(key, data="port", default=0)]


def remove(g: nx.DiGraph, key: str) -> None:
    """Remove a node and join its port-0 producer to every node it fed (on the same ports)."""
    pred, outs = predecessor(g, key), _outs(g, key)
    g.remove_node(key)
    if pred is not None:
        for v, port in outs:
            connect(g, pred, v, port)


def replace_node(g: nx.DiGraph, key: str, new: list[Any]) -> list[str]:
    """Replace one node by a chain of new ops (fed like the node, feeding what it fed); their keys."""
    ins = [(u, p) for u, _, p in g.in_edges(key, data="port", default=0)]
    outs = _outs(g, key)
    g.remove_node(key)
    keys: list[str] = []
    for item in new:
        k = unique_key(g, item.name)
        g.add_node(k, op=item)
        if keys:
            connect(g, keys[-1], k)
        else:
            for u, port in ins:
                connect(g, u, k, port)
        keys.append(k)
    if keys:
        for v, port in outs:
            connect(g, keys[-1], v, port)
    return keys


def insert_on_edge(g: nx.DiGraph, u: str, v: str, new: Any) -> str:
    """Insert a node on the edge u -> v (v keeps its input port); its key."""
    data = dict(g.edges[u, v])
    k = unique_key(g, new.name)
    g.add_node(k, op=new)
    g.remove_edge(u, v)
    connect(g, u, k)
    g.add_edge(k, v, **data)
    return k


def insert_after(g: nx.DiGraph, key: str, new: Any) -> str:
    """Insert a node between `key` and every node it feeds."""
    k = unique_key(g, new.name)
    outs = _outs(g, key)
    g.add_node(k, op=new)
    for v, port in outs:
        g.remove_edge(key, v)
        connect(g, k, v, port)
    connect(g, key, k)
    return k

