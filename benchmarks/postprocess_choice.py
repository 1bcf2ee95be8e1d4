"""Issue 14: what the post-processing chosen on the validation split adds to models the planned recipe trained.

Each model (a finished run of `benchmarks/planned_recipe.py`) is copied, its post-processing chosen on the repaired
camus validation images as `cardioseg train` now ends a planned run (`postprocess_choice.choose_once`), then scored
as `planned_recipe.py` scores (200 validation images at 224x224, as stored and repaired). The choice sees the
same images it is scored on (nnU-Net chooses on its cross-validation predictions the same way), so read a gain as
an upper bound.

    flock /tmp/cardioseg-cpu.lock .venv/bin/python benchmarks/postprocess_choice.py \
        --runs runs/bench/recipe_lite0/planned_5m runs/bench/recipe/3class_planned_30m --out runs/bench/postprocess
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from planned_recipe import prepared_camus, scores
from time_to_dice import cpu_name

from cardioseg.artifacts import RunFiles, load_plan
from cardioseg.evaluation.postprocess_choice import choose_once
from cardioseg.plan import describe_postprocess


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, nargs="+", required=True, help="finished planned_recipe.py run folders")
    parser.add_argument("--out", type=Path, default=Path("runs/bench/postprocess"))
    args = parser.parse_args()
    rows = []
    for run in args.runs:
        plan = load_plan(RunFiles(run).model)
        labels = {1: 1} if plan.label_map in (None, {1: 1}) else dict(plan.label_map)
        repaired = prepared_camus(run.parent, True, labels)
        as_stored = prepared_camus(run.parent, False, labels)
        copy = args.out / run.name / "model.safetensors"
        if not copy.is_file():
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(RunFiles(run).model, copy)
        choose_once(copy, repaired)
        choice = json.loads(RunFiles(copy.parent).postprocess_choice.read_text())
        before = scores(RunFiles(run).model, as_stored, repaired, args.out / run.name / "without")
        after = scores(copy, as_stored, repaired, args.out / run.name / "chosen")
        rows.append({"run": str(run), "chosen": describe_postprocess(load_plan(copy).postprocess), "choice": choice,
                     "without": before, "with_choice": after, "cpu": cpu_name()})
        print(json.dumps(rows[-1]), flush=True)
    (args.out / "summary.json").write_text(json.dumps(rows, indent=1))
    print("| run | chosen | Dice as stored without -> with | repaired without -> with |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['run']} | {r['chosen']} | {r['without']['as_stored']:.4f} -> {r['with_choice']['as_stored']:.4f} | "
              f"{r['without']['repaired']:.4f} -> {r['with_choice']['repaired']:.4f} |")
        for name in ("as_stored", "repaired"):
            if f"{name}_per_class" in r["with_choice"]:
                print(f"|  | {name} per structure | " + ", ".join(
                    f"{c} {r['without'][f'{name}_per_class'][c][0]:.4f} -> {m:.4f}"
                    for c, (m, _) in r["with_choice"][f"{name}_per_class"].items()) + " | |")


if __name__ == "__main__":
    main()
