"""Photos labelled with 68 landmarks -> 96x96 grayscale crops with the 15 Kaggle keypoints.

Two label layouts:
- a CSV as in ytf68: image file name, then 136 numbers x0,y0,...,x67,y67 (photo pixels);
- iBUG ``.pts`` files next to the images (``version``, ``n_points: 68``, ``{`` ... ``}``).

Framing is the app's own (facekp.core.faces.framing.crop_for_box): the face detector's box when it
finds the labelled face (the detection containing the labelled nose tip), else a detector-like box
made from the labelled points. The crop is never aligned to the labelled eyes. Keypoints that fall
outside the crop become NaN, never clipped.
"""
from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from facekp.core.faces import framing as faces
from facekp.core.data.dataset import SPLITS, Dataset, describe
from facekp.core.data.formats import (
    LabelledFace, is_crop, load_crop, pts_beside_images, read_coco, read_dlib, read_pts,
    read_pts_folder,
)
from facekp.core.data.keypoint_sets import (
    KAGGLE15, KeypointSet, derivable, derive_keypoints,
)
from facekp.core.data.keypoints import IMAGE_SIZE, NOSE_TIP_68, from_68, outside_crop
from facekp.core.errors import DataError
from facekp.core.fileio import check_input_file



@dataclass
class LabelledPhoto:
    path: Path
    name: str
    person: str
    points68: np.ndarray  # 68 x 2, photo pixels
    row: int | None = None  # 1-based row in the label CSV


@dataclass
class ImportReport:
    faces_in: int = 0
    faces_out: int = 0
    dropped: Counter = field(default_factory=Counter)
    framing: Counter = field(default_factory=Counter)
    keypoints_outside: int = 0
    faces_with_keypoint_outside: int = 0
    summary: dict | None = None

    def as_dict(self) -> dict:
        return {"faces_in": self.faces_in, "faces_out": self.faces_out,
                "faces_dropped": sum(self.dropped.values()), "dropped": dict(self.dropped),
                "framing": dict(self.framing), "keypoints_outside_crop": self.keypoints_outside,
                "faces_with_keypoint_outside_crop": self.faces_with_keypoint_outside,
                "summary": self.summary}

    def format(self) -> str:
        from facekp.core.data.dataset import format_description

        lines = [f"faces in: {self.faces_in}, faces out: {self.faces_out}, "
                 f"dropped: {sum(self.dropped.values())}"]
        for reason, n in sorted(self.dropped.items()):
            lines.append(f"  dropped {n}: {reason}")
        lines.append("framing: " + ", ".join(f"{k} {v}" for k, v in sorted(self.framing.items())))
        lines.append(f"keypoints outside the crop (set missing): {self.keypoints_outside} "
                     f"in {self.faces_with_keypoint_outside} faces")
        if self.summary:
            lines.append(format_description(self.summary))
        return "\n".join(lines)


def person_of(name: str) -> str:
    """'Firstname_Lastname_NN.jpg' -> 'Firstname_Lastname' (the part before the last '_')."""
    stem = Path(name).stem
    return stem.rsplit("_", 1)[0] if "_" in stem else stem


