"""Evaluate scores what predict ships (issue 13): `cardioseg evaluate` against predict's written masks, scored apart.

Runs ``cardioseg evaluate`` with the given models (an ensemble), backend and TTA on a raw data
folder, then ``cardioseg predict`` with the same settings on the same files, reads the masks
predict wrote, scores them against the references with the project's metrics, and prints both
mean Dice values and the largest per-case difference.

    .venv/bin/python benchmarks/evaluate_as_shipped.py -m A.safetensors -m B.safetensors --tta --backend onnx \\
        --data ../shared/data/camus224 --split val --out runs/bench/shipped_camus
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from PIL import Image

from cardioseg.artifacts import EvaluationFiles, PredictionFiles
from cardioseg.data.prepared import PreparedDataset
from cardioseg.data.preprocess import orient
from cardioseg.evaluation.metrics import overlap_metrics

CLI = str(Path(sys.executable).parent / "cardioseg")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-m", "--model", action="append", required=True, type=Path)
    parser.add_argument("--data", required=True, type=Path, help="raw data folder")
    parser.add_argument("--split", default="val")
    parser.add_argument("--backend", default="onnx")
    parser.add_argument("--tta", action="store_true")
    parser.add_argument("--largest-component", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("runs/bench/shipped"))
    args = parser.parse_args()
    models = [arg for m in args.model for arg in ("-m", str(m))]
    shipped = [*models, "--backend", args.backend, *(["--tta"] if args.tta else [])]
    post = ["--set", f"evaluate.postprocess.largest_component={str(args.largest_component).lower()}"]
    evaluation = args.out / "evaluation"
    subprocess.run([CLI, "evaluate", *shipped, "-d", str(args.data), "--split", args.split, "-o", str(evaluation),
                    "-q", *post], check=True)
    files = EvaluationFiles(evaluation)
    prepared = PreparedDataset(files.prepared)
    cases = sorted(set(prepared.manifest.loc[prepared.indices(args.split), "case_id"]))
    sources = [prepared.cases[c]["source_image"] for c in cases]
    predictions = args.out / "predict"
    subprocess.run([CLI, "predict", *shipped, *sources, "-o", str(predictions), "-q",
                    *(["--largest-component"] if args.largest_component else [])], check=True)
    table = pd.read_csv(files.per_case)
    scored = table[table.variant == "post"].set_index(["case_id", "class_name"])["dice"]
    plan = prepared.plan
    rows = []
    for case, source in zip(cases, sources):
        stem = Path(source).name.split(".")[0]
        if prepared.cases[case]["ndim"] == 3:
            mask = np.asanyarray(nib.load(PredictionFiles(predictions).mask(stem, volume=True)).dataobj)
        else:
            mask = orient(np.array(Image.open(PredictionFiles(predictions).mask(stem))), plan.orientation)
        reference = prepared.original_label(case)
        for spec in plan.foreground:
            predicted = mask == (1 if plan.binary else spec.id)
            dice = overlap_metrics(predicted, reference == spec.id)["dice"]
            rows.append({"case": case, "class": spec.name, "predict_dice": dice, "evaluate_dice": scored[(case, spec.name)]})
    frame = pd.DataFrame(rows)
    result = {
        "models": [str(m) for m in args.model], "backend": args.backend, "tta": args.tta, "data": str(args.data),
        "split": args.split, "cases": len(cases),
        "evaluate_mean_dice": round(float(frame.evaluate_dice.mean()), 6),
        "predict_masks_mean_dice": round(float(frame.predict_dice.mean()), 6),
        "max_abs_difference": float((frame.evaluate_dice - frame.predict_dice).abs().max()),
        "backends_used": json.loads(files.summary.read_text())["backends"],
    }
    print(json.dumps(result, indent=1))
    (args.out / "shipped.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
