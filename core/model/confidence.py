"""Confidence per keypoint: how sure the model is of each point it predicts, 0..1.

What the number means: the estimated probability that the keypoint lies within
``THRESHOLD_PX`` (3 px in the 96x96 crop, about 8% of the eye distance) of where the dataset's
labellers would put it. It comes from a small logistic model (:class:`ConfidenceHead`) over
signals of the prediction itself, fitted on faces with ground truth:

- ``tta``: how far the point moves when the crop is shifted by 2 px, scaled by 0.93 / 1.08 or
  rotated by 8 degrees (``VIEWS``; each view's prediction mapped back), log of the spread of
  those predictions around the final one; the strongest per-point signal measured;
- ``face_peak`` (heatmap models): the mean over the face's K points of the log of each
  heatmap's highest softmax probability (face and mirrored face): a face the model sees
  sharply is predicted well as a whole;
- ``yaw_side``: how far the face is turned (nose tip against the eyes' midpoint, in eye
  distances; for a set without those points, its midline points against the middle of its
  left and right points) times the keypoint's side (+1 left, -1 right, 0 midline, from the
  set's flip pairs): points on the side turned away are harder;
- ``sharpness``: log of the crop's Laplacian variance (a blurred face is labelled and
  predicted less exactly);
- a term per keypoint: some keypoints (eyebrow ends, bottom lip) are harder than others.

The head's coefficients live in a small JSON file beside the model (``NAME.confidence.json``
next to ``NAME.keras``); :func:`fit_head` makes one from a model and labelled faces. How well
the confidence ranks real errors is measured by :func:`ranking_scores` (README, Confidence).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facekp.core.errors import DataError
from facekp.core.model.metrics import point_errors
from facekp.core.data.keypoint_sets import DEFAULT as DEFAULT_SET, KeypointSet
from facekp.core.data.keypoints import IMAGE_SIZE

#: A point counts as "off" when it is more than this many crop pixels from its label.
THRESHOLD_PX = 3.0
#: Re-crops whose predictions' spread is the ``tta`` signal: (degrees, scale, dx px, dy px).
VIEWS = ((0, 1.0, 2, 0), (0, 1.0, -2, 0), (0, 1.0, 0, 2), (0, 1.0, 0, -2),
         (0, 1.08, 0, 0), (0, 0.93, 0, 0), (8, 1.0, 0, 0), (-8, 1.0, 0, 0))
FEATURES = ("tta", "face_peak", "yaw_side", "sharpness")


def sides(keypoint_set: KeypointSet) -> np.ndarray:
    """(K,) +1 for the subject's left keypoints (the first of each flip pair), -1 for the
    right, 0 on the midline."""
    side = np.zeros(keypoint_set.size)
    for left, right in keypoint_set.flip_pairs:
        side[keypoint_set.index(left)], side[keypoint_set.index(right)] = 1.0, -1.0
    return side


def yaw_groups(keypoint_set: KeypointSet) -> tuple[list[int], list[int], list[int]]:
    """(left, right, midline) keypoint indices whose means measure how far a face is turned:
    the eye centres and nose tip where a set has them (Kaggle's), else every left point,
    every right point and every point on the midline (empty lists: the set cannot say)."""
    named = ("left_eye_center", "right_eye_center", "nose_tip")
    if all(n in keypoint_set.names for n in named):
        return tuple([keypoint_set.index(n)] for n in named)  # type: ignore[return-value]
    side = sides(keypoint_set)
    return (list(np.flatnonzero(side > 0)), list(np.flatnonzero(side < 0)),
            list(np.flatnonzero(side == 0)))
FORMAT = "facekp-confidence-1"
SUFFIX = ".confidence.json"


def head_path(model_path: str | Path) -> Path:
    """Where the confidence head of the model at ``model_path`` lives."""
    p = Path(model_path)
    return p.with_name(p.stem + SUFFIX)


# --- signals ----------------------------------------------------------------------------------

def view_matrix(angle: float, scale: float, dx: float, dy: float) -> np.ndarray:
    """2x3 affine map of crop pixels for one re-crop (about the crop centre)."""
    import cv2

    c = (IMAGE_SIZE - 1) / 2
    m = cv2.getRotationMatrix2D((c, c), float(angle), float(scale))
    m[:, 2] += (dx, dy)
    return m


def warp_views(images: np.ndarray, views=VIEWS) -> np.ndarray:
    """(V*N, 96, 96) float32: every face under each view, view by view."""
    import cv2

    out = [cv2.warpAffine(im, view_matrix(*v), (IMAGE_SIZE, IMAGE_SIZE),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
           for v in views for im in np.asarray(images, np.float32)]
    return np.stack(out) if out else np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), np.float32)


def unwarp(keypoints: np.ndarray, view) -> np.ndarray:
    """(N, 2K) keypoints predicted on a view -> the original crop's pixels."""
    a = np.vstack([view_matrix(*view), [0, 0, 1]])
    inv = np.linalg.inv(a)
    kp = np.asarray(keypoints, np.float64)
    p = kp.reshape(len(kp), -1, 2)
    return (p @ inv[:2, :2].T + inv[:2, 2]).reshape(kp.shape)


def tta_spread(final: np.ndarray, views_kp: np.ndarray) -> np.ndarray:
    """(N, K) spread in px of the final keypoints (N, 2K) and the mapped-back view
    predictions (V, N, 2K): the root of the summed x and y variances over the V + 1."""
    final = np.asarray(final, np.float64)
    n, k = final.shape[0], final.shape[1] // 2
    pts = np.concatenate([final[None], np.asarray(views_kp, np.float64).reshape(-1, n, 2 * k)]
                         ).reshape(-1, n, k, 2)
    return np.sqrt(pts.var(axis=0).sum(axis=-1))


def heatmap_peaks(logits: np.ndarray) -> np.ndarray:
    """(N, H, W, K) heatmap logits -> (N, K) highest softmax probability of each map."""
    z = np.asarray(logits, np.float64)
    flat = z.reshape(len(z), -1, z.shape[-1])
    flat = flat - flat.max(axis=1, keepdims=True)
    return 1.0 / np.exp(flat).sum(axis=1)


def signals(final: np.ndarray, views_kp: np.ndarray, peaks: np.ndarray | None,
            peaks_mirrored: np.ndarray | None, images: np.ndarray,
            keypoint_set: KeypointSet = DEFAULT_SET) -> dict[str, np.ndarray]:
    """The head's inputs, each (N, K), from the final keypoints (N, 2K of ``keypoint_set``),
    the re-crops' mapped-back keypoints (V, N, 2K), the heatmap peaks of the faces and of their
    mirror images (N, K each, the latter in the mirror's keypoint order; None for a model
    without heatmaps) and the faces (N, 96, 96): ``tta``, ``face_peak`` (with peaks),
    ``yaw_side`` and ``sharpness``."""
    final = np.asarray(final, np.float64)
    n, k = len(final), keypoint_set.size
    out = {"tta": np.log(tta_spread(final, views_kp) + 0.05)}
    if peaks is not None and peaks_mirrored is not None:
        both = (peaks + peaks_mirrored[:, keypoint_set.flip_order()]) / 2
        out["face_peak"] = _per_face(np.log(both).mean(axis=1), n, k)
    p = final.reshape(n, k, 2)
    left, right, mid = yaw_groups(keypoint_set)
    if left and right and mid:
        lp, rp = p[:, left].mean(axis=1), p[:, right].mean(axis=1)
        iod = np.maximum(np.linalg.norm(lp - rp, axis=1), 1.0)
        yaw = np.clip((p[:, mid, 0].mean(axis=1) - (lp[:, 0] + rp[:, 0]) / 2) / iod, -2, 2)
    else:
        yaw = np.zeros(n)
    out["yaw_side"] = np.nan_to_num(yaw)[:, None] * sides(keypoint_set)[None]
    out["sharpness"] = _per_face(np.log(sharpness(images) + 1.0), n, k)
    return out


def sharpness(images: np.ndarray) -> np.ndarray:
    """(N,) variance of the Laplacian of each face (N, 96, 96): low for blurred faces."""
    import cv2

    return np.array([cv2.Laplacian(np.asarray(im, np.float32), cv2.CV_32F).var()
                     for im in images], np.float64)


def _per_face(values: np.ndarray, n: int, k: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(values, np.float64).reshape(n, 1), (n, k)).copy()


# --- the head ---------------------------------------------------------------------------------

@dataclass
class ConfidenceHead:
    """P(point within ``threshold_px``) = sigmoid(scale * (sum_f w_f * signal_f + b_k) +
    offset), with ``b_k`` one term per keypoint; ``scale`` and ``offset`` recalibrate the
    fitted score on other faces (1 and 0 when not recalibrated)."""
    features: tuple[str, ...]
    weights: np.ndarray            # (F,)
    keypoint_bias: np.ndarray      # (K,)
    scale: float = 1.0
    offset: float = 0.0
    threshold_px: float = THRESHOLD_PX
    views: tuple = VIEWS
    info: dict[str, Any] = field(default_factory=dict)
    #: the K keypoints the bias terms belong to, in the model's order
    keypoint_names: tuple[str, ...] = DEFAULT_SET.names

    def score(self, sig: dict[str, np.ndarray]) -> np.ndarray:
        """(N, K) logit of the point being within ``threshold_px``."""
        z = np.zeros_like(sig["tta"]) + self.keypoint_bias
        for name, w in zip(self.features, self.weights):
            if name not in sig:
                raise ValueError(f"the confidence head needs the signal {name!r}, which this "
                                 "model does not give (heatmap signals need a heatmap model)")
            z = z + w * sig[name]
        return self.scale * z + self.offset

    def confidence(self, sig: dict[str, np.ndarray]) -> np.ndarray:
        """(N, K) float32 confidence in 0..1."""
        return (1.0 / (1.0 + np.exp(-self.score(sig)))).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "meaning": f"probability that the keypoint is within "
                f"{self.threshold_px:g} px (96x96 crop) of its label",
                "threshold_px": self.threshold_px, "features": list(self.features),
                "weights": [float(w) for w in self.weights],
                "keypoint_bias": {n: float(b)
                                  for n, b in zip(self.keypoint_names, self.keypoint_bias)},
                "scale": self.scale, "offset": self.offset,
                "views": [list(v) for v in self.views], "info": self.info}

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str | Path = "confidence head"):
        """Read :meth:`to_dict`'s form; DataError naming ``source`` if it is not one."""
        try:
            if d.get("format") != FORMAT:
                raise ValueError(f"format {d.get('format')!r}, expected {FORMAT!r}")
            unknown = set(d["features"]) - set(FEATURES)
            if unknown or len(d["weights"]) != len(d["features"]):
                raise ValueError(f"features {d['features']} with {len(d['weights'])} weights; "
                                 f"known features: {', '.join(FEATURES)}")
            bias = d["keypoint_bias"]
            if not isinstance(bias, dict) or not bias:
                raise ValueError("keypoint_bias must name each keypoint")
            return cls(tuple(d["features"]), np.asarray(d["weights"], np.float64),
                       np.asarray([float(b) for b in bias.values()], np.float64),
                       float(d["scale"]), float(d["offset"]), float(d["threshold_px"]),
                       tuple(tuple(float(x) for x in v) for v in d["views"]),
                       dict(d.get("info", {})), tuple(str(n) for n in bias))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DataError(source, f"not a confidence head ({exc})") from None

    def save(self, path: str | Path) -> Path:
        from facekp.core.fileio import atomic_path

        path = Path(path)
        with atomic_path(path) as tmp:
            Path(tmp).write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        return path


