"""What the resource model is calibrated against: three published implementations of FINN-style
dataflow designs, and the error the model makes on each (docs/cost-model.md, "Calibration").

The published figures are MEASURED (post-synthesis / post-place utilization reported by their
authors); everything the model prints is an ESTIMATE. `errors` is recorded here so that
`codesign estimate` can state it without re-running the points; tests/test_hw_calibration.py
re-estimates the three designs (examples/calibration/*.yaml) and fails when the recorded errors
no longer match the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CALIBRATED = ("LUT", "BRAM18")  # the resource figures fitted to the points below
# what the three points cannot tell (no published figure, or not a part of those designs)
NOT_CALIBRATED = "FF, URAM, DSP, the sliding window, max-pool, FIFOs, width converters and the tiled template"


@dataclass(frozen=True)
class CalibrationPoint:
    """One published implementation: its Design (examples/calibration/<name>.yaml), the measured
    LUT and BRAM18, whether that figure includes the platform shell, and the model's relative
    error on it (estimate / published - 1, shell counted as the published figure counts it)."""

    name: str
    lut: int
    bram18: int
    with_shell: bool
    source: str
    errors: dict[str, float]


POINTS: tuple[CalibrationPoint, ...] = (
    # FINN's cybersecurity MLP tutorial (Xilinx/finn, notebooks/end2end_example/cybersecurity):
    # Vivado 2022.1 out-of-context synthesis + place and route of the dataflow IP, xc7z020, 100 MHz
    CalibrationPoint("cyber_mlp", 7234, 44, False,
                     "FINN cybersecurity MLP tutorial (Vivado 2022.1 OOC place and route, xc7z020)",
                     {"LUT": 0.050, "BRAM18": 0.000}),
    # BNN-PYNQ LFC on the Pynq-Z1 (Umuroglu et al., "FINN: A Framework for Fast, Scalable Binarized
    # Neural Network Inference", FPGA'17; Xilinx/BNN-PYNQ results table): post-place, whole block design
    CalibrationPoint("lfc_w1a1", 28360, 220, True,
                     "BNN-PYNQ LFC-W1A1 on the Pynq-Z1 (Umuroglu et al., FPGA'17; post-place, with the shell)",
                     {"LUT": 0.113, "BRAM18": -0.036}),
    CalibrationPoint("lfc_w1a2", 48981, 220, True,
                     "BNN-PYNQ LFC-W1A2 on the Pynq-Z1 (Xilinx/BNN-PYNQ; post-place, with the shell)",
                     {"LUT": -0.095, "BRAM18": -0.036}),
)

# BNN-PYNQ saw the same folding differ by ~20 % in LUT and up to 20 % in BRAM between two Vivado
# versions: the noise floor. The model is held inside it, and never under-counts BRAM by more than 10 %.
MAX_ERROR = 0.20
MAX_BRAM_UNDERCOUNT = 0.10


def error_range(resource: str) -> tuple[float, float]:
    """(lowest, highest) recorded error of one calibrated resource over the points."""
    values = [p.errors[resource] for p in POINTS]
    return min(values), max(values)


def statement(template: str) -> dict[str, Any]:
    """What the resource figures of a design on this template are calibrated against, for
    `codesign estimate` (its text line and the `calibration` key of --json)."""
    if template != "dataflow":
        return {"calibrated": [], "note": f"the {template} template's resources are uncalibrated estimates"}
    ranges = {k: error_range(k) for k in CALIBRATED}
    return {
        "calibrated": list(CALIBRATED),
        "against": [{"design": p.name, "source": p.source, "published": {"LUT": p.lut, "BRAM18": p.bram18},
                     "with_shell": p.with_shell, "error": dict(p.errors)} for p in POINTS],
        "error_range": {k: [round(lo, 3), round(hi, 3)] for k, (lo, hi) in ranges.items()},
        "note": f"MVAU LUT and weight-memory BRAM18 fitted to {len(POINTS)} published implementations; "
                f"not calibrated: {NOT_CALIBRATED}",
    }


def statement_line(template: str) -> str:
    """The one line `codesign estimate` prints under the resources."""
    s = statement(template)
    if not s["calibrated"]:
        return f"calibration: none ({s['note']})"
    spans = ", ".join(f"{k} {lo:+.1%}..{hi:+.1%}" for k, (lo, hi) in s["error_range"].items())
    names = ", ".join(p.name for p in POINTS)
    return (f"calibration: LUT, BRAM18 fitted to {len(POINTS)} published builds ({names}): "
            f"error {spans}; FF, URAM, DSP uncalibrated")


__all__ = ["CALIBRATED", "MAX_BRAM_UNDERCOUNT", "MAX_ERROR", "NOT_CALIBRATED", "POINTS", "CalibrationPoint",
           "error_range", "statement", "statement_line"]
