"""Crafted bad uploads get a clear 400 (or 413 for a bomb), never a 500, and no message shows a server path.

Each file is real: written by nibabel, pydicom or zlib as a broken or hostile writer would, then
uploaded through the API as the page sends it.
"""

from __future__ import annotations

import gzip
import io
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

import cardioseg.app.segment as segment
from cardioseg.app.messages import without_paths
from cardioseg.app.server import create_app
from cardioseg.config import Config, ServeConfig
from tests.app.conftest import page_client

NIFTI_DIM_OFFSET = 40  # dim[0..7], int16, in the NIfTI-1 header


def post(client: TestClient, name: str, data: bytes) -> Any:
    return client.post("/api/sessions", params={"name": name}, content=data)


def nifti_bytes(array: np.ndarray, dims: list[int] | None = None, zooms: tuple[float, ...] | None = None,
                affine: np.ndarray | None = None) -> bytes:
    """A .nii.gz of ``array``; ``dims`` overwrite the header's dim field as a broken writer would."""
    image = nib.Nifti1Image(array, np.eye(4) if affine is None else affine)
    if zooms is not None:
        image.header.set_zooms(zooms)
    raw = bytearray(image.to_bytes())
    if dims is not None:
        struct.pack_into("<8h", raw, NIFTI_DIM_OFFSET, *dims)
    return gzip.compress(bytes(raw))


def dicom_bytes(pixels: np.ndarray, spacing: tuple[float, float] | None = (0.3, 0.2), **fields: Any) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.6.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = "US"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    if spacing is not None:
        ds.PixelSpacing = list(spacing)
    for key, value in fields.items():
        setattr(ds, key, value)
    ds.PixelData = np.ascontiguousarray(pixels, np.uint8).tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def with_number_of_frames(data: bytes, value: bytes) -> bytes:
    """Replace the NumberOfFrames "1 " written by pydicom with raw bytes (pydicom refuses to write a bad IS)."""
    element = b"\x28\x00\x08\x00IS"
    old = element + struct.pack("<H", 2) + b"1 "
    assert data.count(old) == 1
    return data.replace(old, element + struct.pack("<H", len(value)) + value)


