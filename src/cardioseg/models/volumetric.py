"""3D networks from MONAI: a volume's planes seen as one block (B, C, D, H, W), D along the slice axis.

They see through-plane shape directly, at the cost of memory and time per voxel; training takes
windows of ``ModelConfig.window_planes`` planes and prediction slides the same window over the volume
(``monai.inferers.sliding_window_inference``). Four stride-2 levels: the window and the input size must be
multiples of 16 (the planner and ``window_planes`` keep them so).
"""

from __future__ import annotations

from torch import nn

DOWNSAMPLING = 16
"""what a window's planes and the input size must be a multiple of: four stride-2 levels"""


def unet3d(in_channels: int = 1, classes: int = 1, *, base: int = 16, res_units: int = 2) -> nn.Module:
    """MONAI's residual 3D U-Net, widths base..16*base (16..256: 4.8M parameters with two residual units)."""
    from monai.networks.nets import UNet  # MONAI loads in about a second: only when a 3D network is built

    return UNet(spatial_dims=3, in_channels=in_channels, out_channels=classes,
                channels=tuple(base * 2**i for i in range(5)), strides=(2, 2, 2, 2), num_res_units=res_units)


def segresnet3d(in_channels: int = 1, classes: int = 1, *, base: int = 8) -> nn.Module:
    """MONAI's SegResNet (the BraTS 2018 winner's encoder-decoder without its VAE branch), 3D, widths base..8*base."""
    from monai.networks.nets import SegResNet

    return SegResNet(spatial_dims=3, in_channels=in_channels, out_channels=classes, init_filters=base,
                     blocks_down=(1, 2, 2, 4), blocks_up=(1, 1, 1))
