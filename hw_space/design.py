"""The Design: one value object (a quantized Network plus its Hardware) shared by every command.

Loads from and saves to the YAML schema of DESIGN.md section 2; every field is validated on load
and a bad file gets one `CodesignError` line naming the file, the field and what is allowed.

Boards travel with the design: a written file names the board (`hardware.board`, never a path) and
embeds its resources (`hardware.board_spec: {part, LUT, FF, BRAM18, URAM, DSP, clock_mhz, axi_width}`),
so it loads in any folder. On load, a board_spec of a built-in board must match it; a custom
board's spec is used as is (hw_space.boards remembers it by name). Older files (a built-in name, or
a board YAML path resolved from the working folder or the design's folder) still load.

What each layer type means (fields, shapes, checks, folding fields) is its kind in
hw_space.layer_kinds; this module never branches on a layer's type. The network is a graph: a layer
names the layers it reads (`inputs`, default the one before), listed in data-flow order; features
that still need a single chain call `Network.require_chain`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from hw_space.boards import Board, board_from_spec, find_board, is_path_like, load_board_file
from hw_space.errors import CodesignError
from hw_space.files import atomic_write_text, load_yaml_file
from hw_space.layer_kinds import LAYER_KINDS, LAYER_TYPES, MAX_BITS, MIN_BITS, LayerKind, Shape
from hw_space.yaml_reader import Reader

__all__ = ["LAYER_KINDS", "LAYER_TYPES", "MAC_STYLES", "MAX_BITS", "MEMORY_STYLES", "MIN_BITS", "PORT_WIDTHS",
           "RESERVED_NAMES", "TEMPLATES", "WEIGHT_LAYOUTS", "Design", "Engine", "Hardware", "InputSpec", "Layer", "LayerFold",
           "LayerKind", "Network", "Shape", "atomic_write_text", "design_from_dict", "load_design",
           "load_yaml_file", "save_design"]

TEMPLATES = ("dataflow", "tiled")
MEMORY_STYLES = ("auto", "bram", "lutram", "uram", "external")
MAC_STYLES = ("auto", "lut", "dsp")
# how an MVAU lays out its weights: one memory per PE (SIMD*W bits wide) or one memory for all PEs
# (PE*SIMD*W bits wide, FINN's MVAU); the first is the default
WEIGHT_LAYOUTS = ("per_pe", "wide")
PORT_WIDTHS = (8, 16, 32, 64, 128, 256, 512)
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")  # always fullmatch: "conv0\n" is not a name
MAX_FOLD = 1 << 20  # PE / SIMD never exceed the widest layer (out_features <= 2^20)


@dataclass(frozen=True)
class InputSpec:
    """Shape and precision of one input frame (channels-first). bits=1 means bipolar +-1."""

    channels: int
    height: int
    width: int
    bits: int = 8


@dataclass(frozen=True)
class Layer:
    """One network layer; its type's `LayerKind` says which fields it uses (conv: out_channels, kernel,
    stride, padding, groups; dense: out_features; maxpool, avgpool: kernel, stride; global_avgpool, add:
    act_bits only). act_bits is None only on the last layer (raw logits). inputs names the layers it
    reads ("input": the network input); empty means the layer before it (the input for the first)."""

    name: str
    type: str
    out_channels: int = 0
    out_features: int = 0
    kernel: int = 1
    stride: int = 1
    padding: int = 0
    weight_bits: int = 0
    act_bits: int | None = None
    inputs: tuple[str, ...] = ()
    groups: int = 1  # conv: channel groups (depthwise: groups = in = out channels); last, as positions are used

    @property
    def kind(self) -> LayerKind:
        """What this layer's type is (fields, shapes, checks, folding fields)."""
        try:
            return LAYER_KINDS[self.type]
        except KeyError:
            raise CodesignError(f"layer {self.name}: type {self.type!r} is not allowed; "
                                f"allowed: {', '.join(LAYER_TYPES)}") from None

    @property
    def is_compute(self) -> bool:
        return self.kind.compute


NETWORK_INPUT = "input"  # the name `inputs` uses for the network input (reserved: no layer has it)


