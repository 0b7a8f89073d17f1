"""Each lowering and hardware transformation on its own, on small hand-built graphs."""

from __future__ import annotations

import numpy as np
import pytest

from codesign.backend import reference
from codesign.backend.activation import eval_chain
from codesign.backend.graph import (
    MVAU,
    Affine,
    Conv,
    InputStage,
    IntFmt,
    Layout,
    MatMul,
    MaxPool,
    MaxReduce,
    OutputStage,
    QTensor,
    Quantizer,
    Relu,
    Sink,
    SlidingWindow,
    Source,
    WidthConverter,
    chain,
    from_ops,
    op,
    ops,
)
from codesign.backend.transforms import (
    AbsorbEpilogue,
    AbsorbLayout,
    ApplyFolding,
    CheckLowered,
    InsertWidthConverters,
    LowerActivation,
    LowerCompute,
    LowerInput,
    LowerMaxPool,
    LowerOutput,
    MarkXnor,
    SetFifoDepths,
    stream_positions,
)
from hw_space.design import LayerFold
from hw_space.errors import CodesignError

RNG = np.random.default_rng(7)
UINT8 = IntFmt(8, False)


def uint_quant(bits: int = 8, scale: float = 1 / 255, name: str = "q_in") -> Quantizer:
    return Quantizer(name=name, onnx_op="Quant", scale=np.array([scale]), qmin=0, qmax=2 ** bits - 1)


def bipolar_quant(name: str = "q_bin") -> Quantizer:
    return Quantizer(name=name, onnx_op="BipolarQuant", scale=np.array([1.0]), qmin=-1, qmax=1, bipolar=True)


def stage(h: int, w: int, c: int, quant: Quantizer | None = None) -> InputStage:
    return InputStage(name="input", shape=(h, w, c), quantizer=quant or uint_quant(), source_shape=(1, c, h, w))


def qweights(shape: tuple[int, ...], bits: int = 4, channels_axis: int = 0) -> QTensor:
    lim = 2 ** (bits - 1) - 1
    values = RNG.integers(-lim, lim + 1, size=shape)
    n = shape[channels_axis]
    return QTensor(values=values, scale=RNG.uniform(0.01, 0.1, size=n), fmt=IntFmt(bits, True))


def mvau(mh: int = 4, mw: int = 6, in_fmt: IntFmt = UINT8, bipolar_w: bool = False, **kw) -> MVAU:
    if bipolar_w:
        weights, w_fmt = RNG.choice([-1, 1], size=(mh, mw)), IntFmt(1, False, True)
    else:
        weights, w_fmt = RNG.integers(-7, 8, size=(mh, mw)), IntFmt(4, True)
    epilogue = [Affine(name="scale", mul=np.full(mh, 0.01), add=np.zeros(1))]
    return MVAU(name=kw.pop("name", "fc"), onnx_op="MatMul", mw=mw, mh=mh, weights=weights, w_fmt=w_fmt,
                in_fmt=in_fmt, epilogue=epilogue, weight_bits=1 if bipolar_w else 4, **kw)


def naive_conv(x: np.ndarray, w: np.ndarray, stride: tuple[int, int], pads: tuple[int, int, int, int]) -> np.ndarray:
    """x (N, C, H, W) integers, w (O, C, KH, KW) -> (N, O, OH, OW) integers."""
    t, l, b, r = pads
    x = np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)))
    o, _, kh, kw = w.shape
    oh = (x.shape[2] - kh) // stride[0] + 1
    ow = (x.shape[3] - kw) // stride[1] + 1
    out = np.zeros((x.shape[0], o, oh, ow), dtype=np.int64)
    for i in range(oh):
        for j in range(ow):
            patch = x[:, :, i * stride[0]:i * stride[0] + kh, j * stride[1]:j * stride[1] + kw]
            out[:, :, i, j] = np.einsum("nchw,ochw->no", patch, w)
    return out


# ---------------------------------------------------------------- LowerInput


def test_lower_input_keeps_float_preprocessing_for_the_host():
    pre = Affine(name="shift", onnx_op="Add", mul=np.ones(1), add=np.array([-0.5]))
    g = from_ops([Source(name="input", shape=(1, 2, 3, 3)), pre, uint_quant(4, 0.1), Sink(name="output")])
    g = LowerInput().apply(g)
    first = ops(g)[0]
    assert isinstance(first, InputStage) and len(ops(g)) == 2
    assert first.shape == (3, 3, 2) and first.fmt == IntFmt(4, False) and len(first.preprocess) == 1
    x = np.full((1, 2, 3, 3), 0.76, dtype=np.float32)
    assert np.all(reference.input_codes(g, x) == 3)  # round((0.76 - 0.5) / 0.1) = round(2.6)


