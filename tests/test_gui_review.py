"""The review loop in the real app, offscreen: a review queue stepped with Space, accepting
predictions and placing missing points (each undoable), the shortcuts dialog, autosave with
restore, and the warning before overwriting a file that changed on disk. Real faces and the
shipped model."""
from __future__ import annotations

import os
import re
import shutil

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtWidgets import QMessageBox

pytestmark = pytest.mark.usefixtures("gui_settings")

MISSING_FACE, SWAPPED_FACE = 2, 5


@pytest.fixture(scope="module")
def review_npz(faces, tmp_path_factory):
    """12 real test faces: face 2 misses its eye centres, face 5 has left and right swapped."""
    from facekp.core.data import dataset as data
    from facekp.core.quality.review import swap_left_right

    rows = np.flatnonzero((faces.splits == "test") & faces.present.all(1))[:12]
    ds = faces.subset(rows)
    ds.keypoints[MISSING_FACE, 0:4] = np.nan
    ds.keypoints[SWAPPED_FACE] = swap_left_right(ds.keypoints[SWAPPED_FACE])
    path = tmp_path_factory.mktemp("review") / "review.npz"
    data.write_npz(ds, path)
    return path


@pytest.fixture
def copy_npz(review_npz, tmp_path):
    """A copy of the dataset this test may change."""
    out = tmp_path / "mine.npz"
    shutil.copy(review_npz, out)
    return out


def _window(qtbot, path, remember=False, restore=None, **options):
    """The real window on ``path``, its questions answered without dialogs."""
    from facekp.gui.main_window import MainWindow, Options

    w = MainWindow(Options(data=str(path), remember=remember, **options))
    w.ask_unsaved = lambda: QMessageBox.StandardButton.Discard
    w.recovery.ask_restore = restore or (lambda text: None)
    qtbot.addWidget(w)
    with qtbot.waitSignal(w.idle, timeout=120_000):
        w.show()
    qtbot.waitUntil(lambda: not w.busy and w.session.all_predicted(), timeout=120_000)
    return w


def _press(qtbot, window, key, mod=Qt.KeyboardModifier.NoModifier, widget=None):
    widget = widget or window.canvas
    widget.setFocus()
    qtbot.keyClick(widget, key, mod)


def test_space_steps_through_the_queues_and_they_survive_a_restart(qtbot, review_npz):
    w = _window(qtbot, review_npz, remember=True)
    s = w.session
    assert w.review.kind == "worst" and w.review_dock.isVisible()
    order = np.argsort(-s.errors, kind="stable")
    _press(qtbot, w, Qt.Key.Key_Space)
    assert w.row == order[0] == SWAPPED_FACE                # swapped labels: the worst RMSE
    _press(qtbot, w, Qt.Key.Key_Space)
    assert w.row == order[1]
    _press(qtbot, w, Qt.Key.Key_Space, Qt.KeyboardModifier.ShiftModifier)
    assert w.row == order[0] and s.queue.describe() == "1 / 12"
    assert "RMSE" in w.review.panel.reason.text()

    # the missing-points queue: only face 2
    w.review.panel.kind_box.setCurrentIndex(w.review.panel.kind_box.findData("missing"))
    assert list(s.queue.rows) == [MISSING_FACE] and w.row == MISSING_FACE
    assert "2 points missing: left eye center, right eye center" in w.review.panel.reason.text()

    # suspected label errors: the swapped face first, once confidence is there
    w.review.set_kind("suspect")
    qtbot.waitUntil(lambda: s.confidence is not None and not s.queue.waiting, timeout=120_000)
    qtbot.waitUntil(lambda: w.row == SWAPPED_FACE, timeout=10_000)
    assert s.queue.rows[0] == SWAPPED_FACE
    assert "left/right labels look swapped" in s.queue.reason()
    # the shipped model has a confidence head: the queues use it, not the stand-in
    assert "confidence head" in w.review.panel.note.text()
    np.testing.assert_allclose(s.confidence,
                               w.predictor.predict_with_confidence(s.dataset.images)[1],
                               atol=1e-5)
    w.review.set_kind("unsure")
    means = s.confidence.mean(axis=1)
    assert list(s.queue.rows) == list(np.argsort(means, kind="stable"))
    w.review.set_kind("missing")
    w.close()

    # a restart: the same queue, at the same face
    w = _window(qtbot, review_npz, remember=True)
    assert w.review.kind == "missing" and w.review.panel.kind_box.currentData() == "missing"
    qtbot.waitUntil(lambda: w.row == MISSING_FACE, timeout=10_000)
    assert w.session.queue.current_row == MISSING_FACE
    w.close()


