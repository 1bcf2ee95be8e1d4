"""One configuration model for every command.

A ``Config`` is built from defaults, then a YAML file, then command-line overrides given as
dotted keys (``train.lr=3e-4``). Relative paths in a YAML file are relative to the file's own
folder (so ``cardioseg prepare -c myproject/cardioseg.yaml`` works from anywhere); those given on
the command line are relative to the current folder. Each command writes the fully resolved
configuration next to its outputs (``config.yaml``, with absolute paths), so a run can be
reproduced from its folder alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cardioseg.errors import ConfigError

Layout = Literal["auto", "camus", "camus_png", "msd", "sunnybrook", "folders", "labelme", "coco", "cvat", "dicom", "dicom_png"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class PreprocessConfig(_Section):
    """The preprocessing chain of the studies, applied in this order to every 2D image."""

    normalize: Literal["minmax", "percentile", "zscore", "none"] = "minmax"
    percentiles: tuple[float, float] = (5.0, 95.0)
    median_filter: int = Field(0, ge=0, description="median kernel size in pixels; 0 turns it off")
    clahe: bool = False
    clahe_clip_limit: float = Field(2.0, gt=0)
    clahe_tile_grid: int = Field(8, ge=1)
    crop: Literal["none", "center", "auto", "roi", "foreground"] = Field(
        "none", description="center: a centred box; auto: the box of the bright region; roi: the echo study's "
        "region of interest (binarise at roi_threshold, fill holes, keep roi_window of the largest region); "
        "foreground: the second stage of a two-stage model, the box of the structure (the reference when "
        "preparing, the first-stage model's mask when predicting) widened by foreground_margin")
    foreground_margin: float = Field(
        0.25, ge=0, le=2, description="crop=foreground: added on each side, as a fraction of the box's own height and "
        "width, so a first-stage mask that falls short still leaves the whole structure inside")
    crop_fraction: float = Field(0.8, gt=0, le=1, description="side of the centre crop as a fraction of the image")
    crop_pixels: int | None = Field(
        None, ge=8, description="centre crop: a square of this many pixels instead of crop_fraction (the LV-on-MRI "
        "study's 128-pixel crop); an image smaller than it keeps its own size along that axis")
    roi_window: tuple[float, float, float, float] = Field(
        (0.0, 1.0, 0.0, 1.0), description="crop=roi: the part of the largest bright region's box kept, as fractions "
        "(top, bottom, left, right) of it: where the structure is expected in every image of the dataset")
    roi_threshold: float = Field(0.05, gt=0, lt=1, description="crop=roi: binarise at this fraction of the image's "
                                 "intensity range (the echo sector against its black frame)")
    size: tuple[int, int] = (128, 128)

    @field_validator("roi_window")
    @classmethod
    def _window(cls, value: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        top, bottom, left, right = value
        if not (0 <= top < bottom <= 1 and 0 <= left < right <= 1):
            raise ValueError("roi_window must be (top, bottom, left, right) with 0 <= top < bottom <= 1 and "
                             "0 <= left < right <= 1")
        return value

    @field_validator("median_filter")
    @classmethod
    def _odd_kernel(cls, value: int) -> int:
        if value and value % 2 == 0:
            raise ValueError("median_filter must be odd (3, 5, ...) or 0")
        return value

    @field_validator("percentiles")
    @classmethod
    def _ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0 <= value[0] < value[1] <= 100:
            raise ValueError("percentiles must satisfy 0 <= low < high <= 100")
        return value


class DataConfig(_Section):
    """Where the data is, how to read it, which labels to keep and how to split patients."""

    source: Path | None = None
    layout: Layout = "auto"
    prepared: Path = Path("prepared")
    labels: dict[int, int] | None = Field(
        None, description="source label -> class id; unlisted labels become background; None keeps all"
    )
    class_names: list[str] | None = None
    orientation: Literal["auto", "none", "transpose"] = Field(
        "auto", description="auto applies the fix a reader knows its layout needs (camus224 PNGs are transposed)"
    )
    split_ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    use_official_split: bool = True
    folds: int | None = Field(
        None, ge=2, description="k-fold cross-validation: the test split is fold `fold` of this many (patients dealt "
        "at random with `seed`, the official split ignored); the other patients go to train and val by the "
        "train:val ratio of split_ratios")
    fold: int = Field(0, ge=0, description="which fold is the test split (0 to folds - 1)")
    seed: int = 0
    slice_axis: int = Field(2, ge=0, le=2)
    patient_pattern: str = Field(r"^([^_]+)", description="regex whose first group is the patient id")
    skip_bad: bool = False
    repair_label_artefacts: bool = Field(
        True, description="camus224 PNGs: relabel the stray one-pixel islands its label resizing left behind"
    )

    @field_validator("split_ratios")
    @classmethod
    def _ratios(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(r < 0 for r in value) or abs(sum(value) - 1.0) > 1e-6:
            raise ValueError("split_ratios must be three non-negative numbers adding up to 1")
        return value


class ModelConfig(_Section):
    """Which network: an architecture from the registry, an encoder and its weights."""

    arch: str = "unet"
    encoder: str | None = "resnet18"
    encoder_weights: str | None = Field(
        None, description="None (random), 'imagenet' (needs a reachable download), or a local weights file"
    )
    in_channels: int = Field(1, ge=1, description="input channels; training sets it from the plan and context_slices")
    context_slices: int = Field(
        0, ge=0, le=4, description="2.5D input for volumes: the k neighbouring planes on each side of a plane join it "
        "as extra input channels (2k+1 in all), so a 2D network sees the through-plane shape; 0 segments each plane alone")
    window_planes: int = Field(
        32, ge=16, multiple_of=16, description="3D networks (unet3d, segresnet3d): planes per training window and per "
        "window of the sliding-window prediction")
    classes: int = Field(1, ge=1, description="output channels; training sets it from the plan (Plan.out_channels)")
    options: dict[str, Any] = Field(default_factory=dict, description="extra keyword arguments for the factory")


class AugmentConfig(_Section):
    preset: Literal["none", "light", "echo", "strong"] = "none"
    extra: list[dict[str, Any]] = Field(
        default_factory=list,
        description="further albumentations transforms as {name: Class, **kwargs}, applied after the preset",
    )


class TrainConfig(_Section):
    run_dir: Path = Path("runs/run")
    loss: Literal["bce", "dice", "dice_bce", "dice_ce", "focal"] | None = Field(
        None, description="None follows the classes: dice_bce for one foreground class, dice_ce for several")
    dice_weight: float = Field(0.5, ge=0, le=1, description="weight of Dice in dice_bce / dice_ce")
    optimizer: Literal["adam", "adamw"] = "adamw"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    scheduler: Literal["cosine", "none"] = Field("cosine", description="warm-up then cosine decay over the epochs or the time budget, whichever ends first")
    epochs: int = Field(20, ge=1)
    more_epochs: int = Field(
        0, ge=0, description="train a finished run this many epochs further, from its last checkpoint (the cosine "
        "schedule spans the new total; the time budget is not applied again)")
    batch_size: int = Field(16, ge=1)
    seed: int = 0
    deterministic: bool = False
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    time_budget: str | None = Field(None, description="wall-clock limit such as 90s, 5m or 1h")
    early_stopping_patience: int | None = Field(None, ge=1)
    monitor: Literal["val_dice", "val_loss"] = Field(
        "val_dice", description="which validation figure picks the kept checkpoint (and early stopping watches): the "
        "highest Dice, or the lowest loss as the echo architectures study does")
    batches_per_epoch: int | None = Field(
        None, ge=1, description="train on at most this many batches per epoch, drawn afresh each epoch: a study run "
        "below its protocol on a CPU (validation still sees the whole val split); None uses every training image")
    plan: bool = Field(
        False, description="fill every training setting not given explicitly (network, input size and crop, batch, "
        "learning rate, epochs, augmentation, EMA, precision) from the recipe planned for this dataset and "
        "time_budget (`cardioseg plan make`); `cardioseg train` turns it on unless --no-plan")
    coarse_model: Path | None = Field(
        None, description="two-stage models: the trained first-stage model (a full view at low resolution) whose "
        "masks place the crop of this dataset's preprocess.crop=foreground; it is stored inside the new model file")
    ema_decay: float | None = Field(
        None, gt=0, lt=1, description="validate and keep an exponential moving average of the weights whose decay "
        "warms up as (1+n)/(10+n) to this value (0.99 then averages about the last 100 steps), never reaching back "
        "over more than the last 5 % of the run's steps; None trains without one")
    average_last: float = Field(
        0.0, ge=0, lt=1, description="checkpoint averaging: validate and keep the flat average of the weights after "
        "every step of the run's last share (0.3: the last 30 %), as stochastic weight averaging does; when set it "
        "replaces ema_decay's average")
    progressive_resize: float = Field(
        0.0, ge=0, lt=1, description="train the first share of the run (by the schedule's progress) on images at half "
        "their size, about 4x the steps per second, then at full size; 2D networks only")
    deep_supervision: int = Field(
        0, ge=0, le=4, description="also score this many of the decoder's coarser stages (1x1 heads, weights halving "
        "from the output), as nnU-Net trains; U-Net, MA-Net and LinkNet; the heads are not part of the saved model")
    tensorboard: bool = Field(False, description="also log to TensorBoard (RUN_DIR/tensorboard), next to metrics.csv")
    epoch_images: int = Field(0, ge=0, description="after each validation, draw this many validation images with "
                              "their reference and prediction into RUN_DIR/epochs/epoch_NNN.png")
    precision: Literal["auto", "bf16", "32"] = "auto"
    channels_last: bool = True
    bn_momentum: float | None = Field(
        None, gt=0, le=1,
        description="set every BatchNorm's running-statistics momentum (PyTorch's default is 0.1; smp's efficientnet-b* "
        "encoders keep TensorFlow's 0.01, whose running statistics lag far behind in short runs); None keeps each model's own",
    )
    recalibrate_bn_batches: int = Field(
        0, ge=0,
        description="before each validation, re-estimate every BatchNorm's running statistics with the current "
        "weights from the last N training batches (precise BN); short runs whose statistics lag the weights need it",
    )
    num_workers: int = Field(1, ge=0)
    threads: int | None = Field(None, ge=1, description="torch CPU threads; None uses every core")
    devices: int = Field(1, ge=1)
    num_nodes: int = Field(1, ge=1)
    val_every_n_epochs: int = Field(1, ge=1)
    checkpoint_every_n_steps: int = Field(50, ge=1, description="how often last.ckpt is refreshed, for resume")

    @field_validator("precision", mode="before")
    @classmethod
    def _precision_text(cls, value: object) -> object:
        return str(int(value)) if isinstance(value, int | float) else value  # --set train.precision=32

    @field_validator("time_budget")
    @classmethod
    def _budget(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value


class PostprocessConfig(_Section):
    threshold: float = Field(0.5, gt=0, lt=1)
    closing_radius: int = Field(0, ge=0)
    fill_holes: bool = False
    largest_component: bool = False
    min_slice_area: int = Field(0, ge=0, description="3D: slices whose mask is smaller than this are emptied")
    max_slice_fill: float = Field(1.0, gt=0, le=1, description="3D: slices whose mask covers more than this fraction "
                                  "of the slice are emptied (an almost uniformly bright output); 1 = off")


Backend = Literal["auto", "torch", "onnx", "openvino"]
Precision = Literal["auto", "bf16", "32", "int8"]


class EvalConfig(_Section):
    """Scoring goes through the same segmenter as `predict`: same backends, TTA and ensembles."""

    out_dir: Path | None = Field(None, description="None: evaluation/<dataset>-<split> next to the (first) model")
    overwrite: bool = Field(False, description="replace an earlier evaluation in out_dir (refused otherwise)")
    split: str = "test"
    postprocess: PostprocessConfig = Field(default_factory=PostprocessConfig)
    backend: Backend = Field("auto", description="as predict.backend")
    precision: Precision = Field("auto", description="as predict.precision")
    tta: bool = Field(False, description="average over horizontal and vertical flips")
    batch_size: int = Field(16, ge=1)
    every_case: bool = Field(False, description="also draw every case: an overlay of each image (of each slice with "
                             "a contour, for a volume) in overlays/, and a 3D view of each volume")


class PredictConfig(_Section):
    out_dir: Path = Path("predictions")
    backend: Backend = Field("auto", description="auto: the fastest backend measured on this machine for this model "
                             "whose masks match fp32 PyTorch's (cached per machine and model)")
    precision: Precision = Field("auto", description="32, bf16 (torch, openvino) or int8 (an `export --int8` file); "
                                 "auto: bf16 where the CPU has it (torch, openvino), else 32")
    min_mask_dice: float = Field(0.99, gt=0, le=1, description="auto only picks backends whose masks reach this Dice "
                                 "against fp32 PyTorch's on every measured image")
    tta: bool = Field(False, description="average over horizontal and vertical flips")
    overlays: bool = False
    probabilities: bool = Field(False, description="also write the foreground probability maps")
    postprocess: PostprocessConfig = Field(default_factory=PostprocessConfig)
    batch_size: int = Field(16, ge=1)
    skip_bad: bool = Field(False, description="segment the other inputs when one cannot be read, list the bad ones "
                           "(bad_files.csv) and exit non-zero")
    pipeline: bool = Field(True, description="read the next batch and write the previous one while the network runs")
    series: str | None = Field(None, description="SeriesInstanceUID to segment when the input folders hold several "
                               "DICOM series (default: each series)")
    format: Literal["auto", "png", "nifti", "dicom-seg", "rtstruct"] = Field(
        "auto", description="label map file: auto = png for 2D inputs, nifti for volumes; dicom-seg and rtstruct "
        "need DICOM inputs and reference them")


class ExportConfig(_Section):
    format: Literal["onnx", "torchscript"] = "onnx"
    out: Path | None = None
    opset: int = Field(18, ge=13)
    dynamic_batch: bool = True
    max_prob_diff: float = Field(1e-3, gt=0, description="largest probability difference from PyTorch an export may have")
    int8: bool = Field(False, description="static int8 quantisation (ONNX QDQ) calibrated on export.calibration")
    calibration: Path | None = Field(None, description="prepared dataset: train images calibrate, val/test images check")
    calibration_images: int = Field(128, ge=1)
    min_mask_dice: float = Field(0.99, gt=0, le=1, description="an int8 export whose masks reach less than this Dice "
                                 "against fp32's on a held-out image is refused")


class ReportConfig(_Section):
    out: Path | None = Field(None, description="HTML file; default RUN_DIR/report.html")
    max_videos: int = Field(4, ge=0)
    max_cases: int = Field(3, ge=1, description="best, median and worst cases shown")


class SweepConfig(_Section):
    """A grid of training runs: architectures x encoders x augmentations (x losses x lr x batch x epochs x seeds)."""

    out_dir: Path = Path("runs/sweep")
    architectures: list[str] = Field(default_factory=lambda: ["unet"])
    encoders: list[str | None] = Field(default_factory=lambda: ["resnet18"])
    augmentations: list[Literal["none", "light", "echo", "strong"]] = Field(default_factory=lambda: ["none", "echo"])
    losses: list[Literal["bce", "dice", "dice_bce", "dice_ce", "focal"]] | None = None
    seeds: list[int] = Field(default_factory=lambda: [0])
    encoder_weights: list[str | None] = Field(default_factory=lambda: [None])
    extra_seeds_for_best: int = Field(0, ge=0, description="re-run the best N configurations with every seed")
    learning_rates: list[float] | None = Field(None, description="grid over train.lr (None: train.lr for every run)")
    batch_sizes: list[int] | None = Field(None, description="grid over train.batch_size (None: train.batch_size)")
    epochs: list[int] | None = Field(None, description="grid over train.epochs (None: train.epochs)")
    equal_epochs: bool = Field(False, description="every run trains exactly its epochs: train.time_budget is dropped "
                               "(the studies' protocol; the default compares runs at equal wall-clock when a budget is set)")
    keep_checkpoints: bool = Field(False, description="keep each finished run's Lightning checkpoints (weights with "
                                   "optimiser state, for resuming: about 6x the model file); the model file always stays")
    backend: Literal["local", "ray"] = "local"
    address: str | None = Field(None, description="Ray cluster address (ray://host:10001 or auto)")
    max_concurrent: int = Field(1, ge=1)
    cpus_per_run: float = Field(1.0, gt=0)
    gpus_per_run: float = Field(0.0, ge=0)


class ServeConfig(_Section):
    host: str = Field("127.0.0.1", description="bind address; 0.0.0.0 opens the app to the network")
    port: int = Field(8000, ge=1, le=65535)
    max_upload_mb: float = Field(64.0, gt=0)
    workers: int = Field(2, ge=1, description="concurrent inference jobs")


class Config(_Section):
    data: DataConfig = Field(default_factory=DataConfig)
    preprocess: PreprocessConfig = Field(default_factory=PreprocessConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    evaluate: EvalConfig = Field(default_factory=EvalConfig)
    predict: PredictConfig = Field(default_factory=PredictConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    sweep: SweepConfig = Field(default_factory=SweepConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)

    def absolute_paths(self) -> Config:
        """A copy whose paths are absolute (resolved against the current folder)."""
        tree = self.model_dump(mode="json")
        for dotted in PATH_KEYS:
            _resolve_dotted(tree, dotted, Path.cwd())
        return Config.model_validate(tree)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.absolute_paths().model_dump(mode="json"), sort_keys=False)


PATH_KEYS = ("data.source", "data.prepared", "train.run_dir", "evaluate.out_dir", "predict.out_dir", "export.out",
             "report.out", "sweep.out_dir", "model.encoder_weights")
"""Settings that name files or folders (``model.encoder_weights`` only when it is a file, not "imagenet")."""


def _resolve_dotted(tree: dict[str, Any], dotted: str, base: Path) -> None:
    """Make the relative path at ``dotted`` (if set) absolute against ``base``."""
    *parents, key = dotted.split(".")
    node: Any = tree
    for parent in parents:
        node = node.get(parent) if isinstance(node, dict) else None
    if not isinstance(node, dict) or not isinstance(node.get(key), str) or node[key] in ("", "imagenet"):
        return
    node[key] = str((base / node[key]).resolve()) if not Path(node[key]).is_absolute() else node[key]


def parse_duration(text: str) -> float:
    """'90s', '5m', '1.5h', '00:05:00' or a plain number of seconds -> seconds."""
    text = text.strip().lower()
    try:
        if ":" in text:
            seconds = 0.0
            for part in text.split(":"):
                seconds = seconds * 60 + float(part)
            return seconds
        units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
        if text[-1] in units:
            return float(text[:-1]) * units[text[-1]]
        return float(text)
    except (ValueError, IndexError):
        raise ConfigError(f"invalid duration {text!r}: use a form such as 90s, 5m, 1h or 00:05:00") from None


def set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``section.key`` (any depth) in a configuration tree, creating sections as needed."""
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"cannot set {dotted!r}: {key!r} is not a section")
    node[keys[-1]] = value


