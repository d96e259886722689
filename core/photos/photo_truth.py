"""Ground truth beside a photo, and how far the faces predicted in it are from that truth.

Where a photo ``DIR/P.jpg`` finds its ground truth (:func:`find_truth`):

- ``DIR/P.pts``: an iBUG-style .pts file of one face, 68 points in iBUG order (mapped to the 15
  keypoints by :func:`facekp.core.data.keypoints.from_68`) or 15 points in Kaggle order (as ``facekp
  export
  --format pts`` writes them); read by :func:`facekp.core.data.formats.read_pts` (1-based, as
  iBUG writes them);
- else a dlib imglab XML in ``DIR`` with an ``<image file=...>`` that resolves to the photo
  (relative to the XML, as imglab resolves it): each box with parts is one face, parts named
  00-67 (iBUG 68) or by the 15 keypoint names; read by :func:`facekp.core.data.formats.read_dlib`.
  XML files that are not dlib datasets (Pascal VOC, say) are passed over.

Coordinates are pixels of the upright photo, as photo predictions are. A truth file that is
there but cannot be read is a :class:`facekp.core.errors.DataError` naming it.

Matching (:func:`match_faces`): a predicted face takes the truth face whose labelled centre
(the mean of its labelled points) lies inside the face's box and is nearest the box's centre;
each truth face goes to one predicted face at most, nearest pairs first.

NME (:func:`nme`): the mean, over keypoints both labelled and predicted, of the distance from
prediction to truth, divided by the distance between the labelled eye centres; NaN when
either eye centre is unlabelled or no keypoint can be compared.

Truth is kept and scored as kaggle15's 15 points. A model of another keypoint set is scored
through its kaggle15 points where the set gives them (ibug68: each the mean of the 68 points
it comes from); a set that cannot give them is refused with a DataError naming it
(:func:`score_faces`), which the photo's record reports as its ``truth_error``.
"""
from __future__ import annotations

import os

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from facekp.core.data.keypoint_sets import (IBUG68, KAGGLE15, KeypointSet, derivable,
                                            derive_keypoints)
from facekp.core.errors import DataError
from facekp.core.model.metrics import point_errors
from facekp.core.data.keypoints import NAMES, NUM_KEYPOINTS, from_68

LEFT_EYE, RIGHT_EYE = NAMES.index("left_eye_center"), NAMES.index("right_eye_center")


@dataclass
class PhotoTruth:
    """A photo's labelled faces: ``faces`` are (15, 2) points in photo pixels, NaN = missing."""
    source: Path
    faces: list[np.ndarray]


@dataclass
class FaceScore:
    """One predicted face against the truth matched to it (``truth`` None: none matched).
    ``errors``: (15,) distance from prediction to truth in photo pixels, NaN where either is
    missing; ``nme``: :func:`nme` (NaN without truth)."""
    truth: np.ndarray | None
    errors: np.ndarray
    nme: float
    truth_index: int | None = None


def to_15(points: np.ndarray) -> np.ndarray:
    """15 or 68 (x, y) points -> the 15 keypoints (68 are mapped as the importers map them)."""
    points = np.asarray(points, np.float64)
    return from_68(points) if len(points) == 68 else points.reshape(NUM_KEYPOINTS, 2).copy()


def find_truth(photo: str | Path) -> PhotoTruth | None:
    """The ground truth beside ``photo`` (see the module's text), or None when there is none.
    A DataError naming the file when a truth file is there but broken."""
    from facekp.core.data.formats import read_pts

    photo = Path(photo)
    pts = photo.with_suffix(".pts")
    if pts.is_file():
        return PhotoTruth(pts, [to_15(read_pts(pts, counts=(NUM_KEYPOINTS, 68)))])
    folder = photo.parent if str(photo.parent) else Path(".")
    try:  # os.scandir: a folder of photos is listed once a photo (several times pathlib's speed)
        with os.scandir(folder) as entries:
            xmls = sorted(folder / e.name for e in entries
                          if e.name.lower().endswith(".xml") and e.is_file())
    except OSError:
        return None
    for xml in xmls:
        faces = _dlib_faces(xml, photo)
        if faces:
            return PhotoTruth(xml, faces)
    return None


