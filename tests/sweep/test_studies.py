"""Each study's configuration (benchmarks/studies/*.yaml) runs one short trial end to end on real data.

The protocol is the study's (optimiser, loss, checkpoint rule, normalisation, crop, model options,
post-processing); only its scale is cut here: the first architecture, encoder, augmentation and
schedule value, one epoch, 32x32 (64x64 for the 128-pixel-crop study), and a small sample of the data.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cardioseg.config import Config, load_config
from cardioseg.data.offline_augment import augment_offline
from cardioseg.data.prepare import prepare_dataset
from cardioseg.sweep.run import run_sweep

ROOT = Path(__file__).resolve().parents[2]
STUDIES = ROOT / "benchmarks" / "studies"
DEMO_SAMPLE = ROOT / "demo" / "camus_sample"  # the bundled CAMUS patients, always present


def _small_msd(msd_heart_la: Path, dest: Path) -> Path:
    for sub in ("imagesTr", "labelsTr"):
        (dest / sub).mkdir(parents=True)
        for name in ("la_003.nii.gz", "la_004.nii.gz", "la_009.nii.gz", "la_010.nii.gz"):
            shutil.copy(msd_heart_la / sub / name, dest / sub / name)
    return dest


def _cut_down(cfg: Config, source: Path, tmp_path: Path) -> Config:
    s = cfg.sweep
    size = 64 if cfg.preprocess.crop_pixels else 32
    return cfg.model_copy(deep=True, update={
        "data": cfg.data.model_copy(update={"source": source, "prepared": tmp_path / "prepared"}),
        "preprocess": cfg.preprocess.model_copy(update={"size": (size, size),
                                                        "crop_pixels": 48 if cfg.preprocess.crop_pixels else None}),
        "train": cfg.train.model_copy(update={"epochs": 1, "batch_size": 8, "batches_per_epoch": 3, "num_workers": 0}),
        "sweep": s.model_copy(update={
            "out_dir": tmp_path / "sweep", "architectures": s.architectures[:1], "encoders": s.encoders[:1],
            "augmentations": s.augmentations[:1], "seeds": s.seeds[:1],
            "learning_rates": s.learning_rates and s.learning_rates[:1], "batch_sizes": s.batch_sizes and [8],
            "epochs": s.epochs and [1]}),
    })


@pytest.mark.parametrize("study", sorted(p.stem for p in STUDIES.glob("*.yaml")))
def test_each_study_configuration_runs_one_short_trial(study: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    cfg = load_config(STUDIES / f"{study}.yaml")
    assert cfg.sweep.equal_epochs, "a study's protocol counts epochs, not seconds"
    layout = cfg.data.layout
    source = {"camus_png": lambda: DEMO_SAMPLE, "msd": lambda: _small_msd(request.getfixturevalue("msd_heart_la"),
                                                                          tmp_path / "msd"),
              "sunnybrook": lambda: request.getfixturevalue("sunnybrook5")}[layout]()
    small = _cut_down(cfg, source, tmp_path)
    if study == "ct_unet_versions_v2":  # version 2's data: version 1's, augmented offline
        base = small.model_copy(update={"data": small.data.model_copy(update={"prepared": tmp_path / "base"})})
        prepare_dataset(base, progress=False)
        augment_offline(tmp_path / "base", tmp_path / "prepared", copies=1, seed=0)
    else:
        prepare_dataset(small, progress=False)
    result = run_sweep(small)
    assert result.ran == 1, result.records
    record = result.records[0]
    assert record["status"] == "ok", record.get("error")
    assert 0.0 <= record["metrics"]["dice"] <= 1.0
    report = (tmp_path / "sweep" / "report.md").read_text()
    assert "![samples](plots/samples.png)" in report and (tmp_path / "sweep" / "plots" / "samples.png").stat().st_size
    run = Path(record["run_dir"])
    assert (run / "model.safetensors").is_file() and not (run / "checkpoints").exists(), \
        "a finished run keeps its model file, not its resume checkpoints"


SCALE_ONLY = {"data.prepared", "preprocess.size", "train.epochs", "train.batches_per_epoch", "train.val_every_n_epochs",
              "sweep.out_dir", "sweep.epochs", "sweep.architectures", "train.recalibrate_bn_batches"}
"""What a CPU-sized variant may change: how much it runs, never how (optimiser, loss, checkpoint rule, preprocessing).
Precise BN is allowed: it changes no weight, only BatchNorm statistics that lag the weights in runs of a few dozen steps."""


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and key != "options" and key != "labels":
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


@pytest.mark.parametrize("variant", sorted(p.stem for p in (STUDIES / "cpu").glob("*.yaml")))
def test_each_cpu_variant_cuts_only_the_scale_of_its_study(variant: str) -> None:
    import yaml

    text = yaml.safe_load((STUDIES / "cpu" / f"{variant}.yaml").read_text())
    study = (STUDIES / "cpu" / text["base"]).resolve()
    assert study.parent == STUDIES and study.stem == variant
    full, cut = load_config(study), load_config(STUDIES / "cpu" / f"{variant}.yaml")
    a, b = _flat(full.model_dump(mode="json")), _flat(cut.model_dump(mode="json"))
    changed = {key for key in a if a[key] != b[key]}
    assert changed <= SCALE_ONLY, changed - SCALE_ONLY
    assert cut.sweep.out_dir != full.sweep.out_dir  # never mixed with the full protocol's runs
    assert set(cut.sweep.architectures) <= set(full.sweep.architectures)