def test_lower_input_follows_a_flatten_before_the_quantizer():
    flat = Layout(name="flat", onnx_op="Flatten", in_shape=(1, 2, 2, 2), out_shape=(1, 8),
                  perm=np.arange(8).reshape(1, 8))
    g = LowerInput().apply(from_ops([Source(name="input", shape=(1, 2, 2, 2)), flat, uint_quant(8, 1.0),
                                     Sink(name="output")]))
    assert ops(g)[0].shape == (1, 1, 8)
    x = np.arange(8, dtype=np.float32).reshape(1, 2, 2, 2)
    assert reference.input_codes(g, x).tolist() == [list(range(8))]  # channels-first order kept


def test_lower_input_requires_a_quantizer_first():
    conv = Conv(name="/features/conv0", onnx_op="Conv", weight=qweights((2, 1, 3, 3)))
    g = from_ops([Source(name="input", shape=(1, 1, 4, 4)), conv, Sink(name="output")])
    with pytest.raises(CodesignError, match=r"/features/conv0.*quantized first"):
        LowerInput().apply(g)


# ---------------------------------------------------------------- AbsorbLayout


@pytest.mark.parametrize("transpose_first", [False, True])
def test_absorb_layout_permutes_dense_weights_to_stream_order(transpose_first):
    c, h, w = 3, 2, 2
    weight = qweights((12, 5), channels_axis=1)
    layout = [Layout(name="flat", onnx_op="Flatten", in_shape=(1, c, h, w), out_shape=(1, 12),
                     perm=np.arange(12).reshape(1, 12))]
    if transpose_first:  # NCHW -> NHWC, then flatten: already the stream order
        idx = np.arange(12).reshape(1, c, h, w).transpose(0, 2, 3, 1)
        layout = [Layout(name="t", onnx_op="Transpose", in_shape=(1, c, h, w), out_shape=(1, h, w, c), perm=idx),
                  Layout(name="flat", onnx_op="Reshape", in_shape=(1, h, w, c), out_shape=(1, 12),
                         perm=np.arange(12).reshape(1, 12))]
    g = from_ops([stage(h, w, c), *layout, MatMul(name="fc", onnx_op="MatMul", weight=weight), Sink(name="output")])
    g = AbsorbLayout().apply(g)
    mm = ops(g)[1]
    assert isinstance(mm, MatMul) and len(ops(g)) == 3
    x = RNG.integers(0, 255, size=(4, c, h, w))
    logical = x.reshape(4, -1) @ (weight.values if not transpose_first else weight.values)
    if transpose_first:
        logical = x.transpose(0, 2, 3, 1).reshape(4, -1) @ weight.values
    stream = x.transpose(0, 2, 3, 1).reshape(4, -1)
    assert np.array_equal(stream @ mm.weight.values, logical)
    assert transpose_first == np.array_equal(mm.weight.values, weight.values)


def test_absorb_layout_rejects_a_transpose_before_a_convolution():
    idx = np.arange(8).reshape(1, 2, 2, 2).transpose(0, 1, 3, 2)
    layout = Layout(name="swap_hw", onnx_op="Transpose", in_shape=(1, 2, 2, 2), out_shape=(1, 2, 2, 2), perm=idx)
    conv = Conv(name="conv_a", onnx_op="Conv", weight=qweights((2, 2, 1, 1)), kernel=(1, 1), in_shape=(2, 2, 2),
                out_shape=(2, 2, 2))
    g = from_ops([stage(2, 2, 2), layout, conv, Sink(name="output")])
    with pytest.raises(CodesignError, match="conv_a"):
        AbsorbLayout().apply(g)


def test_stream_positions_put_channels_innermost():
    pos = stream_positions((1, 2, 2, 3))
    assert pos[0, 1, 0, 0] == 1 and pos[0, 0, 0, 1] == 2 and pos[0, 0, 1, 0] == 6


# ---------------------------------------------------------------- LowerCompute


