"""QAT speed on digits: training images per second for a small and a medium network, and their ratio.

Usage: python benchmarks/train_speed.py [--epochs 3] [--threads 2]   (well under 2 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from hw_space.design import Network, design_from_dict, load_design

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def medium_network() -> Network:
    """The digits skeleton at twice the width plus a third conv: about 10x the small network's MACs."""
    return design_from_dict({"network": {
        "input": {"channels": 1, "height": 8, "width": 8, "bits": 8},
        "layers": [
            {"type": "conv", "out_channels": 32, "kernel": 3, "padding": 1, "weight_bits": 4, "act_bits": 4},
            {"type": "conv", "out_channels": 32, "kernel": 3, "padding": 1, "weight_bits": 4, "act_bits": 4},
            {"type": "maxpool", "kernel": 2},
            {"type": "conv", "out_channels": 64, "kernel": 3, "padding": 1, "weight_bits": 4, "act_bits": 4},
            {"type": "maxpool", "kernel": 2},
            {"type": "dense", "out_features": 128, "weight_bits": 4, "act_bits": 4},
            {"type": "dense", "out_features": 10, "weight_bits": 4}]}}).network


def macs(network: Network) -> int:
    """Multiply-accumulates per frame (conv: K*K*Cin*Cout*Hout*Wout; dense: in*out)."""
    total = 0
    for layer, (shape_in, shape_out) in zip(network.layers, network.shapes()):
        if layer.type == "conv":
            total += layer.kernel ** 2 * shape_in.channels * shape_out.size
        elif layer.type == "dense":
            total += shape_in.size * layer.out_features
    return total


def measure(network: Network, epochs: int, threads: int) -> dict:
    """Train for `epochs` (after one warm-up epoch) and return images/s of the training loop as the search runs it."""
    from quant.data import load_dataset
    from quant.train import Budget, train

    data = load_dataset("digits")
    train(network, data, Budget(epochs=1, threads=threads))  # warm-up: allocator, oneDNN kernels
    marks: list[float] = []
    start = time.perf_counter()
    result = train(network, data, Budget(epochs=epochs, threads=threads),
                   progress=lambda e, loss, val: marks.append(time.perf_counter()))
    epoch_seconds = (marks[-1] - start) / len(marks)
    return {"images_per_s": len(data.y_train) / epoch_seconds, "epoch_s": epoch_seconds,
            "total_s": result.train_seconds, "accuracy": result.accuracy}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    nets = {"small (digits_w4a4)": load_design(EXAMPLES / "digits_w4a4.yaml").network, "medium": medium_network()}
    rows = {}
    print(f"QAT on digits (1437 training images), {args.epochs} epochs, {args.threads} thread(s)")
    print(f"{'network':<22}{'kMAC/img':>10}{'images/s':>11}{'s/epoch':>9}{'accuracy':>10}")
    for name, net in nets.items():
        r = measure(net, args.epochs, args.threads)
        rows[name] = r
        print(f"{name:<22}{macs(net) / 1e3:>10.1f}{r['images_per_s']:>11.0f}{r['epoch_s']:>9.3f}"
              f"{r['accuracy']:>10.4f}", flush=True)
    small, medium = rows.values()
    ratio_speed = medium["images_per_s"] / small["images_per_s"]
    ratio_macs = macs(nets["medium"]) / macs(nets["small (digits_w4a4)"])
    print(f"ratio medium/small: images/s {ratio_speed:.3f}, MACs {ratio_macs:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
