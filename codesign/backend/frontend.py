"""Read a QONNX model into the front-end graph: clean it with qonnx's own transformations (which
fold constant-only subgraphs such as TensorNorm's Pow, but keep the weight quantizers), check that
every remaining op is supported, resolve the weight quantizers and turn every other node into one op
of graph.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from codesign.backend.graph import (
    Affine,
    AvgPool,
    Conv,
    IntFmt,
    Layout,
    MatMul,
    MaxPool,
    Op,
    QTensor,
    Quantizer,
    Relu,
    Sink,
    Source,
    Sum,
    connect,
    op,
    sinks,
    unique_key,
)
from hw_space.errors import CodesignError

SUPPORTED_OPS = ("Quant", "BipolarQuant", "Conv", "MatMul", "Gemm", "BatchNormalization", "Relu", "MaxPool",
                 "AveragePool", "GlobalAveragePool", "ReduceMean", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Identity",
                 "Mul", "Add", "Sub", "Div")
_QUANTIZERS = ("Quant", "BipolarQuant")  # never folded: the importer reads integer weights through them
_ROUNDING = ("ROUND", "HALF_EVEN")


def load_qonnx(source: str | Path | Any) -> Any:
    """Load and clean a QONNX model (path or ModelWrapper) with qonnx's transformations. Node names
    are kept (Brevitas names them after the modules, which makes error messages useful), so this
    runs qonnx's cleanup steps without its renaming ones. Ops are checked after the cleanup, so
    unsupported ops that only compute constants (folded away) do not matter."""
    model = _read(source) if isinstance(source, (str, Path)) else source
    for node in model.graph.node:
        if node.op_type in (*_QUANTIZERS, "Trunc"):
            node.domain = "qonnx.custom_op.general"  # as qonnx's cleanup_model does
    for i, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{i}"
    try:
        for step in _cleanup_steps():
            model = model.transform(step)
    except Exception as exc:
        _check_ops(model)  # an unsupported op is the likelier cause, and the clearer message
        raise CodesignError(f"qonnx could not clean the model: {type(exc).__name__}: {exc}") from None
    _check_ops(model)
    return model


def _read(path: str | Path) -> Any:
    """A ModelWrapper of the ONNX file at `path`, or one CodesignError naming the file."""
    from qonnx.core.modelwrapper import ModelWrapper

    path = Path(path)
    if not path.is_file():
        raise CodesignError("file not found", source=str(path))
    try:
        return ModelWrapper(str(path))
    except Exception as exc:  # onnx raises many types for a corrupt file
        raise CodesignError(f"not a readable ONNX model ({type(exc).__name__})", source=str(path)) from None


def _cleanup_steps() -> tuple[Any, ...]:
    """qonnx's cleanup: fold every constant-only node except the weight quantizers (the importer reads
    integer weights and scales from them), fold weight transposes into them, drop what is unused."""
    from qonnx.transformation.fold_constants import FoldConstants
    from qonnx.transformation.general import GiveUniqueParameterTensors, RemoveStaticGraphInputs, RemoveUnusedTensors
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.transformation.quant_constant_folding import FoldTransposeIntoQuantInit

    return (InferShapes(), GiveUniqueParameterTensors(), FoldConstants(exclude_op_types=list(_QUANTIZERS)),
            FoldTransposeIntoQuantInit(), RemoveUnusedTensors(), RemoveStaticGraphInputs(), InferShapes())


def unsupported_nodes(model: Any) -> list[Any]:
    """The nodes whose op the importer cannot read (Constant nodes are evaluated, so they are fine)."""
    return [node for node in model.graph.node if node.op_type not in SUPPORTED_OPS and node.op_type != "Constant"]


def _check_ops(model: Any) -> None:
    """Raise one CodesignError listing every unsupported node (op and name), or nothing."""
    bad = unsupported_nodes(model)
    if bad:
        listed = ", ".join(f"{node.op_type} {node.name or node.output[0]!r}" for node in bad)
        noun = "node" if len(bad) == 1 else "nodes"
        raise CodesignError(f"{len(bad)} unsupported {noun}: {listed}; supported ops: {', '.join(SUPPORTED_OPS)}")


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _fail(node: Any, message: str) -> CodesignError:
    return CodesignError(f"node {node.name!r} ({node.op_type}): {message}")


def _quant_params(node: Any, inputs: list[Any]) -> tuple[np.ndarray, int, int, int, bool]:
    """(scale, zero_point, qmin, qmax, bipolar) of a Quant or BipolarQuant node with constant parameters."""
    a = _attrs(node)
    if node.op_type == "BipolarQuant":
        scale = np.asarray(inputs[1], dtype=np.float32)
        return scale, 0, -1, 1, True
    scale, zp, bits = (np.asarray(v, dtype=np.float32) for v in inputs[1:4])
    mode = a.get("rounding_mode", b"ROUND")
    mode = mode.decode() if isinstance(mode, bytes) else str(mode)
    if mode.upper() not in _ROUNDING:
        raise _fail(node, f"rounding mode {mode} is not supported; supported: ROUND (half to even)")
    if bits.size != 1 or float(bits) != int(bits) or not 1 <= int(bits) <= 32:
        raise _fail(node, f"bit width {bits.ravel().tolist()} is not supported; an integer 1..32 is")
    if zp.size != 1 or float(zp.ravel()[0]) != int(zp.ravel()[0]):
        raise _fail(node, "the zero point must be one integer")
    if np.any(scale <= 0) or not np.all(np.isfinite(scale)):
        raise _fail(node, "scales must be positive and finite")
    nbits, signed, narrow = int(bits), bool(a.get("signed", 1)), bool(a.get("narrow", 0))
    if nbits == 1 and signed:  # qonnx executes 1-bit signed Quant as bipolar
        return scale, 0, -1, 1, True
    qmin = -(2 ** (nbits - 1)) + int(narrow) if signed else 0
    qmax = 2 ** (nbits - 1) - 1 if signed else 2 ** nbits - 1 - int(narrow)
    return scale, int(zp.ravel()[0]), qmin, qmax, False


def _quantize_constant(node: Any, inputs: list[Any]) -> QTensor:
    """Evaluate a Quant/BipolarQuant on a constant tensor (weights) exactly as qonnx does, in float32."""
    scale, zp, qmin, qmax, bipolar = _quant_params(node, inputs)
    w = np.asarray(inputs[0], dtype=np.float32)
    if bipolar:
        values = np.where(w / scale >= 0, 1, -1).astype(np.int64)
        fmt = IntFmt(1, False, True)
    else:
        q = np.clip(np.round(w / scale + np.float32(zp)), qmin, qmax)
        values = q.astype(np.int64) - zp
        fmt = IntFmt.for_range(qmin - zp, qmax - zp)
    return QTensor(values=values, scale=scale.astype(np.float64), fmt=fmt)


def _transpose_constant(value: Any, perm: list[int]) -> Any:
    if isinstance(value, QTensor):
        scale = value.scale
        if scale.ndim == value.values.ndim:
            scale = np.transpose(scale, perm)
        return QTensor(np.transpose(value.values, perm), scale, value.fmt)
    return np.transpose(value, perm)


def _eval_constant(node: Any, inputs: list[Any]) -> Any:
    op = node.op_type
    if op in ("Quant", "BipolarQuant"):
        return _quantize_constant(node, inputs)
    if op == "Transpose":
        perm = _attrs(node).get("perm") or list(reversed(range(np.ndim(_values(inputs[0])))))
        return _transpose_constant(inputs[0], perm)
    if op == "Identity":
        return inputs[0]
    if op == "Constant":
        from onnx import numpy_helper
        return numpy_helper.to_array(node.attribute[0].t)
    floats = [_real(v) for v in inputs]
    if op in ("Mul", "Add", "Sub", "Div"):
        fn = {"Mul": np.multiply, "Add": np.add, "Sub": np.subtract, "Div": np.divide}[op]
        return fn(floats[0], floats[1])
    if op == "Reshape":
        return np.reshape(floats[0], [int(s) for s in floats[1]])
    raise _fail(node, "unsupported computation on constant tensors")


def _values(v: Any) -> np.ndarray:
    return v.values if isinstance(v, QTensor) else np.asarray(v)


def _real(v: Any) -> np.ndarray:
    return v.real() if isinstance(v, QTensor) else np.asarray(v, dtype=np.float64)


def per_channel(const: Any, shape: tuple[int, ...], node: Any) -> np.ndarray:
    """A constant broadcast over a tensor of logical `shape` as a vector along axis 1 (length 1 or C)."""
    c = np.asarray(_real(const), dtype=np.float64)
    if c.size == 1:
        return c.reshape(1)
    nd = len(shape)
    ok = 2 <= nd and c.ndim <= nd
    if ok:
        expanded = c.reshape((1,) * (nd - c.ndim) + c.shape)
        ok = expanded.shape[1] == shape[1] and all(d == 1 for i, d in enumerate(expanded.shape) if i != 1)
    if not ok:
        raise _fail(node, f"constant of shape {list(c.shape)} is not per-channel for a tensor of shape "
                    f"{list(shape)}; only scalars and per-channel constants are supported")
    return c.reshape(-1).copy()


def _layout_perm(node: Any, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> np.ndarray:
    idx = np.arange(int(np.prod(in_shape))).reshape(in_shape)
    if node.op_type == "Transpose":
        perm = _attrs(node).get("perm") or list(reversed(range(len(in_shape))))
        idx = np.transpose(idx, perm)
    return idx.reshape(out_shape)


def import_graph(model: Any) -> nx.DiGraph:
    """The front-end graph of a cleaned QONNX model (see load_qonnx): a DAG whose forks are tensors
    read by several nodes and whose joins are Adds of two data tensors (residual connections)."""
    graph = model.graph
    if len(graph.input) != 1 or len(graph.output) != 1:
        raise CodesignError(f"the model must have one input and one output, found {len(graph.input)} "
                            f"and {len(graph.output)}")
    consts: dict[str, Any] = {i.name: model.get_initializer(i.name) for i in graph.initializer}
    consts[""] = None
    in_name = graph.input[0].name
    in_shape = tuple(int(d) for d in model.get_tensor_shape(in_name))
    if len(in_shape) not in (2, 4) or in_shape[0] != 1:
        raise CodesignError(f"the model input {in_name!r} has shape {list(in_shape)}; supported: (1, C, H, W) or (1, N)")
    g = nx.DiGraph()
    writer: dict[str, str] = {in_name: _add_ops(g, [Source(name="input", onnx_op="input", shape=in_shape)], [])}
    for node in graph.node:
        if all(i in consts for i in node.input):
            consts[node.output[0]] = _eval_constant(node, [consts[i] for i in node.input])
            continue
        dyn = [i for i in node.input if i not in consts]
        if len(node.output) != 1:
            raise _fail(node, "nodes with several outputs are not supported")
        if any(i not in writer for i in dyn):
            raise _fail(node, "it reads a tensor no earlier node writes; the nodes must be in data-flow order")
        if len(dyn) == 2 and node.op_type == "Add":
            converted: Op | list[Op] = _sum(model, node, dyn)
        elif len(dyn) != 1:
            raise _fail(node, "only single-input layers and the Add of two data tensors (a residual join) are "
                        "supported (no data-dependent parameters)")
        else:
            converted = _convert(model, node, [consts.get(i) for i in node.input], list(node.input).index(dyn[0]))
        writer[node.output[0]] = _add_ops(g, converted if isinstance(converted, list) else [converted],
                                          [writer[i] for i in dyn])
    live = graph.output[0].name
    if live not in writer:
        raise CodesignError("the model output is not computed from its input")
    out_shape = tuple(int(d) for d in model.get_tensor_shape(live))
    _add_ops(g, [Sink(name="output", onnx_op="output")], [writer[live]])
    if len(out_shape) != 2 or out_shape[0] != 1:
        raise CodesignError(f"the model output has shape {list(out_shape)}; supported: (1, N) logits")
    dead = [op(g, k).name for k in sinks(g) if not isinstance(op(g, k), Sink)]
    if dead:
        raise CodesignError(f"node {dead[0]!r}: its output is never used; every branch must reach the model output")
    return g


def _sum(model: Any, node: Any, dyn: list[str]) -> Sum:
    """An Add of two data tensors of one shape (no broadcasting): a residual join."""
    if dyn[0] == dyn[1]:
        raise _fail(node, "an add of a tensor with itself is not supported (it is a multiplication by 2)")
    a, b = (_shape(model, i) for i in dyn)
    if a != b or _shape(model, node.output[0]) != a:
        raise _fail(node, f"an add of tensors of shapes {list(a)} and {list(b)} is not supported; both inputs "
                    "need one shape")
    return Sum(name=node.name, onnx_op="Add", shape=a[1:])


def _add_ops(g: nx.DiGraph, items: list[Op], feeds: list[str]) -> str:
    """Add a chain of ops to g, the first reading `feeds` (by port); the key of the last."""
    key = ""
    for n, item in enumerate(items):
        new = unique_key(g, item.name)
        g.add_node(new, op=item)
        for port, u in enumerate(feeds if n == 0 else [key]):
            connect(g, u, new, port)
        key = new
    return key


def _shape(model: Any, name: str) -> tuple[int, ...]:
    return tuple(int(d) for d in model.get_tensor_shape(name))


def _convert(model: Any, node: Any, inputs: list[Any], di: int) -> Op | list[Op]:
    op, name = node.op_type, node.name
    a = _attrs(node)
    in_shape = _shape(model, node.input[di])
    out_shape = _shape(model, node.output[0])
    if op in ("Quant", "BipolarQuant"):
        scale, zp, qmin, qmax, bipolar = _quant_params(node, inputs)
        return Quantizer(name=name, onnx_op=op, scale=per_channel(scale, in_shape, node), zero_point=zp,
                         qmin=qmin, qmax=qmax, bipolar=bipolar)
    if op == "Relu":
        return Relu(name=name, onnx_op=op)
    if op in ("Mul", "Add", "Sub", "Div"):
        c = inputs[1 - di]
        vec = per_channel(c, in_shape, node)
        if op == "Mul":
            return Affine(name=name, onnx_op=op, mul=vec, add=np.zeros(1))
        if op == "Add":
            return Affine(name=name, onnx_op=op, mul=np.ones(1), add=vec)
        if op == "Sub":
            if di == 0:
                return Affine(name=name, onnx_op=op, mul=np.ones(1), add=-vec)
            return Affine(name=name, onnx_op=op, mul=-np.ones(1), add=vec)
        if di != 0:
            raise _fail(node, "division of a constant by data is not supported")
        if np.any(vec == 0):
            raise _fail(node, "division by zero")
        return Affine(name=name, onnx_op=op, mul=1.0 / vec, add=np.zeros(1))
    if op == "BatchNormalization":
        # in float64 from the stored statistics (qonnx's BatchNormToAffine rounds A and B to float32)
        gamma, beta, mean, var = (_real(v).astype(np.float64).reshape(-1) for v in inputs[1:5])
        eps = float(a.get("epsilon", 1e-5))
        mul = gamma / np.sqrt(var + eps)
        return Affine(name=name, onnx_op=op, mul=mul, add=beta - mean * mul)
    if op in ("Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Identity"):
        return Layout(name=name, onnx_op=op, in_shape=in_shape, out_shape=out_shape,
                      perm=_layout_perm(node, in_shape, out_shape))
    if op in ("MaxPool", "AveragePool"):
        what = "max-pooling" if op == "MaxPool" else "average pooling"
        if len(in_shape) != 4:
            raise _fail(node, f"only 2D {what} is supported")
        k = tuple(a["kernel_shape"])
        s = tuple(a.get("strides", [1, 1]))
        if any(a.get("pads", [0, 0, 0, 0])) or any(d != 1 for d in a.get("dilations", [1, 1])):
            raise _fail(node, f"{what} with padding or dilation is not supported")
        if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID", "NOTSET", "VALID"):
            raise _fail(node, "auto_pad is not supported")
        floor_shape = tuple((in_shape[i + 2] - k[i]) // s[i] + 1 for i in range(2))
        if tuple(out_shape[2:]) != floor_shape:
            raise _fail(node, f"ceil-mode {what} that adds a partial window is not supported")
        cls = MaxPool if op == "MaxPool" else AvgPool
        return cls(name=name, onnx_op=op, kernel=k, stride=s, in_shape=in_shape[1:], out_shape=out_shape[1:])
    if op in ("GlobalAveragePool", "ReduceMean"):
        if len(in_shape) != 4:
            raise _fail(node, "only the mean over the rows and columns of a (1, C, H, W) map is supported")
        if op == "ReduceMean":
            axes = a.get("axes")
            if axes is None and len(inputs) > 1 and inputs[1] is not None:
                axes = _real(inputs[1]).astype(np.int64).reshape(-1).tolist()
            if sorted(int(x) % 4 for x in (axes or [])) != [2, 3]:
                raise _fail(node, f"ReduceMean over axes {axes} is not supported; only over H and W (axes [2, 3])")
        return AvgPool(name=name, onnx_op=op, kernel=tuple(in_shape[2:]), stride=(1, 1), in_shape=in_shape[1:],
                       out_shape=out_shape[1:], whole=True)
    if op == "Conv":
        return _conv(node, a, inputs, in_shape, out_shape, di)
    if op == "Gemm":
        return _gemm(node, a, inputs, in_shape, di)
    if op == "MatMul":
        if di != 0:
            raise _fail(node, "the data must be the first MatMul operand")
        w = inputs[1]
        if not isinstance(w, QTensor):
            raise _fail(node, "weights must be quantized (a Quant or BipolarQuant on the weight tensor)")
        return _convert_matmul(node, w, in_shape)
    raise _fail(node, f"op {op} is not supported; supported ops: {', '.join(SUPPORTED_OPS)}")


def _convert_matmul(node: Any, w: QTensor, in_shape: tuple[int, ...]) -> list[Op]:
    if w.values.ndim != 2 or len(in_shape) != 2 or in_shape[0] != 1:
        raise _fail(node, f"only (1, K) x (K, N) products are supported, got {list(in_shape)} x "
                    f"{list(w.values.shape)}")
    scale = np.broadcast_to(w.scale, w.values.shape)
    if not np.all(scale == scale[:1, :]):
        raise _fail(node, "weight scales must be per output column (or one scale)")
    return [MatMul(name=node.name, onnx_op=node.op_type, weight=QTensor(w.values, scale[0].copy(), w.fmt))]


def _gemm(node: Any, a: dict[str, Any], inputs: list[Any], in_shape: tuple[int, ...], di: int) -> list[Op]:
    """Gemm = alpha * x @ op(B) + beta * C as MatMul + Affine, under the Gemm's own name. (qonnx's
    GemmToMatMul inserts unnamed nodes and fails on the bias-less Gemm of torch's dynamo exporter.)"""
    if di != 0 or a.get("transA", 0):
        raise _fail(node, "only x @ W products with the data first (transA = 0) are supported")
    w = inputs[1]
    if not isinstance(w, QTensor):
        raise _fail(node, "weights must be quantized (a Quant or BipolarQuant on the weight tensor)")
    if a.get("transB", 0):
        w = _transpose_constant(w, [1, 0])
    items = _convert_matmul(node, w, in_shape)
    alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
    bias = _real(inputs[2]).reshape(-1) * beta if len(inputs) > 2 and inputs[2] is not None else np.zeros(1)
    if alpha != 1.0 or np.any(bias != 0):
        items.append(Affine(name=f"{node.name}.bias", onnx_op="Gemm", mul=np.array([alpha]), add=bias))
    return items


