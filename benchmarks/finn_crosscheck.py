"""FINN's own estimates against ours, on FINN's published designs, through `codesign export-finn`.

Runs inside the FINN reference environment (scripts/finn_reference.sh) with this repository importable:

    bash scripts/finn_reference.sh
    PYTHONPATH=. .finn-venv/bin/python benchmarks/finn_crosscheck.py [--cases cnv_w1a1,tfc_w1a1] [--out DIR] [--json FILE]

For every case it builds our Brevitas model of the network (quant.build, seeded random weights: costs
depend on shapes, bits and folding only), exports it (quant.export), writes the FINN hand-off folder
(codesign.backend.finn_export.export_finn), runs FINN's estimate-only build on it (step_qonnx_to_finn ..
step_generate_estimate_reports, FINN's streamlining, HW conversion, SpecializeLayers and our folding
config), and prints per FINN node and in total FINN's `get_exp_cycles` and LUT / BRAM18 / URAM / DSP
estimates next to ours (hw_space.model, FIFOs at the simulated depths). Then our FIFOs and width
converters against FINN's models of the same shapes; FINN's SetFolding against our `fold` toward the
same cycle target, both scored by FINN's estimator and ours (--no-fold skips it); the speed of FINN's
estimator against our batch path on random foldings; and FINN's Python execution of the exported
graph against our integer reference. Last, the calibration points (published implementations)
against our estimate and FINN's.

The cases (published foldings where we have them):
* cnv_w1a1 - BNN-PYNQ CNV, FINN's cnv end-to-end folding (examples/cnv_w1a1.yaml), on the Pynq-Z1.
* cnv_w2a2 - the same network at W2A2 with the same folding (finn-examples' own cnv-w2a2 folding is
  not available offline here).
* tfc_w1a1 - FINN's TFC notebook folding (tests/test_hw_finn.py): (16,49) (8,8) (8,8) (10,8), ram_style
  block / auto / auto / distributed, bipolar input as in FINN (the input thresholding runs on the host).
* sfc_w1a1 - 784-256-256-256-10, folded by our `hw_space.folding.fold` for 100k FPS (one of ours).
* lfc_w1a1, lfc_w1a2 - BNN-PYNQ LFC with its padding (832 inputs, 64 outputs) and its published folding
  PE/SIMD 32/64, 64/32, 32/64, 16/8 (calibration points: examples/calibration/, weight_layout per_pe).
* cyber_mlp - FINN's cybersecurity MLP tutorial: 600-64-64-64-1, W2A2, folding 16/40, 1/64, 1/64, 1/1,
  ram_style auto, resType lut (calibration point: examples/calibration/cyber_mlp.yaml, weight_layout
  wide as FINN builds it; our last layer has no output threshold).
* digits_w4a4, digits_w1a1 - examples/digits_w4a4.yaml and digits_w1a1.yaml folded by our `fold` for the
  Pynq-Z1 (ours). digits_w1a1 has padded bipolar convolutions: FINN's streamlining pads the binarized
  maps with -1 where the model pads with 0, so its streamlined graph computes something else.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from hw_space.boards import load_board  # noqa: E402
from hw_space.design import Design, Hardware, InputSpec, Layer, LayerFold, Network, load_design  # noqa: E402

BOARD = "pynq-z1"
RESOURCES = ("LUT", "BRAM18", "URAM", "DSP")
FINN_RES_KEYS = {"LUT": "LUT", "BRAM18": "BRAM_18K", "URAM": "URAM", "DSP": "DSP"}


# ---------------------------------------------------------------- FINN without its vendor tools

def setup_finn() -> None:
    """What finn-plus needs to run its front half without Vivado: dummy settings, a placeholder for
    its XSI simulator binding (imported by build_dataflow_steps), and XILINX_VIVADO set to anything
    so the estimate-only build can write its metadata."""
    os.environ.setdefault("XILINX_VIVADO", "/nonexistent/vivado")
    warnings.filterwarnings("ignore")
    from finn.util import settings

    settings.initialize_dummy_settings()
    import finn.xsi

    if not hasattr(finn.xsi, "_codesign_placeholder"):
        finn.xsi.SimEngine = type("SimEngine", (), {})  # never used by the estimate-only steps
        finn.xsi._codesign_placeholder = True


def run_finn_estimates(export_dir: Path, out_dir: Path, quiet: bool = True) -> dict:
    """FINN's estimate-only build of an export folder: {"rc", "cycles", "resources", "applied",
    "seconds", "out"}; FINN's intermediate models stay in out_dir/intermediate_models."""
    setup_finn()
    from finn.builder.build_dataflow import build_dataflow_cfg
    from finn.builder.build_dataflow_config import DataflowBuildConfig

    cfg = DataflowBuildConfig.construct_from(Path(export_dir) / "dataflow_build_config_estimates.json")
    cfg.output_dir = str(out_dir)
    started = time.perf_counter()
    sink = io.StringIO()
    old = os.getcwd()
    # FINN's builder wraps sys.stdout/stderr and adds a console handler to the root logger on every
    # build: put all of it back afterwards
    saved = sys.stdout, sys.stderr, list(logging.getLogger().handlers), logging.getLogger().level
    os.chdir(out_dir.parent)  # FINN writes FINN_TMP into the working folder
    try:
        with contextlib.redirect_stdout(sink) if quiet else contextlib.nullcontext():
            rc = build_dataflow_cfg(str(Path(export_dir) / "model.onnx"), cfg)
    finally:
        os.chdir(old)
        sys.stdout, sys.stderr = saved[0], saved[1]
        root = logging.getLogger()
        root.handlers[:] = saved[2]
        root.setLevel(saved[3])
    report = Path(out_dir) / "report"

    def load(name: str) -> dict:
        path = report / name
        return json.loads(path.read_text()) if path.is_file() else {}

    return {"rc": rc, "cycles": load("estimate_layer_cycles.json"), "resources": load("estimate_layer_resources.json"),
            "applied": load("applied_folding_config.json"), "performance": load("estimate_network_performance.json"),
            "seconds": time.perf_counter() - started, "out": str(out_dir), "log": sink.getvalue()[-4000:]}


