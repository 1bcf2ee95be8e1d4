"""`cardioseg predict` on volumes: geometry kept, streaming equal to in-memory, planes equal to prepare's."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from cardioseg.config import Config, PreprocessConfig, load_config
from cardioseg.data.case import Case
from cardioseg.data.prepare import _process_case
from cardioseg.data.preprocess import ArrayPlanes, Pipeline
from cardioseg.errors import DataError
from cardioseg.inference.predict import predict_files
from cardioseg.inference.volumes import VolumeFile, VolumePlanes


def _cfg(out: Path, **overrides: object) -> Config:
    return load_config(overrides={"predict.out_dir": out, **overrides})


def test_nifti_mask_keeps_shape_affine_and_header(small_volume: Path, camus_checkpoint: Path, tmp_path: Path) -> None:
    predict_files([small_volume], [camus_checkpoint], _cfg(tmp_path, **{"predict.probabilities": True,
                                                                        "predict.overlays": True}))
    source = nib.load(small_volume)
    mask = nib.load(tmp_path / "la_003_small_mask.nii.gz")
    assert mask.shape == source.shape and mask.get_data_dtype() == np.uint8
    np.testing.assert_allclose(mask.affine, source.affine)
    assert mask.header.get_zooms() == source.header.get_zooms()
    assert set(np.unique(np.asanyarray(mask.dataobj))) == {0, 1}
    prob = nib.load(tmp_path / "la_003_small_prob.nii.gz")
    assert prob.shape == source.shape and prob.get_data_dtype() == np.float32
    np.testing.assert_array_equal(np.asanyarray(mask.dataobj), np.asanyarray(prob.dataobj) > 0.5)
    assert (tmp_path / "la_003_small_overlay.png").is_file()
    assert not list(tmp_path.glob(".*partial*")), "the probability scratch file is removed"


def test_metaimage_output_keeps_origin_spacing_direction(small_volume: Path, camus_checkpoint: Path, tmp_path: Path) -> None:
    array = np.asanyarray(nib.load(small_volume).dataobj)
    image = sitk.GetImageFromArray(np.ascontiguousarray(array.T))
    image.SetSpacing((1.25, 1.3, 2.5))
    image.SetOrigin((-12.0, 40.5, 7.0))
    image.SetDirection((0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0))
    sitk.WriteImage(image, str(tmp_path / "scan.mhd"))
    predict_files([tmp_path / "scan.mhd", small_volume], [camus_checkpoint], _cfg(tmp_path / "out"))
    written = sitk.ReadImage(str(tmp_path / "out" / "scan_mask.nii.gz"))
    assert written.GetSize() == image.GetSize()
    np.testing.assert_allclose(written.GetSpacing(), image.GetSpacing(), atol=1e-5)
    np.testing.assert_allclose(written.GetOrigin(), image.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(written.GetDirection(), image.GetDirection(), atol=1e-5)
    same_voxels = np.asanyarray(nib.load(tmp_path / "out" / "la_003_small_mask.nii.gz").dataobj)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(written).T, same_voxels)


def test_streamed_volume_gives_the_same_masks(small_volume: Path, camus_checkpoint: Path, tmp_path: Path) -> None:
    overrides = {"predict.probabilities": True}
    predict_files([small_volume], [camus_checkpoint], _cfg(tmp_path / "memory", **overrides))
    predict_files([small_volume], [camus_checkpoint], _cfg(tmp_path / "stream", **overrides), memory_budget_mb=0.01)
    for name in ("la_003_small_mask.nii.gz", "la_003_small_prob.nii.gz"):
        a = np.asanyarray(nib.load(tmp_path / "memory" / name).dataobj)
        b = np.asanyarray(nib.load(tmp_path / "stream" / name).dataobj)
        np.testing.assert_allclose(a, b, atol=1e-5)


CHAINS = {
    "minmax": PreprocessConfig(size=(48, 48)),
    "percentile+median": PreprocessConfig(normalize="percentile", median_filter=3, size=(48, 48)),
    "zscore+clahe": PreprocessConfig(normalize="zscore", clahe=True, size=(48, 48)),
    "minmax+auto crop": PreprocessConfig(crop="auto", size=(40, 56)),
}


@pytest.mark.parametrize("name", list(CHAINS))
@pytest.mark.parametrize("axis", [2, 0])
def test_planes_are_those_prepare_writes(name: str, axis: int, small_volume: Path) -> None:
    """In memory and streamed from the file, along any slice axis, every plane equals what `prepare` stores."""
    pre = CHAINS[name]
    volume = VolumeFile(small_volume)
    array = volume.read()
    cfg = Config(preprocess=pre)
    cfg.data.slice_axis = axis
    prepared = _process_case(Case("v", "v", array, None, None), cfg, "none")
    in_memory = Pipeline(pre).fit(ArrayPlanes(array, axis), keep=True)
    streamed = Pipeline(pre).fit(VolumePlanes(volume, axis), keep=False)
    assert in_memory.count == streamed.count == len(prepared["rows"]) == array.shape[axis]
    for k, row in enumerate(prepared["rows"]):
        image, geometry = in_memory.image(k)
        np.testing.assert_array_equal(image, prepared["images"][k])
        assert geometry.crop_box == (row["crop_y0"], row["crop_y1"], row["crop_x0"], row["crop_x1"])
        np.testing.assert_allclose(streamed.image(k)[0], prepared["images"][k], atol=1e-4)
        assert streamed.image(k)[1] == geometry


def test_time_series_volume_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cine.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 3, 4), np.int16), np.eye(4)), path)
    with pytest.raises(DataError, match="time series") as caught:
        VolumeFile(path)
    assert caught.value.path == path
