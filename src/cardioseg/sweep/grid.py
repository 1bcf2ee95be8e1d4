"""The sweep grid: which runs there are, checked by name before any of them starts.

A grid point is one training run: architecture x encoder x encoder weights x augmentation x
loss (x learning rate x batch size x epochs, when the sweep lists them) x seed. Every point
shares the ``data``, ``preprocess``, ``train`` and ``evaluate`` settings of the configuration
otherwise, so every run gets the same budget; ``sweep.equal_epochs`` drops the time budget so
that each trains exactly its epochs.

Seeds: without ``extra_seeds_for_best`` the grid crosses every seed in ``sweep.seeds``. With it,
the grid runs the first seed only, and the best N configurations are re-run afterwards with
every seed in ``sweep.seeds`` (seeds s and s+1 when only one is listed), so they have >= 2.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from cardioseg.config import Config, ModelConfig, SweepConfig
from cardioseg.errors import CardiosegError, ConfigError

AUGMENTATION_LABELS = {"none": "initial", "light": "augmented-light", "echo": "augmented", "strong": "augmented-strong"}


@dataclass(frozen=True, order=True)
class GridPoint:
    arch: str
    encoder: str | None
    encoder_weights: str | None
    augmentation: str
    loss: str
    seed: int
    lr: float | None = None
    batch_size: int | None = None
    epochs: int | None = None
    """The grid's learning rate, batch size and epochs; None: the configuration's, as for every run."""

    @property
    def weights_label(self) -> str:
        """'scratch', 'imagenet', or the weights file's stem."""
        if self.encoder_weights is None:
            return "scratch"
        return self.encoder_weights if self.encoder_weights == "imagenet" else Path(self.encoder_weights).stem

    @property
    def config_key(self) -> tuple[str, ...]:
        """Everything but the seed: the runs of one configuration differ only by seed."""
        schedule = [f"{tag}{value:g}" for tag, value in (("lr", self.lr), ("b", self.batch_size), ("e", self.epochs))
                    if value is not None]
        return (self.arch, self.encoder or "-", self.weights_label, self.augmentation, self.loss, *schedule)

    @property
    def run_id(self) -> str:
        return "__".join((*self.config_key, f"s{self.seed}"))

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "weights": self.weights_label, "run_id": self.run_id}


def grid_seeds(sweep: SweepConfig) -> list[int]:
    return sweep.seeds[:1] if sweep.extra_seeds_for_best else list(sweep.seeds)


def extra_seeds(sweep: SweepConfig) -> list[int]:
    """The seeds every one of the best configurations gets (at least two)."""
    seeds = list(sweep.seeds)
    return seeds if len(seeds) >= 2 else [seeds[0], seeds[0] + 1]


def expand_grid(sweep: SweepConfig, default_loss: str, uses_encoder: dict[str, bool]) -> list[GridPoint]:
    """Every point of the grid, in a stable order; encoder-free architectures get one encoder slot."""
    points: dict[GridPoint, None] = {}
    losses = sweep.losses or [default_loss]
    for arch, encoder, weights, aug, loss, lr, batch, epochs, seed in itertools.product(
        sweep.architectures, sweep.encoders, sweep.encoder_weights, sweep.augmentations, losses,
        sweep.learning_rates or [None], sweep.batch_sizes or [None], sweep.epochs or [None], grid_seeds(sweep)
    ):
        if not uses_encoder[arch]:
            encoder = weights = None
        points[GridPoint(arch, encoder, weights, aug, loss, seed, lr, batch, epochs)] = None
    return list(points)


def with_seeds(points: list[GridPoint], seeds: list[int]) -> list[GridPoint]:
    """Each configuration of ``points`` once per seed."""
    return list(dict.fromkeys(replace(p, seed=seed) for p in points for seed in seeds))


def _no_duplicates(name: str, values: list[object]) -> None:
    if not values:
        raise ConfigError(f"sweep.{name} is empty: list at least one")
    repeated = sorted({str(v) for v in values if values.count(v) > 1})
    if repeated:
        raise ConfigError(f"sweep.{name} lists {', '.join(repeated)} more than once")


