"""quant.export and quant.checkpoint: the QONNX graph computes what the Brevitas model computes."""

from __future__ import annotations

import onnx
import pytest
import torch
from onnx import numpy_helper

from hw_space.design import Network, design_from_dict
from hw_space.errors import CodesignError
from quant.checkpoint import load_checkpoint, save_checkpoint
from quant.data import load_dataset
from quant.export import MAX_IR_VERSION, execute_qonnx, export_qonnx, network_of_qonnx
from quant.train import Budget, predict, train

ONE_EPOCH = Budget(epochs=1, subset=0.5)  # BatchNorm statistics and scales become non-trivial


def net(bits: list[tuple[int, int]], in_bits: int = 8, last_w: int = 4) -> Network:
    """conv + pool + conv(stride 2) + dense + dense; bits = (weight, act) of the first three compute layers."""
    (w0, a0), (w1, a1), (w2, a2) = bits
    return design_from_dict({"network": {
        "input": {"channels": 1, "height": 8, "width": 8, "bits": in_bits},
        "layers": [
            {"type": "conv", "out_channels": 8, "kernel": 3, "padding": 1, "weight_bits": w0, "act_bits": a0},
            {"type": "maxpool", "kernel": 2},
            {"type": "conv", "out_channels": 12, "kernel": 3, "stride": 2, "padding": 1, "weight_bits": w1,
             "act_bits": a1},
            {"type": "dense", "out_features": 16, "weight_bits": w2, "act_bits": a2},
            {"type": "dense", "out_features": 10, "weight_bits": last_w}]}}).network


CASES = {
    "w1a1": (net([(1, 1)] * 3, in_bits=1, last_w=1)),
    "w1a1_in8": (net([(1, 1)] * 3, in_bits=8, last_w=1)),
    "w2a2": (net([(2, 2)] * 3, in_bits=2, last_w=2)),
    "w4a4": (net([(4, 4)] * 3, in_bits=8, last_w=4)),
    "mixed": (net([(3, 1), (1, 5), (8, 2)], in_bits=6, last_w=2)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_qonnx_execution_matches_brevitas_on_every_test_sample(tmp_path, case):
    network = CASES[case]
    result = train(network, "digits", ONE_EPOCH)
    path = export_qonnx(result.model, network, tmp_path / "model.onnx")
    x = load_dataset("digits").x_test
    expected = predict(result.model, x)
    got = execute_qonnx(path, x)
    scale = float(expected.abs().max())
    assert scale > 0
    assert torch.allclose(got, expected, atol=1e-4 * max(scale, 1.0), rtol=0)
    assert torch.equal(got.argmax(dim=1), expected.argmax(dim=1))
    assert not result.model.training  # export left the model as it found it


def _graph(path):
    model = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return model, inits


def _main_chain(model) -> list[str]:
    """Op types along the data path from the graph input (weight-quantizer nodes excluded)."""
    consumers = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    ops, tensor = [], model.graph.input[0].name
    while tensor in consumers:
        node = consumers[tensor][0]
        ops.append(node.op_type)
        tensor = node.output[0]
    return ops


def test_w4a4_graph_structure(tmp_path):
    network = CASES["w4a4"]
    result = train(network, "digits", ONE_EPOCH)
    path = export_qonnx(result.model, network, tmp_path / "m.onnx")
    model, inits = _graph(path)
    assert 8 <= model.ir_version <= MAX_IR_VERSION
    assert _main_chain(model) == ["Quant", "Conv", "BatchNormalization", "Relu", "Quant", "MaxPool",
                                  "Conv", "BatchNormalization", "Relu", "Quant", "Flatten", "MatMul",
                                  "BatchNormalization", "Relu", "Quant", "MatMul", "Mul", "Add"]
    first = next(n for n in model.graph.node if n.input[0] == model.graph.input[0].name)
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in first.attribute}
    assert attrs["signed"] == 0 and attrs["narrow"] == 0
    assert float(inits[first.input[1]]) == pytest.approx(1 / 255) and float(inits[first.input[3]]) == 8
    weight_quants = [n for n in model.graph.node if n.op_type == "Quant" and n.input[0] in inits]
    assert [float(inits[n.input[3]]) for n in weight_quants] == [4, 4, 4, 4]
    assert list(model.graph.input[0].type.tensor_type.shape.dim)[0].dim_value == 1
    assert network_of_qonnx(path) == network.to_dict()


def test_w1a1_graph_uses_bipolar_quant(tmp_path):
    network = CASES["w1a1"]
    result = train(network, "digits", ONE_EPOCH)
    path = export_qonnx(result.model, network, tmp_path / "m.onnx")
    model, inits = _graph(path)
    assert _main_chain(model) == ["Add", "BipolarQuant", "Conv", "BatchNormalization", "BipolarQuant", "MaxPool",
                                  "Conv", "BatchNormalization", "BipolarQuant", "Flatten", "MatMul",
                                  "BatchNormalization", "BipolarQuant", "MatMul", "Mul", "Add"]
    assert not [n for n in model.graph.node if n.op_type == "Quant"]
    bipolar = [n for n in model.graph.node if n.op_type == "BipolarQuant"]
    assert len(bipolar) == 8  # 4 weights + input + 3 activations
    assert all(inits[n.input[1]].size == 1 and float(inits[n.input[1]].ravel()[0]) == 1.0 for n in bipolar)


def test_checkpoint_round_trip_gives_identical_logits(tmp_path):
    network = CASES["mixed"]
    result = train(network, "digits", ONE_EPOCH)
    path = save_checkpoint(result.model, network, tmp_path / "sub" / "model.pt")
    model, loaded = load_checkpoint(path)
    assert loaded == network and not model.training
    x = load_dataset("digits").x_test
    assert torch.equal(predict(model, x), predict(result.model, x))
    assert [p.name for p in tmp_path.joinpath("sub").iterdir()] == ["model.pt"]  # no temp files left


def test_bad_checkpoints_are_one_line(tmp_path):
    with pytest.raises(CodesignError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "none.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CodesignError, match="not a readable checkpoint"):
        load_checkpoint(junk)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(CodesignError, match="not a codesign checkpoint"):
        load_checkpoint(foreign)
    network = CASES["w4a4"]
    other = CASES["w2a2"]
    path = save_checkpoint(train(network, "digits", Budget(epochs=1, subset=0.1)).model, network, tmp_path / "a.pt")
    payload = torch.load(path, weights_only=True)
    payload["network"] = {**other.to_dict(), "layers": [
        {**layer, "out_channels": 5} if layer.get("type") == "conv" else layer for layer in other.to_dict()["layers"]]}
    torch.save(payload, path)
    with pytest.raises(CodesignError, match="weights do not match"):
        load_checkpoint(path)