@pytest.mark.parametrize("stride,pads", [((1, 1), (1, 1, 1, 1)), ((2, 2), (1, 0, 1, 0)), ((1, 2), (0, 0, 0, 0))])
def test_lower_compute_splits_conv_into_window_and_mvau_that_compute_the_conv(stride, pads):
    c, h, w, o = 2, 5, 6, 3
    weight = qweights((o, c, 3, 3))
    oh = (h + pads[0] + pads[2] - 3) // stride[0] + 1
    ow = (w + pads[1] + pads[3] - 3) // stride[1] + 1
    conv = Conv(name="c0", onnx_op="Conv", weight=weight, bias=np.arange(o, dtype=float), kernel=(3, 3),
                stride=stride, pads=pads, in_shape=(c, h, w), out_shape=(o, oh, ow))
    g = LowerCompute().apply(from_ops([stage(h, w, c, uint_quant(4, 0.5)), conv, Sink(name="output")]))
    swg, mv = ops(g)[1:3]
    assert isinstance(swg, SlidingWindow) and isinstance(mv, MVAU)
    assert swg.ofm == (oh, ow) and mv.reps == oh * ow and mv.mw == 18 and mv.mh == o
    assert np.allclose(mv.epilogue[0].mul, 0.5 * weight.scale) and np.allclose(mv.epilogue[1].add, np.arange(o))
    x = RNG.integers(0, 16, size=(3, c, h, w))
    windows = reference._windows(x.transpose(0, 2, 3, 1), swg)
    acc = reference.mvau_acc(mv, windows)
    assert np.array_equal(acc, naive_conv(x, weight.values, stride, pads).transpose(0, 2, 3, 1))


def test_lower_compute_widens_padded_bipolar_input_to_int2():
    conv = Conv(name="c1", onnx_op="Conv", weight=qweights((2, 1, 3, 3)), kernel=(3, 3), pads=(1, 1, 1, 1),
                in_shape=(1, 4, 4), out_shape=(2, 4, 4))
    g = LowerCompute().apply(from_ops([stage(4, 4, 1, bipolar_quant()), conv, Sink(name="output")]))
    swg, mv = ops(g)[1:3]
    assert swg.in_fmt.bipolar and swg.out_fmt == IntFmt(2, True) and mv.in_fmt == IntFmt(2, True)


def test_lower_compute_needs_a_quantized_input():
    raw = mvau(name="fc_a")
    g = from_ops([stage(1, 1, 6), raw, MatMul(name="fc_b", onnx_op="MatMul", weight=qweights((4, 3), 4, 1)),
                  Sink(name="output")])
    with pytest.raises(CodesignError, match="fc_b.*not quantized"):
        LowerCompute().apply(g)


# ---------------------------------------------------------------- AbsorbEpilogue


def test_absorb_epilogue_collects_affine_and_relu_up_to_the_quantizer():
    bn = Affine(name="bn", mul=RNG.normal(size=4), add=RNG.normal(size=4))
    g = from_ops([stage(1, 1, 6), mvau(), bn, Relu(name="relu"), uint_quant(4, 0.2, "q1"), Sink(name="output")])
    g = AbsorbEpilogue().apply(g)
    mv, q = ops(g)[1:3]
    assert [type(e).__name__ for e in mv.epilogue] == ["Affine", "Affine", "Relu"] and isinstance(q, Quantizer)


def test_absorb_epilogue_moves_a_pool_after_non_decreasing_ops():
    pool = MaxPool(name="pool", onnx_op="MaxPool", in_shape=(4, 2, 2), out_shape=(4, 1, 1))
    bn = Affine(name="bn", mul=np.array([0.5, 1.0, 2.0, 0.0]), add=RNG.normal(size=4))
    g = from_ops([stage(1, 1, 6), mvau(), pool, bn, uint_quant(2, 0.3, "q1"), Sink(name="output")])
    kinds = [type(o).__name__ for o in ops(AbsorbEpilogue().apply(g))]
    assert kinds == ["InputStage", "MVAU", "Quantizer", "MaxPool", "Sink"]


def test_absorb_epilogue_refuses_a_pool_before_a_negative_scale():
    pool = MaxPool(name="pool_neg", onnx_op="MaxPool", in_shape=(4, 2, 2), out_shape=(4, 1, 1))
    bn = Affine(name="bn", mul=np.array([0.5, -1.0, 2.0, 1.0]), add=np.zeros(4))
    g = from_ops([stage(1, 1, 6), mvau(), pool, bn, uint_quant(2, 0.3, "q1"), Sink(name="output")])
    with pytest.raises(CodesignError, match="pool_neg"):
        AbsorbEpilogue().apply(g)


# ---------------------------------------------------------------- LowerActivation


