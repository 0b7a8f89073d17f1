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
    (lambda: Tiny(middle=nn.AvgPool2d(2)), r"/middle/AveragePool.*its input is not quantized"),
    (lambda: Tiny(middle=nn.Tanh()), r"1 unsupported node: Tanh '/middle/Tanh'"),
    (lambda: Tiny(tail=nn.Softmax(dim=1)), r"unsupported node: Softmax '/tail/Softmax'"),
    (lambda: Tiny(tail=nn.Sigmoid()), r"unsupported node: Sigmoid '/tail/Sigmoid'"),
    (lambda: Tiny(conv=QuantConv2d(1, 4, 3, padding=1, groups=1, weight_bit_width=4, bias=False), residual=True),
     r"/Add.*an add of tensors of shapes \[1, 4, 8, 8\] and \[1, 1, 8, 8\] is not supported"),
    (lambda: Tiny(conv=nn.Conv2d(1, 4, 3, padding=1, bias=False)), r"/conv/Conv.*weights must be quantized"),
    (lambda: Tiny(quant_input=False), r"/conv/Conv.*quantized first"),
    (lambda: Tiny(middle=nn.MaxPool2d(2, padding=1)), r"/middle/MaxPool.*padding"),
    (lambda: Tiny(middle=nn.MaxPool2d(3, stride=2, ceil_mode=True)), r"/middle/MaxPool.*ceil-mode"),
])
def test_unsupported_graphs_fail_naming_the_node_and_op(tmp_path, model, match):
    path = _export(tmp_path, model())
    with pytest.raises(CodesignError, match=match):
        lower_model(path)


def test_a_mean_of_unquantized_depthwise_outputs_is_rejected(tmp_path):
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
    with pytest.raises(CodesignError, match=r"1 unsupported node: Tanh 'squash_7'; supported ops: Quant, "):
        lower_model(path)


def test_float_preprocessing_and_bipolar_input_are_accepted(tmp_path):
    model = randomize(HandNet(wbits=(1, 1, 1, 1), abits=(1, 1, 1), in_kind="bipolar"), 0)
    g = lower_model(export(model, tmp_path / "m.onnx"))
    first = ops(g)[0]
    assert first.fmt.bipolar and len(first.preprocess) == 1  # the x - 0.5 shift runs on the host


def test_every_unsupported_node_is_listed_in_one_error_line(tmp_path):
    path = _export(tmp_path, Tiny(middle=nn.Tanh(), tail=nn.Sigmoid()))
    with pytest.raises(CodesignError) as err:
        lower_model(path)
    message = str(err.value)
    assert "2 unsupported nodes: Tanh '/middle/Tanh', Sigmoid '/tail/Sigmoid'; supported ops: " in message
    assert "\n" not in message


def test_tensor_norm_constants_are_folded_before_the_op_check(tmp_path):
    from brevitas_examples.bnn_pynq.models.tensor_norm import TensorNorm
    from test_backend_models import check_against_brevitas

    model = Tiny(tail=TensorNorm())
    with torch.no_grad():
        model.tail.weight.fill_(-1.5)
        model.tail.running_var.fill_(3.0)
    path = _export(tmp_path, model)
    assert "Pow" in {n.op_type for n in onnx.load(str(path)).graph.node}  # (var + eps) ** 0.5 on constants
    check_against_brevitas(model, lower_model(path), torch.rand(64, 1, 8, 8))


def _const_chain_model(path):
    """x -> Quant -> MatMul(BipolarQuant(W)) -> Mul by -1/sqrt(Cast(Constant)) unsqueezed to (1, 3)."""
    import numpy as np
    from onnx import numpy_helper

    def init(name, value):
        return numpy_helper.from_array(np.asarray(value, dtype=np.float32), name)

    w = np.array([[1, -1, 1], [-1, -1, 1], [0.5, 1, -1], [1, 1, -0.2]], dtype=np.float32)
    nodes = [
        helper.make_node("Quant", ["x", "s_in", "zero", "bits"], ["xq"], name="inp", domain="qonnx.custom_op.general",
                         signed=0, narrow=0, rounding_mode="ROUND"),
        helper.make_node("BipolarQuant", ["w", "one"], ["wq"], name="wquant", domain="qonnx.custom_op.general"),
        helper.make_node("MatMul", ["xq", "wq"], ["acc"], name="fc"),
        helper.make_node("Constant", [], ["v_int"], name="var", value=numpy_helper.from_array(
            np.array([4, 9, 16], dtype=np.int32))),
        helper.make_node("Cast", ["v_int"], ["v"], name="cast", to=TensorProto.FLOAT),
        helper.make_node("Sqrt", ["v"], ["std"], name="sqrt"),
        helper.make_node("Reciprocal", ["std"], ["inv"], name="recip"),
        helper.make_node("Neg", ["inv"], ["neg"], name="neg"),
        helper.make_node("Unsqueeze", ["neg", "axes"], ["gain"], name="unsq"),
        helper.make_node("Mul", ["acc", "gain"], ["y"], name="scale"),
    ]
    inits = [init("s_in", 1 / 255), init("zero", 0), init("bits", 8), init("w", w), init("one", 1),
             numpy_helper.from_array(np.array([0], dtype=np.int64), "axes")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                      helper.make_opsetid("qonnx.custom_op.general", 1)],
                                ir_version=8), str(path))
    return path


def test_constant_chains_of_any_op_fold_and_weight_quantizers_stay(tmp_path):
    import numpy as np

    g = import_graph(load_qonnx(_const_chain_model(tmp_path / "chain.onnx")))
    items = ops(g)
    assert [type(o).__name__ for o in items] == ["Source", "Quantizer", "MatMul", "Affine", "Sink"]
    matmul, affine = items[2], items[3]
    assert matmul.name == "fc" and matmul.weight.values.dtype.kind == "i"
    assert np.array_equal(matmul.weight.values, [[1, -1, 1], [-1, -1, 1], [1, 1, -1], [1, 1, -1]])
    assert affine.name == "scale" and np.allclose(affine.mul, [-1 / 2, -1 / 3, -1 / 4])
