"""What each section of the report holds, built from an evaluation (and its run) for the template.

Media made here are also kept in the evaluation folder (``EvaluationFiles.metric_distributions``,
``.videos``, ``.volume3d``), so they can be used outside the report.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from cardioseg.artifacts import EvaluationFiles, RunFiles
from cardioseg.config import Config
from cardioseg.data.prepared import PreparedDataset
from cardioseg.evaluation.clinical_outputs import clinical_outputs, echo_views
from cardioseg.evaluation.quality import flag_line
from cardioseg.fileio import safe_name
from cardioseg.report import tables
from cardioseg.report.inputs import Evaluation, Sources
from cardioseg.report.videos import echo_video, images_video, volume_video
from cardioseg.viz.cases import representative_slice
from cardioseg.viz.distributions import plot_metric_distributions
from cardioseg.viz.frames import grey_levels, overlay_frame
from cardioseg.viz.palette import STYLE_KEY, hex_colour
from cardioseg.viz.slices import display_spacing, volume_slice
from cardioseg.viz.video import Video, write_video
from cardioseg.viz.volume3d import volume_figure, write_volume_html

WEBP_QUALITY = 90
NAV = (("overview", "Overview"), ("metrics", "Metrics"), ("clinical", "Clinical"), ("cases", "Cases"),
       ("videos", "Videos"), ("view3d", "3D"), ("per-case", "Per case"), ("training", "Training"))


@dataclass(frozen=True)
class Figure:
    src: str
    alt: str
    caption: str


@dataclass(frozen=True)
class Clip:
    src: str
    mime: str
    caption: str


@dataclass(frozen=True)
class ClinicalBlock:
    title: str
    text: str
    agreement: tables.HtmlTable | None
    figures: list[Figure]
    rows: tables.HtmlTable | None


def report_context(sources: Sources, evaluation: Evaluation | None, cfg: Config) -> dict[str, Any]:
    """Every variable of the template (``report.template.TEMPLATE``)."""
    curves = RunFiles(sources.run).curves if sources.run else None
    context: dict[str, Any] = {
        "nav": NAV, "title": "cardioseg report", "subtitle": f"generated {_now()}", "key_figures": [],
        "facts": _run_facts(sources), "notes": [], "metrics": None, "distance_unit": "px", "distribution_figures": [],
        "clinical_blocks": [], "case_figures": [], "videos": [], "view3d": None, "legend": None,
        "view3d_missing": "No 3D view: there is no evaluation.", "per_case": None, "qc_summary": None,
        "training_figure": _png(curves, "training curves", "Loss and validation Dice per epoch"),
        "training_missing": f"No training curves found: {curves} does not exist." if curves
        else "No training curves found: the training run folder is not known.",
        "config_text": _config_text(sources),
    }
    if evaluation is None:
        model = RunFiles(sources.run).model if sources.run else "MODEL"
        context["notes"].append(f"no evaluation found for this run: run `cardioseg evaluate -m {model} -d DATA`, "
                                "then the report again")
        return context
    context["notes"] += evaluation.notes
    context["facts"] = _evaluation_facts(evaluation) + context["facts"]
    context.update(_evaluation_sections(evaluation, cfg, context["notes"]))
    return context


def _evaluation_sections(ev: Evaluation, cfg: Config, notes: list[str]) -> dict[str, Any]:
    summary, unit, files = ev.summary, ev.summary.get("distance_unit", "px"), EvaluationFiles(ev.folder)
    scores = _case_scores(ev.per_case, ev.predictions)
    clinical = _clinical(ev, notes)
    out: dict[str, Any] = {
        "title": f"cardioseg report: {summary.get('arch', '?')} ({summary.get('encoder') or 'no encoder'}) "
                 f"on the {summary.get('split', '?')} split",
        "subtitle": f"{summary.get('n_cases', '?')} cases of {summary.get('data', '?')}, at the original resolution; "
                    f"generated {_now()}",
        "key_figures": _key_figures(summary, clinical),
        "distance_unit": unit,
        "metrics": tables.metrics_table(summary["metrics"], unit) if summary.get("metrics") else None,
        "per_case": tables.per_case_table(ev.per_case, unit) if not ev.per_case.empty else None,
        "qc_summary": flag_line(summary),
        "clinical_blocks": _clinical_blocks(files, clinical),
    }
    distributions = plot_metric_distributions(ev.per_case, files.metric_distributions, unit) \
        if not ev.per_case.empty else None
    out["distribution_figures"] = [f for f in [_png(distributions, "metric distributions",
                                   "Every case's Dice, HD95 and ASSD: boxes show quartiles, points are cases")] if f]
    prepared = ev.prepared
    if prepared is None or not ev.predictions:
        out["view3d_missing"] = "No 3D view: the predictions or the prepared dataset are missing."
        figure = _png(files.cases_figure, "best, median and worst cases",
                      "Best, median and worst cases by post-processed Dice (from the evaluation)")
        out["case_figures"] = [figure] if figure else []
        return out
    out["legend"] = {"classes": [(hex_colour(c), name) for c, name in prepared.plan.class_names.items()],
                     "styles": STYLE_KEY}
    out["case_figures"] = _case_figures(prepared, ev.predictions, scores, cfg.report.max_cases)
    out["videos"] = _videos(prepared, ev, scores, cfg.report.max_videos, notes)
    out.update(_view3d(prepared, ev, scores))
    return out


def _case_scores(per_case: pd.DataFrame, predictions: dict[str, np.ndarray]) -> pd.Series:
    """Post-processed Dice per case (mean over classes), worst first, for cases with a prediction."""
    if per_case.empty:
        return pd.Series(dtype=float)
    post = per_case[(per_case["variant"] == "post") & per_case["case_id"].isin(list(predictions))]
    return post.groupby("case_id")["dice"].mean().dropna().sort_values()


def _spread(items: list[str], n: int) -> dict[str, str]:
    """Up to ``n`` items evenly spread from the first (worst) to the last (best), with their rank label."""
    if not items or n <= 0:
        return {}
    picks = sorted(set(np.linspace(0, len(items) - 1, min(n, len(items))).round().astype(int).tolist()))
    labels = {0: "worst", len(items) // 2: "median", len(items) - 1: "best"}
    return {items[i]: labels.get(i, f"rank {len(items) - i} of {len(items)}") for i in picks}


def _case_figures(
    prepared: PreparedDataset, predictions: dict[str, np.ndarray], scores: pd.Series, n: int
) -> list[Figure]:
    """Overlays of up to ``n`` cases from the worst to the best (3D: the slice with most reference)."""
    figures = []
    for case_id, rank in _spread(list(scores.index), n).items():
        pred = predictions[case_id]
        info = prepared.cases[case_id]
        image, ref = prepared.original_image(case_id), prepared.original_label(case_id)
        where, spacing = "", prepared.spacing(case_id)
        if image.ndim == 3:
            axis, affine = info["slice_axis"], info.get("affine")
            k = representative_slice(ref, axis)
            window = grey_levels(image)
            image, pred, ref = (volume_slice(a, k, axis, affine) for a in (image, pred, ref))
            where, spacing = f", slice {k + 1} (largest reference area)", display_spacing(spacing, axis, affine)
        else:
            window = grey_levels(image)
        caption = f"{rank}: {case_id}  Dice {scores[case_id]:.3f}"
        frame = overlay_frame(image, pred, ref, window, caption, spacing, class_names=prepared.plan.class_names)
        figures.append(Figure(_picture_uri(frame), caption, f"{rank}: {case_id}{where}"))
    return figures


def _videos(prepared: PreparedDataset, ev: Evaluation, scores: pd.Series, n: int, notes: list[str]) -> list[Clip]:
    """Videos of up to ``n`` patients (echo, 2D) or volumes (3D), from the worst to the best."""
    clips: list[Clip] = []
    if scores.empty or n == 0:
        return clips
    patient_of = {c: prepared.cases[c]["patient_id"] for c in scores.index}
    is_3d = prepared.cases[scores.index[0]]["ndim"] == 3
    ranked = scores.groupby(lambda c: c if is_3d else patient_of[c]).mean().sort_values()
    echo = echo_views(prepared, list(ev.predictions))
    for key, rank in _spread(list(ranked.index), n).items():
        video: Video | None
        if is_3d:
            video = volume_video(prepared, key, ev.predictions[key])
        elif key in echo:
            video, more = echo_video(prepared, key, ev.predictions)
            notes.extend(more)
        else:
            video = images_video(prepared, sorted(c for c in scores.index if patient_of[c] == key), ev.predictions)
        if video is None:
            continue
        path = write_video(video, EvaluationFiles(ev.folder).videos / safe_name(key))
        clips.append(Clip(_data_uri(video.data, video.mime), video.mime,
                          f"{rank}: {key}, mean Dice {ranked[key]:.3f} ({path.name})"))
    return clips


def _view3d(prepared: PreparedDataset, ev: Evaluation, scores: pd.Series) -> dict[str, Any]:
    """The median 3D case as an interactive surface view (also saved as its own HTML file).

    The report carries plotly.js gzip-compressed (a third of its 4.8 MB) and the figure as JSON;
    the page inflates the library with the browser's own ``DecompressionStream``, then draws.
    """
    volumes = [c for c in scores.index if prepared.cases[c]["ndim"] == 3]
    if not volumes:
        return {"view3d_missing": "No 3D view: the cases of this evaluation are 2D images."}
    case_id = volumes[len(volumes) // 2]
    info = prepared.cases[case_id]
    affine = np.asarray(info["affine"]) if info.get("affine") else None
    fig = volume_figure(ev.predictions[case_id], prepared.original_label(case_id), prepared.spacing(case_id),
                        affine, f"{case_id} (median case, Dice {scores[case_id]:.3f})", prepared.plan.class_names)
    if fig is None:
        return {"view3d_missing": f"No 3D view: {case_id} has empty predicted and reference masks."}
    path = write_volume_html(fig, EvaluationFiles(ev.folder).volume3d(safe_name(case_id)))
    from plotly.offline import get_plotlyjs

    caption = (f"{case_id}: reference (translucent) and predicted (opaque) surfaces of each class, in mm; "
               f"also saved as {path.name}.")
    plotly_gz = base64.b64encode(gzip.compress(get_plotlyjs().encode("utf-8"), 9, mtime=0)).decode("ascii")
    return {"view3d": {"figure": json.loads(fig.to_json()), "caption": caption, "plotly_gz": plotly_gz}}


def _clinical(ev: Evaluation, notes: list[str]) -> dict[str, Any]:
    """The evaluation's clinical summary; computed now for an evaluation that predates it."""
    clinical = ev.summary.get("clinical")
    if clinical is None and ev.prepared is not None:
        clinical = clinical_outputs(ev.prepared, ev.predictions, ev.folder)
        notes.append("clinical indices computed by this report (the evaluation predates them)")
    elif clinical is None:
        notes.append("no clinical indices: the evaluation predates them and its prepared dataset is missing")
    clinical = clinical or {}
    notes.extend(clinical.get("notes", []))
    return clinical