def test_lower_activation_thresholds_equal_the_float_chain_with_negative_channels():
    mv = mvau(mh=5, mw=7)
    mv.epilogue.append(Affine(name="bn", mul=np.array([1.0, -2.0, 0.5, -0.1, 0.0]), add=RNG.normal(size=5)))
    quant = uint_quant(3, 0.05, "q1")
    g = LowerActivation().apply(from_ops([stage(1, 1, 7), mv, quant, Sink(name="output")]))
    low = ops(g)[1]
    assert isinstance(low, MVAU) and low.out_fmt == IntFmt(3, False) and len(ops(g)) == 3
    assert low.signs.tolist() == [1, -1, 1, -1, 1]
    assert np.array_equal(low.weights, mv.weights * low.signs[:, None])
    x = RNG.integers(0, 256, size=(500, 7))
    acc = x @ mv.weights.T
    want = quant.codes(eval_chain(mv.epilogue, acc))
    got = reference.run(g, x)
    assert np.array_equal(got, want)


def test_lower_activation_limits_activations_to_8_bits():
    q16 = Quantizer(name="q16", onnx_op="Quant", scale=np.ones(1), qmin=0, qmax=2 ** 16 - 1)
    g = from_ops([stage(1, 1, 6), mvau(), q16, Sink(name="output")])
    with pytest.raises(CodesignError, match="q16.*8-bit"):
        LowerActivation().apply(g)


# ---------------------------------------------------------------- LowerMaxPool


def test_lower_maxpool_on_codes_equals_numpy_max_pool():
    pool = MaxPool(name="p0", onnx_op="MaxPool", kernel=(3, 3), stride=(2, 2), in_shape=(3, 7, 7), out_shape=(3, 3, 3))
    g = LowerMaxPool().apply(from_ops([stage(7, 7, 3), pool, Sink(name="output")]))
    swg, red = ops(g)[1:3]
    assert isinstance(swg, SlidingWindow) and isinstance(red, MaxReduce) and red.window == 9
    x = RNG.integers(0, 256, size=(4, 7, 7, 3))
    _, seen = reference.run(g, x.reshape(4, -1), trace=True)
    want = np.zeros((4, 3, 3, 3), dtype=np.int64)
    for i in range(3):
        for j in range(3):
            want[:, i, j] = x[:, 2 * i:2 * i + 3, 2 * j:2 * j + 3, :].max(axis=(1, 2))
    assert np.array_equal(seen[chain(g)[2]].reshape(4, 3, 3, 3), want)


def test_lower_maxpool_of_float_values_is_an_error():
    pool = MaxPool(name="p_float", onnx_op="MaxPool", in_shape=(4, 2, 2), out_shape=(4, 1, 1))
    g = from_ops([stage(1, 1, 6), mvau(), pool, Sink(name="output")])
    with pytest.raises(CodesignError, match="p_float"):
        LowerMaxPool().apply(g)


# ---------------------------------------------------------------- LowerOutput


def test_lower_output_composes_the_final_affine_ops():
    mv = mvau(mh=3)
    tail = Affine(name="cls", mul=np.array([1.0, 2.0, -1.0]), add=np.array([0.1, 0.2, 0.3]))
    g = LowerOutput().apply(from_ops([stage(1, 1, 6), mv, tail, Sink(name="output")]))
    out = ops(g)[-1]
    assert isinstance(out, OutputStage) and len(ops(g)) == 3 and out.count == 3
    acc = np.array([[5, -3, 7]])
    assert np.allclose(reference.logits(g, acc), eval_chain(mv.epilogue + [tail], acc))


def test_lower_output_decodes_bipolar_outputs_through_scale_and_bias():
    mv = mvau(mh=2, thresholds=np.zeros((2, 1), dtype=np.int64), out_fmt=IntFmt(1, False, True),
              out_scale=np.array([0.5]))
    g = LowerOutput().apply(from_ops([stage(1, 1, 6), mv, Sink(name="output")]))
    assert np.allclose(reference.logits(g, np.array([[1, 0]])), [[0.5, -0.5]])


def test_lower_output_needs_a_compute_layer_last():
    g = from_ops([stage(1, 1, 6), Relu(name="relu_out", onnx_op="Relu"), Sink(name="output")])
    with pytest.raises(CodesignError, match="relu_out|end with"):
        LowerOutput().apply(g)


def test_check_lowered_names_the_first_unlowered_node():
    g = from_ops([stage(1, 1, 6), Relu(name="lonely_relu", onnx_op="Relu"), mvau(),
                  OutputStage(name="output", count=4)])
    with pytest.raises(CodesignError, match="lonely_relu.*not supported at this position"):
        CheckLowered().apply(g)


