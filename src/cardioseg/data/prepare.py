"""`cardioseg prepare`: any supported layout in, one prepared dataset out.

Each case is read, oriented, label-mapped and preprocessed once, then cached as a chunk in a
work folder next to the output. A killed run resumes from its chunks; when every case is done the
chunks are assembled into the prepared directory (see ``prepared.py``), built under a temporary
name and renamed into place, so a half-written dataset is never visible.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.progress import Progress

from cardioseg.anatomy import role_from_name
from cardioseg.artifacts import PreparedFiles
from cardioseg.config import Config, PreprocessConfig
from cardioseg.data.case import Case, CaseRef
from cardioseg.data.preprocess import ArrayPlanes, Pipeline, map_labels
from cardioseg.data.readers import detect_layout, get_reader
from cardioseg.data.splits import check_disjoint, fold_split, group_patients, official_split, ratio_split
from cardioseg.errors import ConfigError, DataError, problem_list
from cardioseg.fileio import atomic_dir, folder_lock, safe_name, write_json, write_text, write_with
from cardioseg.plan import IGNORE_LABEL, ClassSpec, Plan, oriented_spacing

FORMAT_VERSION = 2


@dataclass
class PrepareResult:
    out_dir: Path
    n_cases: int
    n_samples: int
    split_counts: dict[str, int]
    bad_files: list[tuple[str, str]]
    warnings: list[str]


def _config_digest(cfg: Config, layout: str) -> str:
    relevant = {
        "format": FORMAT_VERSION,
        "layout": layout,
        "data": cfg.data.model_dump(mode="json", exclude={"prepared", "skip_bad", "split_ratios", "seed", "use_official_split",
                                                     "folds", "fold"}),
        "preprocess": cfg.preprocess.model_dump(mode="json"),
    }
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def _unannotated_classes(case: Case, mapping: dict[int, int] | None) -> list[int]:
    """Class ids the reader says were not drawn on this case (Sunnybrook slices without an epicardial contour)."""
    sources = case.meta.get("unannotated_labels") or []
    return sorted({(mapping or {v: v for v in sources}).get(int(v), 0) for v in sources} - {0})


def _foreground(case: Case, label: np.ndarray | None, axis: int, pre: PreprocessConfig) -> np.ndarray | None:
    """The reference structure projected over the planes, for a two-stage model's foreground crop (None for the
    other crops)."""
    if pre.crop != "foreground":
        return None
    if label is None:
        raise DataError("the foreground crop (the second stage of a two-stage model) is cut around the reference, and "
                        "this case has no label", case.image_path)
    known = (label > 0) & (label != IGNORE_LABEL)
    return known if known.ndim == 2 else known.any(axis=axis)


def _process_case(case: Case, cfg: Config, fix: str) -> dict[str, Any]:
    """Everything prepare keeps of one case, as arrays plus JSON-able metadata."""
    pre = cfg.preprocess
    unannotated = _unannotated_classes(case, cfg.data.labels)
    label = None if case.label is None else map_labels(case.label, cfg.data.labels)
    if label is not None and unannotated:
        label[case.label == 0] = IGNORE_LABEL  # drawn as background, so background or a class nobody drew: unknown
    pipeline = Pipeline(pre, fix if case.image.ndim == 2 else "none")  # volumes keep their axes
    image = pipeline.orient.apply(case.image)
    label = None if label is None else pipeline.orient.apply(label)
    digest = hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()
    axis = cfg.data.slice_axis
    fitted = pipeline.fit(ArrayPlanes(image, axis), foreground=_foreground(case, label, axis, pre))
    label_planes = None if label is None else ArrayPlanes(label, axis)
    images, labels, rows = [], [], []
    for k in range(fitted.count):
        out_image, geometry = fitted.image(k)
        images.append(out_image)
        labels.append(np.zeros(pre.size, np.uint8) if label_planes is None
                      else fitted.label(label_planes.plane(k), geometry))
        rows.append(
            {
                "sample_id": case.case_id if image.ndim == 2 else f"{case.case_id}#{k:04d}",
                "slice_index": -1 if image.ndim == 2 else k,
                "orig_h": geometry.original_shape[0],
                "orig_w": geometry.original_shape[1],
                "crop_y0": geometry.crop_box[0],
                "crop_y1": geometry.crop_box[1],
                "crop_x0": geometry.crop_box[2],
                "crop_x1": geometry.crop_box[3],
            }
        )
    spacing = oriented_spacing(case.spacing, fix) if image.ndim == 2 else case.spacing
    return {
        "images": np.stack(images).astype(np.float32),
        "labels": np.stack(labels).astype(np.uint8),
        "original": label if label is not None else np.zeros(image.shape, np.uint8),
        "original_image": image,
        "rows": rows,
        "case": {
            "case_id": case.case_id,
            "patient_id": case.patient_id,
            "view": case.view or "",
            "phase": case.phase or "",
            "ndim": int(image.ndim),
            "shape": list(image.shape),
            "spacing": list(spacing) if spacing else None,
            "affine": case.affine.tolist() if case.affine is not None else None,
            "slice_axis": axis if image.ndim == 3 else None,
            "has_label": case.label is not None,
            "unannotated_classes": unannotated,
            "hash": digest,
            "source_image": str(case.image_path or ""),
            "source_label": str(case.label_path or ""),
            "meta": json.loads(json.dumps(case.meta, default=str)),
        },
    }


def _chunk_path(work: Path, ref: CaseRef) -> Path:
    """A file name per case id, readable and collision-free: ``p1 x`` and ``p1_x`` differ in their digest."""
    digest = hashlib.sha256(ref.case_id.encode()).hexdigest()[:12]
    return work / f"{safe_name(ref.case_id)}-{digest}.npz"


def _save_chunk(path: Path, chunk: dict[str, Any]) -> None:
    meta = np.frombuffer(json.dumps({"rows": chunk["rows"], "case": chunk["case"]}).encode(), np.uint8)

    def writer(tmp: Path) -> None:
        with open(tmp, "wb") as handle:  # a handle: numpy would append .npz to a bare path
            np.savez(handle, images=chunk["images"], labels=chunk["labels"], original=chunk["original"],
                     original_image=chunk["original_image"], meta=meta)

    write_with(path, writer)


def _load_chunk(path: Path, case_id: str) -> dict[str, Any]:
    """A cached case; a chunk holding another case (a name collision) is refused, never merged."""
    with np.load(path) as store:
        meta = json.loads(store["meta"].tobytes().decode())
        arrays = {key: store[key] for key in ("images", "labels", "original", "original_image")}
    if meta["case"]["case_id"] != case_id:
        raise DataError(f"cached chunk holds case {meta['case']['case_id']!r}, not {case_id!r}; delete the folder "
                        "and prepare again", path)
    return {**arrays, **meta}


def _work_dir(out_dir: Path, digest: str) -> Path:
    work = PreparedFiles(out_dir).work_dir
    stamp = work / "config.sha"
    if work.exists() and (not stamp.is_file() or stamp.read_text().strip() != digest):
        shutil.rmtree(work)  # cached chunks from another configuration are useless
    work.mkdir(parents=True, exist_ok=True)
    stamp.write_text(digest)
    return work


def _validate_labels(case: Case, cfg: Config, layout_labels: dict[int, str]) -> None:
    """Source values must be background, mapped by ``data.labels``, or known to the layout.

    Mapping ``{1: 1}`` on CAMUS drops its declared labels 2 and 3 on purpose; a value nobody
    declared (7 in a folder of 0/1/2 masks) is a data error, not something to zero silently.
    """
    if cfg.data.labels is None or case.label is None:
        return
    declared = {0, *cfg.data.labels, *layout_labels, *dict(case.meta.get("label_names") or ())}
    found = set(np.unique(case.label).tolist())
    if not found <= declared:
        raise DataError(
            f"mask values {sorted(found - declared)} are outside the declared labels {sorted(declared)}",
            case.label_path,
        )


def _class_table(cfg: Config, found: set[int], source_names: dict[int, str]) -> tuple[ClassSpec, ...]:
    """The plan's classes: ids from ``data.labels`` (or the values found), names from ``data.class_names``
    (one per foreground class) or the layout's label names, roles from the source labels' names."""
    ids = sorted({0, *cfg.data.labels.values()}) if cfg.data.labels else sorted({0, *found} - {IGNORE_LABEL})
    mapping = cfg.data.labels or {i: i for i in ids}
    given = cfg.data.class_names or []
    if given and len(given) != len(ids) - 1:
        raise ConfigError(
            f"data.class_names has {len(given)} name(s) but there are {len(ids) - 1} foreground class(es) "
            f"(ids {', '.join(map(str, ids[1:]))}): give one name per foreground class, in that order; "
            "the background is named automatically")
    classes = [ClassSpec(id=0, name="background")]
    for n, class_id in enumerate(ids[1:]):
        sources = [source_names[s] for s, target in sorted(mapping.items()) if target == class_id and s in source_names]
        name = given[n] if n < len(given) else " + ".join(sources) or f"class{class_id}"
        role = role_from_name(sources[0]) if len(sources) == 1 else role_from_name(name)
        classes.append(ClassSpec(id=class_id, name=name, role=role))
    return tuple(classes)


def plan_config(cfg: Config, plan: Plan) -> Config:
    """``cfg`` with the data and preprocessing settings of ``plan``: how a raw folder is prepared for a model."""
    cfg = cfg.model_copy(deep=True)
    cfg.data.labels = plan.label_map
    cfg.data.orientation = plan.orientation
    cfg.data.slice_axis = plan.slice_axis
    cfg.data.class_names = [c.name for c in plan.foreground]
    cfg.preprocess = plan.preprocess
    return cfg


def prepare_dataset(cfg: Config, progress: bool = True) -> PrepareResult:
    """Read ``cfg.data.source`` and write the prepared dataset to ``cfg.data.prepared``.

    One process per output folder (a lock beside it): two would publish a mix of both.
    """
    with folder_lock(Path(cfg.data.prepared), "cardioseg prepare", replaced_whole=True):
        return _prepare(cfg, progress)


def _prepare(cfg: Config, progress: bool) -> PrepareResult:
    source, out_dir = cfg.data.source, Path(cfg.data.prepared)
    if source is None:
        raise DataError("no data source given (data.source or --source)")
    source = Path(source)
    if not source.exists():
        raise DataError("data source does not exist", source)
    layout = detect_layout(source) if cfg.data.layout == "auto" else cfg.data.layout
    reader = get_reader(layout)
    fix = reader.orientation_fix if cfg.data.orientation == "auto" else cfg.data.orientation
    refs = reader.discover(source, cfg.data)
    if not refs:
        raise DataError(f"no cases found for layout {layout}", source)
    ids = [ref.case_id for ref in refs]
    if len(set(ids)) != len(ids):
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        raise DataError(f"case ids found twice: {dupes[:5]}", source)

    work = _work_dir(out_dir, _config_digest(cfg, layout))
    bad: list[tuple[str, str]] = []
    chunk_paths: list[tuple[CaseRef, Path]] = []
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"preparing {layout}", total=len(refs))
        for ref in refs:
            path = _chunk_path(work, ref)
            if not path.is_file():
                try:
                    case = reader.load(ref, cfg.data)
                    _validate_labels(case, cfg, reader.label_names)
                    chunk = _process_case(case, cfg, fix)
                except DataError as exc:
                    bad.append((str(exc.path or ref.image_path), exc.problem))
                    bar.advance(task)
                    continue
                _save_chunk(path, chunk)
            chunk_paths.append((ref, path))
            bar.advance(task)
    if bad and not cfg.data.skip_bad:
        summary = f"{len(bad)} bad file(s) (use --skip-bad to leave them out):"
        raise DataError(problem_list(summary, bad, PreparedFiles(out_dir).bad_files_listing), source)
    if not chunk_paths:
        raise DataError("no usable case left after skipping bad files", source)

    result = _assemble(cfg, layout, fix, source, out_dir, chunk_paths, reader.official_splits(source), bad,
                       reader.label_names)
    shutil.rmtree(work, ignore_errors=True)
    return result


def _assign_splits(cfg: Config, cases: list[dict[str, Any]], official: dict[str, str] | None, source: Path) -> dict[str, str]:
    patients = sorted({c["patient_id"] for c in cases})
    hashes: dict[str, list[str]] = {}
    for case in cases:
        hashes.setdefault(case["patient_id"], []).append(case["hash"])
    groups = group_patients(patients, hashes)
    if cfg.data.folds:
        return fold_split(groups, cfg.data.folds, cfg.data.fold, cfg.data.split_ratios, cfg.data.seed)
    if official and cfg.data.use_official_split:
        assignment = official_split(official, groups, str(source))
        if "val" not in assignment.values():  # a train/test release: validation patients come out of train
            train_groups = [g for g in groups if assignment[g[0]] == "train"]
            train_ratio, val_ratio, _ = cfg.data.split_ratios
            assignment.update(ratio_split(train_groups, (train_ratio, val_ratio, 0.0), cfg.data.seed))
        return assignment
    return ratio_split(groups, cfg.data.split_ratios, cfg.data.seed)


def _assemble(
    cfg: Config,
    layout: str,
    fix: str,
    source: Path,
    out_dir: Path,
    chunk_paths: list[tuple[CaseRef, Path]],
    official: dict[str, str] | None,
    bad: list[tuple[str, str]],
    label_names: dict[int, str],
) -> PrepareResult:
    chunks = [_load_chunk(path, ref.case_id) for ref, path in chunk_paths]
    cases = [chunk["case"] for chunk in chunks]
    assignment = _assign_splits(cfg, cases, official, source)
    rows: list[dict[str, Any]] = []
    found: set[int] = set()
    for chunk in chunks:
        case = chunk["case"]
        found.update(np.unique(chunk["original"]).tolist())
        spacing = "x".join(f"{s:g}" for s in case["spacing"]) if case["spacing"] else ""
        for row in chunk["rows"]:
            rows.append(
                {
                    "sample_id": row["sample_id"],
                    "case_id": case["case_id"],
                    "patient_id": case["patient_id"],
                    "volume_id": case["case_id"] if case["ndim"] == 3 else "",
                    "slice_index": row["slice_index"],
                    "view": case["view"],
                    "phase": case["phase"],
                    "split": assignment[case["patient_id"]],
                    "spacing": spacing,
                    "unannotated_classes": ";".join(str(c) for c in case["unannotated_classes"]),
                    "source_image": case["source_image"],
                    "source_label": case["source_label"],
                    **{k: row[k] for k in ("orig_h", "orig_w", "crop_y0", "crop_y1", "crop_x0", "crop_x1")},
                    "content_hash": case["hash"],
                }
            )
    manifest = pd.DataFrame(rows)
    check_disjoint(zip(manifest["patient_id"], manifest["split"]))
    source_names = {int(k): str(v) for k, v in dict(cases[0]["meta"].get("label_names") or []).items()}
    is_3d = any(c["ndim"] == 3 for c in cases)
    plan = Plan(
        layout=layout, is_3d=is_3d, slice_axis=cfg.data.slice_axis, orientation=fix, preprocess=cfg.preprocess,
        label_map=cfg.data.labels, classes=_class_table(cfg, found, {**label_names, **source_names}),
    )
    split_counts = {s: int((manifest["split"] == s).sum()) for s in ("train", "val", "test")}
    absent = [c for c in plan.foreground if c.id not in found]
    notes = [f"class {c.id} ({c.name}) occurs in no mask: check data.labels against the values in your masks"
             for c in absent]
    info = {
        "format_version": FORMAT_VERSION,
        "source": str(source),
        "plan": plan.model_dump(mode="json"),
        "n_cases": len(cases),
        "n_patients": manifest["patient_id"].nunique(),
        "n_samples": len(manifest),
        "samples_per_split": split_counts,
        "patients_per_split": {s: int(manifest.loc[manifest.split == s, "patient_id"].nunique()) for s in ("train", "val", "test")},
        "bad_files": len(bad),
    }
    with atomic_dir(out_dir) as tmp:
        staged = PreparedFiles(tmp)
        np.save(staged.images, np.concatenate([c["images"] for c in chunks]))
        np.save(staged.labels, np.concatenate([c["labels"] for c in chunks]))
        originals = {c["case"]["case_id"]: c["original"] for c in chunks}
        originals.update({f"image:{c['case']['case_id']}": c["original_image"] for c in chunks})
        np.savez_compressed(staged.originals, **originals)
        manifest.to_csv(staged.manifest, index=False)
        write_json(staged.cases, {c["case_id"]: {**c, "split": assignment[c["patient_id"]]} for c in cases})
        write_json(staged.dataset, info)
        write_text(staged.config, cfg.to_yaml())
        if bad:
            pd.DataFrame(bad, columns=["file", "problem"]).to_csv(staged.bad_files, index=False)
    return PrepareResult(out_dir, len(cases), len(manifest), split_counts, bad, notes)