def read_labels_csv(labels: str | Path, images: str | Path) -> list[LabelledPhoto]:
    """Rows of a ytf68-style label CSV, with image paths resolved under ``images``."""
    labels = check_input_file(labels, "label CSV")
    images = Path(images)
    if not images.is_dir():
        raise DataError(images, "is not a directory of images")
    out = []
    try:
        with open(labels, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                raise DataError(labels, "file is empty")
            if len(header) != 137:
                raise DataError(labels, f"header has {len(header)} columns, expected 137: the "
                                        "image file name then x0,y0,...,x67,y67", row=1)
            for i, row in enumerate(reader, start=2):
                if not row or all(not c.strip() for c in row):
                    continue
                if len(row) != 137:
                    raise DataError(labels, f"has {len(row)} fields, expected 137 (name + 68 x, y)",
                                    row=i)
                name = row[0].strip()
                try:
                    pts = np.array([float(v) for v in row[1:]], dtype=np.float64)
                except ValueError:
                    bad = next(j for j, v in enumerate(row[1:]) if not _is_float(v))
                    raise DataError(labels, f"{row[bad + 1]!r} is not a number", row=i,
                                    column=header[bad + 1] or str(bad)) from None
                out.append(LabelledPhoto(images / name, name, person_of(name),
                                         pts.reshape(68, 2), row=i))
    except UnicodeDecodeError:
        raise DataError(labels, "not a CSV text file (not UTF-8 text)") from None
    return out


def _is_float(v: str) -> bool:
    try:
        float(v)
        return True
    except ValueError:
        return False


def find_pts_photos(images: str | Path) -> list[LabelledPhoto]:
    """Images in a folder (recursively) that have a .pts file beside them."""
    images = Path(images)
    return [LabelledPhoto(img, str(img.relative_to(images)), person_of(img.name), read_pts(pts))
            for pts, img in pts_beside_images(images)]


#: Keypoint pairs whose midpoints give a face's labelled midline (subject's left, right).
MIDLINE_PAIRS = (("left_eye_center", "right_eye_center"),
                 ("left_eye_inner_corner", "right_eye_inner_corner"),
                 ("left_eye_outer_corner", "right_eye_outer_corner"),
                 ("mouth_left_corner", "mouth_right_corner"))
#: Region of a crop whose mirror symmetry is measured (rows, columns): the inner face.
MIRROR_ROWS, MIRROR_COLS = slice(25, 85), slice(20, 76)
#: A face counts towards the estimate when its best mirror correlation reaches this.
MIRROR_MIN_CORRELATION = 0.6


def mirror_axes(images: np.ndarray, max_shift: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Each crop's axis of mirror symmetry (x, pixel-centre coordinates) and how well the
    mirrored face matches (normalised correlation of the inner face with its mirror image,
    best over the axis positions tried; sub-pixel by a parabola through the best three)."""
    x = np.asarray(images, np.float32)
    region = x[:, MIRROR_ROWS, MIRROR_COLS]
    a = region - region.mean(axis=(1, 2), keepdims=True)
    mirrored = x[:, :, ::-1]
    shifts = np.arange(-max_shift, max_shift + 1)
    scores = np.empty((len(x), len(shifts)), np.float64)
    c0, c1 = MIRROR_COLS.start, MIRROR_COLS.stop
    for j, s in enumerate(shifts):  # mirrored shifted by s: F(x + s) = I(95 - x - s)
        b = mirrored[:, MIRROR_ROWS, c0 + s:c1 + s]
        b = b - b.mean(axis=(1, 2), keepdims=True)
        den = np.sqrt((a * a).sum(axis=(1, 2)) * (b * b).sum(axis=(1, 2))) + 1e-9
        scores[:, j] = (a * b).sum(axis=(1, 2)) / den
    best = scores.argmax(axis=1).clip(1, len(shifts) - 2)
    rows = np.arange(len(x))
    y0, y1, y2 = scores[rows, best - 1], scores[rows, best], scores[rows, best + 1]
    den = y0 - 2 * y1 + y2
    sub = np.where(den < 0, 0.5 * (y0 - y2) / np.where(den < 0, den, -1), 0.0)
    s = shifts[best] + np.clip(sub, -0.5, 0.5)
    return (IMAGE_SIZE - 1 - s) / 2.0, y1


def label_mirror_offset(images: np.ndarray, keypoints: np.ndarray) -> dict:
    """How far (x, crop pixels) the labels' midline sits from the faces' mirror axis.

    For each face with all :data:`MIDLINE_PAIRS` labelled and a clear mirror symmetry, the
    mean of the pairs' midpoints minus the image's mirror axis; the median over faces is the
    offset. Labels made the way a horizontal flip assumes (pixel centres, x -> 95 - x) give
    about 0; a source that put its points to one side gives that side's offset, which flip
    augmentation turns into a left/right disagreement the model cannot learn.
    """
    from facekp.core.data.keypoints import NAMES

    kp = np.asarray(keypoints, np.float64).reshape(len(keypoints), -1, 2)
    mids = np.stack([(kp[:, NAMES.index(a), 0] + kp[:, NAMES.index(b), 0]) / 2
                     for a, b in MIDLINE_PAIRS], axis=1)
    usable = np.isfinite(mids).all(axis=1)
    if not usable.any():
        return {"offset_px": 0.0, "faces": 0, "sem_px": None}
    axes, score = mirror_axes(np.asarray(images)[usable])
    good = score >= MIRROR_MIN_CORRELATION
    diff = mids[usable].mean(axis=1)[good] - axes[good]
    if len(diff) < 2:
        return {"offset_px": 0.0, "faces": int(len(diff)), "sem_px": None}
    return {"offset_px": float(np.median(diff)), "faces": int(len(diff)),
            "sem_px": float(diff.std() / np.sqrt(len(diff)))}


def dataset_mirror_offset(dataset: Dataset) -> dict:
    """:func:`label_mirror_offset` of a dataset of any keypoint set, measured on its kaggle15
    points (derived: an ibug68 dataset's are means of its own); a DataError for a set that
    cannot give them."""
    try:
        view = dataset.in_set(KAGGLE15)
    except ValueError:
        raise DataError(None, f"the labels' offset from the faces' mirror axis is measured on "
                              f"kaggle15's points, which keypoint set {dataset.keypoint_set.name!r} "
                              "cannot give") from None
    return label_mirror_offset(view.images, view.keypoints)


def import_faces(photos: Iterable[LabelledPhoto], *, prefix: str = "",
                 progress: Callable[[int, int], None] | None = None,
                 detector: str | None = "mtcnn",
                 keypoint_set: KeypointSet = KAGGLE15) -> tuple[Dataset, ImportReport]:
    """Crop each labelled photo to the model's framing and map its 68 points to
    ``keypoint_set``'s (kaggle15: the 15; ibug68: all 68 as they are; a set of one's own: as
    its ``from_68`` says).

    ``detector``: "mtcnn" (framing from the detection's five points, as photos are framed),
    "haar" (framing from its box), or None (framing from the labelled points only)."""
    if keypoint_set.from_68 is None:
        raise DataError(None, f"keypoint set {keypoint_set.name!r} says nothing of the 68 iBUG "
                              "points (no from_68), so 68-point labels cannot import into it")
    mapping = keypoint_set.from_68_matrix()
    photos = list(photos)
    report = ImportReport(faces_in=len(photos))
    find = None
    if detector is not None:
        from facekp.core.faces.detect import make_detector

        find = make_detector(detector)
    images, keypoints, names, persons = [], [], [], []
    for i, photo in enumerate(photos):
        if progress is not None:
            progress(i, len(photos))
        face = _import_one(photo, find, report, mapping)
        if face is None:
            continue
        images.append(face[0])
        keypoints.append(face[1])
        names.append(prefix + photo.name)
        persons.append(photo.person)
    if progress is not None:
        progress(len(photos), len(photos))
    n = len(images)
    framing = ({"rule": "box", "crop_scale": faces.CROP_SCALE,
                "crop_shift_down": faces.CROP_SHIFT_DOWN} if detector == "haar" else
               {"rule": "five points", "crop_scale": faces.LANDMARK_CROP_SCALE,
                "shift_up": faces.LANDMARK_SHIFT_UP})
    dataset = Dataset.from_arrays(
        np.stack(images) if n else np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), np.uint8),
        np.stack(keypoints) if n else np.zeros((0, 2 * keypoint_set.size), np.float32),
        names=names, persons=persons,
        meta={"framing": {**framing, "detector": detector or "labelled points"}},
        keypoint_set=keypoint_set)
    report.faces_out = n
    report.summary = describe(dataset)
    return dataset, report


def _import_one(photo: LabelledPhoto, find, report: ImportReport, mapping: np.ndarray):
    """One labelled photo -> (96x96 crop, 2K keypoints) or None (counted in ``report``);
    ``mapping`` (K, 68) gives the set's points from the 68 (see :func:`import_faces`)."""
    if not photo.path.exists():
        report.dropped["image file not found"] += 1
        return None
    pts = photo.points68
    if not np.isfinite(pts).all():
        report.dropped["labels not finite"] += 1
        return None
    try:
        rgb = faces.load_photo(photo.path)
    except DataError:
        report.dropped["image unreadable"] += 1
        return None
    gray = faces.to_gray(rgb)
    crop = _framing(np.asarray(rgb), pts, find)
    report.framing["detector" if crop is not None else "labelled points"] += 1
    if crop is None:
        crop = (faces.crop_for_box(faces.box_from_points(pts)) if getattr(find, "name", "") == "haar"
                else faces.crop_for_points(from_68(pts)))
    kp = crop.to_crop(np.einsum("kj,jc->kc", mapping, pts))  # as keypoints.from_68 maps
    outside = outside_crop(kp)
    if outside.any():
        report.keypoints_outside += int(outside.sum())
        report.faces_with_keypoint_outside += 1
        kp[outside] = np.nan
    if outside.all():
        report.dropped["no keypoint inside the crop"] += 1
        return None
    return faces.crop_image(gray, crop), kp.reshape(-1).astype(np.float32)


def _framing(rgb: np.ndarray, pts: np.ndarray, find):
    """The detector's framing of the labelled face (the detection holding the labelled nose
    tip), or None when it finds no such face."""
    if find is None:
        return None
    nose = pts[NOSE_TIP_68]
    hits = [d for d in find.detect(rgb) if d.box.contains(*nose)]
    if not hits:
        return None
    if hits[0].points is not None:
        return faces.crop_for_landmarks(hits[0].points)
    return faces.crop_for_box(hits[0].box)


def recentre_labels(dataset: Dataset) -> tuple[Dataset, dict]:
    """Move the labels' x so that their midline lies on the faces' mirror axis
    (:func:`label_mirror_offset`, measured on the whole import), recorded in the dataset's
    meta as ``label_recentre``. A horizontal flip then maps labels as it maps the faces."""
    info = dataset_mirror_offset(dataset)
    kp = dataset.keypoints.copy().reshape(len(dataset), -1, 2)
    kp[..., 0] -= np.float32(info["offset_px"])
    with np.errstate(invalid="ignore"):
        kp[~((kp >= 0) & (kp <= IMAGE_SIZE)).all(axis=2)] = np.nan  # moved out of the crop
    kp = kp.reshape(len(dataset), -1)
    out = Dataset.from_arrays(dataset.images, kp, names=dataset.names, persons=dataset.persons,
                              splits=dataset.splits, meta=dict(dataset.meta),
                              keypoint_set=dataset.keypoint_set)
    out.meta["label_recentre"] = {"x_moved_px": round(-info["offset_px"], 4),
                                  "faces_measured": info["faces"],
                                  "sem_px": None if info["sem_px"] is None
                                  else round(info["sem_px"], 4)}
    return out, info


def import_folder(images: str | Path, labels: str | Path | None = None, **kwargs
                  ) -> tuple[Dataset, ImportReport]:
    """Import a folder: with ``labels`` a ytf68-style CSV, else iBUG .pts files beside images."""
    photos = read_labels_csv(labels, images) if labels is not None else find_pts_photos(images)
    return import_faces(photos, **kwargs)


def import_labels(images: str | Path | None, labels: str | Path | None = None,
                  keypoint_set: KeypointSet | None = None, **kwargs):
    """``facekp import``'s reader -> (Dataset, ImportReport): ``labels`` a COCO JSON (.json) or
    dlib XML (.xml), or no labels and a folder of .pts files; a ytf68 CSV as
    :func:`import_folder` reads it. ``keypoint_set``: the set to import into (None: kaggle15
    for photos, the file's own set for 96x96 crops; see :func:`import_labelled_faces`);
    ``kwargs``: prefix, progress, detector (68-point photos)."""
    suffix = Path(labels).suffix.lower() if labels is not None else ""
    if suffix == ".json":
        faces = read_coco(labels, images, keypoint_set)
    elif suffix == ".xml":
        faces = read_dlib(labels, images, keypoint_set)
    elif labels is None:
        faces = read_pts_folder(images, keypoint_set)
    else:
        return import_folder(images, labels, keypoint_set=keypoint_set or KAGGLE15, **kwargs)
    return import_labelled_faces(faces, Path(labels if labels is not None else images),
                                 keypoint_set=keypoint_set, **kwargs)


def import_labelled_faces(faces: list[LabelledFace], source: Path, *, prefix: str = "",
                          progress=None, detector: str | None = "mtcnn",
                          keypoint_set: KeypointSet | None = None):
    """Faces of a label file (all of one keypoint set) into ``keypoint_set``. 68-point faces
    on photos are framed as :func:`import_faces` frames photos and mapped to ``keypoint_set``
    (None: kaggle15); 96x96 crops (as facekp export writes them; 68-point faces whose images are
    all 96x96 px) are taken as they are, in their own set or derived into ``keypoint_set``
    (an ibug68 crop's points into a set with ``from_68``); a set that cannot be derived is
    a DataError naming both sets."""
    if not faces:
        raise DataError(source, "holds no annotated faces")
    sets = list(dict.fromkeys(f.keypoint_set for f in faces))
    if len(sets) > 1:
        raise DataError(source, f"holds faces of keypoint sets {sets[0].name!r} "
                                f"({sets[0].size} points) and {sets[1].name!r} "
                                f"({sets[1].size} points); one set per label file")
    if sets[0].size == 68 and not _are_crops(faces):
        photos = [LabelledPhoto(f.path, f.name, f.person or person_of(f.name), f.points)
                  for f in faces]
        return import_faces(photos, prefix=prefix, progress=progress, detector=detector,
                            keypoint_set=keypoint_set or KAGGLE15)
    target = keypoint_set or sets[0]
    points = _in_set(np.stack([f.points for f in faces]), sets[0], target, source)
    report = ImportReport(faces_in=len(faces), faces_out=len(faces))
    hidden = np.stack([np.zeros(sets[0].size, bool) if f.hidden is None else f.hidden
                       for f in faces])
    if target != sets[0]:    # a derived point is hidden when any point it comes from is
        hidden = (hidden.astype(float) @ (target.from_68_matrix() > 0).T) > 0
    dataset = Dataset.from_arrays(
        np.stack([load_crop(f.path, sets[0]) for f in faces]),
        _inside_crop(points, report).reshape(len(faces), -1),
        names=[prefix + f.name for f in faces],
        persons=[f.person or person_of(f.name) for f in faces],
        splits=[f.split if f.split in SPLITS else "" for f in faces],
        meta={"framing": {"rule": "96x96 crops as given"}}, keypoint_set=target,
        hidden=hidden)
    report.summary = describe(dataset)
    report.framing["96x96 crops as given"] = len(faces)
    return dataset, report


def _are_crops(faces: list[LabelledFace]) -> bool:
    """68-point faces are 96x96 crops when every image of theirs that can be read is 96x96
    px (and one can); otherwise photos, to be framed."""
    seen = False
    for f in faces:
        crop = is_crop(f.path)
        if crop is False:
            return False
        seen = seen or bool(crop)
    return seen


def _in_set(points: np.ndarray, source: KeypointSet, target: KeypointSet,
            label_file: Path) -> np.ndarray:
    """(N, K, 2) points of ``source`` -> (N, K', 2) of ``target`` (the same, or derived); a
    DataError naming both sets when ``source`` cannot give ``target``'s points."""
    if source == target:
        return points
    if not derivable(source, target):
        raise DataError(label_file, f"holds keypoint set {source.name!r} ({source.size} "
                                    f"points), which cannot be turned into {target.name!r} "
                                    f"({target.size} points)")
    with np.errstate(invalid="ignore", over="ignore"):
        derived = derive_keypoints(points.reshape(len(points), -1), source, target)
    return derived.reshape(len(points), target.size, 2)


def _inside_crop(points: np.ndarray, report) -> np.ndarray:
    """(N, K, 2) labelled points of 96x96 crops -> float32, the ones outside the crop (or
    too large for float32, or infinite) missing and counted in ``report``, as the importer of
    68-point photos does."""
    points = np.array(points, np.float64)
    labelled = ~np.isnan(points).all(axis=-1)
    outside = outside_crop(points) & labelled
    points[outside | ~labelled] = np.nan
    report.keypoints_outside += int(outside.sum())
    report.faces_with_keypoint_outside += int(outside.any(axis=1).sum())
    return points.astype(np.float32)
