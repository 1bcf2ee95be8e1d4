"""A saved model file gives back the same predictions, configuration and plan, including files of older versions.

The networks are made to differ from a freshly built one in weights *and* BatchNorm running
statistics before saving (a few train-mode batches), so a file that lost either would be noticed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from cardioseg.config import ModelConfig, PreprocessConfig
from cardioseg.errors import CheckpointError
from cardioseg.models.checkpoint import ModelBundle, load_bundle, save_bundle
from cardioseg.models.factory import build_model
from cardioseg.plan import ClassSpec, Plan

CAMUS_CLASSES = (
    ClassSpec(id=0, name="background"),
    ClassSpec(id=1, name="LV", role="lv_cavity"),
    ClassSpec(id=2, name="MYO", role="lv_myocardium"),
    ClassSpec(id=3, name="LA", role="left_atrium"),
)
PREPROCESS = PreprocessConfig(normalize="percentile", percentiles=(2.0, 98.0), clahe=True, size=(64, 64))
CONFIGS = {
    "smp_unet": ModelConfig(arch="unet", encoder="resnet18", classes=4),
    "custom_net": ModelConfig(arch="resunet_improved", encoder=None, classes=4, options={"base": 8, "depth": 4}),
}


def trained_looking(cfg: ModelConfig, seed: int = 0) -> nn.Module:
    """A network whose BatchNorm running statistics have moved away from their initial values."""
    torch.manual_seed(seed)
    model = build_model(cfg).train()
    with torch.no_grad():
        for _ in range(3):
            model(2.0 + torch.randn(2, cfg.in_channels, 64, 64))
    return model.eval()


def predict(model: nn.Module) -> torch.Tensor:
    x = torch.randn(2, 1, 64, 64, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        return model.eval()(x)


def camus_plan() -> Plan:
    return Plan(layout="camus_png", orientation="transpose", preprocess=PREPROCESS, label_map={1: 1, 2: 2, 3: 3},
                classes=CAMUS_CLASSES)


@pytest.mark.parametrize("which", sorted(CONFIGS))
def test_saved_model_predicts_the_same_after_loading(which: str, tmp_path: Path) -> None:
    cfg = CONFIGS[which]
    model = trained_looking(cfg)
    before = predict(model)
    bundle = ModelBundle(model=model, model_cfg=cfg, plan=camus_plan(), extra={"epochs": 3})
    loaded = load_bundle(save_bundle(bundle, tmp_path / "model.safetensors"))

    assert torch.allclose(predict(loaded.model), before, atol=1e-6)
    assert not loaded.model.training, "a loaded model is ready for inference"
    assert loaded.model_cfg == cfg
    assert loaded.plan == bundle.plan
    assert loaded.extra == {"epochs": 3}
    # The comparison can fail: a network built afresh (other weights, initial statistics) predicts otherwise.
    assert not torch.allclose(predict(trained_looking(cfg, seed=1)), before, atol=1e-3)


def test_loading_never_fetches_encoder_weights(tmp_path: Path) -> None:
    """The file holds every weight; the encoder weights the model was initialised from are not needed again."""
    cfg = CONFIGS["smp_unet"]
    bundle = ModelBundle(model=trained_looking(cfg), model_cfg=cfg.model_copy(update={"encoder_weights": "imagenet"}),
                         plan=camus_plan())
    loaded = load_bundle(save_bundle(bundle, tmp_path / "model.safetensors"))
    assert loaded.model_cfg.encoder_weights is None
    assert torch.allclose(predict(loaded.model), predict(bundle.model), atol=1e-6)


def write_v1_file(path: Path, model: nn.Module, cfg: ModelConfig, **changes: object) -> Path:
    """A model file as cardioseg wrote it before plans (header format_version 1)."""
    header = {
        "format": "cardioseg-model",
        "format_version": 1,
        "cardioseg_version": "0.1.0",
        "model": cfg.model_dump(mode="json"),
        "preprocess": PREPROCESS.model_dump(mode="json"),
        "orientation_fix": "transpose",
        "labels": {"1": 1, "2": 2, "3": 3},
        "class_names": {"0": "background", "1": "LV", "2": "MYO", "3": "LA"},
        "extra": {"slice_axis": 2, "layout": "camus_png", "epochs": 3},
        **changes,
    }
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={"cardioseg": json.dumps(header)})
    return path


def test_a_version_1_file_still_loads_with_the_equivalent_plan(tmp_path: Path) -> None:
    cfg = CONFIGS["custom_net"]
    model = trained_looking(cfg)
    loaded = load_bundle(write_v1_file(tmp_path / "old.safetensors", model, cfg))

    # What the loose v1 fields meant, said as a plan: CAMUS labels 1-3 are LV cavity, myocardium, atrium.
    assert loaded.plan == camus_plan()
    assert loaded.plan.class_of_role("left_atrium") == 3
    assert loaded.model_cfg == cfg
    assert loaded.extra == {"epochs": 3}, "slice_axis and layout moved into the plan"
    assert torch.allclose(predict(loaded.model), predict(model), atol=1e-6)


def test_a_version_1_binary_file_gets_a_background_and_foreground_plan(tmp_path: Path) -> None:
    cfg = ModelConfig(arch="plain_unet", encoder=None, classes=1, options={"base": 8, "depth": 3})
    path = write_v1_file(tmp_path / "old.safetensors", trained_looking(cfg), cfg, labels={"1": 1},
                         class_names={"0": "background", "1": "LV"}, orientation_fix="none",
                         extra={"slice_axis": 0, "layout": "msd"})
    plan = load_bundle(path).plan
    assert plan.binary and plan.class_names == {1: "LV"}
    assert (plan.layout, plan.is_3d, plan.slice_axis, plan.orientation) == ("msd", True, 0, "none")
    assert plan.label_map == {1: 1}
    assert plan.class_of_role("lv_cavity") is None, "roles were not recorded before plans (only CAMUS gets them)"


def test_a_file_from_a_newer_cardioseg_is_refused_by_name(tmp_path: Path) -> None:
    cfg = CONFIGS["custom_net"]
    path = write_v1_file(tmp_path / "future.safetensors", trained_looking(cfg), cfg, format_version=99)
    with pytest.raises(CheckpointError, match="v99 is not supported") as caught:
        load_bundle(path)
    assert caught.value.path == path
    assert str(path) in str(caught.value)