@dataclass(frozen=True)
class Network:
    """Layers on one input, listed in data-flow (topological) order: each reads the layers its `inputs`
    names, all earlier in the list (default: the one before it). The last layer is a dense layer without
    activation; its output is the network's. A chain is the case where every layer reads the one before."""

    input: InputSpec
    layers: tuple[Layer, ...]

    # ------------------------------------------------------------ graph queries

    @cached_property
    def _producers(self) -> tuple[tuple[int, ...], ...]:
        return _resolve_inputs(self.layers, lambda where, msg: CodesignError(f"{where}: {msg}"))

    def producers(self, j: int) -> list[int]:
        """Indices of the layers layer j reads, in its `inputs` order (-1: the network input)."""
        return list(self._producers[j])

    def consumers(self, j: int) -> list[int]:
        """Indices of the layers that read layer j (j = -1: the network input), ascending."""
        return [k for k, ps in enumerate(self._producers) if j in ps]

    def order(self) -> list[int]:
        """Layer indices in topological order: the file order, which loading checks is one (every
        layer reads only earlier layers)."""
        self._producers  # noqa: B018 -- resolves (and checks) the inputs
        return list(range(len(self.layers)))

    def is_fork(self, j: int) -> bool:
        """Several layers read layer j (j = -1: the network input)."""
        return len(self.consumers(j)) > 1

    def is_join(self, j: int) -> bool:
        """Layer j reads several layers."""
        return len(self._producers[j]) > 1

    def is_chain(self) -> bool:
        """Every layer reads exactly the one before it (the first one the network input)."""
        return all(ps == (j - 1,) for j, ps in enumerate(self._producers))

    def require_chain(self, feature: str) -> None:
        """Refuse a branching network in a feature that still needs a single chain, naming the
        first layer that does not read the one before it."""
        for j, ps in enumerate(self._producers):
            if ps != (j - 1,):
                layer = self.layers[j]
                reads = ", ".join(self.layers[p].name if p >= 0 else NETWORK_INPUT for p in ps)
                before = self.layers[j - 1].name if j > 0 else NETWORK_INPUT
                raise CodesignError(f"{feature}: network.layers[{j}] ({layer.name}) reads {reads}, not {before}; "
                                    "branches are not supported yet here, only a chain where each layer "
                                    "reads the one before it")

    # ------------------------------------------------------------ shapes and values

    @property
    def input_shape(self) -> Shape:
        """The shape of the network input."""
        return Shape(self.input.channels, self.input.height, self.input.width)

    def shapes(self) -> list[tuple[Shape, Shape]]:
        """(input shape, output shape) of every layer, in topological order; a dense layer flattens its input."""
        first = self.input_shape
        out: list[tuple[Shape, Shape]] = []
        for j in self.order():
            p = self._producers[j][0]
            cur = first if p < 0 else out[p][1]
            layer = self.layers[j]
            out.append((cur, layer.kind.output_shape(layer, cur)))
        return out

    def feeders(self) -> list[int]:
        """Per layer, the index of the layer whose activations reach it (-1: the network input): a
        compute layer, or an average pool with its own act_bits; other pools pass their input through."""
        out: list[int] = []
        for j in self.order():
            p = self._producers[j][0]
            out.append(p if p < 0 or self.layers[p].is_compute or self.layers[p].act_bits is not None else out[p])
        return out

    def output_bits(self, index: int) -> int:
        """Bits of the values layer `index` produces (-1: the network input): its act_bits, or for a
        pool or add without them the bits it receives."""
        if index < 0:
            return self.input.bits
        bits = self.layers[index].act_bits
        return bits if bits is not None else self.input_bits_of(index)

    def input_bits_of(self, index: int) -> int:
        """Bits of the values entering layer `index` (its feeder's activation, or the input)."""
        feeder = self.feeders()[index]
        if feeder < 0:
            return self.input.bits
        bits = self.layers[feeder].act_bits
        assert bits is not None
        return bits

    def weight_counts(self) -> list[int]:
        """Learned weights of every layer, in layer order (0 for a pool); what the model size counts."""
        counts = [0] * len(self.layers)
        for j, (shape_in, _) in zip(self.order(), self.shapes()):
            layer = self.layers[j]
            counts[j] = layer.kind.weight_count(layer, shape_in)
        return counts

    @property
    def compute_layers(self) -> list[Layer]:
        return [layer for layer in self.layers if layer.is_compute]

    @property
    def num_classes(self) -> int:
        return self.layers[-1].out_features

    # ------------------------------------------------------------ serialisation

    def _inputs_field(self, j: int) -> list[str] | None:
        """Layer j's `inputs` as a file writes them: None for the default (the layer before it)."""
        ps = self._producers[j]
        if ps == (j - 1,):
            return None
        return [self.layers[p].name if p >= 0 else NETWORK_INPUT for p in ps]

    def to_dict(self) -> dict[str, Any]:
        layers = []
        for j, layer in enumerate(self.layers):
            d = _layer_dict(layer)
            inputs = self._inputs_field(j)
            if inputs is not None:
                d["inputs"] = inputs
            layers.append(d)
        return {"input": _input_dict(self.input), "layers": layers}

    def content_hash(self) -> str:
        """Stable hash of what training depends on (names excluded): the training-cache key. A layer's
        producers enter it (as indices, -1 the input) only where they are not the layer before, so a
        chain hashes as it always did."""
        layers = []
        for j, layer in enumerate(self.layers):
            d = {k: v for k, v in _layer_dict(layer).items() if k != "name"}
            if self._producers[j] != (j - 1,):
                d["inputs"] = list(self._producers[j])
            layers.append(d)
        body = {"input": _input_dict(self.input), "layers": layers}
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def _resolve_inputs(layers: tuple[Layer, ...] | list[Layer],
                    fail: Callable[[str, str], CodesignError]) -> tuple[tuple[int, ...], ...]:
    """Per layer, the indices of the layers it reads (-1: the network input), checking that each named
    layer exists, comes earlier in the file, and that the layer's kind reads that many inputs."""
    index = {layer.name: j for j, layer in enumerate(layers)}
    out: list[tuple[int, ...]] = []
    for j, layer in enumerate(layers):
        if not layer.inputs:
            out.append((j - 1,))
            continue
        where = f"network.layers[{j}] ({layer.name}).inputs"
        producers = []
        for name in layer.inputs:
            p = -1 if name == NETWORK_INPUT else index.get(name)
            if p is None:
                earlier = ", ".join([NETWORK_INPUT] + [l.name for l in layers[:j]])
                raise fail(where, f"{name!r} is not a layer of this network; allowed: {earlier}")
            if p == j:
                raise fail(where, f"{name!r} is this layer itself; a layer reads only layers listed before it")
            if p > j:
                raise fail(where, f"{name!r} comes later (network.layers[{p}]); a layer reads only layers listed "
                           "before it (the file order is the data-flow order)")
            producers.append(p)
        arity = layer.kind.arity
        if len(producers) != arity:
            reads = "one input" if arity == 1 else f"{arity} inputs"
            hint = "; two branches join in an add layer" if len(producers) > arity else ""
            article = "an" if layer.type[0] in "aeiou" else "a"
            raise fail(where, f"{article} {layer.type} layer reads {reads}, got {len(producers)}{hint}")
        out.append(tuple(producers))
    return tuple(out)


