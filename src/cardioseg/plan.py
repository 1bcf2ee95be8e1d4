"""The plan: everything a model expects of its input and says of its output, in one versioned object.

nnU-Net calls this "plans", MONAI bundles carry it as metadata. `cardioseg prepare` writes it once
(``dataset.json`` of the prepared dataset); training copies it into the checkpoint header, export
into the sidecar; every later stage reads it through ``cardioseg.artifacts.load_plan`` and builds
its preprocessing from it (``cardioseg.data.preprocess.Pipeline``). Nothing downstream re-derives
a setting the plan holds.

Version history: v1 is the first plan; v2 adds the optional training ``recipe`` that `cardioseg plan make`
chooses from the data and a time budget (v1 plans read as v2 plans without one); v3 adds ``context_slices``, the
neighbouring planes a 2.5D model sees as extra channels, and ``spatial_dims``/``window_planes`` for 3D networks
that see a block of planes at once (older plans read as 2D models of single planes); v4 adds ``postprocess``, the
post-processing chosen on the validation split after training (older plans have none). Checkpoints written before
plans existed (header v1:
loose ``preprocess``, ``orientation_fix``, ``labels``, ``class_names`` and ``extra.slice_axis``)
are converted by ``plan_from_legacy_header``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cardioseg.anatomy import ROLE_NAMES, Role
from cardioseg.config import PostprocessConfig, PreprocessConfig
from cardioseg.errors import ConfigError

PLAN_FORMAT = "cardioseg-plan"
PLAN_VERSION = 4

IGNORE_LABEL = 255
"""Label value of pixels whose class is not known: background or a class not drawn on that image."""

SpacingPolicy = Literal["mm_if_all_known", "pixels"]


class ClassSpec(BaseModel):
    """One class of the label maps: its id, its name, and which structure it is (when known)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: int = Field(ge=0, lt=IGNORE_LABEL)
    name: str
    role: Role | None = None


