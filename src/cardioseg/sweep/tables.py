"""The study's tables from run records: one per architecture (encoders x initial/augmented), a
best-of table across architectures, and paired seed comparisons of the differences it claims.

Numbers are means over the held-out cases of each run (network output at the original
resolution, averaged over classes); with several seeds a cell is the mean over seeds and its
standard deviation (ddof=1).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pandas as pd

from cardioseg.sweep.grid import AUGMENTATION_LABELS
from cardioseg.sweep.stats import Comparison, paired_comparison

KEY = ["arch", "encoder", "weights", "augmentation", "loss", "lr", "batch_size", "epochs"]
SCHEDULE = ["lr", "batch_size", "epochs"]
"""Grid axes of the training schedule: '-' in a row when the sweep did not vary them (the configuration's value)."""
# (column, title, decimals): what each table reports, in the study's order, then the costs.
QUANTITIES: list[tuple[str, str, int]] = [
    ("dice", "Dice", 4), ("iou", "IoU", 4), ("precision", "Precision", 4), ("recall", "Recall", 4),
    ("accuracy", "Accuracy", 4), ("hd95", "HD95", 2), ("train_seconds", "Train time [s]", 1),
    ("inference_ms_per_image", "Inference [ms/image]", 2),
]
PARAMS_TITLE = "Parameters [M]"


def runs_frame(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """One row per successful run: its grid point, seed, metrics and costs."""
    rows = []
    for rec in records:
        if rec.get("status") != "ok":
            continue
        rows.append({
            **{k: "-" if rec.get(k) is None else rec[k] for k in KEY}, "seed": rec["seed"], **rec["metrics"],
            "hd95_undefined": rec["undefined"].get("hd95", 0), "parameters": rec["parameters"],
            "train_seconds": rec["train_seconds"], "inference_ms_per_image": rec["inference_ms_per_image"],
        })
    return pd.DataFrame(rows, columns=[*KEY, "seed", *(q for q, _, _ in QUANTITIES), "hd95_undefined", "parameters"])


def aggregate(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration: mean and std over seeds of every quantity, and the seed count."""
    groups = runs.groupby(KEY, sort=False)
    agg = groups.size().rename("n_seeds").to_frame()
    for column, _, _ in QUANTITIES:
        agg[f"{column}_mean"] = groups[column].mean()
        agg[f"{column}_std"] = groups[column].std(ddof=1)
    agg["hd95_undefined"] = groups["hd95_undefined"].sum()
    agg["parameters"] = groups["parameters"].first()
    return agg.reset_index()


def varying(frame: pd.DataFrame) -> list[str]:
    """Grid axes beyond architecture, encoder and augmentation that take several values here."""
    return [axis for axis in ("weights", "loss", *SCHEDULE) if frame[axis].nunique() > 1]


def axis_text(axis: str, value: object) -> str:
    """A grid value as a row label shows it: the schedule's numbers named (lr 0.001, batch 16, 20 epochs)."""
    return {"lr": f"lr {value}", "batch_size": f"batch {value}", "epochs": f"{value} epochs"}.get(axis, str(value))


def row_label(row: pd.Series, axes: list[str]) -> str:
    return " · ".join([str(row["encoder"]), *(axis_text(a, row[a]) for a in axes)])


def config_label(row: pd.Series, axes: list[str]) -> str:
    return f"{row['arch']} / {row_label(row, axes)} / {AUGMENTATION_LABELS[row['augmentation']]}"


def _fixed_table(sub: pd.DataFrame, label: Callable[[pd.Series], str], index_name: str) -> pd.DataFrame:
    """Rows of ``sub`` by ``label``; columns = (quantity, initial/augmented, mean/std): the study's table layout."""
    augs = [label_ for aug, label_ in AUGMENTATION_LABELS.items() if aug in set(sub["augmentation"])]
    rows: dict[str, dict[tuple[str, str, str], Any]] = {}
    for _, rec in sub.iterrows():
        aug = AUGMENTATION_LABELS[rec["augmentation"]]
        row = rows.setdefault(label(rec), {(PARAMS_TITLE, "", "mean"): rec["parameters"] / 1e6})
        row[("Seeds", aug, "n")] = rec["n_seeds"]
        for column, title, _ in QUANTITIES:
            row[(title, aug, "mean")] = rec[f"{column}_mean"]
            row[(title, aug, "std")] = rec[f"{column}_std"]
        row[("HD95", aug, "undefined")] = rec["hd95_undefined"]
    order = [(title, aug, stat) for _, title, _ in QUANTITIES for aug in augs
             for stat in ("mean", "std", *(("undefined",) if title == "HD95" else ()))]
    order += [(PARAMS_TITLE, "", "mean")] + [("Seeds", aug, "n") for aug in augs]
    table = pd.DataFrame.from_dict(rows, orient="index").reindex(columns=pd.MultiIndex.from_tuples(order))
    table.index.name = index_name
    return table


def architecture_table(agg: pd.DataFrame, arch: str) -> pd.DataFrame:
    """The study's per-architecture table: rows = encoders, columns = (quantity, initial/augmented, mean/std)."""
    axes = varying(agg)
    return _fixed_table(agg[agg["arch"] == arch], lambda rec: row_label(rec, axes), "encoder")


def encoder_table(agg: pd.DataFrame, encoder: str) -> pd.DataFrame:
    """One encoder across every architecture that takes it (the echo study's tables 10-1 with EfficientNet-b3
    and 10-2 with ResNet34): rows = architectures, columns as in ``architecture_table``."""
    axes = varying(agg)
    def label(rec: pd.Series) -> str:
        return " · ".join([str(rec["arch"]), *(axis_text(a, rec[a]) for a in axes)])

    return _fixed_table(agg[agg["encoder"] == encoder], label, "architecture")


def encoders_across_architectures(agg: pd.DataFrame) -> list[str]:
    """Encoders worth an encoder table: those run with more than one architecture."""
    with_encoder = agg[agg["encoder"] != "-"]
    counts = with_encoder.groupby("encoder", sort=False)["arch"].nunique()
    return [str(encoder) for encoder, n in counts.items() if n > 1]


def best_rows(agg: pd.DataFrame) -> pd.DataFrame:
    """Each architecture's best configuration by mean Dice (its ``aggregate`` row), best architecture first."""
    return agg.loc[agg.groupby("arch", sort=False)["dice_mean"].idxmax()].sort_values("dice_mean", ascending=False)


def best_table(agg: pd.DataFrame) -> pd.DataFrame:
    """Each architecture's best configuration by mean Dice, best architecture first."""
    axes = varying(agg)
    best = best_rows(agg)
    columns = ["arch", "encoder", *axes, "augmentation", "n_seeds"]
    columns += [f"{q}_{s}" for q, _, _ in QUANTITIES for s in ("mean", "std")] + ["hd95_undefined", "parameters"]
    table = best[columns].reset_index(drop=True)
    table["augmentation"] = table["augmentation"].map(AUGMENTATION_LABELS)
    return table


def schedule_table(agg: pd.DataFrame) -> pd.DataFrame | None:
    """The thesis's timing table: learning rate x batch size x epochs -> training seconds and Dice, one row per
    configuration (None when the sweep varies none of them)."""
    axes = [axis for axis in SCHEDULE if agg[axis].nunique() > 1]
    if not axes:
        return None
    others = [axis for axis in ("arch", "encoder", "augmentation") if agg[axis].nunique() > 1]
    table = agg.sort_values([*others, *axes])[[*others, *axes, "n_seeds", "train_seconds_mean", "train_seconds_std",
                                               "dice_mean", "dice_std"]].reset_index(drop=True)
    if "augmentation" in table:
        table["augmentation"] = table["augmentation"].map(AUGMENTATION_LABELS)
    return table


def display_schedule(table: pd.DataFrame) -> pd.DataFrame:
    """The timing table as text cells."""
    out = table.drop(columns=["train_seconds_mean", "train_seconds_std", "dice_mean", "dice_std"]).rename(
        columns={"lr": "learning rate", "batch_size": "batch size", "n_seeds": "seeds"})
    out["Train time [s]"] = [format_cell(m, s, 1) for m, s in zip(table["train_seconds_mean"], table["train_seconds_std"])]
    out["Dice"] = [format_cell(m, s, 4) for m, s in zip(table["dice_mean"], table["dice_std"])]
    return out


def _per_seed(runs: pd.DataFrame, metric: str) -> dict[tuple[str, ...], dict[int, float]]:
    values: dict[tuple[str, ...], dict[int, float]] = {}
    for _, row in runs.iterrows():
        values.setdefault(tuple(row[k] for k in KEY), {})[int(row["seed"])] = float(row[metric])
    return values


def comparisons(runs: pd.DataFrame, agg: pd.DataFrame, metric: str = "dice") -> pd.DataFrame:
    """Paired seed comparisons: augmented vs initial, pretrained vs scratch (same everything else),
    the best configuration vs the runner-up, and the best architecture vs the runner-up."""
    per_seed = _per_seed(runs, metric)
    axes = varying(agg)
    labels = {tuple(row[k] for k in KEY): config_label(row, axes) for _, row in agg.iterrows()}
    found: list[tuple[str, Comparison]] = []

    def compare(kind: str, a: tuple[str, ...], b: tuple[str, ...]) -> None:
        if a in per_seed and b in per_seed:
            found.append((kind, paired_comparison(per_seed[a], per_seed[b], labels[a], labels[b])))

    for key in per_seed:
        arch, encoder, weights, aug, loss, *schedule = key
        if aug != "none":
            compare("augmented vs initial", key, (arch, encoder, weights, "none", loss, *schedule))
        if weights != "scratch":
            compare("pretrained vs scratch", key, (arch, encoder, "scratch", aug, loss, *schedule))
    ranked = [tuple(row[k] for k in KEY) for _, row in agg.sort_values(f"{metric}_mean", ascending=False).iterrows()]
    if len(ranked) >= 2:
        compare("best vs runner-up configuration", ranked[0], ranked[1])
    by_arch: dict[str, tuple[str, ...]] = {}
    for key in ranked:
        by_arch.setdefault(key[0], key)
    best_two = list(by_arch.values())[:2]
    if len(best_two) == 2 and best_two != ranked[:2]:
        compare("best vs runner-up architecture", *best_two)
    rows = [{"comparison": kind, "metric": metric, **c.to_dict()} for kind, c in found]
    return pd.DataFrame(rows, columns=["comparison", "metric", *Comparison.__dataclass_fields__])


def findings(table: pd.DataFrame, best: pd.DataFrame) -> list[str]:
    """The study's claims, checked one by one against this sweep (one sentence each)."""
    lines = []
    for kind in ("augmented vs initial", "pretrained vs scratch"):
        sub = table[table["comparison"] == kind]
        if len(sub):
            called = sub["verdict"].str.endswith("better")
            lines.append(
                f"{kind}: {kind.split(' vs ')[0]} was higher in {int((sub['mean_diff'] > 0).sum())} of {len(sub)} "
                f"configurations (mean difference {sub['mean_diff'].mean():+.4f}); beyond the seed spread and "
                f"significant: {int((called & (sub['mean_diff'] > 0)).sum())} higher, "
                f"{int((called & (sub['mean_diff'] < 0)).sum())} lower"
                + ("; with one seed per configuration the spread is unknown" if sub["n_seeds"].max() < 2 else "")
            )
    if len(best):
        top = best.iloc[0]
        lines.append(f"best architecture here: {top['arch']} ({top['encoder']}, {top['augmentation']}), "
                     f"Dice {top['dice_mean']:.4f} over {top['n_seeds']} seed(s)")
    for kind in ("best vs runner-up architecture", "best vs runner-up configuration"):
        for _, row in table[table["comparison"] == kind].iterrows():
            lines.append(f"{kind}: {row['a']} vs {row['b']}: difference {row['mean_diff']:+.4f} over "
                         f"{row['n_seeds']} shared seed(s), seed std {format_cell(row['seed_std'], float('nan'), 4)}: "
                         f"{row['verdict']}")
    return lines


def format_cell(mean: float, std: float, decimals: int) -> str:
    if pd.isna(mean):
        return "n/a"
    return f"{mean:.{decimals}f}" if pd.isna(std) else f"{mean:.{decimals}f} ± {std:.{decimals}f}"


def display_architecture(table: pd.DataFrame) -> pd.DataFrame:
    """The per-architecture table as text cells: 'mean ± std' per (quantity, initial/augmented)."""
    augs = list(dict.fromkeys(aug for title, aug, _ in table.columns if title == "Dice"))
    cells: dict[tuple[str, str], list[str]] = {}
    for column, title, decimals in QUANTITIES:
        for aug in augs:
            text = [format_cell(m, s, decimals) for m, s in zip(table[(title, aug, "mean")], table[(title, aug, "std")])]
            if column == "hd95":
                text = [t + (f" ({int(u)} undef.)" if u > 0 else "") for t, u in zip(text, table[(title, aug, "undefined")].fillna(0))]
            cells[(title, aug)] = text
    cells[(PARAMS_TITLE, "")] = [f"{p:.2f}" for p in table[(PARAMS_TITLE, "", "mean")]]
    for aug in augs:
        cells[("Seeds", aug)] = ["" if pd.isna(n) else str(int(n)) for n in table[("Seeds", aug, "n")]]
    return pd.DataFrame(cells, index=table.index)


def display_best(best: pd.DataFrame) -> pd.DataFrame:
    """The best-of table as text cells."""
    keys = [c for c in best.columns if not c.endswith(("_mean", "_std")) and c not in ("hd95_undefined", "parameters")]
    out = best[keys].rename(columns={"arch": "architecture", "n_seeds": "seeds"})
    for column, title, decimals in QUANTITIES:
        out[title] = [format_cell(m, s, decimals) for m, s in zip(best[f"{column}_mean"], best[f"{column}_std"])]
    out[PARAMS_TITLE] = [f"{p / 1e6:.2f}" for p in best["parameters"]]
    return out


def display_comparisons(table: pd.DataFrame) -> pd.DataFrame:
    """The comparisons with readable numbers (4 decimals for metrics, 3 for p-values)."""
    out = table.copy()
    for column in ("mean_a", "mean_b", "mean_diff", "seed_std", "t_statistic"):
        out[column] = out[column].map(lambda v: "n/a" if pd.isna(v) else f"{v:.4f}")
    for column in ("p_t_test", "p_sign_test"):
        out[column] = out[column].map(lambda v: "n/a" if pd.isna(v) else f"{v:.3f}")
    return out