def _conv(node: Any, a: dict[str, Any], inputs: list[Any], in_shape: tuple[int, ...],
          out_shape: tuple[int, ...], di: int) -> Conv:
    if di != 0 or len(in_shape) != 4:
        raise _fail(node, "only 2D convolutions of the data by constant weights are supported")
    w = inputs[1]
    if not isinstance(w, QTensor):
        raise _fail(node, "weights must be quantized (a Quant or BipolarQuant on the weight tensor)")
    groups = int(a.get("group", 1))
    if groups != 1 and not (groups == in_shape[1] == w.values.shape[0] and w.values.shape[1] == 1):
        raise _fail(node, f"a convolution of {groups} groups from {in_shape[1]} to {w.values.shape[0]} channels is "
                    "not supported; supported: group 1 and depthwise (group = input = output channels)")
    if any(d != 1 for d in a.get("dilations", [1, 1])):
        raise _fail(node, "dilated convolutions are not supported")
    auto_pad = a.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad not in ("NOTSET", "VALID"):
        raise _fail(node, f"auto_pad {auto_pad} is not supported; give explicit pads")
    kh, kw = w.values.shape[2:]
    pads = tuple(int(p) for p in a.get("pads", [0, 0, 0, 0]))
    scale = np.broadcast_to(w.scale, w.values.shape)
    if not np.all(scale == scale[:, :1, :1, :1]):
        raise _fail(node, "weight scales must be per output channel (or one scale)")
    bias = None
    if len(inputs) > 2 and inputs[2] is not None:
        bias = _real(inputs[2]).astype(np.float64).reshape(-1)
    return Conv(name=node.name, onnx_op="Conv", weight=QTensor(w.values, scale[:, 0, 0, 0].copy(), w.fmt), bias=bias,
                kernel=(int(kh), int(kw)), stride=tuple(int(s) for s in a.get("strides", [1, 1])),
                pads=(pads[0], pads[1], pads[2], pads[3]), in_shape=in_shape[1:], out_shape=out_shape[1:],
                groups=groups)