def validate_sweep(cfg: Config) -> list[GridPoint]:
    """Check every name, weights file, loss, the dataset and the input size, then return the grid.

    Everything that would make a run fail for a reason known in advance fails here instead,
    with one clear message, before any run starts.
    """
    import segmentation_models_pytorch as smp

    from cardioseg.data.prepared import PreparedDataset
    from cardioseg.models.registry import get_model_entry
    from cardioseg.training.losses import build_loss, default_loss

    sweep = cfg.sweep
    for name in ("architectures", "encoders", "encoder_weights", "augmentations", "seeds"):
        _no_duplicates(name, list(getattr(sweep, name)))
    for name in ("losses", "learning_rates", "batch_sizes", "epochs"):
        if getattr(sweep, name) is not None:
            _no_duplicates(name, list(getattr(sweep, name)))
    for name, values in (("learning_rates", sweep.learning_rates), ("batch_sizes", sweep.batch_sizes),
                         ("epochs", sweep.epochs)):
        if values is not None and any(v <= 0 for v in values):
            raise ConfigError(f"sweep.{name} must be positive, got {values}")
    uses_encoder = {arch: get_model_entry(arch).uses_encoder for arch in sweep.architectures}
    known = set(smp.encoders.get_encoder_names())
    needs_encoder = [arch for arch, uses in uses_encoder.items() if uses]
    if needs_encoder:
        if None in sweep.encoders:
            raise ConfigError(f"sweep.encoders lists null, but {', '.join(needs_encoder)} need(s) an encoder")
        unknown = [str(e) for e in sweep.encoders if e not in known]
        if unknown:
            raise ConfigError(
                f"unknown encoder(s) {', '.join(unknown)} in sweep.encoders; "
                "smp encoders include resnet18, resnet34, efficientnet-b0, mobilenet_v2, timm-tf_efficientnet_lite0"
            )
    prepared = PreparedDataset(cfg.data.prepared)
    binary = prepared.plan.binary
    loss_when_unset = cfg.train.loss or default_loss(binary)
    points = expand_grid(sweep, loss_when_unset, uses_encoder)
    _check_weight_files({(p.encoder, p.encoder_weights) for p in points}, cfg.model.in_channels)
    if cfg.evaluate.split != "all" and not len(prepared.indices(cfg.evaluate.split)):
        raise ConfigError(f"evaluate.split {cfg.evaluate.split!r} is empty in {prepared.root}: no held-out images to score")
    for loss in sweep.losses or [loss_when_unset]:
        build_loss(cfg.train.model_copy(update={"loss": loss}), binary)
    _check_input_size({(p.arch, p.encoder) for p in points}, cfg.model, prepared.preprocess.size)
    return points


def _check_input_size(networks: set[tuple[str, str | None]], model_cfg: ModelConfig, size: tuple[int, int]) -> None:
    """One forward pass per network at the prepared size: some decoders need a minimum input
    (PAN's pyramid pooling fails below 128x128 with its default stride), and smp wants multiples of 32."""
    import torch

    from cardioseg.models.factory import build_model

    x = torch.zeros(1, model_cfg.in_channels, *size)
    for arch, encoder in sorted(networks, key=str):
        model = build_model(model_cfg.model_copy(update={"arch": arch, "encoder": encoder, "encoder_weights": None}))
        try:
            with torch.no_grad():
                model.eval()(x)
        except (RuntimeError, ValueError) as exc:
            reason = str(exc).strip().splitlines()[0]
            raise ConfigError(f"{arch} on {encoder} cannot take {size[0]}x{size[1]} inputs ({reason}); "
                              "choose another preprocess.size or leave it out of the sweep") from None


def _check_weight_files(pairs: set[tuple[str | None, str | None]], in_channels: int) -> None:
    """Each local weights file must load into each encoder it is paired with (no network needed)."""
    import segmentation_models_pytorch as smp

    from cardioseg.models.smp_models import load_encoder_weights

    stems: dict[str, str] = {}
    for encoder, weights in sorted(pairs, key=str):
        if weights in (None, "imagenet") or encoder is None:
            continue
        path = Path(weights)
        if stems.setdefault(path.stem, weights) != weights:
            raise ConfigError(f"weights files {stems[path.stem]} and {weights} share the name {path.stem!r}; rename one")
        try:
            load_encoder_weights(smp.encoders.get_encoder(encoder, in_channels=in_channels, weights=None), path)
        except CardiosegError as exc:
            raise ConfigError(f"sweep.encoder_weights {weights} does not fit encoder {encoder}: {exc.problem}") from None


def run_config(cfg: Config, point: GridPoint, run_dir: Path) -> Config:
    """The configuration of one run: the shared settings plus the point's choices."""
    run = cfg.model_copy(deep=True)
    run.model.arch = point.arch
    run.model.encoder = point.encoder
    run.model.encoder_weights = point.encoder_weights
    run.train.augment.preset = point.augmentation  # type: ignore[assignment]
    run.train.loss = point.loss  # type: ignore[assignment]
    run.train.seed = point.seed
    if point.lr is not None:
        run.train.lr = point.lr
    if point.batch_size is not None:
        run.train.batch_size = point.batch_size
    if point.epochs is not None:
        run.train.epochs = point.epochs
    if cfg.sweep.equal_epochs:
        run.train.time_budget = None
    run.train.run_dir = run_dir
    run.evaluate.out_dir = run_dir / "evaluation"
    return run
