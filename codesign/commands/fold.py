"""`codesign fold`: the fastest folding that fits the board, or the cheapest meeting a target FPS."""

from __future__ import annotations

import argparse
import sys

from codesign.cli_args import add_board_arguments, check_target_fps, finite_float, resolve_board
from hw_space.design import load_design, save_design
from hw_space.estimate import estimate, format_estimate
from hw_space.files import check_output_file
from hw_space.folding import fold

NAME = "fold"
HELP = "choose per-layer PE/SIMD (or tiled engine) that fits the board"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("design", help="design YAML file")
    add_board_arguments(parser)
    parser.add_argument("--target-fps", type=finite_float, help="cheapest folding reaching this FPS (default: fastest that fits)")
    parser.add_argument("--out", help="write the folded design YAML here (default: print it)")


def run(args: argparse.Namespace) -> int:
    check_target_fps(args.target_fps)
    if args.out:
        check_output_file(args.out)
    design, board = resolve_board(args, load_design(args.design))
    before = estimate(design, board, max_util=args.max_util)
    folded = fold(design, board, target_fps=args.target_fps, max_util=args.max_util)
    after = estimate(folded, board, max_util=args.max_util)
    print(format_estimate(after), file=sys.stderr)
    print(f"folded: {before.fps:,.1f} -> {after.fps:,.1f} FPS ({after.fps / before.fps:.1f}x) on {board.name}",
          file=sys.stderr)
    if args.out:
        save_design(folded, args.out)
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        print(folded.to_yaml(), end="")
    return 0
