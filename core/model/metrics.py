"""Metrics in pixels of the 96x96 crop, over the labelled coordinates only: RMSE overall, per
keypoint and per face, and each keypoint's distance from its label.

Every function takes predictions and ground truth as (N, 30) arrays (Kaggle column order). A
coordinate whose ground truth is NaN (missing) is left out; the RMSE is taken over coordinates
(x and y count separately), as Kaggle scores it and as
:class:`facekp.core.model.architectures.MaskedRMSE` computes it during training. Where nothing is
labelled the result is NaN.
"""
from __future__ import annotations

import numpy as np

from facekp.core.data.keypoints import NUM_KEYPOINTS


def _squared(pred, truth) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    if pred.shape != truth.shape or pred.ndim != 2 or pred.shape[1] != 2 * NUM_KEYPOINTS:
        raise ValueError(f"predictions {pred.shape} and ground truth {truth.shape} must both be "
                         f"N x {2 * NUM_KEYPOINTS}")
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
    """(N, 15) distance in px between each predicted keypoint and its label (NaN where either
    is missing); a single face (15, 2) or (30,) gives (15,)."""
    p, t = np.asarray(pred, np.float64), np.asarray(truth, np.float64)
    single = p.size == 2 * NUM_KEYPOINTS and t.size == 2 * NUM_KEYPOINTS and \
        (p.ndim == 1 or p.shape == (NUM_KEYPOINTS, 2))
    d = (p - t.reshape(p.shape)).reshape(-1, NUM_KEYPOINTS, 2)
    out = np.hypot(d[..., 0], d[..., 1])
    return out[0] if single else out


def per_keypoint(pred, truth) -> np.ndarray:
    """(15,) RMSE in pixels of each keypoint (over its labelled x and y), NaN if never labelled."""
    sq, mask = _squared(pred, truth)
    n = len(sq)
    return _rmse(sq.reshape(n, NUM_KEYPOINTS, 2), mask.reshape(n, NUM_KEYPOINTS, 2), axis=(0, 2))


def per_image(pred, truth) -> np.ndarray:
    """(N,) RMSE in pixels of each face over its labelled coordinates, NaN if none."""
    sq, mask = _squared(pred, truth)
    return _rmse(sq, mask, axis=1)
