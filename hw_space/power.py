"""An ESTIMATE of the programmable logic's power, and the energy of one inference from it.

power = device static (by device family, scaled to the part) + dynamic, where dynamic is, for each
resource r in LUT, FF, BRAM18, URAM and DSP:

    n_r * c_r * f_MHz * (activity / REFERENCE_ACTIVITY)

n_r the design's count (the cost model's estimate), c_r the family's coefficient in uW per MHz per
unit at the reference toggle rate, f the clock. Dynamic power is linear in the toggle rate and the
clock (P = a * C * V^2 * f; Jevtic and Carreras, "Power measurement methodology for FPGA devices",
IEEE Trans. Instrum. Meas. 2011, eq. 1). Static plus dynamic is how Xilinx's estimator splits a
device's power (UG440, "Total Power": device static + design static + design dynamic).

The coefficients are medians of per-resource figures computed from published Vivado report_power
tables of routed designs (hw_space/power_reports.py: each report's repository, path and commit, and the
derivation). Their spread between designs is wide (docs/cost-model.md): Vivado's vectorless activity
depends on the design, so this is an estimate of what Vivado would say, not a measurement. It prices
the PL only (no Zynq PS, DDR, I/O, clock managers or board), from resource counts, without routing,
placement or the design's real toggle rates.
All functions take numpy arrays: one call prices a whole batch of designs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from hw_space.boards import Board
from hw_space.power_reports import (
    SERIES7_REPORTS,
    ULTRASCALE_PLUS_REPORTS,
    median_coefficients,
    static_w_per_lut,
)

# Vivado's default toggle rate: 12.5 % of clock cycles (UG835, set_switching_activity,
# -default_toggle_rate "The default value is 12.5"). The coefficients below are at this rate.
REFERENCE_ACTIVITY = 0.125
DEFAULT_ACTIVITY = REFERENCE_ACTIVITY
POWER_RESOURCES = ("LUT", "FF", "BRAM18", "URAM", "DSP")

# Device static of one part as a published Vivado power report gives it: Vivado 2021.1 report_power
# of a routed xc7z045ffg900-2 design (typical process, 25 C ambient): "Device Static (W) 0.219".
XC7Z045_STATIC_W = 0.219
XC7Z045_LUTS = 218_600


@dataclass(frozen=True)
class FamilyPower:
    """One device family's coefficients: static W per LUT of the part (leakage taken as
    proportional to the part's size) and dynamic uW per MHz per unit at REFERENCE_ACTIVITY."""

    name: str
    part_prefixes: tuple[str, ...]
    static_w_per_lut: float
    dynamic_uw_per_mhz: Mapping[str, float]
    static_source: str
    dynamic_source: str

    def static_w(self, board: Board) -> float:
        return self.static_w_per_lut * board.LUT


_DYNAMIC_SOURCE = ("median over the published Vivado report_power tables in hw_space/power_reports.py "
                   "(vectorless, default 12.5 % toggle); spread in docs/cost-model.md")

ZYNQ_7000 = FamilyPower(
    name="Zynq-7000 / 7 series (28 nm)", part_prefixes=("xc7",),
    static_w_per_lut=XC7Z045_STATIC_W / XC7Z045_LUTS,
    dynamic_uw_per_mhz=median_coefficients(SERIES7_REPORTS, absent={"URAM": 0.0}),  # the family has no URAM
    static_source="Vivado 2021.1 report_power, xc7z045ffg900-2: 0.219 W device static, scaled by LUT count",
    dynamic_source=_DYNAMIC_SOURCE + ", 7 series rows")

ZYNQ_ULTRASCALE_PLUS = FamilyPower(
    name="Zynq UltraScale+ (16 nm)", part_prefixes=("xczu", "xck26", "xcu", "xcvu", "xcku"),
    static_w_per_lut=static_w_per_lut(ULTRASCALE_PLUS_REPORTS),
    dynamic_uw_per_mhz=median_coefficients(ULTRASCALE_PLUS_REPORTS, absent={}),
    static_source="median PL static per LUT of the part in the UltraScale+ rows of hw_space/power_reports.py",
    dynamic_source=_DYNAMIC_SOURCE + ", UltraScale+ rows")

FAMILIES: tuple[FamilyPower, ...] = (ZYNQ_7000, ZYNQ_ULTRASCALE_PLUS)


def family_of(board: Board) -> FamilyPower:
    """The family whose part prefix the board's part starts with (7 series for unknown parts)."""
    part = board.part.lower()
    for fam in FAMILIES:
        if part.startswith(fam.part_prefixes):
            return fam
    return ZYNQ_7000


@dataclass(frozen=True)
class PowerBreakdown:
    """Static and dynamic power (W) of N designs; `dynamic_by_resource` per resource, (N,) arrays."""

    static_w: np.ndarray
    dynamic_by_resource: dict[str, np.ndarray]
    activity: float

    @property
    def dynamic_w(self) -> np.ndarray:
        return sum(self.dynamic_by_resource.values(), np.zeros_like(self.static_w))

    @property
    def total_w(self) -> np.ndarray:
        return self.static_w + self.dynamic_w


def estimate_power(resources: Mapping[str, np.ndarray | float], clock_mhz: float, board: Board,
                   activity: float = DEFAULT_ACTIVITY) -> PowerBreakdown:
    """PL power of designs using `resources` (counts, scalars or (N,) arrays) at `clock_mhz` on `board`."""
    if not 0 < activity <= 2:
        raise ValueError(f"activity must be a toggle rate in (0, 2], got {activity}")
    fam = family_of(board)
    counts = {k: np.atleast_1d(np.asarray(resources.get(k, 0), dtype=float)) for k in POWER_RESOURCES}
    n = max(len(v) for v in counts.values())
    scale = float(clock_mhz) * activity / REFERENCE_ACTIVITY * 1e-6  # uW/MHz -> W at this clock and rate
    dynamic = {k: np.broadcast_to(counts[k] * fam.dynamic_uw_per_mhz[k] * scale, (n,)) for k in POWER_RESOURCES}
    return PowerBreakdown(np.full(n, fam.static_w(board)), dynamic, activity)


def energy_batch1_mj(power_w: np.ndarray | float, latency_us: np.ndarray | float) -> np.ndarray:
    """Energy of one inference at batch 1: power x first-frame latency (W x us = uJ; / 1000 -> mJ)."""
    return np.asarray(power_w, dtype=float) * np.asarray(latency_us, dtype=float) * 1e-3


def energy_stream_mj(power_w: np.ndarray | float, fps: np.ndarray | float) -> np.ndarray:
    """Energy per frame when frames stream back to back: power / FPS (W / (1/s) = J; x 1000 -> mJ)."""
    return np.asarray(power_w, dtype=float) / np.maximum(np.asarray(fps, dtype=float), 1e-12) * 1e3


__all__ = ["DEFAULT_ACTIVITY", "FAMILIES", "FamilyPower", "POWER_RESOURCES", "PowerBreakdown", "REFERENCE_ACTIVITY",
           "energy_batch1_mj", "energy_stream_mj", "estimate_power", "family_of"]
