"""RMSE in pixels: overall, per keypoint and per image, over the labelled coordinates only.

Every function takes predictions and ground truth as (N, 30) arrays in pixels of the 96x96 crop
(Kaggle column order). A coordinate whose ground truth is NaN (missing) is left out; the RMSE
is taken over coordinates (x and y count separately), as Kaggle scores it and as
:class:`core.model.MaskedRMSE` computes it during training. Where nothing is labelled the
result is NaN.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .errors import FacekpError
from .keypoints import NAMES, NUM_KEYPOINTS


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


def per_keypoint(pred, truth) -> np.ndarray:
    """(15,) RMSE in pixels of each keypoint (over its labelled x and y), NaN if never labelled."""
    sq, mask = _squared(pred, truth)
    n = len(sq)
    return _rmse(sq.reshape(n, NUM_KEYPOINTS, 2), mask.reshape(n, NUM_KEYPOINTS, 2), axis=(0, 2))


def per_image(pred, truth) -> np.ndarray:
    """(N,) RMSE in pixels of each face over its labelled coordinates, NaN if none."""
    sq, mask = _squared(pred, truth)
    return _rmse(sq, mask, axis=1)


def evaluate(predictor_or_model_path: Any, dataset) -> dict[str, Any]:
    """Predict ``dataset`` and score it: ``{"rmse_px", "per_keypoint": {name: px}, "faces"}``.

    ``predictor_or_model_path``: a :class:`core.predict.Predictor`, a ``.keras`` path or a
    Keras model. A keypoint never labelled in the dataset scores ``None``.
    """
    from .predict import Predictor

    if len(dataset) == 0:
        raise FacekpError("no faces to evaluate")
    if np.isnan(dataset.keypoints).all():
        raise FacekpError("the faces have no keypoints labelled, so there is nothing to "
                          "compare predictions with")
    predictor = (predictor_or_model_path if isinstance(predictor_or_model_path, Predictor)
                 else Predictor(predictor_or_model_path))
    pred = predictor.predict(dataset.images)
    kp = per_keypoint(pred, dataset.keypoints)
    return {
        "rmse_px": rmse(pred, dataset.keypoints),
        "per_keypoint": {name: (None if np.isnan(v) else float(v)) for name, v in zip(NAMES, kp)},
        "faces": int(len(dataset)),
    }


def format_report(result: dict[str, Any], title: str | Path | None = None) -> str:
    """A human-readable table of :func:`evaluate`'s result."""
    lines = []
    if title:
        lines.append(str(title))
    lines.append(f"RMSE {result['rmse_px']:.3f} px over {result['faces']} faces")
    width = max(len(n) for n in NAMES)
    for name, v in result["per_keypoint"].items():
        lines.append(f"  {name:<{width}}  " + ("   n/a" if v is None else f"{v:6.3f} px"))
    return "\n".join(lines)