class Recipe(BaseModel):
    """The training recipe a planner chose for a dataset and a time budget, with the reason for each choice.

    ``settings`` holds configuration values by dotted key (``train.lr``, ``model.arch``, ...): training fills
    every key the user did not set from it, so each choice can still be overridden. ``preprocess`` is the input
    the chosen network sees (size, crop, normalisation); it becomes the model's ``Plan.preprocess``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    budget_s: float = Field(gt=0, description="the wall-clock training budget the recipe was planned for")
    preprocess: PreprocessConfig
    settings: dict[str, Any] = Field(default_factory=dict)
    reasons: dict[str, str] = Field(default_factory=dict, description="dotted key -> why this value")
    fingerprint: dict[str, Any] = Field(default_factory=dict, description="what the planner read of the dataset")
    machine: str = Field("", description="the CPU the speeds were measured on")

    def rows(self) -> list[tuple[str, str, str]]:
        """(setting, value, why) for `--explain` and `cardioseg plan show`."""
        rows = [(f"preprocess.{key}", _text(getattr(self.preprocess, key)), self.reasons.get(f"preprocess.{key}", ""))
                for key in ("normalize", "crop", "size")]
        if self.preprocess.crop == "roi":
            rows.insert(2, ("preprocess.roi_window", _text(self.preprocess.roi_window),
                            self.reasons.get("preprocess.roi_window", "")))
        if self.preprocess.normalize == "percentile":
            rows.insert(1, ("preprocess.percentiles", _text(self.preprocess.percentiles),
                            self.reasons.get("preprocess.percentiles", "")))
        return rows + [(key, _text(value), self.reasons.get(key, "")) for key, value in self.settings.items()]


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_text(v) for v in value) + "]"
    return str(value)


class Plan(BaseModel):
    """What a model expects and produces; see the module docstring."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["cardioseg-plan"] = PLAN_FORMAT
    version: int = PLAN_VERSION
    layout: str = "folders"
    is_3d: bool = False
    slice_axis: int = Field(2, ge=0, le=2, description="axis of a volume whose planes the network sees")
    orientation: Literal["none", "transpose"] = Field("none", description="in-plane fix applied to 2D images")
    in_channels: int = Field(1, ge=1, description="the network's input channels: 2 * context_slices + 1 planes")
    context_slices: int = Field(0, ge=0, description="2.5D: neighbouring planes on each side given with a volume's plane")
    spatial_dims: Literal[2, 3] = Field(2, description="3: the network segments blocks of a volume's planes at once")
    window_planes: int = Field(0, ge=0, description="3D networks: planes per sliding window")
    preprocess: PreprocessConfig = Field(default_factory=PreprocessConfig)
    label_map: dict[int, int] | None = Field(None, description="source label value -> class id; None keeps them")
    classes: tuple[ClassSpec, ...] = (ClassSpec(id=0, name="background"), ClassSpec(id=1, name="foreground"))
    spacing_policy: SpacingPolicy = Field(
        "mm_if_all_known", description="distances in mm when every case has a spacing, else all in pixels"
    )
    recipe: Recipe | None = Field(None, description="how the model was trained, when a planner chose it")
    postprocess: PostprocessConfig | None = Field(
        None, description="the post-processing chosen on the validation split after training (each step kept only "
        "where it raised the mean Dice); predict and evaluate apply it under the settings given explicitly")

    @model_validator(mode="after")
    def _check_classes(self) -> Plan:
        ids = [c.id for c in self.classes]
        if not ids or ids[0] != 0 or ids != sorted(set(ids)):
            raise ConfigError(f"plan classes must start with background 0 and have distinct ascending ids, got {ids}")
        if self.spatial_dims == 3 and (not self.is_3d or self.window_planes < 1 or self.context_slices):
            raise ConfigError("a 3D network's plan needs volumes, a window of planes and no 2.5D context")
        if self.in_channels % (2 * self.context_slices + 1):
            raise ConfigError(f"a plan with {self.context_slices} neighbouring plane(s) on each side needs a multiple of "
                              f"{2 * self.context_slices + 1} input channels, not {self.in_channels}")
        roles = [c.role for c in self.classes if c.role]
        if len(roles) != len(set(roles)):
            raise ConfigError(f"two classes of the plan claim the same role: {roles}")
        return self

    @property
    def foreground(self) -> tuple[ClassSpec, ...]:
        return tuple(c for c in self.classes if c.id != 0)

    @property
    def out_channels(self) -> int:
        """1 output channel (sigmoid) for one foreground class, K+1 (softmax) for K classes."""
        return 1 if len(self.foreground) <= 1 else len(self.foreground) + 1

    @property
    def binary(self) -> bool:
        return self.out_channels == 1

    @property
    def class_names(self) -> dict[int, str]:
        """Foreground class id -> name."""
        return {c.id: c.name for c in self.foreground}

    def class_of_role(self, role: Role) -> int | None:
        """The class id of a structure, or None when the plan has no class with that role."""
        return next((c.id for c in self.foreground if c.role == role), None)

    def plane_spacing(self, spacing: tuple[float, ...] | None) -> tuple[float, ...] | None:
        """A 2D source image's spacing (row, column) after the plan's orientation fix."""
        return spacing if self.is_3d else oriented_spacing(spacing, self.orientation)

    def same_task(self, other: Plan) -> bool:
        """Whether two plans label the same classes from the same source values (for ensembles, evaluation)."""
        return self.label_map == other.label_map and [c.id for c in self.classes] == [c.id for c in other.classes]

    def describe(self) -> list[tuple[str, str]]:
        """(setting, value) rows for `cardioseg plan show`."""
        pre = self.preprocess
        steps = ["orientation " + self.orientation if not self.is_3d else "no orientation fix (volume)"]
        if pre.median_filter > 1:
            steps.append(f"median filter {pre.median_filter}x{pre.median_filter}")
        if pre.clahe:
            steps.append(f"CLAHE clip {pre.clahe_clip_limit}, {pre.clahe_tile_grid}x{pre.clahe_tile_grid} tiles")
        norm = pre.normalize + (f" {pre.percentiles[0]:g}-{pre.percentiles[1]:g} %" if pre.normalize == "percentile" else "")
        steps.append(f"normalise {norm}")
        if pre.crop != "none":
            detail = {"center": f" {pre.crop_pixels} px" if pre.crop_pixels else f" {pre.crop_fraction:g}",
                      "roi": " window " + ",".join(f"{v:g}" for v in pre.roi_window),
                      "foreground": f" (two-stage: the first stage's box + {pre.foreground_margin:g} each side)",
                      }.get(pre.crop, "")
            steps.append(f"crop {pre.crop}{detail}")
        steps.append(f"resize to {pre.size[0]}x{pre.size[1]}")
        classes = ", ".join(f"{c.id} {c.name}" + (f" ({ROLE_NAMES[c.role]})" if c.role else "") for c in self.classes)
        mapping = ", ".join(f"{k}->{v}" for k, v in sorted(self.label_map.items())) if self.label_map else "as stored"
        return [
            ("plan", f"{self.format} v{self.version}"),
            ("layout", self.layout),
            ("data", f"3D volumes, sliced along axis {self.slice_axis}" if self.is_3d else "2D images"),
            ("input", f"{self.in_channels} channel(s), {pre.size[0]}x{pre.size[1]}"
                      + (f" (2.5D: each plane with {self.context_slices} neighbour(s) on each side)"
                         if self.context_slices else "")
                      + (f" x {self.window_planes} planes (3D network, sliding window)" if self.spatial_dims == 3
                         else "")),
            ("preprocessing", " -> ".join(steps)),
            ("label map", mapping),
            ("classes", classes),
            ("output", f"{self.out_channels} channel(s), {'sigmoid' if self.binary else 'softmax'}"),
            ("distances", "mm when every case has a spacing, else pixels" if self.spacing_policy == "mm_if_all_known"
             else "pixels"),
            *([] if self.postprocess is None else [("post-processing", describe_postprocess(self.postprocess)
                                                    + " (chosen on the validation split)")]),
            *([] if self.recipe is None else [("recipe", f"planned for {self.recipe.budget_s:g} s on "
                                                         f"{self.recipe.machine or 'an unnamed CPU'}")]
              + [(key, f"{value}  ({why})" if why else value) for key, value, why in self.recipe.rows()]),
        ]


