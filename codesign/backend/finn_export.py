"""Hand a design to FINN: the QONNX model plus the configuration files FINN's `build_dataflow` takes.

`export_finn(qonnx, design, board, out_dir)` writes

* ``model.onnx`` - the QONNX model as the accelerator sees it: a multi-bit input quantizer is replaced by
  the integers the hardware receives (the graph input is annotated UINT<b> and multiplied by the
  quantizer's scale, so the float semantics are unchanged; a bipolar input quantizer stays, FINN runs
  it on the host and the accelerator receives +-1), and the last layer's
  per-class scale and bias (``ClassAffine``, a Mul and an Add on the logits) are removed: as on our own
  accelerator, the host applies them (``postprocess.json`` holds them).
* ``folding_config.json`` - per FINN node (named as FINN's flow names them after ``SpecializeLayers``:
  ``MVAU_hls_0``, ``ConvolutionInputGenerator_rtl_0``, ``StreamingMaxPool_hls_0``, ...) ``PE``, ``SIMD``,
  ``ram_style``, ``resType`` and the FIFO depths of our simulator as ``inFIFODepths``/``outFIFODepths``.
* ``dataflow_build_config.json`` - FINN's DataflowBuildConfig for the full bitfile build, and
  ``dataflow_build_config_estimates.json`` for the estimate-only build (FINN's config rejects unknown
  keys, so the two step lists are two files).
* ``README.md`` - how to run both where FINN (and Vivado) are installed.

Node names: FINN's step_convert_to_hw makes one MVAU per conv or dense layer (thresholds merged in,
FINN's default standalone_thresholds=False), a ConvolutionInputGenerator before every conv's MVAU (plus
an FMPadding before it where the conv pads) and a StreamingMaxPool per max-pool; SpecializeLayers then
picks the RTL variant of the sliding window, max-pool and padding, and the HLS variant of every MVAU
with thresholds (FINN's RTL MVAU has no thresholds); GiveUniqueNodeNames numbers each op type from 0 in
graph order. Our FIFO depths map onto these nodes as documented in README.md (`FIFO_NOTE`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hw_space.boards import Board
from hw_space.design import Design, Layer, LayerFold
from hw_space.errors import CodesignError
from hw_space.layers import Role, largest_divisor_at_most

# FINN's names for our memory and multiplier styles
RAM_STYLE = {"auto": "auto", "bram": "block", "lutram": "distributed", "uram": "ultra", "external": "auto"}
RES_TYPE = {"auto": "auto", "lut": "lut", "dsp": "dsp"}

# FINN's build steps (finn-plus 1.6.1, finn.builder.build_dataflow_config)
ESTIMATE_STEPS = [
    "step_qonnx_to_finn",
    "step_tidy_up",
    "step_streamline",
    "step_convert_to_hw",
    "step_minimize_bit_width_initial",
    "step_create_dataflow_partition",
    "step_specialize_layers",
    "step_target_fps_parallelization",
    "step_apply_folding_config",
    "step_minimize_bit_width",
    "step_generate_estimate_reports",
]
BITFILE_STEPS = [
    *ESTIMATE_STEPS[:-1],
    "step_transpose_decomposition",
    "step_generate_estimate_reports",
    "step_assign_ddr_weight_offsets",
    "step_generate_hardware",
    "step_create_stitched_ip",
    "step_measure_rtlsim_performance",
    "step_out_of_context_synthesis",
    "step_prepare_synthesis",
    "step_synthesize_bitfile",
    "step_make_driver",
    "step_deployment_package",
]

# FINN's board names (finn.util.basic.pynq_part_map / alveo) for ours
# (ZC706 is not among FINN's boards: its designs get fpga_part and FINN's estimate/out-of-context flow)
FINN_BOARDS = {"pynq-z1": "Pynq-Z1", "pynq-z2": "Pynq-Z2", "ultra96": "Ultra96", "zcu102": "ZCU102",
               "zcu104": "ZCU104", "kv260": "KV260_SOM", "u50": "U50", "u250": "U250", "u280": "U280", "u55c": "U55C"}
ALVEO = ("U50", "U200", "U250", "U280", "U55C")


@dataclass
class FinnNode:
    """One FINN node of the dataflow partition after SpecializeLayers, and what we set on it."""

    name: str
    op_type: str
    layer: str  # our layer it belongs to
    role: str  # "pad", "swg", "mvau", "pool"
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FifoStage:
    """One FIFO of our dataflow chain: the layer, the kernel writing into it, its simulated depth."""

    layer: str
    producer: str
    depth: int
    active: bool = True


def mvau_is_rtl(layer_is_last: bool, wbits: int, in_bits: int) -> bool:
    """FINN's SpecializeLayers default for an MVAU: RTL (DSP-based) only without thresholds (our last
    layer), with weights and inputs of at least 4 bits (widths far inside every DSP datapath here)."""
    return layer_is_last and wbits >= 4 and in_bits >= 4


class _Nodes:
    """The FINN node list being built: numbers each op type from 0 in graph order (GiveUniqueNodeNames)."""

    def __init__(self) -> None:
        self.counters: dict[str, int] = {}
        self.nodes: list[FinnNode] = []

    def add(self, op_type: str, layer: str, role: str, **attrs: Any) -> FinnNode:
        k = self.counters.get(op_type, 0)
        self.counters[op_type] = k + 1
        node = FinnNode(f"{op_type}_{k}", op_type, layer, role, attrs)
        self.nodes.append(node)
        return node


def _pool_nodes(out: _Nodes, layer: Layer, ishape: Any, f: LayerFold, listed: bool, in_bits: int, last: bool) -> None:
    """A max-pool: ConvolutionInputGenerator_rtl (depthwise) + Pool_hls; PE = channels when the design
    leaves the pool out (the cost model's default_pe)."""
    pe = f.pe if listed else ishape.channels
    out.add("ConvolutionInputGenerator_rtl", layer.name, "swg", SIMD=pe)
    out.add("Pool_hls", layer.name, "pool", PE=pe)


def _mvau_node(out: _Nodes, layer: Layer, f: LayerFold, in_bits: int, last: bool) -> None:
    rtl = mvau_is_rtl(last, layer.weight_bits, in_bits)
    attrs: dict[str, Any] = {"PE": f.pe, "SIMD": f.simd, "ram_style": RAM_STYLE[f.weight_memory],
                             "mem_mode": "external" if f.weight_memory == "external" else "internal_decoupled"}
    if not rtl:
        attrs["resType"] = RES_TYPE[f.mac]
    out.add("MVAU_rtl" if rtl else "MVAU_hls", layer.name, "mvau", **attrs)


def _conv_nodes(out: _Nodes, layer: Layer, ishape: Any, f: LayerFold, listed: bool, in_bits: int, last: bool) -> None:
    """A conv: [FMPadding_rtl] ConvolutionInputGenerator_rtl MVAU_*."""
    swg_simd = f.swg_simd or largest_divisor_at_most(ishape.channels, f.simd)
    if layer.padding:
        out.add("FMPadding_rtl", layer.name, "pad", SIMD=swg_simd)
    out.add("ConvolutionInputGenerator_rtl", layer.name, "swg", SIMD=swg_simd)
    _mvau_node(out, layer, f, in_bits, last)


def _dense_nodes(out: _Nodes, layer: Layer, ishape: Any, f: LayerFold, listed: bool, in_bits: int, last: bool) -> None:
    """A dense layer: MVAU_*."""
    _mvau_node(out, layer, f, in_bits, last)


@dataclass(frozen=True)
class FinnLayer:
    """How FINN builds one of our layer types: its nodes, and what a 1-bit network input before it
    becomes (a conv: FINN thresholds it in hardware, its XNOR conversion needs that threshold after
    the sliding window; a dense layer: the flat +-1 vector enters the graph, annotated BIPOLAR)."""

    nodes: Callable[[_Nodes, Layer, Any, LayerFold, bool, int, bool], None]
    thresholds_bipolar_input: bool = False
    takes_flat_input: bool = False


# our layer types -> their FINN nodes (finn-plus 1.6.1 step_convert_to_hw + SpecializeLayers)
FINN_LAYERS = {"conv": FinnLayer(_conv_nodes, thresholds_bipolar_input=True),
               "dense": FinnLayer(_dense_nodes, takes_flat_input=True),
               "maxpool": FinnLayer(_pool_nodes)}


def finn_nodes(design: Design, fifos: list[FifoStage] | None = None) -> list[FinnNode]:
    """The FINN nodes of the design's dataflow partition in stream order, with the attributes of
    folding_config.json (fifos: our simulator's FIFOs in stream order; None: no FIFO attributes).

    finn-plus 1.6.1 lowers a conv to [FMPadding_rtl] ConvolutionInputGenerator_rtl MVAU_*, a max-pool
    to ConvolutionInputGenerator_rtl (depthwise) Pool_hls, a dense layer to MVAU_* (FINN_LAYERS); a
    bipolar last layer or per-channel weight scales leave ElementwiseMul_hls / ElementwiseAdd_hls
    nodes at the end (float post-processing FINN maps to hardware; not configured here, and not part
    of our model)."""
    net = design.network
    hw = design.hardware
    for layer in net.layers:
        if layer.type not in FINN_LAYERS or layer.groups > 1:
            what = "a depthwise conv" if layer.groups > 1 else f"a {layer.type} layer"
            raise CodesignError(f"layer {layer.name}: {what} is not exported to FINN; exported: "
                                f"{', '.join(FINN_LAYERS)} layers with groups 1")
    out = _Nodes()
    last = len(net.layers) - 1
    if net.input.bits == 1 and FINN_LAYERS[net.layers[0].type].thresholds_bipolar_input:
        # the input quantizer, in hardware (accelerator_model)
        first = hw.fold(net.layers[0].name)
        out.add("Thresholding_rtl", "input", "thr",
                PE=first.swg_simd or largest_divisor_at_most(net.input.channels, first.simd))
    for j, (layer, (ishape, _)) in enumerate(zip(net.layers, net.shapes())):
        FINN_LAYERS[layer.type].nodes(out, layer, ishape, hw.fold(layer.name), layer.name in hw.layers,
                                      net.input_bits_of(j), j == last)
    if fifos is not None:
        _map_fifos(out.nodes, fifos)
    return out.nodes


FIFO_NOTE = """Our simulator (hw_space.simulate.size_fifos) sizes one FIFO after every kernel of our dataflow
chain, in stream order. They map onto FINN nodes as `inFIFODepths`/`outFIFODepths` (FINN's InsertFIFO
makes each FIFO max(producer outFIFODepths, consumer inFIFODepths) deep):

* the FIFO after our input adapter -> the first node's `inFIFODepths`;
* the FIFO after a sliding window -> the ConvolutionInputGenerator's `outFIFODepths`;
* the FIFO after an MVAU -> the MVAU's `outFIFODepths`;
* the FIFO between our max-pool's row and column passes -> the pool's ConvolutionInputGenerator's
  `outFIFODepths` (FINN's max-pool is a sliding window feeding a Pool node); the FIFO after the
  column pass -> the Pool node's `outFIFODepths`.

Approximate: the FIFO after one of our width converters is merged into the producing node's
`outFIFODepths` (the deeper one wins): FINN inserts its StreamingDataWidthConverter nodes later
(InsertDWC, in step_generate_hardware) and places FIFOs on both of their sides; FMPadding nodes and
FINN's float tail nodes (ElementwiseMul/Add) get depth 2. FINN prices and implements the FIFOs by
its own rules (StreamingFIFO_rtl, ram_style auto)."""


def _map_fifos(nodes: list[FinnNode], fifos: list[FifoStage]) -> None:
    by_layer: dict[str, dict[str, FinnNode]] = {}
    for node in nodes:
        by_layer.setdefault(node.layer, {})[node.role] = node
        node.attrs["inFIFODepths"] = [2]
        node.attrs["outFIFODepths"] = [2]
    previous: FinnNode | None = None  # the node written last in stream order
    for fifo in fifos:
        group = by_layer.get(fifo.layer, {})
        suffix = fifo.producer[len(fifo.layer):] if fifo.producer.startswith(fifo.layer) else fifo.producer
        if fifo.producer == "input":
            target = nodes[0] if nodes else None
            if target is not None and fifo.active:
                target.attrs["inFIFODepths"] = [max(2, fifo.depth)]
            continue
        if suffix == "_in_dwc":  # converter before this layer: its FIFO joins the previous node's output FIFO
            target = previous
        elif suffix in ("_swg", "_dwc", "_rows"):  # sliding window (and its converter), max-pool row pass
            target = group.get("swg")
        else:  # the MVAU or the max-pool's column pass
            target = group.get("mvau") or group.get("pool")
        if target is None:
            continue
        previous = target
        if fifo.active:
            target.attrs["outFIFODepths"] = [max(2, fifo.depth, target.attrs["outFIFODepths"][0])]


def fifo_stages(design: Design, board: Board, depths: list[int] | None = None) -> list[FifoStage]:
    """Our FIFOs in stream order with their depths (None: simulated, hw_space.simulate.size_fifos)."""
    from hw_space.model import evaluate_design
    from hw_space.simulate import size_fifos

    if depths is None:
        depths = list(size_fifos(design, board).depths)
    result = evaluate_design(design, board, fifo_depths=[depths])
    stages = [st for st in result.stages if st.op is not None and st.op.role is Role.FIFO]
    if len(stages) != len(depths):
        raise CodesignError(f"export-finn: {len(depths)} FIFO depths for {len(stages)} FIFO stages")
    return [FifoStage(st.layer, st.detail["producer"], int(d), bool(st.active[0])) for st, d in zip(stages, depths)]


def folding_config(nodes: list[FinnNode]) -> dict[str, Any]:
    """folding_config.json: FINN's ApplyConfig format (node name -> attributes)."""
    cfg: dict[str, Any] = {"Defaults": {}}
    for node in nodes:
        cfg[node.name] = dict(node.attrs)
    return cfg


def finn_board(board: Board) -> tuple[str | None, str | None, str]:
    """(FINN board name or None, FPGA part, shell flow) for one of our boards."""
    name = FINN_BOARDS.get(board.name.lower())
    if name is None:
        return None, board.part, "vivado_zynq"
    return name, board.part, "vitis_alveo" if name in ALVEO else "vivado_zynq"


def build_config(design: Design, board: Board, steps: list[str], estimate_only: bool) -> dict[str, Any]:
    """A DataflowBuildConfig as JSON (finn-plus 1.6.1 field names). A board FINN does not know gets its
    FPGA part and stops at out-of-context synthesis (FINN's Zynq/Alveo shells need one of its boards)."""
    clock = design.hardware.clock_mhz or board.clock_mhz
    name, part, shell = finn_board(board)
    if estimate_only:
        outputs = ["estimate_reports"]
    elif name is not None:
        outputs = ["estimate_reports", "stitched_ip", "rtlsim_performance", "bitfile", "pynq_driver", "deployment_package"]
    else:
        outputs = ["estimate_reports", "stitched_ip", "rtlsim_performance", "out_of_context_synth"]
        steps = steps[: steps.index("step_out_of_context_synthesis") + 1] if "step_out_of_context_synthesis" in steps else steps
    cfg: dict[str, Any] = {
        "output_dir": "output_estimates" if estimate_only else "output_bitfile",
        "synth_clk_period_ns": round(1000.0 / clock, 6),
        "folding_config_file": "folding_config.json",
        "steps": list(steps),
        "generate_outputs": outputs,
        "auto_fifo_depths": True,
        # FIFOs at the depths folding_config.json sets (inFIFODepths/outFIFODepths), no FIFO simulation
        "auto_fifo_strategy": "force_minimal_fifos",
        "save_intermediate_models": True,
    }
    if name is not None:
        cfg["board"] = name
        cfg["shell_flow_type"] = shell
    else:
        cfg["fpga_part"] = part
    return cfg


# ---------------------------------------------------------------- the model

def _initializer(graph: Any, name: str) -> Any:
    from onnx import numpy_helper

    for init in graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    return None


def _annotate(graph: Any, tensor: str, datatype: str) -> None:
    """FINN/QONNX datatype annotation of a tensor (graph.quantization_annotation)."""
    from onnx import StringStringEntryProto, TensorAnnotation

    for ann in graph.quantization_annotation:
        if ann.tensor_name == tensor:
            graph.quantization_annotation.remove(ann)
            break
    ann = TensorAnnotation(tensor_name=tensor)
    ann.quant_parameter_tensor_names.append(StringStringEntryProto(key="finn_datatype", value=datatype))
    graph.quantization_annotation.append(ann)


def _consumers(graph: Any, tensor: str) -> list[Any]:
    return [n for n in graph.node if tensor in n.input]


def _producer(graph: Any, tensor: str) -> Any:
    return next((n for n in graph.node if tensor in n.output), None)


def _bipolar_input(g: Any, gin: str, first: list[Any], first_dense: bool, path: Path) -> None:
    """1-bit input. Before a dense layer, the input quantizer Add(-0.5) -> BipolarQuant and the Flatten
    go: the graph input becomes the flat +-1 vector the accelerator receives, annotated BIPOLAR (FINN's
    XNOR conversion accepts a BIPOLAR graph input straight into a MatMul, and its other MVAUs take it as
    is). Before a conv the quantizer stays: FINN makes it a Thresholding node on the float input
    (its XNOR conversion needs that upstream threshold to follow the sliding window)."""
    from onnx import TensorShapeProto

    shift = first[0] if len(first) == 1 and first[0].op_type == "Add" else None
    quant = _consumers(g, shift.output[0]) if shift is not None else []
    if shift is None or len(quant) != 1 or quant[0].op_type != "BipolarQuant":
        raise CodesignError("export-finn: expected the 1-bit input quantizer Add(-0.5) -> BipolarQuant (quant.export) "
                            "at the model input", source=str(path))
    nxt = _consumers(g, quant[0].output[0])
    if not first_dense or len(nxt) != 1 or nxt[0].op_type not in ("Flatten", "Reshape"):
        return
    flat = nxt[0]
    for node in g.node:
        for i, name in enumerate(node.input):
            if name == flat.output[0]:
                node.input[i] = gin
    for node in (shift, quant[0], flat):
        g.node.remove(node)
    dims = g.input[0].type.tensor_type.shape.dim
    size = 1
    for d in list(dims)[1:]:
        size *= d.dim_value
    del dims[:]
    for value in (1, size):
        dims.append(TensorShapeProto.Dimension(dim_value=value))
    _annotate(g, gin, "BIPOLAR")


def accelerator_model(qonnx_path: str | Path, input_bits: int, first_dense: bool = False) -> tuple[Any, dict[str, Any]]:
    """The QONNX model as the accelerator sees it (see the module docstring) and the host-side
    post-processing removed from its end: {"scale": [...], "bias": [...]} (or {} if none)."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    path = Path(qonnx_path)
    if not path.is_file():
        raise CodesignError("file not found", source=str(path))
    try:
        proto = onnx.load(str(path))
    except Exception as exc:  # onnx raises many types for a corrupt file
        raise CodesignError(f"not a readable ONNX model ({type(exc).__name__})", source=str(path)) from None
    g = proto.graph
    if len(g.input) != 1 or len(g.output) != 1:
        raise CodesignError("export-finn: the model must have one input and one output", source=str(path))
    gin, gout = g.input[0].name, g.output[0].name

    # input: the quantizer becomes the integers the hardware receives (times the scale)
    first = _consumers(g, gin)
    if input_bits == 1:
        _bipolar_input(g, gin, first, first_dense, path)
    else:
        if len(first) != 1 or first[0].op_type != "Quant":
            raise CodesignError("export-finn: expected the input quantizer (a Quant node, quant.export) at the "
                                "model input", source=str(path))
        quant = first[0]
        scale = _initializer(g, quant.input[1])
        zero = _initializer(g, quant.input[2])
        if scale is None or np.size(scale) != 1 or (zero is not None and np.any(zero != 0)):
            raise CodesignError("export-finn: the input quantizer needs a constant scalar scale and zero point 0",
                                source=str(path))
        idx = list(g.node).index(quant)
        g.node.remove(quant)
        scale_name = f"{gin}_scale"
        g.initializer.append(numpy_helper.from_array(np.asarray(scale, dtype=np.float32).reshape(()), scale_name))
        g.node.insert(idx, helper.make_node("Mul", [gin, scale_name], [quant.output[0]], name="InputScale"))
        _annotate(g, gin, f"UINT{input_bits}")

    # output: the per-class scale and bias (Mul, Add by constants after the last MatMul) go to the host
    post: dict[str, Any] = {}
    node = _producer(g, gout)
    tail = []
    while node is not None and node.op_type in ("Mul", "Add") and len(tail) < 2:
        const = _initializer(g, node.input[1])
        if const is None:
            break
        tail.append((node, const))
        node = _producer(g, node.input[0])
    if tail and node is not None and node.op_type in ("MatMul", "Gemm"):
        for n, const in tail:
            post["scale" if n.op_type == "Mul" else "bias"] = np.asarray(const, dtype=np.float64).reshape(-1).tolist()
        new_out = tail[-1][0].input[0]
        for n, _ in tail:
            g.node.remove(n)
        for n in g.node:
            for i, name in enumerate(n.output):
                if name == new_out:
                    n.output[i] = gout
            for i, name in enumerate(n.input):
                if name == new_out:
                    n.input[i] = gout
    # drop initializers nothing reads any more
    used = {name for n in g.node for name in n.input}
    for init in [i for i in g.initializer if i.name not in used]:
        g.initializer.remove(init)
    # value_info of removed tensors
    live = used | {name for n in g.node for name in n.output}
    for vi in [v for v in g.value_info if v.name not in live]:
        g.value_info.remove(vi)
    return proto, post


# ---------------------------------------------------------------- the folder

def export_finn(qonnx_path: str | Path, design: Design, board: Board, out_dir: str | Path,
                fifo_depths: list[int] | None = None) -> dict[str, Any]:
    """Write the FINN hand-off folder (module docstring) for `design` and its QONNX model. fifo_depths:
    one per FIFO stage of our model in stream order (None: simulated now). Returns a summary
    {"out_dir", "nodes": {FINN name: our layer}, "files": [...]}."""
    import onnx

    from hw_space.files import atomic_write_text

    if design.hardware.template != "dataflow":
        raise CodesignError("export-finn: FINN builds the dataflow template only; this design is tiled")
    net = design.network
    proto, post = accelerator_model(qonnx_path, net.input.bits,
                                    first_dense=FINN_LAYERS[net.layers[0].type].takes_flat_input)
    _check_network(proto, design, str(qonnx_path))
    fifos = fifo_stages(design, board, fifo_depths)
    nodes = finn_nodes(design, fifos)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".model.onnx.tmp"
    onnx.save(proto, str(tmp))
    tmp.replace(out / "model.onnx")
    files = {
        "folding_config.json": folding_config(nodes),
        "dataflow_build_config.json": build_config(design, board, BITFILE_STEPS, estimate_only=False),
        "dataflow_build_config_estimates.json": build_config(design, board, ESTIMATE_STEPS, estimate_only=True),
        "postprocess.json": {"logits": "acc * scale + bias (per class), applied by the host", **post},
    }
    for name, data in files.items():
        atomic_write_text(out / name, json.dumps(data, indent=2) + "\n")
    atomic_write_text(out / "design.yaml", design.to_yaml())
    atomic_write_text(out / "README.md", readme(design, board, nodes))
    return {"out_dir": str(out), "nodes": {n.name: n.layer for n in nodes},
            "files": ["model.onnx", *files, "design.yaml", "README.md"]}


def _check_network(proto: Any, design: Design, source: str) -> None:
    """The design's network must be the model's (quant.export stores it as metadata; models without it pass)."""
    stored = next((p.value for p in proto.metadata_props if p.key == "codesign.network"), None)
    if stored is None:
        return
    try:
        theirs = json.loads(stored)
    except ValueError:
        return

    def shape(d: dict[str, Any]) -> Any:
        return d.get("input"), [{k: v for k, v in layer.items() if k != "name"} for layer in d.get("layers", [])]

    if shape(theirs) != shape(design.network.to_dict()):
        raise CodesignError("export-finn: the design's network is not the model's (compare the model's "
                            "codesign.network metadata with the design's network section)", source=source)


def _layout_note(design: Design) -> str:
    """What FINN builds of the design's weight_layout choices (docs/design-yaml.md)."""
    compute = [layer.name for layer in design.network.layers if layer.is_compute]
    per_pe = [n for n in compute if design.hardware.fold(n).weight_layout == "per_pe"]
    text = ("Weight layout: FINN's MVAU keeps a layer's weights in one memory PE·SIMD·W bits wide, our "
            "`weight_layout: wide`; it has no per-PE layout.")
    if not per_pe:
        return text + " Every layer of this design is `wide`: FINN builds the layout we priced."
    return (text + f" {', '.join(per_pe)} use `per_pe` here (one memory per PE, SIMD·W bits wide, as our HLS "
            "builds them): FINN builds them wide, so its BRAM18 count for them differs from ours (fewer blocks "
            "where SIMD·W is not a multiple of the BRAM width, more where a wide memory leaves LUTRAM). Set "
            "`weight_layout: wide` on them to price what FINN builds.")


def readme(design: Design, board: Board, nodes: list[FinnNode]) -> str:
    name, part, shell = finn_board(board)
    clock = design.hardware.clock_mhz or board.clock_mhz
    target = (f"FINN board `{name}` ({shell})" if name else
              f"FPGA part `{part}` (not a FINN board: estimates and out-of-context synthesis only)")
    bits = design.network.input.bits
    in_type = ("float in [0, 1]; its bipolar input quantizer stays in the model and FINN runs it on the host"
               if bits == 1 else f"UINT{bits}, times the input quantizer's scale")
    rows = "\n".join(f"| `{n.name}` | {n.layer} | " + ", ".join(f"{k}={v}" for k, v in n.attrs.items()) + " |" for n in nodes)
    return f"""# FINN build of this design

Written by `codesign export-finn` for {target}, {clock:g} MHz.

| file | what |
| --- | --- |
| `model.onnx` | the QONNX model as the accelerator sees it: input {in_type}; the last layer's per-class scale and bias removed |
| `postprocess.json` | those per-class scale and bias: logits = accelerator output * scale + bias, on the host |
| `folding_config.json` | per FINN node: PE, SIMD, ram_style, resType, mem_mode, inFIFODepths / outFIFODepths |
| `dataflow_build_config.json` | FINN's build config for the full bitfile flow (`steps`: estimates, hardware, \
stitched IP, synthesis, bitfile, driver) |
| `dataflow_build_config_estimates.json` | the same for FINN's estimate-only flow (no vendor tools needed) |
| `design.yaml` | our design this was made from |

## Run it

With finn-plus installed (`pip install finn-plus`, plus Vivado/Vitis for the bitfile):

```sh
# estimates only (FINN's own cycles and resource estimates in output_estimates/report/)
finn build dataflow_build_config_estimates.json model.onnx
# the whole flow down to the bitfile (needs Vivado and Vitis HLS on PATH)
finn build dataflow_build_config.json model.onnx
```

Or from Python:

```python
from pathlib import Path
from finn.util.settings import initialize_dummy_settings
initialize_dummy_settings()  # finn-plus outside its `finn` CLI
from finn.builder.build_dataflow import build_dataflow_cfg
from finn.builder.build_dataflow_config import DataflowBuildConfig
cfg = DataflowBuildConfig.construct_from(Path("dataflow_build_config_estimates.json"))
build_dataflow_cfg("model.onnx", cfg)
```

The configs are written for finn-plus 1.6.1 (its step names, `auto_fifo_strategy: force_minimal_fifos`);
upstream Xilinx FINN takes the same folding config and model, but its own step list (no
`step_minimize_bit_width_initial`) and `DataflowBuildConfig.from_json`.

Without a FINN installation, `scripts/finn_reference.sh` in the codesign repository builds a finn-plus
environment that runs the estimate-only flow without vendor tools, and `benchmarks/finn_crosscheck.py`
compares FINN's estimates with ours.

## FINN nodes (after SpecializeLayers) and what is set on them

| FINN node | our layer | attributes |
| --- | --- | --- |
{rows}

Names are FINN's (`GiveUniqueNodeNames` after `SpecializeLayers`); `MVAU_rtl` where FINN picks its DSP-based
MVAU (our last layer with >= 4-bit weights and inputs), `MVAU_hls` elsewhere. Nodes FINN adds at the end for
float post-processing (ElementwiseMul_hls / ElementwiseAdd_hls: the popcount-to-dot-product correction of a
bipolar last layer, per-channel weight scales) are left at FINN's defaults; our accelerator leaves that
arithmetic to the host.

## FIFO depths

{FIFO_NOTE}

The build configs use `auto_fifo_strategy: force_minimal_fifos`, which inserts the FIFOs at exactly these
depths without FIFO simulation; set `auto_fifo_depths: true` with FINN's default strategy to let FINN size them.

## Known limits

* `weight_memory: external` maps to `mem_mode: external` (FINN streams those weights from outside the IP).
* {_layout_note(design)}
"""
