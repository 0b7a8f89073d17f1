"""Quality of `fold` against the baselines: FPS of fold vs greedy_fold (FINN SetFolding-style walk)
vs PE = SIMD = 1, and the time fold takes.

    python benchmarks/fold_quality.py

Networks: FINN's CNV-w1a1 (examples/cnv_w1a1.yaml with its folding removed), the digits W4A4
CNN (examples/digits_w4a4.yaml) and a W4A4 CIFAR-10-sized CNN defined below; boards pynq-z2 and
zc706. All figures are the analytical model's estimates.
"""

from __future__ import annotations

import time
from pathlib import Path

from hw_space.boards import load_board
from hw_space.design import Design, Hardware, InputSpec, Layer, Network, load_design
from hw_space.errors import CodesignError
from hw_space.estimate import estimate
from hw_space.folding import fold, greedy_fold

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
BOARDS = ("pynq-z2", "zc706")


def cifar_w4a4() -> Design:
    """A VGG-style W4A4 CNN for 3x32x32 inputs: 6 same-padded 3x3 convs, 3 pools, 2 dense."""
    def conv(name: str, c: int) -> Layer:
        return Layer(name, "conv", out_channels=c, kernel=3, padding=1, weight_bits=4, act_bits=4)

    net = Network(InputSpec(3, 32, 32, 8), (
        conv("conv0", 32), conv("conv1", 32), Layer("pool0", "maxpool", kernel=2, stride=2),
        conv("conv2", 64), conv("conv3", 64), Layer("pool1", "maxpool", kernel=2, stride=2),
        conv("conv4", 128), conv("conv5", 128), Layer("pool2", "maxpool", kernel=2, stride=2),
        Layer("fc0", "dense", out_features=256, weight_bits=4, act_bits=4),
        Layer("fc1", "dense", out_features=10, weight_bits=4),
    ))
    return Design(net, Hardware())


def networks() -> dict[str, Design]:
    return {
        "cnv_w1a1": load_design(EXAMPLES / "cnv_w1a1.yaml").with_hardware(layers={}),
        "digits_w4a4": load_design(EXAMPLES / "digits_w4a4.yaml").with_hardware(layers={}),
        "cifar_w4a4": cifar_w4a4(),
    }


def util(est) -> str:
    return " ".join(f"{k} {est.utilization[k]:4.0%}" for k in ("LUT", "BRAM18", "DSP"))


def main() -> None:
    any_unfit = False
    print(f"{'network':<12}{'board':<9}{'PE=SIMD=1':>11}{'greedy':>11}{'fold':>11}"
          f"{'fold/greedy':>12}{'fold/unfolded':>14}{'fold s':>8}{'greedy s':>9}  fold utilization")
    for name, design in networks().items():
        for board_name in BOARDS:
            board = load_board(board_name)
            base = estimate(design, board)
            t0 = time.perf_counter()
            try:
                greedy = estimate(greedy_fold(design, board), board)
            except CodesignError:
                greedy = None
            t_greedy = time.perf_counter() - t0
            t0 = time.perf_counter()
            try:
                folded = estimate(fold(design, board), board)
            except CodesignError as exc:
                print(f"{name:<12}{board_name:<9} fold failed: {exc}")
                continue
            t_fold = time.perf_counter() - t0
            assert folded.feasible, folded.violations
            g_fps = greedy.fps if greedy else float("nan")
            base_note = "" if base.feasible else "*"
            any_unfit |= not base.feasible
            print(f"{name:<12}{board_name:<9}{base.fps:>10,.0f}{base_note or ' '}{g_fps:>11,.0f}{folded.fps:>11,.0f}"
                  f"{folded.fps / g_fps:>11.2f}x{folded.fps / base.fps:>13.1f}x{t_fold:>8.2f}{t_greedy:>9.2f}"
                  f"  {util(folded)}")
    if any_unfit:
        print("* PE = SIMD = 1 does not fit the board (shown for reference)")
    print("fold s includes the greedy_fold run that fold makes internally as a safety net")


if __name__ == "__main__":
    main()
