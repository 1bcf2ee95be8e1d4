"""What predict finds in DICOM folders (series, cine series, multi-frame files) and how it opens them:
a series becomes a volume written as NIfTI on the series' grid, a multi-frame file a cine."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from cardioseg.config import load_config
from cardioseg.data.readers.dicom_frames import read_dicom_frames
from cardioseg.errors import DataError
from cardioseg.inference.inputs import find_inputs, open_volume, read_frames, read_image
from cardioseg.inference.members import RunOptions, load_member
from cardioseg.inference.outputs import OutputWriter
from cardioseg.inference.pipeline import Segmenter
from cardioseg.inference.predict import predict_files
from tests.data.test_dicom_series import write_msd_series


def _study(msd_heart_la: Path, sunnybrook5: Path, root: Path) -> tuple[Path, str]:
    """root/mri: an MSD series and a Sunnybrook cine series side by side; root/echo.dcm (30 frames); a PNG;
    root/single/48.dcm, a slice alone (no series of one file)."""
    _, _, msd_uid = write_msd_series(msd_heart_la, root / "mri", count=6)
    for path in sorted((sunnybrook5 / "dicoms" / "SCD0000101").glob("*.dcm")):
        shutil.copy(path, root / "mri" / f"sb_{path.name}")
    shutil.copy(get_testdata_file("examples_ybr_color.dcm"), root / "echo.dcm")
    (root / "single").mkdir()
    shutil.copy(sunnybrook5 / "dicoms" / "SCD0000101" / "48.dcm", root / "single" / "48.dcm")
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(root / "blank.png")
    return root / "mri", msd_uid


def test_a_study_folder_gives_series_cine_positions_cine_files_and_single_images(
    msd_heart_la: Path, sunnybrook5: Path, tmp_path: Path
) -> None:
    _, msd_uid = _study(msd_heart_la, sunnybrook5, tmp_path / "study")
    found, skipped = find_inputs([tmp_path / "study"])
    kinds = {str(item.stem): item.kind for item in found}
    sunnybrook_uid = next(i.series.uid for i in found if i.series is not None and i.series.uid != msd_uid)
    assert kinds[f"mri_series-{msd_uid}"] == "series"
    assert [kinds[f"mri_series-{sunnybrook_uid}_pos{p:02d}"] for p in range(1, 10)] == ["cine"] * 9
    assert kinds["echo"] == "cine" and kinds["single/48"] == "dicom" and kinds["blank"] == "raster"
    assert len(found) == 1 + 9 + 3 and skipped == []


def test_series_option_keeps_one_series_and_an_unknown_uid_lists_them(
    msd_heart_la: Path, sunnybrook5: Path, tmp_path: Path
) -> None:
    mri, msd_uid = _study(msd_heart_la, sunnybrook5, tmp_path / "study")
    found, skipped = find_inputs([mri], series=msd_uid)
    assert [(item.kind, str(item.stem), item.series.n_files if item.series else 0) for item in found] == [
        ("series", f"mri_series-{msd_uid}", 6)]
    assert skipped == [mri]  # the cine series' folder, left out
    with pytest.raises(DataError) as error:
        find_inputs([mri], series="1.2.3")
    assert f"{mri}: no series with SeriesInstanceUID 1.2.3; this folder holds: " in str(error.value)
    assert f"{msd_uid} 'MSD la_003': 6 files (6 slices)" in str(error.value)


def test_a_multi_frame_file_given_by_name_is_a_cine_with_its_frames(tmp_path: Path) -> None:
    echo = Path(get_testdata_file("examples_ybr_color.dcm"))
    (item,), _ = find_inputs([echo])
    assert item.kind == "cine"
    np.testing.assert_array_equal(read_frames(item).frames, read_dicom_frames(echo).frames)
    with pytest.raises(DataError, match="a cine input is no single 2D image"):
        read_image(item)
    stack = open_volume(item)
    assert stack.shape == (240, 320, 30) and stack.spacing is None  # frames are no distance


def _writer(camus_checkpoint: Path, out: Path) -> OutputWriter:
    cfg = load_config(overrides={"predict.out_dir": out})
    member = load_member(camus_checkpoint, RunOptions("torch", "32", 4), out, 0)
    return OutputWriter(out, cfg.predict, Segmenter([member]), False)


def test_a_series_is_segmented_and_written_as_nifti_on_the_series_grid(
    msd_heart_la: Path, camus_checkpoint: Path, tmp_path: Path
) -> None:
    array, affine, _ = write_msd_series(msd_heart_la, tmp_path / "in" / "la003", count=4)
    (item,), _ = find_inputs([tmp_path / "in"])
    assert (item.kind, str(item.stem)) == ("series", "la003")
    volume = open_volume(item)
    np.testing.assert_array_equal(volume.read(), array)
    writer = _writer(camus_checkpoint, tmp_path / "out")
    assert writer.volume(item, volume, 1 << 30) == 4
    mask = nib.load(tmp_path / "out" / "la003_mask.nii.gz")
    assert mask.shape == array.shape and mask.get_data_dtype() == np.uint8
    np.testing.assert_allclose(mask.affine, affine, atol=1e-3)
    assert writer.rows[0]["spacing_mm"] == "1.25x1.25x1.37"


def test_a_real_sunnybrook_cine_position_is_segmented_frame_by_frame(
    sunnybrook5: Path, camus_checkpoint: Path, tmp_path: Path
) -> None:
    found, _ = find_inputs([sunnybrook5 / "dicoms" / "SCD0000101"])
    assert [str(item.stem) for item in found] == [f"SCD0000101_pos{p:02d}" for p in range(1, 10)]
    writer = _writer(camus_checkpoint, tmp_path / "out")
    assert writer.volume(found[0], open_volume(found[0]), 1 << 30) == 2
    mask = nib.load(tmp_path / "out" / "SCD0000101_pos01_mask.nii.gz")
    assert mask.shape == (256, 256, 2)


def test_predict_segments_a_palette_colour_ultrasound_dicom_as_grey_with_its_region_spacing(
    camus_checkpoint: Path, tmp_path: Path
) -> None:
    source = Path(get_testdata_file("examples_palette.dcm"))
    result = predict_files([source], [camus_checkpoint], load_config(overrides={"predict.out_dir": tmp_path}))
    mask = np.asarray(Image.open(tmp_path / "examples_palette_mask.png"))
    assert mask.shape == (350, 800) and result.outputs.loc[0, "kind"] == "dicom"
    assert result.outputs.loc[0, "spacing_mm"] == "0.262288x0.262288"  # the 2D region's 0.02622878766 cm


def test_a_broken_dicom_beside_a_series_is_found_as_an_image_and_fails_only_when_read(
    msd_heart_la: Path, tmp_path: Path
) -> None:
    write_msd_series(msd_heart_la, tmp_path / "in" / "la003", count=3)
    (tmp_path / "in" / "la003" / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00")
    found, _ = find_inputs([tmp_path / "in"])
    assert sorted((item.kind, str(item.stem)) for item in found) == [("dicom", "la003/broken"), ("series", "la003")]
    broken = next(item for item in found if item.kind == "dicom")
    with pytest.raises(DataError, match=r"broken\.dcm"):
        read_image(broken)


def test_predict_on_a_study_folder_segments_the_chosen_series_as_one_volume(
    msd_heart_la: Path, sunnybrook5: Path, camus_checkpoint: Path, tmp_path: Path
) -> None:
    mri, msd_uid = _study(msd_heart_la, sunnybrook5, tmp_path / "study")
    cfg = load_config(overrides={"predict.out_dir": tmp_path / "out", "predict.series": msd_uid,
                                 "predict.backend": "torch"})
    result = predict_files([mri], [camus_checkpoint], cfg)
    assert result.n_planes == 6 and list(result.outputs["spacing_mm"]) == ["1.25x1.25x1.37"]
    mask = nib.load(result.outputs["mask"].iloc[0])
    assert mask.shape == (256, 256, 6) and msd_uid in result.outputs["mask"].iloc[0]
    everything = predict_files([tmp_path / "study"], [camus_checkpoint],
                               cfg.model_copy(update={"predict": cfg.predict.model_copy(update={
                                   "series": None, "out_dir": tmp_path / "all"})}))
    assert len(everything.outputs) == 1 + 9 + 3  # the series, nine cine positions, the echo, a slice and a PNG


def test_predict_segments_every_frame_of_a_cine_with_its_curve_and_flags_each_input(
    camus_checkpoint: Path, camus224: Path, tmp_path: Path
) -> None:
    """A real 30-frame colour ultrasound cine: 30 masks, the area curve with ED/ES, a video; a 2D image beside
    it gets QC columns too."""
    import pandas as pd

    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(get_testdata_file("examples_ybr_color.dcm"), folder / "echo.dcm")
    image = sorted((camus224 / "val").glob("patient*_ED.png"))[0]
    shutil.copy(image, folder / image.name)
    cfg = load_config(overrides={"predict.out_dir": tmp_path / "out", "predict.backend": "torch"})
    result = predict_files([folder], [camus_checkpoint], cfg)
    assert result.n_planes == 30 + 1
    rows = result.outputs.set_index("kind")
    cine = rows.loc["cine"]
    assert cine["frames"] == 30 and len(list((tmp_path / "out").glob("echo_frame*_mask.png"))) == 30
    curve = pd.read_csv(cine["curve"])
    assert len(curve) == 30 and Path(cine["video"]).stat().st_size > 1000
    assert cine["qc_flag"] in ("ok", "check") and rows.loc["raster"]["qc_flag"] in ("ok", "check")
    written = pd.read_csv(tmp_path / "out" / "predictions.csv")
    assert {"qc_flag", "qc_reasons", "qc_uncertainty"} <= set(written.columns)


def test_the_report_of_a_prediction_folder_shows_each_cine_curve_and_the_cases_to_check_first(
    camus_checkpoint: Path, camus224: Path, tmp_path: Path
) -> None:
    import re

    from typer.testing import CliRunner

    from cardioseg.cli import app

    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(get_testdata_file("examples_ybr_color.dcm"), folder / "echo.dcm")
    for image in sorted((camus224 / "val").glob("patient*_ED.png"))[:3]:
        shutil.copy(image, folder / image.name)
    blank = np.zeros((224, 224), np.uint8)
    Image.fromarray(blank).save(folder / "blank.png")  # nothing to segment: an empty mask, flagged
    ran = CliRunner().invoke(app, ["predict", str(folder), "-m", str(camus_checkpoint), "-o", str(tmp_path / "out"),
                                   "-q", "--backend", "torch"])
    assert ran.exit_code == 0, ran.output
    made = CliRunner().invoke(app, ["report", str(tmp_path / "out")])
    assert made.exit_code == 0, made.output
    html = (tmp_path / "out" / "report.html").read_text()
    import pandas as pd

    table = pd.read_csv(tmp_path / "out" / "predictions.csv")
    flagged = int((table.qc_flag == "check").sum())
    assert f"{flagged} to check by eye" in html and flagged >= 1
    cells = re.findall(r'<td class="(ok|check)">', html)
    assert cells == sorted(cells, key=lambda flag: flag != "check")  # every flagged input before every other
    cine = table[table.kind == "cine"].iloc[0]
    assert f"ED frame {int(cine.ed_frame)}, ES frame {int(cine.es_frame)}" in html
    assert html.count('src="data:image/png;base64,') == 1  # the cine's curve, embedded


def test_evaluate_on_a_raw_dicom_folder_prepares_it_for_the_model(
    camus_checkpoint: Path, sunnybrook5: Path, tmp_path: Path
) -> None:
    """Real Sunnybrook slices with their expert cavity as <name>_mask.png (the dicom layout), scored as they lie."""
    from cardioseg.data.readers import get_reader
    from cardioseg.evaluation.evaluate import evaluate_model

    reader = get_reader("sunnybrook")
    folder = tmp_path / "dicom"
    folder.mkdir()
    for ref in reader.discover(sunnybrook5, load_config().data)[:6]:
        case = reader.load(ref, load_config().data)
        stem = f"{case.image_path.parent.name}_{case.image_path.stem}"
        shutil.copy(case.image_path, folder / f"{stem}.dcm")
        Image.fromarray(((case.label == 1) * 255).astype(np.uint8)).save(folder / f"{stem}_mask.png")
    cfg = load_config(overrides={"evaluate.split": "all", "evaluate.out_dir": tmp_path / "eval",
                                 "evaluate.backend": "torch"})
    result = evaluate_model(camus_checkpoint, folder, cfg, progress=False)
    assert result.summary["n_cases"] == 6 and result.summary["distance_unit"] == "mm"
    assert {"qc_flag", "qc_reasons"} <= set(result.per_case.columns)
