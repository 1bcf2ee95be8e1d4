"""`prepare` on every shared dataset: the right counts, splits, resumability and bad input."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cardioseg.config import load_config
from cardioseg.data import prepare as prepare_module
from cardioseg.data.prepare import prepare_dataset
from cardioseg.data.prepared import PreparedDataset
from cardioseg.errors import DataError
from tests.conftest import copy_camus_patients


def _cfg(source: Path, out: Path, **overrides):
    return load_config(overrides={"data.source": source, "data.prepared": out, **overrides})


def test_camus224_official_split_and_counts(camus64: Path) -> None:
    prepared = PreparedDataset(camus64)
    info, manifest = prepared.info, prepared.manifest
    assert info["n_patients"] == 450 and info["n_samples"] == 1800
    assert info["patients_per_split"] == {"train": 400, "val": 50, "test": 0}
    plan = prepared.plan
    assert plan.orientation == "transpose" and not plan.is_3d and plan.label_map == {1: 1}
    assert prepared.class_names == {0: "background", 1: "LV endocardium"}
    assert plan.class_of_role("lv_cavity") == 1 and plan.out_channels == 1
    assert manifest.groupby("patient_id")["split"].nunique().max() == 1
    assert prepared.images.shape == (1800, 64, 64) and prepared.images.dtype == np.float32
    assert set(np.unique(prepared.labels)) == {0, 1}
    # originals are kept at 224x224, oriented apex up (transposed from the stored PNG)
    case = "patient0001_2CH_ED"
    stored = np.array(Image.open(Path(info["source"]) / "train" / f"{case}_gt.png"))
    original = prepared.original_label(case)
    assert original.shape == (224, 224)
    assert (original == 1).sum() == pytest.approx(((stored == 1).T).sum(), rel=0.05)
    np.testing.assert_array_equal(prepared.original_image(case), np.array(Image.open(Path(info["source"]) / "train" / f"{case}.png")).T)


def test_msd_every_slice_and_duplicates_together(msd_heart_la: Path, tmp_path: Path) -> None:
    import nibabel as nib

    cfg = _cfg(msd_heart_la, tmp_path / "msd", **{"preprocess.size": [32, 32], "preprocess.normalize": "percentile"})
    result = prepare_dataset(cfg, progress=False)
    depths = sum(nib.load(p).shape[2] for p in sorted((msd_heart_la / "imagesTr").glob("la_*.nii.gz")))
    assert result.n_cases == 15 and result.n_samples == depths
    prepared = PreparedDataset(result.out_dir)
    splits = prepared.manifest.groupby("case_id")["split"].first()
    assert splits["la_005"] == splits["la_026"]  # byte-identical images stay in one split
    assert set(splits) == {"train", "val", "test"}
    volume = prepared.cases["la_003"]
    assert volume["ndim"] == 3 and volume["slice_axis"] == 2
    np.testing.assert_allclose(volume["spacing"], [1.25, 1.25, 1.37], atol=0.01)
    assert np.array(volume["affine"]).shape == (4, 4)
    rows = prepared.manifest[prepared.manifest.case_id == "la_003"]
    assert rows.slice_index.tolist() == list(range(len(rows)))
    assert prepared.original_label("la_003").shape == tuple(volume["shape"])


def test_sunnybrook_96_labelled_slices_with_spacing(sunnybrook5: Path, tmp_path: Path) -> None:
    result = prepare_dataset(_cfg(sunnybrook5, tmp_path / "sb", **{"preprocess.size": [64, 64]}), progress=False)
    assert result.n_samples == 96
    prepared = PreparedDataset(result.out_dir)
    assert prepared.manifest.patient_id.nunique() == 5
    assert all(prepared.spacing(c) and 1.2 < prepared.spacing(c)[0] < 1.4 for c in prepared.cases)
    assert prepared.class_names[1] == "LV blood pool"


def test_sunnybrook_undrawn_myocardium_is_marked_unknown(sunnybrook5: Path, tmp_path: Path) -> None:
    """Slices without an epicardial contour: their non-cavity pixels are 255 (background or myocardium)."""
    cfg = _cfg(sunnybrook5, tmp_path / "sb", **{"preprocess.size": [64, 64], "data.labels": {1: 1, 2: 2}})
    prepared = PreparedDataset(prepare_dataset(cfg, progress=False).out_dir)
    assert prepared.plan.class_of_role("lv_myocardium") == 2 and prepared.plan.out_channels == 3
    undrawn = [c for c in prepared.cases if prepared.unannotated(c) == [2]]
    assert len(undrawn) == 96 - 37  # 37 slices have a usable o-contour (test_readers)
    for case in prepared.cases:
        values = set(np.unique(prepared.original_label(case)).tolist())
        assert values == ({1, 255} if case in undrawn else {0, 1, 2}), case
    rows = prepared.manifest.case_id.isin(undrawn).to_numpy()
    assert not (prepared.labels[rows] == 0).any() and (prepared.labels[rows] == 255).any()
    assert not (prepared.labels[~rows] == 255).any()


def test_interrupted_prepare_resumes_without_duplicates(camus224: Path, tmp_path: Path, monkeypatch) -> None:
    source = copy_camus_patients(camus224, tmp_path / "raw", [f"patient{i:04d}" for i in range(1, 6)])
    cfg = _cfg(source, tmp_path / "out", **{"preprocess.size": [32, 32]})
    reader = prepare_module.get_reader("camus_png")
    calls: list[str] = []
    original_load = reader.load

    def dying_load(ref, data_cfg):
        if len(calls) == 7:
            raise KeyboardInterrupt  # the user pressed Ctrl-C (or the process was killed)
        calls.append(ref.case_id)
        return original_load(ref, data_cfg)

    monkeypatch.setattr(reader, "load", dying_load)
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset(cfg, progress=False)
    assert not (tmp_path / "out").exists()  # nothing half-written is visible
    monkeypatch.setattr(reader, "load", lambda ref, c: (calls.append(ref.case_id), original_load(ref, c))[1])
    result = prepare_dataset(cfg, progress=False)
    assert len(calls) == 20  # the 7 finished cases were not read again
    manifest = PreparedDataset(result.out_dir).manifest
    assert len(manifest) == 20 and manifest.sample_id.is_unique


def _corrupt_folder(camus224: Path, root: Path) -> Path:
    source = copy_camus_patients(camus224, root, ["patient0001", "patient0002", "patient0003"])
    (source / "patient0002_2CH_ED.png").write_bytes(b"")  # zero-byte file
    (source / "patient0003_4CH_ES.png").write_bytes((source / "patient0003_4CH_ES.png").read_bytes()[:300])  # truncated
    return source


def test_bad_files_all_named_then_skipped_with_report(camus224: Path, tmp_path: Path) -> None:
    source = _corrupt_folder(camus224, tmp_path / "raw")
    with pytest.raises(DataError) as failure:
        prepare_dataset(_cfg(source, tmp_path / "out", **{"preprocess.size": [32, 32]}), progress=False)
    message = str(failure.value)
    assert "2 bad file(s)" in message
    assert "patient0002_2CH_ED.png" in message and "patient0003_4CH_ES.png" in message
    result = prepare_dataset(_cfg(source, tmp_path / "out", **{"preprocess.size": [32, 32], "data.skip_bad": True}),
                             progress=False)
    assert result.n_samples == 10
    report = pd.read_csv(result.out_dir / "bad_files.csv")
    assert len(report) == 2 and report.problem.str.len().min() > 5


def test_missing_source_and_empty_dataset(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        prepare_dataset(_cfg(tmp_path / "nowhere", tmp_path / "out"), progress=False)
    (tmp_path / "empty" / "images").mkdir(parents=True)
    (tmp_path / "empty" / "masks").mkdir()
    with pytest.raises(DataError):
        prepare_dataset(_cfg(tmp_path / "empty", tmp_path / "out"), progress=False)


def test_undeclared_mask_values_are_an_error(tmp_path: Path) -> None:
    root = tmp_path / "raw"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    image = (np.random.default_rng(0).random((40, 40)) * 255).astype(np.uint8)
    mask = np.zeros((40, 40), np.uint8)
    mask[10:20, 10:20] = 1
    mask[25:30, 25:30] = 2
    for patient in ("p1", "p2", "p3"):
        Image.fromarray(image).save(root / "images" / f"{patient}_a.png")
        Image.fromarray(mask).save(root / "masks" / f"{patient}_a.png")
    with pytest.raises(DataError, match="outside the declared labels"):
        prepare_dataset(_cfg(root, tmp_path / "out", **{"data.labels": {1: 1}, "preprocess.size": [16, 16]}), progress=False)


def _folders_dataset(camus224: Path, root: Path, names: list[str]) -> list[Path]:
    """An images/ + masks/ folder holding a different real CAMUS image under each of ``names``."""
    sources = sorted((camus224 / "val").glob("patient*_2CH_ED.png"))[: len(names)]
    for folder in ("images", "masks"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for name, source in zip(names, sources):
        Image.open(source).save(root / "images" / name)
        Image.open(source.with_name(source.stem + "_gt.png")).save(root / "masks" / name)
    return sources


def test_case_ids_that_differ_only_in_punctuation_stay_two_cases(camus224: Path, tmp_path: Path) -> None:
    names = ["p1 x.png", "p1_x.png", "p1-x.png"]
    sources = _folders_dataset(camus224, tmp_path / "raw", names)
    result = prepare_dataset(_cfg(tmp_path / "raw", tmp_path / "out", **{"preprocess.size": [32, 32]}), progress=False)
    prepared = PreparedDataset(result.out_dir)
    assert sorted(prepared.cases) == ["p1 x", "p1-x", "p1_x"]
    for name, source in zip(names, sources):  # each case holds its own file's pixels, none another's
        np.testing.assert_array_equal(prepared.original_image(Path(name).stem), np.asarray(Image.open(source)))


def test_a_second_prepare_into_the_same_folder_is_refused(camus224: Path, tmp_path: Path) -> None:
    from cardioseg.errors import CardiosegError
    from cardioseg.fileio import folder_lock

    _folders_dataset(camus224, tmp_path / "raw", ["a.png", "b.png"])
    out = tmp_path / "out"
    with folder_lock(out, "cardioseg prepare", replaced_whole=True), pytest.raises(CardiosegError) as refused:
        prepare_dataset(_cfg(tmp_path / "raw", out, **{"preprocess.size": [32, 32]}), progress=False)
    assert "in use by cardioseg prepare (PID" in str(refused.value)
    assert not out.exists() and not list(tmp_path.glob(".out.partial*"))


def test_leftovers_of_a_prepare_killed_mid_swap_do_not_block_the_next(camus224: Path, tmp_path: Path) -> None:
    _folders_dataset(camus224, tmp_path / "raw", ["a.png", "b.png"])
    cfg = _cfg(tmp_path / "raw", tmp_path / "out", **{"preprocess.size": [32, 32]})
    prepare_dataset(cfg, progress=False)
    for leftover in (".out.old", ".out.partial"):  # a kill between the two renames, or during the build
        (tmp_path / leftover).mkdir()
        (tmp_path / leftover / "images.npy").write_bytes(b"stale")
    result = prepare_dataset(cfg, progress=False)
    assert PreparedDataset(result.out_dir).manifest.shape[0] == 2
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".out.")) == [".out.lock"]
