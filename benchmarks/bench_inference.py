"""Inference speed (issue 7): images/s and single-image latency of U-Net-ResNet18 on this CPU.

Backends, each through the class `cardioseg predict` uses (so conversion and activation count):
PyTorch fp32, PyTorch bfloat16 autocast + channels_last, ONNX Runtime fp32 (the exported graph
with its normalisation); and what was tried to go faster: PyTorch fp32 traced, frozen and
optimised for inference (oneDNN fusion); PyTorch bf16 through torch.compile (not in the default
list: a minute of compiling per shape); ONNX Runtime with basic graph optimisation only, or one
thread; ONNX Runtime int8 (static QDQ quantisation, per-channel, calibrated on 128 camus224
training images, first and last convolution kept fp32). Every variant's masks are compared with
PyTorch fp32 masks on camus224 validation images (Dice, mean and minimum), using the trained
demo model when it exists.

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
from cardioseg.inference.torch_backend import TorchBackend
from cardioseg.models.checkpoint import ModelBundle, load_bundle
from cardioseg.models.factory import build_model
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


def make_bundle(size: int) -> ModelBundle:
    """The demo model (U-Net-ResNet18, 1 class) when trained, else the same network randomly initialised."""
    if DEMO.is_file():
        bundle = load_bundle(DEMO)
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
    """Static QDQ int8 of the convolutions: per-channel int8 weights, uint8 activations (min-max
    calibration). The first and the last convolution stay fp32: quantising the head too costs
    about 0.5% Dice on the thinnest masks (minimum Dice 0.987 instead of 0.996 on camus224)."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            batches = [calibration[i : i + 16, None].astype(np.float32) for i in range(0, len(calibration), 16)]
            self.feeds = iter({"image": b, "stats": np.array([0.0, 1.0], np.float32)} for b in batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.feeds, None)

    convs = [node.name for node in onnx.load(str(fp32)).graph.node if node.op_type == "Conv"]
    quantize_static(str(fp32), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, op_types_to_quantize=["Conv"],
                    nodes_to_exclude=[convs[0], convs[-1]])
    out.with_name(out.name + ".json").write_bytes(fp32.with_name(fp32.name + ".json").read_bytes())
    return out


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
        return ort_backend(quantize_int8(fp32, fp32.with_name(f"{fp32.stem}-int8.onnx"), camus_images("train", 128, size)))
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
    parser.add_argument("--variants", default="torch-fp32,torch-bf16-cl,ort-fp32,torch-fp32-frozen,ort-fp32-basic,ort-fp32-1thread,ort-int8")
    parser.add_argument("--min-seconds", type=float, default=3.0)
    parser.add_argument("--append", type=Path, help="append the table to this markdown file")
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"camus224 not found at {DATA}: this benchmark needs the shared data")
    torch.set_num_threads(os.cpu_count() or 1)
    variants = args.variants.split(",")
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for size in map(int, args.sizes.split(",")):
            bundle = make_bundle(size)
            fp32 = export_bundle(bundle, Path(scratch) / f"unet{size}.onnx", ExportConfig()).path
            check = camus_images("val", 64, size)
            reference = torch_backend(bundle, "32", False)(check)[:, 0] > 0.5
            for name in variants:
                run = build(name, bundle, fp32)
                masks = run(check)[:, 0] > 0.5
                scores = [dice(a, b) for a, b in zip(masks, reference)]
                for batch in map(int, args.batches.split(",")):
                    before, others, seconds = measure(run, check[:batch], args.min_seconds)
                    rows.append({"size": size, "batch": batch, "backend": name, "images_per_s": batch / seconds,
                                 "latency_ms": 1000 * seconds, "dice_mean": np.mean(scores), "dice_min": np.min(scores),
                                 "load": f"{before} -> {load()}", "others": others})
                    print(rows[-1], flush=True)
    table = render(rows, args)
    print(table)
    if args.append:
        with open(args.append, "a", encoding="utf-8") as handle:
            handle.write(table)


def render(rows: list[dict[str, object]], args: argparse.Namespace) -> str:
    lines = [
        "",
        "## Inference speed (issue 7)",
        "",
        f"Machine: {cpu_name()}, {os.cpu_count()} cores; torch {torch.__version__}, "
        f"onnxruntime {__import__('onnxruntime').__version__}. Model: smp U-Net-ResNet18, 1 class "
        f"({'trained demo weights' if DEMO.is_file() else 'random weights'}), input 1xHxW float32.",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_inference.py --sizes {args.sizes} --batches {args.batches} "
        f"--min-seconds {args.min_seconds}`",
        "",
        "images/s = batch / median time of one call (after two warm-up calls); latency = that median time. "
        "Dice: masks against PyTorch fp32 masks on 64 camus224 validation images (mean / minimum). "
        "Load: 1/5/15-minute load averages before -> after the measurement (the benchmark's own two threads "
        "count); other CPU: cores busy with other processes during the measurement (from /proc/stat).",
        "",
        "| size | batch | backend | images/s | latency ms | Dice mean | Dice min | load | other CPU |",
        "|---:|---:|---|---:|---:|---:|---:|---|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['size']} | {r['batch']} | {r['backend']} | {r['images_per_s']:.1f} | {r['latency_ms']:.1f} "
                     f"| {r['dice_mean']:.4f} | {r['dice_min']:.4f} | {r['load']} | {r['others']:.2f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
