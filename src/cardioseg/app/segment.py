"""One uploaded file in, its grey levels and class probabilities out, on the grid the app edits.

The model is opened once, as `cardioseg predict` opens it (``load_member``, ``Segmenter``), so the
app shows exactly what a prediction run would give. Every scan is held as (i, j, k) arrays: a 2D
image is one plane (k = 1), oriented by the model's fix (camus224 PNGs are stored transposed;
the fix turns them apex up, the layout the biplane Simpson method assumes); a NIfTI volume stays
in file order and is turned for display slice by slice. Probabilities are kept as float16: the
threshold slider needs no finer steps and a volume costs half the memory.

A multi-frame DICOM (a cine) is segmented frame by frame like a 2D image and held with its
frames on the third axis; ``Scan.cine`` keeps its frame times and the ED/ES frames it tags.

A small compressed upload can inflate to a huge array (a PNG or a gzipped NIfTI of zeros whose
header declares 8000 x 8000 pixels of 16-bit RGBA, or 2000³ voxels), so each file is judged from
its header before anything is decoded: its decoded size must stay within the upload limit
(``serve.max_upload_mb``) and its voxel count within ``MAX_VOXELS``. Anything a reader raises
on an upload is the file's fault and comes back as a DataError, as do shapes, pixel spacings
and affines that are not positive finite numbers (they would break measurements and downloads).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageMode

from cardioseg.anatomy import Role
from cardioseg.app.upload import UploadTooLarge
from cardioseg.config import Config
from cardioseg.data.readers.base import check_image, read_dicom, read_dicom_header, read_raster, reading
from cardioseg.data.readers.dicom_frames import read_dicom_frames
from cardioseg.data.readers.dicom_io import dicom_geometry
from cardioseg.data.sniff import Kind
from cardioseg.errors import DataError
from cardioseg.inference.members import RunOptions, load_member
from cardioseg.inference.pipeline import Segmenter
from cardioseg.inference.predict import default_memory_budget
from cardioseg.inference.volumes import VolumeFile
from cardioseg.plan import Plan
from cardioseg.viz.frames import grey_levels

MAX_VOXELS = 1 << 26
"""Largest scan accepted (64 M voxels, about 320 MB held per session), whatever its pixel type."""
PIL_FORMATS = {Kind.PNG: "PNG", Kind.JPEG: "JPEG"}
"""The only decoder PIL may use for a sniffed kind."""


@dataclass(frozen=True)
class ServedModel:
    """The served model: the segmenter and what the app needs to know about its classes."""

    name: str
    segmenter: Segmenter
    class_names: dict[int, str]
    cavity_label: int
    atrium_label: int | None
    batch_size: int

    @property
    def plan(self) -> Plan:
        return self.segmenter.plan


    @property
    def labels(self) -> list[int]:
        """Foreground class ids of the label maps: 1 for a binary model, 1..K otherwise."""
        return list(self.class_names)

    @property
    def roles(self) -> dict[int, Role | None]:
        """The structure each label of ``class_names`` is (``anatomy`` roles), for QC."""
        plan = self.plan
        if plan.binary:
            return {1: plan.foreground[0].role}
        return {spec.id: spec.role for spec in plan.foreground}


@dataclass(frozen=True)
class Cine:
    """What a multi-frame upload says about time: frame times (ms) and the ED/ES frames it tags."""

    times_ms: list[float] | None
    tagged: tuple[int | None, int | None]


@dataclass
class Scan:
    """An uploaded file, read and segmented."""

    kind: Kind
    image: np.ndarray  # uint8 display grey levels, (i, j, k)
    prob: np.ndarray  # float16 probabilities, (C, i, j, k)
    spacing: tuple[float, float, float] | None  # mm per axis of (i, j, k)
    affine: np.ndarray | None  # NIfTI affine, for the radiological display of slices
    orientation_fix: str  # applied to a 2D image here, undone for its PNG download
    volume: VolumeFile | None  # the NIfTI source, so a downloaded mask keeps its header
    cine: Cine | None = None  # a multi-frame upload: its frames are the third axis

    @property
    def n_bytes(self) -> int:
        return self.image.nbytes + self.prob.nbytes


def load_model(path: Path, cfg: Config, scratch: Path) -> ServedModel:
    """Open the checkpoint (or exported ONNX file) given on the command line, never an uploaded one."""
    path = Path(path)
    options = RunOptions(cfg.predict.backend, cfg.predict.precision, cfg.predict.batch_size)
    member = load_member(path, options, scratch)
    plan = member.plan
    # the label maps the app edits: 1 for a binary model's class, else the plan's class ids
    names = {1: plan.foreground[0].name} if plan.binary else plan.class_names
    cavity = 1 if plan.binary else plan.class_of_role("lv_cavity") or 1
    return ServedModel(
        name=path.name,
        segmenter=Segmenter([member]),
        class_names=names,
        cavity_label=cavity,
        atrium_label=None if plan.binary else plan.class_of_role("left_atrium"),
        batch_size=cfg.predict.batch_size,
    )


def _check_size(n_voxels: int) -> None:
    if n_voxels > MAX_VOXELS:
        raise DataError(f"the image has {n_voxels:,} pixels; the app takes at most {MAX_VOXELS:,}")


def _check_decoded(n_bytes: int, what: str, max_mb: float) -> None:
    """Refuse, before decoding, a file that would inflate past the upload limit."""
    if n_bytes > max_mb * 2**20:
        raise UploadTooLarge(f"{what} would decode to {n_bytes / 2**20:,.1f} MB, over the limit of {max_mb:g} MB "
                             "(serve.max_upload_mb)")


def _display(image: np.ndarray) -> np.ndarray:
    """Grey levels windowed to the 1st-99th percentiles, as uint8."""
    low, high = grey_levels(image)
    return np.round(np.clip((image.astype(np.float32) - low) / (high - low), 0, 1) * 255).astype(np.uint8)


def _read_plane(path: Path, kind: Kind, max_mb: float) -> tuple[np.ndarray, tuple[float, float] | None]:
    if kind is Kind.DICOM:
        declared = dicom_geometry(read_dicom_header(path), path)  # deflated files inflate within bounds only
        _check_size(declared.pixels)
        _check_decoded(declared.n_bytes, f"the {declared.describe()} DICOM image", max_mb)
        image, spacing, _ = read_dicom(path)
        return check_image(image, path), spacing
    with reading(path, "image file"), Image.open(path, formats=[PIL_FORMATS[kind]]) as opened:  # the header only
        _check_size(opened.width * opened.height)
        mode = ImageMode.getmode(opened.mode)
        pixel_bytes = len(mode.bands) * np.dtype(mode.typestr).itemsize
        _check_decoded(opened.width * opened.height * pixel_bytes,
                       f"the {opened.width}x{opened.height} {opened.mode} image", max_mb)
    return check_image(read_raster(path), path), None


def segment_image(model: ServedModel, path: Path, kind: Kind, max_mb: float) -> Scan:
    """A PNG, JPEG or DICOM image: probabilities on its own grid, then the model's orientation fix."""
    with reading(path, f"{kind.name} file"):  # whatever a reader raises on an upload is the file's fault
        image, spacing = _read_plane(path, kind, max_mb)
    _check_size(image.size)
    prob = model.segmenter.images([image])[0]
    fix = model.plan.orientation
    spacing = model.plan.plane_spacing(spacing)
    turn = model.segmenter.members[0].pipeline.orient
    return Scan(
        kind=kind,
        image=_display(turn.apply(image))[..., None],
        prob=turn.invert(prob).astype(np.float16)[..., None],
        spacing=(*spacing, 1.0) if spacing is not None else None,
        affine=None,
        orientation_fix=fix,
        volume=None,
    )


