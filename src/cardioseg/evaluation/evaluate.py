"""`cardioseg evaluate`: score a model per case at the original resolution, like a paper.

Predictions are mapped back onto each image's original grid (undoing crop and resize) and 3D
volumes are put back together from their slices before any metric is computed; metrics are
reported without and with the configured post-processing, so its effect is visible.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.progress import Progress
from rich.table import Table

from cardioseg.config import Config
from cardioseg.data.prepared import PreparedDataset
from cardioseg.data.preprocess import restore_probabilities
from cardioseg.errors import DataError
from cardioseg.evaluation.metrics import MetricAccumulator, case_metrics, multiclass_case_metrics
from cardioseg.fileio import write_json, write_npz, write_text, write_with
from cardioseg.inference.engine import Predictor, to_labels
from cardioseg.models.checkpoint import ModelBundle, load_bundle
from cardioseg.models.factory import count_parameters
from cardioseg.postprocess import postprocess, postprocess_labels

VARIANTS = ("raw", "post")


@dataclass
class EvaluationResult:
    out_dir: Path
    summary: dict[str, Any]
    per_case: pd.DataFrame


def open_for_model(data: Path, bundle: ModelBundle, cfg: Config, work_dir: Path, progress: bool) -> PreparedDataset:
    """A prepared dataset matching the model's preprocessing: given, or prepared on the fly from raw data."""
    if (data / "dataset.json").is_file():
        prepared = PreparedDataset(data)
        if prepared.preprocess != bundle.preprocess:
            raise DataError(
                "prepared with a different preprocessing than the model was trained with; "
                "pass the raw data folder instead and it will be prepared to match",
                data,
            )
        return prepared
    from cardioseg.data.prepare import prepare_dataset

    raw_cfg = cfg.model_copy(deep=True)
    raw_cfg.data.source = data
    raw_cfg.data.prepared = work_dir / "prepared"
    raw_cfg.data.labels = bundle.labels
    raw_cfg.data.orientation = bundle.orientation_fix  # type: ignore[assignment]
    raw_cfg.preprocess = bundle.preprocess
    prepare_dataset(raw_cfg, progress=progress)
    return PreparedDataset(raw_cfg.data.prepared)


def _case_groups(prepared: PreparedDataset, rows: np.ndarray) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    case_ids = prepared.manifest["case_id"].to_numpy()
    for row in rows:
        groups.setdefault(str(case_ids[row]), []).append(int(row))
    return groups


def _assemble(prepared: PreparedDataset, case_id: str, rows: list[int], probs: dict[int, np.ndarray]) -> np.ndarray:
    """Original-grid probabilities (C, ...) of one case: an image, or a volume from its slices."""
    planes = [restore_probabilities(probs.pop(r), prepared.geometry(r)) for r in rows]
    info = prepared.cases[case_id]
    if info["ndim"] == 2:
        return planes[0]
    order = np.argsort(prepared.manifest["slice_index"].to_numpy()[rows])
    return np.stack([planes[i] for i in order], axis=info["slice_axis"] + 1)


def _score(
    prob: np.ndarray, ref: np.ndarray, bundle: ModelBundle, cfg: Config, spacing: tuple[float, ...] | None,
    slice_axis: int,
) -> tuple[dict[str, dict[str, dict[str, float]]], np.ndarray]:
    """({variant: {class name: metrics}}, post-processed label map) for one case."""
    post_cfg = cfg.evaluate.postprocess
    raw = to_labels(prob, post_cfg.threshold)
    if bundle.binary:
        post = postprocess(prob[0], post_cfg, slice_axis).astype(np.uint8)
    else:
        post = postprocess_labels(raw, post_cfg, slice_axis).astype(np.uint8)
    names = {c: n for c, n in bundle.class_names.items() if c != 0} or {1: "foreground"}
    result = {}
    for variant, labels in (("raw", raw), ("post", post)):
        if bundle.binary:
            result[variant] = {next(iter(names.values())): case_metrics(labels > 0, ref > 0, spacing)}
        else:
            result[variant] = multiclass_case_metrics(labels, ref, names, spacing)
    return result, post


