"""Issue 14: the planned recipe against the old defaults and a plain bf16 PyTorch loop, same data, same budget.

camus224 LV cavity (`--labels 1:1`; or the three structures with `--labels 1:1,2:2,3:3`), official split: trained on the 1,600 training images, scored on the 200
validation images at the original 224x224 resolution, against the reference as stored and as repaired
(the reader's label-artefact repair). Three variants, one after the other on this machine:

- ``old``: `cardioseg train --no-plan --time-budget B` on the dataset prepared at 128x128 (the earlier
  defaults: U-Net-ResNet18, AdamW 1e-3, batch 16, 20 epochs, no augmentation);
- ``planned``: `cardioseg train --time-budget B` (the recipe planned for B on this machine);
- ``planned:ARCH``: the planned recipe around another network (``--set model.arch=ARCH``), e.g. ``planned:plain_unet``;
- ``plain``: a plain PyTorch loop (the same U-Net-ResNet18, AdamW 1e-3, bf16 autocast where the CPU has it,
  Dice+BCE, batch 16, no schedule) on the 128x128 arrays until the budget runs out.

    flock /tmp/cardioseg-cpu.lock .venv/bin/python benchmarks/planned_recipe.py --budget 5m --out runs/bench/recipe
    flock /tmp/cardioseg-cpu.lock .venv/bin/python benchmarks/planned_recipe.py --labels 1:1,2:2,3:3 --budget 30m \
        --variants planned,old --out runs/bench/recipe

Results: OUT/summary.json and a markdown table on stdout (Dice against training time from each run's log).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from segmentation_models_pytorch.losses import DiceLoss
from time_to_dice import cpu_name

from cardioseg.config import ModelConfig, load_config, parse_duration
from cardioseg.data.prepare import prepare_dataset
from cardioseg.data.prepared import PreparedDataset
from cardioseg.evaluation.evaluate import evaluate_model
from cardioseg.evaluation.postprocess_choice import choose_once
from cardioseg.models.checkpoint import ModelBundle, save_bundle
from cardioseg.models.factory import build_model
from cardioseg.runtime import cpu_supports_bf16
from cardioseg.training.run import train

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "camus224"


def prepared_camus(out: Path, repair: bool, labels: dict[int, int] | None = None) -> Path:
    labels = labels or {1: 1}
    task = "lv" if labels == {1: 1} else "labels" + "".join(f"_{k}-{v}" for k, v in labels.items())
    path = out / (f"camus_{task}_128" if repair else f"camus_{task}_as_stored")
    if not (path / "dataset.json").is_file():
        prepare_dataset(load_config(overrides={"data.source": DATA, "data.prepared": path, "data.labels": labels,
                                               "preprocess.size": [128, 128],
                                               "data.repair_label_artefacts": repair}), progress=False)
    return path


def plain_loop(prepared: Path, run_dir: Path, budget_s: float, seed: int = 0) -> tuple[Path, list[dict]]:
    """The loop a PyTorch user writes in 60 lines: no framework, no schedule, bf16 autocast where available.
    One foreground class: Dice + BCE on one logit; several: Dice + cross-entropy (validation Dice of the first)."""
    torch.manual_seed(seed)
    data = PreparedDataset(prepared)
    binary = data.plan.out_channels == 1
    rows, val_rows = data.indices("train"), data.indices("val")
    images = torch.from_numpy(np.asarray(data.images[rows], np.float32))[:, None]
    train_labels = np.asarray(data.labels[rows])
    labels = torch.from_numpy((train_labels == 1).astype(np.float32))[:, None] if binary else \
        torch.from_numpy(train_labels.astype(np.int64))
    val_x = torch.from_numpy(np.asarray(data.images[val_rows], np.float32))[:, None]
    val_y = np.asarray(data.labels[val_rows]) == 1
    model_cfg = ModelConfig(arch="unet", encoder="resnet18", classes=data.plan.out_channels)
    model = build_model(model_cfg).to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    dice = DiceLoss("binary" if binary else "multiclass")
    bce = torch.nn.BCEWithLogitsLoss() if binary else torch.nn.CrossEntropyLoss()
    bf16 = cpu_supports_bf16()
    curve, started = [], time.perf_counter()
    while time.perf_counter() - started < budget_s:
        model.train()
        for batch in torch.randperm(len(images)).split(16):
            if time.perf_counter() - started >= budget_s:
                break
            x = images[batch].contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = model(x)
            loss = 0.5 * dice(logits.float(), labels[batch]) + 0.5 * bce(logits.float(), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = torch.cat([model(x) for x in val_x.split(32)]).float()
            pred = logits[:, 0].numpy() > 0 if binary else logits.argmax(1).numpy() == 1
        inter, total = (pred & val_y).sum((1, 2)), pred.sum((1, 2)) + val_y.sum((1, 2))
        curve.append({"train_seconds": round(time.perf_counter() - started, 1),
                      "val_dice": round(float(np.mean(np.where(total > 0, 2 * inter / np.maximum(total, 1), 1))), 4)})
    bundle = ModelBundle(model=model.to(memory_format=torch.contiguous_format).float().eval(), model_cfg=model_cfg,
                         plan=data.plan, extra={"train_seconds": round(time.perf_counter() - started, 1)})
    return save_bundle(bundle, run_dir / "model.safetensors"), curve


def scores(model: Path, as_stored: Path, repaired: Path, out: Path, tta: bool = False) -> dict[str, float]:
    """Mean and std Dice after post-processing, as stored and repaired; with several classes, also per class."""
    found = {}
    for name, data in (("as_stored", as_stored), ("repaired", repaired)):
        cfg = load_config(overrides={"evaluate.split": "val", "evaluate.out_dir": out / f"evaluation_{name}",
                                     "evaluate.overwrite": True, "evaluate.tta": tta})
        summary = evaluate_model(model, data, cfg, progress=False).summary
        dice = [r for r in summary["metrics"]["post"] if r["metric"] == "dice"]
        found[name] = round(float(np.mean([r["mean"] for r in dice])), 4)
        found[f"{name}_std"] = round(float(np.mean([r["std"] for r in dice])), 4)
        if len(dice) > 1:
            found[f"{name}_per_class"] = {r["class_name"]: [round(r["mean"], 4), round(r["std"], 4)] for r in dice}
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", default="5m")
    parser.add_argument("--variants", default="old,planned,plain")
    parser.add_argument("--out", type=Path, default=Path("runs/bench/recipe"))
    parser.add_argument("--labels", default="1:1", help="source label:class pairs, as `cardioseg prepare --labels`")
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"camus224 not found at {DATA}: this benchmark needs the shared data")
    budget_s = parse_duration(args.budget)
    labels = {int(k): int(v) for k, v in (pair.split(":") for pair in args.labels.split(","))}
    task = "" if labels == {1: 1} else "3class_" if labels == {1: 1, 2: 2, 3: 3} else f"{args.labels}_"
    repaired, as_stored = prepared_camus(args.out, True, labels), prepared_camus(args.out, False, labels)
    results = []
    for variant in args.variants.split(","):
        run_dir = args.out / f"{task}{variant.replace(':', '-')}_{args.budget}"
        started = time.perf_counter()
        if variant == "plain":
            model, curve = plain_loop(repaired, run_dir, budget_s)
            recipe = "U-Net-ResNet18 128 px, AdamW 1e-3, batch 16, bf16, no schedule"
            if len(labels) > 1:
                recipe += ", Dice + cross-entropy"
        else:
            arch = {"model.arch": variant.split(":", 1)[1]} if variant.startswith("planned:") else {}
            cfg = load_config(overrides={"data.prepared": repaired, "train.run_dir": run_dir, **arch,
                                         "train.time_budget": args.budget, "train.plan": variant != "old"})
            trained = train(cfg, progress=False)
            model = trained.model_path
            if cfg.train.plan:  # as `cardioseg train` ends a planned run
                choose_once(model, repaired)
            log = pd.read_csv(run_dir / "logs" / "metrics.csv")
            curve = log[["train_seconds", "val_dice"]].dropna().round(4).to_dict("records")
            used = load_config(run_dir / "config.yaml")
            pre = PreparedDataset(used.data.prepared).plan.preprocess
            recipe = (f"{used.model.arch}-{used.model.encoder} {pre.size[0]} px crop {pre.crop}, "
                      f"{used.train.optimizer} {used.train.lr:g}, batch {used.train.batch_size}, "
                      f"{trained.precision}, augment {used.train.augment.preset}, EMA {used.train.ema_decay}, "
                      f"{trained.epochs_run} epochs")
        wall = time.perf_counter() - started
        results.append({"variant": variant, "budget": args.budget, "recipe": recipe, "wall_seconds": round(wall, 1),
                        **scores(model, as_stored, repaired, run_dir), "curve": curve})
        print(json.dumps(results[-1]), flush=True)
    summary = {"cpu": cpu_name(), "cores": __import__("os").cpu_count(), "budget": args.budget, "labels": args.labels,
               "results": results}
    named = "" if args.variants == "old,planned,plain" else "_" + args.variants.replace(":", "-").replace(",", "_")
    (args.out / f"summary_{task}{args.budget}{named}.json").write_text(json.dumps(summary, indent=1))
    print(f"\n{summary['cpu']}, budget {args.budget}\n")
    print("| variant | recipe | Dice as stored | Dice repaired | wall s (incl. planning, preparing) |")
    print("|---|---|---|---|---|")
    for r in results:
        print(f"| {r['variant']} | {r['recipe']} | {r['as_stored']:.4f} ± {r['as_stored_std']:.4f} | "
              f"{r['repaired']:.4f} ± {r['repaired_std']:.4f} | {r['wall_seconds']:.0f} |")
        for name in ("as_stored", "repaired"):
            if f"{name}_per_class" in r:
                print(f"|  | {name}, per structure | " + ", ".join(
                    f"{c} {m:.4f} ± {sd:.4f}" for c, (m, sd) in r[f"{name}_per_class"].items()) + " | | |")


if __name__ == "__main__":
    main()