def segment_volume(model: ServedModel, path: Path, kind: Kind, max_mb: float) -> Scan:
    """A NIfTI volume, plane by plane along the model's slice axis, on the file's grid."""
    volume = VolumeFile(path)  # reads the header only; shape, voxel sizes and affine are checked there
    _check_size(volume.n_voxels)
    dtype = volume.image.header.get_data_dtype()
    _check_decoded(volume.n_voxels * dtype.itemsize, f"the {'x'.join(map(str, volume.shape))} {dtype} volume", max_mb)
    if volume.spacing is None:
        raise DataError(f"the voxel sizes {volume.image.header.get_zooms()[:3]} must be positive finite numbers")
    seg = model.segmenter
    prob = np.zeros((seg.classes, *volume.shape), np.float16)
    for k, plane in seg.volume(volume, default_memory_budget(), model.batch_size):
        np.moveaxis(prob, seg.slice_axis + 1, 1)[:, k] = plane
    return Scan(
        kind=kind,
        image=_display(volume.read()),
        prob=prob,
        spacing=volume.spacing,
        affine=np.asarray(volume.image.affine),
        orientation_fix="none",
        volume=volume,
    )


def segment_cine(model: ServedModel, path: Path, kind: Kind, max_mb: float) -> Scan:
    """A multi-frame DICOM: every frame segmented as a 2D image (in batches), frames on the third axis."""
    with reading(path, f"{kind.name} file"):
        declared = dicom_geometry(read_dicom_header(path), path)
        _check_size(declared.pixels)
        _check_decoded(declared.n_bytes, f"the {declared.describe()} DICOM cine", max_mb)
        cine = read_dicom_frames(path)
    frames = [check_image(frame, path) for frame in cine.frames]
    turn = model.segmenter.members[0].pipeline.orient
    probs: list[np.ndarray] = []
    for start in range(0, len(frames), model.batch_size):
        probs += model.segmenter.images(frames[start : start + model.batch_size])
    spacing = model.plan.plane_spacing(cine.spacing)
    return Scan(
        kind=kind,
        image=np.stack([turn.apply(frame) for frame in _display(np.stack(frames))], axis=-1),
        prob=np.stack([turn.invert(prob) for prob in probs], axis=-1).astype(np.float16),
        spacing=(*spacing, 1.0) if spacing is not None else None,
        affine=None,
        orientation_fix=model.plan.orientation,
        volume=None,
        cine=Cine(None if cine.frame_times_ms is None else [float(t) for t in cine.frame_times_ms],
                  (cine.ed_frame, cine.es_frame)),
    )


def _is_cine(path: Path, kind: Kind) -> bool:
    with reading(path, f"{kind.name} file"):
        return kind is Kind.DICOM and dicom_geometry(read_dicom_header(path), path).frames > 1


def segment_file(model: ServedModel, path: Path, kind: Kind, max_mb: float) -> Scan:
    """Dispatch on the sniffed kind (never on the file name); ``max_mb`` bounds the decoded size."""
    if kind.is_volume:
        return segment_volume(model, path, kind, max_mb)
    if _is_cine(path, kind):
        return segment_cine(model, path, kind, max_mb)
    return segment_image(model, path, kind, max_mb)
