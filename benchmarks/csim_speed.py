"""C-simulation speed of a CNV-w2a2-sized design: frames/s of the exact ap_int kernels vs the fast paths.

    python benchmarks/csim_speed.py [--model auto|bnn_pynq|quant] [--fold zc706|finn|board]
                                    [--frames 100] [--plain-frames 3] [--seed 0] [--keep DIR]

The model is Brevitas' BNN-PYNQ CNV with 2-bit weights and activations (brevitas_examples
bnn_pynq cnv_2w2a, seeded random weights and calibrated BatchNorm statistics, exported to QONNX with
the TorchScript exporter); `--model quant` (or auto, when that model does not lower) builds the same
topology with codesign's own builder from examples/cnv_w1a1.yaml at 2 bits. `codesign emit` writes
the HLS project once, folded by `--fold`: zc706 (default; the cost model's zc706 folding, fixed
here so runs compare: the slow case for C-simulation, 64-lane 128-bit words), finn (FINN's cnv
example folding) or board (hw_space.folding for the zc706 board now).

The testbench is compiled twice, with codesign.backend.csim's flags, in this process: with
-DCODESIGN_CSIM_PLAIN (the exact ap_int code the kernels run in synthesis, the C-simulation before
the fast paths) and without (native 64-bit lanes, accumulators and popcounts; see
hls_templates/kernels.h.j2). Compile time and run time are measured separately; frames/s is
frames / run time of the testbench process (CPU time, user + sys: steadier than the wall clock on a
loaded machine; wall-clock figures are printed too). Both builds must write the reference's outputs
bit for bit. Issue 8 asks for >= 5x the plain frames/s.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from codesign.backend.csim import CXX_FLAGS, ap_types_dir, compiler, read_manifest, write_inputs  # noqa: E402
from hw_space.design import Design, Hardware, LayerFold, design_from_dict, load_yaml_file  # noqa: E402
from hw_space.errors import CodesignError  # noqa: E402

TARGET = 5.0
# (PE, SIMD) per layer; pools: PE
FOLDS = {
    "zc706": {"conv0": (64, 3), "conv1": (64, 64), "pool0": (8, 1), "conv2": (32, 64), "conv3": (32, 64),
              "pool1": (2, 1), "conv4": (16, 32), "conv5": (8, 16), "fc0": (1, 16), "fc1": (1, 32), "fc2": (1, 1)},
    "finn": {"conv0": (16, 3), "conv1": (32, 32), "conv2": (16, 32), "conv3": (16, 32), "conv4": (4, 32),
             "conv5": (1, 32), "fc0": (1, 4), "fc1": (1, 8), "fc2": (5, 1)},
}


def _calibrate(model, seed: int, shape=(32, 3, 32, 32)) -> None:
    """Seeded random BatchNorm affine parameters and statistics from a few train-mode passes."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.momentum = None
            with torch.no_grad():
                m.weight.copy_(torch.rand_like(m.weight) + 0.5)
                m.bias.copy_(0.3 * torch.randn_like(m.bias))
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(*shape))
    model.eval()


def bnn_pynq_cnv(path: Path, seed: int) -> str:
    import torch
    from brevitas.export import export_qonnx
    from brevitas_examples.bnn_pynq.models import cnv_2w2a

    torch.manual_seed(seed)
    model = cnv_2w2a(pretrained=False)
    _calibrate(model, seed)
    export_qonnx(model, torch.rand(1, 3, 32, 32), str(path), dynamo=False)
    return "brevitas_examples bnn_pynq cnv_2w2a"


def quant_cnv(path: Path, seed: int) -> str:
    import torch

    from quant.build import build
    from quant.export import export_qonnx

    data = load_yaml_file(ROOT / "examples" / "cnv_w1a1.yaml")
    for layer in data["network"]["layers"]:
        for key in ("weight_bits", "act_bits"):
            if key in layer:
                layer[key] = 2
    network = design_from_dict(data).network
    torch.manual_seed(seed)
    model = build(network)
    _calibrate(model, seed)
    export_qonnx(model, network, path)
    return "quant.build of examples/cnv_w1a1.yaml at 2-bit weights and activations"


def make_model(kind: str, path: Path, seed: int) -> str:
    from codesign.backend.lower import lower_model

    if kind in ("auto", "bnn_pynq"):
        try:
            what = bnn_pynq_cnv(path, seed)
            lower_model(path)
            return what
        except (CodesignError, ImportError) as exc:
            if kind == "bnn_pynq":
                raise
            print(f"bnn_pynq cnv_2w2a does not lower ({exc}); using codesign's builder", flush=True)
    return quant_cnv(path, seed)


def design_for(path: Path, fold: str) -> Design:
    from codesign.backend.lower import lower_model, network_of

    net = network_of(lower_model(path))
    layers = {}
    for layer in net.layers:
        pe, simd = FOLDS[fold].get(layer.name, (1, 1))
        layers[layer.name] = LayerFold(pe=pe) if layer.type == "maxpool" else LayerFold(pe=pe, simd=simd)
    return Design(network=net, hardware=Hardware(board="zc706", layers=layers))


