"""A model scored on a dataset's faces: RMSE in pixels overall, per keypoint and per face (the
metrics themselves: :mod:`facekp.core.model.metrics`), the normalised mean error (NME) by the
set's normaliser, its report, and left/right diagnostics.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from facekp.core.data.keypoint_sets import check_compatible
from facekp.core.errors import DataError, FacekpError
from facekp.core.model.metrics import nme, per_keypoint, point_errors, rmse


def evaluate(predictor_or_model_path: Any, dataset) -> dict[str, Any]:
    """Predict ``dataset`` and score it: ``{"keypoint_set", "rmse_px", "nme", "nme_by",
    "per_keypoint": {name: px}, "faces", "confidence"}``.

    ``nme``: each face's mean point distance over the labelled distance between the two points
    ``nme_by`` names (the set's ``normalise_by``: the outer eye corners for ibug68, the eye
    centres for kaggle15), averaged over faces that have both; None (with ``nme_by`` None) for
    a set without such a pair.

    ``predictor_or_model_path``: a :class:`facekp.core.model.predict.Predictor`, a ``.keras`` path
    or a Keras model. ``dataset``: a :class:`facekp.core.data.dataset.Dataset`, or streamed faces
    (:class:`facekp.core.data.shards.ShardSplit`: predicted batch by batch, only the keypoints
    kept). A keypoint never labelled in the dataset scores ``None``; one the model predicts as NaN
    or infinity scores NaN (so the JSON counts it as the model's). ``confidence`` is None when the
    model has no confidence head (:mod:`facekp.core.model.confidence`); otherwise
    :func:`facekp.core.model.confidence.ranking_scores` of the keypoint confidences against the
    points' errors, with ``per_keypoint``: each keypoint's mean confidence.
    """
    from facekp.core.model.predict import Predictor

    if len(dataset) == 0:
        raise FacekpError("no faces to evaluate")
    if dataset.labelled == 0:
        raise FacekpError("the faces have no keypoints labelled, so there is nothing to "
                          "compare predictions with")
    predictor = (predictor_or_model_path if isinstance(predictor_or_model_path, Predictor)
                 else Predictor(predictor_or_model_path))
    dataset = in_model_set(dataset, predictor.keypoint_set)
    pred, truth, conf = _predicted(predictor, dataset)
    kset = predictor.keypoint_set
    names = kset.names
    conf_scores = None
    if conf is not None:
        from facekp.core.model.confidence import ranking_scores

        conf_scores = ranking_scores(conf, point_errors(pred, truth),
                                     predictor.confidence_head.threshold_px)
        conf_scores["per_keypoint"] = {n: float(v) for n, v in zip(names, conf.mean(axis=0))}
    kp = per_keypoint(pred, truth)
    # None: never labelled; NaN (null in the JSON, and counted in its warning): labelled, but
    # the model's output is not finite
    labelled = ~np.isnan(np.asarray(truth, np.float64)).reshape(len(truth), -1, 2).all(axis=(0, 2))
    return {
        "keypoint_set": kset.name,
        "rmse_px": rmse(pred, truth),
        "nme": nme(pred, truth, kset) if kset.normalise_by else None,
        "nme_by": list(kset.normalise_by) if kset.normalise_by else None,
        "per_keypoint": {name: float(v) if seen else None
                         for name, v, seen in zip(names, kp, labelled)},
        "faces": int(len(truth)),
        "confidence": conf_scores,
    }


def in_model_set(dataset, model_set):
    """``dataset`` with its keypoints in the set a model predicts (an ibug68 dataset scored by
    a kaggle15 model is derived to kaggle15); a DataError naming both sets when that cannot
    be (streamed shards of another set are not derived)."""
    data_set = dataset.keypoint_set
    check_compatible(data_set, model_set, "the dataset", "the model")
    if data_set == model_set:
        return dataset
    if not hasattr(dataset, "in_set"):
        raise DataError(None, f"the shards hold keypoint set {data_set.name!r} and the model "
                              f"predicts {model_set.name!r}: read them into a .npz first")
    return dataset.in_set(model_set)


def _predicted(predictor, dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(predictions, ground truth), both (N, 2K), and the keypoint confidences (N, K; None
    without a confidence head): in one go for faces in memory, batch by batch for a stream."""
    sure = predictor.confidence_head is not None

    def run(images):
        return predictor.predict_with_confidence(images) if sure else \
            (predictor.predict(images), None)

    if not hasattr(dataset, "batches"):
        pred, conf = run(dataset.images)
        return pred, dataset.keypoints, conf
    preds, truths, confs = [], [], []
    for part in dataset.batches():
        pred, conf = run(part["image"])
        preds.append(pred)
        truths.append(part["keypoints"])
        confs.append(conf)
    return (np.concatenate(preds), np.concatenate(truths),
            np.concatenate(confs) if sure else None)


def format_report(result: dict[str, Any], title: str | Path | None = None) -> str:
    """A human-readable table of :func:`evaluate`'s result."""
    lines = []
    if title:
        lines.append(str(title))
    lines.append(f"RMSE {result['rmse_px']:.3f} px over {result['faces']} faces"
                 + (f" ({result['keypoint_set']})" if result.get("keypoint_set") else ""))
    if result.get("nme") is not None:
        lines.append(f"NME {result['nme']:.4f} (mean point distance / distance "
                     f"{' - '.join(result['nme_by'])})")
    width = max(len(n) for n in result["per_keypoint"])
    for name, v in result["per_keypoint"].items():
        lines.append(f"  {name:<{width}}  " + ("   n/a" if v is None else f"{v:6.3f} px"))
    c = result.get("confidence")
    if c:
        t = f"{c['threshold_px']:g} px"
        lines.append(f"keypoint confidence: mean {c['mean_confidence']:.3f} (share within {t}: "
                     f"{1 - c['off_fraction']:.3f}); ranks errors with Spearman "
                     f"{c['spearman']:.3f}, AUROC {c['auroc']:.3f} for points > {t} off")
    return "\n".join(lines)


def flip_diagnostics(predictor_or_model: Any, dataset) -> dict[str, float]:
    """Left/right checks of a model on ``dataset``'s labelled faces, in pixels:

    - ``mean_dx``, ``mean_dy``: mean signed error (prediction - label) over labelled
      coordinates; a model without a left/right bias has both near 0;
    - ``flip_dx_mean``, ``flip_dx_rms``: each face mirrored
      (``facekp.core.data.keypoints.flip_images``), predicted and mapped back (``flip_keypoints``),
      minus the direct prediction, in x; a flip-consistent model has a mean near 0;
    - ``rmse``, ``rmse_flipped``, ``rmse_averaged``: direct, mirrored-and-mapped-back, and the
      mean of the two (test-time flip averaging).
    """
    from facekp.core.data.keypoints import flip_images
    from facekp.core.quality.review import single_view

    predictor = single_view(predictor_or_model)  # the model alone, without flip averaging
    dataset = in_model_set(dataset, predictor.keypoint_set)
    truth = dataset.keypoints.astype(np.float64)
    direct = predictor.predict(dataset.images).astype(np.float64)
    mirrored = predictor.keypoint_set.flip(
        predictor.predict(flip_images(dataset.images))).astype(np.float64)
    err = direct - truth
    moved = (mirrored - direct)[:, 0::2]
    return {"mean_dx": float(np.nanmean(err[:, 0::2])), "mean_dy": float(np.nanmean(err[:, 1::2])),
            "flip_dx_mean": float(moved.mean()), "flip_dx_rms": float(np.sqrt((moved ** 2).mean())),
            "rmse": rmse(direct, truth), "rmse_flipped": rmse(mirrored, truth),
            "rmse_averaged": rmse((direct + mirrored) / 2, truth)}
