"""Inference speed (issues 7 and 16): images/s and single-image latency of U-Net-ResNet18 on this CPU.

Backends, each through the class `cardioseg predict` uses (so conversion and activation count):
PyTorch fp32, PyTorch bfloat16 autocast + channels_last, ONNX Runtime fp32 (the exported graph
with its normalisation) and int8, OpenVINO fp32, bf16 and int8 (the int8 file is the one
`cardioseg export --int8` writes: static QDQ, per-channel, calibrated on 128 camus224 training
images, first and last convolution kept fp32); and what was tried to go faster: PyTorch fp32
traced, frozen and optimised for inference (oneDNN fusion); PyTorch bf16 through torch.compile
(not in the default list: a minute of compiling per shape); ONNX Runtime with basic graph
optimisation only, or one thread. Every variant's masks are compared with PyTorch fp32 masks on
64 camus224 validation images (Dice, mean and minimum), using ``--model`` (default: the trained
demo model) when it exists. ``--model`` may be a checkpoint trained at another size: its network
runs at the size asked for.

Each speed is also given as a fraction of this CPU's peak for its number type, measured here as
the rate of a large matrix product (fp32, bf16 and int8 GEMM through PyTorch/oneDNN, on every
core): the fraction of what the hardware demonstrably delivers, not of a datasheet figure.

The machine is shared: each measurement waits (up to 4 min) until other processes use under
0.15 cores, and is repeated (up to 5 times) when they used more meanwhile; the load average and
the cores other processes used are recorded with every row.

    .venv/bin/python benchmarks/bench_inference.py --append benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from cardioseg.config import ExportConfig, ModelConfig, PreprocessConfig
from cardioseg.data.preprocess import Pipeline
from cardioseg.data.readers.base import read_raster
from cardioseg.inference.export import export_bundle
from cardioseg.inference.onnx_backend import OnnxBackend
from cardioseg.inference.openvino_backend import OpenVinoBackend
from cardioseg.inference.quantize import quantize_static_int8
from cardioseg.inference.torch_backend import TorchBackend
from cardioseg.models.checkpoint import ModelBundle, load_bundle
from cardioseg.models.factory import build_model
from cardioseg.models.summary import summarize_model
from cardioseg.plan import Plan

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "camus224"
DEMO = ROOT / "runs" / "demo" / "run" / "model.safetensors"
Probabilities = Callable[[np.ndarray], np.ndarray]
QUIET = 0.15  # cores other processes may use while a measurement counts as undisturbed


def cpu_name() -> str:
    for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
        if line.startswith("Model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def load() -> str:
    return "/".join(f"{v:.2f}" for v in os.getloadavg())


def busy_seconds() -> float:
    """CPU seconds all processes have spent busy since boot (/proc/stat), to spot other work."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def camus_images(split: str, count: int, size: int) -> np.ndarray:
    """Real camus224 images (apex up), preprocessed as the demo model expects (min-max, resize)."""
    files = sorted(p for p in (DATA / split).glob("patient*_E?.png"))[:count]
    pre = PreprocessConfig(size=(size, size))
    pipeline = Pipeline(pre, "transpose")
    return np.stack([pipeline.image(read_raster(p))[0] for p in files])


def make_bundle(size: int, model: Path = DEMO) -> ModelBundle:
    """``model`` (default: the demo model, U-Net-ResNet18, 1 class) when trained, else the same network randomly initialised."""
    if model.is_file():
        bundle = load_bundle(model)
    else:
        torch.manual_seed(0)
        cfg = ModelConfig(arch="unet", encoder="resnet18", classes=1)
        bundle = ModelBundle(build_model(cfg).eval(), cfg, Plan())
    pre = bundle.plan.preprocess.model_copy(update={"size": (size, size)})
    return ModelBundle(bundle.model, bundle.model_cfg, bundle.plan.model_copy(update={"preprocess": pre}), bundle.extra)


def torch_backend(bundle: ModelBundle, precision: str, channels_last: bool) -> Probabilities:
    return TorchBackend(copy.deepcopy(bundle), precision=precision, channels_last=channels_last, batch_size=16).probabilities


def frozen_backend(bundle: ModelBundle, size: int) -> Probabilities:
    """fp32 traced + torch.jit.freeze + optimize_for_inference (conv-bn folding, oneDNN layouts)."""
    model = copy.deepcopy(bundle.model).eval()
    with torch.no_grad():
        frozen = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(model, torch.rand(1, 1, size, size))))

    @torch.inference_mode()
    def run(images: np.ndarray) -> np.ndarray:
        return torch.sigmoid(frozen(torch.from_numpy(np.ascontiguousarray(images[:, None])))).numpy()

    return run


