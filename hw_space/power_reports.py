"""Published Vivado `report_power` figures of routed designs, and the per-resource power coefficients
hw_space.power derives from them (so the derivation is code, visible and tested, not pasted numbers).

Each row is one public report: its "On-Chip Components" table (W per category, rounded by Vivado to
1 mW; "<0.001" is stored as 0.0) with the design's counts, and its fabric clock from the report's
clock table. All are vectorless estimates (no SAIF): Vivado's default toggle rate, 12.5 %, on
undriven inputs, propagated through the logic. How a report's watts become coefficients:

- LUT: the "Slice Logic" / "CLB Logic" row (LUTs, carry chains, muxes, registers' own few mW)
  plus the LUTs' share of "Signals" (routing), split between LUTs and FFs by their counts.
- FF: the "Clocks" row (the clock tree, whose loads are almost all register clock pins) plus
  the FFs' share of "Signals".
- BRAM18 / DSP / URAM: their own row. Vivado counts Block RAM in 36 Kb tiles; one tile = 2 BRAM18.

coefficient (uW per MHz per unit) = watts / count / clock MHz * 1e6. A category below MIN_CATEGORY_W
(where rounding to 1 mW is more than 25 %) gives no coefficient for that resource. Left out: PS7/PS8,
I/O, MMCM/PLL and RF converters (not priced by the cost model). A family's coefficient is the median
over its reports; `spread` gives the min and max beside it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

MIN_CATEGORY_W = 0.002
COEFFICIENT_RESOURCES = ("LUT", "FF", "BRAM18", "URAM", "DSP")


@dataclass(frozen=True)
class PowerReport:
    """One routed design's report_power figures: counts, watts per on-chip category, fabric clock."""

    source: str  # repository, path and commit of the report
    part: str
    clock_mhz: float
    luts: int  # LUT as logic + shift register + distributed RAM
    ffs: int
    bram18: float  # 2 x the report's Block RAM tiles
    dsps: int
    urams: int
    logic_w: float
    signals_w: float
    clocks_w: float
    bram_w: float = 0.0
    dsp_w: float = 0.0
    uram_w: float = 0.0
    pl_static_w: float | None = None  # where the report splits PL static from PS static

    def attributed_w(self) -> dict[str, float]:
        """The report's PL dynamic watts attributed to each resource (module docstring's rules)."""
        lut_share = self.luts / (self.luts + self.ffs)
        return {"LUT": self.logic_w + self.signals_w * lut_share,
                "FF": self.clocks_w + self.signals_w * (1 - lut_share),
                "BRAM18": self.bram_w, "URAM": self.uram_w, "DSP": self.dsp_w}

    def counts(self) -> dict[str, float]:
        return {"LUT": self.luts, "FF": self.ffs, "BRAM18": self.bram18, "URAM": self.urams, "DSP": self.dsps}

    def dynamic_w(self) -> float:
        """The PL dynamic watts the cost model prices: logic + signals + clocks + BRAM + DSP + URAM."""
        return self.logic_w + self.signals_w + self.clocks_w + self.bram_w + self.dsp_w + self.uram_w

    def coefficients(self) -> dict[str, float | None]:
        """uW per MHz per unit of each resource in this report (None: unused or under MIN_CATEGORY_W)."""
        own = {"LUT": self.logic_w, "FF": self.clocks_w, "BRAM18": self.bram_w, "URAM": self.uram_w,
               "DSP": self.dsp_w}
        counts, watts = self.counts(), self.attributed_w()
        return {k: watts[k] / counts[k] / self.clock_mhz * 1e6 if counts[k] > 0 and own[k] >= MIN_CATEGORY_W else None
                for k in COEFFICIENT_RESOURCES}


@dataclass(frozen=True)
class Spread:
    """A coefficient's median over the reports that give it, with their min, max and number."""

    median: float
    low: float
    high: float
    n: int


def spread(reports: Iterable[PowerReport]) -> dict[str, Spread | None]:
    """Per resource: median, min and max of the reports' coefficients (None where no report gives one)."""
    per = [r.coefficients() for r in reports]
    out: dict[str, Spread | None] = {}
    for k in COEFFICIENT_RESOURCES:
        vals = [c[k] for c in per if c[k] is not None]
        out[k] = Spread(float(np.median(vals)), min(vals), max(vals), len(vals)) if vals else None
    return out