def evaluate_model(model_path: Path, data: Path, cfg: Config, progress: bool = True) -> EvaluationResult:
    bundle = load_bundle(model_path)
    out_dir = Path(cfg.evaluate.out_dir or Path(model_path).parent / "evaluation")
    out_dir.mkdir(parents=True, exist_ok=True)
    prepared = open_for_model(Path(data), bundle, cfg, out_dir, progress)
    split = None if cfg.evaluate.split == "all" else cfg.evaluate.split
    rows = prepared.indices(split)
    if len(rows) == 0:
        available = sorted(set(prepared.manifest["split"]))
        raise DataError(f"split {cfg.evaluate.split!r} is empty; available: {', '.join(available)} or all", prepared.root)
    predictor = Predictor(bundle, batch_size=cfg.evaluate.batch_size)
    groups = _case_groups(prepared, rows)
    remaining = {case: len(r) for case, r in groups.items()}
    slice_of = {row: case for case, case_rows in groups.items() for row in case_rows}
    accumulators = {v: MetricAccumulator() for v in VARIANTS}
    predictions: dict[str, np.ndarray] = {}
    pending: dict[int, np.ndarray] = {}
    images = prepared.images
    started = time.perf_counter()
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("evaluating", total=len(rows))
        for start in range(0, len(rows), predictor.batch_size):
            batch_rows = rows[start : start + predictor.batch_size]
            for row, prob in zip(batch_rows, predictor.probabilities(images[batch_rows])):
                pending[int(row)] = prob
                case = slice_of[int(row)]
                remaining[case] -= 1
                if remaining[case] == 0:  # every slice of this case is in: score it and free memory
                    _finish_case(prepared, bundle, cfg, case, groups[case], pending, accumulators, predictions)
            bar.advance(task, len(batch_rows))
    wall = time.perf_counter() - started
    return _write_outputs(out_dir, model_path, bundle, prepared, cfg, accumulators, predictions, predictor, wall, len(rows))


def _finish_case(
    prepared: PreparedDataset, bundle: ModelBundle, cfg: Config, case: str, rows: list[int],
    pending: dict[int, np.ndarray], accumulators: dict[str, MetricAccumulator], predictions: dict[str, np.ndarray],
) -> None:
    prob = _assemble(prepared, case, rows, pending)
    info = prepared.cases[case]
    if not info.get("has_label", True):
        return
    ref = prepared.original_label(case)
    scores, predictions[case] = _score(prob, ref, bundle, cfg, prepared.spacing(case), info.get("slice_axis") or 2)
    for variant in VARIANTS:
        accumulators[variant].add_classes(case, scores[variant])


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
    out_dir: Path, model_path: Path, bundle: ModelBundle, prepared: PreparedDataset, cfg: Config,
    accumulators: dict[str, MetricAccumulator], predictions: dict[str, np.ndarray], predictor: Predictor,
    wall_seconds: float, n_images: int,
) -> EvaluationResult:
    if not len(accumulators["raw"]):
        raise DataError("no labelled case in this split: nothing to score", prepared.root)
    per_case = _per_case_frame(prepared, accumulators)
    spacing_known = all(prepared.spacing(c) for c in predictions)
    summary = {
        "model": str(model_path),
        "arch": bundle.model_cfg.arch,
        "encoder": bundle.model_cfg.encoder,
        "parameters": count_parameters(bundle.model),
        "model_file_mb": round(Path(model_path).stat().st_size / 2**20, 3),
        "data": str(prepared.root),
        "split": cfg.evaluate.split,
        "n_cases": len(accumulators["raw"]) // max(1, len(per_case["class_name"].unique())),
        "n_images": n_images,
        "distance_unit": "mm" if spacing_known else "px",
        "resolution": "original",
        "inference_ms_per_image": round(predictor.ms_per_image, 3),
        "evaluation_seconds": round(wall_seconds, 2),
        "postprocess": cfg.evaluate.postprocess.model_dump(),
        "metrics": {v: _records(acc.summary()) for v, acc in accumulators.items()},
    }
    from cardioseg.clinical.report import clinical_outputs

    summary["clinical"] = clinical_outputs(prepared, predictions, out_dir)
    write_with(out_dir / "per_case.csv", lambda tmp: per_case.to_csv(tmp, index=False))
    write_json(out_dir / "summary.json", summary)
    write_text(out_dir / "config.yaml", cfg.to_yaml())
    write_npz(out_dir / "predictions.npz", predictions)
    from cardioseg.viz.cases import plot_best_median_worst

    plot_best_median_worst(prepared, per_case, predictions, out_dir / "cases_best_median_worst.png")
    return EvaluationResult(out_dir, summary, per_case)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()} for row in frame.to_dict("records")]


def summary_table(result: EvaluationResult) -> Table:
    """Mean ± std of each metric without and with post-processing, and the post-processed median."""
    summary = result.summary
    unit = summary["distance_unit"]
    classes = list(dict.fromkeys(str(r["class_name"]) for r in summary["metrics"]["raw"]))
    table = Table(title=f"{summary['arch']} on {summary['split']}: {', '.join(classes)} "
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
    return table
