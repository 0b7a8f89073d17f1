"""The reinforcement-learning strategy: a GRU policy trained with REINFORCE (controller.py) driven in
the Codesign-NAS modes (strategy.py). The controller, and torch with it, is imported on first use."""

from codesign.search.strategies.rl.strategy import RL_MODES, RLStrategy

__all__ = ["RL_MODES", "RLStrategy"]