@dataclass(frozen=True)
class LayerFold:
    """Folding of one layer on the dataflow template: PE output lanes, SIMD input lanes, memory
    for the weights and the multiplier style (FINN's ram_style / resType). swg_simd is the SIMD of a
    conv's sliding window (it divides the input channels; None: chosen from simd, see
    hw_space.layers.largest_divisor_at_most); where it differs from simd a width converter joins the two.
    weight_layout: one weight memory per PE (per_pe) or one PE times wider for all PEs (wide)."""

    pe: int = 1
    simd: int = 1
    weight_memory: str = "auto"
    mac: str = "auto"
    swg_simd: int | None = None
    weight_layout: str = "per_pe"


@dataclass(frozen=True)
class Engine:
    """The tiled template's single conv engine (Zhang FPGA'15 / FNAS notation); port widths in bits."""

    tm: int
    tn: int
    tr: int
    tc: int
    input_port: int = 64
    weight_port: int = 64
    output_port: int = 64


@dataclass(frozen=True)
class Hardware:
    """Board, clock and template plus per-layer folding (dataflow) or the engine (tiled).
    clock_mhz None means the board's default clock."""

    board: str = "zc706"
    clock_mhz: float | None = None
    template: str = "dataflow"
    layers: dict[str, LayerFold] = field(default_factory=dict)
    engine: Engine | None = None

    def fold(self, name: str) -> LayerFold:
        return self.layers.get(name, LayerFold())

    def __hash__(self) -> int:  # dict field: hash the sorted items
        return hash((self.board, self.clock_mhz, self.template,
                     tuple(sorted(self.layers.items())), self.engine))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"board": self.board}
        if self.clock_mhz is not None:
            out["clock_mhz"] = self.clock_mhz
        out["template"] = self.template
        if self.template == "tiled" and self.engine is not None:
            e = self.engine
            out["engine"] = {"tm": e.tm, "tn": e.tn, "tr": e.tr, "tc": e.tc,
                             "port_bits": {"input": e.input_port, "weight": e.weight_port,
                                           "output": e.output_port}}
        else:
            layers = {}
            for name, f in self.layers.items():
                entry: dict[str, Any] = {"pe": f.pe}
                if f.simd != 1:
                    entry["simd"] = f.simd
                if f.weight_memory != "auto":
                    entry["weight_memory"] = f.weight_memory
                if f.mac != "auto":
                    entry["mac"] = f.mac
                if f.swg_simd is not None:
                    entry["swg_simd"] = f.swg_simd
                if f.weight_layout != "per_pe":
                    entry["weight_layout"] = f.weight_layout
                layers[name] = entry
            out["layers"] = layers
        return out


