"""The `codesign` command: discovers the subcommands in codesign.commands and runs one.

Bad input (a CodesignError) prints one line and exits 2; Ctrl-C exits 130 without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

import codesign.commands as _commands
from codesign import __version__
from hw_space.errors import CodesignError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's default is fine; keep exit code 2 explicit
        self.print_usage(sys.stderr)
        self.exit(2, f"codesign: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="codesign", description="FPGA hardware / neural-network co-design.")
    parser.add_argument("--version", action="version", version=f"codesign {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for info in sorted(pkgutil.iter_modules(_commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"codesign.commands.{info.name}")
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except CodesignError as exc:
        print(f"codesign: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("codesign: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
