"""Photos labelled with 68 landmarks -> 96x96 grayscale crops with the 15 Kaggle keypoints.

Two label layouts:
- a CSV as in ytf68: image file name, then 136 numbers x0,y0,...,x67,y67 (photo pixels);
- iBUG ``.pts`` files next to the images (``version``, ``n_points: 68``, ``{`` ... ``}``).

Framing is the app's own (core.faces.crop_for_box): the face detector's box when it finds the
labelled face (the detection containing the labelled nose tip), else a detector-like box made
from the labelled points. The crop is never aligned to the labelled eyes. Keypoints that fall
outside the crop become NaN, never clipped.
"""
from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from . import faces
from .data import Dataset, describe
from .errors import DataError
from .fileio import check_input_file
from .keypoints import IMAGE_SIZE, NOSE_TIP_68, from_68

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


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
        from .data import format_description

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


def read_pts(path: str | Path) -> np.ndarray:
    """An iBUG .pts file -> 68 x 2 points. iBUG files are 1-based: 1 is subtracted."""
    path = check_input_file(path, ".pts file")
    text = path.read_text(encoding="utf-8", errors="replace").split("{", 1)
    if len(text) != 2 or "}" not in text[1]:
        raise DataError(path, "not an iBUG .pts file: expected 'n_points: 68' and points "
                              "between { and }")
    body = text[1].split("}", 1)[0].split()
    try:
        pts = np.array([float(v) for v in body], dtype=np.float64)
    except ValueError:
        raise DataError(path, "points must be numbers") from None
    if pts.size != 136:
        raise DataError(path, f"holds {pts.size // 2} points, expected 68")
    return pts.reshape(68, 2) - 1.0


def find_pts_photos(images: str | Path) -> list[LabelledPhoto]:
    """Images in a folder (recursively) that have a .pts file beside them."""
    images = Path(images)
    if not images.is_dir():
        raise DataError(images, "is not a directory of images")
    out = []
    for pts in sorted(images.rglob("*.pts")):
        img = next((pts.with_suffix(s) for s in IMAGE_SUFFIXES if pts.with_suffix(s).exists()),
                   None)
        if img is None:
            continue
        name = str(img.relative_to(images))
        out.append(LabelledPhoto(img, name, person_of(img.name), read_pts(pts)))
    if not out:
        raise DataError(images, "no images with iBUG .pts files beside them")
    return out


def import_faces(photos: Iterable[LabelledPhoto], *, prefix: str = "",
                 progress: Callable[[int, int], None] | None = None,
                 use_detector: bool = True) -> tuple[Dataset, ImportReport]:
    """Crop each labelled photo to the model's framing and map its 68 points to the 15."""
    photos = list(photos)
    report = ImportReport(faces_in=len(photos))
    images, keypoints, names, persons = [], [], [], []
    for i, photo in enumerate(photos):
        if progress is not None:
            progress(i, len(photos))
        if not photo.path.exists():
            report.dropped["image file not found"] += 1
            continue
        pts = photo.points68
        if not np.isfinite(pts).all():
            report.dropped["labels not finite"] += 1
            continue
        try:
            gray = faces.to_gray(faces.load_photo(photo.path))
        except DataError:
            report.dropped["image unreadable"] += 1
            continue
        box = None
        if use_detector:
            nose = pts[NOSE_TIP_68]
            hits = [b for b in faces.detect_faces(gray) if b.contains(*nose)]
            if hits:
                box = hits[0]
                report.framing["detector"] += 1
        if box is None:
            box = faces.box_from_points(pts)
            report.framing["labelled points"] += 1
        crop = faces.crop_for_box(box)
        image = faces.crop_image(gray, crop)
        kp = crop.to_crop(from_68(pts))
        outside = ~((kp >= 0) & (kp <= IMAGE_SIZE)).all(axis=1)
        if outside.any():
            report.keypoints_outside += int(outside.sum())
            report.faces_with_keypoint_outside += 1
            kp[outside] = np.nan
        if outside.all():
            report.dropped["no keypoint inside the crop"] += 1
            continue
        images.append(image)
        keypoints.append(kp.reshape(-1).astype(np.float32))
        names.append(prefix + photo.name)
        persons.append(photo.person)
    if progress is not None:
        progress(len(photos), len(photos))
    n = len(images)
    dataset = Dataset.from_arrays(
        np.stack(images) if n else np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), np.uint8),
        np.stack(keypoints) if n else np.zeros((0, 30), np.float32),
        names=names, persons=persons,
        meta={"framing": {"crop_scale": faces.CROP_SCALE,
                          "crop_shift_down": faces.CROP_SHIFT_DOWN,
                          "detector": "opencv haarcascade_frontalface_default"}})
    report.faces_out = n
    report.summary = describe(dataset)
    return dataset, report


def import_folder(images: str | Path, labels: str | Path | None = None, **kwargs
                  ) -> tuple[Dataset, ImportReport]:
    """Import a folder: with ``labels`` a ytf68-style CSV, else iBUG .pts files beside images."""
    photos = read_labels_csv(labels, images) if labels is not None else find_pts_photos(images)
    return import_faces(photos, **kwargs)
