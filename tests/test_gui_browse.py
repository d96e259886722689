"""The desktop app's real widgets, offscreen: dataset table, canvas editing with undo, photos,
exports. A model trained for one epoch on a few real faces stands in for a real one (the
tests check what the app does with predictions, not how good they are)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QApplication, QMessageBox

ROOT = Path(__file__).resolve().parent.parent


#: The app's settings and trained models go to a temporary place (conftest.gui_settings).
pytestmark = pytest.mark.usefixtures("gui_settings")


@pytest.fixture(scope="module")
def tiny(real_subset_npz):
    """40 real train faces (all 15 points) + 16 validation + 8 test faces, as an .npz."""
    return real_subset_npz("gui-data", train=40, val=16, test=8, seed=5)


@pytest.fixture(scope="module")
def model_path(tiny, one_epoch_model):
    """A real model trained for one epoch on the tiny dataset."""
    return one_epoch_model(tiny, "one-epoch", batch_size=20)


def test_gui_modules_do_not_import_tensorflow_before_the_window_shows():
    code = ("import sys, facekp.gui.app, facekp.gui.main_window; "
            "heavy = [m for m in ('tensorflow', 'keras', 'pandas', 'pyqtgraph', 'cv2') "
            "if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_table_fills_with_per_face_rmse_sorts_filters_and_steps(qtbot, tiny, model_path,
                                                                open_window):
    from facekp.core.data import dataset as data
    from facekp.core.model import metrics
    from facekp.core.model.predict import Predictor

    ds = data.read_npz(tiny)
    window = open_window(qtbot, data=str(tiny), model=str(model_path))
    panel = window.dataset_panel
    assert panel.model.rowCount() == len(ds)
    assert window.predictor is not None and window.model_path == model_path

    # predictions over the whole dataset ran in the background: the RMSE column is the
    # per-image RMSE of the model's own predictions
    expected = metrics.per_image(Predictor(model_path).predict(ds.images), ds.keypoints)
    np.testing.assert_allclose(panel.model.errors, expected, rtol=1e-3, atol=1e-3)
    shown = panel.model.data(panel.model.index(3, panel.model.COL_RMSE))
    assert shown == f"{expected[3]:.2f}"

    # worst first
    panel.sort_worst_first()
    order = panel.visible_rows()
    assert order[0] == int(np.argmax(expected))
    assert np.all(np.diff(expected[order]) <= 1e-9)
    panel.select_view_row(0)
    assert window.row == order[0]

    # D / A step through the table's order, from the canvas or anywhere in the window
    window.canvas.setFocus()
    qtbot.keyClick(window.canvas, Qt.Key.Key_D)
    assert window.row == order[1]
    qtbot.keyClick(window.canvas, Qt.Key.Key_D)
    assert window.row == order[2]
    qtbot.keyClick(window.canvas, Qt.Key.Key_A)
    assert window.row == order[1]
    qtbot.keyClick(window.canvas, Qt.Key.Key_Down)
    assert window.row == order[2]
    # the table's own arrow keys step too
    panel.table.setFocus()
    qtbot.keyClick(panel.table, Qt.Key.Key_Down)
    assert window.row == order[3]

    # split filter
    panel.set_split("val")
    rows = panel.visible_rows()
    assert len(rows) == int((ds.splits == "val").sum())
    assert set(ds.splits[rows]) == {"val"}
    assert window.row in set(rows)

    # per-keypoint view: each point's distance in px, this face and its mean over the split
    r = window.row
    pred = window.predictions
    np.testing.assert_allclose(window.kp_view.current,
                               metrics.point_errors(pred[r], ds.keypoints[r]), rtol=1e-6)
    np.testing.assert_allclose(window.kp_view.split_values,
                               np.nanmean(metrics.point_errors(pred[rows], ds.keypoints[rows]),
                                          axis=0), rtol=1e-6)

    # canvas shows that face's ground truth and prediction
    np.testing.assert_allclose(window.canvas.truth, ds.keypoints[r].reshape(15, 2))
    np.testing.assert_allclose(window.canvas.prediction, pred[r].reshape(15, 2))
    visible = [it for it in window.canvas.truth_items if it.isVisible()]
    assert len(visible) == int(ds.present[r].sum())


def _drag(qtbot, view, start: QPointF, end: QPointF) -> None:
    """A real left-button drag on the view's viewport (press, moves, release)."""
    from PySide6.QtCore import QEvent
    from PySide6.QtGui import QMouseEvent

    vp = view.viewport()
    a = view.mapFromScene(start)
    b = view.mapFromScene(end)

    def send(kind, pos, buttons):
        button = Qt.MouseButton.LeftButton if kind != QEvent.Type.MouseMove else \
            Qt.MouseButton.NoButton
        ev = QMouseEvent(kind, QPointF(pos), QPointF(vp.mapToGlobal(pos)), button, buttons,
                         Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(vp, ev)

    send(QEvent.Type.MouseButtonPress, a, Qt.MouseButton.LeftButton)
    for t in np.linspace(0.2, 1.0, 5):
        p = QPoint(round(a.x() + (b.x() - a.x()) * t), round(a.y() + (b.y() - a.y()) * t))
        send(QEvent.Type.MouseMove, p, Qt.MouseButton.LeftButton)
    send(QEvent.Type.MouseButtonRelease, b, Qt.MouseButton.NoButton)
    qtbot.wait(30)


def test_table_resorts_with_numpy_keeping_the_selected_face(qtbot, tiny):
    """New errors re-sort the table (worst first) without losing the selected face; the split
    filter hides rows; text columns sort with ties in dataset order."""
    from facekp.core.data import dataset as data
    from facekp.gui.dataset_panel import DatasetModel, DatasetPanel

    ds = data.read_npz(tiny)
    panel = DatasetPanel()
    qtbot.addWidget(panel)
    panel.set_dataset(ds)
    n = len(ds)
    rng = np.random.default_rng(1)
    errors = rng.uniform(1, 5, n)
    panel.set_errors(errors)
    panel.sort_worst_first()
    np.testing.assert_array_equal(panel.visible_rows(), np.argsort(-errors, kind="stable"))
    face = int(panel.visible_rows()[2])
    panel.select_row(face)
    assert panel.current_row() == face

    errors2 = errors.copy()
    errors2[face] = 10.0  # now the worst: it moves to the top, still selected
    panel.set_errors(errors2)
    assert panel.visible_rows()[0] == face and panel.current_row() == face
    assert panel.table.selectionModel().currentIndex().row() == 0
    shown = panel.view.data(panel.view.index(0, DatasetModel.COL_RMSE))
    assert shown == "10.00"

    split = str(ds.splits[face])
    other = next(i for i in range(n) if str(ds.splits[i]) != split)
    panel.set_split(split)
    rows = panel.visible_rows()
    assert set(rows) == {i for i in range(n) if str(ds.splits[i]) == split}
    assert panel.view.view_row(other) == -1 and not panel.select_row(other)
    assert panel.current_row() == face

    panel.set_split("all")
    panel.table.sortByColumn(DatasetModel.COL_PERSON, Qt.SortOrder.AscendingOrder)
    persons = np.asarray(ds.persons).astype(str)
    expected = sorted(range(n), key=lambda i: (persons[i], i))
    np.testing.assert_array_equal(panel.visible_rows(), expected)


def test_edit_by_dragging_delete_add_undo_redo_and_save(qtbot, tiny, tmp_path, monkeypatch,
                                                        open_window):
    # the case of a checkout without a shipped model: ground truth only
    monkeypatch.setattr("facekp.core.resources.default_model", lambda: None)
    from facekp.core.data import dataset as data
    from facekp.core.data import kaggle_csv

    window = open_window(qtbot, data=str(tiny), image=2)   # no model: ground truth only
    assert window.predictor is None
    assert not window.acts["pred"].isEnabled()
    original = data.read_npz(tiny).keypoints.copy()
    canvas = window.canvas
    assert window.row == 2
    k = 10  # nose tip
    x, y = original[2, 2 * k:2 * k + 2]

    # drag the nose tip 6 px right and 4 px down with the mouse
    canvas.resetTransform()
    canvas.scale(5, 5)
    canvas.centerOn(x + 0.5, y + 0.5)
    _drag(qtbot, canvas, QPointF(x + 0.5, y + 0.5), QPointF(x + 6.5, y + 4.5))
    qtbot.waitUntil(lambda: window.undo_stack.count() == 1, timeout=5000)
    moved = window.dataset.keypoints[2, 2 * k:2 * k + 2]
    assert abs(moved[0] - (x + 6)) < 0.3 and abs(moved[1] - (y + 4)) < 0.3
    assert window.isWindowModified()
    # every other coordinate untouched
    other = np.ones(30, bool)
    other[2 * k:2 * k + 2] = False
    np.testing.assert_array_equal(window.dataset.keypoints[2, other], original[2, other])

    # Ctrl+Z restores exactly, Ctrl+Shift+Z redoes
    qtbot.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    np.testing.assert_array_equal(window.dataset.keypoints[2], original[2])
    assert not window.isWindowModified()
    qtbot.keyClick(window, Qt.Key.Key_Z,
                   Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    np.testing.assert_allclose(window.dataset.keypoints[2, 2 * k:2 * k + 2], moved)

    # select a point and delete it (Delete key); the table's point count follows
    item = canvas.truth_items[0]
    item.setSelected(True)
    qtbot.keyClick(window, Qt.Key.Key_Delete)
    assert np.isnan(window.dataset.keypoints[2, 0:2]).all()
    assert not canvas.truth_items[0].isVisible()
    assert window.dataset_panel.model.data(window.dataset_panel.model.index(
        2, window.dataset_panel.model.COL_POINTS)) == "14/15"

    # add the missing one back at its average position, then undo the add and the delete
    window.editing.add_missing()
    assert not np.isnan(window.dataset.keypoints[2, 0:2]).any()
    assert canvas.truth_items[0].isVisible()
    window.undo_stack.undo()
    window.undo_stack.undo()
    np.testing.assert_array_equal(window.dataset.keypoints[2, 0:2], original[2, 0:2])
    assert window.undo_stack.index() == 1  # the move remains

    # undoing an edit of another face brings that face back into view
    window.dataset_panel.select_row(5)
    window.undo_stack.undo()
    assert window.row == 2
    np.testing.assert_array_equal(window.dataset.keypoints[2], original[2])
    window.undo_stack.redo()

    # save: atomic write through facekp.core.data.dataset, then the file holds the edit
    out = tmp_path / "edited.npz"
    assert window.files.write_dataset(out)
    assert not window.isWindowModified()
    saved = data.read_npz(out)
    np.testing.assert_allclose(saved.keypoints[2, 2 * k:2 * k + 2], moved)
    np.testing.assert_array_equal(np.delete(saved.keypoints, 2, axis=0),
                                  np.delete(original, 2, axis=0))
    assert not list(tmp_path.glob(".*partial*"))

    # without a model a photo still shows the faces found (boxes, no keypoints)
    photo = Path(__file__).resolve().parent.parent.parent / "shared/data/photos/bald_guys.jpg"
    with qtbot.waitSignal(window.photoShown, timeout=60_000):
        window.open_photo(photo)
    assert len(window.canvas.faces) >= 3
    assert all(kp is None for _, kp in window.canvas.faces)
    assert "no model" in window.statusBar().currentMessage()
    window.back_to_dataset()
    # and as Kaggle CSV, not adopted as the edited file
    csv = tmp_path / "edited.csv"
    assert window.files.write_dataset(csv, adopt=False)
    np.testing.assert_allclose(kaggle_csv.read_kaggle_csv(csv).keypoints, saved.keypoints, atol=1e-3)
    assert window.dataset_path == out


def test_unsaved_edits_are_asked_about_on_close(qtbot, tiny, open_window):
    window = open_window(qtbot, data=str(tiny), remember=True)   # an interactive session
    window.editing.add_missing() if not window.dataset.present[0].all() else \
        window.editing.delete_requested(3)
    assert window.isWindowModified()
    asked = []
    window.ask_unsaved = lambda: asked.append(1) or QMessageBox.StandardButton.Cancel
    window.close()
    assert asked and window.isVisible()          # cancelled: still open
    window.ask_unsaved = lambda: QMessageBox.StandardButton.Discard
    window.close()
    assert not window.isVisible()
    # the window's layout went to the settings file the environment names
    from facekp.gui import settings as app_settings

    ini = Path(app_settings.settings().fileName())
    assert ini.name == "settings.ini" and "geometry" in ini.read_text()


def test_bad_command_line_is_one_line_and_status_2(tmp_path):
    out = subprocess.run([sys.executable, "-m", "facekp.gui.app", "--data", str(tmp_path / "no.npz")],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip() == f"facekp-gui: --data {tmp_path / 'no.npz'}: no such file"


def test_open_photos_boxes_keypoints_no_face_and_hand_drawn_box(qtbot, tiny, model_path,
                                                               shared_data, tmp_path, open_window):
    from facekp.gui import settings as app_settings

    window = open_window(qtbot, data=str(tiny), model=str(model_path), remember=True)
    photo = shared_data / "photos" / "bald_guys.jpg"
    with qtbot.waitSignal(window.photoShown, timeout=60_000):
        window.open_photo(photo)
    faces = window.canvas.faces
    assert window.view_mode == "photo" and len(faces) >= 3
    w, h = window.photo.image.size
    for box, kp in faces:
        assert kp.shape == (15, 2) and np.isfinite(kp).all()
        assert 0 <= box[0] < box[2] <= w and 0 <= box[1] < box[3] <= h
    assert str(photo.resolve()) in app_settings.recent_files()
    assert "face" in window.statusBar().currentMessage()

    # exports of the photo's predictions
    out = window.files.export_predictions(tmp_path / "photo.json")
    saved = json.loads(out.read_text())
    assert len(saved["faces"]) == len(faces)
    np.testing.assert_allclose(saved["faces"][0]["keypoints"]["nose_tip"], faces[0][1][10],
                               atol=0.006)
    # the schema of `facekp predict --json` (facekp.core.photos.photo_json), one record
    from facekp.core.photos.photo_json import photo_record

    assert saved == json.loads(json.dumps(photo_record(photo, window.photo.faces,
                                                       window.photo.message)))
    assert all(0.6 <= f["detector_confidence"] <= 1 for f in saved["faces"])  # BlazeFace's
    csv = window.files.export_predictions(tmp_path / "photo.csv").read_text().splitlines()
    assert len(csv) == len(faces) + 1 and csv[0].startswith("photo,face,box_x0")
    png = window.files.export_view(tmp_path / "view.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # no face: the status bar says so and a box drawn by hand is predicted inside
    dogs = shared_data / "photos" / "dogs.jpg"
    with qtbot.waitSignal(window.photoShown, timeout=60_000):
        window.open_photo(dogs)
    assert window.canvas.faces == []
    assert "No face found" in window.statusBar().currentMessage()
    assert window.canvas.box_mode
    with qtbot.waitSignal(window.photoShown, timeout=60_000):
        window.canvas.draw_box(100, 80, 300, 280)
    (box, kp), = window.canvas.faces
    assert box == pytest.approx([100, 80, 300, 280])
    assert np.isfinite(kp).all()

    # drag and drop of a photo file onto the window
    mime = QMimeData()
    tom = shared_data / "photos" / "Tom_Cruise_avp_2014_4.jpg"
    mime.setUrls([QUrl.fromLocalFile(str(tom))])
    drop = QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime,
                      Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(window.photoShown, timeout=60_000):
        window.dropEvent(drop)
    assert window.photo.path == tom and len(window.canvas.faces) == 1

    # Escape goes back to the dataset face
    qtbot.keyClick(window, Qt.Key.Key_Escape)
    assert window.view_mode == "dataset" and window.canvas.mode == "face"


def test_photo_faces_carry_the_detectors_confidence_and_the_detector_is_a_setting(
        qtbot, tiny, model_path, shared_data, open_window):
    from facekp.gui.photos import unsure_below

    window = open_window(qtbot, data=str(tiny), model=str(model_path))
    photo = shared_data / "photos" / "bald_guys.jpg"
    with qtbot.waitSignal(window.photoShown, timeout=60_000):
        window.open_photo(photo)
    faces = window.photo.faces
    confidences = [f[2].confidence for f in faces]
    assert len(faces) >= 22 and all(0.6 <= c <= 1 for c in confidences)   # BlazeFace's
    from PySide6.QtWidgets import QGraphicsRectItem

    tips = [item.toolTip() for item in window.canvas.items()   # each box's (its label's too)
            if isinstance(item, QGraphicsRectItem) and item.toolTip().startswith("face ")]
    assert len(tips) == len(faces) and all("% sure" in t for t in tips)

    # hiding the unsure faces redraws without them; the photo keeps them all
    window.acts["hide_unsure"].setChecked(True)
    assert len(window.canvas.faces) == sum(f[2].confidence >= unsure_below(f[2]) for f in faces)
    assert len(window.photo.faces) == len(faces)
    window.acts["hide_unsure"].setChecked(False)
    assert len(window.canvas.faces) == len(faces)

    # Haar instead: the photo is searched again, boxes without confidence
    with qtbot.waitSignal(window.photoShown, timeout=60_000):
        window.acts["haar"].setChecked(True)
    assert window.photos.detector_name() == "haar"
    assert window.photo.faces and all(f[2].confidence is None for f in window.photo.faces)
    assert len(window.photo.faces) < len(faces)   # Haar misses turned heads here


def test_dataset_predictions_export_csv_and_json(qtbot, tiny, model_path, tmp_path, open_window):
    import pandas as pd

    from facekp.core.data.keypoints import COLUMNS

    window = open_window(qtbot, data=str(tiny), model=str(model_path))
    path = window.files.export_predictions(tmp_path / "pred.csv")
    table = pd.read_csv(path)
    assert len(table) == len(window.dataset)
    np.testing.assert_allclose(table[list(COLUMNS)].to_numpy(), window.predictions, atol=2e-3)
    np.testing.assert_allclose(table["rmse_px"], window.errors, atol=1e-3)
    doc = json.loads(window.files.export_predictions(tmp_path / "pred.json").read_text())
    assert len(doc["faces"]) == len(window.dataset)
    assert doc["faces"][4]["name"] == window.dataset.names[4]


def test_layer_toggles_and_smooth_pixels(qtbot, tiny, model_path, open_window):
    window = open_window(qtbot, data=str(tiny), model=str(model_path))
    canvas = window.canvas
    assert canvas.layers["prediction"].isVisible()
    qtbot.keyClick(window, Qt.Key.Key_P)
    assert not canvas.layers["prediction"].isVisible()
    qtbot.keyClick(window, Qt.Key.Key_G)
    assert not canvas.layers["truth"].isVisible()
    qtbot.keyClick(window, Qt.Key.Key_L)
    assert not canvas.layers["lines"].isVisible()
    assert canvas.pixmap_item.transformationMode() == Qt.TransformationMode.FastTransformation
    qtbot.keyClick(window, Qt.Key.Key_S)
    assert canvas.pixmap_item.transformationMode() == Qt.TransformationMode.SmoothTransformation
    qtbot.keyClick(window, Qt.Key.Key_G)
    qtbot.keyClick(window, Qt.Key.Key_P)
    qtbot.keyClick(window, Qt.Key.Key_L)

    # hovering a ground-truth point names it and gives its error in px
    r = window.row
    truth = window.dataset.keypoints[r].reshape(15, 2)
    pred = window.predictions[r].reshape(15, 2)
    k = 10
    canvas.fit()
    pos = canvas.mapFromScene(QPointF(truth[k, 0] + 0.5, truth[k, 1] + 0.5))
    qtbot.mouseMove(canvas.viewport(), pos + QPoint(8, 8))
    qtbot.mouseMove(canvas.viewport(), pos)
    qtbot.waitUntil(lambda: "nose tip" in window.statusBar().currentMessage(), timeout=3000)
    message = window.statusBar().currentMessage()
    assert f"error {np.hypot(*(pred[k] - truth[k])):.2f} px" in message
    assert canvas.toolTip() == message

    z = canvas.zoom
    canvas.zoom_in()
    assert canvas.zoom == pytest.approx(z * 1.25)
    canvas.fit()
    assert canvas.zoom == pytest.approx(z)


def test_photo_keypoints_show_their_confidence_on_hover(qtbot, tiny, shared_data, tmp_path,
                                                       open_window, monkeypatch):
    """With the shipped model (it has a confidence head) each predicted keypoint's hover text
    gives its confidence, and the photo's JSON export carries it; points the model is unsure
    of are drawn in their own colour, and Photo > Hide unsure points leaves them out."""
    from facekp.core.resources import DEFAULT_MODEL

    window = open_window(qtbot, data=str(tiny), model=str(DEFAULT_MODEL))
    with qtbot.waitSignal(window.photoShown, timeout=60_000):
        window.open_photo(shared_data / "photos" / "Tom_Cruise_avp_2014_4.jpg")
    face = window.photo.faces[0]
    assert face[4].shape == (15,) and ((face[4] > 0) & (face[4] < 1)).all()
    text = window.canvas.describe_point(0, "prediction", 0)
    assert f"confidence {face[4][0]:.2f}" in text
    np.testing.assert_allclose(window.kp_view.confidence, face[4])  # the dock's "sure" column
    assert window.kp_view.horizontalHeaderItem(window.kp_view.SURE).text() == "face 1 sure"
    saved = json.loads(window.files.export_predictions(tmp_path / "p.json").read_text())
    assert saved["faces"][0]["keypoint_confidence"]["left_eye_center"] == \
        pytest.approx(float(face[4][0]), abs=1e-4)

    # unsure points: the threshold put between this face's confidences so that some are under
    from facekp.gui import canvas as canvas_module
    from facekp.gui.canvas import PredictionItem

    below = float(np.median(face[4]))
    monkeypatch.setattr(canvas_module, "UNSURE_POINT_BELOW", below)
    unsure = set(np.flatnonzero(face[4] < below).tolist())
    assert 0 < len(unsure) < 15

    def drawn():
        return {item.index: item.pen().color() for item in window.canvas._photo_items
                if isinstance(item, PredictionItem) and item.face == 0}
    window.photos.show(window.photo)
    colours = drawn()
    assert len(colours) == 15
    assert {i for i, c in colours.items() if c == canvas_module.UNSURE_POINT_COLOR} == unsure
    window.acts["hide_unsure_points"].setChecked(True)
    assert set(drawn()) == set(range(15)) - unsure
    window.acts["hide_unsure_points"].setChecked(False)
    assert len(drawn()) == 15


def test_the_photo_detector_is_ready_before_the_first_photo(qtbot, tiny, open_window):
    """Once TensorFlow is loaded the window makes the default detector (BlazeFace, with MTCNN
    behind it) in the background (and runs it once, which builds MTCNN's networks too), so a
    person's first photo does not wait for them."""
    window = open_window(qtbot, data=str(tiny))
    qtbot.waitUntil(lambda: "blazeface" in window.photos._detectors and "detector" not in
                    window.busy, timeout=60_000)
    detector = window.photos._detector("blazeface")
    assert detector is window.photos._detectors["blazeface"]   # made once, kept
    assert detector._mtcnn is not None   # the blank image found no face: MTCNN looked too
    assert detector.detect(np.zeros((60, 80, 3), np.uint8)) == []
