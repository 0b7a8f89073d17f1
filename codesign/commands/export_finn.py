"""`codesign export-finn`: a QONNX model and its design -> the files FINN's build_dataflow takes."""

from __future__ import annotations

import argparse
import json
import sys

from hw_space.boards import load_board
from hw_space.design import load_design
from hw_space.files import check_output_folder

NAME = "export-finn"
HELP = "write a QONNX model and its design as a FINN build (model, folding config, build configs, README)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--qonnx", required=True, help="QONNX model (e.g. model.onnx from codesign train)")
    parser.add_argument("--design", required=True, help="design YAML whose network matches the model; its folding is used")
    parser.add_argument("--out", required=True, help="folder to write (model.onnx, folding_config.json, "
                        "dataflow_build_config*.json, README.md)")
    parser.add_argument("--board", help="board name or board YAML (default: the design's board)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def run(args: argparse.Namespace) -> int:
    from codesign.backend.finn_export import export_finn

    check_output_folder(args.out)
    design = load_design(args.design)
    board = load_board(args.board or design.hardware.board)
    if args.board:
        design = design.with_hardware(board=board.name)
    summary = export_finn(args.qonnx, design, board, args.out)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    names = ", ".join(f"{k} ({v})" for k, v in summary["nodes"].items())
    print(f"wrote {summary['out_dir']}: {', '.join(summary['files'])}", file=sys.stderr)
    print(f"FINN nodes: {names}", file=sys.stderr)
    print(f"next (where FINN is installed): cd {summary['out_dir']} && finn build dataflow_build_config_estimates.json model.onnx",
          file=sys.stderr)
    return 0
