"""QONNX export of a trained QuantNet: the hand-off to the HLS backend.

`brevitas.export.export_qonnx` with the TorchScript exporter (dynamo=False: the dynamo graph has a
bias-less Gemm that qonnx's GemmToMatMul crashes on, DESIGN.md section 7), then qonnx's cleanup
(shape inference, constant folding that keeps Quant/BipolarQuant nodes, readable names), an IR
version onnxruntime accepts, the Network as JSON metadata, and an atomic write.

The graph (input `global_in` (1, C, H, W) float in [0, 1], output `global_out` (1, classes)), in data order
(a DAG for a branching network: walk it by edges):
  input bits >= 2: Quant(scale 1/(2^b-1), zeropt 0, bitwidth b, signed 0, narrow 0, ROUND = half-even)
  input bits == 1: Add(-0.5) -> BipolarQuant(scale 1)              (x >= 0.5 -> +1, else -1)
  conv:  Conv(x, W) -> BatchNormalization(eps 1e-4) -> activation   (pads/strides from the layer, no bias)
  pool:  MaxPool(kernel, stride)
  depthwise conv: Conv(x, W, group = C) -> BatchNormalization -> activation (W of shape (C, 1, K, K))
  avgpool: AveragePool(kernel, stride) -> Quant;  global_avgpool: GlobalAveragePool -> Quant
           (the requantizing QuantIdentity: act_bits or the bits received, learned per-tensor scale)
  add:   Add(a, b) -> Quant (the add's requantizer); a and b are the outputs of two Quant nodes of ONE
         quantizer (same scale), and the layer an add reads is a tensor read by several nodes (a fork)
  first dense: Flatten(axis 1) in (C, H, W) order; dense: MatMul(x, W) -> BatchNormalization -> activation
  last dense: MatMul(x, W) -> Mul(per-class constant) -> Add(per-class constant)
  activation: bits >= 2: Relu -> Quant(learned per-tensor scale, signed 0, narrow 0)
              bits == 1: BipolarQuant(scale 1) directly on the BatchNormalization output (>= 0 -> +1)
  W: float weights behind a Quant node (bits >= 2: signed 1, narrow 1, per-output-channel scale of shape
     (Cout, 1, 1, 1) for Conv and (1, out) for MatMul, whose weights are (in, out)) or a BipolarQuant
     node (1 bit, scale 1). These weight nodes come first in the node list: walk the graph by edges.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from hw_space.design import Network
from quant.files import atomic_output

MAX_IR_VERSION = 10  # onnxruntime 1.31 rejects the IR 14 that onnx 1.23 writes (DESIGN.md section 7)
METADATA_KEY = "codesign.network"  # Network.to_dict() as JSON: layer names, bits, shapes for the backend


def export_qonnx(model: torch.nn.Module, network: Network, path: str | Path) -> Path:
    """Write `model` as a cleaned QONNX file at `path` (input shape (1, C, H, W), float in [0, 1])."""
    with warnings.catch_warnings():  # brevitas.graph warns on import (optional CUDA kernels, brevitas.fx)
        warnings.filterwarnings("ignore", message=".*fast_hadamard_transform.*")
        warnings.filterwarnings("ignore", message=".*brevitas.fx is deprecated.*", category=DeprecationWarning)
        from brevitas.export import export_qonnx as brevitas_export
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model

    path = Path(path)
    spec = network.input
    dummy = torch.zeros(1, spec.channels, spec.height, spec.width)
    was_training = model.training
    model.eval()
    try:
        with tempfile.TemporaryDirectory(prefix="codesign-export-") as work, atomic_output(path) as tmp:
            raw = str(Path(work) / "raw.onnx")
            with torch.no_grad():
                brevitas_export(model, args=dummy, export_path=raw, dynamo=False)
            proto = cleanup_model(ModelWrapper(raw)).model
            proto.ir_version = ir_version_for(proto)
            del proto.metadata_props[:]
            entry = proto.metadata_props.add()
            entry.key, entry.value = METADATA_KEY, json.dumps(network.to_dict(), sort_keys=True)
            ModelWrapper(proto).save(str(tmp))
    finally:
        model.train(was_training)
    return path


def ir_version_for(proto) -> int:
    """The lowest IR version the model's opsets need (at least 8), capped at what onnxruntime accepts."""
    import onnx

    needed = onnx.helper.find_min_ir_version_for(list(proto.opset_import), ignore_unknown=True)
    return min(max(needed, 8), MAX_IR_VERSION)


def network_of_qonnx(path: str | Path) -> dict:
    """The Network dict stored in an exported file's metadata (empty if absent)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    for entry in proto.metadata_props:
        if entry.key == METADATA_KEY:
            return json.loads(entry.value)
    return {}


def execute_qonnx(path: str | Path, x: torch.Tensor, batch: int = 512) -> torch.Tensor:
    """Logits of an exported file for float inputs `x` (N, C, H, W), computed by qonnx's reference executor
    (the graph's batch size is changed to run `batch` samples per call)."""
    import numpy as np
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.change_batchsize import ChangeBatchSize
    from qonnx.transformation.infer_shapes import InferShapes

    base = ModelWrapper(str(path))
    outs = []
    for start in range(0, len(x), batch):
        chunk = x[start:start + batch].numpy().astype(np.float32)
        model = base.transform(ChangeBatchSize(len(chunk))).transform(InferShapes())
        iname, oname = model.graph.input[0].name, model.graph.output[0].name
        outs.append(execute_onnx(model, {iname: chunk})[oname])
    return torch.from_numpy(np.concatenate(outs))


def save_test_data(model, dataset, path: str | Path) -> np.ndarray:
    """Write the test split the HLS backend verifies against (atomically): float inputs `x`, the
    integers the accelerator receives `x_int`, labels `y` and the Brevitas `logits`. Returns the logits."""
    from quant.build import input_integers
    from quant.train import predict

    logits = predict(model, dataset.x_test).numpy()
    x_int = input_integers(model, dataset.x_test).numpy()
    with atomic_output(path, suffix=".npz") as tmp:
        np.savez(tmp, x=dataset.x_test.numpy(), y=dataset.y_test.numpy(), logits=logits, x_int=x_int)
    return logits
