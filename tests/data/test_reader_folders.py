"""The generic images/ + masks/ reader on small folders written here, and its bad-input errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

from cardioseg.config import DataConfig
from cardioseg.data.case import Case
from cardioseg.data.readers import detect_layout, get_reader
from cardioseg.errors import ConfigError, DataError

CFG = DataConfig()
READER = get_reader("folders")


def _square(value: int = 1, size: int = 16) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    mask[4:10, 5:12] = value
    return mask


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    """PNG + 0/255 PNG mask, NPY + NPY label map, RGBA PNG + palette PNG mask with _gt."""
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    rng = np.random.default_rng(0)
    iio.imwrite(images / "pa_001.png", rng.integers(0, 255, (16, 16), dtype=np.uint8))
    iio.imwrite(masks / "pa_001_mask.png", _square(255))
    np.save(images / "pb_002.npy", rng.normal(size=(16, 16)).astype(np.float32))
    np.save(masks / "pb_002.npy", _square(1) + 2 * (np.arange(16)[:, None] > 12).astype(np.uint8))
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 255
    iio.imwrite(images / "pc_003.png", rgba)
    palette = Image.fromarray(_square(2), mode="L").convert("P")
    palette.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
    palette.save(masks / "pc_003_gt.png")
    return tmp_path


def test_pairs_stems_and_patient_ids(tree: Path) -> None:
    assert detect_layout(tree) == "folders"
    refs = READER.discover(tree, CFG)
    assert [(r.case_id, r.patient_id, r.label_path.name) for r in refs] == [
        ("pa_001", "pa", "pa_001_mask.png"),
        ("pb_002", "pb", "pb_002.npy"),
        ("pc_003", "pc", "pc_003_gt.png"),
    ]
    custom = READER.discover(tree, DataConfig(patient_pattern=r"_(\d+)$"))
    assert [r.patient_id for r in custom] == ["001", "002", "003"]
    assert [r.patient_id for r in READER.discover(tree, DataConfig(patient_pattern=r"^zz(\d)"))] == [
        "pa_001",
        "pb_002",
        "pc_003",
    ]


def test_masks_become_class_ids_and_colour_becomes_grey(tree: Path) -> None:
    cases = {r.case_id: READER.load(r, CFG) for r in READER.discover(tree, CFG)}
    np.testing.assert_array_equal(cases["pa_001"].label, _square(1))  # 255 -> 1
    assert set(np.unique(cases["pb_002"].label)) == {0, 1, 2}
    np.testing.assert_array_equal(cases["pc_003"].label, _square(2))  # palette indices, not colours
    assert cases["pc_003"].image.shape == (16, 16)
    assert cases["pc_003"].image.max() == round(200 * 0.299)  # ITU-R 601 luma of pure red 200
    assert all(c.spacing is None and c.label.dtype == np.uint8 for c in cases.values())


def test_dicom_images_carry_their_pixel_spacing(tree: Path, sunnybrook5: Path) -> None:
    shutil.copy(sunnybrook5 / "dicoms" / "SCD0000101" / "48.dcm", tree / "images" / "pd_004.dcm")
    np.save(tree / "masks" / "pd_004.npy", np.zeros((256, 256), np.uint8))
    ref = next(r for r in READER.discover(tree, CFG) if r.case_id == "pd_004")
    case = READER.load(ref, CFG)
    assert case.image.shape == (256, 256) and case.spacing == pytest.approx((1.367188, 1.367188))


def test_unpaired_files_are_listed(tree: Path) -> None:
    iio.imwrite(tree / "images" / "pe_005.png", _square())
    iio.imwrite(tree / "masks" / "pf_006_mask.png", _square())
    with pytest.raises(DataError, match=r"pe_005\.png.*pf_006_mask\.png"):
        READER.discover(tree, CFG)
    (tree / "masks" / "pf_006_mask.png").unlink()
    with pytest.raises(DataError, match=r"pe_005\.png"):
        READER.discover(tree, CFG)


def test_two_files_for_one_stem_are_refused(tree: Path) -> None:
    iio.imwrite(tree / "masks" / "pa_001.png", _square(255))
    with pytest.raises(DataError, match="pa_001"):
        READER.discover(tree, CFG)


def test_empty_dataset_and_bad_pattern(tmp_path: Path) -> None:
    (tmp_path / "image").mkdir()
    (tmp_path / "mask").mkdir()
    with pytest.raises(DataError, match="no folders cases"):
        READER.discover(tmp_path, CFG)
    with pytest.raises(ConfigError, match="patient_pattern"):
        READER.discover(tmp_path, DataConfig(patient_pattern="(unclosed"))


def _load(tree: Path, case_id: str) -> Case:
    return READER.load(next(r for r in READER.discover(tree, CFG) if r.case_id == case_id), CFG)


@pytest.mark.parametrize(
    ("mask", "message"),
    [
        (np.array([[0, 128], [255, 0]], np.uint8).repeat(8, 0).repeat(8, 1), "128"),
        (np.arange(256, dtype=np.uint8).reshape(16, 16), "256 distinct"),
        (np.full((16, 16), 0.5, np.float32), "non-integer"),
        (_square()[:8], "shape"),
    ],
)
def test_unusable_masks_name_the_mask(tree: Path, mask: np.ndarray, message: str) -> None:
    np.save(tree / "masks" / "pb_002.npy", mask)
    with pytest.raises(DataError, match=rf"pb_002\.npy.*{message}"):
        _load(tree, "pb_002")


def test_unreadable_images_name_the_file(tree: Path) -> None:
    image = np.ones((16, 16), np.float32)
    image[3, 3] = np.nan
    np.save(tree / "images" / "pb_002.npy", image)
    with pytest.raises(DataError, match=r"pb_002\.npy.*NaN"):
        _load(tree, "pb_002")

    png = tree / "images" / "pa_001.png"
    png.write_bytes(png.read_bytes()[:60])
    with pytest.raises(DataError, match=r"pa_001\.png"):
        _load(tree, "pa_001")
    png.write_bytes(b"")
    with pytest.raises(DataError, match=r"pa_001\.png.*empty"):
        _load(tree, "pa_001")

    (tree / "images" / "pc_003.png").unlink()
    (tree / "images" / "pc_003.dcm").write_bytes(b"garbage, not DICOM" * 20)
    with pytest.raises(DataError, match=r"pc_003\.dcm"):
        _load(tree, "pc_003")


def test_camus_style_names_give_view_and_phase_as_camus_png_does(camus224: Path, tmp_path: Path) -> None:
    """A lab's apical 2CH/4CH ED/ES images in images/ + masks/ carry their view and phase, so EF can follow."""
    from cardioseg.clinical.echo import apical_views

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    sources = sorted((camus224 / "train").glob("patient000[12]_[24]CH_E[DS].png"))
    assert len(sources) == 8
    for image in sources:
        shutil.copy(image, tmp_path / "images" / image.name)
        shutil.copy(image.with_name(f"{image.stem}_gt.png"), tmp_path / "masks" / f"{image.stem}_gt.png")
    shutil.copy(sources[0], tmp_path / "images" / "scan_without_a_view.png")
    shutil.copy(sources[0].with_name(f"{sources[0].stem}_gt.png"), tmp_path / "masks" / "scan_without_a_view.png")

    refs = {r.case_id: r for r in READER.discover(tmp_path, CFG)}
    camus = {r.case_id: r for r in get_reader("camus_png").discover(camus224, CFG) if r.case_id in refs}
    assert len(camus) == 8
    assert {k: (r.patient_id, r.view, r.phase) for k, r in refs.items() if k in camus} == {
        k: (r.patient_id, r.view, r.phase) for k, r in camus.items()}
    assert (refs["scan_without_a_view"].view, refs["scan_without_a_view"].phase) == (None, None)
    case = READER.load(refs["patient0002_4CH_ES"], DataConfig(labels={1: 1, 2: 2, 3: 3}))
    assert (case.view, case.phase) == ("4CH", "ES")
    tags = [(r.case_id, r.patient_id, r.view, r.phase) for r in refs.values()]
    assert {patient: sorted(views) for patient, views in apical_views(tags).items()} == {
        patient: [("2CH", "ED"), ("2CH", "ES"), ("4CH", "ED"), ("4CH", "ES")] for patient in ("patient0001", "patient0002")}


