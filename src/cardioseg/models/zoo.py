"""Ready-trained models shipped in the package, used by name where a model file is expected.

A clinician can segment an echo or an MRI on a fresh install without training first (as TotalSegmentator's
users do): ``cardioseg predict -m echo-lv image.png``. Each model lives in ``cardioseg/zoo/<name>/``
(``artifacts.ZooFiles``): its checkpoint, with its plan, in half precision (loaded as float32: the
masks were checked to agree with the float32 ones when it was built); a card saying what it segments,
the data it learnt from, the recipe it was trained with and its validation figures; and the licence
of that data, whose terms bind the weights too. ``benchmarks/build_zoo.py`` builds them from the
shared data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from cardioseg.artifacts import ZooFiles
from cardioseg.errors import CheckpointError

ZOO_DIR = Path(__file__).resolve().parents[1] / "zoo"


@dataclass(frozen=True)
class Pretrained:
    name: str
    files: ZooFiles
    card: dict[str, Any]

    @property
    def summary(self) -> str:
        """One line for `cardioseg models --pretrained`: the task, the data, the validation Dice."""
        figures = self.card.get("validation", {})
        dice = ", ".join(f"{name} {value:.3f}" for name, value in figures.get("dice", {}).items())
        return f"{self.card.get('task', '')}; {self.card.get('data', '')}; validation Dice {dice or 'n/a'}"


@cache
def pretrained_models() -> dict[str, Pretrained]:
    """Every model in the package's zoo, by name."""
    found: dict[str, Pretrained] = {}
    for folder in sorted(ZOO_DIR.iterdir()) if ZOO_DIR.is_dir() else []:
        files = ZooFiles(folder)
        if files.model.is_file() and files.card.is_file():
            try:
                card = json.loads(files.card.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise CheckpointError(f"unreadable model card ({exc})", files.card) from None
            found[folder.name] = Pretrained(folder.name, files, card)
    return found


def resolve_model(value: str | Path, bare_names: bool = True) -> Path:
    """A model file as given, or the file of a ready-trained model named by ``value`` (an existing path wins).

    With ``bare_names``, a bare name (no folder, no suffix) that is neither is refused with the names there are;
    otherwise (and for any other missing path) it is left for the reader to report."""
    path = Path(value)
    zoo = pretrained_models()
    if path.exists():
        return path
    if str(value) in zoo:
        return zoo[str(value)].files.model
    if bare_names and len(path.parts) == 1 and not path.suffix:
        raise CheckpointError(f"no model file and no ready-trained model named {str(value)!r}; the ready-trained "
                              f"ones: {', '.join(zoo) or 'none installed'} (`cardioseg models --pretrained`)")
    return path