def describe_postprocess(post: PostprocessConfig) -> str:
    """The steps a post-processing configuration applies, in words."""
    steps = [f"closing radius {post.closing_radius}"] if post.closing_radius else []
    steps += ["fill holes"] * post.fill_holes + ["largest component"] * post.largest_component
    if post.min_slice_area or post.max_slice_fill < 1:
        steps.append("empty-slice suppression")
    return ", ".join(steps) or "none"


def oriented_spacing(spacing: tuple[float, ...] | None, orientation: str) -> tuple[float, ...] | None:
    """A 2D image's spacing (row, column) after an orientation fix: a transpose swaps the two."""
    if spacing is None or orientation == "none":
        return spacing
    return (spacing[1], spacing[0], *spacing[2:])


def plan_from_legacy_header(header: dict[str, Any]) -> Plan:
    """A plan for a checkpoint header v1 (before plans): its loose fields, gathered.

    v1 headers hold ``preprocess``, ``orientation_fix``, ``labels`` (source -> class),
    ``class_names`` ({id: name}, background included) and ``extra.slice_axis`` / ``extra.layout``.
    Roles were not recorded; CAMUS layouts get the CAMUS roles of the source labels they map.
    """
    from cardioseg.anatomy import CAMUS_LABELS

    extra = header.get("extra") or {}
    labels = {int(k): int(v) for k, v in (header.get("labels") or {}).items()} or None
    names = {int(k): str(v) for k, v in (header.get("class_names") or {}).items()}
    n_channels = int(header["model"]["classes"])
    ids = [0, 1] if n_channels == 1 else list(range(n_channels))
    layout = str(extra.get("layout") or "folders")
    roles: dict[int, Role] = {}
    if layout in ("camus", "camus_png"):
        for source, role in CAMUS_LABELS.items():
            target = (labels or {source: source}).get(source)
            if target and sum(1 for t in (labels or {}).values() if t == target) <= 1:
                roles[target] = role
    classes = tuple(
        ClassSpec(id=i, name="background" if i == 0 else names.get(i, f"class{i}"), role=roles.get(i)) for i in ids
    )
    return Plan(
        layout=layout,
        is_3d=layout == "msd",
        slice_axis=int(extra.get("slice_axis", 2)),
        orientation=header.get("orientation_fix", "none"),
        preprocess=PreprocessConfig.model_validate(header["preprocess"]),
        label_map=labels,
        classes=classes,
    )
