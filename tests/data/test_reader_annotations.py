"""LabelMe, COCO and CVAT polygon annotations read back as masks: real CAMUS outlines and hand-checked cases.

The real cases trace each class of a CAMUS reference mask with ``cv2.findContours``, write the
outlines in each tool's format and check the masks the readers paint against the originals. The
copies are renamed ``caseNNNN_...`` as a lab would name its own images; under their CAMUS names
(``patientNNNN_2CH_ED.png``) the annotation files decide the layout, as an images/ + masks/ pair does.
"""

from __future__ import annotations

import base64
import json
import shutil
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from cardioseg.cli import app
from cardioseg.config import DataConfig
from cardioseg.data.prepared import PreparedDataset
from cardioseg.data.readers import READERS, detect_layout
from cardioseg.data.readers.polygons import decode_rle
from cardioseg.errors import DataError

CAMUS_NAMES = {1: "LV endocardium", 2: "LV myocardium", 3: "left atrium"}  # sorted, they are ids 1, 2, 3 again
STEMS = ("patient0001_2CH_ED", "patient0001_4CH_ES", "patient0002_2CH_ES")  # copied as case0001_2CH_ED...


def _outlines(mask: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """(label name, (N, 2) x, y outline) of every region of every class, largest first so nested ones win."""
    outlines = []
    for class_id, label in CAMUS_NAMES.items():
        contours, _ = cv2.findContours((mask == class_id).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        outlines += [(label, c[:, 0, :]) for c in contours if len(c) >= 3]  # 1-2 pixel resize specks have no area
    return sorted(outlines, key=lambda item: -cv2.contourArea(item[1]))


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float((a & b).sum()) / float(a.sum() + b.sum())


@pytest.fixture
def camus_copy(camus224: Path, tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """Three real CAMUS images copied to an empty folder, and their reference masks by stem."""
    folder = tmp_path / "src"
    folder.mkdir()
    masks = {}
    for stem in STEMS:
        lab_stem = stem.replace("patient", "case")
        shutil.copy(camus224 / "train" / f"{stem}.png", folder / f"{lab_stem}.png")
        masks[lab_stem] = np.array(Image.open(camus224 / "train" / f"{stem}_gt.png"))
    return folder, masks


def _check_against_references(root: Path, layout: str, masks: dict[str, np.ndarray]) -> None:
    assert detect_layout(root) == layout
    reader = READERS[layout]
    refs = reader.discover(root, DataConfig())
    assert sorted(ref.case_id for ref in refs) == sorted(masks)
    for ref in refs:
        case = reader.load(ref, DataConfig())
        assert dict(case.meta)["label_names"] == tuple(CAMUS_NAMES.items())
        assert case.patient_id == ref.case_id.split("_")[0] and (case.view, case.phase) == tuple(ref.case_id.split("_")[1:])
        reference = masks[ref.case_id]
        assert case.label is not None and case.label.shape == reference.shape == case.image.shape
        for class_id in CAMUS_NAMES:
            assert _dice(case.label == class_id, reference == class_id) > 0.97, (ref.case_id, class_id)


def _write_labelme(folder: Path, stem: str, shapes: list[dict[str, Any]], size: tuple[int, int], **extra: Any) -> Path:
    document = {"version": "5.4.1", "flags": {}, "shapes": shapes, "imagePath": f"{stem}.png", "imageData": None,
                "imageHeight": size[0], "imageWidth": size[1], **extra}
    path = folder / f"{stem}.json"
    path.write_text(json.dumps(document))
    return path


def _polygon(label: str, points: Any, shape_type: str = "polygon") -> dict[str, Any]:
    return {"label": label, "points": np.asarray(points, float).tolist(), "group_id": None,
            "shape_type": shape_type, "flags": {}}


def _write_coco(root: Path, masks: dict[str, np.ndarray]) -> Path:
    names = {name: n for n, name in enumerate(sorted(CAMUS_NAMES.values()), start=7)}  # COCO ids need not be 1..K
    images, annotations = [], []
    for image_id, (stem, mask) in enumerate(masks.items(), start=100):
        images.append({"id": image_id, "file_name": f"{stem}.png", "height": mask.shape[0], "width": mask.shape[1]})
        for label, outline in _outlines(mask):
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": names[label],
                                "segmentation": [outline.ravel().tolist()], "iscrowd": 0})
    (root / "annotations").mkdir()
    path = root / "annotations" / "instances_default.json"
    categories = [{"id": i, "name": n, "supercategory": ""} for n, i in names.items()]
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


def _write_cvat(root: Path, images: dict[str, tuple[tuple[int, int], list[ElementTree.Element]]]) -> Path:
    top = ElementTree.Element("annotations")
    ElementTree.SubElement(top, "version").text = "1.1"
    for n, (name, (size, shapes)) in enumerate(images.items()):
        image = ElementTree.SubElement(top, "image", id=str(n), name=name, width=str(size[1]), height=str(size[0]))
        image.extend(shapes)
    path = root / "annotations.xml"
    ElementTree.ElementTree(top).write(path, encoding="utf-8", xml_declaration=True)
    return path


def _cvat_polygon(label: str, points: Any, **attributes: str) -> ElementTree.Element:
    text = ";".join(f"{x},{y}" for x, y in points)
    return ElementTree.Element("polygon", label=label, points=text, occluded="0", z_order="0", **attributes)


# --- real CAMUS outlines, one per layout ---------------------------------------------------------------------

def test_labelme_outlines_of_real_camus_masks_read_back(camus_copy: tuple[Path, dict[str, np.ndarray]]) -> None:
    folder, masks = camus_copy
    for stem, mask in masks.items():
        _write_labelme(folder, stem, [_polygon(label, o) for label, o in _outlines(mask)], mask.shape)
    _check_against_references(folder, "labelme", masks)


def test_coco_outlines_of_real_camus_masks_read_back_and_prepare(
    camus_copy: tuple[Path, dict[str, np.ndarray]], tmp_path: Path
) -> None:
    folder, masks = camus_copy
    (folder / "images").mkdir()
    for stem in masks:
        (folder / f"{stem}.png").rename(folder / "images" / f"{stem}.png")
    _write_coco(folder, masks)
    _check_against_references(folder, "coco", masks)

    out = tmp_path / "prepared"
    result = CliRunner().invoke(app, ["prepare", "-s", str(folder), "-o", str(out), "--size", "64", "--quiet"])
    assert result.exit_code == 0, result.output
    prepared = PreparedDataset(out)
    assert prepared.plan.layout == "coco"
    assert prepared.class_names == {0: "background", **CAMUS_NAMES}
    roles = {c.name: c.role for c in prepared.plan.foreground}
    assert roles == {"LV endocardium": "lv_cavity", "LV myocardium": "lv_myocardium", "left atrium": "left_atrium"}
    for stem, mask in masks.items():
        assert _dice(prepared.original_label(stem) == 2, mask == 2) > 0.97


def test_cvat_outlines_of_real_camus_masks_read_back(camus_copy: tuple[Path, dict[str, np.ndarray]]) -> None:
    folder, masks = camus_copy
    (folder / "images").mkdir()
    shutil.move(folder / "case0001_2CH_ED.png", folder / "images" / "case0001_2CH_ED.png")  # images/ or beside the xml
    _write_cvat(folder, {f"{stem}.png": (mask.shape, [_cvat_polygon(label, o) for label, o in _outlines(mask)])
                         for stem, mask in masks.items()})
    _check_against_references(folder, "cvat", masks)


# --- hand-checked small cases --------------------------------------------------------------------------------

def _labelme_square(tmp_path: Path, shapes: list[dict[str, Any]], **extra: Any) -> tuple[Path, Path]:
    Image.fromarray(np.full((10, 10), 50, np.uint8)).save(tmp_path / "p1_4CH_ED.png")
    return tmp_path, _write_labelme(tmp_path, "p1_4CH_ED", shapes, (10, 10), **extra)


def _only_label(root: Path, layout: str, cfg: DataConfig | None = None) -> np.ndarray:
    reader = READERS[layout]
    (ref,) = reader.discover(root, cfg or DataConfig())
    label = reader.load(ref, cfg or DataConfig()).label
    assert label is not None
    return label


def test_a_square_paints_exactly_its_pixels_and_later_shapes_win(tmp_path: Path) -> None:
    # (x, y) = (column, row); the outline belongs to the square: rows 3..7, columns 2..6
    square = _polygon("b", [[2, 3], [6, 3], [6, 7], [2, 7]])
    box = _polygon("a", [[5, 0], [9, 4]], "rectangle")  # rows 0..4, columns 5..9, painted over the square
    root, _ = _labelme_square(tmp_path, [square, box])
    expected = np.zeros((10, 10), np.uint8)
    expected[3:8, 2:7] = 2  # "b" is class 2: names are numbered in sorted order
    expected[0:5, 5:10] = 1
    np.testing.assert_array_equal(_only_label(root, "labelme"), expected)


def test_class_names_set_the_ids_and_an_unlisted_label_is_named(tmp_path: Path) -> None:
    root, path = _labelme_square(tmp_path, [_polygon("LV", [[2, 3], [6, 3], [6, 7], [2, 7]])])
    label = _only_label(root, "labelme", DataConfig(class_names=["myocardium", "LV"]))
    assert set(np.unique(label)) == {0, 2} and (label == 2).sum() == 25
    with pytest.raises(DataError, match=r"'LV' not in data\.class_names") as error:
        READERS["labelme"].discover(root, DataConfig(class_names=["myocardium"]))
    assert error.value.path == path


def test_outside_coordinates_are_clipped_and_circles_filled(tmp_path: Path) -> None:
    far = _polygon("a", [[-1e12, 2], [5, 2], [5, 4], [-1e12, 4]])  # rows 2..4, columns 0..5
    circle = _polygon("b", [[5, 7], [7, 7]], "circle")  # radius 2 around column 5, row 7
    root, _ = _labelme_square(tmp_path, [far, circle])
    label = _only_label(root, "labelme")
    assert (label == 1).sum() == 18 and (label[2:5, 0:6] == 1).all()
    assert all(label[r, c] == 2 for r, c in [(7, 5), (5, 5), (9, 5), (7, 3), (7, 7), (6, 6)])
    assert all(label[r, c] == 0 for r, c in [(5, 3), (5, 7), (9, 3), (9, 7), (7, 8)])  # corners at 2.8 px and beyond


def test_an_embedded_image_is_used_when_the_file_is_absent(tmp_path: Path) -> None:
    root, path = _labelme_square(tmp_path, [_polygon("LV", [[2, 3], [6, 3], [6, 7], [2, 7]])])
    document = json.loads(path.read_text())
    document["imageData"] = base64.b64encode((root / "p1_4CH_ED.png").read_bytes()).decode()
    path.write_text(json.dumps(document))
    (root / "p1_4CH_ED.png").unlink()
    (ref,) = READERS["labelme"].discover(root, DataConfig())
    case = READERS["labelme"].load(ref, DataConfig())
    assert ref.image_path == path and (case.image == 50).all() and (case.label == 1).sum() == 25
    assert (case.patient_id, case.view, case.phase) == ("p1", "4CH", "ED")


def test_run_length_masks_decode_in_column_order() -> None:
    # size 3x3, runs of 2 background, 3 foreground, 4 background: flat (column-major) pixels 2, 3, 4
    expected = np.zeros((3, 3), bool)
    expected[2, 0] = expected[0, 1] = expected[1, 1] = True
    np.testing.assert_array_equal(decode_rle([2, 3, 4], [3, 3], Path("x.json"), "annotation 0"), expected)
    # pycocotools' compressed strings, encoded by hand: runs after the second are stored as deltas
    np.testing.assert_array_equal(decode_rle("234", [3, 3], Path("x.json"), "annotation 0"), expected)
    assert decode_rle("2310", [3, 3], Path("x.json"), "a").ravel(order="F").tolist() == [0, 0, 1, 1, 1, 0, 1, 1, 1]
    assert decode_rle("152L", [3, 3], Path("x.json"), "a").ravel(order="F").tolist() == [0, 1, 1, 1, 1, 1, 0, 0, 1]


def test_coco_rle_polygons_and_a_wrong_rle_size(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((3, 3), np.uint8)).save(tmp_path / "a.png")
    rle = {"id": 1, "image_id": 1, "category_id": 1, "segmentation": {"counts": [2, 3, 4], "size": [3, 3]}}
    document = {"images": [{"id": 1, "file_name": "a.png", "height": 3, "width": 3}], "annotations": [rle],
                "categories": [{"id": 1, "name": "LV"}]}
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(document))
    assert detect_layout(tmp_path) == "coco"
    assert _only_label(tmp_path, "coco").ravel(order="F").tolist() == [0, 0, 1, 1, 1, 0, 0, 0, 0]
    rle["segmentation"] = {"counts": [2, 3, 4], "size": [3, 4]}
    path.write_text(json.dumps(document))
    with pytest.raises(DataError, match=r"annotation 0 \(id 1\): run lengths add up to 9 pixels, not 3x4") as error:
        _only_label(tmp_path, "coco")
    assert error.value.path == path


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        (_polygon("LV", [[1, 1], [float("nan"), 2], [3, 3]]), r"shape 1: points hold NaN or infinite coordinates"),
        (_polygon("LV", [[1, 1], [5, 5]]), r"shape 1: polygon has 2 point\(s\), needs at least 3"),
        (_polygon("LV", [[1, 1], [5, 5]], "linestrip"), r"shape 1: unknown shape type 'linestrip'"),
        ({"label": "LV", "points": "1,2", "shape_type": "polygon"}, r"shape 1: points are not a list of \[x, y\]"),
        (_polygon("", [[1, 1], [5, 5], [1, 5]]), r"shape 1: shape has no label name"),
    ],
)
def test_bad_labelme_shapes_name_the_file_and_shape(tmp_path: Path, shape: dict[str, Any], message: str) -> None:
    root, path = _labelme_square(tmp_path, [_polygon("LV", [[2, 3], [6, 3], [6, 7], [2, 7]]), shape])
    with pytest.raises(DataError, match=message) as error:
        _only_label(root, "labelme")
    assert error.value.path == path


