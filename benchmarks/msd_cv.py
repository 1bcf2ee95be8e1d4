"""Issue 14's MSD target: 5-fold cross-validation over all 15 left-atrium volumes, each fold trained within a budget.

Each fold (``data.folds: 5``, seeded; la_005 and la_026, byte-identical images, always share a fold) tests on its
three volumes; of the other twelve, 80 % train and 20 % validate (the kept checkpoint). Every test volume is scored
once, in 3D at its original grid, after the 3D post-processing (largest component, holes filled), and its LA volume
in mL is compared with the reference. Variants, one after the other on this machine:

- ``planned``: `cardioseg train --time-budget B` (the planner chooses; on this data, 2.5D input);
- ``planned2d``: the same with each plane alone (``model.context_slices=0``), to measure what 2.5D adds;
- ``unet3d``: the planned recipe around MONAI's 3D U-Net (windows of 32 planes, sliding-window prediction);
- ``old``: the earlier defaults, `--no-plan` (U-Net-ResNet18 at 128 px, 20 epochs or the budget).

    flock /tmp/cardioseg-cpu.lock .venv/bin/python benchmarks/msd_cv.py --budget 6m --variants planned \
        --out runs/bench/msd_cv

Results: OUT/<variant>/summary.json, a markdown table on stdout, and each fold's Dice against training time.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from time_to_dice import cpu_name

from cardioseg.config import load_config
from cardioseg.data.prepare import prepare_dataset
from cardioseg.evaluation.evaluate import evaluate_model
from cardioseg.training.run import train

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "msd_heart_la"
FOLDS = 5
VARIANTS: dict[str, dict[str, Any]] = {
    "planned": {"train.plan": True},
    "planned2d": {"train.plan": True, "model.context_slices": 0},
    "unet3d": {"train.plan": True, "model.arch": "unet3d"},
    "old": {"train.plan": False},
}


def fold_dataset(out: Path, fold: int) -> Path:
    prepared = out / "prepared" / f"fold{fold}"
    if not (prepared / "dataset.json").is_file():
        prepare_dataset(load_config(overrides={
            "data.source": DATA, "data.prepared": prepared, "data.folds": FOLDS, "data.fold": fold,
            "data.split_ratios": [0.8, 0.2, 0.0], "preprocess.size": [128, 128],
            "preprocess.normalize": "percentile"}), progress=False)
    return prepared


def run_fold(variant: str, fold: int, budget: str, out: Path) -> dict[str, Any]:
    prepared = fold_dataset(out, fold)
    run_dir = out / variant / f"fold{fold}"
    cfg = load_config(overrides={"data.prepared": prepared, "train.run_dir": run_dir, "train.time_budget": budget,
                                 **VARIANTS[variant]})
    trained = train(cfg, progress=False)
    evaluation = evaluate_model(trained.model_path, prepared, load_config(overrides={
        "evaluate.split": "test", "evaluate.out_dir": run_dir / "evaluation",
        "evaluate.postprocess.largest_component": True, "evaluate.postprocess.fill_holes": True}), progress=False)
    post = evaluation.per_case[evaluation.per_case["variant"] == "post"]
    volumes = {c["case_id"]: c for c in evaluation.summary["clinical"]["volumes"]["cases"]}
    log = pd.read_csv(run_dir / "logs" / "metrics.csv").dropna(subset=["val_dice", "train_seconds"])
    return {
        "fold": fold, "epochs": trained.epochs_run, "steps": trained.steps, "train_seconds": trained.train_seconds,
        "unit": evaluation.summary["clinical"]["volumes"]["unit"],
        "volumes": [{"case_id": row.case_id, "dice": float(row.dice), "pred_ml": volumes[row.case_id]["pred"],
                     "ref_ml": volumes[row.case_id]["ref"]} for row in post.itertuples()],
        "curve": log[["train_seconds", "val_dice"]].round(4).values.tolist(),
    }


def summarise(folds: list[dict[str, Any]]) -> dict[str, Any]:
    volumes = [v for f in folds for v in f["volumes"]]
    dice = np.array([v["dice"] for v in volumes])
    errors = np.array([abs(v["pred_ml"] - v["ref_ml"]) for v in volumes])
    return {"n_volumes": len(volumes), "dice_mean": float(dice.mean()), "dice_std": float(dice.std(ddof=1)),
            "volume_abs_error_ml": float(errors.mean()), "volume_abs_error_std": float(errors.std(ddof=1)),
            "max_train_seconds": max(f["train_seconds"] for f in folds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", default="10m", help="training budget per fold")
    parser.add_argument("--variants", default="planned")
    parser.add_argument("--folds", default=",".join(str(f) for f in range(FOLDS)))
    parser.add_argument("--out", type=Path, default=Path("runs/bench/msd_cv"))
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"msd_heart_la not found at {DATA}: this benchmark needs the shared data")
    rows = []
    for variant in args.variants.split(","):
        folds = [run_fold(variant, int(f), args.budget, args.out) for f in args.folds.split(",")]
        summary = {"variant": variant, "budget": args.budget, "cpu": cpu_name(), **summarise(folds), "folds": folds}
        (args.out / variant).mkdir(parents=True, exist_ok=True)
        (args.out / variant / "summary.json").write_text(json.dumps(summary, indent=1))
        rows.append(summary)
    print("| variant | budget per fold | volumes | 3D Dice mean ± std | |LA volume error| mL | longest fold s | CPU |")
    print("|---|---|---:|---|---:|---:|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['budget']} | {r['n_volumes']} | {r['dice_mean']:.4f} ± {r['dice_std']:.4f} | "
              f"{r['volume_abs_error_ml']:.2f} ± {r['volume_abs_error_std']:.2f} | {r['max_train_seconds']:.0f} | "
              f"{r['cpu']} |")


if __name__ == "__main__":
    main()