def test_a_jpeg_mask_named_png_gets_the_jpeg_hint(tree: Path) -> None:
    """The hint follows the content: a lossy mask saved as .png is still JPEG-altered."""
    mask = _square(255)
    Image.fromarray(mask).save(tree / "masks" / "pa_001_mask.png", format="JPEG", quality=50)
    with pytest.raises(DataError, match=r"pa_001_mask\.png.*JPEG compression alters mask values"):
        _load(tree, "pa_001")


def test_nifti_volumes_in_images_and_masks_are_prepared_as_volumes(msd_heart_la: Path, tmp_path: Path) -> None:
    """`cardioseg init`'s folders take MRI volumes too: real MSD volumes, read with their spacing, sliced."""
    import nibabel as nib
    from typer.testing import CliRunner

    from cardioseg.cli import app
    from cardioseg.data.prepared import PreparedDataset

    raw = tmp_path / "raw"
    for folder in ("images", "masks"):
        (raw / folder).mkdir(parents=True)
    for case in ("la_003", "la_004"):
        shutil.copy(msd_heart_la / "imagesTr" / f"{case}.nii.gz", raw / "images" / f"{case}.nii.gz")
        shutil.copy(msd_heart_la / "labelsTr" / f"{case}.nii.gz", raw / "masks" / f"{case}.nii.gz")
    result = CliRunner().invoke(app, ["prepare", "-s", str(raw), "-o", str(tmp_path / "out"), "--size", "32", "-q"])
    assert result.exit_code == 0, result.output
    prepared = PreparedDataset(tmp_path / "out")
    assert prepared.plan.layout == "folders" and prepared.plan.is_3d
    reference = nib.load(msd_heart_la / "labelsTr" / "la_003.nii.gz")
    np.testing.assert_array_equal(prepared.original_label("la_003"), np.asarray(reference.dataobj).astype(np.uint8))
    assert prepared.spacing("la_003") == pytest.approx(reference.header.get_zooms()[:3])
    depth = sum(nib.load(raw / "images" / f"{c}.nii.gz").shape[2] for c in ("la_003", "la_004"))
    assert len(prepared.manifest) == depth  # every slice along the default slice axis

    (raw / "images" / "extra.png").write_bytes((raw / "masks" / "la_003.nii.gz").read_bytes()[:0])
    shutil.copy(raw / "images" / "extra.png", raw / "masks" / "extra.png")
    mixed = CliRunner().invoke(app, ["prepare", "-s", str(raw), "-o", str(tmp_path / "mixed"), "-q"])
    assert mixed.exit_code == 1 and "mixes 3D volumes" in " ".join(mixed.output.split())


