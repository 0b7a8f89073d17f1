"""`codesign emit`: QONNX model -> synthesizable HLS C++ project with test vectors and reference outputs."""

from __future__ import annotations

import argparse
import json
import re
import sys

from codesign.cli_args import check_max_util, check_target_fps, finite_float
from hw_space.boards import load_board
from hw_space.errors import CodesignError
from hw_space.files import check_output_folder

_TOP = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,47}")  # the backend's C identifier rule, checked whole

NAME = "emit"
HELP = "lower a QONNX model to an integer dataflow accelerator and write its HLS C++ project"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--qonnx", required=True, help="QONNX model (e.g. model.onnx from codesign train)")
    parser.add_argument("--out", required=True, help="project folder to write (replaced atomically)")
    parser.add_argument("--design", help="design YAML whose network matches the model; its folding is used")
    parser.add_argument("--board", help="board name or board YAML; without --design the folding optimizer "
                        "chooses PE/SIMD for it")
    parser.add_argument("--target-fps", type=finite_float, help="without --design: cheapest folding reaching this FPS")
    parser.add_argument("--max-util", type=finite_float, default=0.85,
                        help="without --design: largest usable fraction of every resource (default 0.85)")
    parser.add_argument("--test-data", help="test_data.npz from codesign train (x, y, logits); "
                        "default: seeded random inputs")
    parser.add_argument("--samples", type=int, help="test vectors to write (default: all test data, or 100 random)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
    parser.add_argument("--top", default="codesign_top", help="name of the top function (default codesign_top)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def run(args: argparse.Namespace) -> int:
    from codesign.backend.emit import emit

    if args.design is None and args.board is None:
        raise CodesignError("give --design (a design YAML with the folding) or --board (the folding optimizer "
                            "chooses one)")
    check_max_util(args.max_util)
    check_target_fps(args.target_fps)
    if not _TOP.fullmatch(args.top) or "__" in args.top:
        raise CodesignError(f"--top: {args.top!r} is not allowed; allowed: a C identifier (letters, digits, single _, "
                            "starting with a letter, at most 48 characters)")
    if args.samples is not None and args.samples < 1:
        raise CodesignError(f"--samples: {args.samples} is not allowed; allowed: 1 or more")
    check_output_folder(args.out, replace=True)  # before any slow work: the project is built next to --out
    # a board file is loaded here and passed on by name, so design.yaml and manifest.json never hold its path
    board = load_board(args.board).name if args.board is not None else None
    result = emit(args.qonnx, args.out, design=args.design, board=board, test_data=args.test_data,
                  samples=args.samples, seed=args.seed, top=args.top, target_fps=args.target_fps,
                  max_util=args.max_util)
    folds = {name: {"pe": f.pe, "simd": f.simd} for name, f in result.design.hardware.layers.items()}
    summary = {"out": str(result.out_dir), "top": result.top, "board": result.design.hardware.board,
               "folded_by": result.folded_by, "folding": folds, "samples": result.samples,
               "test_data": result.test_data, "files": len(result.files), "seconds": result.seconds}
    how = {"design": "the design's folding", "fold": "folding chosen by hw_space.folding",
           "unfolded": "PE = SIMD = 1"}[result.folded_by]
    fold_text = ", ".join(f"{n} PE {f['pe']} SIMD {f['simd']}" for n, f in folds.items()) or "every layer PE 1 SIMD 1"
    engine = result.design.hardware.engine
    if result.design.hardware.template == "tiled" and engine is not None:
        summary["template"], summary["engine"] = "tiled", {"tm": engine.tm, "tn": engine.tn, "tr": engine.tr,
                                                            "tc": engine.tc}
        how, fold_text = "one tiled engine", f"Tm {engine.tm}, Tn {engine.tn}, Tr {engine.tr}, Tc {engine.tc}"
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"wrote {result.out_dir}: top {result.top} on {summary['board']} with {how} ({fold_text}); "
          f"{result.samples} test vectors from {result.test_data}; {len(result.files)} files in {result.seconds:.1f}s",
          file=sys.stderr)
    print(f"next: codesign verify {result.out_dir}", file=sys.stderr)
    return 0
