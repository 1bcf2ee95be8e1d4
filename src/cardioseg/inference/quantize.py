"""`cardioseg export --int8`: static int8 quantisation calibrated on a prepared dataset, refused when the masks drift.

The convolutions get per-channel int8 weights and uint8 activations (ONNX QDQ format, min-max
calibration on training images of the prepared dataset); the first and the last convolution
stay fp32 (quantising the head cost 0.9% minimum Dice on the thinnest camus224 masks). The file
runs on ONNX Runtime and on OpenVINO (which turns the QDQ pairs into its int8 kernels).

Before anything is written, the int8 masks are compared with the fp32 export's on held-out
images (the validation split, else the test split): if the worst image's Dice falls below
``export.min_mask_dice`` the export is refused, with the figure.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cardioseg.config import ExportConfig
from cardioseg.data.prepared import PreparedDataset, context_rows
from cardioseg.errors import CheckpointError, ConfigError, DataError
from cardioseg.fileio import write_bytes
from cardioseg.inference.backend import network_input
from cardioseg.inference.onnx_backend import OnnxBackend
from cardioseg.models.checkpoint import ModelBundle
from cardioseg.plan import Plan

HELD_OUT_IMAGES = 64


@dataclass(frozen=True)
class MaskAgreement:
    """Per-image Dice of one backend's masks against the fp32 masks (worst foreground class per image)."""

    dice: np.ndarray

    @property
    def minimum(self) -> float:
        return float(self.dice.min()) if len(self.dice) else 1.0

    @property
    def mean(self) -> float:
        return float(self.dice.mean()) if len(self.dice) else 1.0


def masks(probabilities: np.ndarray) -> np.ndarray:
    """(N, C, H, W) probabilities -> (N, H, W) class ids: threshold 0.5 for one channel, else argmax."""
    return (probabilities[:, 0] > 0.5).astype(np.uint8) if probabilities.shape[1] == 1 else probabilities.argmax(1)


def mask_agreement(candidate: np.ndarray, reference: np.ndarray) -> MaskAgreement:
    """Dice per image of class-id maps (N, H, W), the worst foreground class counting; both empty = 1."""
    classes = [c for c in np.union1d(np.unique(candidate), np.unique(reference)) if c != 0]
    scores = np.ones(len(reference))
    for c in classes:
        a, b = candidate == c, reference == c
        total = a.sum(axis=(1, 2)) + b.sum(axis=(1, 2))
        overlap = (a & b).sum(axis=(1, 2))
        dice = np.where(total == 0, 1.0, 2.0 * overlap / np.maximum(total, 1))
        scores = np.minimum(scores, dice)
    return MaskAgreement(scores)


def calibration_images(prepared: PreparedDataset, plan: Plan, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(training images for calibration, held-out images for the check), as the network sees them."""
    if prepared.preprocess != plan.preprocess:
        ours, theirs = plan.preprocess.model_dump(), prepared.preprocess.model_dump()
        differing = ", ".join(f"{key} {theirs[key]!r} (model: {ours[key]!r})" for key in ours if ours[key] != theirs[key])
        raise ConfigError(f"the calibration dataset {prepared.root} was prepared differently from the model's plan: "
                          f"{differing}; prepare it with the model's settings")
    train = prepared.indices("train")
    held_out = next((rows for split in ("val", "test") if len(rows := prepared.indices(split))), np.array([], int))
    if not len(train) or not len(held_out):
        raise DataError("an int8 calibration dataset needs a train split and a val or test split", prepared.root)
    def planes(rows: np.ndarray) -> np.ndarray:  # a 2.5D model's inputs are its planes with their neighbours
        return np.asarray(prepared.images[context_rows(prepared.manifest, rows, plan.context_slices)], np.float32)

    return planes(_evenly(train, count)), planes(_evenly(held_out, HELD_OUT_IMAGES))


def _evenly(rows: np.ndarray, count: int) -> np.ndarray:
    """At most ``count`` rows spread over the whole split (patients are contiguous in a prepared dataset)."""
    return rows if len(rows) <= count else rows[np.linspace(0, len(rows) - 1, count).round().astype(int)]


def quantize_static_int8(fp32: Path, out: Path, calibration: np.ndarray) -> Path:
    """Write the QDQ int8 model of ``fp32`` calibrated on normalised images (N, H, W) or (N, C, H, W)."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            feeds = ({"image": network_input(calibration[i : i + 16], 1), "stats": np.array([0.0, 1.0], np.float32)}
                     for i in range(0, len(calibration), 16))
            self.feeds = iter(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.feeds, None)

    convs = [node.name for node in onnx.load(str(fp32), load_external_data=False).graph.node if node.op_type == "Conv"]
    if len(convs) < 3:
        raise CheckpointError("int8 quantisation needs a network with at least three convolutions", fp32)
    quantize_static(str(fp32), str(out), Batches(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, op_types_to_quantize=["Conv"],
                    nodes_to_exclude=[convs[0], convs[-1]])
    return out


def int8_export(bundle: ModelBundle, fp32: Path, out: Path, cfg: ExportConfig) -> MaskAgreement:
    """Quantise the checked fp32 export ``fp32`` into ``out``, or refuse (CheckpointError) when its masks drift."""
    if cfg.calibration is None:
        raise ConfigError("--int8 needs --calibration PREPARED (a prepared dataset the model's plan matches)")
    train, held_out = calibration_images(PreparedDataset(Path(cfg.calibration)), bundle.plan, cfg.calibration_images)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as scratch:
        staged = quantize_static_int8(fp32, Path(scratch) / out.name, train)
        reference = masks(OnnxBackend(fp32).probabilities(held_out))
        agreement = mask_agreement(masks(OnnxBackend(staged).probabilities(held_out)), reference)
        if agreement.minimum < cfg.min_mask_dice:
            worst = int(agreement.dice.argmin())
            raise CheckpointError(
                f"the int8 model's masks fall below Dice {cfg.min_mask_dice} of fp32 on held-out images: worst "
                f"{agreement.minimum:.4f} (held-out image {worst} of {len(agreement.dice)}; mean {agreement.mean:.4f}), "
                f"{cfg.min_mask_dice - agreement.minimum:.4f} short; nothing was written. Calibrate on more typical "
                "images or keep the fp32 export", out)
        write_bytes(out, staged.read_bytes())
    return agreement