def _clinical_blocks(files: EvaluationFiles, clinical: dict[str, Any]) -> list[ClinicalBlock]:
    blocks = []
    if "ef" in clinical and files.clinical_ef.is_file():
        ef, frame = clinical["ef"], pd.read_csv(files.clinical_ef, dtype={"patient_id": str})
        unit = ef["unit"]
        stats = {"EDV": ef["agreement"]["edv"], "ESV": ef["agreement"]["esv"], "EF": ef["agreement"]["ef"]}
        units = {"EDV": unit, "ESV": unit, "EF": "%"}
        for key, label in (("ef_pred", "EF from predicted masks vs Info file"), ("ef_ref", "EF from reference masks vs Info file")):
            if key in ef.get("agreement_with_info", {}):
                stats[label], units[label] = ef["agreement_with_info"][key], "%"
        text = (f"End-diastolic and end-systolic LV volumes by the biplane method of discs (20 discs) from the "
                f"apical 2CH and 4CH masks, and EF = (EDV − ESV) / EDV; {ef['n_with_ef']} of {ef['n_patients']} "
                "patients have all four masks measurable. Predicted and reference values use the same method, so "
                "differences come from the segmentation.")
        if unit == "px^3":
            text += (" The pixel spacing is unknown (e.g. camus224 images resized to 224×224), so volumes are in "
                     "pixel units (shown in thousands of px³) and only comparable within this table; EF, a ratio, "
                     "is unit-free.")
        figures = [f for f in (
            _png(files.bland_altman("ef"), "Bland-Altman EF", "Predicted vs reference masks: correlation (top) "
                 "and Bland-Altman (bottom; bias and 95% limits of agreement)"),
            _png(files.bland_altman("ef_info"), "EF vs Info files", "EF against the EF of the CAMUS Info files"),
        ) if f]
        blocks.append(ClinicalBlock("Left-ventricular volumes and ejection fraction (biplane Simpson)", text,
                                    tables.agreement_table(stats, units), figures, tables.ef_rows_table(frame)))
    if "volumes" in clinical and files.clinical_volumes.is_file():
        volumes, frame = clinical["volumes"], _volume_rows(files.clinical_volumes)
        unit = volumes["unit"]
        text = (f"Volume of each 3D mask ({volumes['n_cases']} volumes): voxel count × voxel volume"
                f"{'' if unit == 'mL' else ' — the voxel spacing is unknown, so in voxels'}; error = predicted − reference.")
        stats = {f"{name} volume": s for name, s in volumes["agreement"].items()}
        figure = _png(files.bland_altman("volume"), "Bland-Altman volume", "Predicted vs reference volumes")
        blocks.append(ClinicalBlock("Volumes of the 3D segmentations", text,
                                    tables.agreement_table(stats, dict.fromkeys(stats, unit)),
                                    [figure] if figure else [], tables.volume_rows_table(frame)))
    return blocks


