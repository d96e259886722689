"""The app's state without Qt: the dataset and its path, predictions and errors, the current
face, the view mode and the photo on screen.

Plain Python and numpy (no PySide6), so it is tested on its own and fast. The window reads it
and tells the widgets what changed; nothing here knows about widgets.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facekp.core.data.keypoint_sets import KAGGLE15, KeypointSet, derivable, derive_keypoints
from facekp.core.data.keypoints import IMAGE_SIZE

#: How a split is written for people ("val" -> "validation"); one place for the table, the
#: split filter and the keypoint errors dock.
SPLIT_NAMES = {"all": "all splits", "train": "train", "val": "validation", "test": "test",
               "": "—"}

#: Where a keypoint goes when no face of the dataset has it labelled: the crop's centre.
CENTRE = IMAGE_SIZE / 2


def split_label(split) -> str:
    """A split as the app shows it ("val" -> "validation")."""
    return SPLIT_NAMES.get(str(split), str(split))


def display_name(k: int, keypoint_set: KeypointSet | None = None) -> str:
    """Keypoint ``k`` (0-based, in the set's order; kaggle15 by default) as people read it
    ("left_eye_center" -> "left eye center")."""
    return (keypoint_set or KAGGLE15).names[k].replace("_", " ")


def side_note(name: str) -> str:
    """Left and right are the subject's: what that means on screen, for a point's name ("" for
    a point of neither side)."""
    words = name.replace("_", " ").split()
    if "left" in words:
        return "the subject's left: the image's right"
    if "right" in words:
        return "the subject's right: the image's left"
    return ""


def point_label(k: int, keypoint_set: KeypointSet | None = None) -> str:
    """Keypoint ``k``'s name with its side spelled out: "left eye center (the subject's left:
    the image's right)"."""
    name = display_name(k, keypoint_set)
    note = side_note(name)
    return f"{name} ({note})" if note else name


@dataclass
class Photo:
    """A photo on screen: ``faces`` are ``(box [x0, y0, x1, y1], keypoints (K, 2) or None,
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
        self.mean_points = np.full((KAGGLE15.size, 2), CENTRE)
        #: the keypoint set of the loaded model (None: no model); ``model_problem``: why it
        #: cannot predict this dataset's faces ("" when it can)
        self.model_set: KeypointSet | None = None
        self.model_problem = ""
        #: (N, K of the model's set) per-keypoint confidence of the predictions (higher = surer, NaN: not yet)
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
        self._check_model()
        self.clear_predictions()
        self.mean_points = mean_keypoints(dataset.keypoints)

    # --- keypoint sets ------------------------------------------------------------------------
    @property
    def keypoint_set(self) -> KeypointSet:
        """The dataset's set (what the canvas, the docks and editing follow); kaggle15 before
        a dataset is open."""
        return self.dataset.keypoint_set if self.dataset is not None else KAGGLE15

    @property
    def prediction_set(self) -> KeypointSet:
        """The set predictions are in: the model's, else the dataset's."""
        return self.model_set or self.keypoint_set

    @property
    def same_set(self) -> bool:
        """Predictions and ground truth are in one set (errors per keypoint, accepting a
        prediction, error lines)."""
        return self.prediction_set == self.keypoint_set

    def set_model_set(self, keypoint_set: KeypointSet | None) -> None:
        """The loaded model's set (None: no model); predictions forgotten."""
        self.model_set = keypoint_set
        self._check_model()
        self.clear_predictions()

    def _check_model(self) -> None:
        """``model_problem``: one line when the model's set is not the dataset's and cannot
        be derived from it (facekp.core.data.keypoint_sets.check_compatible)."""
        from facekp.core.data.keypoint_sets import check_compatible
        from facekp.core.errors import DataError

        self.model_problem = ""
        if self.model_set is None or self.dataset is None:
            return
        try:
            check_compatible(self.keypoint_set, self.model_set, self.label, "the model")
        except DataError as exc:
            self.model_problem = f"{exc.reason}: the model is not used on this dataset"

    def truth_for_predictions(self, rows) -> np.ndarray:
        """Ground truth of ``rows`` in the predictions' set (derived when it differs)."""
        truth = self.dataset.keypoints[rows]
        if self.same_set or not derivable(self.keypoint_set, self.prediction_set):
            return truth
        return derive_keypoints(truth, self.keypoint_set, self.prediction_set)

    def clear_predictions(self) -> None:
        if self.dataset is None:
            return
        k2 = 2 * self.prediction_set.size
        self.predictions = np.full((len(self.dataset), k2), np.nan, np.float32)
        self.errors = np.full(len(self.dataset), np.nan)
        self.confidence, self.confidence_source = None, ""
        self.face_confidence = {}

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
        return (f"{tr} train faces ({complete} with all {self.keypoint_set.size} points), {va} "
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
        rows = np.asarray(rows, dtype=int)
        self.predictions[rows] = preds
        self.errors[rows] = face_rmse(self.predictions[rows], self.truth_for_predictions(rows))

    def predictions_state(self) -> tuple:
        """Copies of the predictions, errors and confidence (a face deleted and put back
        keeps them)."""
        copy = (lambda a: None if a is None else a.copy())
        return (copy(self.predictions), copy(self.errors), copy(self.confidence),
                self.confidence_source)

    def restore_predictions(self, state) -> None:
        """Predictions, errors and confidence from :meth:`predictions_state` (of as many faces
        as the dataset has now)."""
        self.predictions, self.errors, self.confidence, self.confidence_source = state
        self.face_confidence = {}

    def has_prediction(self, row: int) -> bool:
        return self.predictions is not None and not np.isnan(self.predictions[row]).all()

    def predicted_rows(self, rows) -> np.ndarray:
        rows = np.asarray(rows, dtype=int)
        return rows[~np.isnan(self.predictions[rows]).all(axis=1)] if len(rows) else rows

    def predicted_errors(self) -> np.ndarray:
        return np.zeros(0) if self.errors is None else self.errors[np.isfinite(self.errors)]

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
        """Set all 2K ground-truth coordinates of a face (NaN = missing); its new error."""
        self.dataset.keypoints[row] = np.asarray(values, dtype=np.float32)
        return self._refresh_error(row)

    def _refresh_error(self, row: int) -> float | None:
        """After an edit of face ``row``'s truth: its error again (None without a prediction)."""
        if not self.has_prediction(row):
            return None
        err = float(face_rmse(self.predictions[row:row + 1],
                              self.truth_for_predictions(slice(row, row + 1)))[0])
        self.errors[row] = err
        return err

    def all_predicted(self) -> bool:
        return (self.predictions is not None and len(self.predictions) > 0
                and not np.isnan(self.predictions).all(axis=1).any())

    def build_queue(self, kind: str, rows=None) -> "ReviewQueue":
        """The review queue of ``kind`` (facekp.core.quality.review) for the dataset as it is now, over
        ``rows`` only (None: every face); the face the queue was at stays its position when
        it is still in it."""

        ds = self.dataset
        if ds is None:
            self.queue = ReviewQueue(kind)
            return self.queue
        predicted = self.predictions if self.all_predicted() and not self.model_problem \
            else None
        q = self.core_queue(kind, predicted)
        keep = np.ones(len(q.rows), bool) if rows is None else np.isin(q.rows, rows)
        at = self.queue.current_row
        self.queue = ReviewQueue(kind, q.rows[keep], q.reasons[keep],
                                 waiting=self.queue_waiting_for(kind))
        if at is not None:
            self.queue.seek(at)
        return self.queue

    def core_queue(self, kind: str, predicted):
        """core's queue of ``kind`` (facekp.core.quality.review.build) for the dataset as it
        is: in the dataset's set, or for a model of a set derived from it against the
        derived truth."""
        from facekp.core.quality import review

        if kind == "missing" or self.same_set:
            return review.build(kind, self.dataset.keypoints, predicted, self.confidence,
                                self.keypoint_set)
        return review.build(kind, self.truth_for_predictions(slice(None)), predicted,
                            self.confidence, self.prediction_set)

    def queue_waiting_for(self, kind: str) -> str:
        """What the queue of ``kind`` still waits for ("" when it is complete)."""
        from facekp.core.quality import review

        if kind in review.NEEDS_PREDICTIONS and self.model_problem:
            return f"a model of {self.keypoint_set.name}"
        if kind in review.NEEDS_PREDICTIONS and not self.all_predicted():
            return "predictions"
        if kind in review.NEEDS_CONFIDENCE and self.confidence is None:
            return "confidence"
        return ""

    def missing_keypoints(self, row: int) -> list[int]:
        kp = self.dataset.keypoints[row].reshape(-1, 2)
        return [k for k in range(len(kp)) if np.isnan(kp[k]).any()]

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
        from facekp.core.quality.review import Reasons

        self.kind = kind
        self.rows = np.asarray(rows, dtype=int)
        #: core's Reasons (written when read) or a list of texts, one a row
        self.reasons = reasons if isinstance(reasons, Reasons) else list(reasons)
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
    """(K, 2) average of each labelled keypoint; the crop's centre where none is labelled."""
    keypoints = np.asarray(keypoints)
    missing = np.isnan(keypoints)
    total = np.where(missing, 0, keypoints).sum(axis=0, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):   # (no nanmean: 3x slower, warns)
        mean = total / (~missing).sum(axis=0)
    return np.where(np.isnan(mean), CENTRE, mean).reshape(-1, 2)


# Errors of any keypoint set: the RMSE over the coordinates both labelled and predicted (a face
# being predicted has NaN rows until its turn, which core's metrics would count as errors).

def _squared(pred, truth) -> tuple[np.ndarray, np.ndarray]:
    pred, truth = np.asarray(pred, np.float64), np.asarray(truth, np.float64)
    mask = ~np.isnan(truth) & ~np.isnan(pred)
    return np.where(mask, (np.nan_to_num(pred) - np.nan_to_num(truth)) ** 2, 0.0), mask


def _rmse(sq, mask, axis) -> np.ndarray:
    count = mask.sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt(np.where(count > 0, sq.sum(axis=axis) / np.maximum(count, 1), np.nan))


def face_rmse(pred, truth) -> np.ndarray:
    """(N,) RMSE in px of each face over its labelled coordinates (N x 2K each), NaN if none."""
    sq, mask = _squared(pred, truth)
    return _rmse(sq, mask, 1)
