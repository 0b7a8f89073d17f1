"""REINFORCE controller(s) over the search space in the Codesign-NAS modes (combined, separate, phase)."""

from __future__ import annotations

from typing import Any

from codesign.search.space import SearchSpace
from codesign.search.strategies._base import BaseStrategy
from hw_space.errors import CodesignError

RL_MODES = ("combined", "phase", "separate")


def kind_of(decision: str) -> str:
    """The kind of choice a decision makes, whatever its layer: 'conv1.pe' -> 'pe', 'conv_blocks' stays."""
    return decision.rsplit(".", 1)[-1]


def group_ids(kinds: list[str]) -> list[int]:
    """One id per kind, in order of first appearance."""
    ids: dict[str, int] = {}
    return [ids.setdefault(k, len(ids)) for k in kinds]


class RLStrategy(BaseStrategy):
    """REINFORCE controller(s) over the space (Codesign-NAS modes): `combined` - one policy samples
    network and hardware decisions together (hardware conditioned on the network); `separate` -
    a network policy and a hardware policy sample their halves, both learn from the one reward;
    `phase` - the two policies take turns: a network phase samples the network with the hardware
    held at the best candidate's, a hardware phase the other way round.

    `hw_variants` k: every newly sampled network is followed by k proposals that keep it and sample
    only the hardware from the policy. They cost no training (the network is trained once, then
    cached), so at a budget of trainings they give the hardware decisions k more rewards per training,
    rewards that differ by the hardware alone; a variant teaches only the hardware decisions (the
    network ones were not sampled).

    `shared_heads`: decisions of one kind at different layers (every PE level, every weight width,
    ...) share one output head and one embedding of the policy (the GRU state still tells the layers
    apart), so a choice that pays at one layer is tried at the others."""

    name = "rl"
    multi_objective = False  # REINFORCE learns from one number: the reward (codesign.search.objectives.use_objectives)

    def __init__(self, space: SearchSpace, seed: int = 0, mode: str = "combined", phase_length: int = 8,
                 hw_variants: int = 0, shared_heads: bool = False, **controller_options: Any):
        from codesign.search.strategies.rl.controller import Controller

        if mode not in RL_MODES:
            raise CodesignError(f"rl mode {mode!r} is not allowed; allowed: {', '.join(RL_MODES)}")
        self.space = space
        self.mode = mode
        self.phase_length = phase_length
        self.hw_variants = max(0, int(hw_variants))
        self.variant: tuple[list[int], int] | None = None  # (network to vary, variants still to ask)
        sizes = space.sizes()
        if mode == "combined":
            self.parts = {"all": list(range(len(sizes)))}
        else:
            self.parts = {"nn": space.nn_positions, "hw": space.hw_positions}
        self.shared_heads = bool(shared_heads)
        kinds = [kind_of(d.name) for d in space.decisions] if self.shared_heads else None
        self.controllers = {name: Controller([sizes[i] for i in pos], seed=seed + 1000 * k,
                                             groups=None if kinds is None else group_ids([kinds[i] for i in pos]),
                                             **controller_options)
                            for k, (name, pos) in enumerate(self.parts.items())}
        self.best: tuple[float, list[int]] | None = None
        self.asked = 0
        self.phases: list[str] = []  # phase of each ask not yet told, in order

    def _merge(self, base: list[int], part: str, values: list[int]) -> list[int]:
        out = list(base)
        for i, v in zip(self.parts[part], values):
            out[i] = int(v)
        return out

    def phase(self) -> str:
        """'both' until a best candidate exists, then alternating 'nn' and 'hw' phases (phase mode)."""
        if self.mode != "phase":
            return "both"
        if self.best is None:
            return "both"
        return ("nn", "hw")[(self.asked // self.phase_length) % 2]

    def ask(self) -> list[int]:
        if self.variant is not None:
            base, left = self.variant
            self.variant = (base, left - 1) if left > 1 else None
            self.phases.append("hw")
            self.asked += 1
            return self.resample_hardware(base, 1)[0]
        phase = self.phase()
        if self.mode == "combined":
            tokens = self.controllers["all"].sample(1)[0]
        else:
            base = self.best[1] if self.best is not None else [0] * len(self.space.sizes())
            tokens = list(base)
            for part in ("nn", "hw"):
                if phase in ("both", part):
                    tokens = self._merge(tokens, part, self.controllers[part].sample(1)[0])
        self.phases.append(phase)
        self.asked += 1
        if self.hw_variants and phase != "hw":
            self.variant = (list(tokens), self.hw_variants)
        return tokens

    def resample_hardware(self, tokens: list[int], n: int) -> list[list[int]]:
        if self.mode == "combined":
            hw = set(self.space.hw_positions)
            forced = [[None if i in hw else t for i, t in enumerate(tokens)]] * n
            return self.controllers["all"].sample(n, forced=forced)
        return [self._merge(tokens, "hw", values) for values in self.controllers["hw"].sample(n)]

    def tell(self, tokens: list[int], reward: float, objectives: dict[str, float] | None = None) -> None:
        phase = self.phases.pop(0) if self.phases else "both"
        mask = self.space.active(tokens)
        if phase == "hw" and self.mode == "combined":  # a hardware variant: the network was not sampled
            hw = set(self.space.hw_positions)
            mask = [m and i in hw for i, m in enumerate(mask)]
        for part, pos in self.parts.items():
            if part == "all" or phase in ("both", part):
                self.controllers[part].tell([tokens[i] for i in pos], reward, [mask[i] for i in pos])
        if self.best is None or reward > self.best[0]:
            self.best = (float(reward), list(tokens))

    def state_dict(self) -> dict[str, Any]:
        return {"controllers": {k: c.state_dict() for k, c in self.controllers.items()}, "best": self.best,
                "asked": self.asked, "phases": list(self.phases), "mode": self.mode,
                "variant": None if self.variant is None else [list(self.variant[0]), self.variant[1]]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("mode") != self.mode:
            raise CodesignError(f"the saved controller ran in rl mode {state.get('mode')!r}, not {self.mode!r}; "
                                "resume with the same --rl-mode")
        for k, c in self.controllers.items():
            c.load_state_dict(state["controllers"][k])
        self.best = state["best"]
        self.asked = state["asked"]
        self.phases = list(state["phases"])
        v = state.get("variant")
        self.variant = None if v is None else (list(v[0]), int(v[1]))


__all__ = ["RL_MODES", "RLStrategy"]