@dataclass(frozen=True)
class Design:
    """A network and the accelerator that runs it."""

    network: Network
    hardware: Hardware = field(default_factory=Hardware)

    def to_dict(self) -> dict[str, Any]:
        return {"network": self.network.to_dict(), "hardware": self.hardware.to_dict()}

    def to_yaml(self) -> str:
        """The design file: hardware.board is the board's name and hardware.board_spec its resources
        (when the board can be found), so the file loads in any folder."""
        data = self.to_dict()
        board = _board_for_file(self.hardware.board)
        if board is not None:
            hw = data["hardware"]
            data["hardware"] = {"board": board.name, "board_spec": board.spec(),
                                **{k: v for k, v in hw.items() if k != "board"}}
        return _dump_yaml(data)

    def with_hardware(self, **changes: Any) -> Design:
        return replace(self, hardware=replace(self.hardware, **changes))


# ---------------------------------------------------------------- serialisation helpers

def _board_for_file(board: str) -> Board | None:
    """The board a written file embeds: built-in, met earlier in this process, or loaded from a path
    (a path that does not load is an error: a written file never holds a path)."""
    try:
        return find_board(board)
    except CodesignError as exc:
        raise CodesignError(f"hardware.board: {board!r} cannot be written into a design file: {exc}") from None


def _input_dict(spec: InputSpec) -> dict[str, int]:
    return {"channels": spec.channels, "height": spec.height, "width": spec.width, "bits": spec.bits}


def _layer_dict(layer: Layer) -> dict[str, Any]:
    """A layer's own fields as a file writes them (its `inputs` are the Network's to write)."""
    return {"name": layer.name, "type": layer.type, **layer.kind.to_dict(layer)}


class _FlowList(list):
    """A list YAML writes in flow style, one line per layer, as people write it by hand."""


def _flow_dict_representer(dumper: yaml.SafeDumper, data: dict) -> yaml.Node:
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=True)


class _Dumper(yaml.SafeDumper):
    pass


class _FlowDict(dict):
    pass


_Dumper.add_representer(_FlowDict, _flow_dict_representer)
_Dumper.add_representer(_FlowList, lambda d, data: d.represent_list(list(data)))


