"""The co-design search space: a fixed list of categorical decisions (tokens) that decodes to a Design.

Network decisions come first (depth, per-block kernel / channels / pooling / bits, dense widths),
hardware decisions after them (template, per compute layer PE / SIMD level and memory style, the
tiled engine's tiles), so an autoregressive controller can sample the hardware conditioned on the
network. PE and SIMD are "parallelism levels": a fraction in [0, 1] of the way through the sorted
list of legal divisors of the layer's sampled width, so one token means the same thing whatever
channel counts were drawn. The space loads from and saves to YAML (`codesign/data/default_space.yaml`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from functools import cached_property
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from hw_space.design import (
    MAC_STYLES,
    MAX_BITS,
    MEMORY_STYLES,
    MIN_BITS,
    TEMPLATES,
    Design,
    Engine,
    Hardware,
    InputSpec,
    Layer,
    LayerFold,
    Network,
    atomic_write_text,
    load_yaml_file,
)
from hw_space.errors import CodesignError
from hw_space.folding import divisors, legal_folds

DEFAULT_SPACE = Path(__file__).parent.parent / "data" / "default_space.yaml"
MAX_CONV_BLOCKS = 8
MAX_DENSE_LAYERS = 4
CLASSIFIER = "cls"  # slot name of the last (logits) layer, whose layer name depends on the depth
# what a conv block is: a conv, a depthwise-separable block (depthwise KxK + pointwise 1x1, MobileNet), or
# a residual basic block (two KxK convs and a shortcut joined by an add, ResNet; He et al., CVPR 2016)
BLOCKS = ("conv", "separable", "residual")
# what joins the convs to the dense layers: a flatten (the dense layer reads the whole map) or a
# global average pool (the dense layer reads one value per channel)
HEADS = ("flatten", "global_avgpool")


@dataclass(frozen=True)
class Decision:
    """One categorical choice: its name, whether it shapes the network ('nn') or the accelerator ('hw')."""

    name: str
    kind: str
    choices: tuple[Any, ...]

    @property
    def size(self) -> int:
        return len(self.choices)


@dataclass(frozen=True)
class Context:
    """What the dataset and board fix: the input frame and class count, the board and its clock."""

    channels: int
    height: int
    width: int
    num_classes: int
    board: str = "zc706"
    clock_mhz: float | None = None


# ---------------------------------------------------------------- the divisor rule

def divisor_counts(lo: int, hi: int, max_odd_factor: int = 3, min_divisors: int = 1) -> list[int]:
    """Channel counts in [lo, hi] of the form 2^a * odd with odd <= max_odd_factor and at least
    min_divisors divisors (`rule: divisors`): such counts have many divisors, so PE/SIMD have many
    legal foldings and the next layer's SIMD divides them too (8, 12, 16, 24, ...). The board-aware
    rule is `rule: htas` (codesign.search.htas)."""
    out = []
    for n in range(max(1, lo), hi + 1):
        odd = n
        while odd % 2 == 0:
            odd //= 2
        if odd <= max_odd_factor and len(divisors(n)) >= min_divisors:
            out.append(n)
    return out


def residual_block(i: int, source: str, in_channels: int, in_bits: int, width: int, kernel: int, stride: int,
                   wbits: int, abits: int) -> list[Layer]:
    """Block i of a ResNet stage (He et al., CVPR 2016, the basic block): conv{i}a (KxK, the block's stride)
    and conv{i} (KxK), joined in add{i} with the shortcut. The shortcut is the block's input where shape
    and bits allow it (stride 1, same channels, the add's bits; not the network input, which the QAT model
    does not add to); otherwise a 1x1 projection proj{i} with the block's stride. An add reads values of
    2 bits or more, so 1-bit activations become 2 here."""
    bits = max(abits, 2)
    identity = stride == 1 and in_channels == width and in_bits == bits and source != "input"
    pad = kernel // 2
    out = [Layer(name=f"conv{i}a", type="conv", out_channels=width, kernel=kernel, stride=stride, padding=pad,
                 weight_bits=wbits, act_bits=bits),
           Layer(name=f"conv{i}", type="conv", out_channels=width, kernel=kernel, stride=1, padding=pad,
                 weight_bits=wbits, act_bits=bits)]
    shortcut = source
    if not identity:
        shortcut = f"proj{i}"
        out.append(Layer(name=shortcut, type="conv", out_channels=width, kernel=1, stride=stride, padding=0,
                         weight_bits=wbits, act_bits=bits, inputs=(source,)))
    out.append(Layer(name=f"add{i}", type="add", act_bits=bits, inputs=(f"conv{i}", shortcut)))
    return out


def follower_folds(net: Network, folds: dict[str, LayerFold], legal: dict[str, tuple[list[int], list[int]]]
                   ) -> dict[str, LayerFold]:
    """The PE of every add and average pool: the largest legal PE up to that of the compute layer whose
    values it reads (Network.feeders), so a stage with one lane per cycle never paces a fast network.
    These layers take no decision of their own (a max-pool keeps its default: all channels)."""
    out: dict[str, LayerFold] = {}
    feeders = net.feeders()
    for j, layer in enumerate(net.layers):  # topological: a follower's own feeder is set before it
        src = feeders[j]
        fold = out.get(net.layers[src].name, folds.get(net.layers[src].name)) if src >= 0 else None
        if layer.type in ("add", "avgpool", "global_avgpool") and fold is not None:
            out[layer.name] = LayerFold(pe=max(p for p in legal[layer.name][0] if p <= fold.pe))
    return out


def level_to_divisor(level: float, legal: list[int]) -> int:
    """Map a parallelism level in [0, 1] to the nearest position in a sorted list of legal values."""
    return legal[int(round(level * (len(legal) - 1)))]


# ---------------------------------------------------------------- the space

@dataclass(frozen=True)
class ChoiceSpec:
    """A list of choices as written in the YAML: explicit values or a rule that generated them.
    `rule: htas` chooses per position (per_slot: slot -> its counts, for the context in resolved_for);
    values is then the union of the positions' counts."""

    values: tuple[Any, ...]
    rule: dict[str, Any] | None = None
    per_slot: tuple[tuple[str, tuple[int, ...]], ...] = ()
    resolved_for: tuple[Any, ...] | None = None  # htas.context_key of the context per_slot was measured for

    def at(self, slot: str) -> tuple[Any, ...]:
        """The choices at one position (conv0, fc1 ...)."""
        return dict(self.per_slot).get(slot, self.values)

    def to_yaml(self) -> Any:
        if not self.rule:
            return list(self.values)
        out = dict(self.rule)
        if self.per_slot and self.resolved_for is not None:
            board, c, h, w, classes = self.resolved_for
            out["resolved"] = {"board": board, "input": [c, h, w, classes],
                               **{slot: list(counts) for slot, counts in self.per_slot}}
        return out


@dataclass(frozen=True)
class SearchSpace:
    """The decisions of a co-design search and how they decode into a Design for one Context."""

    conv_blocks: ChoiceSpec
    dense_layers: ChoiceSpec
    kernel: ChoiceSpec
    channels: ChoiceSpec
    pool: ChoiceSpec
    dense_features: ChoiceSpec
    weight_bits: ChoiceSpec
    act_bits: ChoiceSpec
    templates: ChoiceSpec
    pe: ChoiceSpec
    simd: ChoiceSpec
    weight_memory: ChoiceSpec
    mac: ChoiceSpec
    tm: ChoiceSpec
    tn: ChoiceSpec
    tr: ChoiceSpec
    tc: ChoiceSpec
    block: ChoiceSpec = ChoiceSpec(("conv",))  # a decision per conv block only when it offers more
    head: ChoiceSpec = ChoiceSpec(("flatten",))  # a decision only when it offers more
    input_bits: int = 8
    context: Context = field(default_factory=lambda: Context(1, 8, 8, 10))
    source: str = "<space>"

    # ------------------------------------------------------------ structure
    @property
    def max_conv(self) -> int:
        return max(self.conv_blocks.values)

    @property
    def max_dense(self) -> int:
        return max(self.dense_layers.values)

    def slots(self) -> list[str]:
        """Compute-layer slots in order: conv0.., fc0.. (hidden dense), cls (the classifier)."""
        return ([f"conv{i}" for i in range(self.max_conv)] + [f"fc{j}" for j in range(self.max_dense)]
                + [CLASSIFIER])

    @cached_property
    def decisions(self) -> list[Decision]:
        return _decisions(self)

    @cached_property
    def _index(self) -> dict[str, int]:
        return {d.name: i for i, d in enumerate(self.decisions)}

    def with_context(self, context: Context) -> SearchSpace:
        """The same space bound to another dataset / board (htas choices measured again for it)."""
        return _resolved(replace(self, context=context))

    @cached_property
    def nn_positions(self) -> list[int]:
        return [i for i, d in enumerate(self.decisions) if d.kind == "nn"]

    @cached_property
    def hw_positions(self) -> list[int]:
        return [i for i, d in enumerate(self.decisions) if d.kind == "hw"]

    def sizes(self) -> list[int]:
        return [d.size for d in self.decisions]

    # ------------------------------------------------------------ sampling and coding
    def sample(self, rng: np.random.Generator) -> list[int]:
        """Uniform random tokens."""
        return [int(rng.integers(n)) for n in self.sizes()]

    def resample_hardware(self, tokens: list[int], rng: np.random.Generator) -> list[int]:
        """The same network decisions with uniformly redrawn hardware decisions."""
        out = list(tokens)
        sizes = self.sizes()
        for i in self.hw_positions:
            out[i] = int(rng.integers(sizes[i]))
        return out

    def decode(self, tokens: list[int]) -> Design:
        """Build the (always valid) Design the tokens stand for."""
        return self.decode_full(tokens)[0]

    def active(self, tokens: list[int]) -> list[bool]:
        """Which decisions influence the decoded design (others are ignored padding)."""
        return self.decode_full(tokens)[1]

    def canonical(self, tokens: list[int]) -> list[int]:
        """Tokens with every inactive decision set to 0: equal designs -> equal canonical tokens
        (up to parallelism levels that land on the same divisor)."""
        return [t if a else 0 for t, a in zip(tokens, self.active(tokens))]

    def decode_full(self, tokens: list[int]) -> tuple[Design, list[bool]]:
        """Decode tokens into a Design, and mark the decisions that mattered."""
        decs = self.decisions
        if len(tokens) != len(decs):
            raise CodesignError(f"expected {len(decs)} tokens for this space, got {len(tokens)}")
        index = self._index
        used = [False] * len(decs)

        def get(name: str) -> Any:
            i = index[name]
            t = int(tokens[i])
            if not 0 <= t < decs[i].size:
                raise CodesignError(f"token {name}={t} is out of range 0..{decs[i].size - 1}")
            used[i] = decs[i].size > 1
            return decs[i].choices[t]

        ctx = self.context
        n_conv, n_dense = get("conv_blocks"), get("dense_layers")
        layers: list[Layer] = []
        slot_of: dict[str, str] = {}
        size, pools, channels = min(ctx.height, ctx.width), 0, ctx.channels
        bits = self.input_bits  # bits of the values the next block reads
        for i in range(n_conv):
            k = get(f"conv{i}.kernel")
            wbits, abits = get(f"conv{i}.weight_bits"), get(f"conv{i}.act_bits")
            block = get(f"conv{i}.block") if f"conv{i}.block" in index else "conv"
            if block == "residual":
                down = size >= 2 and get(f"conv{i}.pool")
                width = get(f"conv{i}.channels")
                new = residual_block(i, layers[-1].name if layers else "input", channels, bits, width, k,
                                     2 if down else 1, wbits, abits)
                layers += new
                slot_of.update({n.name: f"conv{i}" for n in new if n.type == "conv"})
                channels, bits = width, new[-1].act_bits
                size = (size - 1) // 2 + 1 if down else size
                continue
            # a separable block: depthwise KxK on the block's input channels, then a pointwise 1x1
            # (one slot: the same bits and parallelism levels); on a one-channel input a block is a conv
            if channels > 1 and block == "separable":
                layers.append(Layer(name=f"dw{i}", type="conv", out_channels=channels, kernel=k, stride=1,
                                    padding=k // 2, groups=channels, weight_bits=wbits, act_bits=abits))
                slot_of[f"dw{i}"] = f"conv{i}"
                k = 1
            channels = get(f"conv{i}.channels")
            layers.append(Layer(name=f"conv{i}", type="conv", out_channels=channels, kernel=k,
                                stride=1, padding=k // 2, weight_bits=wbits, act_bits=abits))
            slot_of[f"conv{i}"] = f"conv{i}"
            bits = abits
            if size >= 2 and get(f"conv{i}.pool"):
                layers.append(Layer(name=f"pool{pools}", type="maxpool", kernel=2, stride=2))
                pools += 1
                size //= 2
        if n_conv and "head" in index and get("head") == "global_avgpool":
            layers.append(Layer(name="gap", type="global_avgpool"))
        for j in range(n_dense):
            layers.append(Layer(name=f"fc{j}", type="dense", out_features=get(f"fc{j}.features"),
                                weight_bits=get(f"fc{j}.weight_bits"), act_bits=get(f"fc{j}.act_bits")))
            slot_of[f"fc{j}"] = f"fc{j}"
        layers.append(Layer(name=f"fc{n_dense}", type="dense", out_features=ctx.num_classes,
                            weight_bits=get(f"{CLASSIFIER}.weight_bits"), act_bits=None))
        slot_of[f"fc{n_dense}"] = CLASSIFIER
        net = Network(input=InputSpec(ctx.channels, ctx.height, ctx.width, self.input_bits), layers=tuple(layers))

        template = get("template")
        if template == "tiled":
            engine = Engine(tm=get("engine.tm"), tn=get("engine.tn"), tr=get("engine.tr"), tc=get("engine.tc"))
            hw = Hardware(board=ctx.board, clock_mhz=ctx.clock_mhz, template="tiled", engine=engine)
        else:
            folds = {}
            legal = legal_folds(net)
            for layer in net.compute_layers:
                slot = slot_of[layer.name]
                pes, simds = legal[layer.name]
                folds[layer.name] = LayerFold(pe=level_to_divisor(get(f"{slot}.pe"), pes),
                                              simd=level_to_divisor(get(f"{slot}.simd"), simds),
                                              weight_memory=get(f"{slot}.weight_memory"), mac=get(f"{slot}.mac"))
            folds.update(follower_folds(net, folds, legal))
            hw = Hardware(board=ctx.board, clock_mhz=ctx.clock_mhz, template="dataflow", layers=folds)
        return Design(network=net, hardware=hw), used

    def encode(self, design: Design) -> list[int]:
        """Canonical tokens of a design this space can express, or one CodesignError line saying why not."""
        decs = self.decisions
        index = {d.name: i for i, d in enumerate(decs)}
        tokens = [0] * len(decs)

        def put(name: str, value: Any, ok=lambda choice, value: choice == value) -> None:
            d = decs[index[name]]
            for t, choice in enumerate(d.choices):
                if ok(choice, value):
                    tokens[index[name]] = t
                    return
            raise CodesignError(f"{name}: {value!r} is not in this space; allowed: "
                                f"{', '.join(map(str, d.choices))}")

        net, hw = design.network, design.hardware
        depthwise = {l.name for l in net.layers if l.type == "conv" and l.groups > 1}
        after_dw = {net.layers[i].name for i in range(1, len(net.layers)) if net.layers[i - 1].name in depthwise}
        # a residual block (residual_block): its main conv is the add's first input; the conv before it and
        # a projection (a conv naming its input) share the main conv's slot
        add_of = {a.inputs[0]: a for a in net.layers if a.type == "add"}  # main conv -> its add
        first_of = {net.layers[j].name: net.layers[net.producers(j)[0]] for j in range(len(net.layers))
                    if net.layers[j].name in add_of}
        proj = {l.name for l in net.layers if l.type == "conv" and l.inputs}
        inner = {first.name for first in first_of.values()} | proj
        convs = [l for l in net.layers if l.type == "conv" and l.name not in depthwise | inner]
        if "head" in index:
            put("head", "global_avgpool" if any(l.type == "global_avgpool" for l in net.layers) else "flatten")
        dense = [l for l in net.layers if l.type == "dense"]
        put("conv_blocks", len(convs))
        put("dense_layers", len(dense) - 1)
        pooled = {net.layers[i - 1].name for i, l in enumerate(net.layers) if l.type == "maxpool" and i > 0}
        kernel_of = {net.layers[i].name: net.layers[i - 1].kernel for i in range(1, len(net.layers))
                     if net.layers[i].name in after_dw}
        for i, l in enumerate(convs):
            first = first_of.get(l.name)
            if f"conv{i}.block" in index and l.name in after_dw:
                put(f"conv{i}.block", "separable")
            if first is not None:
                put(f"conv{i}.block", "residual")
            put(f"conv{i}.kernel", kernel_of.get(l.name, l.kernel))
            put(f"conv{i}.channels", l.out_channels)
            put(f"conv{i}.pool", first.stride == 2 if first is not None else l.name in pooled)
            put(f"conv{i}.weight_bits", l.weight_bits)
            put(f"conv{i}.act_bits", first.act_bits if first is not None else l.act_bits)
        for j, l in enumerate(dense[:-1]):
            put(f"fc{j}.features", l.out_features)
            put(f"fc{j}.weight_bits", l.weight_bits)
            put(f"fc{j}.act_bits", l.act_bits)
        put(f"{CLASSIFIER}.weight_bits", dense[-1].weight_bits)
        put("template", hw.template)
        if hw.template == "tiled":
            assert hw.engine is not None
            for key in ("tm", "tn", "tr", "tc"):
                put(f"engine.{key}", getattr(hw.engine, key))
        else:
            slots = [f"conv{i}" for i in range(len(convs))] + [f"fc{j}" for j in range(len(dense) - 1)] + [CLASSIFIER]
            legal = legal_folds(net)
            # a separable block's depthwise conv shares its pointwise conv's slot: a level must give both folds
            dw_of = {net.layers[i].name: net.layers[i - 1].name for i in range(1, len(net.layers))
                     if net.layers[i].name in after_dw}
            shares = {m: [first.name] + [s for s in add_of[m].inputs[1:] if s in proj] for m, first in first_of.items()}
            for slot, layer in zip(slots, convs + dense):
                names = [layer.name] + ([dw_of[layer.name]] if layer.name in dw_of else []) + shares.get(layer.name, [])
                want = {n: hw.fold(n) for n in names}
                f = want[layer.name]
                put(f"{slot}.pe", f.pe, lambda c, v, ns=names, want=want: all(
                    level_to_divisor(c, legal[n][0]) == want[n].pe for n in ns))
                put(f"{slot}.simd", f.simd, lambda c, v, ns=names, want=want: all(
                    level_to_divisor(c, legal[n][1]) == want[n].simd for n in ns))
                put(f"{slot}.weight_memory", f.weight_memory)
                put(f"{slot}.mac", f.mac)
        decoded = self.decode(tokens)
        same_hw = (decoded.hardware.engine == hw.engine if hw.template == "tiled" else
                   all(decoded.hardware.fold(l.name) == hw.fold(l.name) for l in net.compute_layers))
        if decoded.network != net or not same_hw:
            raise CodesignError("this design is not expressible in the space (layer order, padding, pooling, "
                                "names or engine ports differ from what the space generates)")
        return self.canonical(tokens)

    # ------------------------------------------------------------ size
    def count(self) -> int:
        """Number of distinct token assignments over active decisions (designs, up to parallelism
        levels that coincide on small layers)."""
        d = {dec.name: dec.size for dec in self.decisions}
        ctx = self.context

        def convs(i: int, n_conv: int, size: int) -> int:
            if i == n_conv:
                return 1
            ways = d[f"conv{i}.kernel"] * d[f"conv{i}.channels"] * d[f"conv{i}.weight_bits"] * d[f"conv{i}.act_bits"]
            ways *= d.get(f"conv{i}.block", 1)
            if size < 2:  # no pool decision on a 1-pixel map
                return ways * convs(i + 1, n_conv, size)
            return ways * sum(convs(i + 1, n_conv, size // 2 if p else size) for p in self.pool.values)

        total = 0
        for n_conv, n_dense in product(self.conv_blocks.values, self.dense_layers.values):
            nn = convs(0, n_conv, min(ctx.height, ctx.width)) * d[f"{CLASSIFIER}.weight_bits"]
            nn *= d.get("head", 1) if n_conv else 1
            for j in range(n_dense):
                nn *= d[f"fc{j}.features"] * d[f"fc{j}.weight_bits"] * d[f"fc{j}.act_bits"]
            hw = 0
            for template in self.templates.values:
                if template == "tiled":
                    hw += d["engine.tm"] * d["engine.tn"] * d["engine.tr"] * d["engine.tc"]
                else:
                    per = self.pe.values, self.simd.values, self.weight_memory.values, self.mac.values
                    hw += math.prod(len(v) for v in per) ** (n_conv + n_dense + 1)
            total += nn * hw
        return total

    # ------------------------------------------------------------ YAML
    def to_dict(self) -> dict[str, Any]:
        extra = {k: getattr(self, k).to_yaml() for k, default in (("block", ("conv",)), ("head", ("flatten",)))
                 if getattr(self, k).values != default}  # written only where a space offers more
        return {
            "network": {"conv_blocks": self.conv_blocks.to_yaml(), "dense_layers": self.dense_layers.to_yaml(),
                        "kernel": self.kernel.to_yaml(), "channels": self.channels.to_yaml(),
                        "pool": self.pool.to_yaml(), "dense_features": self.dense_features.to_yaml(),
                        "weight_bits": self.weight_bits.to_yaml(), "act_bits": self.act_bits.to_yaml(),
                        **extra, "input_bits": self.input_bits},
            "hardware": {"templates": self.templates.to_yaml(), "pe": self.pe.to_yaml(), "simd": self.simd.to_yaml(),
                         "weight_memory": self.weight_memory.to_yaml(), "mac": self.mac.to_yaml(),
                         "engine": {"tm": self.tm.to_yaml(), "tn": self.tn.to_yaml(), "tr": self.tr.to_yaml(),
                                    "tc": self.tc.to_yaml()}},
        }

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None, width=120)

    def describe(self) -> list[str]:
        """One line per YAML field: what the space holds, with rule-generated choices expanded."""
        out = []
        for name in ("conv_blocks", "dense_layers", "kernel", "channels", "pool", "dense_features", "weight_bits",
                     "act_bits", "block", "head", "templates", "pe", "simd", "weight_memory", "mac", "tm", "tn", "tr", "tc"):
            spec: ChoiceSpec = getattr(self, name)
            rule = f" (rule: {_rule_text(spec.rule)})" if spec.rule else ""
            if spec.per_slot:
                chosen = "; ".join(f"{slot} {', '.join(map(str, counts))}" for slot, counts in spec.per_slot)
                out.append(f"{name}: {chosen}{rule}")
            elif spec.rule and spec.rule["rule"] == "htas":
                out.append(f"{name}: no position in this space{rule}")
            else:
                out.append(f"{name}: {', '.join(map(str, spec.values))}{rule}")
        return out


def _rule_text(rule: dict[str, Any]) -> str:
    return f"{rule['rule']} " + ", ".join(f"{k}={v}" for k, v in rule.items() if k != "rule")


def _resolved(space: SearchSpace) -> SearchSpace:
    """The space with its htas fields measured for its context, unless their saved choices were
    measured for this board and dataset frame already (a run folder's space.yaml)."""
    from codesign.search import htas

    changes = {}
    for name in ("channels", "dense_features"):
        spec: ChoiceSpec = getattr(space, name)
        if not spec.rule or spec.rule["rule"] != "htas":
            continue
        key, slots = htas.context_key(space), htas.slots_of(space, name)
        if spec.resolved_for == key and [s for s, _ in spec.per_slot] == slots:
            continue
        per_slot = tuple((c.slot, c.chosen) for c in htas.choices(space, name))
        values = tuple(sorted({v for _, counts in per_slot for v in counts}))
        changes[name] = ChoiceSpec(values, spec.rule, per_slot, key)
    return replace(space, **changes) if changes else space


def _decisions(space: SearchSpace) -> list[Decision]:
    out = [Decision("conv_blocks", "nn", space.conv_blocks.values),
           Decision("dense_layers", "nn", space.dense_layers.values)]
    for i in range(space.max_conv):
        if space.block.values != ("conv",):
            out.append(Decision(f"conv{i}.block", "nn", space.block.values))
        out += [Decision(f"conv{i}.kernel", "nn", space.kernel.values),
                Decision(f"conv{i}.channels", "nn", space.channels.at(f"conv{i}")),
                Decision(f"conv{i}.pool", "nn", space.pool.values),
                Decision(f"conv{i}.weight_bits", "nn", space.weight_bits.values),
                Decision(f"conv{i}.act_bits", "nn", space.act_bits.values)]
    for j in range(space.max_dense):
        out += [Decision(f"fc{j}.features", "nn", space.dense_features.at(f"fc{j}")),
                Decision(f"fc{j}.weight_bits", "nn", space.weight_bits.values),
                Decision(f"fc{j}.act_bits", "nn", space.act_bits.values)]
    if space.head.values != ("flatten",):
        out.append(Decision("head", "nn", space.head.values))
    out.append(Decision(f"{CLASSIFIER}.weight_bits", "nn", space.weight_bits.values))
    out.append(Decision("template", "hw", space.templates.values))
    for slot in space.slots():
        out += [Decision(f"{slot}.pe", "hw", space.pe.values), Decision(f"{slot}.simd", "hw", space.simd.values),
                Decision(f"{slot}.weight_memory", "hw", space.weight_memory.values),
                Decision(f"{slot}.mac", "hw", space.mac.values)]
    out += [Decision(f"engine.{k}", "hw", getattr(space, k).values) for k in ("tm", "tn", "tr", "tc")]
    return out


# ---------------------------------------------------------------- loading and validation

_NET_KEYS = ("conv_blocks", "dense_layers", "kernel", "channels", "pool", "dense_features", "weight_bits",
             "act_bits", "block", "head", "input_bits")
_HW_KEYS = ("templates", "pe", "simd", "weight_memory", "mac", "engine")
_ENGINE_KEYS = ("tm", "tn", "tr", "tc")
_RULE_KEYS = {"divisors": ("rule", "min", "max", "max_odd_factor", "min_divisors"),
              "htas": ("rule", "min", "max", "e", "g", "alpha", "resolved")}
_SLOT = re.compile(r"(conv|fc)[0-9]+")


class _Fields:
    """Validates the YAML fields of a space, one CodesignError line per problem."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, where: str, message: str) -> CodesignError:
        return CodesignError(f"{where}: {message}", source=self.source)

    def mapping(self, value: Any, where: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected a mapping, got {type(value).__name__}")
        for key in value:
            if key not in allowed:
                raise self.fail(f"{where}.{key}", f"unknown field; allowed: {', '.join(allowed)}")
        return value

    def ints(self, data: dict[str, Any], key: str, where: str, lo: int, hi: int,
             allow_rule: bool = False) -> ChoiceSpec:
        value = data.get(key)
        where = f"{where}.{key}"
        if value is None:
            raise self.fail(where, "missing (required)")
        if isinstance(value, dict):
            if not allow_rule:
                raise self.fail(where, f"expected a list of integers in {lo}..{hi}")
            return self.rule(value, where, lo, hi)
        values = self.list(value, where)
        for v in values:
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise self.fail(where, f"{v!r} is not allowed; allowed: integers in {lo}..{hi}")
        return ChoiceSpec(tuple(values))

    def list(self, value: Any, where: str) -> list[Any]:
        if value is None:
            raise self.fail(where, "missing (required)")
        if not isinstance(value, list) or not value:
            raise self.fail(where, "expected a non-empty list of choices")
        if len(set(map(repr, value))) != len(value):
            raise self.fail(where, "a choice is listed twice; every choice must be distinct")
        return value

    def rule(self, value: dict[str, Any], where: str, lo: int, hi: int) -> ChoiceSpec:
        name = value.get("rule")
        if name not in _RULE_KEYS:
            raise self.fail(f"{where}.rule", f"{name!r} is not allowed; allowed: {', '.join(_RULE_KEYS)}")
        self.mapping(value, where, _RULE_KEYS[name])
        defaults = {"max_odd_factor": 3, "min_divisors": 1} if name == "divisors" else {"e": 2, "g": 8}
        nums = {}
        for key, default in (("min", None), ("max", None), *defaults.items()):
            v = value.get(key, default)
            if v is None:
                raise self.fail(f"{where}.{key}", f"missing (required by rule {name})")
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise self.fail(f"{where}.{key}", f"expected a positive integer, got {v!r}")
            nums[key] = v
        if not lo <= nums["min"] <= nums["max"] <= hi:
            raise self.fail(where, f"min..max must lie within {lo}..{hi} with min <= max")
        if name == "htas":
            return self.htas(value, where, nums)
        values = divisor_counts(nums["min"], nums["max"], nums["max_odd_factor"], nums["min_divisors"])
        if not values:
            raise self.fail(where, "the divisors rule selects no count in min..max; relax max_odd_factor or min_divisors")
        return ChoiceSpec(tuple(values), rule={"rule": "divisors", **nums})

    def htas(self, value: dict[str, Any], where: str, nums: dict[str, int]) -> ChoiceSpec:
        """The htas rule's fields; its choices are measured once the space has its context (_resolved)."""
        from codesign.search.htas import MAX_MEASURED

        if nums["e"] * nums["max"] > MAX_MEASURED:
            raise self.fail(where, f"htas measures every count 1..e*max; e*max = {nums['e'] * nums['max']} is above "
                            f"{MAX_MEASURED} (lower max or e, or use rule: divisors or a list)")
        rule: dict[str, Any] = {"rule": "htas", **nums}
        alpha = value.get("alpha")
        if alpha is not None:
            if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha <= 10:
                raise self.fail(f"{where}.alpha", f"{alpha!r} is not allowed; allowed: a number in (0, 10] "
                                "(leave it out to fit it)")
            rule["alpha"] = float(alpha)
        per_slot, key = self.resolved(value.get("resolved"), f"{where}.resolved", nums["min"], nums["max"])
        values = tuple(sorted({v for _, counts in per_slot for v in counts}))
        return ChoiceSpec(values, rule=rule, per_slot=per_slot, resolved_for=key)

    def resolved(self, value: Any, where: str, lo: int, hi: int
                 ) -> tuple[tuple[tuple[str, tuple[int, ...]], ...], tuple[Any, ...] | None]:
        """The choices a resolved space file saved (codesign space --out, a run's space.yaml)."""
        if value is None:
            return (), None
        if not isinstance(value, dict):
            raise self.fail(where, f"expected a mapping (board, input, conv0 ...), got {type(value).__name__}")
        board, frame = value.get("board"), value.get("input")
        if not isinstance(board, str) or not board:
            raise self.fail(f"{where}.board", "expected the board name the choices were measured on")
        if (not isinstance(frame, list) or len(frame) != 4
                or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in frame)):
            raise self.fail(f"{where}.input", "expected [channels, height, width, classes], positive integers")
        per_slot = []
        for slot, counts in value.items():
            if slot in ("board", "input"):
                continue
            if not isinstance(slot, str) or not _SLOT.fullmatch(slot):
                raise self.fail(f"{where}.{slot}", "unknown field; allowed: board, input and positions conv0.., fc0..")
            for v in self.list(counts, f"{where}.{slot}"):
                if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                    raise self.fail(f"{where}.{slot}", f"{v!r} is not allowed; allowed: integers in {lo}..{hi}")
            per_slot.append((slot, tuple(counts)))
        return tuple(per_slot), (board, *frame)

    def names(self, data: dict[str, Any], key: str, where: str, allowed: tuple[str, ...]) -> ChoiceSpec:
        values = self.list(data.get(key), f"{where}.{key}")
        for v in values:
            if v not in allowed:
                raise self.fail(f"{where}.{key}", f"{v!r} is not allowed; allowed: {', '.join(allowed)}")
        return ChoiceSpec(tuple(values))

    def levels(self, data: dict[str, Any], key: str, where: str) -> ChoiceSpec:
        values = self.list(data.get(key), f"{where}.{key}")
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
                raise self.fail(f"{where}.{key}", f"{v!r} is not allowed; allowed: parallelism levels in 0..1 "
                                "(0 = PE/SIMD 1, 1 = fully parallel)")
        return ChoiceSpec(tuple(float(v) for v in values))

    def bools(self, data: dict[str, Any], key: str, where: str) -> ChoiceSpec:
        values = self.list(data.get(key), f"{where}.{key}")
        for v in values:
            if not isinstance(v, bool):
                raise self.fail(f"{where}.{key}", f"{v!r} is not allowed; allowed: true, false")
        return ChoiceSpec(tuple(values))


def _merged(data: Any, defaults: dict[str, Any]) -> Any:
    """User data over the default space: a field left out keeps the default's choices."""
    if not isinstance(data, dict):
        return data
    out = {**defaults, **data}
    for section in ("network", "hardware"):
        if isinstance(data.get(section), dict):
            out[section] = {**defaults.get(section, {}), **data[section]}
    hw, base = out.get("hardware"), defaults.get("hardware", {})
    if isinstance(hw, dict) and isinstance(hw.get("engine"), dict) and "engine" in base:
        hw["engine"] = {**base["engine"], **hw["engine"]}
    return out


def space_from_dict(data: Any, source: str = "<space>", context: Context | None = None,
                    defaults: bool = True) -> SearchSpace:
    """Validate plain data (as parsed from YAML) into a SearchSpace, or raise one CodesignError line.
    With `defaults`, fields left out take the default space's choices."""
    f = _Fields(source)
    f.mapping(data, "top level", ("network", "hardware"))
    if defaults:
        data = _merged(data, load_yaml_file(DEFAULT_SPACE))
    top = f.mapping(data, "top level", ("network", "hardware"))
    net = f.mapping(top.get("network"), "network", _NET_KEYS)
    hw = f.mapping(top.get("hardware"), "hardware", _HW_KEYS)
    eng = f.mapping(hw.get("engine"), "hardware.engine", _ENGINE_KEYS)
    bits = net.get("input_bits", 8)
    if isinstance(bits, bool) or not isinstance(bits, int) or not MIN_BITS <= bits <= MAX_BITS:
        raise f.fail("network.input_bits", f"{bits!r} is not allowed; allowed: {MIN_BITS}..{MAX_BITS}")
    space = SearchSpace(
        conv_blocks=f.ints(net, "conv_blocks", "network", 0, MAX_CONV_BLOCKS),
        dense_layers=f.ints(net, "dense_layers", "network", 0, MAX_DENSE_LAYERS),
        kernel=f.ints(net, "kernel", "network", 1, 11),
        channels=f.ints(net, "channels", "network", 1, 4096, allow_rule=True),
        pool=f.bools(net, "pool", "network"),
        dense_features=f.ints(net, "dense_features", "network", 1, 65536, allow_rule=True),
        weight_bits=f.ints(net, "weight_bits", "network", MIN_BITS, MAX_BITS),
        act_bits=f.ints(net, "act_bits", "network", MIN_BITS, MAX_BITS),
        templates=f.names(hw, "templates", "hardware", TEMPLATES),
        pe=f.levels(hw, "pe", "hardware"),
        simd=f.levels(hw, "simd", "hardware"),
        weight_memory=f.names(hw, "weight_memory", "hardware", MEMORY_STYLES),
        mac=f.names(hw, "mac", "hardware", MAC_STYLES),
        tm=f.ints(eng, "tm", "hardware.engine", 1, 1024),
        tn=f.ints(eng, "tn", "hardware.engine", 1, 1024),
        tr=f.ints(eng, "tr", "hardware.engine", 1, 4096),
        tc=f.ints(eng, "tc", "hardware.engine", 1, 4096),
        block=f.names(net, "block", "network", BLOCKS) if "block" in net else ChoiceSpec(("conv",)),
        head=f.names(net, "head", "network", HEADS) if "head" in net else ChoiceSpec(("flatten",)),
        input_bits=bits, context=context or Context(1, 8, 8, 10), source=source)
    if "residual" in space.block.values:
        if "tiled" in space.templates.values:
            raise f.fail("hardware.templates", "tiled is not allowed with network.block residual: the tiled engine "
                         "runs a chain of layers; allowed: [dataflow]")
        even = [k for k in space.kernel.values if k % 2 == 0]
        if even:
            raise f.fail("network.kernel", f"{even[0]} is not allowed with network.block residual: a residual block "
                         "keeps its map size, which needs an odd kernel; allowed: odd kernels such as 1, 3, 5")
    return _resolved(space)


def load_space(path: str | Path | None = None, context: Context | None = None) -> SearchSpace:
    """Load a space YAML (the default space when path is None), bound to a dataset/board context.
    Fields a user's file leaves out keep the default space's choices."""
    path = Path(path) if path is not None else DEFAULT_SPACE
    return space_from_dict(load_yaml_file(path), source=str(path), context=context,
                           defaults=path.resolve() != DEFAULT_SPACE.resolve())


def save_space(space: SearchSpace, path: str | Path) -> None:
    atomic_write_text(path, space.to_yaml())


__all__ = ["Context", "Decision", "SearchSpace", "divisor_counts", "level_to_divisor", "load_space",
           "save_space", "space_from_dict"]
