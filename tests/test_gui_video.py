"""Video mode as a person meets it, in the real app offscreen on a short real clip
(tests/clips.py): Back to dataset and Esc leave it, the status bar names the frame, the slider
stays put, "," and "." step frames while paused, the second model of a comparison is drawn on
the frame's faces, and the paused frame's faces go into the dataset."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt

from clips import make_clip

#: The app's settings and trained models go to a temporary place (conftest.gui_settings).
pytestmark = pytest.mark.usefixtures("gui_settings")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """16 frames at 640x480 of one person's face, moving."""
    path = tmp_path_factory.mktemp("gui-video") / "clip.mp4"
    make_clip(path, frames=16, hold=8)
    return path


@pytest.fixture(scope="module")
def tiny(real_subset_npz):
    return real_subset_npz("gui-video", train=12, val=4, seed=7)


def _open(qtbot, window, clip):
    with qtbot.waitSignal(window.video.frameShown, timeout=60_000):
        window.open_path(clip)
    assert window.view_mode == "video"


def _idle(qtbot, window):
    qtbot.waitUntil(lambda: not window.video._busy and not window.busy, timeout=60_000)


def test_video_names_its_frame_keeps_its_slider_steps_and_esc_leaves(qtbot, tiny, clip,
                                                                   open_window):
    from PySide6.QtWidgets import QWidget

    from facekp.gui.actions import is_text_field

    window = open_window(qtbot, data=str(tiny))            # the shipped model
    window.select_row(2)
    assert window.statusBar().currentMessage().startswith("face 2:")
    _open(qtbot, window, clip)
    video, status = window.video, window.statusBar().currentMessage
    assert status().startswith("clip.mp4 · frame 1 / 16 ·") and "paused" in status()

    # playing: the status bar follows the frames (no dataset face), the slider stays put
    # although Play became Pause
    where = video.slider.mapTo(window, QPoint(0, 0)), video.slider.width()
    frames = []
    video.frameShown.connect(frames.append)
    qtbot.keyClick(window, Qt.Key.Key_Space)
    assert video.play_action.text() == "Pause"
    qtbot.waitUntil(lambda: len(frames) >= 3, timeout=60_000)
    assert (video.slider.mapTo(window, QPoint(0, 0)), video.slider.width()) == where
    assert status().startswith(f"clip.mp4 · frame {video.index + 1} / 16 ·")
    assert "face 2:" not in status()
    assert not window.acts["next_frame"].isEnabled()        # stepping: while paused
    qtbot.keyClick(window, Qt.Key.Key_Space)
    _idle(qtbot, window)
    assert (video.slider.mapTo(window, QPoint(0, 0)), video.slider.width()) == where

    # "." and ",": one frame on, one back, each drawn and named
    at = video.index
    assert window.acts["next_frame"].isEnabled()
    with qtbot.waitSignal(video.frameShown, timeout=60_000) as shown:
        qtbot.keyClick(window, Qt.Key.Key_Period)
    assert shown.args == [at + 1] and video.slider.value() == at + 1
    assert status().startswith(f"clip.mp4 · frame {at + 2} / 16 ·")
    with qtbot.waitSignal(video.frameShown, timeout=60_000) as shown:
        qtbot.keyClick(window, Qt.Key.Key_Comma)
    assert shown.args == [at] and len(window.canvas.faces) == 1

    # Esc in a text field is the field's: the video stays
    field = next(w for w in window.findChildren(QWidget) if is_text_field(w) and w.isVisible())
    window.activateWindow()
    field.setFocus()
    qtbot.waitUntil(field.hasFocus, timeout=3000)
    qtbot.keyClick(field, Qt.Key.Key_Escape)
    assert window.view_mode == "video"
    # Back to dataset works in video mode, and so does Esc: the face left before
    assert window.acts["back"].isEnabled()
    window.canvas.setFocus()
    qtbot.keyClick(window.canvas, Qt.Key.Key_Escape)
    assert window.view_mode == "dataset" and window.row == 2 and not video.bar.isVisible()
    _open(qtbot, window, clip)
    window.acts["back"].trigger()
    assert window.view_mode == "dataset" and window.canvas.mode == "face"


def test_the_second_model_is_drawn_on_the_frame_and_its_faces_go_into_the_dataset(
        qtbot, tiny, clip, tmp_path, open_window):
    from facekp.core.resources import DEFAULT_MODEL
    from facekp.gui.canvas import COMPARE_COLOR, PRED_COLOR, PredictionItem

    window = open_window(qtbot, data=str(tiny))            # the shipped model
    second = tmp_path / "second.keras"
    shutil.copy(DEFAULT_MODEL, second)
    _open(qtbot, window, clip)
    video = window.video
    with qtbot.waitSignal(video.frameShown, timeout=60_000):
        video.step(1)
    _idle(qtbot, window)

    def crosses(color):
        return {(i.face, i.index) if color == PRED_COLOR else i.index: i.pos()
                for i in window.canvas._photo_items
                if isinstance(i, PredictionItem) and i.pen().color() == color}

    k = window.predictor.keypoint_set.size
    assert len(crosses(PRED_COLOR)) == k and not crosses(COMPARE_COLOR)
    models = window.model_list
    models.opened.append(second)
    models.refresh()
    models.select(DEFAULT_MODEL, second)
    with qtbot.waitSignal(video.frameShown, timeout=60_000):
        models.compare_selected()
    _idle(qtbot, window)
    red, blue = crosses(PRED_COLOR), crosses(COMPARE_COLOR)
    assert len(blue) == k                      # the same model again: on the red crosses
    for i, pos in blue.items():
        assert (pos - red[(0, i)]).manhattanLength() < 1.0
    assert "blue + the second model" in window.statusBar().currentMessage()
    assert "second model" in " ".join(window.canvas.legend_entries())
    with qtbot.waitSignal(video.frameShown, timeout=60_000):
        models.stop_comparing()
    _idle(qtbot, window)
    assert not crosses(COMPARE_COLOR)

    # Photo > Add faces to dataset (Ctrl+Shift+A) on the paused frame
    index, _rgb, faces = video.frame
    kp = faces[0][1].copy()
    n = len(window.dataset)
    assert window.acts["add_faces"].isEnabled()
    qtbot.keyClick(window, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier
                   | Qt.KeyboardModifier.ShiftModifier)
    _idle(qtbot, window)
    ds = window.dataset
    assert len(ds) == n + 1 and ds.names[n] == f"clip.mp4@frame{index + 1}#1"
    assert ds.sources[n] == str(clip) and not ds.checked[n]
    expected = faces[0][3].to_crop(kp)
    inside = ((expected >= 0) & (expected <= 96)).all(axis=1)
    np.testing.assert_allclose(ds.keypoints[n].reshape(k, 2)[inside], expected[inside],
                               atol=1e-3)
    assert window.view_mode == "dataset" and window.row == n
    window.undo_stack.undo()
    assert len(window.dataset) == n
