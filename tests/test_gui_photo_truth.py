"""A photo with ground truth beside it, opened in the real app (offscreen): truth drawn against
the prediction, the face's per-keypoint errors in the Keypoint errors dock, its NME in the
status bar and the hover text; a broken truth file is named and the photo still shown."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from facekp.core.model import metrics
from facekp.core.photos.photo_truth import nme
from test_photo_truth import PHOTO, pts_68, ytf68_points

pytestmark = pytest.mark.usefixtures("gui_settings")


def test_photo_with_truth_shows_errors_and_nme(qtbot, open_window, real_subset_npz,
                                               shared_data, tmp_path):
    photo = tmp_path / PHOTO
    shutil.copy(shared_data / "ytf68" / "test" / PHOTO, photo)
    pts = photo.with_suffix(".pts")
    pts.write_text(pts_68(ytf68_points(shared_data)))
    window = open_window(qtbot, data=str(real_subset_npz("truth-gui", train=8, val=4)))
    assert window.predictor is not None                     # the shipped model
    with qtbot.waitSignal(window.photoShown, timeout=60_000):
        window.open_photo(photo)

    assert window.photo.truth.source == pts and len(window.canvas.faces) == 1
    score = window.photo.scores[0]
    kp = window.photo.faces[0][1]
    errors = window.kp_view.current
    assert errors.shape == (15,) and np.isfinite(errors).all() and (errors > 0).all()
    np.testing.assert_allclose(errors, metrics.point_errors(kp, score.truth))
    np.testing.assert_allclose(errors, score.errors)          # the hover's figure too
    assert window.kp_view.horizontalHeaderItem(1).text() == "face 1 (px)"
    assert score.nme == pytest.approx(nme(kp, score.truth)) and 0 < score.nme < 0.15
    status = window.statusBar().currentMessage()
    assert f"ground truth from {pts.name}: face 1 NME {score.nme:.3f}" in status
    hover = window.canvas.describe_point(10, "prediction", 0)
    assert "ground truth" in hover and f"face NME {score.nme:.3f}" in hover

    pts.write_text("version: 1\nn_points: 68\n{\n1 2\n}\n")          # broken
    with qtbot.waitSignal(window.photoShown, timeout=60_000):
        window.open_photo(photo)
    assert window.photo.truth is None and len(window.canvas.faces) == 1
    status = window.statusBar().currentMessage()
    assert f"ground truth not used: {pts}" in status and "holds 1 points" in status
    assert np.isnan(window.kp_view.current).all()
    assert window.kp_view.horizontalHeaderItem(2).text() == "no truth"