def compiled_backend(bundle: ModelBundle) -> Probabilities:
    """bf16 autocast + channels_last through torch.compile (inductor; about a minute to compile here)."""
    predictor = TorchBackend(copy.deepcopy(bundle), precision="bf16", channels_last=True, batch_size=16)
    predictor.model = torch.compile(predictor.model)
    return predictor.probabilities


def ort_backend(path: Path, level: str = "all", threads: int | None = None) -> Probabilities:
    import onnxruntime as ort

    predictor = OnnxBackend(path, batch_size=16, threads=threads)
    if level != "all":
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.log_severity_level = 3
        predictor.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return predictor.probabilities


def quantize_int8(fp32: Path, out: Path, calibration: np.ndarray) -> Path:
    """The int8 file `cardioseg export --int8` writes, calibrated on ``calibration``, with the fp32 sidecar."""
    quantize_static_int8(fp32, out, calibration.astype(np.float32))
    out.with_name(out.name + ".json").write_bytes(fp32.with_name(fp32.name + ".json").read_bytes())
    return out


def int8_file(fp32: Path, size: int) -> Path:
    target = fp32.with_name(f"{fp32.stem}-int8.onnx")
    return target if target.is_file() else quantize_int8(fp32, target, camus_images("train", 128, size))


def build(name: str, bundle: ModelBundle, fp32: Path) -> Probabilities:
    """One benchmarked variant as a function: normalised images (N, H, W) -> probabilities."""
    size = bundle.plan.preprocess.size[0]
    if name.startswith("torch"):
        if name == "torch-fp32-frozen":
            return frozen_backend(bundle, size)
        if name == "torch-bf16-cl-compiled":
            return compiled_backend(bundle)
        return torch_backend(bundle, "bf16" if "bf16" in name else "32", channels_last=name.endswith("-cl"))
    if name == "ort-int8":
        return ort_backend(int8_file(fp32, size))
    if name.startswith("ov-"):  # ov-fp32, ov-bf16, ov-int8, and each with -throughput (several streams)
        precision = {"fp32": "32", "bf16": "bf16", "int8": "int8"}[name.split("-")[1]]
        hint = "THROUGHPUT" if name.endswith("-throughput") else "LATENCY"
        source = int8_file(fp32, size) if precision == "int8" else fp32
        return OpenVinoBackend(source, precision, batch_size=16, hint=hint).probabilities
    if name == "ort-fp32-basic":
        return ort_backend(fp32, level="basic")
    return ort_backend(fp32, threads=1 if name == "ort-fp32-1thread" else None)


def timed(run: Probabilities, images: np.ndarray, min_seconds: float) -> float:
    """Median seconds of one call on ``images`` (after two warm-up calls)."""
    run(images)
    run(images)
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < 3 or time.perf_counter() - started < min_seconds:
        t0 = time.perf_counter()
        run(images)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def others_busy(seconds: float) -> float:
    """Cores busy with other processes over ``seconds`` of sleep."""
    busy, wall = busy_seconds(), time.perf_counter()
    time.sleep(seconds)
    return max(0.0, busy_seconds() - busy) / (time.perf_counter() - wall)


