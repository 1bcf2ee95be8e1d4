"""Accuracy against speed (issue 16): Dice on the validation patients and images/s for each model x backend, the Pareto front.

Reads the models ``fast_model.py`` trained (``benchmarks/fast_model/results.json``), writes each
one's int8 export with `cardioseg export --int8` (calibrated on the same prepared camus224 at
128x128), then for every backend: the Dice of its post-processed masks against the reference on
the 200 official validation images (``evaluate``, the backend named), and its images/s on a batch
of 16 (median call time after warm-up, on a quiet machine). A point is on the Pareto front when
no other point is both faster and more accurate.

    flock /tmp/cardioseg-cpu.lock .venv/bin/python benchmarks/pareto.py --append benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import torch
from bench_inference import camus_images, cpu_name, measure

from cardioseg.config import ExportConfig, load_config
from cardioseg.errors import CardiosegError, CheckpointError
from cardioseg.evaluation.evaluate import evaluate_model
from cardioseg.inference.export import export_model
from cardioseg.inference.members import RunOptions, load_member

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "fast_model" / "results.json"
BACKENDS = [("torch", "32"), ("torch", "bf16"), ("onnx", "32"), ("onnx", "int8"), ("openvino", "32"),
            ("openvino", "bf16"), ("openvino", "int8")]


def dice_of(summary: dict) -> float:
    return next(row["mean"] for row in summary["metrics"]["post"] if row["metric"] == "dice")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/cardioseg-fast-model"))
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--append", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    trained = json.loads(RESULTS.read_text())
    prepared = args.work / f"camus{args.size}"
    sample = camus_images("val", 16, args.size)
    rows, refused = [], []
    for name, info in trained.items():
        model = Path(info["model"])
        int8 = model.with_name("model.int8.onnx")
        if not int8.is_file():
            try:
                export_model(model, ExportConfig(int8=True, calibration=prepared))
            except CheckpointError as exc:  # the export's own check: its masks drift too far from fp32's
                refused.append(f"{name}: {exc.problem.split('; nothing')[0]}")
        for backend, precision in BACKENDS:
            if precision == "int8" and not int8.is_file():
                continue
            with tempfile.TemporaryDirectory() as scratch:
                cfg = load_config(overrides={"evaluate.backend": backend, "evaluate.precision": precision,
                                             "evaluate.split": "val", "evaluate.overwrite": True,
                                             "evaluate.out_dir": Path(scratch) / "eval"})
                try:
                    dice = dice_of(evaluate_model(model, prepared, cfg, progress=False).summary)
                except CardiosegError as exc:
                    print(name, backend, precision, "failed:", exc, flush=True)
                    continue
                member = load_member(model, RunOptions(backend, precision, 16), Path(scratch))
                _, others, seconds = measure(member.backend.probabilities, sample, 3.0)
            rows.append({"model": name, "backend": f"{backend} {member.precision}", "dice": dice,
                         "images_per_s": 16 / seconds, "gflop": info["gflops"], "params": info["parameters"],
                         "others": others})
            print(rows[-1], flush=True)
    for row in rows:
        row["front"] = not any(o["images_per_s"] > row["images_per_s"] and o["dice"] > row["dice"] for o in rows)
    epochs = next(iter(trained.values()))["epochs"]
    lines = ["", "## Accuracy against speed: the Pareto front (issue 16)", "",
             f"Machine: {cpu_name()}, {os.cpu_count()} cores. Commands: `.venv/bin/python benchmarks/fast_model.py "
             f"--epochs {epochs}` then `.venv/bin/python benchmarks/pareto.py`. Each model trained on camus224 LV "
             f"cavity at {args.size}x{args.size}, {epochs} epochs, batch 16, AdamW 1e-3 cosine, seed 0, the same "
             "protocol for all; Dice: mean over the 200 official validation images (50 patients; training kept its "
             "best checkpoint by Dice on this same split, so the figures lean optimistic, alike for every model) at the "
             "original 224x224 grid after post-processing, through `evaluate` on the named backend; images/s: batch "
             "of 16 at the network size, median call. * = on the Pareto front (nothing both faster and more "
             "accurate).", "",
             "| model | GFLOP/image | parameters | backend | Dice | images/s | front | other CPU |",
             "|---|---:|---:|---|---:|---:|:---:|---:|"]
    for r in sorted(rows, key=lambda r: -r["images_per_s"]):
        lines.append(f"| {r['model']} | {r['gflop']:.2f} | {r['params'] / 1e6:.1f} M | {r['backend']} | {r['dice']:.4f} "
                     f"| {r['images_per_s']:.1f} | {'*' if r['front'] else ''} | {r['others']:.2f} |")
    lines += ["", *(f"int8 export refused for {r}." for r in refused)] if refused else []
    table = "\n".join(lines) + "\n"
    print(table)
    if args.append:
        with open(args.append, "a", encoding="utf-8") as handle:
            handle.write(table)


if __name__ == "__main__":
    main()
