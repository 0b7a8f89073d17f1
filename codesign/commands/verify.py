"""`codesign verify`: C-simulate an emitted HLS project with g++ and compare bit for bit with the reference."""

from __future__ import annotations

import argparse
import json
import sys

NAME = "verify"
HELP = "C-simulate an emitted HLS project (g++ + ap_types) and check it bit for bit against the reference"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("project", help="project folder written by codesign emit")
    parser.add_argument("--samples", type=int, help="simulate only the first N test vectors (default: all)")
    parser.add_argument("--json", action="store_true", help="print the verdict as JSON")


def run(args: argparse.Namespace) -> int:
    from codesign.backend.csim import CsimError, verify

    try:
        result = verify(args.project, samples=args.samples)
    except CsimError as exc:
        print(f"codesign: error: {exc.report()}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        agree = "n/a (no Brevitas logits)" if result.argmax_agreement is None else f"{result.argmax_agreement:.2%}"
        verdict = "yes" if result.bit_exact else "NO"
        compile_text = "cached binary" if result.cached_binary else f"compile {result.compile_seconds:.1f}s"
        print(f"bit-exact: {verdict} ({result.samples} samples from {result.test_data}, {result.mismatches} "
              f"mismatching); argmax agreement with Brevitas: {agree}; {compile_text}, run {result.run_seconds:.2f}s")
        for problem in result.problems:
            print(f"  {problem}")
    return 0 if result.bit_exact else 1
