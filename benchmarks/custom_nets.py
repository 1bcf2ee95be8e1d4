"""Custom networks of the studies on camus224 LV endocardium (issue 5), under one budget each.

Produces the CT study's table (parameters, model size, inference time per image on this CPU,
Dice) for the U-Net variants, and the echo ResUNet study's comparison (U-Net vs ResUNet vs
improved ResUNet: Dice and accuracy). Every network gets the same wall-clock training budget on
the official training split and is scored on the official validation split at the original
224x224 resolution. The improved ResUNet is run as its study pairs it (CLAHE preprocessing,
Dice + cross-entropy loss) and also without CLAHE, so the network and the preprocessing can be
told apart. CT variant 2 is variant 1 trained on a ten-fold offline-augmented training set. Every network's
BatchNorm statistics are re-estimated with its final weights before each validation (precise BN,
``train.recalibrate_bn_batches``): in runs this short the moving averages lag the weights.

    .venv/bin/python benchmarks/custom_nets.py --budget 150s --size 96 --out runs/bench/custom_nets_150s
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd
from scipy import stats

from cardioseg.config import load_config
from cardioseg.data.offline_augment import augment_offline
from cardioseg.data.prepare import prepare_dataset
from cardioseg.evaluation.evaluate import evaluate_model
from cardioseg.training.run import train

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "camus224"

# name, architecture, model options, CLAHE, offline x10
RUNS: list[tuple[str, str, dict, bool, bool]] = [
    ("U-Net (32-256, bilinear)", "plain_unet", {}, False, False),
    ("ResUNet (base 32)", "resunet", {"base": 32}, False, False),
    ("Improved ResUNet (base 32) + CLAHE", "resunet_improved", {"base": 32}, True, False),
    ("Improved ResUNet (base 32), no CLAHE", "resunet_improved", {"base": 32}, False, False),
    ("CT 1: DoubleConv U-Net (32-512)", "ct_unet_doubleconv", {}, False, False),
    ("CT 2: DoubleConv + 10x offline augmentation", "ct_unet_doubleconv", {}, False, True),
    ("CT 3: SPConv U-Net", "ct_unet_spconv", {}, False, False),
    ("CT 4: DoubleConv + RA skips", "ct_unet_ra", {}, False, False),
    ("CT 5: DoubleConv + MFE + CIE + RA", "ct_unet_mfe_cie", {}, False, False),
]


# (a, b): paired per-image comparisons of RUNS indices, the published claims first.
PAIRS: list[tuple[int, int]] = [(2, 1), (1, 0), (2, 0), (3, 1), (2, 3), (5, 4), (6, 4), (7, 4), (8, 4), (8, 7)]


def per_case_dice(run_dir: Path) -> pd.Series:
    cases = pd.read_csv(run_dir / "evaluation" / "per_case.csv")
    return cases[cases.variant == "raw"].set_index("case_id")["dice"]


def ef_mae(run_dir: Path) -> float:
    """Mean absolute error of the biplane ejection fraction (percentage points) against the reference masks'."""
    return round(float(pd.read_csv(run_dir / "evaluation" / "clinical_ef.csv")["ef_error"].abs().mean()), 2)


def paired_comparisons(run_dirs: dict[int, Path]) -> pd.DataFrame:
    """Same validation images, two networks: Dice difference, images won, Wilcoxon signed-rank p."""
    rows = []
    for a, b in PAIRS:
        if a not in run_dirs or b not in run_dirs:
            continue
        da, db = per_case_dice(run_dirs[a]), per_case_dice(run_dirs[b])
        delta = (da - db.reindex(da.index)).dropna()
        rows.append({"a": RUNS[a][0], "b": RUNS[b][0], "images": len(delta),
                     "mean Dice a - b": round(delta.mean(), 4), "a better on": int((delta > 0).sum()),
                     "b better on": int((delta < 0).sum()), "Wilcoxon p": float(f"{stats.wilcoxon(delta).pvalue:.3g}")})
    return pd.DataFrame(rows)


