"""Paired per-image comparisons between the networks of one or several finished sweeps (issue 17).

A sweep's own report compares configurations over seeds (paired t-test over seed means); a study
with one seed, or whose rows live in two sweep folders (the improved-ResUNet paper's U-Net row, the
CT study's version 2), still has every network scored on the same held-out images. This pairs them
image by image: for each seed both networks ran, the mean Dice difference, how many images each
wins, and the Wilcoxon signed-rank p; and over seeds, the paired t-test of the per-seed means.

A network is named ``LABEL=SWEEP_DIR:ARCH`` (the first run of ARCH in that folder per seed):

    .venv/bin/python benchmarks/study_pairs.py \\
        --net "improved=runs/studies/cpu/improved_resunet:resunet_improved" \\
        --net "ResUNet=runs/studies/cpu/improved_resunet:resunet" \\
        --net "U-Net=runs/studies/cpu/improved_resunet_unet:plain_unet" \\
        --pair improved:ResUNet --pair ResUNet:U-Net --pair improved:U-Net
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from scipy import stats

from cardioseg.sweep.trial import read_records


def per_image_dice(sweep_dir: Path, arch: str) -> dict[int, pd.Series]:
    """Seed -> Dice per held-out image (network output, no post-processing) of ARCH's runs in a sweep."""
    found: dict[int, pd.Series] = {}
    for record in read_records(sweep_dir):
        if record.get("status") != "ok" or record["arch"] != arch or record["seed"] in found:
            continue
        cases = pd.read_csv(Path(record["run_dir"]) / "evaluation" / "per_case.csv")
        raw = cases[cases.variant == "raw"]
        found[record["seed"]] = raw.groupby("case_id").dice.mean()  # over classes, as the sweep's tables
    if not found:
        raise SystemExit(f"{sweep_dir}: no finished run of {arch}")
    return found


def paired(a: pd.Series, b: pd.Series) -> tuple[pd.Series, float]:
    """Per-image differences a - b over the images both scored, and their Wilcoxon signed-rank p (1 when they
    never differ)."""
    delta = (a - b.reindex(a.index)).dropna()
    return delta, float(stats.wilcoxon(delta).pvalue) if (delta != 0).any() else 1.0


def compare(a: dict[int, pd.Series], b: dict[int, pd.Series]) -> tuple[list[str], str]:
    """Per-seed image-paired lines, and the over-seeds line."""
    lines, means_a, means_b = [], [], []
    for seed in sorted(set(a) & set(b)):
        delta, p = paired(a[seed], b[seed])
        lines.append(f"seed {seed}: {delta.mean():+.4f} over {len(delta)} images, better on "
                     f"{(delta > 0).sum()} / worse on {(delta < 0).sum()}, Wilcoxon p = {p:.2g}")
        means_a.append(a[seed].mean())
        means_b.append(b[seed].mean())
    if len(means_a) > 1:
        t = stats.ttest_rel(means_a, means_b).pvalue
        diff = pd.Series(means_a) - pd.Series(means_b)
        overall = (f"over {len(means_a)} seeds: {diff.mean():+.4f} (seed std of the difference {diff.std():.4f}), "
                   f"better in {(diff > 0).sum()} of {len(diff)} seeds, paired t p = {t:.2g}")
    else:
        overall = "one seed: no spread over seeds"
    return lines, overall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--net", action="append", required=True, help="LABEL=SWEEP_DIR:ARCH")
    parser.add_argument("--pair", action="append", required=True, help="LABEL_A:LABEL_B (A minus B)")
    args = parser.parse_args()
    nets = {}
    for spec in args.net:
        label, _, where = spec.partition("=")
        folder, _, arch = where.rpartition(":")
        nets[label] = per_image_dice(Path(folder), arch)
    print("| a | b | seed means a / b | per seed (a - b, images a better / worse, Wilcoxon) | over seeds |")
    print("|---|---|---|---|---|")
    for pair in args.pair:
        a, _, b = pair.partition(":")
        lines, overall = compare(nets[a], nets[b])
        means = " / ".join(f"{pd.Series([s.mean() for s in nets[x].values()]).mean():.4f}" for x in (a, b))
        print(f"| {a} | {b} | {means} | {'<br>'.join(lines)} | {overall} |")


if __name__ == "__main__":
    main()
