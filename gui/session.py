"""The app's state without Qt: the dataset and its path, predictions and errors, the current
face, the view mode and the photo on screen.

Plain Python and numpy (no PySide6), so it is tested on its own and fast. The window reads it
and tells the widgets what changed; nothing here knows about widgets.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facekp.core.data.keypoints import IMAGE_SIZE, NAMES, NUM_KEYPOINTS

#: How a split is written for people ("val" -> "validation"); one place for the table, the
#: split filter and the keypoint errors dock.
SPLIT_NAMES = {"all": "all splits", "train": "train", "val": "validation", "test": "test",
               "": "—"}

#: Keypoint names as people read them ("left_eye_center" -> "left eye center").
DISPLAY_NAMES = {n: n.replace("_", " ") for n in NAMES}

#: Where a keypoint goes when no face of the dataset has it labelled: the crop's centre.
CENTRE = IMAGE_SIZE / 2


def split_label(split) -> str:
    """A split as the app shows it ("val" -> "validation")."""
    return SPLIT_NAMES.get(str(split), str(split))


def display_name(k: int) -> str:
    """Keypoint ``k`` (0-based, Kaggle order) as people read it."""
    return DISPLAY_NAMES[NAMES[k]]


@dataclass
class Photo:
    """A photo on screen: ``faces`` are ``(box [x0, y0, x1, y1], keypoints (15, 2) or None,
    detection or None, facekp.core.faces.framing.Crop the keypoints came from or None)`` in photo
    pixels; ``array`` is what is drawn (RGB, perhaps smaller: ``scale`` photo pixels per drawn
    pixel)."""
    path: Path
    image: Any                     # PIL image, full size, upright
    array: np.ndarray
    scale: float = 1.0
    faces: list = field(default_factory=list)
    message: str = ""
    #: ground truth found beside the photo (facekp.core.photos.photo_truth.PhotoTruth) or None; why
    # a
    #: truth file there could not be read; each face's FaceScore against it (as ``faces``)
    truth: Any = None
    truth_error: str = ""
    scores: list = field(default_factory=list)


class Session:
    """The dataset being looked at and edited, with the current model's predictions."""

    def __init__(self):
        self.dataset = None
        self.dataset_path: Path | None = None
        self.predictions: np.ndarray | None = None
        self.errors: np.ndarray | None = None
        self.row: int | None = None
        self.view_mode = "dataset"          # or "photo"
        self.photo: Photo | None = None
        self.mean_points = np.full((NUM_KEYPOINTS, 2), CENTRE)
        self._kp_cache: tuple | None = None
        #: (N, 15) per-keypoint confidence of the predictions (higher = surer, NaN: not yet)
        #: and where it comes from; None until computed for the current model.
        self.confidence: np.ndarray | None = None
        self.confidence_source = ""
        #: confidences of single faces asked for by the Keypoint errors dock, by row
        self.face_confidence: dict[int, np.ndarray] = {}
        self.queue = ReviewQueue()

    # --- dataset ------------------------------------------------------------------------
    def set_dataset(self, dataset, path) -> None:
        """A new dataset: predictions forgotten, average points recomputed."""
        self.dataset = dataset
        self.dataset_path = Path(path) if path is not None else None
        self.clear_predictions()
        self.mean_points = mean_keypoints(dataset.keypoints)

    def clear_predictions(self) -> None:
        if self.dataset is None:
            return
        self.predictions = np.full_like(self.dataset.keypoints, np.nan)
        self.errors = np.full(len(self.dataset), np.nan)
        self.confidence, self.confidence_source = None, ""
        self.face_confidence = {}
        self._kp_cache = None

    @property
    def label(self) -> str:
        return self.dataset_path.name if self.dataset_path else "dataset"

    def __len__(self) -> int:
        return 0 if self.dataset is None else len(self.dataset)

    def training_data(self, seed: int = 0):
        """(train, val, note) by core's one rule (:func:`facekp.core.data.dataset.training_splits`)."""
        from facekp.core.data import dataset as data

        return data.training_splits(self.dataset, seed=seed)

    def training_description(self) -> str:
        ds = self.dataset
        if ds is None:
            return "no dataset yet"
        if not (ds.splits != "").any():
            return (f"{len(ds)} faces without splits: 90% of the people train and 10% "
                    "validate when training starts")
        tr, va = int((ds.splits == "train").sum()), int((ds.splits == "val").sum())
        complete = int(ds.present.all(axis=1)[ds.splits == "train"].sum())
        return (f"{tr} train faces ({complete} with all {NUM_KEYPOINTS} points), {va} "
                f"validation faces from {self.label}")

    def validation_faces(self):
        """The faces a new model is compared on: those training validated on (core's one
        rule), else every face; None without faces."""
        ds = self.dataset
        if ds is None or not len(ds):
            return None
        try:
            return self.training_data()[1]
        except ValueError:                   # a DataError: no train or no val faces
            return ds

    # --- predictions ----------------------------------------------------------------------
    def store_predictions(self, rows, preds) -> None:
        from facekp.core.model import metrics

        rows = np.asarray(rows, dtype=int)
        self.predictions[rows] = preds
        self.errors[rows] = metrics.per_image(self.predictions[rows],
                                               self.dataset.keypoints[rows])
        self._kp_cache = None

    def has_prediction(self, row: int) -> bool:
        return self.predictions is not None and not np.isnan(self.predictions[row]).all()

    def predicted_rows(self, rows) -> np.ndarray:
        rows = np.asarray(rows, dtype=int)
        return rows[~np.isnan(self.predictions[rows]).all(axis=1)] if len(rows) else rows

    def predicted_errors(self) -> np.ndarray:
        return np.zeros(0) if self.errors is None else self.errors[np.isfinite(self.errors)]

    # --- keypoint errors ----------------------------------------------------------------
    def face_keypoint_errors(self) -> np.ndarray | None:
        """Per-keypoint error of the face on screen; None for a photo or before prediction."""
        from facekp.core.model import metrics

        r = self.row
        if self.view_mode != "dataset" or r is None or not self.has_prediction(r):
            return None
        return metrics.per_keypoint(self.predictions[r:r + 1], self.dataset.keypoints[r:r + 1])

    def split_keypoint_errors(self, split: str, rows) -> tuple[np.ndarray | None, int]:
        """Per-keypoint error over the predicted faces among ``rows`` (the faces of ``split``
        the table shows), cached until a prediction or a point changes."""
        from facekp.core.model import metrics

        if self._kp_cache is None or self._kp_cache[0] != split:
            rows = self.predicted_rows(rows)
            values = (metrics.per_keypoint(self.predictions[rows], self.dataset.keypoints[rows])
                      if len(rows) else None)
            self._kp_cache = (split, values, len(rows))
        return self._kp_cache[1], self._kp_cache[2]

    def forget_split_errors(self) -> None:
        self._kp_cache = None

    # --- editing --------------------------------------------------------------------------
    def point(self, row: int, k: int) -> tuple[float, float] | None:
        xy = self.dataset.keypoints[row, 2 * k:2 * k + 2]
        return None if np.isnan(xy).any() else (float(xy[0]), float(xy[1]))

    def set_point(self, row: int, k: int, xy) -> float | None:
        """Set (``xy=None``: clear) one ground-truth keypoint; returns the face's new error
        (None while the face has no prediction)."""
        self.dataset.keypoints[row, 2 * k:2 * k + 2] = (np.nan, np.nan) if xy is None else xy
        return self._refresh_error(row)

    def set_face(self, row: int, values) -> float | None:
        """Set all 30 ground-truth coordinates of a face (NaN = missing); its new error."""
        self.dataset.keypoints[row] = np.asarray(values, dtype=np.float32)
        return self._refresh_error(row)

    def _refresh_error(self, row: int) -> float | None:
        """After an edit of face ``row``'s truth: its error again (None without a prediction)."""
        from facekp.core.model import metrics

        self._kp_cache = None
        if not self.has_prediction(row):
            return None
        err = float(metrics.per_image(self.predictions[row:row + 1],
                                       self.dataset.keypoints[row:row + 1])[0])
        self.errors[row] = err
        return err

    def all_predicted(self) -> bool:
        return (self.predictions is not None and len(self.predictions) > 0
                and not np.isnan(self.predictions).all(axis=1).any())

    def build_queue(self, kind: str, rows=None) -> "ReviewQueue":
        """The review queue of ``kind`` (facekp.core.quality.review) for the dataset as it is now, over
        ``rows`` only (None: every face); the face the queue was at stays its position when
        it is still in it."""
        from facekp.core.quality import review

        ds = self.dataset
        if ds is None:
            self.queue = ReviewQueue(kind)
            return self.queue
        predicted = self.predictions if self.all_predicted() else None
        q = review.build(kind, ds.keypoints, predicted, self.confidence)
        keep = np.ones(len(q.rows), bool) if rows is None else np.isin(q.rows, rows)
        at = self.queue.current_row
        self.queue = ReviewQueue(kind, q.rows[keep], np.asarray(q.reasons, dtype=object)[keep],
                                 waiting=self.queue_waiting_for(kind))
        if at is not None:
            self.queue.seek(at)
        return self.queue

    def queue_waiting_for(self, kind: str) -> str:
        """What the queue of ``kind`` still waits for ("" when it is complete)."""
        from facekp.core.quality import review

        if kind in review.NEEDS_PREDICTIONS and not self.all_predicted():
            return "predictions"
        if kind in review.NEEDS_CONFIDENCE and self.confidence is None:
            return "confidence"
        return ""

    def missing_keypoints(self, row: int) -> list[int]:
        kp = self.dataset.keypoints[row].reshape(NUM_KEYPOINTS, 2)
        return [k for k in range(NUM_KEYPOINTS) if np.isnan(kp[k]).any()]

    # --- text -----------------------------------------------------------------------------
    def face_text(self, row: int) -> str:
        """The status line of a dataset face: name, person, split, error."""
        ds = self.dataset
        text = f"face {row}: {ds.names[row]}"
        if ds.persons[row]:
            text += f" · {ds.persons[row]}"
        if ds.splits[row]:
            text += f" · {ds.splits[row]}"
        if not ds.checked[row]:
            text += " · predicted, not yet checked"
        e = self.errors[row] if self.errors is not None else np.nan
        if np.isfinite(e):
            text += f" · RMSE {e:.2f} px"
        return text

    def title(self) -> str:
        title = "facekp"
        if self.view_mode == "photo" and self.photo is not None:
            return title + f" — {self.photo.path.name}"
        if self.dataset is not None:
            title += f" — {self.label}[*]"
            if self.row is not None:
                title += f" · face {self.row}"
        return title


