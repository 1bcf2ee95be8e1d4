"""The CT study's block forms against this project's earlier ones (issue 17), at one training protocol.

ct_unet_ra with the study's parameter-free RA skip (``ra: study``) against the residual trunk +
learnt gate (``ra: gated``); ct_unet_mfe_cie with the study's split-input MFE (``mfe_input:
split``) against whole-input branches (``whole``). No CT data is reachable here, so they are
trained on camus224 LV cavity at 128x128 (same seed, epochs, batch, learning rate for all) and
scored on the 200 official validation images; ``--base`` narrows the networks to fit the CPU.
Writes ``benchmarks/ct_forms/results.json``; resumable (a finished run is left alone).

    flock /tmp/cardioseg-cpu.lock .venv/bin/python benchmarks/ct_forms.py --base 16 --epochs 6
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fast_model import _metric, prepared_camus

from cardioseg.config import load_config
from cardioseg.evaluation.evaluate import evaluate_model
from cardioseg.models.factory import build_model, count_parameters
from cardioseg.training.run import train

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "ct_forms"
FORMS = {"ct_unet_ra study": ("ct_unet_ra", {"ra": "study"}), "ct_unet_ra gated": ("ct_unet_ra", {"ra": "gated"}),
         "ct_unet_mfe_cie split": ("ct_unet_mfe_cie", {"mfe_input": "split"}),
         "ct_unet_mfe_cie whole": ("ct_unet_mfe_cie", {"mfe_input": "whole"})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--base", type=int, default=16)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--work", type=Path, default=Path("/tmp/cardioseg-fast-model"))
    args = parser.parse_args()
    prepared, base = prepared_camus(args.work, args.size)
    results = {}
    for name, (arch, options) in FORMS.items():
        run_dir = args.work / "ct_forms" / f"{name.replace(' ', '-')}-b{args.base}-{args.epochs}ep"
        cfg = load_config(overrides={**base, "train.run_dir": run_dir, "model.arch": arch, "model.encoder": None,
                                     "model.options": {**options, "base": args.base}, "train.epochs": args.epochs,
                                     "train.batch_size": 16, "train.seed": 0, "train.recalibrate_bn_batches": 20,
                                     "evaluate.split": "val", "evaluate.overwrite": True, "evaluate.backend": "torch",
                                     "evaluate.precision": "32"})
        trained = train(cfg, progress=False)
        evaluation = evaluate_model(trained.model_path, prepared, cfg, progress=False)
        results[name] = {"arch": arch, "options": {**options, "base": args.base}, "epochs": args.epochs,
                         "parameters": count_parameters(build_model(cfg.model)),
                         "dice_val": _metric(evaluation.summary, "dice", "mean"),
                         "dice_val_std": _metric(evaluation.summary, "dice", "std"),
                         "hd95_val": _metric(evaluation.summary, "hd95", "mean"), "train_seconds": trained.train_seconds}
        print(name, json.dumps(results[name]), flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