# ---------------------------------------------------------------- hardware steps


def hw_graph(bipolar: bool = False):
    quant = bipolar_quant() if bipolar else uint_quant()
    swg = SlidingWindow(name="conv0_swg", ifm=(4, 4, 4), kernel=(3, 3), in_fmt=quant.fmt, out_fmt=quant.fmt)
    conv = mvau(mh=8, mw=36, in_fmt=quant.fmt, bipolar_w=bipolar, name="conv0", kind="conv", kernel=(3, 3),
                reps=4, layer="conv0", thresholds=np.zeros((8, 1), dtype=np.int64), out_fmt=IntFmt(1, False, True),
                out_scale=np.ones(1))
    fc = mvau(mh=4, mw=32, in_fmt=IntFmt(1, False, True), bipolar_w=True, name="fc0", layer="fc0")
    return from_ops([stage(4, 4, 4, quant), swg, conv, fc, OutputStage(name="output", count=4)])


@pytest.mark.parametrize("bipolar", [False, True])
def test_mark_xnor_only_for_bipolar_inputs_and_weights(bipolar):
    kinds = {o.name: o.xnor for o in ops(MarkXnor().apply(hw_graph(bipolar))) if isinstance(o, MVAU)}
    assert kinds == {"conv0": bipolar, "fc0": True}


def test_apply_folding_sets_lanes_and_the_window_simd():
    g = ApplyFolding({"conv0": LayerFold(pe=4, simd=2), "fc0": LayerFold(pe=2, simd=8)}).apply(hw_graph())
    first, swg, conv, fc, out = ops(g)
    assert (swg.simd, conv.pe, conv.simd, fc.pe, fc.simd) == (2, 4, 2, 2, 8)
    assert first.elems == 2 and out.elems == 2


@pytest.mark.parametrize("fold,match", [({"conv0": LayerFold(simd=5)}, r"conv0\.simd: 5 must divide.*inputs per output"),
                                        ({"conv0": LayerFold(simd=3, swg_simd=3)},
                                         r"conv0\.swg_simd: 3 must divide.*4 input channels"),
                                        ({"fc0": LayerFold(pe=3)}, r"fc0\.pe: 3 must divide.*4 outputs")])
def test_apply_folding_rejects_lanes_that_do_not_divide(fold, match):
    with pytest.raises(CodesignError, match=match):
        ApplyFolding(fold).apply(hw_graph())


def test_width_converters_go_where_neighbours_differ():
    g = ApplyFolding({"conv0": LayerFold(pe=4, simd=2), "fc0": LayerFold(pe=1, simd=8)}).apply(hw_graph())
    g = InsertWidthConverters().apply(g)
    dwc = [o for o in ops(g) if isinstance(o, WidthConverter)]
    assert [(d.in_elems, d.out_elems, d.total) for d in dwc] == [(4, 8, 32)]
    assert [type(o).__name__ for o in ops(g)].index("WidthConverter") == 3


def _stream_bits(g) -> list[int]:
    keys = chain(g)
    return [op(g, k).out_elems * (1 if op(g, k).stream_fmt.bipolar else op(g, k).stream_fmt.bits) for k in keys[:-1]]


def test_fifo_depths_are_the_model_s_in_stream_order():
    g = ApplyFolding({"conv0": LayerFold(simd=2)}).apply(hw_graph())
    kinds, widths = ["io", "swg", "mvau", "mvau", "io"], _stream_bits(g)
    g = SetFifoDepths([5, 7, 2, 3], kinds, widths).apply(g)
    keys = chain(g)
    assert [g.edges[u, v]["depth"] for u, v in zip(keys, keys[1:])] == [5, 7, 2, 3]
    assert isinstance(op(g, keys[1]), SlidingWindow)


@pytest.mark.parametrize("kinds, widths", [(["io", "swg", "mvau", "dwc", "mvau", "io"], None),  # a kernel too many
                                           (["io", "swg", "mvau", "mvau", "io"], [16, 16, 1, 1])])  # a word differs
def test_fifo_depths_refuse_a_graph_that_is_not_the_model_s(kinds, widths):
    g = ApplyFolding({"conv0": LayerFold(simd=2)}).apply(hw_graph())
    with pytest.raises(CodesignError, match="internal error"):
        SetFifoDepths([2] * 4, kinds, widths or _stream_bits(g)).apply(g)