# ---------------------------------------------------------------- the cases

def _dense_net(inputs: int, hidden: list[int], outputs: int, wbits: int, abits: int, in_bits: int,
               last_wbits: int | None = None) -> Network:
    layers = [Layer(f"fc{i}", "dense", out_features=h, weight_bits=wbits, act_bits=abits) for i, h in enumerate(hidden)]
    layers.append(Layer(f"fc{len(hidden)}", "dense", out_features=outputs, weight_bits=last_wbits or wbits))
    return Network(InputSpec(inputs, 1, 1, in_bits), tuple(layers))


def _with_folds(net: Network, folds: dict[str, LayerFold], board: str = BOARD) -> Design:
    return Design(net, Hardware(board=board, clock_mhz=100.0, layers=folds))


def _folded(design: Design, target_fps: float | None) -> Design:
    from hw_space.folding import fold

    return fold(design, load_board(design.hardware.board), target_fps=target_fps)


def cases() -> dict[str, Design]:
    cnv = load_design(REPO / "examples" / "cnv_w1a1.yaml").with_hardware(board=BOARD)
    cnv2 = Design(Network(cnv.network.input, tuple(
        Layer(l.name, l.type, out_channels=l.out_channels, out_features=l.out_features, kernel=l.kernel, stride=l.stride,
              padding=l.padding, weight_bits=2 if l.is_compute else 0, act_bits=2 if l.act_bits else None)
        for l in cnv.network.layers)), cnv.hardware)
    tfc = _with_folds(_dense_net(784, [64, 64, 64], 10, 1, 1, 1), {
        "fc0": LayerFold(pe=16, simd=49, weight_memory="bram"), "fc1": LayerFold(pe=8, simd=8),
        "fc2": LayerFold(pe=8, simd=8), "fc3": LayerFold(pe=10, simd=8, weight_memory="lutram")})
    # the calibration points (issue 9) as the Design YAMLs the calibration test estimates
    lfc1, lfc2, cyber = (load_design(REPO / "examples" / "calibration" / f"{n}.yaml")
                         for n in ("lfc_w1a1", "lfc_w1a2", "cyber_mlp"))
    sfc = _folded(_with_folds(_dense_net(784, [256, 256, 256], 10, 1, 1, 1), {}), 100_000)
    digits = _folded(load_design(REPO / "examples" / "digits_w4a4.yaml").with_hardware(board=BOARD), None)
    digits1 = _folded(load_design(REPO / "examples" / "digits_w1a1.yaml").with_hardware(board=BOARD), None)
    return {"cnv_w1a1": cnv, "cnv_w2a2": cnv2, "tfc_w1a1": tfc, "sfc_w1a1": sfc, "lfc_w1a1": lfc1,
            "lfc_w1a2": lfc2, "cyber_mlp": cyber, "digits_w4a4": digits, "digits_w1a1": digits1}