def _volume_rows(path: Path) -> pd.DataFrame:
    """The volume table; one written before relative errors were in percent gets its ``rel_error`` converted."""
    frame = pd.read_csv(path, dtype={"case_id": str})
    if "rel_error_pct" not in frame and "rel_error" in frame:
        frame["rel_error_pct"] = 100 * frame.pop("rel_error")
    return frame


def _key_figures(summary: dict[str, Any], clinical: dict[str, Any]) -> list[tuple[str, str]]:
    """The few numbers a reader looks for first: Dice and HD95 after post-processing, EF and volume agreement."""
    figures = []
    unit = summary.get("distance_unit", "px")
    for rec in summary.get("metrics", {}).get("post", []):
        if rec["metric"] in ("dice", "hd95") and rec["mean"] is not None and len(figures) < 4:
            label = f"{rec['class_name']}: {'Dice' if rec['metric'] == 'dice' else f'HD95 [{unit}]'} (post)"
            digits = 3 if rec["metric"] == "dice" else 1
            figures.append((label, f"{rec['mean']:.{digits}f} ± {rec['std'] or 0:.{digits}f}"))
    ef = clinical.get("ef", {}).get("agreement", {}).get("ef")
    if ef and ef.get("bias") is not None:
        limits = " (limits n/a)" if ef.get("loa_lower") is None else f" ({ef['loa_lower']:.1f} to {ef['loa_upper']:.1f})"
        label = "EF bias, 95% limits [%]" + (f" — {ef['note']}" if ef.get("note") else "")
        figures.append((label, f"{ef['bias']:+.1f}{limits}"))
        figures.append((f"EF mean absolute error (n = {ef['n']})", f"{ef['mae']:.1f} %"))
    for name, stats in clinical.get("volumes", {}).get("per_class", {}).items():
        figures.append((f"{name} volume |error| mean (max)",
                        f"{stats['mean_abs_error']:.1f} ({stats['max_abs_error']:.1f}) {stats['unit']}"))
    qc = summary.get("qc")
    if qc:
        figures.append(("cases flagged by QC", f"{qc['n_flagged']} of {qc['n_cases']}"))
    return figures


