"""What a search pays before its first candidate, against the way it used to pay it.

    python benchmarks/search_start.py [--repeat 3]

Two costs of every `codesign search` process (and of every training worker for the second):
* the reward's default target (codesign.search.evaluator.default_target): the median FPS of 500 random
  designs of the default space on zc706, scored as 50 random networks x 10 hardware settings (one
  vectorized cost-model call per network) against 500 networks scored one design at a time
  (per_network=1, the former way);
* loading digits (quant.data): sklearn's bundled CSV read and split in our code against importing
  scikit-learn for load_digits + train_test_split (run in a fresh interpreter each, as a process pays it).
Both run in this process or its children on this machine; the ratios are what matter.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from codesign.search.evaluator import default_target
from codesign.search.objectives import FPS
from codesign.search.space import Context, load_space
from hw_space.boards import load_board

# both children first import what any training process imports (torch, quant), then time the load
LOAD_OURS = ("import time, torch, quant.data; t = time.perf_counter(); quant.data.load_dataset('digits'); "
             "print(time.perf_counter() - t)")
LOAD_SKLEARN = ("import time, torch, quant.data; t = time.perf_counter(); from sklearn.datasets import load_digits; "
                "from sklearn.model_selection import train_test_split; b = load_digits(); "
                "train_test_split(b.images, b.target, test_size=0.2, stratify=b.target, random_state=0); "
                "print(time.perf_counter() - t)")


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def _child(code: str) -> float:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return float(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    space = load_space(None, Context(1, 8, 8, 10, board="zc706"))
    board = load_board("zc706")
    grouped = _best(lambda: default_target(space, board, 0.85, FPS, seed=0), args.repeat)
    single = _best(lambda: default_target(space, board, 0.85, FPS, seed=0, per_network=1), args.repeat)
    print(f"default target, 500 designs: one design per call {single:.2f} s, 10 per network {grouped:.2f} s "
          f"-> {single / grouped:.1f}x")
    ours = min(_child(LOAD_OURS) for _ in range(args.repeat))
    theirs = min(_child(LOAD_SKLEARN) for _ in range(args.repeat))
    print(f"digits in a fresh process: via scikit-learn {theirs:.2f} s, CSV + own split {ours:.3f} s "
          f"-> {theirs / ours:.0f}x")


if __name__ == "__main__":
    main()
