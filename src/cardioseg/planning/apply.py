"""From a recipe to a training configuration: what the user set stays, the recipe fills the rest.

The recipe's input (size, crop, normalisation) may differ from what the dataset was prepared with; the
dataset is then prepared again from its source with the planned preprocessing, once, into
``PREPARED/planned/<digest>`` (a cache: preparing the parent again replaces it).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from cardioseg.artifacts import PreparedFiles
from cardioseg.config import Config, PreprocessConfig, load_config, parse_duration, set_dotted
from cardioseg.data.prepare import prepare_dataset
from cardioseg.data.prepared import PreparedDataset
from cardioseg.errors import ConfigError, DataError
from cardioseg.fileio import write_json
from cardioseg.plan import Recipe
from cardioseg.planning.planner import plan_recipe

DEFAULT_BUDGET = "10m"
"""what `cardioseg train` plans for when no --time-budget is given"""


def explicit_settings(cfg: BaseModel, prefix: str = "") -> dict[str, Any]:
    """Every setting given explicitly (in a YAML file, with --set or a flag), by dotted key."""
    found: dict[str, Any] = {}
    for name in cfg.model_fields_set:
        value = getattr(cfg, name)
        if isinstance(value, BaseModel):
            found.update(explicit_settings(value, f"{prefix}{name}."))
        else:
            found[f"{prefix}{name}"] = value
    return found


def read_recipe(path: Path) -> Recipe:
    try:
        return Recipe.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValidationError, ValueError) as exc:
        raise ConfigError(f"not a readable recipe ({str(exc).splitlines()[0][:200]}); plan again with "
                          "`cardioseg plan make --overwrite`", path) from None


def write_recipe(recipe: Recipe, path: Path) -> Path:
    return write_json(path, recipe.model_dump(mode="json"))


def _budget_s(cfg: Config) -> float:
    return parse_duration(cfg.train.time_budget or DEFAULT_BUDGET)


def recipe_for(cfg: Config) -> Recipe:
    """The recipe for ``cfg``'s prepared dataset and budget: the one `plan make` wrote for the same budget
    (which may have been edited by hand), else one planned now."""
    stored = PreparedFiles(Path(cfg.data.prepared)).recipe
    if stored.is_file():
        recipe = read_recipe(stored)
        if abs(recipe.budget_s - _budget_s(cfg)) < 1e-6:
            return recipe
    return plan_for(cfg)


def plan_for(cfg: Config) -> Recipe:
    """A recipe planned now for ``cfg``'s prepared dataset and budget, around the settings it gives explicitly."""
    prepared = PreparedDataset(cfg.data.prepared)
    as_prepared = prepared.plan.preprocess.model_dump()
    fixed = {k: v for k, v in explicit_settings(cfg).items()
             if k.startswith("model.") or
             k in ("train.batch_size", "train.precision", "train.epochs", "train.batches_per_epoch") or
             # a preprocessing setting is a choice for training only where it differs from what prepare used (a
             # project's YAML file names the ones prepare read)
             (k.startswith("preprocess.") and _differs(v, as_prepared[k.split(".", 1)[1]]))}
    return plan_recipe(prepared, _budget_s(cfg), fixed)


def _differs(given: Any, prepared: Any) -> bool:
    """Whether a setting from a YAML file or --set differs from the prepared value (lists and tuples alike)."""
    return _plain(given) != _plain(prepared)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple | list) else value


def planned_prepared(prepared: PreparedDataset, pre: PreprocessConfig, progress: bool = False) -> PreparedDataset:
    """``prepared`` itself when it already has the planned preprocessing, else its re-preparation with it."""
    if prepared.plan.preprocess == pre:
        return prepared
    digest = hashlib.sha256(json.dumps(pre.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:12]
    target = prepared.files.planned / digest
    if PreparedFiles.is_prepared(target):
        return PreparedDataset(target)
    if not prepared.files.config.is_file():
        raise DataError("the recipe's input differs from this prepared dataset's and its config.yaml (which names "
                        "the source to prepare again from) is missing; prepare it again, or train with --no-plan",
                        prepared.root)
    base = load_config(prepared.files.config)
    if base.data.source is None or not Path(base.data.source).exists():
        raise DataError(f"the recipe asks for input {pre.size[0]}x{pre.size[1]}, crop {pre.crop}, and this dataset "
                        f"was prepared otherwise; its source {base.data.source} is gone, so it cannot be prepared "
                        "again: prepare with those settings yourself, or train with --no-plan", prepared.root)
    cfg = base.model_copy(deep=True)
    cfg.preprocess = pre
    cfg.data.prepared = target
    prepare_dataset(cfg, progress=progress)
    return PreparedDataset(target)


def apply_recipe(cfg: Config, recipe: Recipe, progress: bool = False) -> Config:
    """``cfg`` with every setting it does not give explicitly taken from ``recipe``, on the dataset prepared
    with the recipe's input."""
    given = explicit_settings(cfg)
    tree = json.loads(cfg.model_dump_json())
    for key, value in recipe.settings.items():
        if key not in given:
            set_dotted(tree, key, value)
    prepared = planned_prepared(PreparedDataset(cfg.data.prepared), recipe.preprocess, progress)
    tree["data"]["prepared"] = str(prepared.root)
    tree["preprocess"] = PreprocessConfig().model_dump(mode="json")  # the plan of the prepared data holds it
    return Config.model_validate(tree)

