"""`codesign estimate`: per-layer cycles, FPS, latency, resources and feasibility of a design."""

from __future__ import annotations

import argparse
import json

from codesign.cli_args import add_board_arguments, resolve_board
from hw_space.calibration import statement
from hw_space.design import load_design
from hw_space.estimate import estimate, format_estimate

NAME = "estimate"
HELP = "estimate cycles, FPS, latency and resources of a design (analytical model)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("design", help="design YAML file")
    add_board_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the estimate as JSON")
    parser.add_argument("--simulate", action=argparse.BooleanOptionalAction, default=True,
                        help="dataflow: size the FIFOs and take the II and latency from the cycle-level simulation "
                             "(default; --no-simulate: the analytical model alone, FIFOs at depth 2)")


def run(args: argparse.Namespace) -> int:
    design, board = resolve_board(args, load_design(args.design))
    est = estimate(design, board, max_util=args.max_util, simulate=args.simulate)
    if args.json:  # with what the resource figures are calibrated against (format_estimate: one line)
        print(json.dumps({**est.to_dict(), "calibration": statement(est.template)}, indent=2))
    else:
        print(format_estimate(est))
    return 0
