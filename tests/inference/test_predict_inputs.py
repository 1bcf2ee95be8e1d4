"""`cardioseg predict` on 2D inputs: PNG, RGB PNG, DICOM, folders, and the errors a user can meet."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from cardioseg.cli import app
from cardioseg.config import Config, load_config
from cardioseg.errors import CheckpointError, DataError
from cardioseg.inference.inputs import find_inputs
from cardioseg.inference.predict import predict_files


def _cfg(out: Path, **overrides: object) -> Config:
    return load_config(overrides={"predict.out_dir": out, **overrides})


def _png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_camus_png_mask_has_input_size_and_layout(camus224: Path, camus_checkpoint: Path, tmp_path: Path) -> None:
    """A non-square cut of a camus224 PNG: transposed for the network, transposed back for the mask."""
    source = sorted((camus224 / "val").glob("patient*_ED.png"))[0]
    cut = tmp_path / "cut.png"
    Image.fromarray(np.asarray(Image.open(source))[:, :160]).save(cut)
    result = predict_files([cut], [camus_checkpoint], _cfg(tmp_path / "out", **{"predict.probabilities": True,
                                                                                 "predict.overlays": True}),
                           visible_masks=True)
    mask = _png(tmp_path / "out" / "cut_mask.png")
    assert mask.shape == (224, 160) and mask.dtype == np.uint8
    assert set(np.unique(mask)) == {0, 1}
    assert set(np.unique(_png(tmp_path / "out" / "cut_visible.png"))) == {0, 255}
    assert _png(tmp_path / "out" / "cut_overlay.png").shape == (224, 160, 3)
    prob = np.load(tmp_path / "out" / "cut_prob.npy")
    assert prob.shape == (224, 160) and prob.dtype == np.float32
    np.testing.assert_array_equal(mask, prob > 0.5)
    assert result.outputs.loc[0, "foreground_pixels"] == int(mask.sum())
    assert (tmp_path / "out" / "config.yaml").is_file() and (tmp_path / "out" / "predictions.csv").is_file()


def test_rgb_png_is_read_as_grey(camus224: Path, camus_checkpoint: Path, tmp_path: Path) -> None:
    source = sorted((camus224 / "val").glob("patient*_ES.png"))[0]
    grey = np.asarray(Image.open(source))
    Image.fromarray(np.repeat(grey[..., None], 3, axis=-1)).save(tmp_path / "rgb.png")
    Image.fromarray(grey).save(tmp_path / "grey.png")
    predict_files([tmp_path / "rgb.png", tmp_path / "grey.png"], [camus_checkpoint], _cfg(tmp_path / "out"))
    rgb_mask = _png(tmp_path / "out" / "rgb_mask.png")
    assert rgb_mask.shape == grey.shape and rgb_mask.any()
    np.testing.assert_array_equal(rgb_mask, _png(tmp_path / "out" / "grey_mask.png"))


def test_dicom_slice_gives_png_mask(sunnybrook5: Path, camus_checkpoint: Path, tmp_path: Path) -> None:
    dicom = sorted((sunnybrook5 / "dicoms").glob("*/*.dcm"))[0]
    predict_files([dicom], [camus_checkpoint], _cfg(tmp_path / "out"))
    mask = _png(tmp_path / "out" / f"{dicom.stem}_mask.png")
    assert mask.shape == (256, 256) and set(np.unique(mask)) <= {0, 1}


def test_folders_are_searched_recursively_mirroring_names(camus224: Path, tmp_path: Path) -> None:
    source = sorted((camus224 / "val").glob("patient*_ED.png"))[:2]
    (tmp_path / "in" / "sub").mkdir(parents=True)
    Image.open(source[0]).save(tmp_path / "in" / "a.png")
    Image.open(source[1]).save(tmp_path / "in" / "sub" / "b.png")
    (tmp_path / "in" / "notes.txt").write_text("not an image")
    (tmp_path / "in" / "out").mkdir()
    Image.open(source[1]).save(tmp_path / "in" / "out" / "old_mask.png")  # earlier outputs are not inputs
    found, skipped = find_inputs([tmp_path / "in"], out_dir=tmp_path / "in" / "out")
    assert [str(f.stem) for f in found] == ["a", "sub/b"]
    assert skipped == [tmp_path / "in" / "notes.txt"]


def test_two_inputs_with_one_output_name_are_refused(camus224: Path, tmp_path: Path) -> None:
    source = sorted((camus224 / "val").glob("patient*_ED.png"))[0]
    for folder in ("x", "y"):
        (tmp_path / folder).mkdir()
        Image.open(source).save(tmp_path / folder / "same.png")
    with pytest.raises(DataError, match="same outputs"):
        find_inputs([tmp_path / "x" / "same.png", tmp_path / "y" / "same.png"])


def test_unsupported_file_is_named(camus_checkpoint: Path, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    with pytest.raises(DataError, match="unsupported file type") as caught:
        predict_files([notes], [camus_checkpoint], _cfg(tmp_path / "out"))
    assert caught.value.path == notes and str(notes) in str(caught.value)


def test_corrupt_image_is_named(camus_checkpoint: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    with pytest.raises(DataError) as caught:
        predict_files([broken], [camus_checkpoint], _cfg(tmp_path / "out"))
    assert caught.value.path == broken


def test_checkpoint_from_a_newer_version_is_refused_clearly(camus_checkpoint: Path, tmp_path: Path) -> None:
    from safetensors import safe_open

    with safe_open(str(camus_checkpoint), framework="pt") as handle:
        header = json.loads(handle.metadata()["cardioseg"])
    header["format_version"] = 99
    future = tmp_path / "future.safetensors"
    save_file(load_file(str(camus_checkpoint)), str(future), metadata={"cardioseg": json.dumps(header)})
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(image)
    with pytest.raises(CheckpointError, match=r"v99 is not supported .* upgrade cardioseg") as caught:
        predict_files([image], [future], _cfg(tmp_path / "out"))
    assert caught.value.path == future


def test_cli_reports_a_bad_input_in_one_line(camus_checkpoint: Path, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    result = CliRunner().invoke(app, ["predict", str(notes), "--model", str(camus_checkpoint), "-o", str(tmp_path)])
    assert result.exit_code == 1
    assert "unsupported file type" in result.output and "Traceback" not in result.output


def test_cli_predict_maps_flags_onto_the_configuration(camus224: Path, camus_checkpoint: Path, tmp_path: Path) -> None:
    source = sorted((camus224 / "val").glob("patient*_ED.png"))[0]
    result = CliRunner().invoke(app, ["predict", str(source), "-m", str(camus_checkpoint), "-o", str(tmp_path / "out"),
                                      "--backend", "torch", "--fill-holes", "--largest-component", "--threshold", "0.6",
                                      "--quiet"])
    assert result.exit_code == 0, result.output
    saved = load_config(tmp_path / "out" / "config.yaml")
    assert saved.predict.backend == "torch" and saved.predict.postprocess.threshold == 0.6
    assert saved.predict.postprocess.fill_holes and saved.predict.postprocess.largest_component
    assert (tmp_path / "out" / f"{source.stem}_mask.png").is_file()


def test_dicom_without_suffix_is_recognised_by_its_preamble(sunnybrook5: Path, tmp_path: Path) -> None:
    dicom = sorted((sunnybrook5 / "dicoms").glob("*/*.dcm"))[0]
    (tmp_path / "IM0001").write_bytes(dicom.read_bytes())
    (tmp_path / "README").write_text("no preamble here")
    found, skipped = find_inputs([tmp_path])
    assert [(f.path.name, f.kind) for f in found] == [("IM0001", "dicom")]
    assert skipped == [tmp_path / "README"]


def test_one_truncated_file_does_not_abort_the_folder_with_skip_bad(camus224: Path, camus_checkpoint: Path,
                                                                     tmp_path: Path) -> None:
    sources = sorted((camus224 / "val").glob("patient*_ED.png"))[:2]
    folder = tmp_path / "in"
    folder.mkdir()
    for source in sources:
        Image.open(source).save(folder / source.name)
    truncated = folder / "truncated.png"
    truncated.write_bytes(sources[0].read_bytes()[:300])  # a copy cut short, as a failed transfer leaves it
    out = tmp_path / "out"

    stopped = CliRunner().invoke(app, ["predict", str(folder), "-m", str(camus_checkpoint), "-o", str(out), "-q"])
    assert stopped.exit_code == 1 and "truncated.png" in stopped.output and "--skip-bad" in stopped.output

    went_on = CliRunner().invoke(app, ["predict", str(folder), "-m", str(camus_checkpoint), "-o", str(out), "-q",
                                       "--skip-bad"])
    assert went_on.exit_code == 1, went_on.output  # non-zero: one input has no mask
    assert "1 input(s) could not be segmented" in went_on.output and "truncated.png" in went_on.output
    assert all((out / f"{s.stem}_mask.png").is_file() for s in sources)
    assert not (out / "truncated_mask.png").exists()
    listed = pd.read_csv(out / "bad_files.csv")
    assert listed.file.tolist() == [str(truncated)]
    assert len(pd.read_csv(out / "predictions.csv")) == 2


def test_predict_says_which_file_and_backend_ran(camus224: Path, camus_checkpoint: Path, tmp_path: Path) -> None:
    source = sorted((camus224 / "val").glob("patient*_ED.png"))[0]
    ran = CliRunner().invoke(app, ["predict", str(source), "-m", str(camus_checkpoint), "-o", str(tmp_path / "o"),
                                   "-q", "--backend", "torch"])
    assert ran.exit_code == 0 and f"Ran: {camus_checkpoint.name} on PyTorch" in ran.output


def test_dicom_prediction_reports_area_in_mm2(sunnybrook5: Path, camus_checkpoint: Path, tmp_path: Path) -> None:
    import pydicom

    dicom = sorted((sunnybrook5 / "dicoms").glob("*/*.dcm"))[0]
    row_mm, col_mm = (float(v) for v in pydicom.dcmread(dicom, stop_before_pixels=True).PixelSpacing)
    result = predict_files([dicom], [camus_checkpoint], _cfg(tmp_path / "out"))
    row = result.outputs.iloc[0]
    mask = _png(tmp_path / "out" / f"{dicom.stem}_mask.png")
    assert row["lv_pixels"] == int((mask == 1).sum())
    assert row["lv_area_mm2"] == pytest.approx((mask == 1).sum() * row_mm * col_mm, abs=0.01)


def test_volume_prediction_reports_volume_in_ml(small_volume: Path, tmp_path: Path) -> None:
    import nibabel as nib
    import torch
    from inference_helpers import make_bundle

    from cardioseg.config import PreprocessConfig
    from cardioseg.models.checkpoint import save_bundle

    pre = PreprocessConfig(normalize="percentile", size=(64, 64))
    planes = torch.from_numpy(np.asarray(nib.load(small_volume).dataobj, np.float32)[..., :3].transpose(2, 0, 1)[:, None])
    planes = torch.nn.functional.interpolate((planes - planes.mean()) / planes.std(), size=(64, 64))
    model = save_bundle(make_bundle("plain_unet", planes, pre, fix="none", base=8), tmp_path / "vol.safetensors")
    result = predict_files([small_volume], [model], _cfg(tmp_path / "out"))
    row = result.outputs.iloc[0]
    zooms = nib.load(small_volume).header.get_zooms()[:3]
    labels = np.asarray(nib.load(tmp_path / "out" / "la_003_small_mask.nii.gz").dataobj)
    assert row["spacing_mm"] == "x".join(f"{float(z):g}" for z in zooms)
    assert row["lv_volume_ml"] == pytest.approx((labels == 1).sum() * float(np.prod(zooms)) / 1000, abs=1e-3)