def median_coefficients(reports: Iterable[PowerReport], absent: Mapping[str, float]) -> dict[str, float]:
    """The family's coefficient per resource: the median over its reports; `absent` gives the value
    for a resource the family does not have (e.g. URAM on 7 series). No data and no entry: an error."""
    med = spread(reports)
    out = {}
    for k in COEFFICIENT_RESOURCES:
        if med[k] is not None:
            out[k] = med[k].median
        elif k in absent:
            out[k] = absent[k]
        else:
            raise ValueError(f"no published report gives a {k} coefficient and none is set as absent")
    return out


def static_w_per_lut(reports: Iterable[PowerReport]) -> float:
    """Median PL static watts per LUT of the part, over the reports that split PL static out."""
    vals = [r.pl_static_w / lut for r, lut in ((r, PART_LUTS[r.part]) for r in reports) if r.pl_static_w is not None]
    if not vals:
        raise ValueError("no report gives PL static power")
    return float(np.median(vals))


# LUTs of each part in the table (data sheets: DS190 7 series, DS891 Zynq UltraScale+, DS987 K26, DS923 Virtex US+).
PART_LUTS = {"xc7z020": 53_200, "xck26": 117_120, "xczu7ev": 230_400, "xcvu9p": 1_182_240}

# 7 series (28 nm). Each row: report path; part; the clock the logic runs on (report's clock table).
SERIES7_REPORTS: tuple[PowerReport, ...] = (
    # AES accelerator + ILA, one fabric clock clk_fpga_0 7.0 ns (the other clock is the debug hub's JTAG)
    PowerReport("theCow61/AES-Accelerator project_1/project_1.runs/impl_1/design_1_wrapper_power_routed.rpt "
                "@194c0d3b (Vivado 2020.1)", "xc7z020", 1000 / 7.0,
                luts=15_428 + 3_120 + 42, ffs=17_979, bram18=2 * 18.5, dsps=0, urams=0,
                logic_w=0.170, signals_w=0.247, clocks_w=0.091, bram_w=0.027),
    # custom matrix IP + CDMA, every clock 20.0 ns
    PowerReport("uyw4687/hsd project_2/project_2.runs/impl_1/design_1_wrapper_power_routed.rpt @81ddaddf (Vivado 2018.3)",
                "xc7z020", 50.0, luts=24_852 + 176 + 58, ffs=5_792, bram18=2 * 40.5, dsps=0, urams=0,
                logic_w=0.104, signals_w=0.109, clocks_w=0.011, bram_w=0.069),
    # two HLS FIR filters on clk_fpga_0 10.0 ns (clk_fpga_1 81.4 ns drives only the audio codec pins)
    PowerReport("LexPG12138/Xilinx_MUSIC project_1/project_1.runs/impl_1/system_wrapper_power_routed.rpt "
                "@aa5e35f9 (Vivado 2018.2)", "xc7z020", 100.0, luts=2_564 + 62, ffs=2_463, bram18=2 * 8, dsps=18,
                urams=0, logic_w=0.006, signals_w=0.009, clocks_w=0.012, bram_w=0.004, dsp_w=0.017),
    # PE array, one clock 20.0 ns
    PowerReport("hsiang0103/piyan-FPGA project_1/project_1.runs/impl_1/design_1_wrapper_power_routed.rpt "
                "@eb284985 (Vivado 2023.2)", "xc7z020", 50.0, luts=21_834 + 83, ffs=36_708, bram18=0, dsps=0,
                urams=0, logic_w=0.013, signals_w=0.022, clocks_w=0.032),
    # HLS block + ILA on clk_fpga_0 10.0 ns
    PowerReport("agustinsilva447/QMARL_FPGA project_2/project_2.runs/impl_1/design_1_wrapper_power_routed.rpt "
                "@e7c75f50 (Vivado 2022.1)", "xc7z020", 100.0, luts=1_804 + 222 + 36, ffs=3_146, bram18=2 * 2.5,
                dsps=2, urams=0, logic_w=0.003, signals_w=0.004, clocks_w=0.014, bram_w=0.003, dsp_w=0.002),
    # FFT + DMAs on clk_fpga_0 10.0 ns; the VGA/audio clocks are 8.0 and 9.3 ns: 100 MHz is a lower bound
    PowerReport("dkeum/ENSC452 project_1/project_1.runs/impl_1/design_1_wrapper_power_routed.rpt @f6e59b2c (Vivado 2020.2)",
                "xc7z020", 100.0, luts=6_482 + 964 + 61, ffs=11_098, bram18=2 * 13, dsps=12, urams=0,
                logic_w=0.013, signals_w=0.018, clocks_w=0.036, bram_w=0.008, dsp_w=0.014),
    # CNN IP, one clock 20.0 ns; its 148 DSPs show 0.000 W (no propagated activity), so no DSP figure
    PowerReport("JustABear1210/conv-64 project_1/project_1.runs/impl_1/design_1_wrapper_power_routed.rpt "
                "@b76680da (Vivado 2018.3)", "xc7z020", 50.0, luts=7_507 + 48 + 119, ffs=8_563, bram18=2 * 2,
                dsps=148, urams=0, logic_w=0.002, signals_w=0.002, clocks_w=0.014, bram_w=0.003, dsp_w=0.0),
)

