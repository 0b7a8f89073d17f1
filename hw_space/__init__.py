"""The design point, the boards and the analytical cycle/resource model. Imports no torch."""

from hw_space.boards import Board, all_boards, load_board
from hw_space.design import (
                             Design,
                             Engine,
                             Hardware,
                             InputSpec,
                             Layer,
                             LayerFold,
                             Network,
                             design_from_dict,
                             load_design,
                             save_design,
)
from hw_space.errors import CodesignError

__all__ = ["Board", "CodesignError", "Design", "Engine", "Hardware", "InputSpec", "Layer", "LayerFold",
           "Network", "all_boards", "design_from_dict", "load_board", "load_design", "save_design"]
