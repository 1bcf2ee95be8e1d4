"""Post-processing chosen on the validation split after training, as nnU-Net chooses its own.

A network's masks can carry stray islands (a second blob in the atrium of an echo, speckle at the base of a
volume) or small holes; whether removing them helps depends on the data and the network, so the rule is measured,
not assumed. Each step is tried on top of the steps already kept, in a fixed order (largest connected component,
then hole filling), and kept only if it raises the mean validation Dice (per case, over its annotated classes)
by more than ``MIN_GAIN``; a tie keeps the simpler chain. The choice goes into the model's plan
(``plan.postprocess``), where predict, evaluate and the app take it from, under any setting given explicitly.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cardioseg.artifacts import RunFiles, load_plan
from cardioseg.config import PostprocessConfig
from cardioseg.data.prepared import PreparedDataset
from cardioseg.errors import DataError
from cardioseg.evaluation.evaluate import case_probabilities, labelled_case_ids
from cardioseg.evaluation.metrics import overlap_metrics
from cardioseg.fileio import write_json
from cardioseg.inference.members import RunOptions, load_member
from cardioseg.inference.pipeline import Segmenter
from cardioseg.models.checkpoint import with_plan
from cardioseg.plan import describe_postprocess
from cardioseg.postprocess import finish_labels, to_labels

STEPS: tuple[tuple[str, dict[str, bool]], ...] = (
    ("largest component", {"largest_component": True}),
    ("fill holes", {"fill_holes": True}),
)
MIN_GAIN = 1e-4
"""A step must raise the mean Dice by more than this to be kept: rounding noise never adds a step."""


@dataclass(frozen=True)
class PostprocessChoice:
    chosen: PostprocessConfig
    baseline_dice: float
    trials: tuple[dict[str, object], ...]
    """each step tried: its name, the mean Dice with it, the gain over the chain before it, whether it was kept"""
    n_cases: int
    split: str


def _mean_dice(raw: dict[str, np.ndarray], refs: dict[str, np.ndarray], classes: dict[str, list[int]],
               binary: bool, cfg: PostprocessConfig, slice_axis: int) -> float:
    """The mean over cases of each case's mean Dice over its annotated classes, after ``cfg``'s chain."""
    per_case = []
    for case, labels in raw.items():
        post = finish_labels(labels, binary, cfg, slice_axis)
        scores = [overlap_metrics(post == c, refs[case] == c)["dice"] for c in classes[case]]
        if scores:
            per_case.append(float(np.mean(scores)))
    return float(np.mean(per_case)) if per_case else float("nan")


def choose_postprocess(model: Path, prepared: PreparedDataset, split: str = "val",
                       threshold: float = 0.5) -> PostprocessChoice | None:
    """The post-processing chain that scores best on ``split``; None when the split has no labelled case."""
    case_ids = labelled_case_ids(prepared, split)
    if not case_ids:
        return None
    with tempfile.TemporaryDirectory(prefix="cardioseg-postprocess-") as scratch:
        segmenter = Segmenter([load_member(Path(model), RunOptions(backend="torch"), Path(scratch))])
        plan, axis = segmenter.plan, segmenter.slice_axis
        if not plan.same_task(prepared.plan):
            raise DataError(f"the model labels {plan.class_names}, the data {prepared.plan.class_names}", prepared.root)
        # a one-channel model says 1 for its class; compare it with the reference's own class id
        foreground = plan.foreground[0].id if plan.binary else None
        raw = {case: to_labels(prob, threshold) for case, prob in case_probabilities(segmenter, prepared, case_ids, 16)}
    refs = {case: prepared.original_label(case) for case in case_ids}
    classes = {case: [c for c in plan.class_names if c not in prepared.unannotated(case)] for case in case_ids}
    if foreground is not None:
        refs = {case: (ref == foreground).astype(np.uint8) for case, ref in refs.items()}
        classes = {case: [1] if ids else [] for case, ids in classes.items()}
    chosen, baseline, trials = best_chain(raw, refs, classes, plan.binary, axis, threshold)
    return PostprocessChoice(chosen, baseline, trials, len(case_ids), split)


def best_chain(raw: dict[str, np.ndarray], refs: dict[str, np.ndarray], classes: dict[str, list[int]], binary: bool,
               slice_axis: int, threshold: float = 0.5) -> tuple[PostprocessConfig, float, tuple[dict[str, object], ...]]:
    """(chosen chain, mean Dice without post-processing, each step's trial) for label maps ``raw`` (``to_labels``)
    against ``refs``, each case scored over its ``classes``."""
    current = PostprocessConfig(threshold=threshold)
    baseline = best = _mean_dice(raw, refs, classes, binary, current, slice_axis)
    trials = []
    for name, change in STEPS:
        trial = current.model_copy(update=change)
        dice = _mean_dice(raw, refs, classes, binary, trial, slice_axis)
        kept = dice > best + MIN_GAIN
        trials.append({"step": name, "dice": round(dice, 5), "gain": round(dice - best, 5), "kept": kept})
        if kept:
            current, best = trial, dice
    return current, round(baseline, 5), tuple(trials)


def keep_choice(model: Path, choice: PostprocessChoice) -> None:
    """Write the choice into the model's plan and, beside the model, what each step scored (both atomically)."""
    with_plan(model, load_plan(model).model_copy(update={"postprocess": choice.chosen}))
    write_json(RunFiles(Path(model).parent).postprocess_choice, {
        "split": choice.split, "n_cases": choice.n_cases, "dice_without": choice.baseline_dice,
        "trials": list(choice.trials), "chosen": choice.chosen.model_dump(),
        "chosen_steps": describe_postprocess(choice.chosen)})


def choose_once(model: Path, prepared: Path) -> PostprocessChoice | None:
    """A planned run's last step (`cardioseg train`): choose on ``prepared``'s validation split and keep the choice,
    unless the model has one already (a finished run asked again) or there is nothing to choose on (None)."""
    if load_plan(model).postprocess is not None:
        return None
    choice = choose_postprocess(model, PreparedDataset(prepared))
    if choice is not None:
        keep_choice(model, choice)
    return choice
