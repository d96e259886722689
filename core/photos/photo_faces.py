"""A photo's faces into a dataset: each face found (and predicted) in a photo is cut out with the
crop its keypoints came from (:func:`facekp.core.model.predict.Predictor.predict_photo` frames it by
the one crop rule of :mod:`facekp.core.faces.framing`), and the model's keypoints become its labels,
marked as not yet checked (``Dataset.checked`` False) until a person has looked at them. Each face
keeps the photo's name (``Dataset.sources``) and is named ``<photo name>#<face number>``.

Keypoints the model put outside the 96x96 crop are left missing (NaN): a dataset holds points
inside its crops only.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from facekp.core.data.dataset import Dataset
from facekp.core.errors import DataError
from facekp.core.faces.framing import Crop, crop_image, to_gray
from facekp.core.data.keypoints import IMAGE_SIZE, NUM_KEYPOINTS


def photo_dataset(image: Any, faces: Sequence[tuple[Crop, np.ndarray]],
                  source: str | Path) -> Dataset:
    """A dataset of one photo's faces: ``faces`` are ``(crop, keypoints (15, 2) in photo
    pixels)``; ``image`` the upright photo (PIL image or array); ``source`` its path."""
    source = Path(source)
    gray = to_gray(image)
    images, points = [], []
    for crop, kp in faces:
        images.append(crop_image(gray, crop))
        pts = crop.to_crop(np.asarray(kp, np.float64).reshape(NUM_KEYPOINTS, 2))
        outside = ~((pts >= 0) & (pts <= IMAGE_SIZE)).all(axis=1)
        pts[outside] = np.nan
        points.append(pts.reshape(-1))
    n = len(images)
    empty = np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    return Dataset.from_arrays(
        np.stack(images) if n else empty,
        np.stack(points).astype(np.float32) if n else np.zeros((0, 2 * NUM_KEYPOINTS)),
        names=[f"{source.name}#{i + 1}" for i in range(n)], persons=[""] * n,
        splits=[""] * n, checked=np.zeros(n, bool), sources=[str(source)] * n)


def predict_photos(predictor, photos: Iterable[str | Path],
                   progress: Callable[[int, int], None] | None = None
                   ) -> tuple[Dataset, list[str]]:
    """Find and predict the faces of each photo (``predictor``: a facekp.core.model.predict.Predictor)
    and make them a dataset of unchecked faces; returns it with one line per photo
    ("name: 2 faces"). A photo that cannot be read is a DataError naming it."""
    photos = [Path(p) for p in photos]
    parts, lines = [], []
    for i, photo in enumerate(photos):
        result = predictor.predict_photo(photo)
        parts.append(photo_dataset(result.image, [(f.crop, f.keypoints)
                                                  for f in result.faces], photo))
        lines.append(f"{photo}: {result.message}")
        if progress is not None:
            progress(i + 1, len(photos))
    if not parts:
        raise DataError(None, "no photos given")
    dataset = parts[0]
    for part in parts[1:]:
        dataset = dataset.concat(part)
    return dataset, lines


def add_faces(dataset: Dataset | None, new: Dataset) -> Dataset:
    """``dataset`` with ``new`` faces after its own. When ``dataset`` has splits, unassigned
    new faces go to 'train' (else training would never see them); a new photo's faces are
    people the dataset has not seen, so no test face is trained on. None: ``new`` alone."""
    if dataset is None:
        return new
    if (dataset.splits != "").any():
        splits = np.where(new.splits == "", "train", new.splits)
        new = replace(new, splits=splits)
    return dataset.concat(new)
