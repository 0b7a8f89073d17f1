"""FINN's own estimators against our hardware kinds, one stage at a time, on hand-picked shapes.

Runs inside the FINN reference environment (finn-plus 1.6.1, see scripts/finn_reference.sh and
benchmarks/finn_crosscheck.py) with this repository importable:

    PYTHONPATH=. .finn-venv/bin/python benchmarks/finn_kinds_crosscheck.py [--json FILE]

Each row instantiates one of FINN's HLS custom ops directly from its node attributes (no graph, no
weights: every estimator used reads attributes only) and asks it for get_exp_cycles, lut_estimation,
bram_estimation and dsp_estimation; ours is the matching kind of hw_space.layers scored through its
uniform interface (stage_cycles, stage_resources) on the same shape, folding and bits. The kinds:
* VVAU (depthwise conv) against FINN's VVAU_hls (mem_mode internal_decoupled, ram_style auto);
* AddStreams against ElementwiseAdd_hls: finn-plus 1.6.1 has no AddStreams op any more (its
  elementwise_binary.py replaced it; ElementwiseAdd has the same get_exp_cycles, and its resource
  estimates count only the memory of a constant operand, so LUT/BRAM are 0 for two streams). Ours adds
  the threshold requantization of the sum, which FINN leaves to a separate Thresholding node;
* DuplicateStreams against DuplicateStreams_hls (no resource estimate in FINN: 0);
* the average pool against Pool_hls with Function QuantAvgPool, the global average pool against
  GlobalAccPool_hls, the max-pool against Pool_hls with Function MaxPool (FINN's Pool_Batch reads an
  im2col window stream; our max-pool is two streaming passes: rows, then columns). FINN's pools have
  no resource estimates (0);
* skip-path FIFOs (depth x width) against FINN's model of its fifo.sv (resource_models._fifo_cost).
All figures are estimates of both tools, not synthesis results.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from hw_space.layers import (  # noqa: E402
    MAC_DSP,
    MAC_LUT,
    VVAU,
    AddStreams,
    AvgPool,
    DuplicateStreams,
    FoldArrays,
    GlobalAvgPool,
    MaxPool,
    MaxPoolRows,
)

PART = "xc7z020clg400-1"  # Pynq-Z1 (FINN's estimators ignore the part for these kinds)


def setup_finn() -> None:
    """FINN's dummy settings (finn-plus needs them before its custom ops import)."""
    os.environ.setdefault("XILINX_VIVADO", "/nonexistent/vivado")
    warnings.filterwarnings("ignore")
    from finn.util import settings

    settings.initialize_dummy_settings()


def finn_op(op_type: str, n_inputs: int = 1, n_outputs: int = 1, **attrs):
    """One of FINN's HLS custom ops, from its node attributes alone."""
    from onnx import helper
    from qonnx.custom_op.registry import getCustomOp

    node = helper.make_node(op_type, [f"in{i}" for i in range(n_inputs)], [f"out{i}" for i in range(n_outputs)],
                            domain="finn.custom_op.fpgadataflow.hls", name=f"{op_type}_0", **attrs)
    return getCustomOp(node)


def finn_figures(op) -> dict[str, int]:
    return {"cycles": int(op.get_exp_cycles()), "LUT": int(op.lut_estimation(PART)),
            "BRAM18": int(op.bram_estimation(PART)), "DSP": int(op.dsp_estimation(PART))}


def our_figures(kind, **columns) -> dict[str, int]:
    a = FoldArrays.blank(1, 64, **{k: np.array([v]) for k, v in columns.items()})
    a = kind.resolve(a)
    r = kind.stage_resources(a)
    return {"cycles": int(np.asarray(kind.stage_cycles(a)).reshape(-1)[0]), "LUT": int(r.LUT[0]),
            "BRAM18": int(r.BRAM18[0]), "DSP": int(r.DSP[0])}


def _u(bits: int) -> str:
    return f"UINT{bits}"


# ---------------------------------------------------------------- the cases

def vvau_rows() -> list[dict]:
    """Depthwise 3x3 convs, auto memory: (C, H=W, PE, SIMD, bits, multipliers); W4A4 on LUTs, one W8A8 on DSPs."""
    rows = []
    for c, dim, pe, simd, b, mac in ((16, 8, 1, 1, 4, "lut"), (16, 8, 4, 3, 4, "lut"), (16, 8, 16, 9, 4, "lut"),
                                     (64, 16, 8, 9, 4, "lut"), (256, 8, 2, 1, 4, "lut"), (32, 8, 4, 9, 8, "dsp")):
        op = finn_op("VVAU_hls", n_inputs=2, PE=pe, SIMD=simd, Dim=[dim, dim], Channels=c, Kernel=[3, 3],
                     resType=mac, inputDataType=_u(b), weightDataType=f"INT{b}", outputDataType=_u(b),
                     ActVal=0, noActivation=0, mem_mode="internal_decoupled", ram_style="auto")
        ours = our_figures(VVAU("dw", c, 9, dim * dim), pe=pe, simd=simd, wbits=b, abits=b, in_bits=b,
                           mac=MAC_LUT if mac == "lut" else MAC_DSP)
        rows.append({"kind": "vvau", "config": f"C={c} {dim}x{dim} K=3 PE={pe} SIMD={simd} W{b}A{b} {mac}",
                     "ours": ours, "finn": finn_figures(op)})
    return rows