def test_a_declared_size_unlike_the_image_on_disk_is_named(tmp_path: Path) -> None:
    root, path = _labelme_square(tmp_path, [_polygon("LV", [[2, 3], [6, 3], [6, 7], [2, 7]])], imageWidth=12)
    with pytest.raises(DataError, match=r"declares an image of 10x12 .* p1_4CH_ED.png is 10x10") as error:
        _only_label(root, "labelme")
    assert error.value.path == path


def test_an_image_path_leading_outside_the_data_folder_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(tmp_path / "secret.png")
    path = _write_labelme(root, "a", [_polygon("LV", [[2, 3], [6, 3], [6, 7]])], (10, 10), imagePath="../secret.png")
    with pytest.raises(DataError, match="leads outside the data folder") as error:
        READERS["labelme"].discover(root, DataConfig())
    assert error.value.path == path


@pytest.mark.parametrize(
    ("shape", "size", "message"),
    [
        (_cvat_polygon("LV", [(1, 1), ("nan", 2), (3, 3)]), (10, 10), r"'a.png' shape 0: points hold NaN"),
        (_cvat_polygon("LV", [(1, 1), (3, 3)]), (10, 10), r"'a.png' shape 0: polygon has 2 point"),
        (ElementTree.Element("polyline", label="LV", points="1,1;3,3;5,1"), (10, 10), r"unknown shape type <polyline>"),
        (ElementTree.Element("box", label="LV", xtl="1", ytl="1", xbr="4", ybr="x"), (10, 10), r"'x' is not a number"),
        (_cvat_polygon("LV", [(1, 1), (3, 3), (1, 3)]), (12, 10), r"declares an image of 12x10"),
    ],
)
def test_bad_cvat_shapes_name_the_file(tmp_path: Path, shape: ElementTree.Element, size: tuple[int, int],
                                       message: str) -> None:
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(tmp_path / "a.png")
    path = _write_cvat(tmp_path, {"a.png": (size, [shape])})
    with pytest.raises(DataError, match=message) as error:
        _only_label(tmp_path, "cvat")
    assert error.value.path == path