def load_head(path: str | Path) -> ConfidenceHead:
    """A :class:`ConfidenceHead` from its JSON file (DataError if unreadable)."""
    path = Path(path)
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(path, f"cannot read a confidence head ({exc})") from None
    return ConfidenceHead.from_dict(d, path)


# --- fitting and scoring ----------------------------------------------------------------------

def _design(sig: dict[str, np.ndarray], features) -> np.ndarray:
    n, k = sig["tta"].shape
    cols = [sig[f] for f in features]
    cols += [np.broadcast_to(np.eye(k)[i], (n, k)) for i in range(k)]
    return np.stack(cols, axis=-1).reshape(-1, len(cols))


def logistic_fit(x: np.ndarray, y: np.ndarray, ridge: float = 1e-3,
                 iterations: int = 50) -> np.ndarray:
    """Weights of a logistic regression of 0/1 ``y`` on the columns of ``x`` (Newton's
    method with a small ridge, so separable data still converge)."""
    w = np.zeros(x.shape[1])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(x @ w)))
        grad = x.T @ (p - y) + ridge * w
        hess = (x * (p * (1 - p))[:, None]).T @ x + ridge * np.eye(x.shape[1])
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def fit_head(sig: dict[str, np.ndarray], errors: np.ndarray, features=FEATURES,
             threshold_px: float = THRESHOLD_PX, info: dict | None = None,
             keypoint_names: tuple[str, ...] = DEFAULT_SET.names) -> ConfidenceHead:
    """Fit a head on signals (each (N, K)) and the points' errors (N, K; NaN skipped) of the
    K keypoints ``keypoint_names``."""
    features = tuple(f for f in features if f in sig)
    x, e = _design(sig, features), np.asarray(errors, np.float64).ravel()
    keep = np.isfinite(e)
    if keep.sum() < 10 or (e[keep] > threshold_px).all() or (e[keep] <= threshold_px).all():
        raise ValueError("too few labelled points (or no points on both sides of "
                         f"{threshold_px:g} px) to fit a confidence head")
    w = logistic_fit(x[keep], (e[keep] <= threshold_px).astype(np.float64))
    f = len(features)
    return ConfidenceHead(features, w[:f], w[f:], threshold_px=threshold_px, info=info or {},
                          keypoint_names=tuple(keypoint_names))