@dataclass
class Build:
    name: str
    compile_s: float
    compile_cpu_s: float
    frames: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0

    @property
    def fps_cpu(self) -> float:
        return self.frames / self.cpu_s

    @property
    def fps_wall(self) -> float:
        return self.frames / self.wall_s


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def compile_tb(project: Path, name: str, defines: list[str]) -> tuple[Path, float, float]:
    """The testbench compiled as codesign verify does (csim.CXX_FLAGS), plus `defines`."""
    manifest = read_manifest(project)
    files = manifest["files"]
    sources = [f for f in files["sources"] + files["testbench"] if f.endswith(".cpp")]
    generated = "".join((project / f).read_text() for f in files["sources"] + files["testbench"] if f.endswith(".h"))
    if "AP_INT_MAX_W" not in generated:  # designs with ap_uint over 1024 bits, before the headers define it
        defines = [*defines, "-DAP_INT_MAX_W=4096"]
    binary = project / f"tb_{name}"
    cmd = [compiler(), *CXX_FLAGS, *defines, *(f"-I{d}" for d in files["include_dirs"]), "-isystem",
           str(ap_types_dir()), *sources, "-o", str(binary)]
    cpu, start = _children_cpu(), time.perf_counter()
    subprocess.run(cmd, cwd=project, check=True)
    return binary, time.perf_counter() - start, _children_cpu() - cpu


def run_tb(project: Path, binary: Path, codes: np.ndarray, build: Build) -> np.ndarray:
    inputs, outputs = project / f"inputs_{build.name}.txt", project / f"outputs_{build.name}.txt"
    write_inputs(inputs, codes)
    cpu, start = _children_cpu(), time.perf_counter()
    # "-": no reference file (compared below)
    subprocess.run([str(binary), str(inputs), str(outputs), "-"], cwd=project, check=True, stdout=subprocess.DEVNULL)
    build.wall_s, build.cpu_s, build.frames = time.perf_counter() - start, _children_cpu() - cpu, len(codes)
    return np.array([line.split() for line in outputs.read_text().splitlines()], dtype=np.int64)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=("auto", "bnn_pynq", "quant"), default="auto")
    ap.add_argument("--fold", choices=("zc706", "finn", "board"), default="zc706")
    ap.add_argument("--frames", type=int, default=100, help="frames for the fast build")
    ap.add_argument("--plain-frames", type=int, default=3, help="frames for the plain ap_int build (slow)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", type=Path, help="write the model and project here (default: a temporary folder)")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    from codesign.backend.emit import emit

    work = args.keep or Path(tempfile.mkdtemp(prefix="csim-speed-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        onnx = work / "cnv_w2a2.onnx"
        what = make_model(args.model, onnx, args.seed)
        project = work / "hls"
        samples = max(args.frames, args.plain_frames)
        start = time.perf_counter()
        if args.fold == "board":
            result = emit(onnx, project, board="zc706", samples=samples, seed=args.seed)
        else:
            result = emit(onnx, project, design=design_for(onnx, args.fold), samples=samples, seed=args.seed)
        emit_s = time.perf_counter() - start
        folds = ", ".join(f"{k} {f.pe}/{f.simd}" for k, f in result.design.hardware.layers.items())
        print(f"model: CNV-w2a2, {what} (seed {args.seed})")
        print(f"fold:  {args.fold} (PE/SIMD: {folds})")
        print(f"emit:  {emit_s:.1f} s, {samples} random input frames; g++ flags {' '.join(CXX_FLAGS)}", flush=True)

        codes = np.load(project / "tb_data" / "vectors.npz")["codes"]
        reference = np.load(project / "tb_data" / "vectors.npz")["reference"]
        builds = []
        for name, defines, frames in (("plain", ["-DCODESIGN_CSIM_PLAIN"], args.plain_frames),
                                      ("fast", [], args.frames)):
            binary, compile_s, compile_cpu_s = compile_tb(project, name, defines)
            build = Build(name, compile_s, compile_cpu_s)
            got = run_tb(project, binary, codes[:frames], build)
            if not np.array_equal(got, reference[:frames]):
                print(f"{name}: the outputs differ from the reference", file=sys.stderr)
                return 1
            builds.append(build)
            print(f"{name:5s}  compile {compile_cpu_s:5.1f} s CPU ({compile_s:5.1f} s wall)   {build.frames:4d} frames in "
                  f"{build.cpu_s:7.2f} s CPU ({build.wall_s:7.2f} s wall): {build.fps_cpu:8.2f} frames/s CPU, "
                  f"{build.fps_wall:8.2f} frames/s wall", flush=True)
        plain, fast = builds
        ratio = fast.fps_cpu / plain.fps_cpu
        print(f"baseline (ap_int, CODESIGN_CSIM_PLAIN): {plain.fps_cpu:.3f} frames/s; fast paths: {fast.fps_cpu:.1f} "
              f"frames/s; ratio {ratio:.0f}x (wall clock: {fast.fps_wall / plain.fps_wall:.0f}x); "
              f"compile {plain.compile_cpu_s:.1f} s -> {fast.compile_cpu_s:.1f} s CPU")
        print(f"both builds bit-exact with the reference; target >= {TARGET:g}x: {'meets' if ratio >= TARGET else 'MISSES'}")
        return 0 if ratio >= TARGET else 1
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
