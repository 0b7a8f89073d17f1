"""Reading QONNX: supported graphs import with their node names; anything else fails with one clear
CodesignError naming the node and its op."""

from __future__ import annotations

import onnx
import pytest
import torch
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU
from brevitas.quant import Uint8ActPerTensorFloat
from onnx import TensorProto, helper
from test_backend_models import FixedUint8Input, HandNet, export, randomize
from torch import nn

from codesign.backend.frontend import import_graph, load_qonnx
from codesign.backend.graph import Affine, Conv, MatMul, Quantizer, ops
from codesign.backend.lower import lower_model
from hw_space.errors import CodesignError


class Tiny(nn.Module):
    """input quant -> conv -> [middle] -> relu quant -> flatten -> linear, with hooks for bad parts."""

    def __init__(self, middle: nn.Module | None = None, conv: nn.Module | None = None, tail: nn.Module | None = None,
                 quant_input: bool = True, residual: bool = False):
        super().__init__()
        self.inp = QuantIdentity(act_quant=FixedUint8Input) if quant_input else nn.Identity()
        self.conv = conv or QuantConv2d(1, 4, 3, padding=1, weight_bit_width=4, bias=False)
        self.middle = middle or nn.Identity()
        self.act = QuantReLU(act_quant=Uint8ActPerTensorFloat, bit_width=4)
        with torch.no_grad():
            features = self.middle(self.conv(torch.zeros(1, 1, 8, 8))).numel()
        self.fc = QuantLinear(features, 10, weight_bit_width=4, bias=True)
        self.tail = tail or nn.Identity()
        self.residual = residual

    def forward(self, x):
        x = self.inp(x)
        y = self.middle(self.conv(x))
        if self.residual:
            y = y + x
        return self.tail(self.fc(torch.flatten(self.act(y), 1)))


def _export(tmp_path, model: nn.Module):
    return export(randomize(model, 0), tmp_path / "m.onnx")


def test_import_keeps_brevitas_node_names_and_splits_gemm(tmp_path):
    g = import_graph(load_qonnx(_export(tmp_path, Tiny())))
    names = {type(o).__name__: o.name for o in ops(g)}
    assert names["Conv"] == "/conv/Conv"
    assert names["MatMul"] == "/fc/Gemm"  # Gemm -> MatMul + bias Affine under the Gemm's name
    kinds = [type(o) for o in ops(g)]
    assert kinds.index(MatMul) + 1 == kinds.index(Affine, kinds.index(MatMul))
    conv = next(o for o in ops(g) if isinstance(o, Conv))
    assert conv.weight.values.dtype.kind == "i" and abs(conv.weight.values).max() <= 7
    assert isinstance(ops(g)[1], Quantizer) and ops(g)[1].qmax == 255


@pytest.mark.parametrize("model,match", [
    (lambda: Tiny(middle=nn.AvgPool2d(2)), r"/middle/AveragePool.*op AveragePool is not supported"),
    (lambda: Tiny(tail=nn.Softmax(dim=1)), r"Softmax.*op Softmax is not supported"),
    (lambda: Tiny(tail=nn.Sigmoid()), r"op Sigmoid is not supported"),
    (lambda: Tiny(conv=QuantConv2d(1, 4, 3, padding=1, groups=1, weight_bit_width=4, bias=False), residual=True),
     r"/Add.*branches"),
    (lambda: Tiny(conv=nn.Conv2d(1, 4, 3, padding=1, bias=False)), r"/conv/Conv.*weights must be quantized"),
    (lambda: Tiny(quant_input=False), r"/conv/Conv.*quantized first"),
    (lambda: Tiny(middle=nn.MaxPool2d(2, padding=1)), r"/middle/MaxPool.*padding"),
    (lambda: Tiny(middle=nn.MaxPool2d(3, stride=2, ceil_mode=True)), r"/middle/MaxPool.*ceil-mode"),
])
def test_unsupported_graphs_fail_naming_the_node_and_op(tmp_path, model, match):
    path = _export(tmp_path, model())
    with pytest.raises(CodesignError, match=match):
        lower_model(path)


def test_depthwise_convolution_is_rejected(tmp_path):
    class Depthwise(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = QuantIdentity(act_quant=FixedUint8Input)
            self.conv = QuantConv2d(1, 4, 3, padding=1, weight_bit_width=4, bias=False)
            self.act = QuantReLU(bit_width=4)
            self.dw = QuantConv2d(4, 4, 3, padding=1, groups=4, weight_bit_width=4, bias=False)

        def forward(self, x):
            return self.dw(self.act(self.conv(self.inp(x)))).mean(dim=(2, 3))

    with pytest.raises(CodesignError, match=r"/dw/Conv.*depthwise|ReduceMean"):
        lower_model(_export(tmp_path, Depthwise()))


def test_unreadable_inputs_fail_cleanly(tmp_path):
    with pytest.raises(CodesignError, match="file not found"):
        lower_model(tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not protobuf" * 10)
    with pytest.raises(CodesignError, match="bad.onnx"):
        lower_model(bad)


def test_a_hand_written_onnx_graph_with_an_unknown_op_names_it(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Tanh", ["x"], ["y"], name="squash_7")], "g", [x], [y])
    path = tmp_path / "tanh.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), str(path))
    with pytest.raises(CodesignError, match=r"node 'squash_7': op Tanh is not supported"):
        lower_model(path)


def test_float_preprocessing_and_bipolar_input_are_accepted(tmp_path):
    model = randomize(HandNet(wbits=(1, 1, 1, 1), abits=(1, 1, 1), in_kind="bipolar"), 0)
    g = lower_model(export(model, tmp_path / "m.onnx"))
    first = ops(g)[0]
    assert first.fmt.bipolar and len(first.preprocess) == 1  # the x - 0.5 shift runs on the host