def measure(run: Probabilities, images: np.ndarray, min_seconds: float, tries: int = 5) -> tuple[str, float, float]:
    """(load before, cores other processes used meanwhile, median seconds a call): waits for a quiet
    machine (other work under QUIET cores) and measures again when other work started meanwhile."""
    for _ in range(tries):
        for _ in range(120):
            if others_busy(2.0) < QUIET:
                break
        before, busy, own, wall = load(), busy_seconds(), time.process_time(), time.perf_counter()
        seconds = timed(run, images, min_seconds)
        others = max(0.0, (busy_seconds() - busy - (time.process_time() - own)) / (time.perf_counter() - wall))
        if others < QUIET:
            break
    return before, others, seconds


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2 * (a & b).sum() / total)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="128,224")
    parser.add_argument("--batches", default="1,16")
    parser.add_argument("--variants", default="torch-fp32,torch-bf16-cl,ort-fp32,ort-int8,ov-fp32,ov-bf16,ov-int8")
    parser.add_argument("--model", type=Path, default=DEMO, help="checkpoint to measure (default: the demo model)")
    parser.add_argument("--min-seconds", type=float, default=3.0)
    parser.add_argument("--append", type=Path, help="append the table to this markdown file")
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"camus224 not found at {DATA}: this benchmark needs the shared data")
    torch.set_num_threads(os.cpu_count() or 1)
    variants = args.variants.split(",")
    rows = []
    peaks = gemm_peaks()
    print("GEMM peaks (GFLOP/s or GOP/s):", peaks, flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        for size in map(int, args.sizes.split(",")):
            bundle = make_bundle(size, args.model)
            gflop = 2 * summarize_model(bundle.model, size=size).macs / 1e9
            fp32 = export_bundle(bundle, Path(scratch) / f"unet{size}.onnx", ExportConfig()).path
            check = camus_images("val", 64, size)
            reference = torch_backend(bundle, "32", False)(check)[:, 0] > 0.5
            for name in variants:
                run = build(name, bundle, fp32)
                masks = run(check)[:, 0] > 0.5
                scores = [dice(a, b) for a, b in zip(masks, reference)]
                for batch in map(int, args.batches.split(",")):
                    before, others, seconds = measure(run, check[:batch], args.min_seconds)
                    rate = batch / seconds
                    rows.append({"size": size, "batch": batch, "backend": name, "images_per_s": rate,
                                 "latency_ms": 1000 * seconds, "dice_mean": np.mean(scores), "dice_min": np.min(scores),
                                 "load": f"{before} -> {load()}", "others": others, "gflop": gflop,
                                 "of_peak": rate * gflop / peaks[number_type(name)]})
                    print(rows[-1], flush=True)
    table = render(rows, args, peaks)
    print(table)
    if args.append:
        with open(args.append, "a", encoding="utf-8") as handle:
            handle.write(table)


def number_type(variant: str) -> str:
    """The arithmetic a variant's convolutions mostly run in, to compare it with that type's peak."""
    return "int8" if "int8" in variant else "bf16" if "bf16" in variant else "fp32"


def gemm_peaks(n: int = 2048, seconds: float = 2.0) -> dict[str, float]:
    """GFLOP/s (GOP/s for int8) of a large matrix product on every core, once the machine is quiet."""
    for _ in range(120):
        if others_busy(2.0) < QUIET:
            break
    a, b = torch.randn(n, n), torch.randn(n, n)
    operands = {"fp32": (a, b, torch.mm), "bf16": (a.bfloat16(), b.bfloat16(), torch.mm),
                "int8": ((a * 40).to(torch.int8), (b * 40).to(torch.int8), torch._int_mm)}
    peaks = {}
    for kind, (x, y, product) in operands.items():
        product(x, y)
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            product(x, y)
            count += 1
        peaks[kind] = 2 * n**3 * count / (time.perf_counter() - started) / 1e9
    return peaks


def render(rows: list[dict[str, object]], args: argparse.Namespace, peaks: dict[str, float]) -> str:
    model = args.model if args.model.is_file() else None
    lines = [
        "",
        "## Inference backends (issue 16)",
        "",
        f"Machine: {cpu_name()}, {os.cpu_count()} cores; torch {torch.__version__}, "
        f"onnxruntime {__import__('onnxruntime').__version__}, openvino {__import__('openvino').__version__}. "
        f"Model: smp U-Net-ResNet18, 1 class ({f'trained weights, {model.name}' if model else 'random weights'}), "
        "input 1xHxW float32.",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_inference.py --sizes {args.sizes} --batches {args.batches} "
        f"--min-seconds {args.min_seconds} --variants {args.variants}`",
        "",
        f"Measured GEMM peak on this machine (2048x2048 products, every core): fp32 {peaks['fp32']:.0f} GFLOP/s, "
        f"bf16 {peaks['bf16']:.0f} GFLOP/s, int8 {peaks['int8']:.0f} GOP/s. % peak = images/s x GFLOP per image / "
        "the peak of the variant's number type.",
        "",
        "images/s = batch / median time of one call (after two warm-up calls); latency = that median time. "
        "Dice: masks against PyTorch fp32 masks on 64 camus224 validation images (mean / minimum). "
        "Load: 1/5/15-minute load averages before -> after the measurement (the benchmark's own two threads "
        "count); other CPU: cores busy with other processes during the measurement (from /proc/stat).",
        "",
        "| size | batch | backend | images/s | latency ms | GFLOP/image | % peak | Dice mean | Dice min | load | other CPU |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['size']} | {r['batch']} | {r['backend']} | {r['images_per_s']:.1f} | {r['latency_ms']:.1f} "
                     f"| {r['gflop']:.2f} | {100 * r['of_peak']:.0f} | {r['dice_mean']:.4f} | {r['dice_min']:.4f} "
                     f"| {r['load']} | {r['others']:.2f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