def export_case(design: Design, work: Path, seed: int = 0) -> tuple[Path, dict, Path]:
    """Our Brevitas model of the design's network -> QONNX -> the FINN folder. Returns (export dir,
    export summary, QONNX path)."""
    import torch

    from codesign.backend.finn_export import export_finn
    from quant.build import build
    from quant.export import export_qonnx

    torch.manual_seed(seed)
    model = build(design.network)
    # non-trivial batch-norm statistics, so thresholds differ between channels
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.running_mean.uniform_(-2.0, 2.0)
                m.running_var.uniform_(0.5, 4.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    model.eval()
    qonnx = work / "model_qonnx.onnx"
    export_qonnx(model, design.network, qonnx)
    out = work / "finn"
    summary = export_finn(qonnx, design, load_board(design.hardware.board), out)
    return out, summary, qonnx


# ---------------------------------------------------------------- ours, per FINN node

def our_stages(design: Design) -> tuple[dict[str, dict], object]:
    """Our kernels (and FIFOs, width converters) by stage name: cycles and resources, FIFOs at the
    simulated depths, plus the BatchResult."""
    from hw_space.model import evaluate_design
    from hw_space.simulate import size_fifos

    board = load_board(design.hardware.board)
    depths = size_fifos(design, board).depths
    result = evaluate_design(design, board, fifo_depths=[depths])
    stages = {}
    for st in result.stages:
        stages[st.name] = {"layer": st.layer, "kind": st.kind, "active": bool(np.asarray(st.active)[0]),
                           "cycles": int(np.asarray(st.cycles)[0]),
                           **{k: int(np.asarray(getattr(st.res, k))[0]) for k in RESOURCES}}
    return stages, result


def _our_kernels_for(node: str, layer: str, stages: dict[str, dict], role: str) -> list[str]:
    """Our kernel stages that FINN node `node` (role swg/pad/mvau/pool) stands for."""
    if role == "swg":
        return [f"{layer}_swg"] if f"{layer}_swg" in stages else [f"{layer}_rows"]
    if role == "pad":
        return []  # our sliding window pads
    if role == "thr":
        return ["input"]  # FINN thresholds a bipolar input in hardware; ours receives +-1 through the input adapter
    return [layer]


def compare(design: Design, summary: dict, finn: dict) -> dict:
    """Per FINN node and total: FINN vs ours."""
    from codesign.backend.finn_export import finn_nodes

    stages, result = our_stages(design)
    roles = {n.name: n.role for n in finn_nodes(design)}
    rows = []
    finn_total = dict.fromkeys(RESOURCES, 0)
    for name, cycles in finn["cycles"].items():
        layer = summary["nodes"].get(name)
        fres = finn["resources"].get(name, {})
        f = {k: int(round(float(fres.get(FINN_RES_KEYS[k], 0)))) for k in RESOURCES}
        row = {"node": name, "layer": layer or "(FINN only)", "finn_cycles": int(cycles), **{f"finn_{k}": v for k, v in f.items()}}
        if layer is not None:
            ours = _our_kernels_for(name, layer, stages, roles.get(name, "mvau"))
            row["our_stage"] = "+".join(ours) or "-"
            row["our_cycles"] = max((stages[s]["cycles"] for s in ours), default=0)
            for k in RESOURCES:
                row[f"our_{k}"] = sum(stages[s][k] for s in ours)
            if roles.get(name) != "thr":
                for k in RESOURCES:
                    finn_total[k] += f[k]
            else:
                row["layer"] = "(input thr)"
        rows.append(row)
    kernels = [s for s in stages.values() if s["kind"] in ("swg", "mvau", "pool", "pool_rows")]
    extra = [s for s in stages.values() if s["kind"] in ("fifo", "dwc", "io")]
    shell = [s for s in stages.values() if s["kind"] == "shell"]
    ours_kernels = {k: sum(s[k] for s in kernels) for k in RESOURCES}
    ours_extra = {k: sum(s[k] for s in extra) for k in RESOURCES}
    ours_shell = {k: sum(s[k] for s in shell) for k in RESOURCES}
    finn_only = {k: sum(r[f"finn_{k}"] for r in rows if r["layer"] in ("(FINN only)", "(input thr)")) for k in RESOURCES}
    mvau = [r for r in rows if r["node"].startswith("MVAU")]
    return {"rows": rows, "finn_total": finn_total, "finn_only": finn_only, "ours_kernels": ours_kernels,
            "ours_fifo_dwc_io": ours_extra, "ours_shell": ours_shell,
            "finn_max_cycles": int(finn["performance"].get("max_cycles", 0)),
            "our_ii": int(np.asarray(result.ii_cycles)[0]),
            "mvau_cycles_equal": all(r["finn_cycles"] == r.get("our_cycles") for r in mvau),
            "folding_applied": _applied_ok(summary, finn)}


def _applied_ok(summary: dict, finn: dict) -> bool:
    """FINN applied every PE/SIMD we set (FINN's applied_folding_config.json)."""
    ours = json.loads((Path(summary["out_dir"]) / "folding_config.json").read_text())
    applied = finn.get("applied", {})
    for name, attrs in ours.items():
        if name == "Defaults":
            continue
        got = applied.get(name)
        if got is None:
            return False
        for key in ("PE", "SIMD", "ram_style", "resType"):
            if key in attrs and key in got and got[key] != attrs[key]:
                return False
    return True


def format_comparison(name: str, cmp: dict) -> str:
    head = (f"{'FINN node':<34}{'layer':<12}{'cycles FINN':>12}{'ours':>10}{'LUT FINN':>10}{'ours':>8}"
            f"{'BRAM FINN':>10}{'ours':>6}{'URAM':>6}{'ours':>6}{'DSP':>6}{'ours':>6}")
    lines = [f"== {name}", head, "-" * len(head)]
    for r in cmp["rows"]:
        def v(key, r=r):
            return "-" if key not in r else f"{r[key]:,}"
        lines.append(f"{r['node']:<34}{r['layer']:<12}{r['finn_cycles']:>12,}{v('our_cycles'):>10}{r['finn_LUT']:>10,}"
                     f"{v('our_LUT'):>8}{r['finn_BRAM18']:>10,}{v('our_BRAM18'):>6}{r['finn_URAM']:>6,}{v('our_URAM'):>6}"
                     f"{r['finn_DSP']:>6,}{v('our_DSP'):>6}")
    ft, ok, oe, sh, fo = cmp["finn_total"], cmp["ours_kernels"], cmp["ours_fifo_dwc_io"], cmp["ours_shell"], cmp["finn_only"]

    def tot(label, d):
        return f"{label:<46}" + "".join(f"{k} {d[k]:>8,}  " for k in RESOURCES)
    lines += ["-" * len(head),
              tot("FINN, nodes of our layers", ft),
              tot("ours, the same kernels", ok),
              tot("ours, + FIFOs, width converters, I/O", {k: ok[k] + oe[k] for k in RESOURCES}),
              tot("ours, + shell (whole design)", {k: ok[k] + oe[k] + sh[k] for k in RESOURCES}),
              tot("FINN-only nodes (input thr, float tail)", fo),
              f"II: FINN max_cycles {cmp['finn_max_cycles']:,}, ours {cmp['our_ii']:,}; "
              f"every MVAU's cycles equal: {cmp['mvau_cycles_equal']}; FINN applied our folding: {cmp['folding_applied']}"]
    for k in ("LUT", "BRAM18"):
        if ft[k]:
            lines.append(f"{k}: ours (same kernels) / FINN = {ok[k] / ft[k]:.3f}")
    return "\n".join(lines)


# ---------------------------------------------------------------- speed

def _divisors(n: int) -> np.ndarray:
    return np.array([d for d in range(1, n + 1) if n % d == 0], dtype=np.int64)


def random_foldings(design: Design, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(pe, simd) arrays (n, L) of random legal foldings (maxpool: PE a divisor of the channels)."""
    rng = np.random.default_rng(seed)
    net = design.network
    L = len(net.layers)
    pe = np.ones((n, L), dtype=np.int64)
    simd = np.ones((n, L), dtype=np.int64)
    for j, (layer, (ishape, _)) in enumerate(zip(net.layers, net.shapes())):
        if layer.type == "maxpool":
            pe[:, j] = rng.choice(_divisors(ishape.channels), n)
            continue
        mh = layer.out_channels if layer.type == "conv" else layer.out_features
        mw = layer.kernel * layer.kernel * ishape.channels if layer.type == "conv" else ishape.size
        pe[:, j] = rng.choice(_divisors(mh), n)
        if layer.type == "conv":  # keep the sliding window legal with its default SIMD
            simd[:, j] = rng.choice(_divisors(mw), n)
        else:
            simd[:, j] = rng.choice(_divisors(mw), n)
    return pe, simd


def speed(design: Design, finn_model_path: Path, n_finn: int = 20, n_ours: int = 100_000) -> dict:
    """Designs/s: FINN's estimators (set PE/SIMD on the specialized graph, exp_cycles_per_layer and
    res_estimation) vs our CostModel.evaluate_dataflow on random legal foldings."""
    setup_finn()
    from finn.analysis.fpgadataflow.exp_cycles_per_layer import exp_cycles_per_layer
    from finn.analysis.fpgadataflow.res_estimation import res_estimation
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp

    from codesign.backend.finn_export import finn_board, finn_nodes
    from hw_space.model import CostModel

    board = load_board(design.hardware.board)
    part = finn_board(board)[1]
    model = ModelWrapper(str(finn_model_path))
    nodes = {n.name: n for n in finn_nodes(design)}
    index = {layer.name: j for j, layer in enumerate(design.network.layers)}
    pe, simd = random_foldings(design, max(n_finn, 1), seed=1)
    insts = {node.name: getCustomOp(node) for node in model.graph.node if node.name in nodes}
    started = time.perf_counter()
    for i in range(n_finn):
        for name, inst in insts.items():
            fn = nodes[name]
            if fn.layer not in index:  # the input thresholding node: left as exported
                continue
            j = index[fn.layer]
            if fn.role == "mvau":
                inst.set_nodeattr("PE", int(pe[i, j]))
                inst.set_nodeattr("SIMD", int(simd[i, j]))
            elif fn.role == "pool":
                inst.set_nodeattr("PE", int(pe[i, j]))
            elif fn.role == "swg" and design.network.layers[j].type == "maxpool":
                inst.set_nodeattr("SIMD", int(pe[i, j]))
        model.analysis(exp_cycles_per_layer)
        model.analysis(lambda m: res_estimation(m, part))
    finn_s = time.perf_counter() - started
    cm = CostModel(design.network, board, design.hardware.clock_mhz)
    pe2, simd2 = random_foldings(design, n_ours, seed=2)
    cm.evaluate_dataflow(pe2[:10], simd2[:10])  # warm-up
    started = time.perf_counter()
    cm.evaluate_dataflow(pe2, simd2)
    ours_s = time.perf_counter() - started
    return {"finn_designs": n_finn, "finn_s": finn_s, "finn_per_s": n_finn / finn_s,
            "our_designs": n_ours, "our_s": ours_s, "our_per_s": n_ours / ours_s}


# ---------------------------------------------------------------- FIFOs and width converters

def stream_comparison(design: Design) -> dict:
    """Our FIFOs (deeper than the 2-word register pair, at the simulated depths) and width converters
    against FINN's own models of the same shapes: FINN's estimate-only flow inserts neither, so we ask
    its estimators directly: finn.util.resource_models._fifo_cost with its 'auto' style choice (FINN's
    fifo.sv; our FIFOs are hls::stream, so this is a comparison of scale, not of one circuit) and
    StreamingDataWidthConverter.lut_estimation. Returns per-stage rows and totals."""
    setup_finn()
    from finn.util.resource_models import _fifo_cost, _resolve
    from onnx import helper
    from qonnx.custom_op.registry import getCustomOp

    from codesign.backend.finn_export import finn_board
    from hw_space.layers import FIFO_REGISTER_DEPTH
    from hw_space.model import evaluate_design
    from hw_space.simulate import size_fifos

    board = load_board(design.hardware.board)
    part = finn_board(board)[1]
    result = evaluate_design(design, board, fifo_depths=[size_fifos(design, board).depths])
    rows = []
    for st in result.stages:
        if not bool(np.asarray(st.active)[0]) or st.kind not in ("fifo", "dwc"):
            continue
        width = int(np.asarray(st.width)[0])
        ours = {k: int(np.asarray(getattr(st.res, k))[0]) for k in ("LUT", "BRAM18")}
        if st.kind == "fifo":
            depth = int(np.asarray(st.detail["depth"]).reshape(-1)[0])
            if depth <= FIFO_REGISTER_DEPTH:
                continue
            cost = _fifo_cost(depth, width, _resolve(depth, width, "auto"))
            finn = {"LUT": int(cost.lut), "BRAM18": int(cost.bram)}
            shape = f"{depth} x {width} bits"
        else:
            n_in = int(np.asarray(st.detail["in_elems"]).reshape(-1)[0])
            n_out = int(np.asarray(st.detail["out_elems"]).reshape(-1)[0])
            bits = width // max(n_in, n_out)
            total = int(st.detail["total"])
            node = helper.make_node("StreamingDataWidthConverter", ["i"], ["o"], domain="finn.custom_op.fpgadataflow",
                                    inWidth=n_in * bits, outWidth=n_out * bits, inShape=[1, total], outShape=[1, total],
                                    dataType=f"UINT{bits}")
            finn = {"LUT": int(getCustomOp(node).lut_estimation(part)), "BRAM18": 0}
            shape = f"{n_in * bits} -> {n_out * bits} bits"
        rows.append({"stage": st.name, "kind": st.kind, "shape": shape, "ours": ours, "finn": finn})
    totals = {who: {k: sum(r[who][k] for r in rows) for k in ("LUT", "BRAM18")} for who in ("ours", "finn")}
    return {"rows": rows, "totals": totals}


def format_stream_comparison(name: str, sc: dict) -> str:
    lines = [f"-- {name}: FIFOs (> 2 words) and width converters, ours vs FINN's models of the same shapes",
             f"{'stage':<26}{'shape':<22}{'LUT ours':>9}{'FINN':>7}{'BRAM ours':>10}{'FINN':>6}"]
    for r in sc["rows"]:
        lines.append(f"{r['stage']:<26}{r['shape']:<22}{r['ours']['LUT']:>9,}{r['finn']['LUT']:>7,}"
                     f"{r['ours']['BRAM18']:>10,}{r['finn']['BRAM18']:>6,}")
    t = sc["totals"]
    lines.append(f"{'total':<48}{t['ours']['LUT']:>9,}{t['finn']['LUT']:>7,}{t['ours']['BRAM18']:>10,}{t['finn']['BRAM18']:>6,}")
    return "\n".join(lines)


# ---------------------------------------------------------------- folding: FINN's SetFolding vs ours

FOLD_ATTRS = ("PE", "SIMD", "ram_style", "resType")


def _finn_score(model, part: str) -> dict:
    """FINN's own figures of a specialized graph as folded: max expected cycles and the LUT / BRAM18 /
    URAM / DSP sums of res_estimation over every node."""
    from finn.analysis.fpgadataflow.exp_cycles_per_layer import exp_cycles_per_layer
    from finn.analysis.fpgadataflow.res_estimation import res_estimation

    cycles = model.analysis(exp_cycles_per_layer)
    res = model.analysis(lambda m: res_estimation(m, part))
    out = {"cycles": int(max(cycles.values())) if cycles else 0}
    for k in RESOURCES:
        out[k] = int(round(sum(float(r.get(FINN_RES_KEYS[k], 0)) for r in res.values())))
    return out


def _design_from_finn(design: Design, model) -> Design:
    """Our design with the PE / SIMD FINN's nodes carry (its SetFolding result), via finn_nodes' map
    from our layers to FINN's node names; memory and multiplier styles at 'auto'."""
    from qonnx.custom_op.registry import getCustomOp

    from codesign.backend.finn_export import finn_nodes

    got = {n.name: getCustomOp(n) for n in model.graph.node}
    folds: dict[str, dict] = {}
    for fn in finn_nodes(design):
        inst = got.get(fn.name)
        if inst is None or fn.layer not in {l.name for l in design.network.layers}:
            continue
        f = folds.setdefault(fn.layer, {})
        if fn.role == "mvau":
            f.update(pe=int(inst.get_nodeattr("PE")), simd=int(inst.get_nodeattr("SIMD")))
        elif fn.role == "pool":
            f.update(pe=int(inst.get_nodeattr("PE")))
        elif fn.role == "swg" and not any(l.name == fn.layer and l.type == "maxpool" for l in design.network.layers):
            f.update(swg_simd=int(inst.get_nodeattr("SIMD")))
    return design.with_hardware(layers={name: LayerFold(**f) for name, f in folds.items() if "pe" in f})


def _apply_design(model, design: Design) -> None:
    """Set our design's folding (finn_nodes' attributes: PE, SIMD, ram_style, resType) on FINN's nodes."""
    from qonnx.custom_op.registry import getCustomOp

    from codesign.backend.finn_export import finn_nodes

    nodes = {n.name: n for n in model.graph.node}
    for fn in finn_nodes(design):
        if fn.name not in nodes:
            continue
        inst = getCustomOp(nodes[fn.name])
        for key in FOLD_ATTRS:
            if key in fn.attrs:
                inst.set_nodeattr(key, fn.attrs[key])


def fold_comparison(design: Design, finn_out: Path) -> dict:
    """FINN's SetFolding and our `fold` toward the same cycle target (the case's own II by our model)
    on the same board, both scored by FINN's estimator and by ours. SetFolding walks each layer's
    divisors to the target and ignores resources; ours takes the cheapest folding that reaches it."""
    setup_finn()
    from finn.transformation.fpgadataflow.set_folding import SetFolding
    from qonnx.core.modelwrapper import ModelWrapper

    from codesign.backend.finn_export import finn_board
    from hw_space.estimate import estimate
    from hw_space.folding import fold
    from hw_space.model import evaluate_design

    board = load_board(design.hardware.board)
    part = finn_board(board)[1]
    target = int(evaluate_design(design, board).ii_cycles[0])
    clock = design.hardware.clock_mhz or board.clock_mhz
    base = Path(finn_out) / "intermediate_models" / "step_specialize_layers.onnx"
    rows = {}
    model = ModelWrapper(str(base))
    started = time.perf_counter()
    model = model.transform(SetFolding(target_cycles_per_frame=target, mvau_wwidth_max=36, two_pass_relaxation=True))
    finn_fold_s = time.perf_counter() - started
    theirs = _design_from_finn(design, model)
    rows["FINN SetFolding"] = {"fold_s": finn_fold_s, "finn": _finn_score(model, part), "design": theirs}
    started = time.perf_counter()
    ours = fold(design, board, target_fps=clock * 1e6 / target)
    our_fold_s = time.perf_counter() - started
    model = ModelWrapper(str(base))
    _apply_design(model, ours)
    rows["codesign fold"] = {"fold_s": our_fold_s, "finn": _finn_score(model, part), "design": ours}
    for row in rows.values():
        est = estimate(row["design"], board)
        row["ours"] = {"cycles": est.ii_cycles, **{k: est.resources[k] for k in RESOURCES}, "feasible": est.feasible}
        row["folds"] = {n: (f.pe, f.simd) for n, f in row["design"].hardware.layers.items()}
        del row["design"]
    return {"target_cycles": target, "board": board.name,
            "capacity": {k: board.capacity(k) for k in RESOURCES}, "rows": rows}


def format_fold_comparison(name: str, fc: dict) -> str:
    cap = fc["capacity"]
    head = (f"{'folding':<18}{'time s':>8} | {'FINN: cycles':>12}{'LUT':>9}{'BRAM18':>8}{'DSP':>6} | "
            f"{'ours: II':>9}{'LUT':>9}{'BRAM18':>8}{'DSP':>6}{'fits':>6}")
    lines = [f"-- {name}: FINN SetFolding vs codesign fold, target {fc['target_cycles']:,} cycles on {fc['board']} "
             f"(LUT {cap['LUT']:,}, BRAM18 {cap['BRAM18']:,})", head]
    for label, r in fc["rows"].items():
        f, o = r["finn"], r["ours"]
        lines.append(f"{label:<18}{r['fold_s']:>8.2f} | {f['cycles']:>12,}{f['LUT']:>9,}{f['BRAM18']:>8,}{f['DSP']:>6,} | "
                     f"{o['cycles']:>9,}{o['LUT']:>9,}{o['BRAM18']:>8,}{o['DSP']:>6,}{'yes' if o['feasible'] else 'NO':>6}")
    for label, r in fc["rows"].items():
        lines.append(f"   {label} PE/SIMD: " + ", ".join(f"{n} {p}/{s}" for n, (p, s) in r["folds"].items()))
    return "\n".join(lines)


# ---------------------------------------------------------------- execution

def execution(design: Design, qonnx: Path, finn_out: Path, samples: int = 8, seed: int = 0) -> dict:
    """FINN's Python execution of our export as FINN imported it (step_tidy_up.onnx) and as it streamlined
    it (step_streamline.onnx: integer thresholds, XNOR popcounts) against our integer reference
    (codesign.backend: the same QONNX model lowered and run in integers), after the host's per-class
    scale and bias: how many argmaxes agree and the largest logit difference."""
    setup_finn()
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    from codesign.backend import reference
    from codesign.backend.lower import lower_model

    rng = np.random.default_rng(seed)
    spec = design.network.input
    x = rng.random((samples, spec.channels, spec.height, spec.width)).astype(np.float32)
    g = lower_model(str(qonnx))  # the integer graph before folding: folding does not change the values
    codes = reference.input_codes(g, x)
    ours_out = reference.logits(g, reference.run(g, codes))
    post = json.loads((Path(finn_out).parent / "finn" / "postprocess.json").read_text()) \
        if (Path(finn_out).parent / "finn" / "postprocess.json").is_file() else {}
    scale = np.asarray(post.get("scale", [1.0]), dtype=np.float64)
    bias = np.asarray(post.get("bias", [0.0]), dtype=np.float64)
    out = {"samples": samples}
    for step, key in (("step_tidy_up", "imported"), ("step_streamline", "streamlined")):
        fmodel = ModelWrapper(str(Path(finn_out) / "intermediate_models" / f"{step}.onnx"))
        iname, oname = fmodel.graph.input[0].name, fmodel.graph.output[0].name
        flat_bipolar = len(fmodel.get_tensor_shape(iname)) == 2  # export_finn: +-1 straight into a dense layer
        vals = []
        for i in range(samples):
            xi = x[i:i + 1]
            if flat_bipolar:  # +-1, or its bits where FINN's XNOR conversion retyped the input BINARY (1 = +1)
                low = 0.0 if fmodel.get_tensor_datatype(iname).name == "BINARY" else -1.0
                xi = np.where(xi >= 0.5, 1.0, low).astype(np.float32).reshape(1, -1)
            elif spec.bits > 1:  # the exported model takes the integers the hardware receives (round half even)
                xi = np.round(xi / np.float32(1.0 / (2 ** spec.bits - 1))).astype(np.float32)
            vals.append(execute_onnx(fmodel, {iname: xi})[oname].reshape(-1))
        finn_logits = np.stack(vals) * scale + bias
        # our argmax is FINN's too, up to float ties (1e-4) between classes
        ours_top = np.argmax(ours_out, axis=1)
        agree = finn_logits[np.arange(samples), ours_top] >= finn_logits.max(axis=1) - 1e-4
        out[key] = {"argmax_agree": int(agree.sum()), "max_abs_diff": float(np.max(np.abs(finn_logits - ours_out)))}
    return out


# ---------------------------------------------------------------- calibration points

# Published implementation results (issue 9), all at 100 MHz on the xc7z020:
#   cyber_mlp: FINN's cybersecurity MLP tutorial, Vivado 2022.1 out-of-context synthesis + place and route,
#              no shell: 7,234 LUT, 44 BRAM18, 0 DSP (FINN's own pre-synthesis estimate: 10,959 LUT, 45 BRAM18).
#   lfc_w1a1 / lfc_w1a2: BNN-PYNQ on the Pynq-Z1, post-place of the whole block design (Zynq PS, interconnect
#              and data movers included): 28,360 LUT / 220 BRAM18 and 48,981 LUT / 220 BRAM18.
#   cnv_w1a1:  a published post-synthesis run of FINN's CNV-w1a1 folding, about 21,100 LUT and 205 BRAM18
#              (a reference, not a calibration point: shell and tool version not stated).
# BNN-PYNQ saw ~20 % LUT and up to 20 % BRAM18 between two Vivado versions of the same folding: the noise floor.
PUBLISHED = {"cyber_mlp": (7234, 44, False), "lfc_w1a1": (28360, 220, True), "lfc_w1a2": (48981, 220, True),
             "cnv_w1a1": (21100, 205, False)}


def calibration(results: list[dict]) -> str:
    """Our whole-design estimate (hw_space.estimate, FIFOs at simulated depths; the shell only where
    the published figure includes one) and FINN's estimate against the published figures."""
    from hw_space.estimate import estimate
    from hw_space.layers import PLATFORM_SHELL

    all_cases = cases()
    lines = [f"{'point':<11}{'published LUT':>14}{'BRAM18':>8} | {'ours LUT':>9}{'err':>8}{'BRAM18':>8}{'err':>8} | "
             f"{'FINN LUT':>9}{'err':>8}{'BRAM18':>8}{'err':>8}"]
    for r in results:
        name = r["case"]
        if name not in PUBLISHED or "comparison" not in r:
            continue
        lut, bram, shell = PUBLISHED[name]
        design = all_cases[name]
        est = estimate(design, load_board(design.hardware.board), simulate=True)
        ol = est.resources["LUT"] - (0 if shell else PLATFORM_SHELL["LUT"])
        ob = est.resources["BRAM18"] - (0 if shell else PLATFORM_SHELL["BRAM18"])
        ft = r["comparison"]["finn_total"]
        fl = ft["LUT"] + (PLATFORM_SHELL["LUT"] if shell else 0)
        fb = ft["BRAM18"] + (PLATFORM_SHELL["BRAM18"] if shell else 0)
        lines.append(f"{name:<11}{lut:>14,}{bram:>8,} | {ol:>9,}{ol / lut - 1:>+8.1%}{ob:>8,}{ob / bram - 1:>+8.1%} | "
                     f"{fl:>9,}{fl / lut - 1:>+8.1%}{fb:>8,}{fb / bram - 1:>+8.1%}")
    lines.append("(ours: kernels, FIFOs, width converters and I/O, plus our shell where the published figure has one; "
                 "FINN: its node estimates, plus our shell there)")
    return "\n".join(lines)


# ---------------------------------------------------------------- main

def run_case(name: str, design: Design, work: Path, do_speed: bool, do_exec: bool, do_fold: bool = True) -> dict:
    case_dir = work / name
    case_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    export_dir, summary, qonnx = export_case(design, case_dir)
    export_s = time.perf_counter() - t0
    finn = run_finn_estimates(export_dir, case_dir / "finn_out")
    out = {"case": name, "export_s": export_s, "finn_s": finn["seconds"], "finn_rc": finn["rc"]}
    if not finn["cycles"]:
        out["error"] = "FINN's estimate-only build failed: " + finn["log"][-800:]
        print(f"== {name}: FINN failed (rc {finn['rc']}); see {finn['out']}/build_dataflow.log", flush=True)
        return out
    cmp = compare(design, summary, finn)
    out["comparison"] = cmp
    print(format_comparison(name, cmp), flush=True)
    print(f"times: export {export_s:.1f} s, FINN estimate-only build {finn['seconds']:.1f} s", flush=True)
    try:
        sc = stream_comparison(design)
        out["stream_comparison"] = sc
        print(format_stream_comparison(name, sc), flush=True)
    except Exception as exc:  # report and go on
        out["stream_comparison"] = {"error": f"{type(exc).__name__}: {exc}"}
        print(f"FIFOs and width converters: not compared ({type(exc).__name__}: {exc})", flush=True)
    if do_fold:
        try:
            fc = fold_comparison(design, Path(finn["out"]))
            out["fold_comparison"] = fc
            print(format_fold_comparison(name, fc), flush=True)
        except Exception as exc:  # report and go on with the other cases
            out["fold_comparison"] = {"error": f"{type(exc).__name__}: {exc}"}
            print(f"folding: not compared ({type(exc).__name__}: {exc})", flush=True)
    model_path = Path(finn["out"]) / "intermediate_models" / "step_apply_folding_config.onnx"
    if do_speed and model_path.is_file():
        sp = speed(design, model_path)
        out["speed"] = sp
        print(f"estimator speed: FINN {sp['finn_per_s']:,.1f} designs/s ({sp['finn_designs']} designs); "
              f"ours (batch) {sp['our_per_s']:,.0f} designs/s ({sp['our_designs']:,} designs); "
              f"{sp['our_per_s'] / sp['finn_per_s']:,.0f}x", flush=True)
    if do_exec:
        try:
            ex = execution(design, qonnx, Path(finn["out"]))
            out["execution"] = ex
            for key in ("imported", "streamlined"):
                e = ex[key]
                print(f"execution: FINN's Python execution ({key} graph) vs our integer reference: argmax agrees on "
                      f"{e['argmax_agree']}/{ex['samples']}, largest logit difference {e['max_abs_diff']:.3g}", flush=True)
        except Exception as exc:  # report and go on with the other cases
            out["execution"] = {"error": f"{type(exc).__name__}: {exc}"}
            print(f"execution: not compared ({type(exc).__name__}: {exc})", flush=True)
    print(flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", help="comma-separated case names (default: all)")
    parser.add_argument("--out", help="work folder (default: a temporary one)")
    parser.add_argument("--json", help="write all results here as JSON")
    parser.add_argument("--no-speed", action="store_true", help="skip the estimator speed comparison")
    parser.add_argument("--no-exec", action="store_true", help="skip the execution comparison")
    parser.add_argument("--no-fold", action="store_true", help="skip FINN's SetFolding vs our fold")
    args = parser.parse_args(argv)
    all_cases = cases()
    names = args.cases.split(",") if args.cases else list(all_cases)
    unknown = [n for n in names if n not in all_cases]
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; cases: {', '.join(all_cases)}")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="finn-crosscheck-") as tmp:
        work = Path(args.out) if args.out else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        results = [run_case(n, all_cases[n], work, not args.no_speed, not args.no_exec, not args.no_fold)
                   for n in names]
    if any(r["case"] in PUBLISHED and "comparison" in r for r in results):
        print("== calibration points: published implementation results vs our estimate and FINN's")
        print(calibration(results), flush=True)
    total = time.perf_counter() - started
    print(f"crosscheck of {len(names)} case(s) took {total:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "seconds": total}, indent=2, default=str))
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