def test_a_session_that_is_not_interactive_keeps_no_queue_settings(qtbot, review_npz):
    from facekp.gui import settings as app_settings

    w = _window(qtbot, review_npz, queue="missing")
    qtbot.waitUntil(lambda: w.row == MISSING_FACE, timeout=10_000)   # --queue: its first face
    _press(qtbot, w, Qt.Key.Key_Space)
    w.close()
    assert app_settings.settings().value("review/kind") is None


def test_accept_a_point_and_a_face_then_undo(qtbot, review_npz):
    w = _window(qtbot, review_npz)
    s = w.session
    w.select_row(7)
    original = s.dataset.keypoints[7].copy()
    pred = s.predictions[7].copy()
    _press(qtbot, w, Qt.Key.Key_3)                                   # keypoint 3: picked
    assert w.canvas.selected_truth() == 2 and w.canvas.place_mode
    _press(qtbot, w, Qt.Key.Key_Return)
    np.testing.assert_allclose(s.dataset.keypoints[7, 4:6], pred[4:6])
    np.testing.assert_array_equal(np.delete(s.dataset.keypoints[7], [4, 5]),
                                  np.delete(original, [4, 5]))
    assert w.isWindowModified() and w.undo_stack.count() == 1
    qtbot.keyClick(w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    np.testing.assert_array_equal(s.dataset.keypoints[7], original)

    _press(qtbot, w, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)  # the whole face
    np.testing.assert_allclose(s.dataset.keypoints[7], pred)
    assert s.errors[7] == pytest.approx(0.0, abs=1e-4) and w.undo_stack.count() == 1
    w.undo_stack.undo()
    np.testing.assert_array_equal(s.dataset.keypoints[7], original)
    assert not w.isWindowModified()


def test_place_missing_points_by_number_key_and_click(qtbot, review_npz):
    w = _window(qtbot, review_npz)
    s, canvas = w.session, w.canvas
    w.select_row(MISSING_FACE)
    _press(qtbot, w, Qt.Key.Key_2)                       # the right eye centre first
    assert w.correct.picked == 1 and canvas.place_mode
    canvas.resetTransform()
    canvas.scale(4, 4)
    canvas.centerOn(48, 48)
    at = canvas.mapFromScene(QPointF(30.5, 40.5))
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=at)
    qtbot.waitUntil(lambda: s.point(MISSING_FACE, 1) is not None, timeout=5000)
    x, y = s.point(MISSING_FACE, 1)
    assert abs(x - 30) < 0.3 and abs(y - 40) < 0.3
    assert w.correct.picked == 0                         # then the next missing one (wraps)
    at = canvas.mapFromScene(QPointF(60.5, 41.5))
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=at)
    qtbot.waitUntil(lambda: s.point(MISSING_FACE, 0) is not None, timeout=5000)
    assert w.correct.picked is None and not canvas.place_mode    # every point labelled
    assert s.missing_keypoints(MISSING_FACE) == []
    w.undo_stack.undo()
    w.undo_stack.undo()
    assert s.missing_keypoints(MISSING_FACE) == [0, 1]
    # M places in keypoint order; Alt+1 picks the 11th keypoint
    _press(qtbot, w, Qt.Key.Key_M)
    assert w.correct.picked == 0
    _press(qtbot, w, Qt.Key.Key_1, Qt.KeyboardModifier.AltModifier)
    assert w.correct.picked == 10 and canvas.selected_truth() == 10