def recalibrate(head: ConfidenceHead, sig: dict[str, np.ndarray],
                errors: np.ndarray) -> ConfidenceHead:
    """The head with ``scale`` and ``offset`` refitted (Platt) on other faces' errors, so its
    probabilities match faces the model did not train on; the ranking is unchanged."""
    raw = ConfidenceHead(head.features, head.weights, head.keypoint_bias, 1.0, 0.0,
                         head.threshold_px, head.views, head.info, head.keypoint_names)
    z, e = raw.score(sig).ravel(), np.asarray(errors, np.float64).ravel()
    keep = np.isfinite(e)
    a, b = logistic_fit(np.c_[z[keep], np.ones(keep.sum())],
                        (e[keep] <= head.threshold_px).astype(np.float64))
    return ConfidenceHead(head.features, head.weights, head.keypoint_bias, float(a), float(b),
                          head.threshold_px, head.views, head.info, head.keypoint_names)


def average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x`` with ties sharing their average rank (as ``scipy.stats.rankdata``
    gives them), in numpy alone."""
    x = np.asarray(x, np.float64).ravel()
    ordered = np.sort(x)
    return (np.searchsorted(ordered, x, "left") + np.searchsorted(ordered, x, "right") + 1) / 2


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of ``a`` and ``b`` (ties averaged; NaN when either is
    constant or fewer than 3 values are given)."""
    ra, rb = average_ranks(a), average_ranks(b)
    if len(ra) < 3 or ra.std() == 0 or rb.std() == 0:
        return math.nan
    return float(np.corrcoef(ra, rb)[0, 1])


