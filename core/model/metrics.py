"""Metrics in pixels of the 96x96 crop, over the labelled coordinates only: RMSE overall, per
keypoint and per face, and each keypoint's distance from its label.

Every function takes predictions and ground truth as (N, 2K) arrays (the K keypoints of a set,
x then y, in its order; Kaggle's 30 columns for kaggle15). A
coordinate whose ground truth is NaN (missing) is left out; the RMSE is taken over coordinates
(x and y count separately), as Kaggle scores it and as
:class:`facekp.core.model.architectures.MaskedRMSE` computes it during training. Where nothing is
labelled the result is NaN. :func:`nme` normalises each face's mean point distance by the
distance between two of its labelled points that the keypoint set names (``normalise_by``).
"""
from __future__ import annotations

import numpy as np



def _squared(pred, truth) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    if pred.shape != truth.shape or pred.ndim != 2 or pred.shape[1] % 2:
        raise ValueError(f"predictions {pred.shape} and ground truth {truth.shape} must both be "
                         "N x 2K (x and y of K keypoints)")
    mask = ~np.isnan(truth)
    sq = np.where(mask, (pred - np.where(mask, truth, 0.0)) ** 2, 0.0)
    return sq, mask


def _rmse(sq: np.ndarray, mask: np.ndarray, axis=None) -> np.ndarray:
    count = mask.sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt(np.where(count > 0, sq.sum(axis=axis) / np.maximum(count, 1), np.nan))


def rmse(pred, truth) -> float:
    """RMSE in pixels over every labelled coordinate."""
    sq, mask = _squared(pred, truth)
    return float(_rmse(sq, mask))


def point_errors(pred, truth) -> np.ndarray:
    """(N, K) distance in px between each predicted keypoint (N, 2K) and its label (NaN where
    either is missing); a single face (K, 2) or (2K,) gives (K,)."""
    p, t = np.asarray(pred, np.float64), np.asarray(truth, np.float64)
    if p.size != t.size or p.size % 2:
        raise ValueError(f"predictions {p.shape} and ground truth {t.shape} must hold the same "
                         "x, y pairs")
    if p.ndim == 1 or (p.ndim == 2 and p.shape[1] == 2):  # one face
        d = (p - t.reshape(p.shape)).reshape(-1, 2)
    else:
        d = (p - t.reshape(p.shape)).reshape(len(p), p.shape[1] // 2, 2)  # (0 faces: (0, K, 2))
    d *= d       # (np.hypot guards against overflow that px never reach, at twice the time)
    return np.sqrt(d[..., 0] + d[..., 1])


def per_keypoint(pred, truth) -> np.ndarray:
    """(K,) RMSE in pixels of each keypoint (over its labelled x and y), NaN if never labelled."""
    sq, mask = _squared(pred, truth)
    n, k = len(sq), sq.shape[1] // 2
    return _rmse(sq.reshape(n, k, 2), mask.reshape(n, k, 2), axis=(0, 2))


def per_image(pred, truth) -> np.ndarray:
    """(N,) RMSE in pixels of each face over its labelled coordinates, NaN if none."""
    sq, mask = _squared(pred, truth)
    return _rmse(sq, mask, axis=1)


def nme_per_face(pred, truth, keypoint_set) -> np.ndarray:
    """(N,) each face's mean distance between predicted and labelled keypoints divided by the
    labelled distance between the set's two ``normalise_by`` points (the outer eye corners for
    ibug68, the 300-W convention; the eye centres for kaggle15). NaN for a face missing either
    of them or with no labelled point; all NaN when the set names no such pair."""
    p, t = np.asarray(pred, np.float64), np.asarray(truth, np.float64)
    _squared(p, t)  # the shapes' check
    n = len(t)
    if keypoint_set.normalise_by is None:
        return np.full(n, np.nan)
    a, b = (keypoint_set.index(name) for name in keypoint_set.normalise_by)
    pts = t.reshape(n, -1, 2)
    norm = np.hypot(*(pts[:, a] - pts[:, b]).T)
    if not n:
        return np.zeros(0)
    import warnings

    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # a face with no labelled point: NaN
        return np.nanmean(point_errors(p, t), axis=1) / np.where(norm > 0, norm, np.nan)


def nme(pred, truth, keypoint_set) -> float:
    """Mean over faces of :func:`nme_per_face` (faces it gives NaN for left out; NaN when none
    is left)."""
    import warnings

    per = nme_per_face(pred, truth, keypoint_set)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmean(per)) if np.isfinite(per).any() else float("nan")