def _dlib_faces(xml: Path, photo: Path) -> list[np.ndarray]:
    """The faces a dlib XML labels in ``photo`` ([] when it names the photo nowhere or is
    not a dlib dataset); a DataError when it names the photo but cannot be read."""
    from facekp.core.data.formats import read_dlib

    try:
        data = xml.read_bytes()
    except OSError as exc:
        raise DataError(xml, f"cannot be read ({exc.strerror or exc})") from None
    if photo.name.encode() not in data:
        return []
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise DataError(xml, f"names {photo.name} but is not a readable XML file ({exc})") \
            from None
    if root.tag != "dataset":
        return []                                  # another kind of XML (Pascal VOC, ...)
    target = photo.resolve()
    return [to_15(f.points) for f in read_dlib(xml) if f.path.resolve() == target]


def nme(prediction, truth) -> float:
    """Mean point error over the keypoints both labelled and predicted, divided by the
    distance between the labelled eye centres; NaN when that cannot be computed."""
    t = np.asarray(truth, np.float64).reshape(NUM_KEYPOINTS, 2)
    errors = point_errors(prediction, t)
    eyes = float(np.hypot(*(t[LEFT_EYE] - t[RIGHT_EYE])))
    if not np.isfinite(errors).any() or not np.isfinite(eyes) or eyes <= 0:
        return float("nan")
    return float(np.nanmean(errors) / eyes)


def match_faces(truth_faces: Sequence[np.ndarray], boxes: Sequence) -> list[int | None]:
    """For each box ``[x0, y0, x1, y1]``, the index of its truth face (or None): the truth
    face whose labelled centre lies inside the box, nearest the box's centre; one box per
    truth face, nearest pairs first."""
    pairs = []
    for t, face in enumerate(truth_faces):
        labelled = np.asarray(face, np.float64)
        labelled = labelled[np.isfinite(labelled).all(axis=1)]
        if not len(labelled):
            continue
        cx, cy = labelled.mean(axis=0)
        for b, (x0, y0, x1, y1) in enumerate(boxes):
            if x0 <= cx <= x1 and y0 <= cy <= y1:
                pairs.append((float(np.hypot(cx - (x0 + x1) / 2, cy - (y0 + y1) / 2)), b, t))
    out: list[int | None] = [None] * len(boxes)
    used: set[int] = set()
    for _, b, t in sorted(pairs):
        if out[b] is None and t not in used:
            out[b] = t
            used.add(t)
    return out


def as_kaggle15(keypoints, keypoint_set: KeypointSet | None = None) -> np.ndarray:
    """A face's predicted keypoints (K, 2) of ``keypoint_set`` as kaggle15's (15, 2), derived
    where the set gives them (None: kaggle15 for 15 points, ibug68 for 68); a DataError naming
    a set that cannot give them."""
    points = np.asarray(keypoints, np.float64).reshape(-1, 2)
    if keypoint_set is None:
        keypoint_set = IBUG68 if len(points) == 68 else KAGGLE15
    if not derivable(keypoint_set, KAGGLE15) or len(points) != keypoint_set.size:
        raise DataError(None, f"ground truth beside photos is scored on kaggle15's points, "
                              f"which keypoint set {keypoint_set.name!r} ({keypoint_set.size} "
                              "points) cannot give; truth not used")
    if keypoint_set == KAGGLE15:
        return points.copy()
    return derive_keypoints(points.reshape(1, -1), keypoint_set, KAGGLE15).reshape(
        NUM_KEYPOINTS, 2).astype(np.float64)


def score_faces(truth: PhotoTruth | None, faces: Sequence,
                keypoint_set: KeypointSet | None = None) -> list[FaceScore]:
    """Each predicted face ``(box, keypoints (K, 2) of keypoint_set or None, ...)`` scored
    against the truth face matched to it (:func:`match_faces`), on kaggle15's points
    (:func:`as_kaggle15`; a DataError for a set that cannot give them)."""
    truth_faces = [] if truth is None else truth.faces
    matched = match_faces(truth_faces, [face[0] for face in faces])
    scores = []
    for face, t in zip(faces, matched):
        kp = (np.full((NUM_KEYPOINTS, 2), np.nan) if face[1] is None
              else as_kaggle15(face[1], keypoint_set))
        if t is None:
            scores.append(FaceScore(None, np.full(NUM_KEYPOINTS, np.nan), float("nan")))
            continue
        tp = truth_faces[t]
        scores.append(FaceScore(tp, point_errors(kp, tp), nme(kp, tp), t))
    return scores
