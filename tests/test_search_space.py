"""The search space: token <-> Design round trip, validity of every decoded design, YAML I/O and errors."""

from itertools import product

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codesign.search.space import Context, divisor_counts, level_to_divisor, load_space, save_space, space_from_dict
from hw_space.boards import load_board
from hw_space.design import design_from_dict
from hw_space.errors import CodesignError
from hw_space.estimate import estimate
from hw_space.folding import legal_folds

SPACE = load_space()
WIDE = space_from_dict({
    "network": {"conv_blocks": [0, 1, 2, 3, 4], "dense_layers": [0, 1, 2], "kernel": [1, 3, 5],
                "channels": [3, 8, 12, 64], "dense_features": [10, 16], "weight_bits": [1, 2, 3, 4, 5, 6, 7, 8],
                "act_bits": [1, 2, 3, 8], "input_bits": 4},
    "hardware": {"templates": ["dataflow", "tiled"], "pe": [0, 0.3, 1], "simd": [0, 0.5, 1],
                 "weight_memory": ["auto", "bram", "lutram", "uram", "external"], "mac": ["auto", "lut", "dsp"],
                 "engine": {"tm": [4, 16], "tn": [2, 8], "tr": [4, 32], "tc": [4, 32]}}},
    context=Context(3, 32, 32, 10, board="pynq-z2"))


def tokens_for(space):
    return st.tuples(*(st.integers(0, n - 1) for n in space.sizes())).map(list)


def check_valid(space, design):
    """The decoded design passes the Design validator and every fold is a legal divisor."""
    again = design_from_dict(design.to_dict())
    assert again == design
    net = design.network
    assert net.layers[-1].type == "dense" and net.layers[-1].act_bits is None
    assert net.num_classes == space.context.num_classes
    assert (net.input.channels, net.input.height, net.input.width) == (space.context.channels, space.context.height,
                                                                      space.context.width)
    if design.hardware.template == "dataflow":
        legal = legal_folds(net)
        for layer in net.compute_layers:
            f = design.hardware.fold(layer.name)
            assert f.pe in legal[layer.name][0] and f.simd in legal[layer.name][1], layer.name
    else:
        assert design.hardware.engine is not None and not design.hardware.layers


@settings(max_examples=300, deadline=None)
@given(tokens_for(SPACE))
def test_default_space_round_trip_and_validity(tokens):
    design = SPACE.decode(tokens)
    check_valid(SPACE, design)
    canon = SPACE.encode(design)
    assert SPACE.decode(canon) == design
    assert SPACE.decode(SPACE.canonical(tokens)) == design
    assert SPACE.encode(SPACE.decode(canon)) == canon  # canonical tokens are a fixed point


@settings(max_examples=300, deadline=None)
@given(tokens_for(WIDE))
def test_wide_space_round_trip_and_validity(tokens):
    design = WIDE.decode(tokens)
    check_valid(WIDE, design)
    assert WIDE.decode(WIDE.encode(design)) == design
    est = estimate(design, load_board("pynq-z2"))  # the cost model accepts every decoded design
    assert est.fps > 0


def test_inactive_decisions_do_not_change_the_design():
    rng = np.random.default_rng(3)
    for _ in range(200):
        tokens = SPACE.sample(rng)
        active = SPACE.active(tokens)
        i = int(rng.choice([k for k, a in enumerate(active) if not a]))
        other = list(tokens)
        other[i] = (other[i] + 1) % SPACE.sizes()[i]
        assert SPACE.decode(other) == SPACE.decode(tokens)


def test_hardware_resample_keeps_the_network():
    rng = np.random.default_rng(0)
    for _ in range(50):
        tokens = SPACE.sample(rng)
        again = SPACE.resample_hardware(tokens, rng)
        assert [again[i] for i in SPACE.nn_positions] == [tokens[i] for i in SPACE.nn_positions]
        assert SPACE.decode(again).network == SPACE.decode(tokens).network


def test_decisions_are_network_first_then_hardware():
    kinds = [d.kind for d in SPACE.decisions]
    assert kinds == sorted(kinds, key=lambda k: k == "hw")
    assert SPACE.nn_positions and SPACE.hw_positions


def test_divisors_rule_prefers_counts_with_many_divisors():
    # the rule the default space used before `rule: htas` measured the board: unchanged lists
    assert divisor_counts(8, 64, max_odd_factor=3, min_divisors=4) == [8, 12, 16, 24, 32, 48, 64]
    assert divisor_counts(16, 64, max_odd_factor=1) == [16, 32, 64]
    old = space_from_dict({"network": {
        "channels": {"rule": "divisors", "min": 8, "max": 64, "max_odd_factor": 3, "min_divisors": 4},
        "dense_features": {"rule": "divisors", "min": 16, "max": 64, "max_odd_factor": 1, "min_divisors": 4}}})
    assert old.channels.values == (8, 12, 16, 24, 32, 48, 64) and old.channels.rule["rule"] == "divisors"
    assert old.dense_features.values == (16, 32, 64)
    assert {d.choices for d in old.decisions if d.name.endswith(".channels")} == {(8, 12, 16, 24, 32, 48, 64)}
    assert SPACE.channels.rule["rule"] == "htas"  # the default space measures the board instead


def test_parallelism_levels_map_to_legal_divisors():
    divs = [1, 2, 3, 4, 6, 8, 12, 24]
    assert [level_to_divisor(x, divs) for x in (0.0, 0.5, 1.0)] == [1, 6, 24]
    assert level_to_divisor(0.75, [1]) == 1


