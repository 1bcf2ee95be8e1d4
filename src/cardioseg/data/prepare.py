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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.progress import Progress

from cardioseg.config import Config
from cardioseg.data.case import Case, CaseRef
from cardioseg.data.preprocess import crop_box, intensity_chain, map_labels, orient, preprocess_plane
from cardioseg.data.readers import detect_layout, get_reader
from cardioseg.data.splits import check_disjoint, group_patients, official_split, ratio_split
from cardioseg.errors import DataError
from cardioseg.fileio import atomic_dir, write_json, write_text

FORMAT_VERSION = 1


@dataclass
class PrepareResult:
    out_dir: Path
    n_cases: int
    n_samples: int
    split_counts: dict[str, int]
    bad_files: list[tuple[str, str]]


def _config_digest(cfg: Config, layout: str) -> str:
    relevant = {
        "format": FORMAT_VERSION,
        "layout": layout,
        "data": cfg.data.model_dump(mode="json", exclude={"prepared", "skip_bad", "split_ratios", "seed", "use_official_split"}),
        "preprocess": cfg.preprocess.model_dump(mode="json"),
    }
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def _planes(
    image: np.ndarray, label: np.ndarray | None, slice_axis: int
) -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
    """(slice index, image plane, label plane) for a 3D volume; one plane (-1) for 2D."""
    if image.ndim == 2:
        yield -1, image, label
        return
    # moveaxis gives views; np.take would copy the whole volume's worth of strides per slice.
    image_slices = np.moveaxis(image, slice_axis, 0)
    label_slices = None if label is None else np.moveaxis(label, slice_axis, 0)
    for k in range(image_slices.shape[0]):
        yield k, image_slices[k], None if label_slices is None else label_slices[k]


def _process_case(case: Case, cfg: Config, fix: str) -> dict[str, Any]:
    """Everything prepare keeps of one case, as arrays plus JSON-able metadata."""
    pre = cfg.preprocess
    label = None if case.label is None else map_labels(case.label, cfg.data.labels)
    image = case.image
    if image.ndim == 2:
        image = orient(image, fix)
        label = None if label is None else orient(label, fix)
    digest = hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()
    normalised = intensity_chain(image, pre)
    # Volumes share one crop box across slices so that their predictions stack back together.
    volume_box = crop_box(normalised.max(axis=cfg.data.slice_axis), pre) if image.ndim == 3 else None
    images, labels, rows = [], [], []
    for k, plane, label_plane in _planes(normalised, label, cfg.data.slice_axis):
        out_image, out_label, geometry = preprocess_plane(plane, label_plane, pre, volume_box)
        images.append(out_image)
        labels.append(out_label if out_label is not None else np.zeros(pre.size, np.uint8))
        rows.append(
            {
                "sample_id": case.case_id if k < 0 else f"{case.case_id}#{k:04d}",
                "slice_index": k,
                "orig_h": geometry.original_shape[0],
                "orig_w": geometry.original_shape[1],
                "crop_y0": geometry.crop_box[0],
                "crop_y1": geometry.crop_box[1],
                "crop_x0": geometry.crop_box[2],
                "crop_x1": geometry.crop_box[3],
            }
        )
    spacing = list(case.spacing) if case.spacing else None
    if spacing and image.ndim == 2 and fix == "transpose":
        spacing = spacing[::-1]
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
            "spacing": spacing,
            "affine": case.affine.tolist() if case.affine is not None else None,
            "slice_axis": cfg.data.slice_axis if image.ndim == 3 else None,
            "has_label": case.label is not None,
            "hash": digest,
            "source_image": str(case.image_path or ""),
            "source_label": str(case.label_path or ""),
            "meta": json.loads(json.dumps(case.meta, default=str)),
        },
    }


def _chunk_path(work: Path, ref: CaseRef) -> Path:
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in ref.case_id)
    return work / f"{safe}.npz"