def _dump_yaml(data: dict[str, Any]) -> str:
    net = dict(data["network"])
    net["input"] = _FlowDict(net["input"])
    net["layers"] = _FlowList(_FlowDict(layer) for layer in net["layers"])
    hw = dict(data["hardware"])
    if "layers" in hw:
        hw["layers"] = {k: _FlowDict(v) for k, v in hw["layers"].items()}
    if "engine" in hw:
        hw["engine"] = _FlowDict(hw["engine"])
    if "board_spec" in hw:
        hw["board_spec"] = _FlowDict(hw["board_spec"])
    return yaml.dump({"network": net, "hardware": hw}, Dumper=_Dumper, sort_keys=False,
                     default_flow_style=False, width=200)


def save_design(design: Design, path: str | Path) -> None:
    atomic_write_text(path, design.to_yaml())


# ---------------------------------------------------------------- parsing and validation

def _parse_input(r: Reader, data: Any) -> InputSpec:
    d = r.mapping(data, "network.input")
    r.keys(d, "network.input", ("channels", "height", "width", "bits"))
    return InputSpec(channels=r.int(d, "channels", "network.input", 1, 4096),
                     height=r.int(d, "height", "network.input", 1, 4096),
                     width=r.int(d, "width", "network.input", 1, 4096),
                     bits=r.int(d, "bits", "network.input", MIN_BITS, MAX_BITS, default=8))


# names the cost model and the HLS backend use for their own stages ("input" also names the
# network input in a layer's `inputs`)
RESERVED_NAMES = (NETWORK_INPUT, "output", "platform", "engine")


def _parse_layers(r: Reader, data: Any) -> tuple[Layer, ...]:
    if not isinstance(data, list) or not data:
        raise r.fail("network.layers", "expected a non-empty list of layers")
    counters = {t: 0 for t in LAYER_TYPES}
    layers: list[Layer] = []
    last = len(data) - 1
    explicit = {raw.get("name") for raw in data if isinstance(raw, dict)}
    for i, raw in enumerate(data):
        where = f"network.layers[{i}]"
        d = r.mapping(raw, where)
        ltype = d.get("type")
        if ltype not in LAYER_KINDS:
            raise r.fail(f"{where}.type", f"{ltype!r} is not allowed; allowed: {', '.join(LAYER_TYPES)}")
        kind = LAYER_KINDS[ltype]
        r.keys(d, where, ("name", "type", *kind.fields, "inputs"))
        if "name" in d:
            name = d["name"]
        else:  # default names skip the ones the file gives explicitly
            while f"{kind.prefix}{counters[ltype]}" in explicit:
                counters[ltype] += 1
            name = f"{kind.prefix}{counters[ltype]}"
            counters[ltype] += 1
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
            raise r.fail(f"{where}.name", f"{name!r} is not a valid name; allowed: letters, digits and _, "
                         "starting with a letter or _, at most 64 characters")
        if name in RESERVED_NAMES:
            raise r.fail(f"{where}.name", f"{name!r} is reserved for a hardware stage; not allowed: {', '.join(RESERVED_NAMES)}")
        where = f"network.layers[{i}] ({name})"
        fields = kind.parse(r, d, where, last=i == last)
        layers.append(Layer(name=name, type=ltype, inputs=_parse_inputs(r, d, where), **fields))
    names = [layer.name for layer in layers]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise r.fail("network.layers", f"duplicate layer name(s) {', '.join(dupes)}; every name must be unique")
    if not layers[-1].kind.can_be_last:
        last_types = " or ".join(k.type for k in LAYER_KINDS.values() if k.can_be_last)
        raise r.fail(f"network.layers[{last}]", f"the last layer must be {last_types} (it produces the logits), "
                     f"got {layers[-1].type}")
    # an `inputs` that names the layer before (or the input, for the first layer) is the default: drop it,
    # so a loaded design equals the one its written file loads to
    producers = _resolve_inputs(layers, r.fail)
    return tuple(replace(layer, inputs=()) if producers[j] == (j - 1,) else layer for j, layer in enumerate(layers))


