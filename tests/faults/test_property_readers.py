"""Property-based tests: readers, preprocessing and metrics fed random shapes, dtypes and bytes
give results or the project's own documented errors (DataError), never anything else.

The reader fuzzing is structure-aware: valid PNG, DICOM, NIfTI (plain and gzipped) and MetaImage
files are built, then one header field is set to a hostile value (a CRC recomputed so the PNG
decoder gets past its check, a DICOM element re-encoded so the parser reads it), or the file
is cut or bytes are flipped; real files from ../shared/data are truncated. Here each format gets
a small sample; ``benchmarks/fuzz_readers.py`` runs thousands per format from the same
strategies (``FORMATS``) and tabulates what the readers raised.
"""

import gzip
import io
import math
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from cardioseg.config import PreprocessConfig
from cardioseg.data.preprocess import ArrayPlanes, Pipeline
from cardioseg.data.readers.base import read_dicom, read_npy, read_raster, read_volume
from cardioseg.errors import CardiosegError, DataError
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


# --- structure-aware fuzzing of the readers -----------------------------------------------------

SHARED_DATA = Path(os.environ.get("CARDIOSEG_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
Sample = tuple[str, dict[str, bytes], bool]
"""(the file to read, every file of the sample by name, whether to read it as a label map)."""

_HOSTILE_INTS = st.one_of(st.sampled_from([0, 1, -1, 2, 7, 255, 256, 32767, -32768]), st.integers(-(2**15), 2**15 - 1))
_HOSTILE_FLOATS = st.one_of(st.sampled_from([0.0, -1.0, math.nan, math.inf, -math.inf, 1e-30, 1e30]),
                            st.floats(width=32))


def _usually(good: object, hostile: st.SearchStrategy) -> st.SearchStrategy:
    """``good`` seven times in eight, else a hostile value: with one or two broken fields at a time, the
    examples get past the first check and reach deeper code."""
    return st.sampled_from([True] * 7 + [False]).flatmap(lambda keep: st.just(good) if keep else hostile)


@st.composite
def _damage(draw: st.DrawFn, data: bytes, keep: int = 8) -> bytes:
    """``data`` as it is, cut short, or with a few bytes after the first ``keep`` overwritten."""
    how = draw(st.sampled_from(["none", "none", "none", "truncate", "flip"]))
    if how == "truncate" and len(data) > keep:
        return data[: draw(st.integers(keep, len(data) - 1))]
    if how == "flip" and len(data) > keep:
        damaged = bytearray(data)
        for _ in range(draw(st.integers(1, 8))):
            damaged[draw(st.integers(keep, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(damaged)
    return data


def _pixels(draw: st.DrawFn, shape: tuple[int, ...], dtype: type = np.uint8) -> np.ndarray:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return rng.integers(0, 200, shape).astype(dtype)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


@st.composite
def png_files(draw: st.DrawFn) -> Sample:
    """A valid PNG with hostile IHDR fields (CRC fixed), a re-checksummed corrupt IDAT, or damage."""
    mode = draw(st.sampled_from(["L", "RGB", "RGBA", "P", "I;16", "1", "LA"]))
    shape = (draw(st.integers(1, 12)), draw(st.integers(1, 12)))
    buffer = io.BytesIO()
    Image.fromarray(_pixels(draw, shape)).convert(mode).save(buffer, format="PNG")
    data = buffer.getvalue()
    how = draw(st.sampled_from(["ihdr", "idat", "damage"]))
    if how == "ihdr":
        fields = struct.unpack(">IIBBBBB", data[16:29])
        width = draw(_usually(fields[0], st.one_of(st.integers(0, 64), st.integers(0, 2**32 - 1))))
        height = draw(_usually(fields[1], st.one_of(st.integers(0, 64), st.integers(0, 2**32 - 1))))
        depth = draw(_usually(fields[2], st.one_of(st.sampled_from([1, 2, 4, 8, 16]), st.integers(0, 255))))
        colour = draw(_usually(fields[3], st.one_of(st.sampled_from([0, 2, 3, 4, 6]), st.integers(0, 255))))
        rest = [draw(_usually(value, st.sampled_from([1, 2, 255]))) for value in fields[4:]]
        ihdr = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, *rest))
        data = data[:8] + ihdr + data[33:]
    elif how == "idat":
        start = data.index(b"IDAT") - 4
        length = struct.unpack(">I", data[start : start + 4])[0]
        payload = bytearray(data[start + 8 : start + 8 + length])
        for _ in range(draw(st.integers(1, 4))):
            payload[draw(st.integers(0, len(payload) - 1))] = draw(st.integers(0, 255))
        data = data[:start] + _png_chunk(b"IDAT", bytes(payload)) + data[start + 12 + length :]
    else:
        data = draw(_damage(data))
    return "image.png", {"image.png": data}, draw(st.booleans())


_TS = {
    "explicit": "1.2.840.10008.1.2.1", "implicit": "1.2.840.10008.1.2", "deflated": "1.2.840.10008.1.2.1.99",
    "big_endian": "1.2.840.10008.1.2.2", "jpeg": "1.2.840.10008.1.2.4.50", "rle": "1.2.840.10008.1.2.5",
    "unknown": "1.2.3.4",
}
_LONG_VRS = ("OB", "OW", "OF", "SQ", "UT", "UN")


def _dicom_element(tag: int, vr: str, value: bytes, implicit: bool) -> bytes:
    if len(value) % 2:
        value += b"\0" if vr in ("UI", "OB", "OW", "UN") else b" "
    group, element = tag >> 16, tag & 0xFFFF
    if implicit:
        return struct.pack("<HHI", group, element, len(value)) + value
    if vr in _LONG_VRS:
        return struct.pack("<HH2sHI", group, element, vr.encode(), 0, len(value)) + value
    return struct.pack("<HH2sH", group, element, vr.encode(), len(value)) + value


@st.composite
def dicom_files(draw: st.DrawFn) -> Sample:
    """A DICOM image encoded element by element, with hostile values in the fields the readers use."""
    syntax = draw(st.sampled_from(["explicit", "implicit", "deflated", *_TS]))
    implicit = syntax == "implicit"
    rows, columns = (draw(_usually(draw(st.sampled_from([8, 16, 17])), st.integers(0, 65535))) for _ in range(2))
    bits = draw(_usually(draw(st.sampled_from([8, 16])), st.sampled_from([1, 32, 64, 0, 12, 255])))
    samples = draw(_usually(1, st.sampled_from([3, 0, 2, 4])))
    texts = {
        0x00280004: draw(_usually("MONOCHROME2", st.sampled_from(["MONOCHROME1", "RGB", "PALETTE COLOR", "YBR_FULL",
                                                                  "", "X"]))),
        0x00280008: draw(_usually(None, st.sampled_from(["1", "2", "0", "-1", "2.5", "abc", "", "99999999"]))),
        0x00280030: draw(_usually("0.5\\0.5", st.sampled_from([None, "nan\\1", "inf\\1", "0\\1", "-1\\1", "1", "a\\b",
                                                             "", "1e400\\1"]))),
        0x00281052: draw(_usually(None, st.sampled_from(["0", "-1024", "nan", "abc"]))),
        0x00281053: draw(_usually(None, st.sampled_from(["1", "2.5", "nan", "inf", "-1e308", "abc", ""]))),
    }
    numbers = {
        0x00280002: samples, 0x00280010: rows, 0x00280011: columns, 0x00280100: bits,
        0x00280101: draw(_usually(bits, st.sampled_from([12, 0, 255]))),
        0x00280102: draw(_usually(bits - 1, st.sampled_from([11, 0, 255]))),
        0x00280103: draw(_usually(0, st.sampled_from([1, 2]))),
    }
    empty = draw(_usually(None, st.sampled_from([0x00280010, 0x00280011, 0x00280100])))
    vrs = {0x00280004: "CS", 0x00280008: "IS", 0x00280030: "DS", 0x00281052: "DS", 0x00281053: "DS"}
    elements = {0x00080016: _dicom_element(0x00080016, "UI", b"1.2.840.10008.5.1.4.1.1.4", implicit)}
    for tag, value in numbers.items():
        raw = b"" if tag == empty else struct.pack("<H", value % 65536)
        elements[tag] = _dicom_element(tag, "US", raw, implicit)
    for tag, text in texts.items():
        if text is not None:
            elements[tag] = _dicom_element(tag, vrs[tag], text.encode(), implicit)
    declared = rows * columns * samples * max(bits, 1) // 8
    size = draw(_usually("exact", st.sampled_from(["short", "long", "empty", "random"])))
    n_bytes = {"exact": declared, "short": declared // 2, "long": declared + 64, "empty": 0,
               "random": draw(st.integers(0, 4096))}[size]
    pixels = _pixels(draw, (min(n_bytes, 1 << 16),)).tobytes()
    if syntax in ("jpeg", "rle") and draw(st.booleans()):  # encapsulated: offset table, one fragment, end
        fragment = pixels[:256]
        pixel_element = (b"\xe0\x7f\x10\x00" + (b"" if implicit else b"OB\x00\x00") + b"\xff\xff\xff\xff"
                         + b"\xfe\xff\x00\xe0\x00\x00\x00\x00" + b"\xfe\xff\x00\xe0" + struct.pack("<I", len(fragment))
                         + fragment + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00")
    else:
        pixel_element = _dicom_element(0x7FE00010, "OB" if bits <= 8 else "OW", pixels, implicit)
    body = b"".join(elements[tag] for tag in sorted(elements)) + pixel_element
    if syntax == "deflated":
        deflate = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        body = deflate.compress(body) + deflate.flush()
    uid = _TS[syntax].encode()
    meta = _dicom_element(0x00020010, "UI", uid, False)
    group_2 = _dicom_element(0x00020000, "UL", struct.pack("<I", len(meta)), False) + meta
    preamble = draw(_usually(b"\0" * 128 + b"DICM" + group_2, st.just(b"")))
    return "slice.dcm", {"slice.dcm": draw(_damage(preamble + body, keep=132 if preamble else 0))}, False


_NIFTI1_FIELDS: dict[str, tuple[int, str, st.SearchStrategy]] = {
    "sizeof_hdr": (0, "<i", st.sampled_from([348, 540, 0, -1, 1 << 24])),
    **{f"dim[{i}]": (40 + 2 * i, "<h", _HOSTILE_INTS) for i in range(8)},
    "datatype": (70, "<h", st.one_of(st.sampled_from([2, 4, 8, 16, 32, 64, 128, 256, 512, 768, 1024, 1280, 1536, 1792,
                                                      2048, 2304]), _HOSTILE_INTS)),
    "bitpix": (72, "<h", _HOSTILE_INTS),
    **{f"pixdim[{i}]": (76 + 4 * i, "<f", _HOSTILE_FLOATS) for i in range(8)},
    "vox_offset": (108, "<f", st.one_of(st.sampled_from([0.0, 352.0, 348.0, 1e9]), _HOSTILE_FLOATS)),
    "scl_slope": (112, "<f", _HOSTILE_FLOATS),
    "scl_inter": (116, "<f", _HOSTILE_FLOATS),
    "qform_code": (252, "<h", _HOSTILE_INTS),
    "sform_code": (254, "<h", _HOSTILE_INTS),
    **{f"quatern[{i}]": (256 + 4 * i, "<f", _HOSTILE_FLOATS) for i in range(6)},
    **{f"srow[{i}]": (280 + 4 * i, "<f", _HOSTILE_FLOATS) for i in range(12)},
    "magic": (344, "4s", st.sampled_from([b"n+1\0", b"ni1\0", b"n+2\0", b"xxxx"])),
    "extension": (348, "4s", st.sampled_from([b"\x01\0\0\0", b"\0\0\0\0", b"\xff\xff\xff\xff"])),
}


@st.composite
def nifti_files(draw: st.DrawFn) -> Sample:
    """A valid NIfTI-1 (or NIfTI-2) image with hostile header fields, plain or gzipped, maybe damaged."""
    dtype = draw(st.sampled_from([np.uint8, np.int16, np.uint16, np.int32, np.float32, np.float64, np.int8]))
    shape = tuple(draw(st.integers(1, 6)) for _ in range(draw(st.integers(2, 4))))
    image_class = draw(st.sampled_from([nib.Nifti1Image] * 4 + [nib.Nifti2Image]))
    data = bytearray(image_class(_pixels(draw, shape, dtype), np.diag([0.8, 0.8, 2.0, 1.0])).to_bytes())
    if image_class is nib.Nifti1Image:
        for name in draw(st.lists(st.sampled_from(sorted(_NIFTI1_FIELDS)), max_size=3)):
            offset, fmt, values = _NIFTI1_FIELDS[name]
            struct.pack_into(fmt, data, offset, draw(values))
    raw = draw(_damage(bytes(data), keep=0))
    gzipped = draw(st.booleans())
    content = draw(_damage(gzip.compress(raw, mtime=0), keep=10)) if gzipped else raw
    misnamed = draw(st.sampled_from([False] * 9 + [True]))
    suffix = ".nii.gz" if gzipped != misnamed else ".nii"
    return f"scan{suffix}", {f"scan{suffix}": content}, False


_MET_BYTES = {"MET_UCHAR": 1, "MET_SHORT": 2, "MET_FLOAT": 4, "MET_DOUBLE": 8}


@st.composite
def metaimage_files(draw: st.DrawFn) -> Sample:
    """A MetaImage header (.mhd, data in .raw or LOCAL) with hostile fields and data of any length."""
    n = draw(st.sampled_from([2, 3]))
    dims = [draw(st.integers(1, 5)) for _ in range(n)]
    element_type = draw(st.sampled_from(sorted(_MET_BYTES)))
    lines = ["ObjectType = Image",
             f"NDims = {draw(_usually(str(n), st.sampled_from(['0', '-1', 'x', '4', str(5 - n)])))}",
             f"DimSize = {draw(_usually(' '.join(map(str, dims)), st.sampled_from(['0 2', '2 -1 2', '100000 100000 9', 'x y'])))}"]
    spacing = draw(_usually(" ".join(["0.5"] * n), st.sampled_from(["", "0 1 1", "-1 1 1", "nan 1 1", "inf 1 1", "x", "1"])))
    if spacing:
        lines.append(f"ElementSpacing = {spacing}")
    for key, values in (("ElementNumberOfChannels", ["1", "3", "0"]), ("HeaderSize", ["0", "-1", "10", "100000"]),
                        ("BinaryDataByteOrderMSB", ["True", "False"])):
        if draw(st.sampled_from([False, False, False, True])):
            lines.append(f"{key} = {draw(st.sampled_from(values))}")
    compressed = draw(st.booleans())
    lines += [f"CompressedData = {compressed}",
              f"ElementType = {draw(_usually(element_type, st.sampled_from(['MET_BOGUS', '', 'MET_LONG_LONG'])))}"]
    n_bytes = math.prod(dims) * _MET_BYTES[element_type]
    payload = _pixels(draw, (draw(_usually(n_bytes, st.integers(0, 256))),)).tobytes()
    if compressed:
        payload = draw(_usually(zlib.compress(payload), st.just(payload)))
        stored = draw(_usually(str(len(payload)), st.sampled_from(["", "0", "1", "x", str(2**40)])))
        if stored:
            lines.append(f"CompressedDataSize = {stored}")
    target = draw(_usually(draw(st.sampled_from(["frame.raw", "LOCAL"])), st.sampled_from([
        "../outside.raw", "/etc/hostname", "LIST", "frame%d.raw 1 2 1", "missing.raw", "", "sub/../frame.raw"])))
    lines.append(f"ElementDataFile = {target}")
    if target == "LIST":
        lines += ["frame1.raw", "frame2.raw"]
    header = ("\n".join(lines) + "\n").encode()
    files = {"frame.mhd": header + payload if target == "LOCAL" else header}
    files.update({name: payload for name in ("frame.raw", "frame1.raw", "frame2.raw")})
    return "frame.mhd", files, False


def _real_files() -> list[Path]:
    """A few real files of each kind, when the shared data is present."""
    files = [SHARED_DATA / "camus224" / "train" / name for name in ("patient0001_2CH_ED.png", "patient0001_2CH_ED_gt.png")]
    files += [SHARED_DATA / "sunnybrook5" / "dicoms" / "SCD0000101" / "48.dcm"]
    files += [SHARED_DATA / "msd_heart_la" / sub / "la_003.nii.gz" for sub in ("imagesTr", "labelsTr")]
    return [path for path in files if path.is_file()]


REAL_FILES = _real_files()


@st.composite
def truncated_real_files(draw: st.DrawFn) -> Sample:
    """A real PNG, DICOM or NIfTI file cut short (within its first 2 MiB), maybe with bytes flipped."""
    path = draw(st.sampled_from(REAL_FILES))
    data = path.read_bytes()
    cut = draw(st.integers(0, min(len(data) - 1, 1 << 21)))
    name = path.name
    return name, {name: draw(_damage(data[:cut], keep=min(cut, 132)))}, name.endswith("_gt.png")


@st.composite
def random_files(draw: st.DrawFn) -> Sample:
    """A magic number (or none) then random bytes, under any supported file name."""
    prefix = draw(st.sampled_from([b"", PNG_MAGIC, GZIP_MAGIC, b"\x93NUMPY", b"\x00" * 128 + b"DICM",
                                   b"ObjectType = Image\n"]))
    name = f"case{draw(st.sampled_from(SUFFIXES))}"
    return name, {name: prefix + draw(st.binary(max_size=600))}, False


FORMATS: dict[str, Callable[[], st.SearchStrategy[Sample]]] = {
    "png": png_files, "dicom": dicom_files, "nifti": nifti_files, "metaimage": metaimage_files,
    "truncated_real": truncated_real_files, "random_bytes": random_files,
}


def read_sample(folder: Path, sample: Sample) -> object:
    """Write the sample's files into ``folder`` and read its main file with the reader its name selects."""
    name, files, label = sample
    folder.mkdir(parents=True, exist_ok=True)
    for file_name, data in files.items():
        (folder / file_name).write_bytes(data)
    path = folder / name
    if name.endswith((".png", ".jpg", ".tif", ".bmp")):
        return read_raster(path, label=label)
    return _read(path)


def check_result(result: object) -> None:
    """What a reader returns must be usable: a non-empty array, spacing finite and positive where known.

    (A 1D NIfTI is a valid file; the layouts refuse it as "not a 2D frame / 3D volume".)"""
    array, spacing = (result[0], result[1]) if isinstance(result, tuple) else (result, None)
    assert isinstance(array, np.ndarray) and array.size > 0, getattr(array, "shape", array)
    assert np.issubdtype(array.dtype, np.number) or array.dtype == bool or array.dtype.names, array.dtype
    if spacing is not None:  # zero only along a singleton axis, or a time axis (4th and later: not a distance)
        sizes = array.shape if len(spacing) == array.ndim else (2,) * len(spacing)
        assert all(math.isfinite(s) and s >= 0 and (s > 0 or n == 1 or axis >= 3)
                   for axis, (s, n) in enumerate(zip(spacing, sizes))), spacing


def outcome(folder: Path, sample: Sample) -> tuple[str, str]:
    """("ok", "") or (the project's error type, its message); anything else escapes: a finding."""
    try:
        check_result(read_sample(folder, sample))
    except CardiosegError as exc:
        assert sample[0] in str(exc), f"the error does not name the file: {exc}"
        return type(exc).__name__, exc.problem
    return "ok", ""


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_structured_files_give_results_or_data_errors(fmt: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    if fmt == "truncated_real" and not REAL_FILES:
        pytest.skip(f"no real files under {SHARED_DATA} (set CARDIOSEG_DATA to the folder holding them)")

    @settings(max_examples=60)
    @given(sample=FORMATS[fmt]())
    def run(sample: Sample) -> None:
        outcome(tmp_path_factory.mktemp(fmt), sample)

    run()
