"""Property-based tests: readers, preprocessing and metrics fed random shapes, dtypes and bytes
give results or the project's own documented errors (DataError), never anything else."""

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from cardioseg.config import PreprocessConfig
from cardioseg.data.preprocess import ArrayPlanes, Pipeline
from cardioseg.data.readers.base import read_dicom, read_npy, read_raster, read_volume
from cardioseg.errors import DataError
from cardioseg.evaluation.metrics import case_metrics

SUFFIXES = [".png", ".jpg", ".tif", ".bmp", ".dcm", ".npy", ".nii", ".nii.gz", ".mhd"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
GZIP_MAGIC = b"\x1f\x8b\x08"
settings.register_profile("ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
settings.load_profile("ci")


def _read(path: Path) -> object:
    suffix = "".join(path.suffixes)
    if suffix == ".dcm":
        return read_dicom(path)
    if suffix == ".npy":
        return read_npy(path)
    if suffix in (".nii", ".nii.gz", ".mhd"):
        return read_volume(path)
    return read_raster(path)


@given(
    prefix=st.sampled_from([b"", PNG_MAGIC, GZIP_MAGIC, b"\x93NUMPY", b"\x00" * 128 + b"DICM", b"ObjectType = Image\n"]),
    payload=st.binary(max_size=600),
    suffix=st.sampled_from(SUFFIXES),
)
def test_random_bytes_give_data_errors_only(tmp_path_factory: pytest.TempPathFactory, prefix: bytes, payload: bytes,
                                            suffix: str) -> None:
    path = tmp_path_factory.mktemp("bytes") / f"case{suffix}"
    path.write_bytes(prefix + payload)
    try:
        _read(path)
    except DataError as exc:
        assert path.name in str(exc)


@given(
    image=st.one_of(
        hnp.arrays(st.sampled_from([np.uint8, np.uint16, np.int16]), hnp.array_shapes(min_dims=2, max_dims=2, max_side=40)),
        hnp.arrays(st.sampled_from([np.float32, np.float64]), hnp.array_shapes(min_dims=2, max_dims=2, max_side=40),
                   elements={"allow_nan": False, "allow_infinity": False, "min_value": -1e4, "max_value": 1e4}),
    ),
    normalize=st.sampled_from(["minmax", "percentile", "zscore", "none"]),
    crop=st.sampled_from(["none", "center", "auto"]),
    clahe=st.booleans(),
    median=st.sampled_from([0, 3]),
)
def test_preprocessing_any_image(image: np.ndarray, normalize: str, crop: str, clahe: bool, median: int) -> None:
    cfg = PreprocessConfig(normalize=normalize, crop=crop, clahe=clahe, median_filter=median, size=(16, 16))
    label = (image > np.median(image)).astype(np.uint8)
    fitted = Pipeline(cfg).fit(ArrayPlanes(image))
    out, geometry = fitted.image(0)
    out_label = fitted.label(label, geometry)
    assert out.shape == (16, 16) and out.dtype == np.float32 and np.isfinite(out).all()
    assert set(np.unique(out_label)) <= {0, 1}
    y0, y1, x0, x1 = geometry.crop_box
    assert 0 <= y0 < y1 <= image.shape[0] and 0 <= x0 < x1 <= image.shape[1]


@given(
    shape=hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=12),
    data=st.data(),
)
def test_metrics_any_masks(shape: tuple[int, ...], data: st.DataObject) -> None:
    pred = data.draw(hnp.arrays(bool, shape))
    ref = data.draw(hnp.arrays(bool, shape))
    spacing = data.draw(st.none() | st.tuples(*[st.floats(0.1, 5.0)] * len(shape)))
    metrics = case_metrics(pred, ref, spacing)
    assert 0.0 <= metrics["dice"] <= 1.0
    assert metrics["dice"] == case_metrics(ref, pred, spacing)["dice"]


@given(shape_a=hnp.array_shapes(min_dims=2, max_dims=2, max_side=6), shape_b=hnp.array_shapes(min_dims=2, max_dims=2, max_side=6))
def test_metric_shape_mismatch_is_a_data_error(shape_a: tuple[int, ...], shape_b: tuple[int, ...]) -> None:
    if shape_a == shape_b:
        return
    with pytest.raises(DataError):
        case_metrics(np.ones(shape_a, bool), np.ones(shape_b, bool))