def _save_chunk(path: Path, chunk: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp.npz")
    np.savez(
        tmp,
        images=chunk["images"],
        labels=chunk["labels"],
        original=chunk["original"],
        original_image=chunk["original_image"],
        meta=np.frombuffer(json.dumps({"rows": chunk["rows"], "case": chunk["case"]}).encode(), np.uint8),
    )
    tmp.replace(path)


def _load_chunk(path: Path) -> dict[str, Any]:
    with np.load(path) as store:
        meta = json.loads(store["meta"].tobytes().decode())
        arrays = {key: store[key] for key in ("images", "labels", "original", "original_image")}
        return {**arrays, **meta}


def _work_dir(out_dir: Path, digest: str) -> Path:
    work = out_dir.with_name(f".{out_dir.name}.work")
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


def _class_table(cfg: Config, found: set[int], source_names: dict[int, str]) -> tuple[list[int], dict[str, str]]:
    """Class ids and names: from ``data.class_names``, else from the layout's label names."""
    ids = sorted({0, *cfg.data.labels.values()}) if cfg.data.labels else sorted({0, *found})
    mapping = cfg.data.labels or {i: i for i in ids}
    table = {}
    for n, class_id in enumerate(ids):
        sources = [source_names.get(s, "") for s, target in sorted(mapping.items()) if target == class_id]
        derived = " + ".join(s for s in sources if s) or f"class{class_id}"
        table[str(class_id)] = "background" if class_id == 0 else derived
        if cfg.data.class_names and n < len(cfg.data.class_names):
            table[str(class_id)] = cfg.data.class_names[n]
    return ids, table


def prepare_dataset(cfg: Config, progress: bool = True) -> PrepareResult:
    """Read ``cfg.data.source`` and write the prepared dataset to ``cfg.data.prepared``."""
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
        listing = "; ".join(f"{p}: {why}" for p, why in bad)
        raise DataError(f"{len(bad)} bad file(s) (use --skip-bad to leave them out): {listing}", source)
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
    if official and cfg.data.use_official_split:
        return official_split(official, groups, str(source))
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
    chunks = [_load_chunk(path) for _, path in chunk_paths]
    cases = [chunk["case"] for chunk in chunks]
    assignment = _assign_splits(cfg, cases, official, source)
    rows: list[dict[str, Any]] = []
    found: set[int] = set()
    for chunk in chunks:
        case = chunk["case"]
        found.update(np.unique(chunk["labels"]).tolist())
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
                    "source_image": case["source_image"],
                    "source_label": case["source_label"],
                    **{k: row[k] for k in ("orig_h", "orig_w", "crop_y0", "crop_y1", "crop_x0", "crop_x1")},
                    "content_hash": case["hash"],
                }
            )
    manifest = pd.DataFrame(rows)
    check_disjoint(zip(manifest["patient_id"], manifest["split"]))
    source_names = {int(k): str(v) for k, v in dict(cases[0]["meta"].get("label_names") or []).items()}
    class_ids, class_names = _class_table(cfg, found, {**label_names, **source_names})
    split_counts = {s: int((manifest["split"] == s).sum()) for s in ("train", "val", "test")}
    info = {
        "format_version": FORMAT_VERSION,
        "layout": layout,
        "source": str(source),
        "orientation_fix": fix,
        "is_3d": any(c["ndim"] == 3 for c in cases),
        "slice_axis": cfg.data.slice_axis,
        "labels": {str(k): v for k, v in cfg.data.labels.items()} if cfg.data.labels else None,
        "class_ids": class_ids,
        "class_names": class_names,
        "preprocess": cfg.preprocess.model_dump(mode="json"),
        "n_cases": len(cases),
        "n_patients": manifest["patient_id"].nunique(),
        "n_samples": len(manifest),
        "samples_per_split": split_counts,
        "patients_per_split": {s: int(manifest.loc[manifest.split == s, "patient_id"].nunique()) for s in ("train", "val", "test")},
        "bad_files": len(bad),
    }
    with atomic_dir(out_dir) as tmp:
        np.save(tmp / "images.npy", np.concatenate([c["images"] for c in chunks]))
        np.save(tmp / "labels.npy", np.concatenate([c["labels"] for c in chunks]))
        originals = {c["case"]["case_id"]: c["original"] for c in chunks}
        originals.update({f"image:{c['case']['case_id']}": c["original_image"] for c in chunks})
        np.savez_compressed(tmp / "originals.npz", **originals)
        manifest.to_csv(tmp / "manifest.csv", index=False)
        write_json(tmp / "cases.json", {c["case_id"]: {**c, "split": assignment[c["patient_id"]]} for c in cases})
        write_json(tmp / "dataset.json", info)
        write_text(tmp / "config.yaml", cfg.to_yaml())
        if bad:
            pd.DataFrame(bad, columns=["file", "problem"]).to_csv(tmp / "bad_files.csv", index=False)
    return PrepareResult(out_dir, len(cases), len(manifest), split_counts, bad)
