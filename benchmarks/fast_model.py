"""The fast configuration against the default (issue 16): the same training, Dice on the validation patients, then speed.

Trains U-Net-ResNet18 (the default), ``unet_fast``-ResNet18 (half-width decoder) and
``unet_fast``-MobileNetV2 on camus224 LV cavity at 128x128 with one protocol (same seed, epochs,
batch, learning rate), evaluates each on the official validation patients, the split training picked its
checkpoint on (Dice at the original
224x224 grid, after post-processing) and writes ``benchmarks/fast_model/results.json``, which
``bench_inference.py --pareto`` joins with its speed measurements. Resumable: a trained run is
left alone (`train` says "finished run"), so a killed benchmark picks up where it stopped.

    flock /tmp/cardioseg-cpu.lock .venv/bin/python benchmarks/fast_model.py --epochs 8
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cardioseg.config import load_config
from cardioseg.data.prepare import prepare_dataset
from cardioseg.evaluation.evaluate import evaluate_model
from cardioseg.models.factory import build_model, count_parameters
from cardioseg.models.summary import summarize
from cardioseg.training.run import train

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "camus224"
OUT = ROOT / "benchmarks" / "fast_model"
MODELS = {"unet-resnet18": ("unet", "resnet18"), "unet_fast-resnet18": ("unet_fast", "resnet18"),
          "unet_fast-mobilenet_v2": ("unet_fast", "mobilenet_v2")}


def _metric(summary: dict, metric: str, stat: str) -> float:
    """One statistic of the post-processed masks' metric, from an evaluation summary."""
    return next(row[stat] for row in summary["metrics"]["post"] if row["metric"] == metric)


def prepared_camus(work: Path, size: int) -> tuple[Path, dict[str, object]]:
    """camus224 LV cavity prepared at ``size`` under ``work`` (once), and the overrides every run shares."""
    prepared = work / f"camus{size}"
    base: dict[str, object] = {"data.source": DATA, "data.prepared": prepared, "data.labels": {1: 1},
                               "preprocess.size": [size, size]}
    if not (prepared / "dataset.json").is_file():
        prepare_dataset(load_config(overrides=base), progress=False)
    return prepared, base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--work", type=Path, default=Path("/tmp/cardioseg-fast-model"), help="prepared data and runs")
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"camus224 not found at {DATA}: this benchmark needs the shared data")
    prepared, base = prepared_camus(args.work, args.size)
    results = {}
    for name, (arch, encoder) in MODELS.items():
        run_dir = args.work / "runs" / f"{name}-{args.epochs}ep"
        cfg = load_config(overrides={**base, "train.run_dir": run_dir, "model.arch": arch, "model.encoder": encoder,
                                     "train.epochs": args.epochs, "train.batch_size": 16, "train.seed": 0,
                                     "evaluate.split": "val", "evaluate.overwrite": True,
                                     "evaluate.backend": "torch", "evaluate.precision": "32"})
        trained = train(cfg, progress=False)
        evaluation = evaluate_model(trained.model_path, prepared, cfg, progress=False)
        model_cfg = cfg.model.model_copy(update={"arch": arch, "encoder": encoder})
        summary = summarize(model_cfg, args.size)
        results[name] = {
            "arch": arch, "encoder": encoder, "epochs": args.epochs, "model": str(trained.model_path),
            "dice_val": _metric(evaluation.summary, "dice", "mean"), "dice_val_std": _metric(evaluation.summary, "dice", "std"),
            "hd95_val": _metric(evaluation.summary, "hd95", "mean"), "n_images": evaluation.summary["n_images"],
            "parameters": count_parameters(build_model(model_cfg)), "gflops": 2 * summary.macs / 1e9,
            "train_seconds": trained.train_seconds, "train_precision": trained.precision,
        }
        print(name, json.dumps({k: v for k, v in results[name].items() if k != "summary"}), flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
