"""The strategies share one ask/tell interface, restore exactly from their state, and the RL
controller learns (a cheap synthetic objective: the fraction of decisions equal to a target)."""

import numpy as np
import pytest

from codesign.search.space import Context, load_space, space_from_dict
from codesign.search.strategies import EvolutionStrategy, RLStrategy, make_strategy
from codesign.search.strategies.rl.controller import Controller

SPACE = load_space()
SMALL = space_from_dict({
    "network": {"conv_blocks": [1, 2], "dense_layers": [0, 1], "kernel": [1, 3], "channels": [8, 16, 32],
                "dense_features": [16, 32], "weight_bits": [1, 2, 4, 8], "act_bits": [1, 2, 4, 8]},
    "hardware": {"pe": [0.0, 0.5, 1.0], "simd": [0.0, 0.5, 1.0], "weight_memory": ["auto", "lutram", "bram"]}},
    context=Context(1, 8, 8, 10))
KINDS = [("random", {}), ("evolution", {"population": 6}), ("rl", {"rl_mode": "combined"}),
         ("rl", {"rl_mode": "phase"}), ("rl", {"rl_mode": "separate"}),
         ("rl", {"rl_mode": "combined", "hw_variants": 2})]


def toy_reward(space, target):
    def reward(tokens):
        return float(np.mean([a == b for a, b in zip(tokens, target)]))
    return reward


def drive(strategy, reward, steps):
    out = []
    for _ in range(steps):
        tokens = strategy.ask()
        r = reward(tokens)
        strategy.tell(tokens, r, {"accuracy": r, "fps": 1000.0 * (1 + sum(tokens))})
        out.append(r)
    return out


@pytest.mark.parametrize("name, options", KINDS)
def test_shared_interface(name, options):
    s = make_strategy(name, SPACE, seed=1, **options)
    sizes = SPACE.sizes()
    for _ in range(12):
        tokens = s.ask()
        assert len(tokens) == len(sizes) and all(0 <= t < n for t, n in zip(tokens, sizes))
        alts = s.resample_hardware(tokens, 4)
        assert len(alts) == 4
        for alt in alts:  # only hardware decisions change
            assert [alt[i] for i in SPACE.nn_positions] == [tokens[i] for i in SPACE.nn_positions]
        s.tell(tokens, 0.5, {"accuracy": 0.5, "fps": 1e4})
    assert isinstance(s.state_dict(), dict)


@pytest.mark.parametrize("name, options", KINDS)
def test_state_restores_the_same_future(name, options):
    reward = toy_reward(SPACE, [0] * len(SPACE.sizes()))
    a = make_strategy(name, SPACE, seed=7, **options)
    drive(a, reward, 10)
    state = a.state_dict()
    b = make_strategy(name, SPACE, seed=99, **options)  # another seed: everything must come from the state
    b.load_state_dict(state)
    assert drive(a, reward, 10) == drive(b, reward, 10)
    assert a.ask() == b.ask()


@pytest.mark.parametrize("name, options", KINDS)
def test_same_seed_same_run(name, options):
    reward = toy_reward(SPACE, [1] * len(SPACE.sizes()))
    runs = []
    for _ in range(2):
        s = make_strategy(name, SPACE, seed=3, **options)
        runs.append([s.ask() for _ in range(3)] + [drive(s, reward, 8)])
    assert runs[0] == runs[1]
    other = make_strategy(name, SPACE, seed=4, **options)
    assert [other.ask() for _ in range(3)] != runs[0][:3]


@pytest.mark.parametrize("mode", ["combined", pytest.param("phase", marks=pytest.mark.slow),
                                  pytest.param("separate", marks=pytest.mark.slow)])
def test_rl_learns_a_toy_objective(mode):
    rng = np.random.default_rng(0)
    # the target uses the deepest network, so every decision is active at the optimum
    target = [int(rng.integers(n)) for n in SMALL.sizes()]
    target[0], target[1] = 1, 1
    reward = toy_reward(SMALL, target)
    s = RLStrategy(SMALL, seed=0, mode=mode)
    rewards = drive(s, reward, 300)
    first, last = np.mean(rewards[:50]), np.mean(rewards[-50:])
    assert last > first + 0.15, (mode, first, last)
    rnd = make_strategy("random", SMALL, seed=0)
    assert last > np.mean(drive(rnd, reward, 100)) + 0.15


