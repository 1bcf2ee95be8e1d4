"""`cardioseg evaluate`: score what `predict` ships, per case at the original resolution, like a paper.

The models are opened and run by the same segmenter as `cardioseg predict` and the web app
(``inference.members`` + ``inference.pipeline.Segmenter``), so a backend (ONNX Runtime), flip TTA
or an ensemble of several ``-m`` is scored exactly as it would be shipped. Each case's original
image (the prepared dataset keeps it) goes through the models' own pipelines; probabilities come
back on the original grid (crop and resize undone, volumes reassembled) and become labels through
``postprocess.probabilities_to_labels``, the function `predict` writes its masks with. Metrics are
reported without and with the configured post-processing, so its effect is visible. Every case
gets a QC flag, its reasons and its uncertainty score (``evaluation.quality``) in ``per_case.csv``,
and the summary says how many cases are flagged and how well the flag finds the worst ones.

Classes a case's annotators did not draw (Sunnybrook slices without an epicardial contour) are
left out of that case's metrics for that class. Distances are in mm when every scored case has a
spacing, else all in pixels (the plan's spacing policy): one summary never mixes the two.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.progress import Progress
from rich.table import Table

from cardioseg.artifacts import EvaluationFiles, PreparedFiles, default_evaluation_dir, read_json
from cardioseg.config import Config
from cardioseg.data.prepare import plan_config, prepare_dataset
from cardioseg.data.prepared import PreparedDataset
from cardioseg.data.preprocess import Orient
from cardioseg.errors import CardiosegError, ConfigError, DataError
from cardioseg.evaluation.clinical_outputs import clinical_outputs
from cardioseg.evaluation.metrics import MetricAccumulator, multiclass_case_metrics
from cardioseg.evaluation.quality import flag_line, qc_performance, qc_table
from cardioseg.fileio import write_json, write_npz, write_text, write_with
from cardioseg.inference.members import RunOptions, load_member
from cardioseg.inference.pipeline import Segmenter
from cardioseg.inference.predict import default_memory_budget
from cardioseg.inference.volumes import ArrayVolume
from cardioseg.plan import Plan
from cardioseg.postprocess import probabilities_to_labels, to_labels, with_planned_postprocess
from cardioseg.viz.cases import plot_best_median_worst
from cardioseg.viz.every_case import write_every_case

VARIANTS = ("raw", "post")


@dataclass
class EvaluationResult:
    out_dir: Path
    summary: dict[str, Any]
    per_case: pd.DataFrame


def open_for_plan(data: Path, plan: Plan, cfg: Config, files: EvaluationFiles, progress: bool) -> PreparedDataset:
    """A prepared dataset labelled like the model's plan: given, or prepared on the fly from a raw folder."""
    if PreparedFiles.is_prepared(data):
        prepared = PreparedDataset(data)
        if not prepared.plan.same_task(plan):
            raise DataError(
                f"prepared with labels {prepared.plan.label_map} -> classes {prepared.plan.class_names}, but the model "
                f"segments {plan.class_names} from {plan.label_map}; pass the raw data folder instead and it will be "
                "prepared to match", data)
        return prepared
    raw_cfg = plan_config(cfg, plan)
    raw_cfg.data.source = data
    raw_cfg.data.prepared = files.prepared
    prepare_dataset(raw_cfg, progress=progress)
    return PreparedDataset(files.prepared)


def _refuse_replacing(files: EvaluationFiles, overwrite: bool) -> None:
    """An earlier evaluation is replaced only when asked: it may be of other models, data or settings."""
    if overwrite or not files.summary.is_file():
        return
    try:
        earlier = read_json(files.summary, "evaluation summary")
        what = f" (of {earlier.get('model')} on {earlier.get('data')}, split {earlier.get('split')})"
    except (CardiosegError, AttributeError):
        what = ""
    raise ConfigError(f"this folder already holds an evaluation{what}; replace it with --overwrite, or choose "
                      "another folder with --out", files.root)


def labelled_case_ids(prepared: PreparedDataset, split: str | None) -> list[str]:
    """Labelled cases of a split, in manifest order."""
    rows = prepared.indices(split)
    ids = list(dict.fromkeys(prepared.manifest["case_id"].to_numpy()[rows].tolist()))
    return [case for case in ids if prepared.cases[case].get("has_label", True)]


