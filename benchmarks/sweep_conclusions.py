"""Test the echo study's conclusions across a finished sweep's configurations (issue 4).

The sweep's own report compares configurations over seeds; the study's claims are about whole
factors (augmentation helps, DeepLabV3+ is the best architecture, the encoder matters), so here
each factor is tested with the other grid axes as blocks, on seed 0 (every configuration has it):
Wilcoxon signed-rank for augmentation (architecture x encoder pairs), Friedman tests for
architecture (blocks: encoder x augmentation), encoder (blocks: architecture x augmentation) and
within each encoder family (which ResNet, which EfficientNet is best), where the network without a
pretrained-style encoder (``--no-encoder``, plain_unet) ranks among every configuration, and a paired
t-test over seeds for ImageNet-pretrained vs scratch.

    .venv/bin/python benchmarks/sweep_conclusions.py runs/sweep_camus [runs/sweep_pretrained]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from scipy import stats

from cardioseg.sweep.tables import runs_frame
from cardioseg.sweep.trial import read_records


def training_steps(run_dir: Path) -> int:
    """Optimiser steps the run made within its budget (the last step its training log shows)."""
    log = run_dir / "logs" / "metrics.csv"
    return int(pd.read_csv(log)["step"].max()) + 1 if log.is_file() else -1


def load_runs(sweep_dir: Path) -> pd.DataFrame:
    records = read_records(sweep_dir)
    if not records:
        raise SystemExit(f"{sweep_dir}: no run records (run the sweep first)")
    runs = runs_frame(records)
    ok = [r for r in records if r.get("status") == "ok"]
    runs["steps"] = [training_steps(sweep_dir / "runs" / r["run_id"]) for r in ok]
    return runs


def factor_ranks(runs: pd.DataFrame, factor: str, blocks: list[str]) -> tuple[pd.DataFrame, float]:
    """Mean Dice and mean rank (1 = best) of each level of ``factor``; Friedman p over the blocks."""
    wide = runs.pivot_table(index=blocks, columns=factor, values="dice").dropna()
    ranks = wide.rank(axis=1, ascending=False)
    steps = runs.groupby(factor)["steps"].mean()
    table = pd.DataFrame({"mean Dice": wide.mean(), "mean rank": ranks.mean(), "best in": (ranks == 1).sum(),
                          "blocks": len(wide), "mean optimiser steps": steps.round(0)}).sort_values("mean rank")
    p = stats.friedmanchisquare(*(wide[c] for c in wide.columns)).pvalue if wide.shape[1] > 2 else float("nan")
    return table, float(p)


def family_ranks(runs: pd.DataFrame, prefix: str) -> tuple[pd.DataFrame, float] | None:
    """``factor_ranks`` over the encoders of one family (``resnet``, ``efficientnet``), when it has several."""
    family = runs[runs.encoder.astype(str).str.startswith(prefix)]
    return factor_ranks(family, "encoder", ["arch", "augmentation"]) if family.encoder.nunique() > 2 else None


def no_encoder_rank(runs: pd.DataFrame, arch: str) -> list[str]:
    """Per augmentation: the encoder-free network's Dice, its rank among all configurations, and how many
    architectures' best configuration it beats."""
    lines = []
    for aug, group in runs.groupby("augmentation"):
        own = group[group.arch == arch]
        if own.empty:
            continue
        dice = float(own.dice.mean())
        others = group[group.arch != arch]
        best_per_arch = others.groupby("arch").dice.max()
        rank = int((others.dice > dice).sum()) + 1
        lines.append(f"{aug}: {arch} Dice {dice:.4f}, rank {rank} of {len(others) + 1} configurations "
                     f"(median of the others {others.dice.median():.4f}); above the best configuration of "
                     f"{(best_per_arch < dice).sum()} of {len(best_per_arch)} architectures")
    return lines


def augmentation_effect(runs: pd.DataFrame) -> str:
    wide = runs.pivot_table(index=["arch", "encoder"], columns="augmentation", values="dice").dropna()
    delta = wide["echo"] - wide["none"]
    p = stats.wilcoxon(delta).pvalue
    return (f"augmented - initial Dice over {len(delta)} architecture x encoder pairs: median {delta.median():+.4f}, "
            f"mean {delta.mean():+.4f}; augmentation better in {(delta > 0).sum()} of {len(delta)}; "
            f"Wilcoxon signed-rank p = {p:.3g}")


def pretrained_effect(runs: pd.DataFrame) -> list[str]:
    lines = []
    for aug, group in runs.groupby("augmentation"):
        wide = group.pivot_table(index="seed", columns="weights", values="dice").dropna()
        scratch = wide.pop("scratch")
        pretrained = wide.iloc[:, 0]  # the one other weights label: the converted ImageNet file
        delta = pretrained - scratch
        p = stats.ttest_rel(pretrained, scratch).pvalue if len(delta) > 1 else float("nan")
        lines.append(f"{aug}: pretrained {pretrained.mean():.4f} ± {pretrained.std():.4f} vs scratch "
                     f"{scratch.mean():.4f} ± {scratch.std():.4f} over seeds {list(wide.index)}; "
                     f"difference {delta.mean():+.4f}, pretrained better in {(delta > 0).sum()} of {len(delta)}, "
                     f"paired t-test p = {p:.3g}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path)
    parser.add_argument("pretrained", type=Path, nargs="?")
    parser.add_argument("--no-encoder", default="plain_unet", help="the network without a pretrained-style encoder")
    args = parser.parse_args()
    runs = load_runs(args.sweep)
    seed0 = runs[runs.seed == runs.seed.min()]
    print("### Augmentation\n\n" + augmentation_effect(seed0) + "\n")
    encoded = seed0[seed0.encoder != "-"]  # the encoder-free network is no level of an encoder x architecture grid
    for factor, blocks in (("arch", ["encoder", "augmentation"]), ("encoder", ["arch", "augmentation"])):
        table, p = factor_ranks(encoded, factor, blocks)
        print(f"### {factor.capitalize()} (Friedman p = {p:.3g})\n\n{table.round(4).to_markdown()}\n")
    for prefix in ("resnet", "efficientnet"):
        if ranked := family_ranks(encoded, prefix):
            table, p = ranked
            print(f"### Within the {prefix} encoders (Friedman p = {p:.3g})\n\n{table.round(4).to_markdown()}\n")
    if lines := no_encoder_rank(seed0, args.no_encoder):
        print("### Without a pretrained-style encoder\n\n" + "\n".join(f"- {line}" for line in lines) + "\n")
    if args.pretrained:
        print("### ImageNet-pretrained vs scratch\n\n" + "\n".join(f"- {line}" for line in
                                                                 pretrained_effect(load_runs(args.pretrained))))


if __name__ == "__main__":
    main()
