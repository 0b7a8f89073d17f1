"""`codesign space`: resolve a search space on a board and show what its htas rules chose.

The htas rule (codesign.search.htas) picks each position's channel / feature counts from the cost
model's cycles on the board; this prints, per position, what was measured, the fitted curve and
each group's chosen count with its cycles and score, and with --out writes the resolved space
(the choices included) for `codesign search --space`.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from codesign.search.space import SearchSpace

NAME = "space"
HELP = "resolve the search space on a board: the htas channel choices per position, with their scores"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--board", required=True, help="board name (see `codesign boards`) or a board YAML file")
    parser.add_argument("--space", help="search space YAML (default: codesign/data/default_space.yaml)")
    parser.add_argument("--dataset", default="digits",
                        help="the dataset whose frame and classes the space is for: digits (default), mnist, "
                             "fashion-mnist or cifar10")
    parser.add_argument("--out", help="write the resolved space here (YAML; the htas choices included)")


def _number(v: float) -> str:
    return "-" if v == float("-inf") or v == float("inf") else f"{v:,.0f}"


def table(space: SearchSpace) -> list[str]:
    """Per htas field and position: what was measured, the fit, and each group's pick."""
    from codesign.search import htas

    lines = []
    for field in ("channels", "dense_features"):
        spec = getattr(space, field)
        if not spec.rule or spec.rule["rule"] != "htas":
            continue
        rule = spec.rule
        lines.append(f"{field}: rule htas, min {rule['min']}, max {rule['max']}, e {rule['e']}, g {rule['g']}"
                     + (f", alpha {rule['alpha']:g}" if "alpha" in rule else ", alpha fitted"))
        found = htas.choices(space, field)
        if not found:
            lines.append("  (no position: the space has no conv block / hidden dense layer)")
        for c in found:
            lines.append(f"  {c.reference}")
            if c.fit is None:
                lines.append("  fewer than 3 counts fit the share: no fit; score = -m(x)")
            else:
                lines.append(f"  fit over x = 1..{len(c.counts)}: m(x) ~ {c.fit.k:.4g} * x^{c.fit.alpha:.3f} "
                             f"{'+' if c.fit.b >= 0 else '-'} {abs(c.fit.b):.4g} cycles")
            lines.append(f"  {'group':>9} {'count':>6} {'m(x)':>9} {'f(x)':>9} {'score':>8}")
            for (first, last), x in zip(c.groups, c.chosen):
                m = float(c.measured[x - 1])
                f = float(c.fit(x)) if c.fit is not None else float("nan")
                fit_text = "-" if c.fit is None else f"{f:,.0f}"
                lines.append(f"  {f'{first}-{last}':>9} {x:>6} {_number(m):>9} {fit_text:>9} {_number(c.score(x)):>8}")
            kept = spec.at(c.slot)
            if tuple(kept) != c.chosen:  # a resolved file's saved choices win over a new measurement
                lines.append(f"  note: the space file keeps its saved choices for {c.slot}: {', '.join(map(str, kept))}")
    return lines


def run(args: argparse.Namespace) -> int:
    from codesign.search.space import Context, load_space, save_space
    from hw_space.boards import load_board
    from hw_space.files import check_output_file
    from quant.data import dataset_info

    board = load_board(args.board)
    info = dataset_info(args.dataset)
    if args.out:
        check_output_file(args.out)
    context = Context(info.shape.channels, info.shape.height, info.shape.width, info.num_classes, board=board.name)
    space = load_space(args.space, context)
    print(f"search space {space.source} on {board.name}, dataset {info.name} "
          f"({info.shape.channels}x{info.shape.height}x{info.shape.width}, {info.num_classes} classes)")
    print("m(x): cycles estimated by the cost model (hw_space), not measured on a board; "
          "score = f(x) - m(x), higher = faster than the fit")
    lines = table(space)
    print("\n".join(lines) if lines else "no htas rule in this space")
    print("choices: " + " | ".join(line for line in space.describe() if line.startswith(("channels", "dense_features"))))
    if args.out:
        save_space(space, args.out)
        print(f"wrote {args.out}")
    return 0
