"""The same cases across several models, side by side: the figure a paper shows of U-Net vs ResUNet vs its own.

Each model segments the cases through its own plan, as `evaluate` does, so models trained at different sizes or
with different preprocessing are compared on the same original images. Cases are drawn at random from a split
(seeded, so a rerun draws the same ones); a volume is shown at its slice of largest reference area.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cardioseg.config import Config
from cardioseg.data.prepared import PreparedDataset
from cardioseg.errors import ConfigError, DataError
from cardioseg.evaluation.evaluate import case_probabilities, labelled_case_ids, score_case
from cardioseg.inference.members import RunOptions, load_member
from cardioseg.inference.pipeline import Segmenter
from cardioseg.postprocess import with_planned_postprocess
from cardioseg.viz.cases import representative_slice
from cardioseg.viz.samples import plot_case_grid


@dataclass(frozen=True)
class ModelComparison:
    figure: Path
    dice: pd.DataFrame
    """One row per case, one column per model: the post-processed Dice (mean over classes)."""


def model_names(models: Sequence[Path], names: Sequence[str] | None) -> list[str]:
    """The given names, else each model's run folder (its file name where two folders share a name)."""
    if names:
        if len(names) != len(models):
            raise ConfigError(f"{len(names)} names for {len(models)} models: give one --name per --model")
        return list(names)
    folders = [Path(m).resolve().parent.name for m in models]
    return folders if len(set(folders)) == len(folders) else [Path(m).name for m in models]


def _in_lines(values: list[str], per_line: int = 3) -> str:
    """Dice values of many models as short lines, so that a row label stays as tall as its row."""
    return "\n".join(" / ".join(values[i:i + per_line]) for i in range(0, len(values), per_line))


def pick_cases(prepared: PreparedDataset, split: str | None, n: int, seed: int) -> list[str]:
    cases = labelled_case_ids(prepared, split)
    if not cases:
        raise DataError(f"no labelled case in split {split or 'all'}", prepared.root)
    chosen = np.random.default_rng(seed).choice(len(cases), size=min(n, len(cases)), replace=False)
    return [cases[i] for i in sorted(chosen)]


def compare_models(models: Sequence[Path], data: Path, cfg: Config, out: Path, n_cases: int = 6, seed: int = 0,
                   names: Sequence[str] | None = None) -> ModelComparison:
    """Draw ``n_cases`` cases of ``cfg.evaluate.split`` with the reference and every model's post-processed masks."""
    if len(models) < 1:
        raise ConfigError("compare needs at least one model (--model)")
    prepared = PreparedDataset(data)
    split = None if cfg.evaluate.split == "all" else cfg.evaluate.split
    case_ids = pick_cases(prepared, split, n_cases, seed)
    labels = model_names(models, names)
    ev = cfg.evaluate
    maps: dict[str, dict[str, np.ndarray]] = {}
    dice: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="cardioseg-compare-") as scratch:
        for index, (model, label) in enumerate(zip(models, labels, strict=True)):
            member = load_member(Path(model), RunOptions(ev.backend, ev.precision, ev.batch_size), Path(scratch), index)
            segmenter = Segmenter([member], tta=ev.tta)
            own = with_planned_postprocess(cfg, segmenter.plan)  # each model with its own chosen post-processing
            maps[label], dice[label] = {}, {}
            for case, prob in case_probabilities(segmenter, prepared, case_ids, ev.batch_size):
                scores, post = score_case(prob, prepared.original_label(case), segmenter.plan, own, None,
                                          segmenter.slice_axis, prepared.unannotated(case))
                maps[label][case] = post
                dice[label][case] = float(np.nanmean([m["dice"] for m in scores["post"].values()]))
    images, columns = [], {"reference": []} | {label: [] for label in labels}
    for case in case_ids:
        image, ref = prepared.original_image(case), prepared.original_label(case)
        planes = {"reference": ref} | {label: maps[label][case] for label in labels}
        if image.ndim == 3:
            axis = prepared.cases[case]["slice_axis"]
            k = representative_slice(ref, axis)
            image, planes = np.take(image, k, axis=axis), {n: np.take(p, k, axis=axis) for n, p in planes.items()}
        images.append(image)
        for name, plane in planes.items():
            columns[name].append(plane)
    rows = [f"{case}\n" + _in_lines([f"{dice[label][case]:.3f}" for label in labels]) for case in case_ids]
    title = f"{len(case_ids)} random {cfg.evaluate.split} cases (seed {seed}); Dice " + " / ".join(labels)
    figure = plot_case_grid(images, columns, prepared.plan.class_names, out, rows, title)
    table = pd.DataFrame({label: [dice[label][case] for case in case_ids] for label in labels},
                         index=pd.Index(case_ids, name="case_id"))
    return ModelComparison(figure, table)
