"""`codesign simulate`: cycle-level simulation of a dataflow design's stream schedule; FIFO depths."""

from __future__ import annotations

import argparse
import json

from codesign.cli_args import add_board_arguments, resolve_board
from hw_space.design import load_design
from hw_space.errors import CodesignError
from hw_space.simulate import DEFAULT_FRAMES, design_chain, format_simulation, simulate_chain, size_chain

NAME = "simulate"
HELP = "simulate the stream schedule cycle by cycle: simulated II, latency and FIFO depths"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("design", help="design YAML file (dataflow template)")
    add_board_arguments(parser)
    parser.add_argument("--frames", type=int, default=DEFAULT_FRAMES,
                        help=f"frames to simulate back to back (default {DEFAULT_FRAMES}; the II is the interval "
                             "of the last two)")
    parser.add_argument("--depth", type=int,
                        help="simulate every FIFO at this depth instead of sizing the FIFOs")
    parser.add_argument("--no-shrink", action="store_true",
                        help="keep the depths of the paced run (skip shrinking the FIFOs by bisection)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    if args.frames < 2:
        raise CodesignError(f"--frames: {args.frames} is not allowed; allowed: 2 or more")
    if args.depth is not None and args.depth < 1:
        raise CodesignError(f"--depth: {args.depth} is not allowed; allowed: 1 or more words")
    design, board = resolve_board(args, load_design(args.design))
    chain = design_chain(design, board)
    if args.depth is not None:
        res = simulate_chain(chain, [args.depth] * len(chain.fifo_names), args.frames)
        how = f"every FIFO {args.depth} deep"
    else:
        res = size_chain(chain, args.frames, shrink=not args.no_shrink)
        how = "FIFO depths sized by simulation"
    if args.json:
        print(json.dumps({"design": args.design, "board": board.name, **res.to_dict()}, indent=2))
    else:
        print(format_simulation(res, f"{args.design} on {board.name}: {how} (cycle-level simulation, "
                                     "every pipelined loop at II=1)"))
    return 0
