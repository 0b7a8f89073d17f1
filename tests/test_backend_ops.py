"""The backend's op interface: ops own their semantics (execute, apply_fold) and their HLS template
(registry), the graph is a DAG (producers, consumers, fork/join, topological order) and the writer,
the reference and the hardware steps know no op kinds."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest

from codesign.backend import reference
from codesign.backend.graph import (
    HARDWARE_OPS,
    MVAU,
    InputStage,
    IntFmt,
    OutputStage,
    Quantizer,
    SlidingWindow,
    WidthConverter,
    chain,
    connect,
    consumers,
    from_ops,
    is_fork,
    is_join,
    op,
    producers,
    topological,
)
from codesign.backend.ops import HardwareOp, Node, Values, template_of
from codesign.backend.transforms import ApplyFolding, InsertWidthConverters, MarkXnor
from codesign.backend.writer import KERNEL_PARTS, TEMPLATE_DIR, _environment, stage_context, write_project
from hw_space.design import LayerFold
from hw_space.errors import CodesignError

UINT4 = IntFmt(4, False)


def _input(c: int = 6) -> InputStage:
    quant = Quantizer(name="q", onnx_op="Quant", scale=np.array([1 / 15]), qmin=0, qmax=15)
    return InputStage(name="input", shape=(1, 1, c), quantizer=quant, source_shape=(1, c))


def _dense(name: str, mh: int, mw: int, seed: int = 0) -> MVAU:
    weights = np.random.default_rng(seed).integers(-7, 8, size=(mh, mw))
    return MVAU(name=name, onnx_op="MatMul", mw=mw, mh=mh, weights=weights, w_fmt=IntFmt(4, True), in_fmt=UINT4,
                layer=name, kind="dense", weight_bits=4)


def _dense_net(tmp_path=None):
    return from_ops([_input(6), _dense("fc0", 4, 6), OutputStage(name="output", count=4)])


@dataclass
class Add(HardwareOp):
    """A two-input elementwise add, as a new op kind would be written (only execute here)."""

    model_kind: ClassVar[str] = "add"

    def execute(self, inputs: list[Values]) -> Values:
        return Values(inputs[0].values + 2 * inputs[1].values, inputs[0].fmt)


@dataclass
class Scale(HardwareOp):
    """Multiplies its input by `k` (a stand-in branch)."""

    k: int = 1

    def execute(self, inputs: list[Values]) -> Values:
        return Values(inputs[0].values * self.k, inputs[0].fmt)


def _diamond():
    """input -> a (x3), input -> b (x5), add(a on port 0, b on port 1) -> output."""
    g = from_ops([_input(2), Scale(name="a", k=3)])
    g.add_node("b", op=Scale(name="b", k=5))
    g.add_node("add", op=Add(name="add"))
    g.add_node("output", op=OutputStage(name="output", count=2))
    connect(g, "input", "b")
    connect(g, "b", "add", port=1)
    connect(g, "a", "add", port=0)
    connect(g, "add", "output")
    return g


def test_dag_queries_follow_edges_and_ports():
    g = _diamond()
    assert producers(g, "add") == ["a", "b"]  # by port, not by insertion order
    assert consumers(g, "input") == ["a", "b"]
    assert is_fork(g, "input") and not is_fork(g, "a")
    assert is_join(g, "add") and not is_join(g, "output")
    assert topological(g) == ["input", "a", "b", "add", "output"]
    assert topological(_dense_net()) == ["input", "fc0", "output"] == chain(_dense_net())


def test_chain_names_the_op_that_forks():
    with pytest.raises(CodesignError, match=r"node 'input': its output feeds 2 nodes"):
        chain(_diamond())


def test_reference_executes_a_dag_in_topological_order_by_port():
    codes = np.array([[1, 2], [3, 4]])
    out = reference.run(_diamond(), codes)
    assert np.array_equal(out, codes * 3 + 2 * codes * 5)  # port 0 is a (x3), port 1 is b (x5)


def test_the_writer_refuses_a_fork_without_a_duplicating_stage():
    with pytest.raises(CodesignError, match="node 'input': its output feeds 2 stages"):
        stage_context(_diamond())


def test_every_hardware_op_has_a_template_with_existing_files():
    for cls in HARDWARE_OPS:
        tpl = template_of(cls.__new__(cls))
        assert (TEMPLATE_DIR / tpl.call).is_file()
        for header in tpl.include_header:
            assert header in KERNEL_PARTS and (TEMPLATE_DIR / "kernels" / header).is_file()
        for extra in (tpl.params, tpl.pragmas):
            assert extra is None or (TEMPLATE_DIR / extra).is_file()
    mvau = template_of(_dense("fc0", 4, 6))
    assert (mvau.call, mvau.include_header, mvau.params) == ("stages/mvau.cpp.j2", ("mvau.h",), "params.h.j2")


def test_kernel_parts_are_static_and_the_header_takes_a_subset():
    for part in ["common.h", *KERNEL_PARTS]:
        text = (TEMPLATE_DIR / "kernels" / part).read_text()
        assert "{{" not in text and "{%" not in text
    env = _environment()
    every = env.get_template("kernels.h.j2").render(top="t", guard="G")
    only = env.get_template("kernels.h.j2").render(top="t", guard="G", kernels=["dwc.h"])
    for kernel in ("void sliding_window", "void mvau", "void max_pool_axis", "void width_convert", "void gearbox"):
        assert kernel in every
    assert "void width_convert" in only and "void gearbox" in only
    assert "void mvau" not in only and "void sliding_window" not in only


def test_a_project_includes_only_the_kernels_of_its_ops(tmp_path):
    g = ApplyFolding({"fc0": LayerFold(pe=2, simd=3)}).apply(MarkXnor().apply(_dense_net()))
    g = InsertWidthConverters().apply(g)
    write_project(g, tmp_path, top="accel")
    kernels = (tmp_path / "src" / "codesign_kernels.h").read_text()
    assert "void mvau" in kernels and "void axis_in" in kernels
    assert "void sliding_window" not in kernels and "void max_pool_axis" not in kernels
    top = (tmp_path / "src" / "accel.cpp").read_text()
    # streams are named after their edges (producer -> consumer)
    assert re.findall(r"hls::stream<ap_uint<\d+> > (\w+)\(", top) == ["s_input_fc0", "s_fc0_output"]


def test_apply_fold_is_the_op_s_with_the_one_divisibility_rule():
    g = _dense_net()
    item = op(g, "fc0")
    item.apply_fold({"fc0": LayerFold(pe=2, simd=3)}, Node(g, "fc0"))
    assert (item.pe, item.simd) == (2, 3)
    with pytest.raises(CodesignError, match=r"^hardware\.layers\.fc0\.simd: 4 must divide the layer's 6 inputs$"):
        item.apply_fold({"fc0": LayerFold(pe=1, simd=4)}, Node(g, "fc0"))


def test_a_window_takes_its_simd_from_the_mvau_it_feeds():
    swg = SlidingWindow(name="conv0_swg", ifm=(4, 4, 4), kernel=(3, 3), in_fmt=UINT4, out_fmt=UINT4)
    conv = _dense("conv0", 8, 36)
    conv.kind = "conv"
    g = from_ops([_input(4), swg, conv, OutputStage(name="output", count=8)])
    g = ApplyFolding({"conv0": LayerFold(pe=4, simd=3)}).apply(g)
    assert op(g, "conv0_swg").simd == 2  # the largest divisor of Cin=4 up to SIMD 3
    g = InsertWidthConverters().apply(g)
    names = [o.name for o in (op(g, k) for k in topological(g)) if isinstance(o, WidthConverter)]
    assert names == ["conv0_dwc"]  # the cost model's name, asked of the consumer (the MVAU)
