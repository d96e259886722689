"""The app follows the dataset's keypoint set, offscreen with real widgets: an ibug68 dataset
(real ytf68 faces imported with ``facekp import --keypoints ibug68``) shows 68 rows, 68 points
and the skeleton; a person's own 4-point set is labelled by number key, M and clicks; a model
of a set the dataset cannot be scored in is said in one line and not used; points are dragged
in place mode, faces deleted, each undoable. The shipped model (kaggle15) is the model."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtWidgets import QMessageBox

from test_gui_browse import _drag

pytestmark = pytest.mark.usefixtures("gui_settings")

#: A person's own set: four points, the eyes a left/right pair.
FOUR = dict(name="four", names=("left_eye", "right_eye", "nose", "mouth"),
            flip_pairs=(("left_eye", "right_eye"),),
            edges=(("left_eye", "right_eye"), ("nose", "mouth")))


@pytest.fixture(scope="module")
def ibug_npz(shared_data, tmp_path_factory):
    """12 real ytf68 faces imported into ibug68 (the first rows of the training CSV)."""
    from facekp.core.cli import main as cli

    folder = tmp_path_factory.mktemp("ibug")
    csv = shared_data / "ytf68" / "training_frames_keypoints.csv"
    lines = csv.read_text().splitlines()[:13]
    (folder / "few.csv").write_text("\n".join(lines) + "\n")
    out = folder / "ibug12.npz"
    assert cli.main(["import", "--labels", str(folder / "few.csv"), "--images",
                     str(shared_data / "ytf68" / "training"), "--out", str(out),
                     "--keypoints", "ibug68", "--detector", "none",
                     "--split", "0.5,0.25,0.25"]) == 0
    return out


@pytest.fixture(scope="module")
def four_npz(faces, tmp_path_factory):
    """6 real faces in the 4-point set (eyes, nose tip, bottom lip from their kaggle15
    labels); face 1 has no point at all."""
    from facekp.core.data import dataset as data
    from facekp.core.data.keypoint_sets import KAGGLE15, KeypointSet

    base = faces.subset(np.flatnonzero(faces.present.all(1))[:6])
    cols = [KAGGLE15.index(n) for n in ("left_eye_center", "right_eye_center", "nose_tip",
                                        "mouth_center_bottom_lip")]
    kp = base.keypoints.reshape(6, 15, 2)[:, cols].reshape(6, 8).copy()
    kp[1] = np.nan
    ds = data.Dataset.from_arrays(base.images, kp, names=base.names, persons=base.persons,
                                  splits=["train", "train", "train", "val", "val", "test"],
                                  keypoint_set=KeypointSet(**FOUR))
    return data.write_npz(ds, tmp_path_factory.mktemp("four") / "four.npz")


def _window(qtbot, path, predicted=True, **options):
    """The real window on ``path``; ``window.said``: every status bar message."""
    from facekp.gui.main_window import MainWindow, Options

    w = MainWindow(Options(data=str(path), remember=options.pop("remember", False), **options))
    w.ask_unsaved = lambda: QMessageBox.StandardButton.Discard
    w.recovery.ask_restore = lambda text: None
    w.said = []
    w.statusBar().messageChanged.connect(w.said.append)
    qtbot.addWidget(w)
    with qtbot.waitSignal(w.idle, timeout=120_000):
        w.show()
    qtbot.waitUntil(lambda: w.predictor is not None and not w.busy, timeout=120_000)
    if predicted:
        qtbot.waitUntil(lambda: w.session.all_predicted(), timeout=120_000)
    return w


def _zoom(canvas, scale=5):
    canvas.resetTransform()
    canvas.scale(scale, scale)
    canvas.centerOn(48, 48)


def _click(qtbot, canvas, xy):
    at = canvas.mapFromScene(QPointF(xy[0] + 0.5, xy[1] + 0.5))
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=at)
    qtbot.wait(20)


def _press(qtbot, w, key, mod=Qt.KeyboardModifier.NoModifier):
    w.canvas.setFocus()
    qtbot.keyClick(w.canvas, key, mod)


def test_an_ibug68_dataset_shows_68_rows_points_skeleton_legend_and_kaggle15_predictions(
        qtbot, ibug_npz):
    from facekp.core.data import dataset as data
    from facekp.core.data.keypoint_sets import IBUG68, KAGGLE15, derive_keypoints
    from facekp.gui.dataset_panel import DatasetModel
    from facekp.gui.session import face_rmse

    ds = data.read_npz(ibug_npz)
    from facekp.core.resources import DEFAULT_MODEL

    w = _window(qtbot, ibug_npz, image=3, model=str(DEFAULT_MODEL))   # chosen: it stays
    s, canvas, panel = w.session, w.canvas, w.dataset_panel
    assert s.keypoint_set == IBUG68 and w.row == 3
    assert w.kp_view.rowCount() == 68 and "jaw 0" in w.kp_view.item(0, 0).text()
    present = ds.present[3]
    assert panel.model.data(panel.model.index(3, DatasetModel.COL_POINTS)) == \
        f"{present.sum()}/68"
    assert sum(i.isVisible() for i in canvas.truth_items) == present.sum() == len(
        [i for i in canvas.truth_items if i.isVisible()])
    joined = sum(present[IBUG68.index(a)] and present[IBUG68.index(b)] for a, b in IBUG68.edges)
    assert sum(i.isVisible() for i in canvas.skeleton_items) == joined > 50
    # the shipped model predicts kaggle15, derived from the 68: 15 crosses, errors against
    # the derived truth, no error lines or per-keypoint errors across sets
    assert s.model_problem == "" and s.prediction_set == KAGGLE15
    assert sum(i.isVisible() for i in canvas.pred_items) == 15
    truth15 = derive_keypoints(ds.keypoints, IBUG68, KAGGLE15)
    np.testing.assert_allclose(s.errors, face_rmse(s.predictions, truth15), rtol=1e-5)
    assert np.isfinite(s.errors).sum() >= 10
    assert not any(i.isVisible() for i in canvas.line_items)
    qtbot.waitUntil(lambda: s.queue.kind == "worst" and len(s.queue) == np.isfinite(
        s.errors).sum(), timeout=10_000)                  # the worst-RMSE queue, across sets
    legend = canvas.legend_entries()
    assert legend[:2] == ["ground truth (drag to move)", "prediction"]
    assert "skeleton (ibug68)" in legend and "subject's" in legend[-1]
    assert canvas.legend.isVisible()
    # hover text: the name, whose side it is, and the prediction's confidence once known
    assert "37 · right eye 0 (the subject's right: the image's left)" in \
        canvas.describe_point(36, "truth")
    qtbot.waitUntil(lambda: "confidence" in canvas.describe_point(0, "prediction"),
                    timeout=60_000)
    # View toggles: skeleton and legend
    w.acts["skeleton"].setChecked(False)
    assert not canvas.layers["skeleton"].isVisible()
    assert "skeleton (ibug68)" not in canvas.legend_entries()
    w.acts["legend"].setChecked(False)
    assert not canvas.legend.isVisible()
    # a searchable list picks points past the number keys
    _press(qtbot, w, Qt.Key.Key_K)
    picker = w.correct.picker
    assert picker is not None and picker.list.count() == 68
    qtbot.keyClicks(picker.search, "nose base 2")
    qtbot.keyClick(picker.search, Qt.Key.Key_Return)
    assert w.correct.picked == IBUG68.index("nose_base_2") and canvas.place_mode
    assert "34 · nose base 2" in w.statusBar().currentMessage()
    _press(qtbot, w, Qt.Key.Key_Escape)                   # Esc stops placing
    assert w.correct.picked is None and not canvas.place_mode


def test_a_four_point_set_number_key_click_m_and_a_model_it_cannot_use(qtbot, four_npz):
    w = _window(qtbot, four_npz, predicted=False, image=1)
    s, canvas = w.session, w.canvas
    # the shipped kaggle15 model cannot score four-point faces: one line, no predictions
    assert "'four' (4 points)" in s.model_problem and "kaggle15" in s.model_problem
    assert any(m == s.model_problem for m in w.said)
    assert "\n" not in s.model_problem
    assert np.isnan(s.predictions).all() and not any(i.isVisible() for i in canvas.pred_items)
    assert s.queue.describe() == "waiting for a model of four…"
    assert w.kp_view.rowCount() == 4 and len(canvas.truth_items) == 4
    assert w.acts["pick_4"].text() == "Pick 4 · mouth" and not w.acts["pick_5"].isEnabled()
    assert w.dataset_panel.model.data(w.dataset_panel.model.index(
        1, w.dataset_panel.model.COL_POINTS)) == "0/4"

    _zoom(canvas)
    _press(qtbot, w, Qt.Key.Key_2)                        # number key, then a click
    assert w.correct.picked == 1
    assert "the subject's right: the image's left" in w.statusBar().currentMessage()
    _click(qtbot, canvas, (30, 38))
    qtbot.waitUntil(lambda: s.point(1, 1) is not None, timeout=5000)
    assert np.allclose(s.point(1, 1), (30, 38), atol=0.3)
    assert s.missing_keypoints(1) == [0, 2, 3]
    _press(qtbot, w, Qt.Key.Key_Escape)
    assert w.correct.picked is None and not canvas.place_mode

    _press(qtbot, w, Qt.Key.Key_M)                        # M: the rest, in order
    assert w.correct.picked == 0 and "1 · left eye" in w.statusBar().currentMessage()
    for k, xy in ((0, (64, 38)), (2, (48, 58)), (3, (48, 75))):
        assert w.correct.picked == k
        _click(qtbot, canvas, xy)
        qtbot.waitUntil(lambda k=k: s.point(1, k) is not None, timeout=5000)
        if k == 0:
            assert "3 · nose" in w.statusBar().currentMessage()   # the next point, named
    assert s.missing_keypoints(1) == [] and not canvas.place_mode
    assert sum(i.isVisible() for i in canvas.skeleton_items) == 2
    assert w.undo_stack.count() == 4

    # Delete of a point says what it did
    canvas.truth_items[2].setSelected(True)
    qtbot.keyClick(w, Qt.Key.Key_Delete)
    assert s.point(1, 2) is None
    assert "Deleted 3 · nose of face 1" in w.statusBar().currentMessage()


def test_a_stray_click_moves_no_labelled_point_but_the_picked_one_and_drag_works_while_placing(
        qtbot, four_npz):
    w = _window(qtbot, four_npz, predicted=False, image=0)
    s, canvas = w.session, w.canvas
    original = s.dataset.keypoints[0].copy()
    _zoom(canvas)
    _press(qtbot, w, Qt.Key.Key_1)                        # left eye: labelled
    assert w.correct.picked == 0 and canvas.place_mode
    nose = s.point(0, 2)
    _click(qtbot, canvas, nose)                           # a stray click on the nose
    np.testing.assert_array_equal(s.dataset.keypoints[0], original)   # nothing moved
    assert w.correct.picked == 2 and w.undo_stack.count() == 0        # the nose is picked
    _click(qtbot, canvas, (nose[0] + 3, nose[1] + 2))     # a click beside it: the nose moves
    qtbot.waitUntil(lambda: w.undo_stack.count() == 1, timeout=5000)
    assert np.allclose(s.point(0, 2), (nose[0] + 3, nose[1] + 2), atol=0.3)
    w.undo_stack.undo()
    np.testing.assert_array_equal(s.dataset.keypoints[0], original)

    # drag a point directly while placing: it moves, Ctrl+Z puts it back, placing goes on
    _press(qtbot, w, Qt.Key.Key_1)
    mouth = s.point(0, 3)
    _drag(qtbot, canvas, QPointF(mouth[0] + 0.5, mouth[1] + 0.5),
          QPointF(mouth[0] + 4.5, mouth[1] + 1.5))
    qtbot.waitUntil(lambda: w.undo_stack.count() == 1, timeout=5000)
    assert np.allclose(s.point(0, 3), (mouth[0] + 4, mouth[1] + 1), atol=0.3)
    assert s.point(0, 0) == tuple(original[:2])           # the picked point stayed
    assert canvas.place_mode and canvas.hasFocus()        # the keyboard flow goes on
    qtbot.keyClick(w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    np.testing.assert_array_equal(s.dataset.keypoints[0], original)


def test_delete_face_is_undoable_and_keeps_the_other_faces_predictions(qtbot, ibug_npz):
    w = _window(qtbot, ibug_npz, image=4)
    s = w.session
    n, names = len(s), s.dataset.names.copy()
    errors, keypoints = s.errors.copy(), s.dataset.keypoints.copy()
    w.acts["delete_face"].trigger()
    assert len(s) == n - 1 and list(s.dataset.names) == list(np.delete(names, 4))
    assert w.row == 4 and s.dataset.names[4] == names[5]
    np.testing.assert_array_equal(s.errors, np.delete(errors, 4))     # nothing predicted again
    assert w.dataset_panel.model.rowCount() == n - 1 and w.isWindowModified()
    assert "Deleted face 4" in w.statusBar().currentMessage()
    qtbot.keyClick(w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert len(s) == n and list(s.dataset.names) == list(names) and w.row == 4
    np.testing.assert_array_equal(s.dataset.keypoints, keypoints)
    np.testing.assert_array_equal(s.errors, errors)
    assert not w.isWindowModified()
    w.undo_stack.redo()
    assert len(s) == n - 1


def test_skeleton_and_legend_toggles_are_kept_like_the_other_view_toggles(qtbot, ibug_npz):
    """Only an interactive session writes them (here: the temporary settings of the test)."""
    from facekp.gui import settings as app_settings

    w = _window(qtbot, ibug_npz, predicted=False, remember=True)
    w.acts["skeleton"].setChecked(False)
    w.acts["legend"].setChecked(False)
    w.close()
    st = app_settings.settings()
    assert str(st.value("view/skeleton")).lower() == "false"
    w2 = _window(qtbot, ibug_npz, predicted=False, remember=True)
    assert not w2.acts["skeleton"].isChecked() and not w2.canvas.layers["skeleton"].isVisible()
    assert not w2.acts["legend"].isChecked() and not w2.canvas.legend.isVisible()


def test_label_from_zero_a_four_point_set_from_init_to_coco_and_pts(qtbot, tmp_path,
                                                                     shared_data):
    """The whole path for a set of a person's own: ``facekp keypoints init``, File > New
    dataset from photos on a folder of two real photos (every point missing), points placed
    by clicks, saved, exported to COCO (pycocotools reads 4 keypoints and the skeleton) and
    .pts, and both imported back equal."""
    import json
    import shutil

    from pycocotools.coco import COCO

    from facekp.core.cli import main as cli
    from facekp.core.data import dataset as data
    from facekp.core.data.keypoint_sets import load_set

    set_file = tmp_path / "four.json"
    assert cli.main(["keypoints", "init", "four", "--names", "left_eye,right_eye,nose,mouth",
                     "--flip", "left_eye:right_eye", "--edge", "left_eye-right_eye",
                     "--edge", "nose-mouth", "--out", str(set_file)]) == 0
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("Tom_Cruise_avp_2014_4.jpg", "dogs.jpg"):      # one face, and none
        shutil.copy(shared_data / "photos" / name, photos / name)
    four = load_set(set_file)

    w = _window(qtbot, four_npz_path(tmp_path), predicted=False)
    w.datasets.ask_keypoint_set = lambda: four
    w.datasets.new_from_photos(four, photos)
    qtbot.waitUntil(lambda: w.session.dataset is not None
                    and w.session.keypoint_set == four, timeout=120_000)
    s, canvas = w.session, w.canvas
    assert len(s.dataset) == 1 and s.dataset.names[0] == "Tom_Cruise_avp_2014_4.jpg#1"
    assert np.isnan(s.dataset.keypoints).all() and not s.dataset.checked.any()
    assert s.dataset.sources[0].endswith("Tom_Cruise_avp_2014_4.jpg")
    assert "New dataset: 1 faces from 2 photos" in " ".join(w.said)

    _zoom(canvas)
    _press(qtbot, w, Qt.Key.Key_M)                        # M: every point, in order
    spots = {0: (62, 38), 1: (33, 38), 2: (48, 58), 3: (48, 75)}
    for k, xy in spots.items():
        assert w.correct.picked == k
        _click(qtbot, canvas, xy)
        qtbot.waitUntil(lambda k=k: s.point(0, k) is not None, timeout=5000)
    assert s.missing_keypoints(0) == []
    out = tmp_path / "labelled.npz"
    assert w.files.write_dataset(out)
    saved = data.read_npz(out)
    assert saved.keypoint_set == four
    np.testing.assert_allclose(saved.keypoints[0].reshape(4, 2),
                               np.array(list(spots.values()), float), atol=0.3)

    coco = tmp_path / "four.coco.json"
    assert cli.main(["export", str(out), "--format", "coco", "--out", str(coco)]) == 0
    api = COCO(str(coco))
    (cat,) = api.loadCats(api.getCatIds())
    assert cat["keypoints"] == list(four.names) and len(cat["skeleton"]) == 2
    (ann,) = api.loadAnns(api.getAnnIds())
    assert ann["num_keypoints"] == 4 and len(ann["keypoints"]) == 12
    pts = tmp_path / "pts"
    assert cli.main(["export", str(out), "--format", "pts", "--out", str(pts)]) == 0
    from facekp.core.data.formats import images_folder

    for source, args in ((coco, ["--labels", str(coco), "--images", str(images_folder(coco))]),
                         (pts, ["--images", str(pts), "--keypoints", str(set_file)])):
        back_path = tmp_path / f"back-{source.name}.npz"
        assert cli.main(["import", *args, "--out", str(back_path)]) == 0, source
        back = data.read_npz(back_path)
        assert back.keypoint_set.names == four.names, source
        np.testing.assert_allclose(back.keypoints, saved.keypoints, atol=0.01)
        np.testing.assert_array_equal(back.images, saved.images)
    json.loads(coco.read_text())  # a plain JSON file


def four_npz_path(tmp_path):
    """A one-face kaggle15 dataset to start the window on (the new dataset replaces it)."""
    from facekp.core.data import dataset as data
    from facekp.core.data import opener
    from facekp.core.resources import DEFAULT_DATASET

    return data.write_npz(opener.load(DEFAULT_DATASET).subset([0]), tmp_path / "start.npz")


def test_the_embedded_dataset_in_68_points_brings_the_shipped_68_point_model(qtbot):
    """``facekp-gui --keypoints ibug68``: the embedded faces with their 68 points, and the
    app picks the shipped ibug68 model for them (the Models dock lists both shipped models);
    its 68 crosses are drawn and scored against the 68 labels."""
    from facekp.core.data.keypoint_sets import IBUG68
    from facekp.core.resources import SHIPPED_MODELS
    from facekp.gui.main_window import MainWindow, Options

    w = MainWindow(Options(keypoints="ibug68", split="test", remember=False))
    w.ask_unsaved = lambda: QMessageBox.StandardButton.Discard
    w.recovery.ask_restore = lambda text: None
    qtbot.addWidget(w)
    w.show()
    s = w.session
    qtbot.waitUntil(lambda: s.dataset is not None and w.predictor is not None
                    and w.predictor.keypoint_set == IBUG68, timeout=180_000)
    assert s.keypoint_set == IBUG68 and w.model_path.resolve() == SHIPPED_MODELS[
        "ibug68"].resolve()
    qtbot.waitUntil(lambda: s.has_prediction(s.row), timeout=120_000)
    assert sum(i.isVisible() for i in w.canvas.pred_items) == 68 and s.same_set
    assert np.isfinite(s.errors[s.row]) and s.errors[s.row] < 5   # a real model, real faces
    w.model_list.refresh()
    names = {info.path.resolve() for info in w.model_list.infos if info.origin == "shipped"}
    assert names == {p.resolve() for p in SHIPPED_MODELS.values()}


def test_gui_model_by_name_and_a_bad_keypoint_set_are_one_line(tmp_path):
    import subprocess
    import sys

    for args, said in ((["--keypoints", "nope"], "--keypoints: unknown keypoint set 'nope'"),
                       (["--model", "ibug68", "--keypoints", str(tmp_path / "x.json")],
                        "--keypoints:")):
        out = subprocess.run([sys.executable, "-m", "facekp.gui.app", *args, "--screenshot",
                              str(tmp_path / "s.png")], capture_output=True, text=True,
                             timeout=120, env={**__import__("os").environ,
                                               "QT_QPA_PLATFORM": "offscreen"})
        assert out.returncode == 2 and said in out.stderr, out.stderr
        assert not (tmp_path / "s.png").exists()


def test_a_point_marked_hidden_is_drawn_dashed_undoable_and_saved(qtbot, four_npz, tmp_path):
    """O marks the selected labelled point hidden (occluded): drawn dashed and hollow, named
    in the legend, undoable, and saved in the .npz."""
    from facekp.core.data import dataset as data

    w = _window(qtbot, four_npz, predicted=False, image=0)
    s, canvas = w.session, w.canvas
    item = canvas.truth_items[2]
    item.setSelected(True)
    _press(qtbot, w, Qt.Key.Key_O)
    assert s.dataset.hidden[0, 2] and item.hidden
    assert item.pen().style() == Qt.PenStyle.DashLine
    assert "hidden point (labelled, occluded)" in canvas.legend_entries()
    assert "3 · nose of face 0: hidden" in w.statusBar().currentMessage()
    w.undo_stack.undo()
    assert not s.dataset.hidden[0, 2] and item.pen().style() == Qt.PenStyle.SolidLine
    w.undo_stack.redo()
    assert s.dataset.hidden[0, 2]
    out = tmp_path / "hidden.npz"
    assert w.files.write_dataset(out)
    saved = data.read_npz(out)
    assert saved.hidden[0, 2] and saved.hidden.sum() == 1
    w.select_row(1)                  # another face: nothing hidden there
    assert not any(i.hidden for i in canvas.truth_items)