def _parse_inputs(r: Reader, d: dict[str, Any], where: str) -> tuple[str, ...]:
    """A layer's optional `inputs`: a non-empty list of layer names (or "input"); () when absent."""
    if "inputs" not in d:
        return ()
    value = d["inputs"]
    if not isinstance(value, list) or not value:
        raise r.fail(f"{where}.inputs", f"expected a non-empty list of layer names such as [conv0], got {value!r}")
    for name in value:
        if not isinstance(name, str):
            raise r.fail(f"{where}.inputs", f"{name!r} is not a layer name; expected a list of names such as [conv0]")
    return tuple(value)


def _check_shapes(r: Reader, net: Network) -> None:
    shapes = net.shapes()
    for j in net.order():
        layer, (shape_in, shape_out) = net.layers[j], shapes[j]
        where = f"network.layers[{j}] ({layer.name})"
        for p in net.producers(j):
            if p >= 0 and layer.kind.needs_map and net.layers[p].kind.flat_output:
                raise r.fail(where, f"a {layer.type} layer cannot follow a {net.layers[p].type} layer; "
                             "convolutions and pools come first")
        layer.kind.check(r, layer, where, shape_in, shape_out)
        ps = net.producers(j)
        if len(ps) > 1:
            layer.kind.check_join(r, layer, where, [shapes[p][1] if p >= 0 else net.input_shape for p in ps],
                                  [net.output_bits(p) for p in ps])
    last = len(net.layers) - 1
    for j in net.order()[:-1]:
        if not net.consumers(j):
            raise r.fail(f"network.layers[{j}] ({net.layers[j].name})", "no layer reads its output; every layer "
                         f"but the last ({net.layers[last].name}) must feed a later one (branches end in an add)")


def _parse_hardware(r: Reader, data: Any, net: Network) -> Hardware:
    if data is None:
        return Hardware()
    d = r.mapping(data, "hardware")
    r.keys(d, "hardware", ("board", "board_spec", "clock_mhz", "template", "layers", "engine"))
    board = _parse_board_ref(r, d)
    clock = d.get("clock_mhz")
    if clock is not None and (isinstance(clock, bool) or not isinstance(clock, (int, float)) or not 1 <= clock <= 1000):
        raise r.fail("hardware.clock_mhz", f"{clock!r} is not allowed; allowed: a number of MHz in 1..1000")
    template = r.choice(d, "template", "hardware", TEMPLATES, "dataflow")
    engine = None
    if template == "tiled":
        if "layers" in d:
            raise r.fail("hardware.layers", "per-layer folding belongs to the dataflow template; the tiled template takes hardware.engine")
        engine = _parse_engine(r, d.get("engine"))
    elif "engine" in d:
        raise r.fail("hardware.engine", "the engine belongs to the tiled template; set template: tiled or remove it")
    folds = _parse_folds(r, d.get("layers") or {}, net)
    return Hardware(board=board, clock_mhz=float(clock) if clock is not None else None,
                    template=template, layers=folds, engine=engine)


def _parse_board_ref(r: Reader, d: dict[str, Any]) -> str:
    """hardware.board (+ hardware.board_spec) as a board name the rest of the tool can load."""
    board = d.get("board", "zc706")
    if not isinstance(board, str) or not board or "\n" in board or "\x00" in board:
        raise r.fail("hardware.board", f"expected a board name or a path to a board YAML, got {board!r}")
    if "board_spec" in d:
        return board_from_spec(board, d["board_spec"], r.source).name
    if not is_path_like(board):
        return board  # a built-in name (checked when a command needs the board)
    # an older file: a board YAML path, from the working folder or next to the design file
    candidates = [Path(board)]
    if not Path(board).is_absolute() and not r.source.startswith("<"):
        candidates.append(Path(r.source).parent / board)
    for path in candidates:
        if path.is_file():
            return load_board_file(path).name
    raise r.fail("hardware.board", f"board file {board!r} not found (looked in the working folder and next to the "
                 "design file); allowed: a built-in board name (see codesign boards) or a board YAML path")


