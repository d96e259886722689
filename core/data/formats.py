"""Standard annotation formats: COCO Keypoints JSON, dlib imglab XML, iBUG-style .pts and
Kaggle CSV, written from a dataset and (the first three) read back.

Keypoint sets. A dataset's K points in its set's order (facekp.core.data.keypoint_sets):
COCO's category lists the set's names and its skeleton (the set's edges, 1-based), and a set
other than kaggle15 is also written whole as ``facekp_keypoint_set`` in the category (COCO
tools ignore it), so the file reads back into the same set; dlib parts are named ``00``-``67``
for ibug68 (as dlib's own 68-point files) and by the points' names for every other set; .pts
holds K points. Kaggle CSV holds kaggle15 only (another set is refused, naming the formats
that fit). A kaggle15 export is what it was before sets travelled, byte for byte.

Reading back (:func:`read_coco`, :func:`read_dlib`, :func:`read_pts_folder`), each face comes
with the set its points are in: the set asked for (``keypoint_set``; ``facekp import
--keypoints``) when the file names its points (COCO, dlib) or holds its count (.pts); else the
set a COCO category carries or whose names it lists; kaggle15 for Kaggle's names (dlib) or 15
points (.pts); ibug68 for 68 points (COCO by position, dlib parts 00-67, .pts). A set of one's
own that the file does not carry needs ``keypoint_set``; a point count that fits no set is one
line naming the file and both counts.

Coordinates. Ours are pixels of the 96x96 crop with integer values at pixel *centres*
(facekp.core.data.keypoints). COCO keypoints (as detectron2 and the COCO tools read them) and dlib
parts use the same convention, so they are written unchanged: COCO as floats, dlib as the integers
its ``point`` holds (rounded, so up to 0.5 px is lost). iBUG .pts files are 1-based (the centre of
the first pixel is 1, 1): 1 is added on export and subtracted on import.

Missing keypoints: COCO writes ``0, 0, 0`` (visibility 0; labelled points have visibility 2,
labelled points marked hidden (occluded) visibility 1, as COCO defines it), dlib leaves the part
out, .pts writes ``nan nan``. Reading any of them gives NaN. dlib XML and .pts have no place
for a hidden point: they write it as a labelled one (export says how many).

Images. Each face's 96x96 crop is written as a PNG. COCO: ``file_name`` is the bare PNG name
and the PNGs lie in the folder ``<json stem>_images`` beside the JSON (as COCO's own
annotations/ and val2017/). dlib: ``file`` is the path relative to the XML (as imglab
resolves it), into ``<xml stem>_images``. .pts: ``--out`` is a folder holding
``000001.png`` and ``000001.pts`` for each face.

A folder is written under a temporary name and renamed into place when complete; an existing
non-empty folder is never mixed into: it is replaced only with ``overwrite`` and only when an
export wrote it. Files are written atomically and replaced only with ``overwrite``
(facekp.core.fileio).
"""
from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facekp.core.data.dataset import Dataset
from facekp.core.data.kaggle_csv import write_kaggle_csv
from facekp.core.data.keypoint_sets import IBUG68, KAGGLE15, KeypointSet, from_dict
from facekp.core.errors import DataError
from facekp.core.fileio import (atomic_folder, atomic_path, check_input_file, check_output,
                                check_output_folder)
from facekp.core.data.keypoints import IMAGE_SIZE, NAMES

FORMATS = ("coco", "dlib", "pts", "csv")
CATEGORY = "face"
#: The key of a COCO category that carries a set other than kaggle15 (its JSON form).
SET_KEY = "facekp_keypoint_set"


def skeleton(keypoint_set: KeypointSet) -> list[list[int]]:
    """COCO's skeleton of a set: its edges as pairs of 1-based keypoint indices."""
    return [[keypoint_set.index(a) + 1, keypoint_set.index(b) + 1]
            for a, b in keypoint_set.edges]


#: Lines drawn between kaggle15's keypoints (COCO's skeleton, 1-based keypoint indices).
SKELETON_NAMES = KAGGLE15.edges
SKELETON = skeleton(KAGGLE15)
VISIBLE = 2
#: COCO's visibility of a point labelled but not visible (occluded)
HIDDEN = 1
#: The names of the files an export writes into its folder (:func:`png_names`, .pts).
EXPORT_FILE = re.compile(r"\d{6}\.(png|pts)")

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