def _evaluation_facts(ev: Evaluation) -> list[tuple[str, str]]:
    s = ev.summary
    post = s.get("postprocess") or {}
    steps = [name for name, on in (("fill holes", post.get("fill_holes")), ("largest component", post.get("largest_component")),
                                   (f"closing r={post.get('closing_radius')}", post.get("closing_radius")),
                                   (f"min slice area {post.get('min_slice_area')}", post.get("min_slice_area"))) if on]
    facts = [("model", f"{s.get('arch', '?')} / {s.get('encoder') or '-'}"),
             ("parameters", f"{s['parameters'] / 1e6:.2f} M" if s.get("parameters") else "?"),
             ("model file", f"{s.get('model_file_mb', '?')} MB"),
             ("inference", f"{s.get('inference_ms_per_image', '?')} ms per image"),
             ("data", str(s.get("data", "?"))), ("split", f"{s.get('split', '?')}: {s.get('n_cases', '?')} cases"),
             ("post-processing", ", ".join(steps) or "threshold only"),
             ("evaluation folder", str(ev.folder)), ("model file path", str(s.get("model", "?")))]
    return facts


def _run_facts(sources: Sources) -> list[tuple[str, str]]:
    return [("training run", str(sources.run) if sources.run else "not found"), ("generated", _now())]


def _config_text(sources: Sources) -> str:
    configs = [RunFiles(sources.run).config] if sources.run else []
    configs += [EvaluationFiles(sources.evaluation).config] if sources.evaluation else []
    return next((path.read_text(encoding="utf-8") for path in configs if path.is_file()), "")


def _png(path: Path | None, alt: str, caption: str) -> Figure | None:
    if path is None or not path.is_file():
        return None
    return Figure(_data_uri(path.read_bytes(), "image/png"), alt, caption)


def _picture_uri(rgb: np.ndarray) -> str:
    """A display-size overlay as lossy WebP: a tenth of the PNG of a noisy scan, contours still crisp."""
    ok, encoded = cv2.imencode(".webp", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_WEBP_QUALITY, WEBP_QUALITY])
    if not ok:
        raise ValueError("WebP encoding failed")
    return _data_uri(encoded.tobytes(), "image/webp")


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _now() -> str:
    return dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
