"""End to end (issue 16): `cardioseg predict` from PNG files to written PNG masks, a volume to NIfTI, an upload to a contour.

1. The 200 camus224 validation images (PNG) through ``predict_files`` on each backend, with the
   reader/writer threads (``predict.pipeline``) on and off: images/s end to end (the whole call,
   model loading included) against the network-only rate of the same run (images / network
   seconds), and that ratio (the issue's target: at least 80%).
2. One whole MSD volume (la_003, 256x256x~110) to a NIfTI mask, with a U-Net-ResNet18 planned for
   the MSD slices at 256x256 (random weights: speed does not depend on them).
3. The web app: upload a camus224 PNG (POST /api/sessions) and fetch its contour (GET slice 0),
   median over 20 uploads, through FastAPI's test client (no network stack).

    flock /tmp/cardioseg-cpu.lock .venv/bin/python benchmarks/bench_predict.py --model MODEL --append benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from bench_inference import QUIET, cpu_name, others_busy

from cardioseg.config import ModelConfig, load_config
from cardioseg.inference.predict import predict_files
from cardioseg.models.checkpoint import ModelBundle, save_bundle
from cardioseg.models.factory import build_model
from cardioseg.plan import ClassSpec, Plan

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
BACKENDS = [("torch", "32"), ("torch", "bf16"), ("onnx", "32"), ("onnx", "int8"), ("openvino", "bf16"),
            ("openvino", "int8"), ("auto", "auto")]


def wait_quiet() -> None:
    for _ in range(120):
        if others_busy(2.0) < QUIET:
            return


def folder_rows(model: Path, out: Path, backends: list[tuple[str, str]]) -> list[dict[str, object]]:
    images = sorted((SHARED / "camus224" / "val").glob("patient*_E?.png"))
    rows = []
    for backend, precision in backends:
        for pipelined in (True, False):
            cfg = load_config(overrides={"predict.out_dir": out / f"{backend}-{precision}-{pipelined}",
                                         "predict.backend": backend, "predict.precision": precision,
                                         "predict.pipeline": pipelined})
            predict_files(images, [model], cfg.model_copy(update={"predict": cfg.predict.model_copy(
                update={"out_dir": out / "warm-up"})}))  # exports, measurements and caches happen here, not in the timing
            wait_quiet()
            started = time.perf_counter()
            result = predict_files(images, [model], cfg)
            wall = time.perf_counter() - started
            network_rate = 1000.0 / result.ms_per_image
            rows.append({"backend": result.backends[0].split(" on ", 1)[1].split(" (")[0], "pipelined": pipelined,
                         "images": len(images), "wall_s": wall, "end_to_end": len(images) / wall,
                         "network": network_rate, "ratio": len(images) / wall / network_rate,
                         "asked": f"{backend} {precision}"})
            print(rows[-1], flush=True)
    return rows


def volume_row(out: Path) -> dict[str, object]:
    volume = SHARED / "msd_heart_la" / "imagesTr" / "la_003.nii.gz"
    torch.manual_seed(0)
    model_cfg = ModelConfig(arch="unet", encoder="resnet18", classes=1)
    plan = Plan(layout="msd", preprocess={"size": (256, 256)}, label_map={1: 1},
                classes=(ClassSpec(id=0, name="background"), ClassSpec(id=1, name="left atrium", role="left_atrium")))
    model = save_bundle(ModelBundle(build_model(model_cfg).eval(), model_cfg, plan), out / "msd256.safetensors")
    cfg = load_config(overrides={"predict.out_dir": out / "volume", "predict.backend": "auto"})
    predict_files([volume], [model], cfg)  # warm-up (and, for auto, the measurement)
    wait_quiet()
    started = time.perf_counter()
    result = predict_files([volume], [model], cfg)
    return {"volume": volume.name, "planes": result.n_planes, "wall_s": time.perf_counter() - started,
            "backend": result.backends[0]}


def app_row(model: Path) -> dict[str, object]:
    from fastapi.testclient import TestClient

    from cardioseg.app.server import create_app

    image = sorted((SHARED / "camus224" / "val").glob("patient*_ED.png"))[0]
    times = []
    with TestClient(create_app(model, load_config()), base_url="http://127.0.0.1:8000",
                    headers={"X-Cardioseg": "1"}) as client:
        for k in range(22):
            started = time.perf_counter()
            session = client.post("/api/sessions", params={"name": image.name}, content=image.read_bytes()).json()
            client.get(f"/api/sessions/{session['id']}/slices/0").raise_for_status()
            if k >= 2:  # the first two warm the model up
                times.append(time.perf_counter() - started)
            client.delete(f"/api/sessions/{session['id']}")
    return {"median_ms": 1000 * statistics.median(times), "p95_ms": 1000 * sorted(times)[int(0.95 * len(times)) - 1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="a trained camus224 checkpoint")
    parser.add_argument("--append", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    with tempfile.TemporaryDirectory() as scratch:
        rows = folder_rows(args.model, Path(scratch), BACKENDS)
        volume = volume_row(Path(scratch))
        print(volume, flush=True)
    served = app_row(args.model)
    print(served, flush=True)
    lines = ["", "## `cardioseg predict` end to end (issue 16)", "",
             f"Machine: {cpu_name()}, {os.cpu_count()} cores. Model: {args.model.name} (U-Net-ResNet18, trained, 128x128). "
             f"Command: `.venv/bin/python benchmarks/bench_predict.py --model {args.model}`", "",
             "200 camus224 validation PNGs -> PNG masks + predictions.csv. End to end = images / wall time of the "
             "whole `predict_files` call (model loading included, after a warm-up run that exported/compiled); "
             "network = images / the backend's own seconds in the same run.", "",
             "| backend | reader/writer threads | images/s end to end | images/s network only | end to end / network |",
             "|---|---|---:|---:|---:|"]
    lines += [f"| {r['backend']} | {'on' if r['pipelined'] else 'off'} | {r['end_to_end']:.1f} | {r['network']:.1f} | "
              f"{100 * r['ratio']:.0f}% |" for r in rows]
    lines += ["", f"MSD {volume['volume']} ({volume['planes']} planes of 256x256) to NIfTI with {volume['backend']}: "
              f"{volume['wall_s']:.1f} s end to end.", "",
              f"Web app, upload of a 224x224 PNG to its contour (POST /api/sessions + GET slice 0, test client): "
              f"median {served['median_ms']:.0f} ms, p95 {served['p95_ms']:.0f} ms over 20 uploads.", ""]
    table = "\n".join(lines)
    print(table)
    if args.append:
        with open(args.append, "a", encoding="utf-8") as handle:
            handle.write(table)


if __name__ == "__main__":
    main()