def auroc(positive: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve of ``score`` for telling the ``positive`` cases (bool) from the
    rest (Mann-Whitney U over average ranks); NaN when either class is empty."""
    pos = np.asarray(positive, bool).ravel()
    n1, n0 = int(pos.sum()), int((~pos).sum())
    if n1 == 0 or n0 == 0:
        return math.nan
    r = average_ranks(score)
    return float((r[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def ranking_scores(confidence: np.ndarray, errors: np.ndarray,
                   threshold_px: float = THRESHOLD_PX) -> dict[str, float]:
    """How well ``confidence`` (N, K) ranks the points' ``errors`` (N, K, px; NaN skipped):

    - ``spearman``: Spearman rank correlation between (1 - confidence) and the error (1 when
      less sure always means further off);
    - ``auroc``: area under the ROC curve of (1 - confidence) for flagging the points more
      than ``threshold_px`` off (0.5: no better than chance);
    - ``off_fraction``: the share of points more than ``threshold_px`` off; ``mean_confidence``
      (compare with ``1 - off_fraction`` for calibration); ``points``: how many were scored;
      ``threshold_px``.
    """
    c, e = np.asarray(confidence, np.float64).ravel(), np.asarray(errors, np.float64).ravel()
    keep = np.isfinite(e) & np.isfinite(c)
    c, e = c[keep], e[keep]
    return {"spearman": spearman(-c, e), "auroc": auroc(e > threshold_px, -c),
            "off_fraction": float((e > threshold_px).mean()) if len(e) else math.nan,
            "mean_confidence": float(c.mean()) if len(c) else math.nan, "points": int(len(e)),
            "threshold_px": float(threshold_px)}


def fit_for_predictor(predictor, fit_faces, calibration_faces=None, features=FEATURES,
                      info: dict | None = None, stop=None) -> ConfidenceHead:
    """A head for ``predictor``'s model: fitted on ``fit_faces`` (a labelled
    :class:`facekp.core.data.dataset.Dataset`, e.g. the training people), its probabilities then
    recalibrated on ``calibration_faces`` (other people, e.g. the validation split) if given.
    Heatmap signals are used only when the model has a layer named ``heatmaps``. ``stop``: a
    callable asked between chunks of faces (e.g. a trainer's stop request); when it says True
    the fit ends with :class:`facekp.core.model.train_types.StopRequested`."""
    names = {layer.name for layer in predictor.model.layers}
    features = tuple(f for f in features if f != "face_peak" or "heatmaps" in names)
    maps = "face_peak" in features
    kp, sig = predictor.confidence_signals(fit_faces.images, VIEWS, maps, stop=stop)
    head = fit_head(sig, point_errors(kp, fit_faces.keypoints), features, info=info,
                    keypoint_names=predictor.keypoint_set.names)
    if calibration_faces is not None and len(calibration_faces):
        kp, sig = predictor.confidence_signals(calibration_faces.images, head.views, maps,
                                               stop=stop)
        head = recalibrate(head, sig, point_errors(kp, calibration_faces.keypoints))
    return head
