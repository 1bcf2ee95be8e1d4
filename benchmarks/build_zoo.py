"""Build the ready-trained models of ``src/cardioseg/zoo/`` from the shared data, with the planned recipe.

Each model: prepare the dataset, train a compact network (``plain_unet``, 1.95 M parameters) with the recipe
`cardioseg train` plans for the budget on this machine (a finished run is kept: running the script again only
scores and ships again), score it on the held-out split at the original resolution
(through `evaluate`, i.e. as `predict` ships it), store its weights in half precision, score that file again, and
ship it only when half precision keeps its Dice (within ``MAX_HALF_LOSS`` of float32). Beside it: a card (task, data,
recipe, figures, CPU, licence, citation) and the data's licence.

    flock /tmp/cardioseg-cpu.lock .venv/bin/python benchmarks/build_zoo.py [--only echo-lv,la-mri] [--work runs/zoo]
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

from time_to_dice import cpu_name

from cardioseg.artifacts import ZooFiles
from cardioseg.config import load_config
from cardioseg.data.prepare import prepare_dataset
from cardioseg.evaluation.evaluate import evaluate_model
from cardioseg.fileio import write_json, write_text
from cardioseg.models.checkpoint import load_bundle, save_bundle
from cardioseg.models.zoo import ZOO_DIR
from cardioseg.training.run import train

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ARCH = "plain_unet"
MAX_HALF_LOSS = 0.002
CAMUS = {"licence": "CC BY-NC-SA 4.0 and the CAMUS terms: research and teaching only, no commercial use",
         "citation": "S. Leclerc et al., Deep Learning for Segmentation using an Open Large-Scale Dataset in 2D "
                     "Echocardiography, IEEE TMI 38(9):2198-2210, 2019",
         "licence_file": DATA / "camus224" / "LICENSE_TERMS.md"}
SPECS: dict[str, dict[str, Any]] = {
    "echo-lv": {
        **CAMUS, "source": DATA / "camus224", "labels": {1: 1}, "budget": "5m",
        "task": "LV cavity (blood pool) in apical 2- and 4-chamber echocardiograms",
        "data": "CAMUS 224x224 PNGs, official split: 400 training patients (1,600 images), scored on the 50 "
                "validation patients (200 images)"},
    "echo-3class": {
        **CAMUS, "source": DATA / "camus224", "labels": {1: 1, 2: 2, 3: 3}, "budget": "10m",
        "task": "LV cavity, LV myocardium and left atrium in apical 2- and 4-chamber echocardiograms",
        "data": "CAMUS 224x224 PNGs, official split: 400 training patients (1,600 images), scored on the 50 "
                "validation patients (200 images)"},
    "la-mri": {
        "source": DATA / "msd_heart_la", "labels": None, "budget": "10m", "split": [0.8, 0.2, 0.0],
        "task": "left atrium in 3D cardiac MRI volumes (1.25 mm in-plane)",
        "data": "Medical Segmentation Decathlon Task02 (left atrium), 15 volumes: 12 for training, scored on 3",
        "licence": "CC BY-SA 4.0",
        "citation": "M. Antonelli et al., The Medical Segmentation Decathlon, Nat Commun 13:4128, 2022; "
                    "C. Tobon-Gomez et al., IEEE TMI 34(7):1460-1473, 2015",
        "licence_file": None},
    "lv-sax-mri": {
        "source": DATA / "sunnybrook5", "labels": {1: 1}, "budget": "5m", "split": [0.8, 0.2, 0.0],
        "task": "LV cavity in short-axis cine MRI slices",
        "data": "Sunnybrook Cardiac Data, 5 patients (96 contoured slices): 4 for training, scored on 1 -- a small "
                "sample: check its masks by eye",
        "licence": "CC0 1.0",
        "citation": "P. Radau et al., Evaluation Framework for Algorithms Segmenting Short Axis Cardiac MRI, "
                    "MIDAS Journal, 2009",
        "licence_file": None},
}


def figures(summary: dict[str, Any]) -> dict[str, Any]:
    """Per-class Dice and HD95 (post-processed, mean and std over cases) and the volume error where there is one."""
    rows = summary["metrics"]["post"]
    out: dict[str, Any] = {"dice": {}, "dice_std": {}, "hd95": {}, "distance_unit": summary["distance_unit"],
                           "cases": summary["n_cases"]}
    for row in rows:
        if row["metric"] == "dice":
            out["dice"][row["class_name"]], out["dice_std"][row["class_name"]] = row["mean"], row["std"]
        if row["metric"] == "hd95":
            out["hd95"][row["class_name"]] = row["mean"]
    return out


def build(name: str, spec: dict[str, Any], work: Path) -> dict[str, Any]:
    prepared = work / name / "prepared"
    overrides: dict[str, Any] = {"data.source": spec["source"], "data.prepared": prepared, "data.labels": spec["labels"]}
    if "split" in spec:
        overrides["data.split_ratios"] = spec["split"]
    if not (prepared / "dataset.json").is_file():
        prepare_dataset(load_config(overrides=overrides), progress=False)
    run_dir = work / name / "run"
    run = train(load_config(overrides={"data.prepared": prepared, "train.run_dir": run_dir, "train.plan": True,
                                       "train.time_budget": spec["budget"], "model.arch": ARCH}), progress=False)
    scored = {}
    half = work / name / "half" / "model.safetensors"
    half.parent.mkdir(parents=True, exist_ok=True)
    save_bundle(load_bundle(run.model_path), half, half=True)
    for label, model in (("float32", run.model_path), ("float16", half)):
        result = evaluate_model(model, prepared, load_config(overrides={
            "evaluate.split": "val", "evaluate.out_dir": work / name / f"eval_{label}", "evaluate.overwrite": True}),
            progress=False)
        scored[label] = figures(result.summary) | {"clinical": result.summary.get("clinical"),
                                                   "case_ids": sorted(result.per_case["case_id"].unique().tolist())}
    loss = max(scored["float32"]["dice"][c] - scored["float16"]["dice"][c] for c in scored["float32"]["dice"])
    if loss > MAX_HALF_LOSS:
        raise SystemExit(f"{name}: half precision loses {loss:.4f} Dice (> {MAX_HALF_LOSS}); not shipped")
    bundle = load_bundle(half)
    shipped = scored["float16"]
    dice_text = ", ".join(f"{c} {v:.3f} ± {shipped['dice_std'][c]:.3f}" for c, v in shipped["dice"].items())
    card = {
        "name": name, "task": spec["task"], "data": spec["data"], "licence": spec["licence"],
        "citation": spec["citation"], "architecture": f"{ARCH} (1.95 M parameters), weights stored in float16",
        "classes": {str(c.id): c.name for c in bundle.plan.foreground},
        "recipe": {"budget": spec["budget"], "trained_seconds": round(run.train_seconds), "cpu": cpu_name(),
                   "epochs_run": run.epochs_run, "steps": run.steps,
                   "input": list(bundle.plan.preprocess.size), "crop": bundle.plan.preprocess.crop,
                   "context_slices": bundle.plan.context_slices},
        "validation": {"text": f"Dice {dice_text} ({shipped['cases']} held-out cases)", "dice": shipped["dice"],
                       "dice_std": shipped["dice_std"], "hd95": shipped["hd95"],
                       "distance_unit": shipped["distance_unit"], "cases": shipped["cases"],
                       "float32_dice": scored["float32"]["dice"], "clinical": shipped["clinical"],
                       "case_ids": shipped["case_ids"]},
        "built_with": "benchmarks/build_zoo.py",
    }
    files = ZooFiles(ZOO_DIR / name)
    files.root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(half, files.model)
    write_json(files.card, card)
    terms = spec["licence_file"].read_text(encoding="utf-8") if spec["licence_file"] else ""
    write_text(files.licence, f"# Data licence of the `{name}` model\n\nThe weights were learnt from: {spec['data']}.\n"
                              f"Licence of that data, which applies to these weights: **{spec['licence']}**.\n\n"
                              f"Cite: {spec['citation']}\n\n{terms}")
    return card


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(SPECS), help="comma-separated names")
    parser.add_argument("--work", type=Path, default=Path("runs/zoo"))
    args = parser.parse_args()
    for name in args.only.split(","):
        card = build(name, SPECS[name], args.work)
        print(json.dumps({"name": name, "validation": card["validation"]["text"], "recipe": card["recipe"]}))


if __name__ == "__main__":
    main()