def test_rl_modes_update_the_right_policies():
    s = RLStrategy(SMALL, seed=0, mode="phase", phase_length=4)
    assert s.phase() == "both"
    tokens = s.ask()
    s.tell(tokens, 1.0)
    phases = []
    for _ in range(8):
        phases.append(s.phase())
        t = s.ask()
        held = SMALL.hw_positions if phases[-1] == "nn" else SMALL.nn_positions
        assert [t[i] for i in held] == [s.best[1][i] for i in held]  # the other half held at the best
        s.tell(t, 0.0)
    assert phases == ["nn"] * 3 + ["hw"] * 4 + ["nn"]
    assert set(RLStrategy(SMALL, mode="separate").controllers) == {"nn", "hw"}
    assert set(RLStrategy(SMALL, mode="combined").controllers) == {"all"}


@pytest.mark.parametrize("mode", ["combined", "separate"])
def test_rl_hardware_variants_keep_the_network_and_teach_only_the_hardware(mode):
    s = RLStrategy(SMALL, seed=0, mode=mode, hw_variants=2, batch=100)
    nn = SMALL.nn_positions
    first = s.ask()
    variants = [s.ask(), s.ask()]
    assert all([v[i] for i in nn] == [first[i] for i in nn] for v in variants)
    assert any(v != first for v in variants)  # the hardware is sampled again
    fresh = s.ask()  # after k variants: a newly sampled network and its variants
    assert s.phases == ["both", "hw", "hw", "both"] and s.variant == (fresh, 2)
    s.tell(first, 0.5)
    s.tell(variants[0], 0.7)
    if mode == "combined":  # the variant's network decisions were forced: masked out of its update
        mask = s.controllers["all"].pending[-1][2]
        assert not any(mask[i] for i in nn) and any(mask)
        assert any(s.controllers["all"].pending[0][2][i] for i in nn)
    else:  # only the hardware policy learns from a variant
        assert len(s.controllers["nn"].pending) == 1 and len(s.controllers["hw"].pending) == 2


def test_rl_shared_heads_one_head_per_kind_of_decision():
    s = RLStrategy(SMALL, seed=0, mode="combined", shared_heads=True)
    kinds = {d.name.rsplit(".", 1)[-1] for d in SMALL.decisions}
    policy = s.controllers["all"].policy
    assert len(policy.heads) == len(kinds) < len(SMALL.decisions)
    # every PE level of every layer is read from the one PE head
    pe = [i for i, d in enumerate(SMALL.decisions) if d.name.endswith(".pe")]
    assert len({policy.groups[i] for i in pe}) == 1 and len(pe) > 1
    with pytest.raises(ValueError, match="different numbers of choices"):
        Controller([3, 4], groups=[0, 0])


@pytest.mark.slow
def test_rl_shared_heads_learn_a_toy_objective():
    s = RLStrategy(SMALL, seed=0, mode="combined", shared_heads=True)
    rng = np.random.default_rng(0)
    target = [int(rng.integers(n)) for n in SMALL.sizes()]
    target[0], target[1] = 1, 1
    rewards = drive(s, toy_reward(SMALL, target), 300)
    assert np.mean(rewards[-50:]) > np.mean(rewards[:50]) + 0.15


def test_controller_batches_and_masks():
    c = Controller([3, 4, 5], seed=0, batch=2)
    before = [p.detach().clone() for p in c.policy.parameters()]
    c.tell([0, 1, 2], 1.0)
    assert c.updates == 0 and all((a == b).all() for a, b in zip(before, c.policy.parameters()))
    c.tell([1, 1, 1], 0.0)
    assert c.updates == 1 and c.baseline is not None
    # a masked-out decision gets no gradient from the reward: its head does not move without entropy
    c = Controller([3, 3], seed=0, batch=1, entropy=0.0)
    head = c.policy.heads[1].weight.detach().clone()
    c.tell([0, 0], 1.0, [True, False])
    c.tell([1, 2], 0.0, [True, False])
    assert (c.policy.heads[1].weight == head).all()


def test_evolution_never_repeats_a_design_and_breeds_after_the_population():
    s = EvolutionStrategy(SMALL, seed=0, population=6)
    reward = toy_reward(SMALL, [0] * len(SMALL.sizes()))
    seen = set()
    for _ in range(40):
        t = s.ask()
        key = tuple(SMALL.canonical(t))
        assert key not in seen
        seen.add(key)
        r = reward(t)
        s.tell(t, r, {"accuracy": r, "fps": 1e3})
    assert len(s.archive) == 40


def test_unknown_strategy_and_mode():
    from hw_space.errors import CodesignError

    with pytest.raises(CodesignError, match="allowed"):
        make_strategy("annealing", SPACE)
    with pytest.raises(CodesignError, match="allowed"):
        make_strategy("rl", SPACE, rl_mode="joint")
