"""Fixtures of the inference tests: a small checkpoint with camus224's preprocessing, a cut-down volume."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from inference_helpers import CAMUS_PRE, camus_files, make_bundle, network_inputs

from cardioseg.models.checkpoint import save_bundle


@pytest.fixture(scope="session")
def camus_checkpoint(camus224: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A calibrated 8-wide plain U-Net with camus224's preprocessing (transposed PNGs, 64x64)."""
    images = network_inputs(camus_files(camus224, 8), CAMUS_PRE)
    bundle = make_bundle("plain_unet", images, base=8)
    return save_bundle(bundle, tmp_path_factory.mktemp("ckpt") / "camus.safetensors")


@pytest.fixture(scope="session")
def small_volume(msd_heart_la: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """la_003 cut to 128 x 112 x 5 voxels around its centre, header kept, affine shifted to match."""
    source = nib.load(msd_heart_la / "imagesTr" / "la_003.nii.gz")
    middle = source.shape[2] // 2
    cropped = source.slicer[64:192, 72:184, middle - 2 : middle + 3]
    path = tmp_path_factory.mktemp("volume") / "la_003_small.nii.gz"
    nib.save(nib.Nifti1Image(np.asanyarray(cropped.dataobj), cropped.affine, cropped.header), path)
    return path