# UltraScale+ (16 nm). The ZCU104 rows are a markdown report quoting report_power's component table and
# the implemented utilization of two builds of one transformer accelerator at its 300 MHz (3.333 ns) clock.
_HBTXR = ("koodg123/HBTXR hardware/docs/experiments/2026-06-30-aq2-search-track/aq2-search-track-measurement.md "
          "@4c98a26f (vectorless report_power, routed)")
ULTRASCALE_PLUS_REPORTS: tuple[PowerReport, ...] = (
    PowerReport(_HBTXR + ", Search build", "xczu7ev", 300.0, luts=77_494, ffs=78_687, bram18=2 * 191.5, dsps=1_257,
                urams=92, logic_w=0.727, signals_w=0.976, clocks_w=0.531, bram_w=0.200, dsp_w=0.998, uram_w=0.200,
                pl_static_w=0.625),
    PowerReport(_HBTXR + ", Track build", "xczu7ev", 300.0, luts=80_565, ffs=83_427, bram18=2 * 185.5, dsps=1_270,
                urams=64, logic_w=0.840, signals_w=0.835, clocks_w=0.543, bram_w=0.191, dsp_w=0.847, uram_w=0.128,
                pl_static_w=0.620),
    # KV260: systolic array + DMA, one clock clk_pl_0 10.0 ns
    PowerReport("stateless-loop-58/ai-chip-starter vivado/vivado.runs/impl_1/design_1_wrapper_power_routed.rpt "
                "@b7ce79dd (Vivado 2021.1)", "xck26", 100.0, luts=4_704 + 366 + 196, ffs=5_997, bram18=2 * 14.5,
                dsps=0, urams=0, logic_w=0.013, signals_w=0.006, clocks_w=0.012, bram_w=0.008, pl_static_w=0.301),
    # VCU118 MicroBlaze system on its 10.0 ns clk_wiz clock; no PS, so device static is PL static
    PowerReport("cshea3/vcu118 hw/project_1/project_1.runs/impl_1/design_1_wrapper_power_routed.rpt "
                "@bd27a570 (Vivado 2020.2)", "xcvu9p", 100.0, luts=1_992 + 96 + 95, ffs=2_044, bram18=2 * 34, dsps=3,
                urams=0, logic_w=0.006, signals_w=0.008, clocks_w=0.011, bram_w=0.015, dsp_w=0.0, pl_static_w=2.472),
)

__all__ = ["COEFFICIENT_RESOURCES", "MIN_CATEGORY_W", "PART_LUTS", "PowerReport", "SERIES7_REPORTS", "Spread",
           "ULTRASCALE_PLUS_REPORTS", "median_coefficients", "spread", "static_w_per_lut"]
