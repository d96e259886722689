"""The photo view as a person meets it, in the real app offscreen: Photo > Hide unsure faces /
points say what they hid, the faces' labels stay inside the photo and apart, and a keypoint's
hover text names the point (the model's set) with its own confidence."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QRectF

#: The app's settings and trained models go to a temporary place (conftest.gui_settings).
pytestmark = pytest.mark.usefixtures("gui_settings")


@pytest.fixture(scope="module")
def tiny(real_subset_npz):
    return real_subset_npz("gui-photo-view", train=12, val=4, seed=5)


@pytest.fixture
def crowded(qtbot, tiny, shared_data, open_window):
    """The window at 1280x720 with the shipped model (it has a confidence head) on a photo
    of some twenty faces."""
    window = open_window(qtbot, data=str(tiny))
    window.resize(1280, 720)
    with qtbot.waitSignal(window.photoShown, timeout=60_000):
        window.open_photo(shared_data / "photos" / "bald_guys.jpg")
    assert len(window.photo.faces) >= 20
    return window


def test_hiding_unsure_faces_and_points_says_how_many_were_hidden(crowded, monkeypatch):
    from facekp.gui import canvas as canvas_module
    from facekp.gui import photos as photos_module

    window = crowded
    status = window.statusBar().currentMessage
    faces = window.photo.faces
    n = len(faces)
    confidences = sorted(f[2].confidence for f in faces)
    # nothing below the bar: it says so rather than changing nothing in silence
    for name in ("UNSURE_BELOW", "BLAZE_UNSURE_BELOW"):      # each detector's own bar
        monkeypatch.setattr(photos_module, name, 0.0)
    window.acts["hide_unsure"].setChecked(True)
    assert len(window.canvas.faces) == n
    assert status().startswith("No face is unsure") and str(n) in status()
    window.acts["hide_unsure"].setChecked(False)
    # a bar between the faces' confidences: those under it are hidden, and counted
    bar = confidences[3]
    unsure = sum(c < bar for c in confidences)
    assert 0 < unsure < n
    for name in ("UNSURE_BELOW", "BLAZE_UNSURE_BELOW"):
        monkeypatch.setattr(photos_module, name, bar)
    window.acts["hide_unsure"].setChecked(True)
    assert len(window.canvas.faces) == n - unsure
    assert status().startswith(f"Hid {unsure} of {n} faces")
    window.acts["hide_unsure"].setChecked(False)
    assert len(window.canvas.faces) == n and status().startswith(f"Showing all {n} faces")

    conf = np.concatenate([f[4] for f in faces])
    assert len(conf) == n * window.predictor.keypoint_set.size       # K points, the model's
    monkeypatch.setattr(canvas_module, "UNSURE_POINT_BELOW", 0.0)
    window.acts["hide_unsure_points"].setChecked(True)
    assert status().startswith("No point is unsure")
    window.acts["hide_unsure_points"].setChecked(False)
    below = float(np.median(conf))
    monkeypatch.setattr(canvas_module, "UNSURE_POINT_BELOW", below)
    hidden = int((conf < below).sum())
    on_faces = sum(int((f[4] < below).any()) for f in faces)
    window.acts["hide_unsure_points"].setChecked(True)
    assert status().startswith(f"Hid {hidden} unsure points"), status()
    assert f"on {on_faces} of {n} faces" in status()
    drawn = sum(1 for i in window.canvas._photo_items
                if isinstance(i, canvas_module.PredictionItem))
    assert drawn == len(conf) - hidden
    window.acts["hide_unsure_points"].setChecked(False)
    assert status().startswith(f"Showing the {hidden} unsure points again")


def _on_screen(canvas, item) -> QRectF:
    return item.deviceTransform(canvas.viewportTransform()).mapRect(item.boundingRect())


def test_face_labels_stay_inside_the_photo_and_apart_at_any_zoom(crowded):
    """Some twenty labels in a canvas about 400 px wide: each inside the photo, none over
    another (shortened to the face's number where the whole text finds no room)."""
    from PySide6.QtWidgets import QGraphicsSimpleTextItem

    canvas = crowded.canvas
    for zoom in (None, 1.25, 1.25):
        if zoom:
            canvas.zoom_by(zoom)
        labels = [i for i in canvas._photo_items if isinstance(i, QGraphicsSimpleTextItem)]
        assert len(labels) == len(crowded.photo.faces)
        for f, label in enumerate(labels):
            assert label.text().split(" · ")[0] in (f"face {f + 1}", f"{f + 1}")
        photo = canvas.viewportTransform().mapRect(canvas.image_rect)
        rects = [_on_screen(canvas, label) for label in labels]
        for label, rect in zip(labels, rects):
            assert photo.adjusted(-1, -1, 1, 1).contains(rect), (label.text(), rect, photo)
        for a in range(len(rects)):
            for b in range(a + 1, len(rects)):
                both = rects[a].intersected(rects[b])
                assert both.width() * both.height() < 1, (labels[a].text(), labels[b].text())


def test_a_photo_keypoints_hover_names_it_with_its_own_confidence(crowded):
    from facekp.gui.canvas import PredictionItem
    from facekp.gui.session import display_name

    window, canvas = crowded, crowded.canvas
    keypoint_set = window.predictor.keypoint_set
    face = window.photo.faces[0]
    for k in (0, keypoint_set.size - 1):
        item = next(i for i in canvas._photo_items if isinstance(i, PredictionItem)
                    and i.face == 0 and i.index == k)
        # what a tooltip shows: the first item under the mouse that has one
        at = canvas.mapFromScene(item.scenePos())
        tip = next(i.toolTip() for i in canvas.items(at) if i.toolTip())
        assert tip.startswith(f"face 1 · point {k + 1} · {display_name(k, keypoint_set)}")
        assert f"keypoint confidence {face[4][k]:.2f}" in tip
        assert "% sure" not in tip                         # not the box's (the detector's)
