"""Augmentation presets (albumentations) plus free configuration.

- ``none``: no augmentation (the studies' "initial data").
- ``light``: small shifts, scalings and rotations (up to 5 %, 10 %, 10 degrees) and brightness/contrast, no flips:
  for short runs, and for any cardiac view, whose left and right are not interchangeable.
- ``echo``: the echo study's — horizontal and vertical shift up to 20 % and scale 0.5 to 2.
- ``strong``: rotation, flips, elastic deformation, brightness/contrast.
``AugmentConfig.extra`` appends any albumentations transform by class name and arguments.
"""

from __future__ import annotations

import albumentations as A
import cv2

from cardioseg.config import AugmentConfig
from cardioseg.errors import ConfigError


def _preset(name: str) -> list[A.BasicTransform]:
    if name == "none":
        return []
    if name == "light":
        return [
            A.Affine(translate_percent=(-0.05, 0.05), scale=(0.9, 1.1), rotate=(-10, 10),
                     border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0, p=0.7),
            A.RandomBrightnessContrast(brightness_limit=0.1, contrast_limit=0.1, p=0.5),
        ]
    if name == "echo":
        return [
            A.Affine(
                translate_percent={"x": (-0.2, 0.2), "y": (-0.2, 0.2)},
                scale=(0.5, 2.0),
                border_mode=cv2.BORDER_CONSTANT,
                fill=0,
                fill_mask=0,
                p=1.0,
            )
        ]
    if name == "strong":
        return [
            A.Affine(rotate=(-20, 20), scale=(0.8, 1.2), translate_percent=(-0.1, 0.1), border_mode=cv2.BORDER_CONSTANT, p=0.8),
            A.HorizontalFlip(p=0.5),
            A.VerticalFlip(p=0.5),
            A.ElasticTransform(alpha=30, sigma=6, p=0.3),
            A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=0.5),
        ]
    raise ConfigError(f"unknown augmentation preset {name!r}; choose none, light, echo or strong")


def _extra(spec: dict) -> A.BasicTransform:
    spec = dict(spec)
    name = spec.pop("name", None)
    transform = getattr(A, str(name), None) if name else None
    if transform is None or not isinstance(transform, type):
        raise ConfigError(f"unknown albumentations transform {name!r} in train.augment.extra")
    try:
        return transform(**spec)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad arguments for {name}: {exc}") from None


def build_augmentation(cfg: AugmentConfig) -> A.Compose | None:
    """The training-time transform, or ``None`` when nothing is to be done."""
    transforms = _preset(cfg.preset) + [_extra(spec) for spec in cfg.extra]
    return A.Compose(transforms) if transforms else None
