"""Design YAML: round trip, default names, and one clear line for every kind of bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hw_space.boards import load_board
from hw_space.design import Design, Engine, LayerFold, design_from_dict, load_design, save_design
from hw_space.errors import CodesignError
from hw_space.folding import fold

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

BASE = """\
network:
  input: {channels: 1, height: 8, width: 8, bits: 8}
  layers:
    - {name: conv0, type: conv, out_channels: 16, kernel: 3, padding: 1, weight_bits: 4, act_bits: 4}
    - {name: pool0, type: maxpool, kernel: 2}
    - {name: fc0, type: dense, out_features: 32, weight_bits: 4, act_bits: 4}
    - {name: fc1, type: dense, out_features: 10, weight_bits: 4}
hardware:
  board: pynq-z2
  template: dataflow
  layers:
    conv0: {pe: 4, simd: 1}
"""


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_examples_round_trip(tmp_path, example):
    d = load_design(EXAMPLES / example)
    path = tmp_path / example
    save_design(d, path)
    again = load_design(path)
    assert again == d
    assert again.to_yaml() == d.to_yaml()
    # and through plain data
    assert design_from_dict(yaml.safe_load(d.to_yaml())) == d


def test_folded_design_round_trips(tmp_path):
    # a folding with pool PE, memory and multiplier styles (what `codesign fold --out` writes)
    d = load_design(EXAMPLES / "cnv_w1a1.yaml")
    folded = fold(d, load_board("pynq-z2"))
    path = tmp_path / "folded.yaml"
    save_design(folded, path)
    assert load_design(path) == folded


def test_every_field_survives_the_round_trip(tmp_path):
    d = load_design(_write(tmp_path, BASE))
    d = d.with_hardware(clock_mhz=125.0, layers={
        "conv0": LayerFold(pe=8, simd=1, weight_memory="lutram", mac="dsp"),
        "pool0": LayerFold(pe=4),
        "fc0": LayerFold(pe=2, simd=16, weight_memory="external"),
        "fc1": LayerFold(pe=5, simd=32, weight_memory="uram", mac="lut"),
    })
    path = tmp_path / "all.yaml"
    save_design(d, path)
    assert load_design(path) == d
    tiled = d.with_hardware(template="tiled", layers={}, engine=Engine(8, 4, 6, 5, 32, 128, 16))
    save_design(tiled, path)
    assert load_design(path) == tiled


def test_default_names_and_defaults(tmp_path):
    text = """\
network:
  input: {channels: 3, height: 12, width: 12}
  layers:
    - {type: conv, out_channels: 8, kernel: 3, weight_bits: 2, act_bits: 2}
    - {type: maxpool}
    - {type: conv, out_channels: 8, kernel: 3, weight_bits: 2, act_bits: 2}
    - {type: dense, out_features: 16, weight_bits: 2, act_bits: 2}
    - {type: dense, out_features: 10, weight_bits: 2}
