"""`codesign boards`: the boards the tool knows, with their resources."""

from __future__ import annotations

import argparse
import json

from hw_space.boards import BOARD_NAME_RULE, all_boards

NAME = "boards"
HELP = "list the known FPGA boards and their resources"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print a JSON object keyed by board name")


def run(args: argparse.Namespace) -> int:
    boards = all_boards()
    if args.json:
        print(json.dumps({name: b.to_dict() for name, b in boards.items()}, indent=2))
        return 0
    print(f"{'board':<10}{'part':<22}{'LUT':>9}{'FF':>9}{'BRAM18':>8}{'URAM':>6}{'DSP':>7}{'MHz':>6}{'AXI':>5}")
    for name, b in boards.items():
        print(f"{name:<10}{b.part:<22}{b.LUT:>9,}{b.FF:>9,}{b.BRAM18:>8,}{b.URAM:>6}{b.DSP:>7,}"
              f"{b.clock_mhz:>6g}{b.axi_width:>5}")
    print(f"add a board: write a YAML file with these fields and a name ({BOARD_NAME_RULE}; not a built-in "
          "board's name) and pass its path to --board")
    return 0