def add_rows() -> list[dict]:
    """Two C x H x W streams of 4-bit codes, (C, H=W, PE); ours requantizes the 5-bit sum to 4 bits."""
    rows = []
    for c, dim, pe in ((16, 8, 1), (16, 8, 4), (32, 4, 32), (64, 16, 8)):
        shape = [1, dim, dim, c]
        op = finn_op("ElementwiseAdd_hls", n_inputs=2, lhs_dtype=_u(4), rhs_dtype=_u(4), out_dtype=_u(5),
                     lhs_shape=shape, rhs_shape=shape, out_shape=shape, PE=pe)
        ours = our_figures(AddStreams("add", c, dim * dim), pe=pe, in_bits=4, abits=4, in_elems=pe)
        rows.append({"kind": "add", "config": f"C={c} {dim}x{dim} PE={pe} 4-bit", "ours": ours, "finn": finn_figures(op)})
    return rows


def dup_rows() -> list[dict]:
    """A C x H x W stream of 4-bit codes in words of PE, copied to two outputs."""
    rows = []
    for c, dim, pe in ((16, 8, 1), (16, 8, 4), (64, 16, 8)):
        op = finn_op("DuplicateStreams_hls", n_outputs=2, NumChannels=c, PE=pe, NumOutputStreams=2,
                     inputDataType=_u(4), numInputVectors=[1, dim, dim])
        ours = our_figures(DuplicateStreams("dup", c * dim * dim, 2), in_elems=pe, in_bits=4)
        rows.append({"kind": "dup", "config": f"C={c} {dim}x{dim} PE={pe} 4-bit x2", "ours": ours, "finn": finn_figures(op)})
    return rows


def pool_rows() -> list[dict]:
    """Average pools (2x2 windows, global) and a 2x2 max-pool of 4-bit codes, (C, H=W, PE)."""
    rows = []
    for c, dim, pe in ((16, 8, 1), (16, 8, 4), (32, 4, 32)):
        od = dim // 2
        op = finn_op("Pool_hls", Channels=c, PE=pe, KernelSize=[2, 2], Function="QuantAvgPool", OutImgDims=[od, od],
                     InputDataType=_u(4), OutputDataType=_u(4), AccumBits=6, Size=4, BatchSize=1)
        ours = our_figures(AvgPool("ap", c, 4, od * od), pe=pe, in_bits=4, abits=4)
        rows.append({"kind": "avgpool", "config": f"C={c} {dim}x{dim} K=2 PE={pe} 4-bit", "ours": ours,
                     "finn": finn_figures(op)})
        op = finn_op("GlobalAccPool_hls", NumChannels=c, PE=pe, inputDataType=_u(4), numInputVectors=[1, dim, dim])
        ours = our_figures(GlobalAvgPool("gap", c, dim * dim), pe=pe, in_bits=4, abits=4)
        rows.append({"kind": "gpool", "config": f"C={c} {dim}x{dim} PE={pe} 4-bit", "ours": ours,
                     "finn": finn_figures(op)})
        op = finn_op("Pool_hls", Channels=c, PE=pe, KernelSize=[2, 2], Function="MaxPool", OutImgDims=[od, od],
                     InputDataType=_u(4), OutputDataType=_u(4), BatchSize=1)
        pool = MaxPool("mp", dim, dim, c, 2, 2)
        cols = our_figures(pool, pe=pe, in_bits=4)
        rows_pass = our_figures(MaxPoolRows.of(pool), pe=pe, in_bits=4)
        ours = {**cols, "cycles": max(cols["cycles"], rows_pass["cycles"])}  # the two passes overlap: the slower
        rows.append({"kind": "maxpool", "config": f"C={c} {dim}x{dim} K=2 PE={pe} 4-bit", "ours": ours,
                     "finn": finn_figures(op)})
    return rows


def skip_fifo_rows() -> list[dict]:
    """Skip-path FIFOs (depth x width bits) against FINN's model of its fifo.sv with the 'auto' style
    (finn.util.resource_models._fifo_cost; our FIFOs are hls::stream, so this compares scale only)."""
    from finn.util.resource_models import _fifo_cost, _resolve

    from hw_space.layers import Fifo

    rows = []
    for depth, width in ((256, 4), (1024, 4), (2048, 4), (1024, 16), (4096, 32)):
        r = Fifo("skip").resources(np.array([width]), np.array([depth]))
        cost = _fifo_cost(depth, width, _resolve(depth, width, "auto"))
        uram = f", FINN {cost.uram} URAM" if cost.uram else ""  # its 'auto' picks URAM above 2,028 words
        rows.append({"kind": "fifo", "config": f"{depth} x {width} bits{uram}",
                     "ours": {"cycles": 0, "LUT": int(r.LUT[0]), "BRAM18": int(r.BRAM18[0]), "DSP": 0},
                     "finn": {"cycles": 0, "LUT": int(cost.lut), "BRAM18": int(cost.bram), "DSP": 0}})
    return rows


def format_rows(rows: list[dict]) -> str:
    head = (f"{'kind':<9}{'config':<38}{'cycles ours':>12}{'FINN':>9}{'LUT ours':>10}{'FINN':>8}"
            f"{'BRAM18 ours':>12}{'FINN':>6}{'DSP ours':>9}{'FINN':>6}")
    lines = [head, "-" * len(head)]
    for r in rows:
        o, f = r["ours"], r["finn"]
        lines.append(f"{r['kind']:<9}{r['config']:<38}{o['cycles']:>12,}{f['cycles']:>9,}{o['LUT']:>10,}{f['LUT']:>8,}"
                     f"{o['BRAM18']:>12,}{f['BRAM18']:>6,}{o['DSP']:>9,}{f['DSP']:>6,}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    try:
        setup_finn()
    except ImportError as exc:
        print(f"finn_kinds_crosscheck: FINN is not importable here ({exc}); run it with the FINN reference "
              "environment's python (benchmarks/finn_crosscheck.py says how)", file=sys.stderr)
        return 2
    rows = vvau_rows() + add_rows() + dup_rows() + pool_rows() + skip_fifo_rows()
    print(format_rows(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
