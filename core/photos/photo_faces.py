"""A photo's faces into a dataset: each face the detector finds in a photo is cut out by the one
crop rule of :mod:`facekp.core.faces.framing` (MTCNN's five points, or a box; as
:meth:`facekp.core.model.predict.Predictor.predict_detections` frames faces and the importers
frame labelled photos), and a model's keypoints become its labels, marked as not yet checked
(``Dataset.checked`` False) until a person has looked at them. With no model (labelling from
zero) every point is missing. Each face keeps the photo's name (``Dataset.sources``) and is named
``<photo name>#<face number>``.

The faces are in the keypoint set of the model (K points); keypoints the model put outside the
96x96 crop are left missing (NaN): a dataset holds points inside its crops only.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from facekp.core.data.dataset import Dataset
from facekp.core.data.keypoint_sets import KAGGLE15, KeypointSet
from facekp.core.errors import DataError
from facekp.core.faces.framing import (Crop, crop_for_box, crop_image,
                                       to_gray)
from facekp.core.data.keypoints import IMAGE_SIZE


def photo_dataset(image: Any, faces: Sequence[tuple[Crop, np.ndarray | None]],
                  source: str | Path, keypoint_set: KeypointSet | None = None,
                  name: str | None = None) -> Dataset:
    """A dataset of one photo's faces: ``faces`` are ``(crop, keypoints (K, 2) in photo
    pixels, or None for a face without points)``; ``image`` the upright photo (PIL image or
    array); ``source`` its path; ``keypoint_set`` the points' set (None: the built-in set of
    their count, kaggle15 or ibug68); ``name`` what the faces are named after, before their
    ``#<face number>`` (None: the photo's file name; a video's frame: ``clip.mp4@frame12``)."""
    from facekp.core.photos.photo_json import keypoint_set_of

    source = Path(source)
    given = next((kp for _, kp in faces if kp is not None), None)
    keypoint_set = keypoint_set or (KAGGLE15 if given is None else keypoint_set_of(given))
    k = keypoint_set.size
    gray = to_gray(image)
    images, points = [], []
    for crop, kp in faces:
        images.append(crop_image(gray, crop))
        if kp is None:
            points.append(np.full(2 * k, np.nan))
            continue
        pts = crop.to_crop(np.asarray(kp, np.float64).reshape(k, 2))
        outside = ~((pts >= 0) & (pts <= IMAGE_SIZE)).all(axis=1)
        pts[outside] = np.nan
        points.append(pts.reshape(-1))
    n = len(images)
    empty = np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    return Dataset.from_arrays(
        np.stack(images) if n else empty,
        np.stack(points).astype(np.float32) if n else np.zeros((0, 2 * k)),
        names=[f"{name or source.name}#{i + 1}" for i in range(n)], persons=[""] * n,
        splits=[""] * n, checked=np.zeros(n, bool), sources=[str(source)] * n,
        keypoint_set=keypoint_set)


def crop_for_detection(detection) -> Crop:
    """The crop of a detected face (facekp.core.faces.detect.Detection): by the rule its
    detector's points allow (``Detection.crop``: BlazeFace's six, MTCNN's five), else from its
    box; the rule Predictor.predict_detections frames faces by."""
    if hasattr(detection, "crop"):
        return detection.crop()
    return crop_for_box(detection.box)


def find_photo_faces(photos: Iterable[str | Path], keypoint_set: KeypointSet,
                     detector: Any = "mtcnn", predictor=None,
                     progress: Callable[[int, int], None] | None = None
                     ) -> tuple[Dataset, list[str]]:
    """Every face found in ``photos`` as a dataset of ``keypoint_set`` (faces unchecked, named
    after their photo), with one line per photo ("name: 2 faces found").

    ``detector``: a detector name ("mtcnn", "haar") or object; None: the predictor's.
    ``predictor`` (a facekp.core.model.predict.Predictor of ``keypoint_set``; its
    min_confidence leaves faces out): its keypoints label the faces; None: every point is
    missing. A predictor of another set is a DataError naming both sets; a photo that cannot
    be read is a DataError naming it."""
    photos = [Path(p) for p in photos]
    if not photos:
        raise DataError(None, "no photos given")
    if predictor is not None and predictor.keypoint_set != keypoint_set:
        ours, theirs = keypoint_set, predictor.keypoint_set
        raise DataError(None, f"the model predicts keypoint set {theirs.name!r} ({theirs.size} "
                              f"points), not {ours.name!r} ({ours.size} points): give a model "
                              f"of {ours.name!r}, or none to label every face from zero")
    find = _detector(detector, predictor)
    parts, lines = [], []
    for i, photo in enumerate(photos):
        image, faces = _photo_faces(photo, find, predictor)
        parts.append(photo_dataset(image, faces, photo, keypoint_set))
        n = len(faces)
        lines.append(f"{photo}: " + (f"{n} face{'s' if n != 1 else ''} found" if n
                                     else "no face found"))
        if progress is not None:
            progress(i + 1, len(photos))
    dataset = parts[0]
    for part in parts[1:]:
        dataset = dataset.concat(part)
    return dataset, lines


def _detector(detector: Any, predictor):
    """A detector object from a name, an object, or None (the predictor's)."""
    if detector is None:
        if predictor is None:
            raise ValueError("give a detector when no predictor is given")
        return predictor.detector
    if isinstance(detector, str):
        from facekp.core.faces.detect import make_detector

        return make_detector(detector)
    return detector


def _photo_faces(photo: Path, find, predictor) -> tuple[Any, list[tuple[Crop, Any]]]:
    """(the upright photo, [(crop, keypoints in photo pixels or None)]) of one photo."""
    from facekp.core.faces.framing import load_photo

    image = load_photo(photo)
    least = 0.0 if predictor is None else predictor.min_confidence
    found = [d for d in find.detect(image) if d.confidence is None or d.confidence >= least]
    if predictor is None:
        return image, [(crop_for_detection(d), None) for d in found]
    if not found:
        return image, []
    results = predictor.predict_detections(to_gray(image), found)
    return image, [(f.crop, f.keypoints) for f in results]


def predict_photos(predictor, photos: Iterable[str | Path],
                   progress: Callable[[int, int], None] | None = None
                   ) -> tuple[Dataset, list[str]]:
    """Find and predict the faces of each photo (``predictor``: a
    facekp.core.model.predict.Predictor; its detector finds them) and make them a dataset of
    unchecked faces in the model's set: :func:`find_photo_faces`."""
    return find_photo_faces(photos, predictor.keypoint_set, detector=None, predictor=predictor,
                            progress=progress)


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