def test_shortcuts_dialog_lists_every_key(qtbot, review_npz):
    from facekp.gui.shortcuts import ShortcutsDialog

    w = _window(qtbot, review_npz)
    w.acts["shortcuts"].trigger()
    dialog = next(d for d in w.findChildren(ShortcutsDialog))
    table = dialog.table
    keys = {table.item(r, 1).text() for r in range(table.rowCount())}
    actions = {table.item(r, 2).text() for r in range(table.rowCount())}
    for key in ("Space", "Shift+Space", "Return, Enter", "Shift+Return, Shift+Enter", "M",
                "1", "0", "Alt+5", "Ctrl+Z", "Down", "F1"):
        assert key in keys, key
    with_keys = [a for a in w.acts.values() if a.shortcuts()]
    assert {a.text().replace("&", "") for a in with_keys} <= actions
    assert "Pick 15 · mouth center bottom lip" in actions
    dialog.close()


def test_autosave_writes_a_recovery_file_that_the_next_start_restores(qtbot, copy_npz):
    from facekp.core.data import dataset as data
    from facekp.gui.recovery import recovery_path

    rec = recovery_path(copy_npz)
    assert rec == copy_npz.with_name("mine.npz.recovery")
    w = _window(qtbot, copy_npz)
    w.recovery.interval_ms = 50
    w.select_row(4)
    w.editing.delete_requested(10)                           # the nose tip of face 4
    qtbot.waitUntil(rec.is_file, timeout=10_000)
    qtbot.waitUntil(lambda: not w.busy, timeout=10_000)
    w.recovery._written = None                               # as if the app died here
    w.close()
    assert rec.is_file()
    assert np.isfinite(data.read_npz(copy_npz).keypoints[4, 20:22]).all()   # file untouched

    asked = []
    w = _window(qtbot, copy_npz, restore=lambda text: asked.append(text) or True)
    assert asked and "1 face differs" in asked[0]
    assert np.isnan(w.dataset.keypoints[4, 20:22]).all() and w.isWindowModified()
    assert w.files.write_dataset(copy_npz)                   # saved: the recovery file goes
    assert not rec.exists() and np.isnan(data.read_npz(copy_npz).keypoints[4, 20:22]).all()
    w.editing.delete_requested(11)                          # edits undone: it goes too
    w.recovery.autosave()
    qtbot.waitUntil(rec.is_file, timeout=10_000)
    w.undo_stack.undo()
    qtbot.waitUntil(lambda: not rec.exists(), timeout=10_000)   # once the write has landed
    w.close()


def test_declining_a_restore_discards_the_recovery_file(qtbot, copy_npz):
    from facekp.gui.recovery import recovery_path

    w = _window(qtbot, copy_npz)
    w.select_row(1)
    w.editing.delete_requested(0)
    w.recovery.autosave()
    rec = recovery_path(copy_npz)
    qtbot.waitUntil(rec.is_file, timeout=10_000)
    qtbot.waitUntil(lambda: not w.busy, timeout=10_000)
    w.recovery._written = None
    w.close()
    w = _window(qtbot, copy_npz, restore=lambda text: False)
    assert not rec.exists() and not w.isWindowModified()
    assert np.isfinite(w.dataset.keypoints[1, 0:2]).all()
    w.close()