# --- export -------------------------------------------------------------------------------

def export(dataset: Dataset, fmt: str, out: str | Path, overwrite: bool = False) -> list[Path]:
    """Write ``dataset`` to ``out`` in format ``fmt`` (one of :data:`FORMATS`); return the
    paths written (a file, and the folder of images where the format has one). Existing
    outputs are replaced only with ``overwrite`` (:func:`check_outputs`)."""
    out = Path(out)
    check_outputs(fmt, out, overwrite)
    if fmt == "csv":
        return [write_kaggle_csv(dataset, out, layout="training")]
    if fmt == "coco":
        return write_coco(dataset, out)
    if fmt == "dlib":
        return write_dlib(dataset, out)
    return [write_pts(dataset, out)]


def check_outputs(fmt: str, out: Path, overwrite: bool = False) -> None:
    """Before any work: the file and folder an export of ``fmt`` writes may be written. An
    existing file is replaced only with ``overwrite``; so is an existing folder, and only one
    an export wrote (:func:`is_export_folder`); a device or pipe never (facekp.core.fileio)."""
    if fmt not in FORMATS:
        raise DataError(out, f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if fmt != "pts":
        check_output(out, overwrite)
    if fmt in ("coco", "dlib", "pts"):
        check_output_folder(out if fmt == "pts" else images_folder(out), overwrite,
                            replaceable=is_export_folder, what="facekp export")


def is_export_folder(folder: Path) -> bool:
    """Whether ``folder`` holds only what an export writes there: ``NNNNNN.png`` (and
    ``NNNNNN.pts``) files, so replacing it loses nothing else."""
    return all(entry.is_file() and EXPORT_FILE.fullmatch(entry.name)
               for entry in folder.iterdir())


def images_folder(label_file: str | Path) -> Path:
    """The folder of PNG crops written beside a COCO JSON or dlib XML: ``<stem>_images``."""
    label_file = Path(label_file)
    return label_file.with_name(f"{label_file.stem}_images")


def png_names(dataset: Dataset) -> list[str]:
    """File names of the faces' PNG crops: their 1-based row number, 6 digits."""
    return [f"{i + 1:06d}.png" for i in range(len(dataset))]


def write_pngs(dataset: Dataset, folder: Path, names: list[str]) -> None:
    """Each face's crop as an 8-bit grayscale PNG ``folder/<name>``."""
    from PIL import Image

    for image, name in zip(dataset.images, names):
        Image.fromarray(image, mode="L").save(folder / name, format="PNG")


def coco_document(dataset: Dataset, names: list[str]) -> dict:
    """The COCO Keypoints JSON of ``dataset``: one image and one annotation per face, one
    category with the set's K keypoint names and skeleton (and, for a set other than kaggle15,
    the set itself). Each image also keeps the face's name, person and split (``facekp_*``),
    which COCO tools ignore."""
    ks = dataset.keypoint_set
    images, annotations = [], []
    for i, (kp, name) in enumerate(zip(dataset.keypoints, names)):
        pts = kp.reshape(ks.size, 2)
        flat: list[float] = []
        for k, (x, y) in enumerate(pts):
            flat += [0, 0, 0] if np.isnan(x) or np.isnan(y) else \
                [float(x), float(y), HIDDEN if dataset.hidden[i, k] else VISIBLE]
        images.append({"id": i + 1, "file_name": name, "width": IMAGE_SIZE,
                       "height": IMAGE_SIZE, "facekp_name": str(dataset.names[i]),
                       "facekp_person": str(dataset.persons[i]),
                       "facekp_split": str(dataset.splits[i])})
        annotations.append({"id": i + 1, "image_id": i + 1, "category_id": 1,
                            "keypoints": flat,
                            "num_keypoints": int(np.count_nonzero(flat[2::3])),
                            "bbox": [0, 0, IMAGE_SIZE, IMAGE_SIZE],
                            "area": IMAGE_SIZE * IMAGE_SIZE, "iscrowd": 0})
    category = {"id": 1, "name": CATEGORY, "supercategory": CATEGORY,
                "keypoints": list(ks.names), "skeleton": skeleton(ks)}
    if ks != KAGGLE15:
        category[SET_KEY] = ks.to_dict()
    return {"info": {"description": f"facekp export: 96x96 face crops, {ks.size} keypoints",
                     "version": "1.0"},
            "licenses": [], "images": images, "annotations": annotations,
            "categories": [category]}


def write_coco(dataset: Dataset, out: Path) -> list[Path]:
    """COCO JSON at ``out``, the PNG crops in :func:`images_folder` (``out``)."""
    names = png_names(dataset)
    folder = images_folder(out)
    text = json.dumps(coco_document(dataset, names))
    with atomic_path(out) as tmp_json, atomic_folder(folder) as tmp_dir:
        write_pngs(dataset, tmp_dir, names)
        tmp_json.write_text(text, encoding="utf-8")
    return [out, folder]


def part_names(keypoint_set: KeypointSet) -> list[str]:
    """The dlib part names of a set's points: ``00``-``67`` for ibug68 (dlib's own 68-point
    files), the points' names for every other set."""
    if keypoint_set == IBUG68:
        return [f"{i:02d}" for i in range(68)]
    return list(keypoint_set.names)


def dlib_document(dataset: Dataset, files: list[str]) -> ET.ElementTree:
    """dlib imglab XML: per face an image, a box round the whole crop and a part for each
    labelled keypoint (named by :func:`part_names`, integer pixel-centre coordinates)."""
    ks = dataset.keypoint_set
    root = ET.Element("dataset")
    ET.SubElement(root, "name").text = "facekp export"
    ET.SubElement(root, "comment").text = (f"96x96 face crops with {ks.size} keypoints; part "
                                           "coordinates are pixel centres")
    images = ET.SubElement(root, "images")
    parts = part_names(ks)
    for kp, file in zip(dataset.keypoints, files):
        box = ET.SubElement(ET.SubElement(images, "image", file=file), "box", top="0",
                            left="0", width=str(IMAGE_SIZE), height=str(IMAGE_SIZE))
        for name, (x, y) in zip(parts, kp.reshape(ks.size, 2)):
            if not (np.isnan(x) or np.isnan(y)):
                ET.SubElement(box, "part", name=name, x=str(int(round(float(x)))),
                              y=str(int(round(float(y)))))
    ET.indent(root)
    return ET.ElementTree(root)


def write_dlib(dataset: Dataset, out: Path) -> list[Path]:
    """dlib XML at ``out``, the PNG crops in :func:`images_folder` (``out``)."""
    names = png_names(dataset)
    folder = images_folder(out)
    tree = dlib_document(dataset, [f"{folder.name}/{n}" for n in names])
    with atomic_path(out) as tmp_xml, atomic_folder(folder) as tmp_dir:
        write_pngs(dataset, tmp_dir, names)
        tree.write(tmp_xml, encoding="utf-8", xml_declaration=True)
    return [out, folder]


def pts_text(keypoints: np.ndarray) -> str:
    """An iBUG-style .pts file of one face's K keypoints (2K values, x then y): 1-based,
    ``nan nan`` if missing."""
    points = np.asarray(keypoints, np.float64).reshape(-1, 2)
    lines = ["version: 1", f"n_points: {len(points)}", "{"]
    for x, y in points:
        lines.append("nan nan" if np.isnan(x) or np.isnan(y) else f"{x + 1:.4f} {y + 1:.4f}")
    return "\n".join(lines + ["}", ""])


def write_pts(dataset: Dataset, out: Path) -> Path:
    """A folder ``out`` holding ``NNNNNN.png`` and ``NNNNNN.pts`` for each face."""
    names = png_names(dataset)
    with atomic_folder(out) as tmp_dir:
        write_pngs(dataset, tmp_dir, names)
        for kp, name in zip(dataset.keypoints, names):
            (tmp_dir / name).with_suffix(".pts").write_text(pts_text(kp), encoding="utf-8")
    return out


# --- import -------------------------------------------------------------------------------

@dataclass
class LabelledFace:
    """One annotated face of a label file: its image, and its K points (K x 2, NaN = missing)
    in ``keypoint_set``'s order (68-point labels: ibug68, iBUG's order)."""
    path: Path
    name: str
    points: np.ndarray
    person: str = ""
    split: str = ""
    keypoint_set: KeypointSet = KAGGLE15
    #: K: labelled but hidden (COCO visibility 1); None: none is
    hidden: np.ndarray | None = None


def read_coco(path: str | Path, images: str | Path | None = None,
              keypoint_set: KeypointSet | None = None) -> list[LabelledFace]:
    """Faces of a COCO Keypoints JSON; ``file_name`` resolved under ``images`` (default: the
    JSON's folder). Visibility 0 gives NaN; the category's keypoint names say the set
    (:func:`_coco_layout`: ``keypoint_set`` when it names that set's points)."""
    path = check_input_file(path, "COCO keypoints JSON")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(path, f"not a JSON file ({exc})") from None
    if not isinstance(doc, dict) or not all(isinstance(doc.get(k), list) for k in
                                            ("images", "annotations", "categories")):
        raise DataError(path, "not a COCO keypoints file: expected 'images', 'annotations' "
                              "and 'categories' lists")
    layouts = {c.get("id"): _coco_layout(path, c, keypoint_set)
               for c in doc["categories"] if isinstance(c, dict) and c.get("keypoints")}
    if not layouts:
        raise DataError(path, "no category with 'keypoints' names: not a COCO keypoints file")
    by_id = {im.get("id"): im for im in doc["images"] if isinstance(im, dict)}
    faces = []
    for ann in doc["annotations"]:
        layout = layouts.get(ann.get("category_id"))
        if layout is None:
            continue
        im = by_id.get(ann.get("image_id"))
        if im is None or "file_name" not in im:
            raise DataError(path, f"annotation {ann.get('id')} names image "
                                  f"{ann.get('image_id')}, which is not in 'images'")
        source, order, count = layout
        points, hidden = _coco_points(path, ann, order, count)
        name = str(im.get("facekp_name") or im["file_name"])
        faces.append(LabelledFace(_resolve(im["file_name"], images, path), name, points,
                                  str(im.get("facekp_person", "")), str(im.get("facekp_split", "")),
                                  source, hidden if hidden.any() else None))
    return faces


def _coco_layout(path: Path, category: dict, asked: KeypointSet | None
                 ) -> tuple[KeypointSet, list[int], int]:
    """(the set of a COCO category's points, for each of the set's points its index in the
    category's ``keypoints``, how many the category has): the first of ``asked``, the set the
    category carries (:data:`SET_KEY`), kaggle15 and ibug68 whose names it lists all of; else
    68 unnamed points as ibug68 (by position); a DataError when none fits."""
    names = category.get("keypoints")
    names = [str(n) for n in names] if isinstance(names, list) else []
    carried = (from_dict(category[SET_KEY], path) if category.get(SET_KEY) is not None
               else None)
    for candidate in (asked, carried, KAGGLE15, IBUG68):
        if candidate is not None and set(candidate.names) <= set(names):
            return candidate, [names.index(n) for n in candidate.names], len(names)
    if len(names) == 68:
        return IBUG68, list(range(68)), 68
    wanted = (f", nor the {asked.size} of keypoint set {asked.name!r}" if asked else
              "; a set of one's own: give its .json (--keypoints SET.json)")
    raise DataError(path, f"keypoints {names[:3]}... are neither the 15 names of kaggle15 "
                          f"({', '.join(NAMES[:2])}, ...) nor 68 iBUG points{wanted}")


def _coco_points(path: Path, ann: dict, layout: list[int], count: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """An annotation's (x, y, v) triples, one for each of the category's ``count`` keypoints
    -> (len(layout) x 2 points, NaN where v is 0; which are hidden, v = 1). A number too large for a float is infinite
    (a point outside any crop, made missing where the faces are taken in)."""
    values = ann.get("keypoints")
    numbers = [_number(v) for v in values] if isinstance(values, list) else []
    if len(numbers) != 3 * count or None in numbers:
        got = (f"{values[numbers.index(None)]!r}, not a number" if None in numbers else
               f"{len(values)} numbers" if isinstance(values, list) else repr(values)[:40])
        raise DataError(path, f"annotation {ann.get('id')}: expected 'keypoints' to hold "
                              f"{3 * count} numbers, an x, y, v triple for each of the "
                              f"category's {count} keypoints; got {got}")
    triples = np.asarray(numbers, np.float64).reshape(-1, 3)
    pts = triples[layout, :2].copy()
    pts[triples[layout, 2] == 0] = np.nan
    return pts, triples[layout, 2] == HIDDEN


def _number(value) -> float | None:
    """A JSON number as a float (an integer too large for one: infinite, with its sign); None
    for anything that is not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return float(value)
    except OverflowError:
        return float("inf") if value > 0 else float("-inf")


def _resolve(name: str, images: str | Path | None, label_file: Path) -> Path:
    """An image name of a label file: under ``images`` when given and there, else relative
    to the label file's folder (as dlib resolves it)."""
    name = str(name)
    if images is not None and (Path(images) / name).exists():
        return Path(images) / name
    return label_file.parent / name


def read_dlib(path: str | Path, images: str | Path | None = None,
              keypoint_set: KeypointSet | None = None) -> list[LabelledFace]:
    """Faces (boxes) of a dlib imglab XML. Parts named 00-67 give ibug68's points; parts
    named by ``keypoint_set``'s names give that set's, by kaggle15's names kaggle15's
    (:func:`_dlib_points`). Parts left out are NaN."""
    path = check_input_file(path, "dlib XML")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise DataError(path, f"not an XML file ({exc})") from None
    if root.tag != "dataset" or root.find("images") is None:
        raise DataError(path, "not a dlib imglab XML: expected <dataset><images><image ...>")
    faces = []
    for image in root.find("images").iter("image"):
        if "file" not in image.attrib:
            raise DataError(path, "an <image> has no file attribute")
        for k, box in enumerate(image.iter("box")):
            parts = {p.get("name", ""): (p.get("x"), p.get("y")) for p in box.iter("part")}
            if not parts or box.get("ignore") == "1":
                continue
            name = image.get("file") + (f"#{k + 1}" if k else "")
            points, source = _dlib_points(path, parts, keypoint_set)
            faces.append(LabelledFace(_resolve(image.get("file"), images, path), name,
                                      points, keypoint_set=source))
    return faces


def _dlib_points(path: Path, parts: dict, asked: KeypointSet | None = None
                 ) -> tuple[np.ndarray, KeypointSet]:
    """Parts {name: (x, y)} -> (K x 2 points, their set): 00-67 ibug68; names all of one set,
    ``asked`` (when given) before kaggle15."""
    numbered = all(n.isdigit() for n in parts)
    sets = [s for s in (asked, KAGGLE15) if s is not None and s != IBUG68]
    source = IBUG68 if numbered else next((s for s in sets if set(parts) <= set(s.names)), None)
    if source is None:
        bad = next(n for n in parts if n not in sets[0].names)
        if bad.isdigit():
            named = next(n for n in parts if not n.isdigit())
            raise DataError(path, f"a box mixes numbered parts ({bad!r}, iBUG's 00-67) with "
                                  f"named ones ({named!r}); expected one kind in each box")
        wanted = (f"the names of keypoint set {asked.name!r} ({asked.names[0]}, ...), "
                  if asked is not None and asked not in (KAGGLE15, IBUG68) else "")
        own = "" if wanted else "; a set of one's own: give its .json (--keypoints SET.json)"
        raise DataError(path, f"part name {bad!r}: expected {wanted}the 15 keypoint names "
                              f"({NAMES[0]}, ...) or 00-67{own}")
    pts = np.full((source.size, 2), np.nan)
    for name, (x, y) in parts.items():
        i = int(name) if numbered else source.index(name)
        if i >= len(pts):
            raise DataError(path, f"part name {name!r}: expected 00-67")
        try:
            pts[i] = float(x), float(y)
        except (TypeError, ValueError):
            raise DataError(path, f"part {name!r}: x and y must be numbers, got {x!r}, "
                                  f"{y!r}") from None
    return pts, source


def pts_counts(asked: KeypointSet | None = None) -> dict[int, KeypointSet]:
    """The point counts a .pts file may hold and the set each says: ``asked``'s K (when
    given), 15 (kaggle15) and 68 (ibug68), the first set of a count winning."""
    counts: dict[int, KeypointSet] = {}
    for s in (asked, KAGGLE15, IBUG68):
        if s is not None:
            counts.setdefault(s.size, s)
    return counts


def read_pts_set(path: str | Path, asked: KeypointSet | None = None
                 ) -> tuple[np.ndarray, KeypointSet]:
    """An iBUG .pts file -> (K x 2 points, their set by the count: :func:`pts_counts`). A
    count that fits none is a DataError naming the file, its count and the counts that fit."""
    counts = pts_counts(asked)
    said = [f"{n} ({s.name})" for n, s in counts.items()]
    own = ("" if asked not in (None, KAGGLE15, IBUG68)
           else "; a set of one's own: give its .json (--keypoints SET.json)")
    points = read_pts(path, tuple(counts),
                      expected=", ".join(said[:-1]) + " or " + said[-1] + own)
    return points, counts[len(points)]


def read_pts(path: str | Path, counts: tuple[int, ...] = (68,),
             expected: str | None = None) -> np.ndarray:
    """An iBUG .pts file -> n x 2 points, n one of ``counts`` (``expected``: how the error of
    another count says them). iBUG files are 1-based: 1 is subtracted. A point written
    ``nan nan`` (a missing one, as facekp export writes) is NaN."""
    path = check_input_file(path, ".pts file")
    numbers = " or ".join(str(n) for n in counts)
    text = path.read_text(encoding="utf-8", errors="replace").split("{", 1)
    if len(text) != 2 or "}" not in text[1]:
        raise DataError(path, f"not an iBUG .pts file: expected 'n_points: {numbers}' and "
                              "points between { and }")
    body = text[1].split("}", 1)[0].split()
    try:
        pts = np.array([float(v) for v in body], dtype=np.float64)
    except ValueError:
        raise DataError(path, "points must be numbers") from None
    if pts.size % 2 or pts.size // 2 not in counts:
        raise DataError(path, f"holds {pts.size / 2:g} points, expected {expected or numbers}")
    return pts.reshape(-1, 2) - 1.0


def pts_beside_images(images: str | Path) -> list[tuple[Path, Path]]:
    """(.pts file, image) pairs in a folder (recursively): each .pts with an image of the same
    name beside it. DataError when the folder is missing or holds none."""
    images = Path(images)
    if not images.is_dir():
        raise DataError(images, "is not a directory of images")
    out = []
    for pts in sorted(images.rglob("*.pts")):
        img = next((pts.with_suffix(s) for s in IMAGE_SUFFIXES if pts.with_suffix(s).exists()),
                   None)
        if img is not None:
            out.append((pts, img))
    if not out:
        raise DataError(images, "no images with iBUG .pts files beside them")
    return out


def read_pts_folder(folder: str | Path, keypoint_set: KeypointSet | None = None
                    ) -> list[LabelledFace]:
    """The .pts files in a folder (recursively) with an image beside them, each in the set
    its point count says (:func:`read_pts_set`)."""
    faces = []
    for pts, img in pts_beside_images(folder):
        points, source = read_pts_set(pts, keypoint_set)
        faces.append(LabelledFace(img, str(img.relative_to(folder)), points,
                                  keypoint_set=source))
    return faces


def load_crop(path: Path, keypoint_set: KeypointSet = KAGGLE15) -> np.ndarray:
    """A 96x96 face crop image -> uint8 grayscale; a DataError naming it if it is not one
    (``keypoint_set``: the labels' set, named in that error)."""
    from PIL import Image, UnidentifiedImageError

    check_input_file(path, "image file")
    try:
        with Image.open(path) as im:
            if im.size != (IMAGE_SIZE, IMAGE_SIZE):
                raise DataError(path, f"is {im.size[0]}x{im.size[1]} px; faces with "
                                      f"{keypoint_set.name}'s {keypoint_set.size} keypoints are "
                                      "read as 96x96 face crops (as facekp export writes them); "
                                      "photos need 68-point labels")
            return np.array(im.convert("L"))
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(path, f"not an image file Pillow can read ({exc})") from None


def is_crop(path: Path) -> bool | None:
    """Whether an image is a 96x96 face crop (as facekp export writes them); None when it
    cannot be read (the importer says so where it reads it)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size == (IMAGE_SIZE, IMAGE_SIZE)
    except (OSError, ValueError):
        return None
