"""One palette for every picture the project draws: a colour per class, a line style per source.

A class keeps its colour in overlays, videos, the 3D view and the report's legend, so a 3-class
echo (LV cavity, myocardium, left atrium) reads the same everywhere. Which mask a contour comes
from is told by its style, not its colour: the reference is a solid line, the prediction a dashed
one (coloured dashes with dark gaps, so it stays visible on top of a coinciding reference line and
apart from it in greyscale print). The hues are bright, so they stand out on dark echo and MRI.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

RGB = tuple[int, int, int]

CLASS_COLOURS: tuple[RGB, ...] = (
    (255, 80, 80),    # class 1, e.g. the LV cavity: red
    (60, 170, 255),   # class 2, e.g. the myocardium: blue
    (255, 220, 0),    # class 3, e.g. the left atrium: yellow
    (0, 220, 140),    # green
    (230, 110, 255),  # violet
    (0, 230, 230),    # cyan
)
GAP_COLOUR: RGB = (0, 0, 0)  # between the dashes of a predicted contour
REFERENCE, PREDICTION = "reference", "prediction"
STYLE_KEY = "solid line = reference, dashed line = prediction"


def class_colour(class_id: int) -> RGB:
    """The colour of a class id (1, 2, ...); the palette repeats after its last colour."""
    return CLASS_COLOURS[(int(class_id) - 1) % len(CLASS_COLOURS)]


def hex_colour(class_id: int) -> str:
    """``#rrggbb`` of a class, for HTML and plotly."""
    return "#{:02x}{:02x}{:02x}".format(*class_colour(class_id))


def legend_names(class_names: Mapping[int, str] | None, present: Iterable[int] = ()) -> dict[int, str]:
    """Class id -> name for a legend: the plan's names, else "class k" for the classes drawn."""
    if class_names:
        return {int(k): str(v) for k, v in class_names.items()}
    return {int(k): f"class {k}" for k in sorted(set(present))}