class ReviewQueue:
    """Dataset rows to step through in order (:mod:`facekp.core.quality.review`), with a reason for each,
    and where the person is in it (``position`` -1: not started)."""

    def __init__(self, kind: str = "worst", rows=(), reasons=(), waiting: str = ""):
        self.kind = kind
        self.rows = np.asarray(rows, dtype=int)
        self.reasons = list(reasons)
        self.position = -1
        self.waiting = waiting

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def current_row(self) -> int | None:
        return int(self.rows[self.position]) if 0 <= self.position < len(self.rows) else None

    def step(self, delta: int) -> int | None:
        """Move ``delta`` faces on (clamped to the queue); the row there, None if empty."""
        if not len(self.rows):
            return None
        self.position = max(0, min(self.position + delta, len(self.rows) - 1))
        return self.current_row

    def seek(self, row: int) -> bool:
        """Make ``row`` the position if it is in the queue."""
        hits = np.flatnonzero(self.rows == row)
        if len(hits):
            self.position = int(hits[0])
        return bool(len(hits))

    def reason(self, row: int | None = None) -> str:
        row = self.current_row if row is None else row
        hits = np.flatnonzero(self.rows == row) if row is not None else []
        return self.reasons[int(hits[0])] if len(hits) else ""

    def describe(self) -> str:
        """Where the person is: "3 / 120", or what the queue waits for."""
        if self.waiting:
            return f"waiting for {self.waiting}…"
        if not len(self.rows):
            return "no faces in this queue"
        return f"{self.position + 1 if self.position >= 0 else '–'} / {len(self.rows)}"


def mean_keypoints(keypoints: np.ndarray) -> np.ndarray:
    """(15, 2) average of each labelled keypoint; the crop's centre where none is labelled."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = (np.nanmean(keypoints, axis=0) if len(keypoints)
                else np.full(2 * NUM_KEYPOINTS, np.nan))
    return np.where(np.isnan(mean), CENTRE, mean).reshape(NUM_KEYPOINTS, 2)