def case_probabilities(
    segmenter: Segmenter, prepared: PreparedDataset, case_ids: Sequence[str], batch_size: int,
    uncertainty: dict[str, float | None] | None = None, threshold: float = 0.5,
) -> Iterator[tuple[str, np.ndarray]]:
    """(case id, probabilities (C, *original shape)) of prepared cases, on the grid of their stored references.

    2D originals are stored after the dataset's orientation fix: they are turned back to their
    layout as read, so the segmenter sees exactly what `predict` sees in the file; 2D cases are
    segmented in batches, volumes one at a time. ``uncertainty``, when given, receives each case's
    uncertainty score (None with one model and no TTA), its opinions compared at ``threshold``.
    """
    scores = uncertainty if uncertainty is not None else {}
    turn = Orient(prepared.plan.orientation)
    flat = [c for c in case_ids if prepared.cases[c]["ndim"] == 2]
    for start in range(0, len(flat), batch_size):
        group = flat[start : start + batch_size]
        probs, found = segmenter.images_with_uncertainty([turn.apply(prepared.original_image(c)) for c in group],
                                                         threshold, uncertainty is not None)
        scores.update(zip(group, found))
        yield from ((case, turn.invert(prob)) for case, prob in zip(group, probs))
    for case in (c for c in case_ids if prepared.cases[c]["ndim"] == 3):
        volume = ArrayVolume(prepared.original_image(case))
        prob = np.zeros((segmenter.classes, *volume.shape), np.float32)
        agreement = segmenter.new_agreement() if uncertainty is not None else None
        for k, plane in segmenter.volume(volume, default_memory_budget(), batch_size, agreement, threshold):
            np.moveaxis(prob, segmenter.slice_axis + 1, 1)[:, k] = plane
        scores[case] = agreement.uncertainty if agreement is not None else None
        yield case, prob


def score_case(prob: np.ndarray, ref: np.ndarray, plan: Plan, cfg: Config, spacing: tuple[float, ...] | None,
               slice_axis: int, unannotated: Sequence[int]) -> tuple[dict[str, dict[str, dict[str, float]]], np.ndarray]:
    """({variant: {class name: metrics}}, post-processed label map) of one case; undrawn classes left out."""
    post_cfg = cfg.evaluate.postprocess
    raw = to_labels(prob, post_cfg.threshold)
    post = probabilities_to_labels(prob, post_cfg, slice_axis)
    names = {c: n for c, n in plan.class_names.items() if c not in unannotated}
    if plan.binary:  # a one-channel model says 1 for its class, whatever the class id
        fg = plan.foreground[0].id
        raw, post = raw * np.uint8(fg), post * np.uint8(fg)
    scores = {variant: multiclass_case_metrics(labels, ref, names, spacing) for variant, labels in (("raw", raw), ("post", post))}
    return scores, post


def evaluate_model(models: Path | Sequence[Path], data: Path, cfg: Config, progress: bool = True) -> EvaluationResult:
    """Score one model, or the ensemble of several, on a prepared dataset or a raw data folder."""
    models = [Path(models)] if isinstance(models, str | Path) else [Path(m) for m in models]
    if not models:
        raise DataError("no model given (--model)")
    ev = cfg.evaluate
    files = EvaluationFiles(Path(ev.out_dir or default_evaluation_dir(models[0], data, ev.split)))
    _refuse_replacing(files, ev.overwrite)
    files.root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="cardioseg-evaluate-") as scratch:
        options = RunOptions(ev.backend, ev.precision, ev.batch_size)
        members = [load_member(m, options, Path(scratch), i) for i, m in enumerate(models)]
        segmenter = Segmenter(members, tta=ev.tta)
        cfg = with_planned_postprocess(cfg, segmenter.plan)
        ev = cfg.evaluate
        prepared = open_for_plan(Path(data), segmenter.plan, cfg, files, progress)
        split = None if ev.split == "all" else ev.split
        if len(prepared.indices(split)) == 0:
            available = sorted(set(prepared.manifest["split"]))
            raise DataError(f"split {ev.split!r} is empty; available: {', '.join(available)} or all", prepared.root)
        case_ids = labelled_case_ids(prepared, split)
        if not case_ids:
            raise DataError("no labelled case in this split: nothing to score", prepared.root)
        spacing_known = segmenter.plan.spacing_policy == "mm_if_all_known" and all(prepared.spacing(c) for c in case_ids)
        accumulators = {v: MetricAccumulator() for v in VARIANTS}
        predictions: dict[str, np.ndarray] = {}
        uncertainty: dict[str, float | None] = {}
        n_planes = 0
        started = time.perf_counter()
        with Progress(disable=not progress, transient=True) as bar:
            task = bar.add_task("evaluating", total=len(case_ids))
            cases = case_probabilities(segmenter, prepared, case_ids, ev.batch_size, uncertainty,
                                       ev.postprocess.threshold)
            for case, prob in cases:
                info = prepared.cases[case]
                n_planes += 1 if info["ndim"] == 2 else prob.shape[segmenter.slice_axis + 1]
                scores, predictions[case] = score_case(
                    prob, prepared.original_label(case), segmenter.plan, cfg,
                    prepared.spacing(case) if spacing_known else None, segmenter.slice_axis, prepared.unannotated(case))
                for variant in VARIANTS:
                    accumulators[variant].add_classes(case, scores[variant])
                bar.advance(task)
        wall = time.perf_counter() - started
        summary = {
            "model": str(models[0]),
            "models": [str(m) for m in models],
            "backends": [m.backend_name for m in members],
            "tta": ev.tta,
            "arch": "+".join(m.model_cfg.arch for m in members),
            "encoder": "+".join(str(m.model_cfg.encoder) for m in members),
            "parameters": sum(m.n_parameters for m in members),
            "model_file_mb": round(sum(m.stat().st_size for m in models) / 2**20, 3),
            "data": str(prepared.root),
            "split": ev.split,
            "n_cases": len(case_ids),
            "n_images": n_planes,
            "distance_unit": "mm" if spacing_known else "px",
            "resolution": "original",
            "inference_ms_per_image": round(1000.0 * segmenter.network_seconds / max(1, n_planes), 3),
            "evaluation_seconds": round(wall, 2),
            "postprocess": ev.postprocess.model_dump(),
        }
    qc = qc_table(prepared, predictions, uncertainty, spacing_known)
    return _write_outputs(files, prepared, cfg, accumulators, predictions, summary, qc)