"""
    d = load_design(_write(tmp_path, text))
    assert [l.name for l in d.network.layers] == ["conv0", "pool0", "conv1", "fc0", "fc1"]
    # defaults: input bits 8, stride 1, padding 0, pool kernel 2 and stride = kernel, no act on the last
    assert d.network.input.bits == 8
    conv0, pool0 = d.network.layers[0], d.network.layers[1]
    assert (conv0.stride, conv0.padding) == (1, 0)
    assert (pool0.kernel, pool0.stride) == (2, 2)
    assert d.network.layers[-1].act_bits is None
    # hardware defaults: zc706, board clock, dataflow, PE = SIMD = 1
    assert (d.hardware.board, d.hardware.clock_mhz, d.hardware.template) == ("zc706", None, "dataflow")
    assert d.hardware.fold("conv0") == LayerFold(1, 1, "auto", "auto")
    # shapes: 12 -conv3-> 10 -pool2-> 5 -conv3-> 3; dense flattens 8·3·3 = 72
    assert [(o.channels, o.height) for _, o in d.network.shapes()] == [(8, 10), (8, 5), (8, 3), (16, 1), (10, 1)]
    assert d.network.shapes()[3][0].size == 72


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "design.yaml"
    path.write_text(text)
    return path


def _error(tmp_path: Path, text: str) -> str:
    path = _write(tmp_path, text)
    with pytest.raises(CodesignError) as exc:
        load_design(path)
    msg = str(exc.value)
    assert "\n" not in msg, msg
    assert msg.startswith(f"{path}: "), msg
    return msg


def _sub(old: str, new: str) -> str:
    assert old in BASE
    return BASE.replace(old, new)


BAD = [
    # (id, yaml text, substrings the one-line message must contain: field, then what is allowed)
    ("unknown layer type", _sub("type: maxpool, kernel: 2", "type: lstm, kernel: 2"),
     ["network.layers[1].type", "'lstm' is not allowed", "allowed: conv, dense, maxpool"]),
    ("weight bits 0", _sub("weight_bits: 4, act_bits: 4}\n    - {name: pool0", "weight_bits: 0, act_bits: 4}\n"
                                                                             "    - {name: pool0"),
     ["network.layers[0] (conv0).weight_bits", "0 is out of range", "allowed: 1..8"]),
    ("act bits 9", _sub("out_features: 32, weight_bits: 4, act_bits: 4", "out_features: 32, weight_bits: 4, act_bits: 9"),
     ["network.layers[2] (fc0).act_bits", "9 is out of range", "allowed: 1..8"]),
    ("input bits 9", _sub("bits: 8}", "bits: 9}"), ["network.input.bits", "allowed: 1..8"]),
    ("bits not an integer", _sub("out_features: 10, weight_bits: 4", "out_features: 10, weight_bits: four"),
     ["network.layers[3] (fc1).weight_bits", "expected an integer, got 'four'"]),
    ("missing out_channels", _sub("out_channels: 16, ", ""),
     ["network.layers[0] (conv0).out_channels", "missing (required)"]),
    ("missing weight_bits", _sub("out_features: 10, weight_bits: 4", "out_features: 10"),
     ["network.layers[3] (fc1).weight_bits", "missing (required)"]),
    ("act_bits on the last layer", _sub("out_features: 10, weight_bits: 4}", "out_features: 10, weight_bits: 4, act_bits: 4}"),
     ["network.layers[3] (fc1).act_bits", "raw logits", "remove act_bits"]),
    ("missing act_bits on a hidden layer", _sub("out_features: 32, weight_bits: 4, act_bits: 4", "out_features: 32, weight_bits: 4"),
     ["network.layers[2] (fc0).act_bits", "missing (required)"]),
    ("last layer not dense", BASE.replace("    - {name: fc1, type: dense, out_features: 10, weight_bits: 4}\n", "")
     .replace("{name: fc0, type: dense, out_features: 32, weight_bits: 4, act_bits: 4}",
              "{name: conv9, type: conv, out_channels: 10, kernel: 1, weight_bits: 4}"),
     ["network.layers[2]", "the last layer must be dense", "got conv"]),
    ("duplicate names", _sub("{name: fc0, type: dense", "{name: conv0, type: dense").replace("    conv0: {pe: 4, simd: 1}\n", ""),
     ["network.layers", "duplicate layer name(s) conv0", "unique"]),
    ("kernel larger than the input", _sub("kernel: 3, padding: 1", "kernel: 11, padding: 1"),
     ["network.layers[0] (conv0)", "kernel 11 does not fit the 8x8 input"]),
    ("pool kernel larger than its input", _sub("type: maxpool, kernel: 2", "type: maxpool, kernel: 9"),
     ["network.layers[1] (pool0)", "kernel 9 does not fit the 8x8 input"]),
    ("padding not below the kernel", _sub("kernel: 3, padding: 1", "kernel: 3, padding: 3"),
     ["network.layers[0] (conv0).padding", "3 must be smaller than the kernel (3)"]),
    ("conv after dense", _sub("    - {name: fc1,", "    - {name: pool9, type: maxpool}\n    - {name: fc1,"),
     ["network.layers[3] (pool9)", "cannot follow a dense layer"]),
    ("bad layer name", _sub("{name: pool0,", "{name: 9pool,"),
     ["network.layers[1].name", "'9pool' is not a valid name", "allowed: letters, digits and _"]),
    ("unknown layer field", _sub("type: maxpool, kernel: 2", "type: maxpool, kernel: 2, dilation: 2"),
     ["network.layers[1].dilation", "unknown field", "allowed: name, type, kernel, stride"]),
    ("empty layer list", "network:\n  input: {channels: 1, height: 8, width: 8}\n  layers: []\n",
     ["network.layers", "expected a non-empty list of layers"]),
    ("missing network", "hardware: {board: zc706}\n", ["network", "missing (required)"]),
    ("unknown top-level key", BASE + "training: {epochs: 3}\n",
     ["top level.training", "unknown field; allowed: network, hardware"]),
    ("unknown hardware layer name", _sub("    conv0: {pe: 4, simd: 1}", "    conv7: {pe: 4, simd: 1}"),
     ["hardware.layers.conv7", "no network layer is named 'conv7'", "layers: conv0, pool0, fc0, fc1"]),
    ("bad weight_memory", _sub("{pe: 4, simd: 1}", "{pe: 4, simd: 1, weight_memory: sram}"),
     ["hardware.layers.conv0.weight_memory", "'sram' is not allowed", "allowed: auto, bram, lutram, uram, external"]),
    ("bad mac", _sub("{pe: 4, simd: 1}", "{pe: 4, simd: 1, mac: fpu}"),
     ["hardware.layers.conv0.mac", "'fpu' is not allowed", "allowed: auto, lut, dsp"]),
    ("pe 0", _sub("{pe: 4, simd: 1}", "{pe: 0, simd: 1}"),
     ["hardware.layers.conv0.pe", "0 is out of range", "allowed: 1..1048576"]),
    ("simd on a pool", _sub("    conv0: {pe: 4, simd: 1}", "    pool0: {pe: 4, simd: 2}"),
     ["hardware.layers.pool0.simd", "unknown field; allowed: pe"]),
    ("bad template", _sub("template: dataflow", "template: systolic"),
     ["hardware.template", "'systolic' is not allowed", "allowed: dataflow, tiled"]),
    ("tiled without engine", _sub("template: dataflow\n  layers:\n    conv0: {pe: 4, simd: 1}\n", "template: tiled\n"),
     ["hardware.engine", "missing", "needs {tm, tn, tr, tc}"]),
    ("tiled with per-layer folding", _sub("template: dataflow", "template: tiled"),
     ["hardware.layers", "belongs to the dataflow template"]),
    ("engine on dataflow", BASE + "  engine: {tm: 4, tn: 4, tr: 4, tc: 4}\n",
     ["hardware.engine", "belongs to the tiled template"]),
    ("bad port width", _sub("template: dataflow\n  layers:\n    conv0: {pe: 4, simd: 1}\n",
                            "template: tiled\n  engine: {tm: 4, tn: 4, tr: 4, tc: 4, port_bits: {input: 48}}\n"),
     ["hardware.engine.port_bits.input", "48 is not allowed", "allowed: 8, 16, 32, 64, 128, 256, 512"]),
    ("engine tm 0", _sub("template: dataflow\n  layers:\n    conv0: {pe: 4, simd: 1}\n",
                         "template: tiled\n  engine: {tm: 0, tn: 4, tr: 4, tc: 4}\n"),
     ["hardware.engine.tm", "0 is out of range", "allowed: 1..1024"]),
    ("missing engine field", _sub("template: dataflow\n  layers:\n    conv0: {pe: 4, simd: 1}\n",
                                  "template: tiled\n  engine: {tm: 4, tn: 4, tr: 4}\n"),
     ["hardware.engine.tc", "missing (required)"]),
    ("bad clock", _sub("board: pynq-z2", "board: pynq-z2\n  clock_mhz: 5000"),
     ["hardware.clock_mhz", "5000 is not allowed", "allowed: a number of MHz in 1..1000"]),
    ("bad board type", _sub("board: pynq-z2", "board: 7"),
     ["hardware.board", "expected a board name or a path"]),
    ("layers not a list", "network:\n  input: {channels: 1, height: 8, width: 8}\n  layers: {a: 1}\n",
     ["network.layers", "expected a non-empty list"]),
    ("YAML syntax error", BASE.replace("{pe: 4, simd: 1}", "{pe: 4, simd: 1"), ["line "]),
    ("not a mapping", "- 1\n- 2\n", ["top level", "expected a mapping, got list"]),
    ("empty file", "", ["top level", "expected a mapping, got nothing"]),
]


@pytest.mark.parametrize("text, expected", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_gives_one_line_naming_file_field_and_allowed(tmp_path, text, expected):
    msg = _error(tmp_path, text)
    for part in expected:
        assert part in msg, f"{part!r} not in {msg!r}"


def test_the_base_document_itself_is_valid(tmp_path):
    # guards the table above: each case fails because of its one change, not because BASE is bad
    d = load_design(_write(tmp_path, BASE))
    assert isinstance(d, Design) and d.hardware.fold("conv0").pe == 4


def test_missing_file(tmp_path):
    path = tmp_path / "absent.yaml"
    with pytest.raises(CodesignError) as exc:
        load_design(path)
    assert str(exc.value) == f"{path}: file not found"


def test_yaml_syntax_error_names_the_line(tmp_path):
    # the unclosed flow mapping starts on line 12 of BASE; the parser reports where it gives up
    msg = _error(tmp_path, BASE.replace("{pe: 4, simd: 1}", "{pe: 4, simd: 1"))
    line = int(msg.split("line ")[1].split(":")[0])
    assert 12 <= line <= 13


def test_error_is_a_value_error_with_the_source():
    with pytest.raises(ValueError) as exc:
        design_from_dict({"network": {"input": {"channels": 0, "height": 1, "width": 1}}}, source="x.yaml")
    assert isinstance(exc.value, CodesignError)
    assert exc.value.source == "x.yaml"
    assert str(exc.value) == "x.yaml: network.input.channels: 0 is out of range; allowed: 1..4096"


def test_content_hash_ignores_names_and_hardware(tmp_path):
    a = load_design(_write(tmp_path, BASE))
    b = load_design(_write(tmp_path, BASE.replace("conv0", "c").replace("board: pynq-z2", "board: zc706")))
    c = load_design(_write(tmp_path, BASE.replace("out_features: 32", "out_features: 64")))
    assert a.network.content_hash() == b.network.content_hash()
    assert a.network.content_hash() != c.network.content_hash()


def test_default_names_do_not_collide_with_explicit_ones(tmp_path):
    # The user names the first conv "conv1" and leaves the second unnamed; the per-type counter
    # (1 after the first conv) gives the second "conv1" too, and the file is rejected with
    # "duplicate layer name(s) conv1" -- a duplicate the user never wrote. A default name must
    # skip names already taken (e.g. conv0, or conv2).
    text = """\
network:
  input: {channels: 1, height: 8, width: 8}
  layers:
    - {name: conv1, type: conv, out_channels: 4, kernel: 3, weight_bits: 4, act_bits: 4}
    - {type: conv, out_channels: 4, kernel: 3, weight_bits: 4, act_bits: 4}
    - {type: dense, out_features: 10, weight_bits: 4}
"""
    d = load_design(_write(tmp_path, text))
    names = [l.name for l in d.network.layers]
    assert names[0] == "conv1" and names[2] == "fc0"
    assert len(set(names)) == 3
