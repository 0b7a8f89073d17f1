"""Hardware kinds behind one interface (hw_space.layers.HwKind) and the lowering registries
(hw_space.lowering): adding a kind is one class plus one registry entry, and the cost model, the
folding optimizer, the estimate and the simulator pick it up with no other change."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hw_space.boards import load_board
from hw_space.design import LAYER_TYPES, Design, Hardware, InputSpec, Layer, LayerFold, Network, Shape, load_design
from hw_space.errors import CodesignError
from hw_space.estimate import estimate
from hw_space.fold_axes import FoldAxis
from hw_space.folding import legal_folds
from hw_space.layer_kinds import LAYER_KINDS, MaxPoolKind
from hw_space.layers import (
    MVAU,
    FoldArrays,
    HwKind,
    MaxPool,
    MaxPoolRows,
    Resources,
    Role,
    SlidingWindow,
    TiledConv,
    TiledPool,
    WidthConverter,
)
from hw_space.lowering import DATAFLOW_LOWERING, TILED_LOWERING, fold_specs, lower_dataflow
from hw_space.model import CostModel
from hw_space.simulate import build_chain, simulate_chain

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_every_layer_type_has_a_lowering_per_template():
    assert set(DATAFLOW_LOWERING) == set(TILED_LOWERING) == set(LAYER_TYPES)


def test_the_dataflow_lowering_of_each_layer_type():
    net = Network(InputSpec(3, 8, 8, 8), (
        Layer("conv0", "conv", out_channels=4, kernel=3, padding=1, weight_bits=2, act_bits=2),
        Layer("pool0", "maxpool", kernel=2, stride=2),
        Layer("fc0", "dense", out_features=10, weight_bits=2),
    ))
    conv, pool, dense = lower_dataflow(net)
    assert [type(k) for k in conv] == [SlidingWindow, WidthConverter, MVAU]
    assert [k.name for k in conv] == ["conv0_swg", "conv0_dwc", "conv0"]
    # padded 10x10 map, 3 channels; the MVAU folds MW = 3*3*3 = 27 and MH = 4 over 8*8 pixels
    assert (conv[0].ifm_h, conv[0].pad, conv[2].mw, conv[2].mh, conv[2].ofm) == (10, 1, 27, 4, 64)
    assert not conv[2].logits and dense[0].logits  # only the last layer writes dot products
    assert [type(k) for k in pool] == [MaxPoolRows, MaxPool] and [k.name for k in pool] == ["pool0_rows", "pool0"]
    # what the folding of each layer offers, from its kinds' axes
    conv_spec, pool_spec, dense_spec = fold_specs(net)
    assert [(a.field, a.total) for a in conv_spec.axes] == [("swg_simd", 3), ("pe", 4), ("simd", 27)]
    assert conv_spec.styles == ("weight_memory", "mac") and pool_spec.styles == ()
    assert pool_spec.default("pe") == 4 and conv_spec.default("pe") == 1  # a pool takes all channels per cycle
    # the dense layer reads the pooled 4x4x4 map: SIMD divides its 64 inputs; the pool has no SIMD
    assert pool_spec.values("simd") == [1] and dense_spec.values("simd") == [1, 2, 4, 8, 16, 32, 64]


def test_a_layer_type_without_lowering_is_refused_in_one_line(monkeypatch):
    # a network layer kind registered without hardware stages (hw_space.layer_kinds) reaches the
    # cost model, which names the missing lowering
    class MinPoolKind(MaxPoolKind):
        type, prefix = "minpool", "minp"

    monkeypatch.setitem(LAYER_KINDS, "minpool", MinPoolKind())
    net = Network(InputSpec(1, 4, 4, 8), (Layer("x0", "minpool", kernel=2, stride=2),
                                          Layer("fc0", "dense", out_features=2, weight_bits=2)))
    with pytest.raises(CodesignError, match=r"^layer x0: type 'minpool' has no dataflow lowering; "
                       r"known: conv, dense, maxpool, avgpool, global_avgpool, add$"):
        CostModel(net, load_board("zc706"))


def test_every_stage_carries_its_kind():
    design = load_design(EXAMPLES / "cnv_w1a1.yaml")
    model = CostModel(design.network, load_board("zc706"))
    for st in model.evaluate_designs([design]).stages:
        assert isinstance(st.op, HwKind)
        assert (st.name, st.kind, st.template) == (st.op.name, st.op.kind, st.op.template)
    tiled = model.evaluate_tiled(4, 4, 8, 8)
    assert {type(st.op) for st in tiled.stages if st.op.role is Role.SEQUENTIAL} >= {TiledConv, TiledPool}


def test_the_legality_rule_is_built_from_the_fold_axes():
    # dense 256 -> 512: PE must divide MH = 512 and SIMD MW = 256; 3 divides neither
    mvau = MVAU("fc0", 256, 512, 1)
    assert mvau.rule("fc0") == "fc0: MH (512) must be divisible by PE and MW (256) by SIMD"
    a = FoldArrays.blank(3, pe=np.array([1, 3, 512]), simd=np.array([3, 1, 256]))
    assert mvau.stage_legal(a).tolist() == [False, False, True]
    assert mvau.stage_legal(a).tolist() == mvau.legal(a.pe, a.simd).tolist()  # the formula method agrees
    assert MaxPool("p", 4, 4, 64, 2, 2).rule("pool0") == "pool0: channels (64) must be divisible by PE"


def test_the_window_derives_its_simd_from_the_mvau():
    # C = 64: SIMD 48 on the MVAU gives the window 32 (largest divisor of 64 <= 48); 16 stays 16
    swg = SlidingWindow("c_swg", 10, 10, 64, 3, 1, 8, 8)
    a = swg.resolve(FoldArrays.blank(3, simd=np.array([48, 16, 48]), swg_simd=np.array([0, 0, 48])))
    assert a.swg_simd.tolist() == [32, 16, 48]
    assert swg.stage_legal(a).tolist() == [True, True, False]  # 64 % 48 != 0


# ---------------------------------------------------------------- a new kind: one class, one entry

@dataclass(frozen=True)
class ToyPool(HwKind):
    """A one-pass 2x2 max-pool (stride 2): reads every element once, PE channels per cycle, writes a
    word at the bottom-right corner of each window. cycles = H * W * C / PE."""

    name: str
    h: int
    w: int
    channels: int
    template = "toy_pool"
    kind = "toy_pool"
    AXIS_LABELS = {"pe": ("channels", "PE")}

    def fold_axes(self) -> tuple[FoldAxis, ...]:
        return (FoldAxis("pe", self.channels, "channels"),)

    def in_elems(self, a: FoldArrays) -> np.ndarray:
        return a.pe

    def out_elems(self, a: FoldArrays) -> np.ndarray:
        return a.pe

    def stage_cycles(self, a: FoldArrays) -> np.ndarray:
        return self.h * self.w * (self.channels // np.maximum(a.pe, 1))

    def stage_resources(self, a: FoldArrays) -> Resources:
        lut = 50 + 2 * a.pe * a.in_bits
        zero = np.zeros(a.n, dtype=np.int64)
        return Resources(lut, 2 * lut, zero, zero, zero, LUTRAM=zero)

    def stage_width(self, a: FoldArrays) -> np.ndarray:
        return a.pe * a.in_bits

    def detail(self, a: FoldArrays) -> dict[str, Any]:
        return {"h": self.h, "w": self.w, "cf": self.channels // np.maximum(a.pe, 1), "pe": a.pe}

    def schedule(self, d: dict[str, int], cycles: int) -> tuple[np.ndarray, np.ndarray]:
        t = np.arange(d["h"] * d["w"] * d["cf"])
        row, col = t // (d["w"] * d["cf"]), (t // d["cf"]) % d["w"]
        return np.ones(len(t), dtype=bool), (row % 2 == 1) & (col % 2 == 1)

    def summary(self, d: dict[str, int], width: int) -> dict[str, Any]:
        return {"pe": d["pe"]}


def _toy_lowering(layer: Layer, ishape: Shape, oshape: Shape) -> list[HwKind]:
    return [ToyPool(layer.name, ishape.height, ishape.width, ishape.channels)]


TOY_NET = Network(InputSpec(1, 8, 8, 8), (
    Layer("conv0", "conv", out_channels=4, kernel=3, padding=1, weight_bits=2, act_bits=2),
    Layer("pool0", "maxpool", kernel=2, stride=2),
    Layer("fc0", "dense", out_features=10, weight_bits=2),
))


def test_a_new_kind_is_one_class_and_one_registry_entry(monkeypatch):
    monkeypatch.setitem(DATAFLOW_LOWERING, "maxpool", _toy_lowering)
    board = load_board("zc706")
    model = CostModel(TOY_NET, board)
    # the folding optimizer reads the new kind's axes: PE divides the 4 channels, no SIMD
    assert legal_folds(TOY_NET)["pool0"] == ([1, 2, 4], [1])
    result = model.evaluate_dataflow(pe=np.array([[1, 2, 1], [1, 3, 1]]), simd=np.array([[1, 1, 1], [1, 1, 1]]))
    kernels = [st.name for st in result.stages if st.kind not in ("fifo", "shell")]
    assert kernels == ["input", "conv0_swg", "conv0_dwc", "conv0", "pool0_in_dwc", "pool0", "fc0_in_dwc", "fc0",
                       "output"]
    pool = next(st for st in result.stages if st.name == "pool0")
    assert pool.kind == "toy_pool" and pool.template == "toy_pool"
    # 8x8 map of 4 channels: 8 * 8 * 4/2 = 128 cycles at PE 2; PE 3 is illegal and says why
    assert int(pool.cycles[0]) == 128
    assert pool.legal.tolist() == [True, False] and result.legal.tolist() == [True, False]
    assert pool.rule == "pool0: channels (4) must be divisible by PE"
    # its word (PE = 2 elements of 2 bits) sets the FIFO after it and the converter before fc0
    fifo = next(st for st in result.stages if st.name == "pool0_fifo")
    assert int(fifo.width[0]) == 4
    dwc = next(st for st in result.stages if st.name == "fc0_in_dwc")
    assert int(dwc.detail["in_elems"][0]) == 2 and int(dwc.detail["out_elems"][0]) == 1
    # the simulator plays the kind's schedule: a 2x2 window writes (8/2) * (8/2) * 4/2 = 32 words
    chain = build_chain(result, 0)
    toy = next(ks for ks in chain.kernels if ks.name == "pool0")
    assert toy.iterations == 128 and toy.words_out == 32
    sim = simulate_chain(chain, chain.model_depths)
    assert not sim.deadlock and sim.ii_cycles is not None
    # the per-design estimate reports what the kind's summary names
    design = Design(TOY_NET, Hardware(board="zc706", layers={"pool0": LayerFold(pe=2)}))
    row = next(r for r in estimate(design, board, simulate=False).layers if r.name == "pool0")
    assert (row.kind, row.pe, row.simd, row.cycles) == ("toy_pool", 2, None, 128)


def test_the_registry_is_back_to_the_max_pool_after_the_toy():
    assert [type(k) for k in lower_dataflow(TOY_NET)[1]] == [MaxPoolRows, MaxPool]