def parse_override(item: str) -> tuple[str, Any]:
    """'train.lr=3e-4' -> ('train.lr', 0.0003); the value is read as YAML."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like section.key=value")
    key, raw = item.split("=", 1)
    value = yaml.safe_load(raw) if raw.strip() else None
    if isinstance(value, str):
        try:  # YAML 1.1 reads 3e-4 (no dot) as text; a number was meant
            value = float(value)
        except ValueError:
            pass
    return key.strip(), value


def _merged(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``top`` laid over ``base``: sections merge key by key, any other value replaces."""
    out = dict(base)
    for key, value in top.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _read_tree(path: Path, chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """One YAML file's settings, its paths made absolute, laid over the file its ``base:`` names (if any).

    ``base`` lets a variant say only what differs, e.g. a study's CPU-sized run over the study's protocol."""
    if not path.is_file():
        raise ConfigError("configuration file not found" + (f" (the base of {chain[-1]})" if chain else ""), path)
    if path.resolve() in chain:
        raise ConfigError("its base chain comes back to itself", path)
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", path) from None
    if not isinstance(loaded, dict):
        raise ConfigError("a configuration file must hold a mapping of sections", path)
    for dotted in PATH_KEYS:
        _resolve_dotted(loaded, dotted, path.resolve().parent)
    base = loaded.pop("base", None)
    if base is None:
        return loaded
    if not isinstance(base, str):
        raise ConfigError("base: must name another configuration file", path)
    return _merged(_read_tree(path.resolve().parent / base, (*chain, path.resolve())), loaded)


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Defaults <- YAML file (over its ``base:`` file, if any) <- overrides (dotted keys; ``None`` values are ignored)."""
    tree: dict[str, Any] = {} if path is None else _read_tree(Path(path))
    for dotted, value in (overrides or {}).items():
        if value is not None:
            set_dotted(tree, dotted, value)
    try:
        return Config.model_validate(tree)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}", path) from None
