"""The Design: one value object (a quantized Network plus its Hardware) shared by every command.

Loads from and saves to the YAML schema of DESIGN.md section 2; every field is validated on load
and a bad file gets one `CodesignError` line naming the file, the field and what is allowed.

Boards travel with the design: a written file names the board (`hardware.board`, never a path) and
embeds its resources (`hardware.board_spec: {part, LUT, FF, BRAM18, URAM, DSP, clock_mhz, axi_width}`),
so it loads in any folder. On load, a board_spec of a built-in board must match it; a custom
board's spec is used as is (hw_space.boards remembers it by name). Older files (a built-in name, or
a board YAML path resolved from the working folder or the design's folder) still load.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from hw_space.boards import Board, board_from_spec, find_board, is_path_like, load_board_file
from hw_space.errors import CodesignError
from hw_space.files import INT64_MAX, atomic_write_text, load_yaml_file

LAYER_TYPES = ("conv", "dense", "maxpool")
TEMPLATES = ("dataflow", "tiled")
MEMORY_STYLES = ("auto", "bram", "lutram", "uram", "external")
MAC_STYLES = ("auto", "lut", "dsp")
MIN_BITS, MAX_BITS = 1, 8
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
    """One network layer. conv uses out_channels/kernel/stride/padding, dense out_features,
    maxpool kernel/stride. act_bits is None only on the last layer (raw logits)."""

    name: str
    type: str
    out_channels: int = 0
    out_features: int = 0
    kernel: int = 1
    stride: int = 1
    padding: int = 0
    weight_bits: int = 0
    act_bits: int | None = None

    @property
    def is_compute(self) -> bool:
        return self.type in ("conv", "dense")


@dataclass(frozen=True)
class Shape:
    """A feature map, channels-first."""

    channels: int
    height: int
    width: int

    @property
    def size(self) -> int:
        return self.channels * self.height * self.width


@dataclass(frozen=True)
class Network:
    """An ordered chain of layers on one input. The last layer is a dense layer without activation."""

    input: InputSpec
    layers: tuple[Layer, ...]

    def shapes(self) -> list[tuple[Shape, Shape]]:
        """(input shape, output shape) of every layer; a dense layer flattens its input."""
        cur = Shape(self.input.channels, self.input.height, self.input.width)
        out: list[tuple[Shape, Shape]] = []
        for layer in self.layers:
            if layer.type == "conv":
                h = (cur.height + 2 * layer.padding - layer.kernel) // layer.stride + 1
                w = (cur.width + 2 * layer.padding - layer.kernel) // layer.stride + 1
                nxt = Shape(layer.out_channels, h, w)
            elif layer.type == "maxpool":
                h = (cur.height - layer.kernel) // layer.stride + 1
                w = (cur.width - layer.kernel) // layer.stride + 1
                nxt = Shape(cur.channels, h, w)
            else:
                nxt = Shape(layer.out_features, 1, 1)
            out.append((cur, nxt))
            cur = nxt
        return out

    def feeders(self) -> list[int]:
        """Per layer, the index of the compute layer whose activations reach it (-1: the network
        input); pools pass their input through."""
        out, last = [], -1
        for j, layer in enumerate(self.layers):
            out.append(last)
            if layer.is_compute:
                last = j
        return out

    def input_bits_of(self, index: int) -> int:
        """Bits of the values entering layer `index` (the previous activation, or the input)."""
        for prev in reversed(self.layers[:index]):
            if prev.is_compute:
                assert prev.act_bits is not None
                return prev.act_bits
        return self.input.bits

    @property
    def compute_layers(self) -> list[Layer]:
        return [layer for layer in self.layers if layer.is_compute]

    @property
    def num_classes(self) -> int:
        return self.layers[-1].out_features

    def to_dict(self) -> dict[str, Any]:
        return {"input": _input_dict(self.input), "layers": [_layer_dict(l) for l in self.layers]}

    def content_hash(self) -> str:
        """Stable hash of what training depends on (names excluded): the training-cache key."""
        body = {"input": _input_dict(self.input),
                "layers": [{k: v for k, v in _layer_dict(l).items() if k != "name"} for l in self.layers]}
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class LayerFold:
    """Folding of one layer on the dataflow template: PE output lanes, SIMD input lanes, memory
    for the weights and the multiplier style (FINN's ram_style / resType). swg_simd is the SIMD of a
    conv's sliding window (it divides the input channels; None: chosen from simd, see
    hw_space.folding.swg_simd_for); where it differs from simd a width converter joins the two."""

    pe: int = 1
    simd: int = 1
    weight_memory: str = "auto"
    mac: str = "auto"
    swg_simd: int | None = None


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
    d: dict[str, Any] = {"name": layer.name, "type": layer.type}
    if layer.type == "conv":
        d.update(out_channels=layer.out_channels, kernel=layer.kernel, stride=layer.stride,
                 padding=layer.padding, weight_bits=layer.weight_bits)
    elif layer.type == "dense":
        d.update(out_features=layer.out_features, weight_bits=layer.weight_bits)
    else:
        d.update(kernel=layer.kernel, stride=layer.stride)
    if layer.is_compute and layer.act_bits is not None:
        d["act_bits"] = layer.act_bits
    return d


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

class _Reader:
    """Reads typed fields out of plain YAML data, raising one clear line per problem."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, where: str, message: str) -> CodesignError:
        return CodesignError(f"{where}: {message}", source=self.source)

    def mapping(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected a mapping, got {_kind(value)}")
        return value

    def keys(self, data: dict[str, Any], where: str, allowed: tuple[str, ...]) -> None:
        for key in data:
            if key not in allowed:
                raise self.fail(f"{where}.{key}", f"unknown field; allowed: {', '.join(allowed)}")

    def int(self, data: dict[str, Any], key: str, where: str, lo: int, hi: int = INT64_MAX,
            default: int | None = None) -> int:
        if key not in data:
            if default is None:
                raise self.fail(f"{where}.{key}", "missing (required)")
            return default
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(f"{where}.{key}", f"expected an integer, got {value!r}")
        if not lo <= value <= hi:
            allowed = f"{lo}..{hi}" if hi != INT64_MAX else f">= {lo} (64-bit)"
            shown = str(value) if len(str(value)) <= 24 else f"{str(value)[:20]}...({len(str(value))} digits)"
            raise self.fail(f"{where}.{key}", f"{shown} is out of range; allowed: {allowed}")
        return value

    def choice(self, data: dict[str, Any], key: str, where: str, allowed: tuple[str, ...],
               default: str) -> str:
        value = data.get(key, default)
        if value not in allowed:
            raise self.fail(f"{where}.{key}", f"{value!r} is not allowed; allowed: {', '.join(allowed)}")
        return value


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def _parse_input(r: _Reader, data: Any) -> InputSpec:
    d = r.mapping(data, "network.input")
    r.keys(d, "network.input", ("channels", "height", "width", "bits"))
    return InputSpec(channels=r.int(d, "channels", "network.input", 1, 4096),
                     height=r.int(d, "height", "network.input", 1, 4096),
                     width=r.int(d, "width", "network.input", 1, 4096),
                     bits=r.int(d, "bits", "network.input", MIN_BITS, MAX_BITS, default=8))


_LAYER_KEYS = {
    "conv": ("name", "type", "out_channels", "kernel", "stride", "padding", "weight_bits", "act_bits"),
    "dense": ("name", "type", "out_features", "weight_bits", "act_bits"),
    "maxpool": ("name", "type", "kernel", "stride"),
}
_PREFIX = {"conv": "conv", "dense": "fc", "maxpool": "pool"}
# names the cost model and the HLS backend use for their own stages
RESERVED_NAMES = ("input", "output", "platform", "engine")


def _parse_layers(r: _Reader, data: Any) -> tuple[Layer, ...]:
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
        if ltype not in LAYER_TYPES:
            raise r.fail(f"{where}.type", f"{ltype!r} is not allowed; allowed: {', '.join(LAYER_TYPES)}")
        r.keys(d, where, _LAYER_KEYS[ltype])
        if "name" in d:
            name = d["name"]
        else:  # default names skip the ones the file gives explicitly
            while f"{_PREFIX[ltype]}{counters[ltype]}" in explicit:
                counters[ltype] += 1
            name = f"{_PREFIX[ltype]}{counters[ltype]}"
            counters[ltype] += 1
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
            raise r.fail(f"{where}.name", f"{name!r} is not a valid name; allowed: letters, digits and _, "
                         "starting with a letter or _, at most 64 characters")
        if name in RESERVED_NAMES:
            raise r.fail(f"{where}.name", f"{name!r} is reserved for a hardware stage; not allowed: {', '.join(RESERVED_NAMES)}")
        where = f"network.layers[{i}] ({name})"
        if ltype == "maxpool":
            k = r.int(d, "kernel", where, 1, 64, default=2)
            layers.append(Layer(name=name, type="maxpool", kernel=k, stride=r.int(d, "stride", where, 1, 64, default=k)))
            continue
        wb = r.int(d, "weight_bits", where, MIN_BITS, MAX_BITS)
        if i == last:
            if "act_bits" in d:
                raise r.fail(f"{where}.act_bits", "the last layer outputs raw logits and has no activation; remove act_bits")
            ab = None
        else:
            ab = r.int(d, "act_bits", where, MIN_BITS, MAX_BITS)
        if ltype == "conv":
            layers.append(Layer(name=name, type="conv", out_channels=r.int(d, "out_channels", where, 1, 65536),
                                kernel=r.int(d, "kernel", where, 1, 64),
                                stride=r.int(d, "stride", where, 1, 64, default=1),
                                padding=r.int(d, "padding", where, 0, 64, default=0),
                                weight_bits=wb, act_bits=ab))
        else:
            layers.append(Layer(name=name, type="dense", out_features=r.int(d, "out_features", where, 1, 1 << 20),
                                weight_bits=wb, act_bits=ab))
    names = [layer.name for layer in layers]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise r.fail("network.layers", f"duplicate layer name(s) {', '.join(dupes)}; every name must be unique")
    if layers[-1].type != "dense":
        raise r.fail(f"network.layers[{last}]", f"the last layer must be dense (it produces the logits), got {layers[-1].type}")
    return tuple(layers)


def _check_shapes(r: _Reader, net: Network) -> None:
    seen_dense = False
    for i, (layer, (_, out)) in enumerate(zip(net.layers, net.shapes())):
        where = f"network.layers[{i}] ({layer.name})"
        if layer.type == "dense":
            seen_dense = True
        elif seen_dense:
            raise r.fail(where, f"a {layer.type} layer cannot follow a dense layer; convolutions and pools come first")
        if layer.type == "conv" and layer.padding >= layer.kernel:
            raise r.fail(f"{where}.padding", f"{layer.padding} must be smaller than the kernel ({layer.kernel})")
        if out.height < 1 or out.width < 1:
            raise r.fail(where, f"kernel {layer.kernel} does not fit the {net.shapes()[i][0].height}x"
                         f"{net.shapes()[i][0].width} input of this layer; reduce the kernel or the depth")


def _parse_hardware(r: _Reader, data: Any, net: Network) -> Hardware:
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


def _parse_board_ref(r: _Reader, d: dict[str, Any]) -> str:
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


def _parse_engine(r: _Reader, data: Any) -> Engine:
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


def _parse_folds(r: _Reader, data: Any, net: Network) -> dict[str, LayerFold]:
    d = r.mapping(data, "hardware.layers")
    by_name = {layer.name: layer for layer in net.layers}
    folds: dict[str, LayerFold] = {}
    for name, raw in d.items():
        where = f"hardware.layers.{name}"
        if name not in by_name:
            raise r.fail(where, f"no network layer is named {name!r}; layers: {', '.join(by_name)}")
        f = r.mapping(raw, where)
        if by_name[name].type == "maxpool":
            r.keys(f, where, ("pe",))
            folds[name] = LayerFold(pe=r.int(f, "pe", where, 1, MAX_FOLD, default=1))
            continue
        is_conv = by_name[name].type == "conv"
        r.keys(f, where, ("pe", "simd", "weight_memory", "mac") + (("swg_simd",) if is_conv else ()))
        folds[name] = LayerFold(pe=r.int(f, "pe", where, 1, MAX_FOLD, default=1),
                                simd=r.int(f, "simd", where, 1, MAX_FOLD, default=1),
                                weight_memory=r.choice(f, "weight_memory", where, MEMORY_STYLES, "auto"),
                                mac=r.choice(f, "mac", where, MAC_STYLES, "auto"),
                                swg_simd=r.int(f, "swg_simd", where, 1, MAX_FOLD) if "swg_simd" in f else None)
    return folds


def design_from_dict(data: Any, source: str = "<design>") -> Design:
    """Validate plain data (as parsed from YAML) into a Design, or raise one CodesignError line."""
    r = _Reader(source)
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
