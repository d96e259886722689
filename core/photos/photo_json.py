"""The one JSON form of a photo's predicted faces, written by ``facekp predict --json`` (a list
of these records) and by the app's "Export predictions" on a photo (one record).

.. code-block:: text

    {"photo": "path/as/given.jpg",
     "units": "pixels of the photo",
     "message": "2 faces",                  (what the predictor said; "" when nothing to say)
     "faces": [{"face": 1,                  (1-based, largest face first)
                "box": [x0, y0, x1, y1],
                "detector_confidence": 0.9987 | null,     (null: the detector gives none)
                "detector_points": {"eye_image_left": [x, y], ...} | null,   (MTCNN's five)
                "keypoints": {"left_eye_center": [x, y], ...} | null,
                "keypoint_confidence": {"left_eye_center": 0.93, ...} | null,
                "mean_keypoint_confidence": 0.88 | null}]}

Coordinates are photo pixels (x right, y down, pixel centres), rounded to ``DECIMALS``; a
keypoint is ``null`` when it is not finite, and ``keypoints`` is ``null`` for a face whose
keypoints were not predicted (a box found without a model). Keypoints are listed by name in
Kaggle's column order (facekp.core.data.keypoints.NAMES).

When ground truth lies beside the photo (:mod:`facekp.core.photos.photo_truth`: a ``.pts`` of the
same name or a dlib XML naming it), :func:`add_truth` adds ``"truth_file"`` to the record and to
each face ``"truth"`` (keypoints by name as above, or ``null`` when no labelled face lies in its
box) and ``"nme"`` (mean point error / distance between the labelled eye centres, rounded to
``NME_DECIMALS``; ``null`` without truth). A truth file that cannot be read gives
``"truth_error"`` instead.

``keypoint_confidence`` (facekp.core.model.confidence): for each keypoint, the estimated probability
that it lies within 3 px of the 96x96 crop (about 8% of the eye distance) of where a labeller would
put it; ``mean_keypoint_confidence`` is their mean, the expected share of the face's keypoints that
close. Both are ``null`` when the model has no confidence head.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from facekp.core.data.keypoints import NAMES, NUM_KEYPOINTS

UNITS = "pixels of the photo"
DECIMALS = 2
NME_DECIMALS = 4


def rounded(v) -> float | None:
    """``v`` rounded to DECIMALS; None when it is not finite (JSON has no NaN)."""
    v = float(v)
    return round(v, DECIMALS) if math.isfinite(v) else None


def keypoints_record(keypoints) -> dict[str, list[float] | None]:
    """{name: [x, y] or None} from (15, 2) or (30,) pixels."""
    p = np.asarray(keypoints, dtype=np.float64).reshape(NUM_KEYPOINTS, 2)
    return {name: (None if not np.isfinite(p[i]).all() else [rounded(p[i, 0]), rounded(p[i, 1])])
            for i, name in enumerate(NAMES)}


def confidence_record(confidence) -> dict[str, Any]:
    """The keypoint confidences (15,) as ``{"keypoint_confidence": {name: p},
    "mean_keypoint_confidence": mean}``, both None when ``confidence`` is None."""
    if confidence is None:
        return {"keypoint_confidence": None, "mean_keypoint_confidence": None}
    c = np.asarray(confidence, dtype=np.float64).reshape(NUM_KEYPOINTS)
    return {"keypoint_confidence": {n: round(float(v), 4) if math.isfinite(v) else None
                                    for n, v in zip(NAMES, c)},
            "mean_keypoint_confidence": round(float(c.mean()), 4) if np.isfinite(c).all()
            else None}


def detection_record(detection) -> dict[str, Any]:
    """The detector's confidence and points (a facekp.core.faces.detect.Detection, or None):
    MTCNN's five, BlazeFace's six, by name."""
    from facekp.core.faces.detect import POINT_NAMES

    conf = None if detection is None else detection.confidence
    points = None if detection is None else detection.points
    names = getattr(detection, "point_names", POINT_NAMES)
    return {"detector_confidence": None if conf is None else round(float(conf), 4),
            "detector_points": None if points is None else {
                n: [rounded(x), rounded(y)] for n, (x, y) in zip(names, points)}}


def photo_record(photo: str | Path, faces: Iterable, message: str = "") -> dict[str, Any]:
    """One photo's record; ``faces`` are ``(box [x0, y0, x1, y1], keypoints or None)``,
    ``(box, keypoints, detection)`` with the detector's facekp.core.faces.detect.Detection (or
    None), and optionally then the crop (not written) and the keypoint confidences (15,) or None:
    ``(box, keypoints, detection, crop, confidences)``."""
    records = []
    for i, face in enumerate(faces, 1):
        box, kp = face[0], face[1]
        records.append({"face": i, "box": [rounded(v) for v in box],
                        **detection_record(face[2] if len(face) > 2 else None),
                        "keypoints": None if kp is None else keypoints_record(kp),
                        **confidence_record(face[4] if len(face) > 4 else None)})
    return {"photo": str(photo), "units": UNITS, "message": message, "faces": records}


def result_record(photo: str | Path, result) -> tuple[dict[str, Any], str | None]:
    """The record of a :class:`facekp.core.model.predict.PhotoResult`, with the ground truth found
    beside the photo (:func:`add_truth`); returns it and the truth file's error (or None)."""
    faces = result.face_tuples()
    record = photo_record(photo, faces, result.message)
    return record, add_truth(record, faces)


def add_truth(record: dict[str, Any], faces: Iterable) -> str | None:
    """Add the ground truth found beside ``record["photo"]`` and each face's NME to
    ``record`` (:mod:`facekp.core.photos.photo_truth`); ``faces`` are those given to
    :func:`photo_record`. Returns the error of a truth file that cannot be read (also put in
    ``"truth_error"``);
    without truth the record is left as it is."""
    from facekp.core.errors import DataError
    from facekp.core.photos.photo_truth import find_truth, score_faces

    try:
        truth = find_truth(record["photo"])
    except DataError as exc:
        record["truth_error"] = str(exc)
        return str(exc)
    if truth is None:
        return None
    record["truth_file"] = str(truth.source)
    for face, score in zip(record["faces"], score_faces(truth, list(faces))):
        face["truth"] = None if score.truth is None else keypoints_record(score.truth)
        face["nme"] = (round(score.nme, NME_DECIMALS) if math.isfinite(score.nme) else None)
    return None
