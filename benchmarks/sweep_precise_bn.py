"""Diagnose sweep runs that scored near zero: stale BatchNorm statistics, or a network that did not learn?

For every run of a finished sweep whose held-out Dice is below ``--below``, the saved model is
scored on the held-out split at network resolution twice: as saved, and after its BatchNorm
running statistics were re-estimated from training batches with the same weights
(``cardioseg.training.batchnorm.recalibrate_batchnorm``). The weights are not changed, so a large
gain means the network had learnt and only its normalisation statistics were stale.

    .venv/bin/python benchmarks/sweep_precise_bn.py runs/sweep_camus --below 0.5
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from cardioseg.config import load_config
from cardioseg.data.prepared import PreparedDataset
from cardioseg.evaluation.metrics import overlap_metrics
from cardioseg.models.checkpoint import load_bundle
from cardioseg.sweep.trial import read_records
from cardioseg.training.batchnorm import recalibrate_batchnorm


def dice(model: torch.nn.Module, images: torch.Tensor, reference: np.ndarray) -> float:
    """Dice over all held-out pixels at once (the images stacked as one mask)."""
    with torch.no_grad():
        predicted = (model(images)[:, 0] > 0).numpy()
    return overlap_metrics(predicted, reference)["dice"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path)
    parser.add_argument("--below", type=float, default=0.5)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    records = read_records(args.sweep)
    low = [r for r in records if r.get("status") == "ok" and r["metrics"]["dice"] < args.below]
    if not low:
        raise SystemExit(f"{args.sweep}: no finished run with Dice below {args.below}")
    prepared = PreparedDataset(load_config(args.sweep / "config.yaml").data.prepared)
    split = records[0]["split"]
    held_out = prepared.indices(split)
    images = torch.from_numpy(np.asarray(prepared.images[held_out]))[:, None].float()
    reference = np.asarray(prepared.labels[held_out]) > 0
    rng = np.random.default_rng(0)
    train_rows = prepared.indices("train")
    picks = [np.sort(rng.choice(train_rows, args.batch_size, replace=False)) for _ in range(args.batches)]
    batches = [torch.from_numpy(np.asarray(prepared.images[rows]))[:, None].float() for rows in picks]
    rows = []
    for record in low:
        model = load_bundle(Path(record["run_dir"]) / "model.safetensors").model.eval()
        before = dice(model, images, reference)
        recalibrate_batchnorm(model, batches)
        rows.append({"run": record["run_id"], "Dice (table, original resolution)": round(record["metrics"]["dice"], 4),
                     f"Dice as saved ({split}, network resolution)": round(before, 4),
                     "Dice after BN re-estimation": round(dice(model, images, reference), 4)})
        print(rows[-1], flush=True)
    print(pd.DataFrame(rows).to_markdown(index=False))


if __name__ == "__main__":
    main()