def test_saving_over_a_file_that_changed_on_disk_asks_first(qtbot, copy_npz):
    from facekp.core.data import dataset as data

    w = _window(qtbot, copy_npz)
    w.editing.delete_requested(3)
    other = data.read_npz(copy_npz)
    other.keypoints[0, 0] = 11.0                             # another program writes it
    data.write_npz(other, copy_npz)
    st = os.stat(copy_npz)
    os.utime(copy_npz, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    asked = []
    w.recovery.ask_overwrite = lambda path: asked.append(path) or False
    assert not w.files.write_dataset(copy_npz)
    assert asked == [copy_npz] and data.read_npz(copy_npz).keypoints[0, 0] == 11.0
    w.recovery.ask_overwrite = lambda path: True
    assert w.files.write_dataset(copy_npz)
    assert data.read_npz(copy_npz).keypoints[0, 0] != 11.0
    w.editing.delete_requested(4)                            # saved by us: no question now
    w.recovery.ask_overwrite = lambda path: pytest.fail("asked about our own save")
    assert w.files.write_dataset(copy_npz)
    w.close()


def test_a_model_without_a_confidence_head_gets_the_stand_in(qtbot, review_npz, tmp_path):
    """The same model without its head beside it: the queues fall back to flip agreement."""
    from facekp.core.resources import DEFAULT_MODEL

    bare = tmp_path / "bare.keras"
    shutil.copy(DEFAULT_MODEL, bare)
    w = _window(qtbot, review_npz, model=str(bare))
    assert w.predictor.confidence_head is None
    w.review.set_kind("unsure")
    qtbot.waitUntil(lambda: w.session.confidence is not None and not w.session.queue.waiting,
                    timeout=120_000)
    assert "flip agreement" in w.review.panel.note.text()
    assert len(w.session.queue.rows) == 12
    # the dock's "sure" column shows the stand-in's numbers once they are there
    np.testing.assert_allclose(w.kp_view.confidence, w.session.confidence[w.row])
    w.close()


def test_keypoint_errors_dock_shows_the_faces_keypoint_confidence(qtbot, review_npz):
    """The dock's "sure" column: before any queue needs confidence, the face on screen's is
    computed for that face alone with the model's head; points under one half are marked in
    the unsure colour; another face gets its own."""
    from facekp.gui.canvas import UNSURE_POINT_BELOW

    w = _window(qtbot, review_npz)
    assert w.review.kind == "worst" and w.session.confidence is None
    view, images = w.kp_view, w.session.dataset.images
    for row in (3, 7):
        w.select_row(row)
        qtbot.waitUntil(lambda: np.isfinite(view.confidence).all(), timeout=60_000)
        expected = w.predictor.predict_with_confidence(images[row:row + 1])[1][0]
        np.testing.assert_allclose(view.confidence, expected, atol=1e-5)
        for i in range(15):
            assert view.item(i, view.SURE).text() == f"{expected[i]:.2f}"
            marked = view.item(i, view.SURE).background().color().alpha() > 0
            assert marked == (expected[i] < UNSURE_POINT_BELOW)
    assert w.session.confidence is None          # one face at a time, not the whole dataset
    assert view.horizontalHeaderItem(view.SURE).text() == "sure"
    assert "confidence" in view.horizontalHeaderItem(view.SURE).toolTip()
    w.close()


def test_a_restore_brings_back_every_field_of_the_dataset_and_is_undoable(qtbot, review_npz,
                                                                           tmp_path):
    """Faces added from a photo (not yet checked, with their photo's path) survive a crash:
    the recovery file holds every field the .npz holds, and the restore is one undoable step."""
    from facekp.core.data import dataset as data
    from facekp.gui.recovery import recovery_path

    ds = data.read_npz(review_npz)
    ds.checked[[9, 10, 11]] = False
    ds.sources[[9, 10, 11]] = "/photos/group.jpg"
    ds.meta["note"] = "kept"
    path = data.write_npz(ds, tmp_path / "added.npz")
    w = _window(qtbot, path)
    w.select_row(10)
    w.editing.delete_requested(10)
    w.recovery.autosave()
    qtbot.waitUntil(recovery_path(path).is_file, timeout=10_000)
    qtbot.waitUntil(lambda: not w.busy, timeout=10_000)
    edited = w.dataset.subset(slice(None))
    edited.keypoints = w.dataset.keypoints.copy()
    w.recovery._written = None                               # as if the app died here
    w.close()

    w = _window(qtbot, path, restore=lambda text: True)
    for name in data.NPZ_FIELDS:
        np.testing.assert_array_equal(getattr(w.dataset, name), getattr(edited, name), name)
    assert w.dataset.meta == edited.meta and w.dataset.keypoint_set == edited.keypoint_set
    assert "predicted, not yet checked" in w.session.face_text(10)
    assert w.isWindowModified() and w.undo_stack.canUndo()
    w.undo_stack.undo()                                      # back to the file as it is
    assert np.isfinite(w.dataset.keypoints[10, 20:22]).all() and not w.isWindowModified()
    w.undo_stack.redo()
    assert np.isnan(w.dataset.keypoints[10, 20:22]).all() and w.isWindowModified()
    assert w.files.write_dataset(path)
    saved = data.read_npz(path)
    for name in data.NPZ_FIELDS:
        np.testing.assert_array_equal(getattr(saved, name), getattr(edited, name), name)
    assert saved.meta == edited.meta and saved.keypoint_set == edited.keypoint_set
    w.close()


def test_review_keys_work_whatever_had_focus_except_a_field_being_typed_in(qtbot, review_npz):
    """Enter / Shift+Enter and the number keys after the Split or queue combobox or a dock's
    button was used; a field being typed in (the Training dock's) keeps its Enter."""
    w = _window(qtbot, review_npz)
    s = w.session
    w.select_row(7)
    original, pred = s.dataset.keypoints[7].copy(), s.predictions[7].copy()
    split_box = w.dataset_panel.split_box
    _press(qtbot, w, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier, widget=split_box)
    np.testing.assert_allclose(s.dataset.keypoints[7], pred)
    w.undo_stack.undo()
    kind_box = w.review.panel.kind_box
    _press(qtbot, w, Qt.Key.Key_3, widget=kind_box)
    assert w.correct.picked == 2
    _press(qtbot, w, Qt.Key.Key_Enter, widget=kind_box)
    np.testing.assert_allclose(s.dataset.keypoints[7, 4:6], pred[4:6])
    w.undo_stack.undo()
    button = w.review.panel.buttons["resort"]
    _press(qtbot, w, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier, widget=button)
    np.testing.assert_allclose(s.dataset.keypoints[7], pred)
    w.undo_stack.undo()
    np.testing.assert_array_equal(s.dataset.keypoints[7], original)

    w.training_dock.raise_()
    for field in (w.training_panel.epochs, w.training_panel.out_path):
        qtbot.waitUntil(field.isVisible, timeout=5000)
        _press(qtbot, w, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier, widget=field)
        assert w.undo_stack.index() == 0
        np.testing.assert_array_equal(s.dataset.keypoints[7], original)
    w.close()


def test_the_remembered_queue_position_never_moves_a_person_who_moved(qtbot, review_npz):
    """The queue position of the last run is gone back to when the queue is ready, only if the
    person has not gone to another face meanwhile."""
    from facekp.gui.main_window import MainWindow, Options

    w = _window(qtbot, review_npz, remember=True)
    for _ in range(3):
        _press(qtbot, w, Qt.Key.Key_Space)
    remembered = w.row
    assert remembered not in (0, 6)
    w.close()

    w = MainWindow(Options(data=str(review_npz), remember=True))
    w.ask_unsaved = lambda: QMessageBox.StandardButton.Discard
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.session.dataset is not None, timeout=60_000)
    assert not w.session.all_predicted()                  # the queue is not ready yet
    w.select_row(6)                                       # the person goes to a face
    qtbot.waitUntil(lambda: not w.busy and w.session.all_predicted(), timeout=120_000)
    qtbot.wait(200)
    assert w.row == 6
    w.close()


