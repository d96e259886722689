"""The one JSON form of a photo's predicted faces, written by ``facekp predict --json`` (a list
of these records) and by the app's "Export predictions" on a photo (one record).

.. code-block:: text

    {"photo": "path/as/given.jpg",
     "units": "pixels of the photo",
     "message": "2 faces",                  (what the predictor said; "" when nothing to say)
     "faces": [{"face": 1,                  (1-based, largest face first)
                "box": [x0, y0, x1, y1],
                "keypoints": {"left_eye_center": [x, y], ...} | null}]}

Coordinates are photo pixels (x right, y down, pixel centres), rounded to ``DECIMALS``; a
keypoint is ``null`` when it is not finite, and ``keypoints`` is ``null`` for a face whose
keypoints were not predicted (a box found without a model). Keypoints are listed by name in
Kaggle's column order (core.keypoints.NAMES).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .keypoints import NAMES, NUM_KEYPOINTS

UNITS = "pixels of the photo"
DECIMALS = 2


def rounded(v) -> float | None:
    """``v`` rounded to DECIMALS; None when it is not finite (JSON has no NaN)."""
    v = float(v)
    return round(v, DECIMALS) if math.isfinite(v) else None


def keypoints_record(keypoints) -> dict[str, list[float] | None]:
    """{name: [x, y] or None} from (15, 2) or (30,) pixels."""
    p = np.asarray(keypoints, dtype=np.float64).reshape(NUM_KEYPOINTS, 2)
    return {name: (None if not np.isfinite(p[i]).all() else [rounded(p[i, 0]), rounded(p[i, 1])])
            for i, name in enumerate(NAMES)}


def photo_record(photo: str | Path, faces: Iterable, message: str = "") -> dict[str, Any]:
    """One photo's record; ``faces`` are ``(box [x0, y0, x1, y1], keypoints or None)``."""
    return {"photo": str(photo), "units": UNITS, "message": message,
            "faces": [{"face": i, "box": [rounded(v) for v in box],
                       "keypoints": None if kp is None else keypoints_record(kp)}
                      for i, (box, kp) in enumerate(faces, 1)]}