def _per_case_frame(prepared: PreparedDataset, accumulators: dict[str, MetricAccumulator]) -> pd.DataFrame:
    frames = []
    for variant, acc in accumulators.items():
        frame = acc.to_dataframe()
        frame.insert(1, "variant", variant)
        frames.append(frame)
    per_case = pd.concat(frames, ignore_index=True)
    meta = pd.DataFrame(
        [{"case_id": cid, "patient_id": c["patient_id"], "view": c["view"], "phase": c["phase"]}
         for cid, c in prepared.cases.items()]
    )
    return per_case.merge(meta, on="case_id", how="left")


def _write_outputs(
    files: EvaluationFiles, prepared: PreparedDataset, cfg: Config, accumulators: dict[str, MetricAccumulator],
    predictions: dict[str, np.ndarray], summary: dict[str, Any], qc: pd.DataFrame,
) -> EvaluationResult:
    per_case = _per_case_frame(prepared, accumulators).merge(qc, on="case_id", how="left")
    summary["qc"] = qc_performance(per_case)
    summary["metrics"] = {v: _records(acc.summary()) for v, acc in accumulators.items()}
    summary["clinical"] = clinical_outputs(prepared, predictions, files.root)
    if cfg.evaluate.every_case:
        scores = per_case[per_case["variant"] == "post"].groupby("case_id")["dice"].mean().dropna()
        drawn = write_every_case(prepared, predictions, scores.to_dict(), files.overlays, files.volume3d)
        summary["every_case"] = {"overlays": drawn.n_overlays, "views": len(drawn.views)}
    write_with(files.per_case, lambda tmp: per_case.to_csv(tmp, index=False))
    write_json(files.summary, summary)
    write_text(files.config, cfg.to_yaml())
    write_npz(files.predictions, predictions)
    plot_best_median_worst(prepared, per_case, predictions, files.cases_figure)
    return EvaluationResult(files.root, summary, per_case)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()} for row in frame.to_dict("records")]


def summary_table(result: EvaluationResult) -> Table:
    """Mean ± std of each metric without and with post-processing, and the post-processed median."""
    summary = result.summary
    unit = summary["distance_unit"]
    classes = list(dict.fromkeys(str(r["class_name"]) for r in summary["metrics"]["raw"]))
    shipped = ", ".join(summary["backends"]) + (" + TTA" if summary["tta"] else "")
    table = Table(title=f"{summary['arch']} ({shipped}) on {summary['split']}: {', '.join(classes)} "
                        f"({summary['n_cases']} cases, original resolution)")
    columns = ["metric", "raw", "post-processed", "median", "undef."]
    if len(classes) > 1:
        columns.insert(0, "class")
    for column in columns:
        table.add_column(column, justify="left" if column in ("class", "metric") else "right", no_wrap=True)

    def cell(value: float | None, std: float | None = None) -> str:
        if value is None:
            return "n/a"
        return f"{value:.3f}" if std is None else f"{value:.3f} ± {std or 0:.3f}"

    for raw, post in zip(summary["metrics"]["raw"], summary["metrics"]["post"], strict=True):
        metric = raw["metric"] + (f" ({unit})" if raw["metric"] in ("hd", "hd95", "assd") else "")
        row = [metric, cell(raw["mean"], raw["std"]), cell(post["mean"], post["std"]), cell(post["median"]),
               str(post["n_undefined"] or "")]
        table.add_row(*([str(raw["class_name"])] if len(classes) > 1 else []), *row)
    table.caption = (f"{summary['parameters'] / 1e6:.2f} M parameters, {summary['model_file_mb']} MB, "
                     f"{summary['inference_ms_per_image']} ms/image")
    if (line := flag_line(summary)) is not None:
        table.caption += f"\n{line}"
    return table