def _parse_engine(r: Reader, data: Any) -> Engine:
    if data is None:
        raise r.fail("hardware.engine", "missing; the tiled template needs {tm, tn, tr, tc}")
    d = r.mapping(data, "hardware.engine")
    r.keys(d, "hardware.engine", ("tm", "tn", "tr", "tc", "port_bits"))
    ports = r.mapping(d.get("port_bits", {}), "hardware.engine.port_bits")
    r.keys(ports, "hardware.engine.port_bits", ("input", "weight", "output"))
    widths = {}
    for key in ("input", "weight", "output"):
        value = ports.get(key, 64)
        if value not in PORT_WIDTHS:
            raise r.fail(f"hardware.engine.port_bits.{key}", f"{value!r} is not allowed; allowed: {', '.join(map(str, PORT_WIDTHS))}")
        widths[key] = value
    return Engine(tm=r.int(d, "tm", "hardware.engine", 1, 1024), tn=r.int(d, "tn", "hardware.engine", 1, 1024),
                  tr=r.int(d, "tr", "hardware.engine", 1, 4096), tc=r.int(d, "tc", "hardware.engine", 1, 4096),
                  input_port=widths["input"], weight_port=widths["weight"], output_port=widths["output"])


def _parse_folds(r: Reader, data: Any, net: Network) -> dict[str, LayerFold]:
    d = r.mapping(data, "hardware.layers")
    by_name = {layer.name: layer for layer in net.layers}
    folds: dict[str, LayerFold] = {}
    for name, raw in d.items():
        where = f"hardware.layers.{name}"
        if name not in by_name:
            raise r.fail(where, f"no network layer is named {name!r}; layers: {', '.join(by_name)}")
        f = r.mapping(raw, where)
        fold_fields = by_name[name].kind.fold_fields
        r.keys(f, where, fold_fields)
        folds[name] = LayerFold(**{key: _FOLD_FIELDS[key](r, f, where) for key in fold_fields})
        if by_name[name].groups > 1 and "swg_simd" in f:
            raise r.fail(f"{where}.swg_simd", "a grouped (depthwise) conv's window moves PE channels per word; "
                         "remove swg_simd")
    return folds


# how each field under hardware.layers.<name> reads (a layer's kind says which fields it takes)
_FOLD_FIELDS: dict[str, Callable[[Reader, dict[str, Any], str], Any]] = {
    "pe": lambda r, f, where: r.int(f, "pe", where, 1, MAX_FOLD, default=1),
    "simd": lambda r, f, where: r.int(f, "simd", where, 1, MAX_FOLD, default=1),
    "weight_memory": lambda r, f, where: r.choice(f, "weight_memory", where, MEMORY_STYLES, "auto"),
    "mac": lambda r, f, where: r.choice(f, "mac", where, MAC_STYLES, "auto"),
    "swg_simd": lambda r, f, where: r.int(f, "swg_simd", where, 1, MAX_FOLD) if "swg_simd" in f else None,
    "weight_layout": lambda r, f, where: r.choice(f, "weight_layout", where, WEIGHT_LAYOUTS, "per_pe"),
}


def design_from_dict(data: Any, source: str = "<design>") -> Design:
    """Validate plain data (as parsed from YAML) into a Design, or raise one CodesignError line."""
    r = Reader(source)
    d = r.mapping(data, "top level")
    r.keys(d, "top level", ("network", "hardware"))
    if "network" not in d:
        raise r.fail("network", "missing (required)")
    nd = r.mapping(d["network"], "network")
    r.keys(nd, "network", ("input", "layers"))
    if "input" not in nd:
        raise r.fail("network.input", "missing (required)")
    net = Network(input=_parse_input(r, nd["input"]), layers=_parse_layers(r, nd.get("layers")))
    _check_shapes(r, net)
    return Design(network=net, hardware=_parse_hardware(r, d.get("hardware"), net))


def load_design(path: str | Path) -> Design:
    """Load and validate a Design YAML file."""
    return design_from_dict(load_yaml_file(path), source=str(path))