@pytest.mark.slow  # enumerates ~200,000 token vectors
def test_count_matches_brute_force_on_a_small_space():
    small = space_from_dict({
        "network": {"conv_blocks": [1, 2], "dense_layers": [0, 1], "kernel": [1, 3], "channels": [8, 16],
                    "pool": [False, True], "dense_features": [16], "weight_bits": [1, 4], "act_bits": [2]},
        "hardware": {"templates": ["dataflow"], "pe": [0.0, 1.0], "simd": [0.0], "weight_memory": ["auto"],
                     "engine": {"tm": [8], "tn": [1], "tr": [4], "tc": [4]}}},
        context=Context(1, 2, 2, 10))
    assert np.prod(small.sizes()) < 200_000  # small enough to enumerate
    distinct = {tuple(small.canonical(list(t))) for t in product(*(range(n) for n in small.sizes()))}
    assert small.count() == len(distinct)


def test_yaml_round_trip(tmp_path):
    path = tmp_path / "space.yaml"
    save_space(WIDE, path)
    again = load_space(path, WIDE.context)
    assert again.decisions == WIDE.decisions and again.input_bits == 4
    save_space(SPACE, path)
    text = path.read_text()
    assert "rule: htas" in text  # the rule that chose the channels is kept, not only its output
    assert "resolved:" in text and "board: zc706" in text  # and what it chose on the board, for a resume
    assert load_space(path).decisions == SPACE.decisions


@pytest.mark.parametrize("data, field", [
    ({"network": {"weight_bits": [0, 4]}}, "network.weight_bits"),
    ({"network": {"act_bits": [9]}}, "network.act_bits"),
    ({"network": {"kernal": [3]}}, "network.kernal"),
    ({"network": {"channels": {"rule": "primes", "min": 8, "max": 64}}}, "network.channels.rule"),
    ({"network": {"channels": {"rule": "htas", "min": 65, "max": 64}}}, "network.channels"),
    ({"network": {"channels": {"rule": "divisors", "min": 8, "max": 64, "g": 4}}}, "network.channels.g"),
    ({"network": {"channels": {"rule": "htas", "min": 8, "max": 64, "e": 0}}}, "network.channels.e"),
    ({"network": {"channels": {"rule": "htas", "min": 8, "max": 600}}}, "network.channels"),
    ({"network": {"channels": {"rule": "htas", "min": 8, "max": 64, "alpha": -1}}}, "network.channels.alpha"),
    ({"network": {"channels": {"rule": "htas", "min": 8, "max": 64, "resolved": {"board": "zc706", "input": [1, 8, 8, 10],
                                                                                 "conv0": [99]}}}},
     "network.channels.resolved.conv0"),
    ({"network": {"channels": []}}, "network.channels"),
    ({"network": {"pool": ["yes"]}}, "network.pool"),
    ({"hardware": {"templates": ["systolic"]}}, "hardware.templates"),
    ({"hardware": {"pe": [0.5, 1.5]}}, "hardware.pe"),
    ({"hardware": {"weight_memory": ["flash"]}}, "hardware.weight_memory"),
    ({"hardware": {"engine": {"tm": [0]}}}, "hardware.engine.tm"),
    ({"hardware": {"simd": [0.5, 0.5]}}, "hardware.simd"),
    ({"other": 1}, "top level.other"),
])
def test_bad_fields_are_one_line_errors(data, field):
    base = {"network": {"channels": [8], "weight_bits": [4], "act_bits": [4]}}
    merged = {k: {**base.get(k, {}), **v} if isinstance(v, dict) else v for k, v in {**base, **data}.items()}
    with pytest.raises(CodesignError) as exc:
        space_from_dict(merged, source="bad.yaml")
    message = str(exc.value)
    assert "\n" not in message and message.startswith("bad.yaml: ") and field in message


def test_fields_left_out_keep_the_default_choices(tmp_path):
    path = tmp_path / "narrow.yaml"
    path.write_text("network:\n  weight_bits: [4]\n  act_bits: [4]\nhardware:\n  engine: {tm: [16]}\n")
    narrow = load_space(path)
    assert narrow.weight_bits.values == (4,) and narrow.act_bits.values == (4,)
    assert narrow.channels == SPACE.channels and narrow.pe == SPACE.pe and narrow.tn == SPACE.tn
    assert narrow.tm.values == (16,) and narrow.count() < SPACE.count()


def test_missing_file_and_bad_tokens(tmp_path):
    with pytest.raises(CodesignError, match="not found"):
        load_space(tmp_path / "nope.yaml")
    with pytest.raises(CodesignError, match="tokens"):
        SPACE.decode([0, 1])
    with pytest.raises(CodesignError, match="out of range"):
        SPACE.decode([99] * len(SPACE.decisions))


def test_encode_refuses_a_design_outside_the_space():
    design = SPACE.decode([0] * len(SPACE.decisions))
    wide = WIDE.with_context(SPACE.context)
    other = wide.decode([len(c) - 1 for c in (d.choices for d in wide.decisions)])
    with pytest.raises(CodesignError, match="not in this space"):
        SPACE.encode(other)
    assert SPACE.encode(design) == SPACE.canonical([0] * len(SPACE.decisions))


def test_default_space_offers_both_templates_and_tiled_designs_fit():
    # the controller's template token is live: the default space samples dataflow and tiled designs,
    # and the tiled ones' engines are legal (Tm a multiple of Tn, equal activation ports)
    template = next(d for d in SPACE.decisions if d.name == "template")
    assert list(template.choices) == ["dataflow", "tiled"]
    rng = np.random.default_rng(0)
    designs = [SPACE.decode(SPACE.sample(rng)) for _ in range(40)]
    tiled = [d for d in designs if d.hardware.template == "tiled"]
    assert tiled and len(tiled) < len(designs)
    for d in tiled:
        e = d.hardware.engine
        assert e.tm % e.tn == 0 and e.input_port == e.output_port
