"""Argument helpers shared by several subcommands (not a subcommand itself)."""

from __future__ import annotations

import argparse
import math

from hw_space.boards import Board, load_board
from hw_space.design import Design
from hw_space.errors import CodesignError
from hw_space.files import INT64_MAX, INT64_MIN


def finite_float(text: str) -> float:
    """argparse type of every float option: a finite number (nan and inf are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; allowed: a finite number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed; allowed: a finite number")
    return value


def int64(text: str) -> int:
    """argparse type of every int option: an integer that fits in 64 bits."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not an integer; allowed: an integer") from None
    if not INT64_MIN <= value <= INT64_MAX:
        shown = text if len(text) <= 24 else f"{text[:20]}...({len(text)} digits)"
        raise argparse.ArgumentTypeError(f"{shown} is out of range; allowed: integers that fit in 64 bits")
    return value


def add_board_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--board", help="board name (see `codesign boards`) or a board YAML path; "
                        "default: the design's hardware.board")
    parser.add_argument("--max-util", type=finite_float, default=0.85,
                        help="largest usable fraction of every resource (default 0.85)")


def check_max_util(value: float) -> None:
    if not (math.isfinite(value) and 0 < value <= 1):
        raise CodesignError(f"--max-util: {value} is not allowed; allowed: a fraction in (0, 1]")


def check_target_fps(value: float | None) -> None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise CodesignError(f"--target-fps: {value} is not allowed; allowed: a positive finite number of frames "
                            "per second")


def resolve_board(args: argparse.Namespace, design: Design) -> tuple[Design, Board]:
    """The board named on the command line (recorded in the design by name) or the design's own."""
    check_max_util(args.max_util)
    if args.board:
        board = load_board(args.board)
        design = design.with_hardware(board=board.name)
    else:
        board = load_board(design.hardware.board)
    return design, board
