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
keypoints were not predicted (a box found without a model). Keypoints (and their confidences)
are listed by name in the order of the model's keypoint set (facekp.core.data.keypoint_sets):
kaggle15's are Kaggle's column names in Kaggle's order, ibug68's ``jaw_0`` ... ``inner_lip_7``.

When ground truth lies beside the photo (:mod:`facekp.core.photos.photo_truth`: a ``.pts`` of the
same name or a dlib XML naming it), :func:`add_truth` adds ``"truth_file"`` to the record and to
each face ``"truth"`` (keypoints by name as above, or ``null`` when no labelled face lies in its
box) and ``"nme"`` (mean point error / distance between the labelled eye centres, rounded to
``NME_DECIMALS``; ``null`` without truth). Truth is scored on kaggle15's points: an ibug68
model's keypoints are derived to them; a model of a set that cannot give them, and a truth
file that cannot be read, give ``"truth_error"`` instead.

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

from facekp.core.data.keypoint_sets import BUILTIN, KeypointSet

UNITS = "pixels of the photo"
DECIMALS = 2
NME_DECIMALS = 4


def rounded(v) -> float | None:
    """``v`` rounded to DECIMALS; None when it is not finite (JSON has no NaN)."""
    v = float(v)
    return round(v, DECIMALS) if math.isfinite(v) else None


def keypoint_set_of(values, keypoint_set: KeypointSet | None = None) -> KeypointSet:
    """``keypoint_set``, or (None) the built-in set with as many points as ``values`` (K
    confidences, K x 2 or 2K coordinates) has: kaggle15 or ibug68. ValueError for another
    count, which needs its set given."""
    if keypoint_set is not None:
        return keypoint_set
    size = np.size(values)
    for s in BUILTIN.values():
        if size in (s.size, 2 * s.size):
            return s
    raise ValueError(f"{size} values fit no built-in keypoint set; give the points' set")


def keypoints_record(keypoints, keypoint_set: KeypointSet | None = None
                     ) -> dict[str, list[float] | None]:
    """{name: [x, y] or None} from (K, 2) or (2K,) pixels of ``keypoint_set`` (None: the
    built-in set of their count, :func:`keypoint_set_of`)."""
    ks = keypoint_set_of(keypoints, keypoint_set)
    p = np.asarray(keypoints, dtype=np.float64).reshape(ks.size, 2)
    return {name: (None if not np.isfinite(p[i]).all() else [rounded(p[i, 0]), rounded(p[i, 1])])
            for i, name in enumerate(ks.names)}


def confidence_record(confidence, keypoint_set: KeypointSet | None = None) -> dict[str, Any]:
    """The keypoint confidences (K,) as ``{"keypoint_confidence": {name: p},
    "mean_keypoint_confidence": mean}``, both None when ``confidence`` is None."""
    if confidence is None:
        return {"keypoint_confidence": None, "mean_keypoint_confidence": None}
    c = np.asarray(confidence, dtype=np.float64).reshape(-1)
    names = keypoint_set_of(c, keypoint_set).names
    if len(names) != len(c):
        raise ValueError(f"{len(c)} confidences for {len(names)} keypoints")
    return {"keypoint_confidence": {n: round(float(v), 4) if math.isfinite(v) else None
                                    for n, v in zip(names, c)},
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


def photo_record(photo: str | Path, faces: Iterable, message: str = "",
                 keypoint_set: KeypointSet | None = None) -> dict[str, Any]:
    """One photo's record; ``faces`` are ``(box [x0, y0, x1, y1], keypoints or None)``,
    ``(box, keypoints, detection)`` with the detector's facekp.core.faces.detect.Detection (or
    None), and optionally then the crop (not written) and the keypoint confidences (K,) or None:
    ``(box, keypoints, detection, crop, confidences)``. ``keypoint_set``: the model's set, which
    names the keypoints (None: the built-in set of their count)."""
    records = []
    for i, face in enumerate(faces, 1):
        box, kp = face[0], face[1]
        records.append({"face": i, "box": [rounded(v) for v in box],
                        **detection_record(face[2] if len(face) > 2 else None),
                        "keypoints": None if kp is None else keypoints_record(kp, keypoint_set),
                        **confidence_record(face[4] if len(face) > 4 else None,
                                            keypoint_set)})
    return {"photo": str(photo), "units": UNITS, "message": message, "faces": records}


def result_record(photo: str | Path, result, keypoint_set: KeypointSet | None = None
                  ) -> tuple[dict[str, Any], str | None]:
    """The record of a :class:`facekp.core.model.predict.PhotoResult` of a model of
    ``keypoint_set`` (a Predictor's ``keypoint_set``), with the ground truth found beside the
    photo (:func:`add_truth`); returns it and the truth's error (or None)."""
    faces = result.face_tuples()
    record = photo_record(photo, faces, result.message, keypoint_set)
    return record, add_truth(record, faces, keypoint_set)


def add_truth(record: dict[str, Any], faces: Iterable,
              keypoint_set: KeypointSet | None = None) -> str | None:
    """Add the ground truth found beside ``record["photo"]`` and each face's NME to
    ``record`` (:mod:`facekp.core.photos.photo_truth`); ``faces`` are those given to
    :func:`photo_record`, of ``keypoint_set``. Returns the error of a truth file that cannot be
    read, or of a set that cannot be scored against it (also put in ``"truth_error"``);
    without truth the record is left as it is."""
    from facekp.core.errors import DataError
    from facekp.core.photos.photo_truth import find_truth, score_faces

    try:
        truth = find_truth(record["photo"])
        scores = None if truth is None else score_faces(truth, list(faces), keypoint_set)
    except DataError as exc:
        record["truth_error"] = str(exc)
        return str(exc)
    if truth is None:
        return None
    record["truth_file"] = str(truth.source)
    record["nme_by"] = ["left_eye_center", "right_eye_center"]  # what "nme" is divided by
    for face, score in zip(record["faces"], scores):
        face["truth"] = None if score.truth is None else keypoints_record(score.truth)
        face["nme"] = (round(score.nme, NME_DECIMALS) if math.isfinite(score.nme) else None)
    return None
