"""Time to Dice on echo (issue 3): camus224 LV endocardium, validation Dice against wall-clock time.

Trains on the official training split within a wall-clock budget, then scores the best checkpoint
on the official validation split at the ORIGINAL 224x224 resolution. Run once with the fast path
(bfloat16 autocast + channels_last, where the CPU supports bf16) and once without, to show the
speed ratio.

    .venv/bin/python benchmarks/time_to_dice.py --budget 5m --out runs/bench/time_to_dice
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
from pathlib import Path

import pandas as pd

from cardioseg.config import load_config
from cardioseg.data.prepare import prepare_dataset
from cardioseg.data.prepared import PreparedDataset
from cardioseg.evaluation.evaluate import evaluate_model
from cardioseg.training.run import train

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "camus224"


def cpu_name() -> str:
    for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
        if line.startswith("Model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", default="5m")
    parser.add_argument("--epochs", type=int, default=None,
                        help="train exactly this many epochs instead of a wall-clock budget (repeatable figures)")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--arch", default="unet")
    parser.add_argument("--encoder", default="resnet18")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--augment", default="none")
    parser.add_argument("--variants", default="fast,fp32", help="fast (bf16 + channels_last) and/or fp32")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("runs/bench/time_to_dice"))
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"camus224 not found at {DATA}: this benchmark needs the shared data")

    prepared = args.out / f"camus224_lv_{args.size}"
    base = {"data.source": DATA, "data.prepared": prepared, "data.labels": {1: 1},
            "preprocess.size": [args.size, args.size]}
    if not (prepared / "dataset.json").is_file():
        prepare_dataset(load_config(overrides=base), progress=False)
    results = []
    for variant in args.variants.split(","):
        run_dir = args.out / f"{args.arch}_{args.encoder}_{args.size}_{variant}"
        cfg = load_config(overrides={
            **base, "train.run_dir": run_dir, "model.arch": args.arch, "model.encoder": args.encoder,
            "train.epochs": args.epochs or 100, "train.time_budget": None if args.epochs else args.budget, "train.batch_size": args.batch_size,
            "train.lr": args.lr, "train.augment.preset": args.augment, "train.num_workers": args.workers,
            "train.precision": "auto" if variant == "fast" else "32", "train.channels_last": variant == "fast",
            "evaluate.split": "val", "evaluate.out_dir": run_dir / "evaluation",
        })
        trained = train(cfg, progress=False)
        evaluation = evaluate_model(trained.model_path, prepared, cfg, progress=False)
        log = pd.read_csv(run_dir / "logs" / "metrics.csv")
        curve = log[["epoch", "train_seconds", "val_dice"]].dropna()
        n_train = len(PreparedDataset(prepared).indices("train"))
        dice = next(r for r in evaluation.summary["metrics"]["raw"] if r["metric"] == "dice")
        results.append({
            "variant": variant, "precision": trained.precision, "epochs": trained.epochs_run,
            "train_seconds": round(trained.train_seconds, 1),
            "images_per_second": round(trained.steps * args.batch_size / trained.train_seconds, 1),
            "val_dice_network_res": round(trained.best_val_dice or float("nan"), 4),
            "val_dice_original_res": round(dice["mean"], 4), "val_dice_std": round(dice["std"], 4),
            "curve": curve.round(4).to_dict("records"), "n_train_images": n_train,
        })
        print(json.dumps(results[-1], indent=1))
    summary = {"cpu": cpu_name(), "cores": __import__("os").cpu_count(), "args": vars(args) | {"out": str(args.out)},
               "results": results}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))


if __name__ == "__main__":
    main()
