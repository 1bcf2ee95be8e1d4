"""The plan: its rules worked out by hand, written by prepare, carried by checkpoints, shown by `cardioseg plan show`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cardioseg.artifacts import load_plan
from cardioseg.cli import app
from cardioseg.config import ModelConfig, PreprocessConfig
from cardioseg.data.prepared import PreparedDataset
from cardioseg.errors import ConfigError
from cardioseg.models.checkpoint import ModelBundle, save_bundle
from cardioseg.models.factory import build_model
from cardioseg.plan import ClassSpec, Plan

BG = ClassSpec(id=0, name="background")


def test_channels_follow_the_number_of_foreground_classes() -> None:
    one = Plan(classes=(BG, ClassSpec(id=2, name="LV", role="lv_cavity")))
    three = Plan(classes=(BG, *(ClassSpec(id=i, name=f"c{i}") for i in (1, 2, 3))))
    assert one.out_channels == 1 and one.binary and one.class_of_role("lv_cavity") == 2
    assert three.out_channels == 4 and not three.binary and three.class_of_role("left_atrium") is None


def test_plan_refuses_inconsistent_classes() -> None:
    with pytest.raises(ConfigError, match="start with background 0"):
        Plan(classes=(ClassSpec(id=1, name="LV"),))
    with pytest.raises(ConfigError, match="same role"):
        Plan(classes=(BG, ClassSpec(id=1, name="a", role="lv_cavity"), ClassSpec(id=2, name="b", role="lv_cavity")))


def test_transposed_images_swap_their_spacing_volumes_do_not() -> None:
    assert Plan(orientation="transpose").plane_spacing((0.3, 0.5)) == (0.5, 0.3)
    assert Plan(orientation="none").plane_spacing((0.3, 0.5)) == (0.3, 0.5)
    assert Plan(orientation="transpose", is_3d=True).plane_spacing((1.25, 1.25, 1.37)) == (1.25, 1.25, 1.37)


def test_plan_show_reads_a_prepared_dataset_and_a_checkpoint(camus64: Path, tmp_path: Path) -> None:
    plan = PreparedDataset(camus64).plan
    model_cfg = ModelConfig(arch="plain_unet", encoder=None, classes=1, options={"base": 8})
    checkpoint = save_bundle(ModelBundle(build_model(model_cfg), model_cfg, plan), tmp_path / "m.safetensors")
    assert load_plan(checkpoint) == load_plan(camus64) == plan
    runner = CliRunner()
    shown = runner.invoke(app, ["plan", "show", str(camus64)])
    assert shown.exit_code == 0, shown.output
    assert "transpose" in shown.output and "64x64" in shown.output and "LV endocardium (LV cavity)" in shown.output
    as_json = runner.invoke(app, ["plan", "show", "--json", str(checkpoint)])
    assert Plan.model_validate(json.loads(as_json.output)) == plan
    missing = runner.invoke(app, ["plan", "show", str(tmp_path)])
    assert missing.exit_code == 1 and "neither a prepared dataset nor a run folder" in missing.output


def test_train_refuses_preprocessing_that_differs_from_the_plan(camus64: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["train", "-d", str(camus64), "-r", str(tmp_path / "run"), "--epochs", "1",
                                      "--set", "preprocess.size=[96, 96]", "-q", "--no-plan"])
    assert result.exit_code == 1
    assert "preprocess.size differ(s) from the plan" in result.output and "cardioseg prepare" in result.output
    assert not (tmp_path / "run" / "model.safetensors").exists()
    assert PreprocessConfig().size != (96, 96)


def test_a_plan_this_version_cannot_read_is_a_data_error_naming_the_file(tmp_path: Path) -> None:
    from cardioseg.artifacts import prepared_plan
    from cardioseg.errors import DataError

    where = tmp_path / "dataset.json"
    plan = Plan(preprocess=PreprocessConfig(), classes=(ClassSpec(id=0, name="background"), ClassSpec(id=1, name="LV")))
    info = {"plan": {**plan.model_dump(mode="json"), "preprocess": {"size": [64, 64], "retired_option": 1}}}
    with pytest.raises(DataError, match=r"preprocess\.retired_option.*prepare` again") as caught:
        prepared_plan(info, where)
    assert str(where) in str(caught.value)
    assert prepared_plan({"plan": plan.model_dump(mode="json")}, where) == plan