def test_the_ct_study_layout_rgb_images_with_0_255_masks(camus224: Path, tmp_path: Path) -> None:
    """No CT data is reachable here: the CT study's folder (RGB PNG slices, 0/255 PNG masks) is rebuilt from real
    camus224 images and read as the folders layout (RGB to grey, 0/255 to 0/1)."""
    root = tmp_path / "ct"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    sources = sorted((camus224 / "val").glob("patient*_ED.png"))[:3]
    for source in sources:
        grey = np.asarray(Image.open(source))
        rgb = np.stack([grey, np.roll(grey, 1, axis=0), grey // 2], axis=-1)  # three different channels
        Image.fromarray(rgb).save(root / "images" / source.name)
        label = np.asarray(Image.open(source.with_name(source.stem + "_gt.png")))
        Image.fromarray(((label == 1) * 255).astype(np.uint8)).save(root / "masks" / source.name)
    assert detect_layout(root) == "folders"
    refs = READER.discover(root, CFG)
    case = READER.load(refs[0], CFG)
    rgb = np.asarray(Image.open(root / "images" / sources[0].name)).astype(np.float64)
    expected_grey = rgb @ np.array([0.299, 0.587, 0.114])  # ITU-R BT.601 luma, as PIL's "L" conversion
    assert np.abs(case.image.astype(np.float64) - expected_grey).max() <= 1.0
    label = np.asarray(Image.open(sources[0].with_name(sources[0].stem + "_gt.png")))
    np.testing.assert_array_equal(case.label, (label == 1).astype(np.uint8))  # 0/255 became 0/1
