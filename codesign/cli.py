"""The `codesign` command: discovers the subcommands in codesign.commands and runs one.

Bad input (a CodesignError, a bad option, an unusable file or folder) prints one line and exits 2;
Ctrl-C exits 130 without a traceback. Every float option of every subcommand takes finite numbers only
(no nan, inf) and every int option integers that fit in 64 bits.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

import codesign.commands as _commands
from codesign import __version__
from codesign.cli_args import finite_float, int64
from hw_space.errors import CodesignError
from hw_space.files import os_error_line


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:
        """One line (what is wrong, and where the usage is), exit code 2."""
        message = " ".join(str(message).split())
        self.exit(2, f"codesign: error: {message} (see {self.prog} --help)\n")


def _checked_numbers(parser: argparse.ArgumentParser) -> None:
    """Every `type=float` option takes finite numbers only, every `type=int` one 64-bit integers."""
    for action in parser._actions:  # argparse keeps its actions here; there is no public accessor
        if action.type is float:
            action.type = finite_float
        elif action.type is int:
            action.type = int64


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="codesign", description="FPGA hardware / neural-network co-design.")
    parser.add_argument("--version", action="version", version=f"codesign {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for info in sorted(pkgutil.iter_modules(_commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"codesign.commands.{info.name}")
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        _checked_numbers(p)
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
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
    except OSError as exc:  # a file or folder the command could not read or write (commands check most up front)
        print(f"codesign: error: {os_error_line(exc)}", file=sys.stderr)
        return 2
    except UnicodeDecodeError as exc:  # a text file that is not UTF-8 (YAML files are checked when loaded)
        print(f"codesign: error: an input file is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset "
              f"{exc.start}); allowed: UTF-8 text files", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("codesign: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