def png_of_zeros(width: int, height: int, bit_depth: int = 8, colour_type: int = 0) -> bytes:
    """A complete, valid PNG of zeros: a few KB that inflate to width x height pixels."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour_type]
    row = b"\x00" * (1 + width * channels * bit_depth // 8)
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def assert_clear_400(response: Any, *words: str) -> str:
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    for word in words:
        assert word in detail, detail
    return detail


def assert_no_server_path(detail: str, client: TestClient) -> None:
    scratch = client.app.state.scratch.name
    assert scratch not in detail and "/tmp" not in detail and "cardioseg-serve" not in detail, detail
    assert "upload." not in detail and "sessions/" not in detail, detail


# ---------- broken headers ----------


@pytest.mark.parametrize("dims", [[3, 4, -4, 4, 1, 1, 1, 1], [3, 4, 0, 4, 1, 1, 1, 1], [3, -1, -1, 4, 1, 1, 1, 1]],
                         ids=["negative", "zero", "two-negative"])
def test_a_nifti_with_a_negative_or_zero_dimension_is_400(client: TestClient, dims: list[int]) -> None:
    response = post(client, "bad.nii.gz", nifti_bytes(np.ones((4, 4, 4), np.uint8), dims=dims))
    assert_no_server_path(assert_clear_400(response), client)


def test_a_dicom_with_empty_rows_is_400(client: TestClient) -> None:
    data = dicom_bytes(np.full((32, 32), 7, np.uint8), Rows=None)
    assert_no_server_path(assert_clear_400(post(client, "empty_rows.dcm", data)), client)


@pytest.mark.parametrize("frames", [b"2.5 ", b"ab", b"-1"])
def test_a_dicom_with_a_non_integer_number_of_frames_is_400(client: TestClient, frames: bytes) -> None:
    data = with_number_of_frames(dicom_bytes(np.full((32, 32), 7, np.uint8), NumberOfFrames=1), frames)
    assert_no_server_path(assert_clear_400(post(client, "frames.dcm", data)), client)


@pytest.mark.parametrize("spacing", [(float("nan"), 0.2), (0.3, float("inf")), (0.0, 0.2), (-0.3, 0.2)])
def test_a_dicom_with_a_non_finite_or_non_positive_pixel_spacing_is_400(client: TestClient,
                                                                         spacing: tuple[float, float]) -> None:
    """Accepted before, it gave NaN areas and a NIfTI download that failed with a 500."""
    pixels = (np.arange(32 * 32) % 200).reshape(32, 32).astype(np.uint8)
    assert_clear_400(post(client, "spacing.dcm", dicom_bytes(pixels, spacing=spacing)), "spacing")


@pytest.mark.parametrize("zooms", [(1.0, float("nan"), 1.0), (1.0, 1.0, float("inf"))])
def test_a_nifti_with_non_finite_voxel_sizes_is_400(client: TestClient, zooms: tuple[float, ...]) -> None:
    response = post(client, "zooms.nii.gz", nifti_bytes(np.ones((8, 8, 3), np.uint8), zooms=zooms))
    assert_clear_400(response, "voxel sizes")


def test_a_nifti_with_a_nan_affine_is_400(client: TestClient) -> None:
    affine = np.eye(4)
    affine[0, 3] = np.nan
    assert_clear_400(post(client, "affine.nii.gz", nifti_bytes(np.ones((8, 8, 3), np.uint8), affine=affine)), "affine")


# ---------- no server path in any message ----------


@pytest.mark.parametrize(("name", "data"), [
    ("garbage.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 2000),  # PIL: cannot identify image file '<path>'
    ("garbage.jpg", b"\xff\xd8\xff" + b"\x00" * 2000),
    ("short.nii", nib.Nifti1Image(np.ones((16, 16, 16), np.uint8), np.eye(4)).to_bytes()[:600]),  # nibabel: from <path>
    ("short.nii.gz", gzip.compress((np.arange(4096) % 251).astype(np.uint8).tobytes()
                                   + nib.Nifti1Image(np.ones((64, 64, 64), np.uint8), np.eye(4)).to_bytes())[:1500]),
    ("short.dcm", dicom_bytes(np.full((64, 64), 9, np.uint8))[:-2000]),
])
def test_library_errors_reach_the_client_without_server_paths(client: TestClient, name: str, data: bytes) -> None:
    response = post(client, name, data)
    assert response.status_code == 400, response.text
    assert_no_server_path(response.json()["detail"], client)


def test_paths_are_replaced_in_messages() -> None:
    scratch = Path("/tmp/cardioseg-serve-abc123")
    text = (f"cannot identify image file '{scratch}/sessions/0f/upload.png'; model /home/ana/runs/model.safetensors; "
            "2CH/4CH at 1/2 scale")
    assert without_paths(text, scratch) == ("cannot identify image file 'the upload'; model a server file; "
                                            "2CH/4CH at 1/2 scale")


# ---------- bombs: refused from the header, before anything is decoded ----------


@pytest.fixture(scope="module")
def small_limit(tiny_model: Path) -> Iterator[TestClient]:
    """The app with a 1 MB upload limit, so a bomb that inflates to a few MB is over it."""
    with page_client(create_app(tiny_model, Config(serve=ServeConfig(max_upload_mb=1)))) as test_client:
        yield test_client


def test_a_png_that_inflates_past_the_limit_is_refused_before_decoding(
    small_limit: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded: list[Path] = []
    original = segment.read_raster
    monkeypatch.setattr(segment, "read_raster", lambda path, **kw: decoded.append(path) or original(path, **kw))
    bomb = png_of_zeros(3000, 3000)  # 8.6 MB of pixels
    assert len(bomb) < 20_000
    response = post(small_limit, "bomb.png", bomb)
    assert response.status_code == 413, response.text
    assert "would decode to 8.6 MB, over the limit of 1 MB" in response.json()["detail"]
    assert not decoded

    rgba16 = png_of_zeros(400, 400, bit_depth=16, colour_type=6)  # 400 x 400 x 4 channels: 0.6 MB as 8-bit RGBA
    assert post(small_limit, "rgba16.png", rgba16).status_code == 200
    assert post(small_limit, "rgba16.png", png_of_zeros(600, 600, bit_depth=16, colour_type=6)).status_code == 413


def test_a_jpeg_that_declares_a_large_frame_is_refused_before_decoding(small_limit: TestClient) -> None:
    small = io.BytesIO()
    Image.new("L", (16, 16)).save(small, format="JPEG")
    data = bytearray(small.getvalue())
    frame = data.index(b"\xff\xc0")  # SOF0: length (2), precision (1), height (2), width (2)
    struct.pack_into(">HH", data, frame + 5, 2000, 3000)
    response = post(small_limit, "bomb.jpg", bytes(data))
    assert response.status_code == 413, response.text
    assert "the 3000x2000 L image would decode to 5.7 MB" in response.json()["detail"]


def test_a_gzipped_nifti_that_declares_a_large_volume_is_refused_before_inflating(small_limit: TestClient) -> None:
    bomb = nifti_bytes(np.zeros((256, 256, 64), np.int16))  # 8 MB decoded
    assert len(bomb) < 50_000
    response = post(small_limit, "bomb.nii.gz", bomb)
    assert response.status_code == 413, response.text
    assert "256x256x64 int16 volume would decode to 8.0 MB" in response.json()["detail"]


def test_a_nifti_header_declaring_billions_of_voxels_is_refused(client: TestClient) -> None:
    dims = [3, 32767, 32767, 32767, 1, 1, 1, 1]
    response = post(client, "huge.nii.gz", nifti_bytes(np.zeros((4, 4, 4), np.uint8), dims=dims))
    assert response.status_code in (400, 413), response.text
    assert "35,181,150,961,663" in response.json()["detail"]


def test_an_image_within_the_limits_still_works(small_limit: TestClient, camus_views: dict[str, Path]) -> None:
    """A real camus224 PNG (224 x 224 grey) is far under 1 MB decoded."""
    response = post(small_limit, "patient0200_2CH_ED.png", camus_views["2CH_ED"].read_bytes())
    assert response.status_code == 200, response.text
    image = Image.open(io.BytesIO(small_limit.get(f"/api/sessions/{response.json()['id']}/slices/0/image.png").content))
    assert image.size == (224, 224)
