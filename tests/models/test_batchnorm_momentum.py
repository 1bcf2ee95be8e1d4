"""train.bn_momentum: smp's EfficientNet encoders keep TensorFlow's BatchNorm momentum 0.01, whose
running statistics lag far behind in short runs; the override brings every layer to one value."""

import torch
from torch import nn

from cardioseg.config import ModelConfig
from cardioseg.models.factory import build_model
from cardioseg.training.batchnorm import set_batchnorm_momentum, slow_batchnorm_layers


def batchnorm_momenta(model: nn.Module) -> set[float]:
    return {round(m.momentum, 6) for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}


def running_mean_error(model: nn.Module, steps: int = 30) -> float:
    """Relative distance of the first BatchNorm's running mean from the mean it actually saw."""
    layer = model.encoder._bn0
    seen: list[torch.Tensor] = []
    hook = layer.register_forward_pre_hook(lambda _m, args: seen.append(args[0].mean(dim=(0, 2, 3))))
    torch.manual_seed(0)
    model.train()
    with torch.no_grad():
        for _ in range(steps):
            model(3.0 + torch.randn(2, 1, 32, 32))
    hook.remove()
    true_mean = torch.stack(seen).mean(0)
    return float((layer.running_mean - true_mean).abs().mean() / true_mean.abs().mean())


def test_efficientnet_encoder_gets_the_common_momentum_and_its_statistics_catch_up() -> None:
    default = build_model(ModelConfig(arch="unet", encoder="efficientnet-b0"))
    assert batchnorm_momenta(default) == {0.01, 0.1}  # the encoder's TF value next to the decoder's PyTorch value
    overridden = build_model(ModelConfig(arch="unet", encoder="efficientnet-b0"))
    assert set_batchnorm_momentum(overridden, 0.1) == 49  # every encoder BatchNorm; the decoder's were 0.1
    assert batchnorm_momenta(overridden) == {0.1}
    # After 30 steps from a zero running mean, 0.99**30 = 74 % of the start remains with 0.01, 0.9**30 = 4 % with 0.1.
    assert running_mean_error(default) > 0.6
    assert running_mean_error(overridden) < 0.1


def test_models_that_already_use_the_value_are_left_alone() -> None:
    model = build_model(ModelConfig(arch="unet", encoder="resnet18"))
    assert set_batchnorm_momentum(model, 0.1) == 0
    assert batchnorm_momenta(model) == {0.1}


def test_slow_layers_are_counted_so_training_can_warn() -> None:
    model = build_model(ModelConfig(arch="unet", encoder="efficientnet-b0"))
    assert slow_batchnorm_layers(model) == 49
    set_batchnorm_momentum(model, 0.1)
    assert slow_batchnorm_layers(model) == 0