def test_the_review_dock_shows_progress_and_where_the_face_on_screen_is(qtbot, review_npz):
    """While predictions run the dock says how far they are (not "no faces in this queue" /
    "Face 0 is not in this queue"); confidence too; the position is the face on screen's."""
    from facekp.gui.main_window import MainWindow, Options

    w = MainWindow(Options(data=str(review_npz), remember=False))
    w.ask_unsaved = lambda: QMessageBox.StandardButton.Discard
    qtbot.addWidget(w)
    w.show()
    seen = []
    qtbot.waitUntil(lambda: w.session.dataset is not None, timeout=60_000)
    w.models.store = (lambda store: lambda *a: (store(*a), seen.append(
        (w.review.panel.position.text(), w.review.panel.reason.text()))))(w.models.store)
    seen.append((w.review.panel.position.text(), w.review.panel.reason.text()))
    qtbot.waitUntil(lambda: not w.busy and w.session.all_predicted(), timeout=120_000)
    waiting = [(p, r) for p, r in seen if p.startswith("waiting for predictions")]
    assert waiting, seen
    assert all(re.fullmatch(r"waiting for predictions: \d+ / 12 faces…", p) and r == ""
               for p, r in waiting), seen
    assert not any("no faces" in p or "not in this queue" in r for p, r in seen), seen

    qtbot.waitUntil(lambda: len(w.session.queue) == 12, timeout=10_000)   # built when idle
    q, panel = w.session.queue, w.review.panel
    at = 4 if q.rows[4] != w.row else 6
    w.select_row(int(q.rows[at]))                    # a face picked in the table
    assert panel.position.text() == f"{at + 1} / 12"
    _press(qtbot, w, Qt.Key.Key_Space)
    assert w.row == q.rows[at + 1] and panel.position.text() == f"{at + 2} / 12"
    w.review.set_kind("missing")
    w.select_row(0)                                  # not in the missing-points queue
    assert panel.position.text().startswith("– / 1") and "not in this queue" in \
        panel.reason.text()

    w.review.set_kind("unsure")                      # waits for confidence, says how far
    assert re.fullmatch(r"waiting for confidence: \d+ / 12 faces…", panel.position.text())
    qtbot.waitUntil(lambda: w.session.confidence is not None and not w.busy, timeout=120_000)
    assert re.fullmatch(r"\d+ / 12", panel.position.text())
    w.close()


