"""Left atrium on MRI (issue 3): a 2D model on msd_heart_la slices, scored as 3D volumes.

Slices are split by volume (patient-level, seeded 80/10/10, with the byte-identical la_005 and
la_026 kept together); the best checkpoint's slice predictions are put back together into volumes
on the original grid, and 3D Dice is reported per test volume, without and with the 3D
post-processing (largest connected component, hole filling).

    .venv/bin/python benchmarks/la_mri.py --budget 4m --out runs/bench/la_mri
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cardioseg.config import load_config
from cardioseg.data.prepare import prepare_dataset
from cardioseg.evaluation.evaluate import evaluate_model
from cardioseg.training.run import train

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "msd_heart_la"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", default="4m")
    parser.add_argument("--epochs", type=int, default=None,
                        help="train exactly this many epochs instead of a wall-clock budget (repeatable figures)")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--arch", default="unet")
    parser.add_argument("--encoder", default="resnet18")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--augment", default="none")
    parser.add_argument("--seed", type=int, default=0, help="split and training seed")
    parser.add_argument("--out", type=Path, default=Path("runs/bench/la_mri"))
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"msd_heart_la not found at {DATA}: this benchmark needs the shared data")
    prepared = args.out / f"msd_la_{args.size}_seed{args.seed}"
    run_dir = args.out / f"{args.arch}_{args.encoder}_{args.size}_seed{args.seed}"
    cfg = load_config(overrides={
        "data.source": DATA, "data.prepared": prepared, "data.seed": args.seed,
        "preprocess.size": [args.size, args.size], "preprocess.normalize": "percentile",
        "preprocess.percentiles": [1, 99],
        "train.run_dir": run_dir, "model.arch": args.arch, "model.encoder": args.encoder,
        "train.epochs": args.epochs or 100, "train.time_budget": None if args.epochs else args.budget, "train.batch_size": args.batch_size,
        "train.lr": args.lr, "train.augment.preset": args.augment, "train.seed": args.seed,
        "evaluate.split": "test", "evaluate.out_dir": run_dir / "evaluation",
        "evaluate.postprocess.largest_component": True, "evaluate.postprocess.fill_holes": True,
    })
    if not (prepared / "dataset.json").is_file():
        prepare_dataset(cfg, progress=False)
    trained = train(cfg, progress=False)
    evaluation = evaluate_model(trained.model_path, prepared, cfg, progress=False)
    per_volume = evaluation.per_case.pivot_table(index="case_id", columns="variant", values="dice")
    result = {
        "budget": args.budget, "epochs": trained.epochs_run, "train_seconds": round(trained.train_seconds, 1),
        "precision": trained.precision, "val_dice_2d_slices": trained.best_val_dice,
        "test_volumes": per_volume.round(4).to_dict("index"),
        "mean_3d_dice": per_volume.mean().round(4).to_dict(),
        "clinical": evaluation.summary.get("clinical"),
    }
    print(json.dumps(result, indent=1, default=str))
    (run_dir / "benchmark.json").write_text(json.dumps(result, indent=1, default=str))


if __name__ == "__main__":
    main()
