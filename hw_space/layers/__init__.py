"""Hardware layer kinds of the cost model, one module per kind; each class owns its shape, folding
axes, cycles, resources, stream word, simulator schedule and the name of its HLS template behind
the one interface of `base.HwKind`. Which kinds a network layer becomes is hw_space.lowering.

All methods take numpy arrays of folding and bit-width values (one entry per design) or plain
ints, and broadcast; the per-design estimate and the batch model call the same code. Numbers are
ESTIMATES from analytical models (sources cited per formula), not synthesis results.
"""

from hw_space.layers.addstreams import AddStreams
from hw_space.layers.avgpool import AvgPool, GlobalAvgPool
from hw_space.layers.base import FoldArrays, HwKind, Resources, Role
from hw_space.layers.dupstreams import DuplicateStreams
from hw_space.layers.fifo import FIFO_REGISTER_DEPTH, Fifo
from hw_space.layers.gearbox import StreamIO, WidthConverter, gearbox_cycles
from hw_space.layers.mac import (
    AUTO_DSP_MIN_BITS,
    MAC_AUTO,
    MAC_CODES,
    MAC_DSP,
    MAC_LUT,
    acc_bits,
    dot_bits,
    mac_array_luts,
    use_dsp,
)
from hw_space.layers.maxpool import MaxPool, MaxPoolRows
from hw_space.layers.mvau import LAYOUT_CODES, MVAU, PER_PE, WIDE
from hw_space.layers.shell import PLATFORM_SHELL, PlatformShell
from hw_space.layers.sliding_window import DepthwiseWindow, SlidingWindow, largest_divisor_at_most
from hw_space.layers.tiled import TiledConv, TiledEngine, TiledPool, TileExtent
from hw_space.layers.vvau import VVAU

__all__ = ["AUTO_DSP_MIN_BITS", "FIFO_REGISTER_DEPTH", "LAYOUT_CODES", "MAC_AUTO", "MAC_CODES", "MAC_DSP", "MAC_LUT", "MVAU",
           "PER_PE", "PLATFORM_SHELL", "VVAU", "WIDE", "AddStreams", "AvgPool", "DepthwiseWindow", "DuplicateStreams",
           "Fifo", "FoldArrays", "GlobalAvgPool", "HwKind", "MaxPool", "MaxPoolRows", "PlatformShell",
           "Resources", "Role", "SlidingWindow", "StreamIO", "TileExtent", "TiledConv", "TiledEngine", "TiledPool",
           "WidthConverter", "acc_bits", "dot_bits", "gearbox_cycles", "largest_divisor_at_most",
           "mac_array_luts", "use_dsp"]