def test_cvat_boxes_paint_in_z_order_and_a_doctype_is_refused(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(tmp_path / "a.png")
    top = ElementTree.Element("box", label="top", xtl="0", ytl="0", xbr="4", ybr="4", z_order="1")
    under = ElementTree.Element("box", label="under", xtl="2", ytl="2", xbr="6", ybr="6", z_order="0")
    path = _write_cvat(tmp_path, {"a.png": ((10, 10), [top, under])})  # "top" comes first in the file
    label = _only_label(tmp_path, "cvat")
    assert (label == 1).sum() == 25 and (label == 2).sum() == 25 - 9  # "under" loses the 3x3 overlap
    path.write_text('<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "y">]><annotations>&x;</annotations>')
    with pytest.raises(DataError, match="DOCTYPE") as error:
        READERS["cvat"].discover(tmp_path, DataConfig())
    assert error.value.path == path


def test_images_and_masks_folders_stay_the_folders_layout(tmp_path: Path) -> None:
    for folder in ("images", "masks", "annotations"):
        (tmp_path / folder).mkdir()
    (tmp_path / "annotations" / "instances.json").write_text('{"images": [], "annotations": [], "categories": []}')
    (tmp_path / "annotations.xml").write_text("<annotations/>")
    assert detect_layout(tmp_path) == "folders"


def test_annotations_decide_the_layout_against_camus_style_names(camus_copy: tuple[Path, dict[str, np.ndarray]]) -> None:
    folder, masks = camus_copy
    for stem, mask in masks.items():
        camus_stem = stem.replace("case", "patient")
        (folder / f"{stem}.png").rename(folder / f"{camus_stem}.png")
        _write_labelme(folder, camus_stem, [_polygon(label, o) for label, o in _outlines(mask)], mask.shape)
    assert READERS["camus_png"].looks_like(folder)  # the names alone would say CAMUS PNG
    _check_against_references(folder, "labelme", {s.replace("case", "patient"): m for s, m in masks.items()})
