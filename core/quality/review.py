"""Review queues: which faces a person should look at first, and why.

A queue is a list of dataset rows in the order to review them, each with a one-line reason.
Four kinds (:data:`KINDS`):

- ``worst``: faces with ground truth and a prediction, largest per-face RMSE first;
- ``unsure``: predicted faces, lowest confidence first (no ground truth needed);
- ``suspect``: suspected label errors: labels whose left and right look swapped (the labels
  match the prediction better with left and right exchanged), then labelled points far from a
  prediction the model is sure of;
- ``missing``: faces with missing points, most missing first.

Keypoints are those of a keypoint set (``keypoint_set``, Kaggle's 15 by default): ground truth
and predictions (N, 2K); reasons name its points and left/right swaps use its flip pairs.

Confidence is an input, not computed here: ``confidence`` is (N, K), one number per keypoint,
higher = surer, NaN where unknown; only its order matters (the ``suspect`` queue turns it into
a rank between 0 and 1). Until the model gives a confidence of its own,
:func:`flip_confidence` is the stand-in: how well the prediction of a face agrees with the
prediction of its mirror image mapped back (:func:`flip_disagreement`).

A queue's reasons are written when they are read (:class:`Reasons`): a queue of 40,000 faces
is built in milliseconds, and a person reads a few dozen of its reasons.

Plain numpy; the app (facekp.gui.review) and any command line can use it.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from facekp.core.data.keypoint_sets import DEFAULT as DEFAULT_SET, KeypointSet
from facekp.core.data.keypoints import column_permutation
from facekp.core.model.metrics import point_errors

#: Queue kinds, as people read them.
KINDS: dict[str, str] = {
    "worst": "Worst RMSE first",
    "unsure": "Least sure first",
    "suspect": "Suspected label errors",
    "missing": "Missing points",
}
#: Kinds that need every face predicted; ``unsure`` and ``suspect`` use confidence too.
NEEDS_PREDICTIONS = ("worst", "unsure", "suspect")
NEEDS_CONFIDENCE = ("unsure", "suspect")

#: A labelled point this far from its prediction (px) is a suspect when the model is sure.
FAR_PX = 4.0
#: ...and "sure" means a confidence ranked in the surer half of all predicted points.
SURE_RANK = 0.5
#: Left/right swapped labels: the RMSE over the left/right keypoints must at least halve and
#: fall by this many px when left and right are exchanged.
SWAP_MIN_GAIN_PX = 2.0
#: The stand-in confidence is exp(-disagreement / this many px).
FLIP_SCALE_PX = 2.0



def paired(keypoint_set: KeypointSet = DEFAULT_SET) -> np.ndarray:
    """Indices of the keypoints that have a left/right partner (the others map to
    themselves)."""
    return np.flatnonzero(keypoint_set.flip_order() != np.arange(keypoint_set.size))


def _namer(keypoint_set: KeypointSet):
    return lambda k: keypoint_set.names[k].replace("_", " ")


class Reasons(Sequence):
    """The reasons of a queue's rows, each written when it is read: ``say(row)`` writes the
    reason of a dataset row; ``rows`` are the rows in queue order. Indexing with an int gives
    one reason; with a slice, a boolean mask or an index array, the reasons of those rows
    (again unwritten)."""

    def __init__(self, say: Callable[[int], str], rows=()):
        self._say = say
        self.rows = np.asarray(rows, dtype=int)

    def say(self, row: int) -> str:
        """The reason of dataset row ``row`` (meaningful for a row of this queue)."""
        return self._say(int(row))

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index):
        if isinstance(index, (int, np.integer)):
            return self._say(int(self.rows[index]))
        return Reasons(self._say, self.rows[index])


def _no_reasons() -> Reasons:
    return Reasons(str, ())


@dataclass
class Queue:
    """Rows of a dataset in review order, each with its reason (``reasons[i]`` is the reason
    of ``rows[i]``)."""
    kind: str
    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    reasons: Reasons = field(default_factory=_no_reasons)

    def __len__(self) -> int:
        return len(self.rows)


def build(kind: str, truth: np.ndarray, predictions: np.ndarray | None = None,
          confidence: np.ndarray | None = None,
          keypoint_set: KeypointSet = DEFAULT_SET) -> Queue:
    """The queue of ``kind`` for ground truth (N, 2K), predictions (N, 2K; NaN rows: not
    predicted) and per-keypoint confidence (N, K, higher = surer) of ``keypoint_set``."""
    if kind not in KINDS:
        raise ValueError(f"unknown review queue {kind!r}; expected one of {', '.join(KINDS)}")
    truth = np.asarray(truth, dtype=np.float64)
    if kind == "missing":
        return missing_queue(truth, keypoint_set)
    if predictions is None:
        return Queue(kind)
    predictions = np.asarray(predictions, dtype=np.float64)
    if kind == "worst":
        return worst_queue(truth, predictions, keypoint_set)
    if confidence is None:
        return Queue(kind)
    confidence = np.asarray(confidence, dtype=np.float64)
    if kind == "unsure":
        return unsure_queue(face_confidence(confidence), confidence, keypoint_set)
    return suspect_queue(truth, predictions, confidence, keypoint_set)


def missing_queue(truth: np.ndarray, keypoint_set: KeypointSet = DEFAULT_SET) -> Queue:
    """Faces with missing points, most missing first (then in dataset order)."""
    _name = _namer(keypoint_set)
    missing = np.isnan(truth.reshape(len(truth), keypoint_set.size, 2)).any(axis=2)
    count = missing.sum(axis=1)
    rows = np.flatnonzero(count)
    rows = rows[np.argsort(-count[rows], kind="stable")]

    def say(r: int) -> str:
        names = [_name(k) for k in np.flatnonzero(missing[r])]
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        return f"{count[r]} point{'s' if count[r] > 1 else ''} missing: {shown}"
    return Queue("missing", rows, Reasons(say, rows))


def _face_rmse(truth: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    sq = predictions - truth
    sq *= sq
    known = np.isfinite(sq)
    count = known.sum(axis=1)
    total = np.where(known, sq, 0.0).sum(axis=1)      # (nansum: twice the time)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt(np.where(count > 0, total / np.maximum(count, 1), np.nan))


def worst_queue(truth: np.ndarray, predictions: np.ndarray,
                keypoint_set: KeypointSet = DEFAULT_SET) -> Queue:
    """Faces with ground truth and a prediction, largest per-face RMSE first."""
    _name = _namer(keypoint_set)
    err = _face_rmse(truth, predictions)
    rows = np.flatnonzero(np.isfinite(err))
    rows = rows[np.argsort(-err[rows], kind="stable")]
    dist = point_errors(truth, predictions)
    worst = np.argmax(np.where(np.isnan(dist), -1.0, dist), axis=1)
    return Queue("worst", rows, Reasons(
        lambda r: f"RMSE {err[r]:.2f} px (worst point: {_name(worst[r])})", rows))


def face_confidence(confidence: np.ndarray) -> np.ndarray:
    """(N,) a face's confidence: the mean over its keypoints (NaN if none is known). The mean
    ranks faces by their RMSE better than the least sure keypoint does with the stand-in
    (Spearman 0.40 against 0.36 on the 389 test faces, default model)."""
    confidence = np.asarray(confidence, dtype=np.float64)
    known = np.isfinite(confidence).any(axis=1)
    out = np.full(len(confidence), np.nan)
    out[known] = np.nanmean(confidence[known], axis=1)
    return out


def unsure_queue(face_score: np.ndarray, confidence: np.ndarray | None = None,
                 keypoint_set: KeypointSet = DEFAULT_SET) -> Queue:
    """Faces by ``face_score`` (a per-face confidence, higher = surer), least sure first;
    with the per-keypoint ``confidence`` the reason names the least sure point."""
    _name = _namer(keypoint_set)
    face_score = np.asarray(face_score, dtype=np.float64)
    rows = np.flatnonzero(np.isfinite(face_score))
    rows = rows[np.argsort(face_score[rows], kind="stable")]

    def say(r: int) -> str:
        text = f"confidence {face_score[r]:.2f}"
        if confidence is not None and np.isfinite(confidence[r]).any():
            text += f" (least sure point: {_name(int(np.nanargmin(confidence[r])))})"
        return text
    return Queue("unsure", rows, Reasons(say, rows))


def swap_left_right(keypoints: np.ndarray,
                    keypoint_set: KeypointSet = DEFAULT_SET) -> np.ndarray:
    """Labels with each left keypoint exchanged with its right partner (no mirroring)."""
    return np.asarray(keypoints)[..., column_permutation(keypoint_set.flip_order())]


def swapped_gain(truth: np.ndarray, predictions: np.ndarray,
                 keypoint_set: KeypointSet = DEFAULT_SET) -> tuple[np.ndarray, np.ndarray]:
    """(RMSE as labelled, RMSE with left and right exchanged) over each face's left/right
    keypoints, px; NaN where no pair is labelled and predicted."""
    cols = column_permutation(paired(keypoint_set))
    swapped = swap_left_right(truth, keypoint_set)
    return (_face_rmse(truth[:, cols], predictions[:, cols]),
            _face_rmse(swapped[:, cols], predictions[:, cols]))


def confidence_rank(confidence: np.ndarray) -> np.ndarray:
    """(N, K) each confidence as its rank among all known ones, 0 (least sure) to 1; equal
    values share their average rank."""
    confidence = np.asarray(confidence, dtype=np.float64)
    out = np.full(confidence.shape, np.nan)
    known = np.isfinite(confidence)
    values = confidence[known]
    if len(values):
        ordered = np.sort(values)
        first = np.searchsorted(ordered, values, "left")
        last = np.searchsorted(ordered, values, "right") - 1
        out[known] = (first + last) / 2 / max(len(values) - 1, 1)
    return out


def suspect_queue(truth: np.ndarray, predictions: np.ndarray, confidence: np.ndarray,
                  keypoint_set: KeypointSet = DEFAULT_SET) -> Queue:
    """Suspected label errors: swapped left/right labels first (largest gain first), then
    faces with a labelled point more than :data:`FAR_PX` from a prediction in the surer half
    (by distance times confidence rank)."""
    _name = _namer(keypoint_set)
    as_labelled, swapped = swapped_gain(truth, predictions, keypoint_set)
    with np.errstate(invalid="ignore"):
        is_swap = (swapped <= 0.5 * as_labelled) & (as_labelled - swapped >= SWAP_MIN_GAIN_PX)
    swap_rows = np.flatnonzero(is_swap)
    swap_rows = swap_rows[np.argsort(-(as_labelled - swapped)[swap_rows], kind="stable")]

    dist = point_errors(truth, predictions)
    rank = confidence_rank(confidence)
    with np.errstate(invalid="ignore"):
        score = np.where((dist > FAR_PX) & (rank >= SURE_RANK), dist * rank, np.nan)
    face = np.where(np.isfinite(score).any(axis=1), np.nanmax(
        np.where(np.isfinite(score), score, -1.0), axis=1), np.nan)
    face[swap_rows] = np.nan
    far_rows = np.flatnonzero(np.isfinite(face))
    far_rows = far_rows[np.argsort(-face[far_rows], kind="stable")]

    def say(r: int) -> str:
        if is_swap[r]:
            return (f"left/right labels look swapped: RMSE {as_labelled[r]:.1f} px as "
                    f"labelled, {swapped[r]:.1f} px with left and right exchanged")
        k = int(np.nanargmax(np.where(np.isfinite(score[r]), score[r], -1.0)))
        return (f"{_name(k)} label is {dist[r, k]:.1f} px from a sure prediction "
                f"(surer than {100 * rank[r, k]:.0f} % of points)")
    rows = np.concatenate([swap_rows, far_rows]).astype(int)
    return Queue("suspect", rows, Reasons(say, rows))


# --- the stand-in confidence: agreement between a face and its mirror image -----------------

def single_view(predictor):
    """A Predictor of the same model without flip averaging (``predictor`` itself when it
    has none); ``predictor`` may be a Keras model."""
    from facekp.core.model.predict import Predictor

    if isinstance(predictor, Predictor) and not predictor.flip_average:
        return predictor
    if isinstance(predictor, Predictor):
        return Predictor(predictor.model, flip_average=False, confidence=None,
                         keypoint_set=predictor.keypoint_set)
    return Predictor(predictor, flip_average=False, confidence=None)


def flip_disagreement(predictor, images: np.ndarray) -> np.ndarray:
    """(N, K) px between each keypoint predicted on the face and on its mirror image mapped
    back (left and right exchanged), by the model of ``predictor`` without flip averaging
    (:func:`single_view`; pass its result to avoid tracing the model again)."""
    from facekp.core.data.keypoints import flip_images

    single = single_view(predictor)
    direct = single.predict(images).astype(np.float64)
    mirrored = single.keypoint_set.flip(single.predict(flip_images(images))).astype(np.float64)
    return point_errors(direct, mirrored)


def flip_confidence(disagreement: np.ndarray) -> np.ndarray:
    """The stand-in confidence, 1 where the two views agree exactly, falling with their
    disagreement (px): exp(-d / :data:`FLIP_SCALE_PX`)."""
    return np.exp(-np.asarray(disagreement, dtype=np.float64) / FLIP_SCALE_PX)
