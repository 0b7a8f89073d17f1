"""Argument helpers shared by several subcommands (not a subcommand itself)."""

from __future__ import annotations

import argparse

from hw_space.boards import Board, load_board
from hw_space.design import Design
from hw_space.errors import CodesignError


def add_board_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--board", help="board name (see `codesign boards`) or a board YAML path; "
                        "default: the design's hardware.board")
    parser.add_argument("--max-util", type=float, default=0.85,
                        help="largest usable fraction of every resource (default 0.85)")


def resolve_board(args: argparse.Namespace, design: Design) -> tuple[Design, Board]:
    """The board named on the command line (recorded in the design) or the design's own."""
    if not 0 < args.max_util <= 1:
        raise CodesignError(f"--max-util: {args.max_util} is not allowed; allowed: a fraction in (0, 1]")
    if args.board:
        board = load_board(args.board)
        design = design.with_hardware(board=args.board)
    else:
        board = load_board(design.hardware.board)
    return design, board