def test_a_faces_reason_follows_its_edits_and_the_checked_flag_toggles(qtbot, review_npz):
    w = _window(qtbot, review_npz)
    s, panel = w.session, w.review.panel
    w.review.set_kind("missing")
    assert w.row == MISSING_FACE
    assert "2 points missing: left eye center, right eye center" in panel.reason.text()
    w.editing.add_requested(0, (62.0, 38.0))
    assert "1 point missing: right eye center" in panel.reason.text()
    w.editing.add_requested(1, (32.0, 38.0))
    assert "no points missing now" in panel.reason.text()
    w.undo_stack.undo()
    assert "1 point missing: right eye center" in panel.reason.text()
    w.undo_stack.undo()

    # faces not yet checked: a queue of their own, and C marks / unmarks, undoably
    w.review.set_kind("unchecked")
    assert s.dataset.checked.all() and panel.position.text() == "no faces in this queue"
    w.select_row(3)
    assert w.acts["mark_checked"].text().replace("&", "") == "Mark face as not checked"
    _press(qtbot, w, Qt.Key.Key_C)
    assert not s.dataset.checked[3] and w.isWindowModified()
    assert w.acts["mark_checked"].text().replace("&", "") == "Mark face as checked"
    panel.buttons["resort"].click()
    assert list(s.queue.rows) == [3] and panel.position.text() == "1 / 1"
    assert "not yet checked" in panel.reason.text()
    panel.buttons["mark_checked"].click()
    assert s.dataset.checked[3] and "Face 3</b>: checked" in panel.reason.text()
    w.undo_stack.undo()
    assert not s.dataset.checked[3] and "not yet checked" in panel.reason.text()
    w.undo_stack.undo()
    assert s.dataset.checked[3] and not w.isWindowModified()
    w.close()


def test_queue_starts_at_its_first_face_on_a_dataset_reviewed_before_without_a_place(
        qtbot, review_npz):
    """--queue on a dataset the app remembers but with no remembered place in a queue: the
    queue's first face, as on a new dataset (it stayed on the first face of the table)."""
    from facekp.gui import settings as app_settings

    w = _window(qtbot, review_npz, remember=True)
    w.close()
    st = app_settings.settings()
    assert st.value("review/dataset") is not None
    st.remove("review/row")
    w = _window(qtbot, review_npz, remember=True, queue="missing")
    qtbot.waitUntil(lambda: w.session.queue.kind == "missing" and not w.session.queue.waiting,
                    timeout=60_000)
    qtbot.waitUntil(lambda: w.row == MISSING_FACE, timeout=10_000)
    assert w.review.panel.position.text().startswith("1 / ")
    w.close()
