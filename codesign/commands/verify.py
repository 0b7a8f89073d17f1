"""`codesign verify`: C-simulate an emitted HLS project with g++ and compare bit for bit with the reference.

Exit codes: 0 bit-exact, 1 not bit-exact (outputs differ or a stream protocol error), 2 bad input (not
a project folder, bad --samples), 3 could not build or run (no g++ or ap_types, a compile error, a
crashed or timed-out testbench). With --json, stdout always gets one JSON object: the verdict, or
{"error": ..., "exit_code": N, ...} when there is none.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from hw_space.errors import CodesignError

NAME = "verify"
HELP = "C-simulate an emitted HLS project (g++ + ap_types) and check it bit for bit against the reference"

EXIT_BIT_EXACT, EXIT_MISMATCH, EXIT_BAD_INPUT, EXIT_NOT_RUN = 0, 1, 2, 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("project", help="project folder written by codesign emit")
    parser.add_argument("--samples", type=int, help="simulate only the first N test vectors (default: all)")
    parser.add_argument("--json", action="store_true", help="print the verdict (or the error) as one JSON object")


def run(args: argparse.Namespace) -> int:
    from codesign.backend.csim import CsimError, verify

    try:
        result = verify(args.project, samples=args.samples)
    except CsimError as exc:
        print(f"codesign: error: {exc.report()}", file=sys.stderr)
        return _no_verdict(args, exc, EXIT_NOT_RUN, diagnostics=[str(d) for d in exc.diagnostics])
    except CodesignError as exc:
        if not args.json:
            raise  # the CLI prints it and exits 2
        print(f"codesign: error: {exc}", file=sys.stderr)
        return _no_verdict(args, exc, EXIT_BAD_INPUT)
    except (OSError, UnicodeDecodeError) as exc:  # an unreadable or unwritable project: bad input
        where = getattr(exc, "filename", None) or args.project
        error = CodesignError(f"{getattr(exc, 'strerror', None) or exc}", source=str(where))
        print(f"codesign: error: {error}", file=sys.stderr)
        return _no_verdict(args, error, EXIT_BAD_INPUT)
    for warning in result.warnings:
        print(f"codesign: warning: {warning}", file=sys.stderr)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        _print_verdict(result)
    return EXIT_BIT_EXACT if result.bit_exact else EXIT_MISMATCH


def _no_verdict(args: argparse.Namespace, exc: Exception, code: int, **extra: Any) -> int:
    """With --json, the error as the one JSON object on stdout; returns the exit code."""
    if args.json:
        print(json.dumps({"error": str(exc), "exit_code": code, "project": str(args.project), **extra}, indent=2))
    return code


def _print_verdict(result: Any) -> None:
    """The verdict in one line, then its problems indented."""
    agree = "n/a (no Brevitas logits)" if result.argmax_agreement is None else f"{result.argmax_agreement:.2%}"
    verdict = "yes" if result.bit_exact else "NO"
    compile_text = "cached binary" if result.cached_binary else f"compile {result.compile_seconds:.1f}s"
    print(f"bit-exact: {verdict} ({result.samples} samples from {result.test_data}, {result.mismatches} "
          f"mismatching); argmax agreement with Brevitas: {agree}; {compile_text}, run {result.run_seconds:.2f}s")
    for problem in result.problems:
        print(f"  {problem}")
