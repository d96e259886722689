"""RMSE in pixels, masked: hand-computed small cases, and evaluate() through a real model."""
from __future__ import annotations

import math

import numpy as np
import pytest

from facekp.core.model import metrics
from facekp.core.quality import evaluate as ev
from facekp.core.data.keypoints import NAMES


def _arrays():
    truth = np.full((2, 30), np.nan)
    pred = np.zeros((2, 30))
    # face 0: left eye (3, 4) off, nose x only labelled and 2 off
    truth[0, 0:2] = [10, 20]
    pred[0, 0:2] = [13, 24]
    truth[0, 20] = 50
    pred[0, 20] = 52
    # face 1: left eye exact, bottom lip 1 px off in x and y
    truth[1, 0:2] = [30, 40]
    pred[1, 0:2] = [30, 40]
    truth[1, 28:30] = [48, 80]
    pred[1, 28:30] = [49, 81]
    pred[np.isnan(truth)] = 1e6  # predictions where nothing is labelled must not count
    return pred, truth


def test_rmse_over_labelled_coordinates_only():
    pred, truth = _arrays()
    # 9 + 16 + 4 (face 0) + 0 + 0 + 1 + 1 (face 1) over 7 coordinates
    assert metrics.rmse(pred, truth) == pytest.approx(math.sqrt(31 / 7))


def test_per_keypoint():
    pred, truth = _arrays()
    kp = metrics.per_keypoint(pred, truth)
    assert kp.shape == (15,)
    assert kp[NAMES.index("left_eye_center")] == pytest.approx(math.sqrt(25 / 4))
    assert kp[NAMES.index("nose_tip")] == pytest.approx(2.0)  # only x labelled
    assert kp[NAMES.index("mouth_center_bottom_lip")] == pytest.approx(1.0)
    never = [i for i, n in enumerate(NAMES)
             if n not in ("left_eye_center", "nose_tip", "mouth_center_bottom_lip")]
    assert np.isnan(kp[never]).all()


def test_per_image():
    pred, truth = _arrays()
    pred = np.vstack([pred, np.zeros((1, 30))])
    truth = np.vstack([truth, np.full((1, 30), np.nan)])
    img = metrics.per_image(pred, truth)
    assert img[0] == pytest.approx(math.sqrt(29 / 3))
    assert img[1] == pytest.approx(math.sqrt(2 / 4))
    assert np.isnan(img[2])  # nothing labelled


def test_shapes_must_agree():
    with pytest.raises(ValueError):
        metrics.rmse(np.zeros((2, 30)), np.zeros((3, 30)))
    with pytest.raises(ValueError):
        metrics.rmse(np.zeros((2, 28)), np.zeros((2, 28)))


def test_evaluate_a_saved_model_on_real_faces(faces, constant_model, tmp_path):
    subset = faces.split("val").subset(np.arange(40))
    constant = np.nanmean(faces.split("train").keypoints, axis=0)
    path = tmp_path / "mean.keras"
    constant_model(constant).save(path)
    result = ev.evaluate(path, subset)
    assert set(result) == {"rmse_px", "per_keypoint", "faces", "confidence"}
    assert result["confidence"] is None  # no confidence head beside this model
    assert result["faces"] == 40
    # evaluate scores what Predictor gives: the face and its mirror image averaged
    from facekp.core.data.keypoints import flip_keypoints

    pred = np.tile((constant + flip_keypoints(constant)) / 2, (40, 1))
    truth = subset.keypoints.astype(np.float64)
    mask = ~np.isnan(truth)
    expected = math.sqrt(((pred - truth)[mask] ** 2).mean())
    assert result["rmse_px"] == pytest.approx(expected, rel=1e-5)
    assert list(result["per_keypoint"]) == list(NAMES)
    for i, name in enumerate(NAMES):
        m = mask[:, 2 * i:2 * i + 2]
        d = (pred - truth)[:, 2 * i:2 * i + 2][m]
        assert result["per_keypoint"][name] == pytest.approx(math.sqrt((d ** 2).mean()),
                                                             rel=1e-5)


def test_evaluate_refuses_unlabelled_faces(faces, constant_model):
    from facekp.core.data.dataset import Dataset
    from facekp.core.errors import FacekpError

    unlabelled = Dataset.from_arrays(faces.images[:3])
    with pytest.raises(FacekpError, match="no keypoints"):
        ev.evaluate(constant_model(np.zeros(30)), unlabelled)


def test_point_errors_are_distances_per_keypoint_with_nan_for_missing():
    from facekp.core.model.metrics import point_errors

    truth = np.zeros((2, 30))
    pred = np.zeros((2, 30))
    pred[0, 0:2] = (3.0, 4.0)          # left eye centre 5 px off
    truth[1, 2:4] = np.nan             # right eye centre unlabelled
    errors = point_errors(pred, truth)
    assert errors.shape == (2, 15) and errors[0, 0] == 5.0 and np.isnan(errors[1, 1])
    assert np.nansum(errors) == 5.0
    np.testing.assert_array_equal(point_errors(pred[0].reshape(15, 2), truth[0]), errors[0])