def metric(summary: dict, name: str) -> tuple[float, float]:
    record = next(r for r in summary["metrics"]["raw"] if r["metric"] == name)
    return record["mean"], record["std"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", default="150s")
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--recalibrate-bn", type=int, default=20,
                        help="re-estimate BatchNorm statistics from the last N training batches before each validation")
    parser.add_argument("--seed", type=int, default=0, help="training seed (other seeds get their own run folders)")
    parser.add_argument("--only", default="", help="comma-separated indices of RUNS to run")
    parser.add_argument("--out", type=Path, default=Path("runs/bench/custom_nets"))
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"camus224 not found at {DATA}: this benchmark needs the shared data")
    selected = [int(i) for i in args.only.split(",") if i] or range(len(RUNS))
    rows, run_dirs = [], {}
    for index in selected:
        name, arch, options, use_clahe, offline = RUNS[index]
        prepared = args.out / f"camus_lv_{args.size}{'_clahe' if use_clahe else ''}"
        overrides = {"data.source": DATA, "data.prepared": prepared, "data.labels": {1: 1},
                     "preprocess.size": [args.size, args.size], "preprocess.clahe": use_clahe}
        if not (prepared / "dataset.json").is_file():
            prepare_dataset(load_config(overrides=overrides), progress=False)
        train_data = prepared
        if offline:
            train_data = prepared.with_name(prepared.name + "_offline10")
            if not (train_data / "dataset.json").is_file():
                augment_offline(prepared, train_data, copies=10, seed=0)
        run_dir = args.out / f"run{index}_{arch}{f'_s{args.seed}' if args.seed else ''}"
        record_path = run_dir / "record.json"
        run_dirs[index] = run_dir
        if record_path.is_file():
            rows.append(json.loads(record_path.read_text()))
            continue
        cfg = load_config(overrides={**overrides, "data.prepared": train_data, "model.arch": arch,
                                     "model.encoder": None, "model.options": options,
                                     "train.run_dir": run_dir, "train.epochs": 1000, "train.time_budget": args.budget,
                                     "train.batch_size": args.batch_size, "train.lr": args.lr,
                                     "train.recalibrate_bn_batches": args.recalibrate_bn, "train.seed": args.seed,
                                     "evaluate.split": "val", "evaluate.out_dir": run_dir / "evaluation"})
        started = time.perf_counter()
        trained = train(cfg, progress=False)
        evaluation = evaluate_model(trained.model_path, prepared, cfg, progress=False)
        dice, dice_std = metric(evaluation.summary, "dice")
        accuracy, _ = metric(evaluation.summary, "accuracy")
        hd95, _ = metric(evaluation.summary, "hd95")
        row = {"network": name, "arch": arch, "options": json.dumps(options), "clahe": use_clahe,
               "parameters_M": round(evaluation.summary["parameters"] / 1e6, 3),
               "size_MB": evaluation.summary["model_file_mb"],
               "inference_ms_per_image": evaluation.summary["inference_ms_per_image"],
               "epochs": trained.epochs_run, "dice": round(dice, 4), "dice_std": round(dice_std, 4),
               "accuracy": round(accuracy, 4), "hd95_px": round(hd95, 2),
               "wall_seconds": round(time.perf_counter() - started, 1)}
        record_path.write_text(json.dumps(row))
        rows.append(row)
        print(json.dumps(row))
    table = pd.DataFrame(rows)
    table.insert(2, "seed", args.seed)
    table["ef_mae_points"] = [ef_mae(run_dirs[i]) for i in selected]
    suffix = f"_s{args.seed}" if args.seed else ""
    table.to_csv(args.out / f"custom_nets{suffix}.csv", index=False)
    pairs = paired_comparisons(run_dirs)
    pairs.to_csv(args.out / f"custom_nets_pairs{suffix}.csv", index=False)
    report = f"{table.to_markdown(index=False)}\n\nPaired per-image comparisons (validation split):\n\n{pairs.to_markdown(index=False)}\n"
    (args.out / f"custom_nets{suffix}.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
