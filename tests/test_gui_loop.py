"""The annotation loop in the real app, offscreen: open a photo, add its faces to the dataset
(the model's points as unchecked labels), save, export, fine-tune one epoch from the loaded
model, compare the two models on one face."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

#: The app's settings and trained models go to a temporary place (conftest.gui_settings).
pytestmark = pytest.mark.usefixtures("gui_settings")


@pytest.fixture(scope="module")
def tiny(real_subset_npz):
    """24 real train faces (all 15 points) + 8 validation + 4 test faces, as an .npz."""
    return real_subset_npz("gui-loop", train=24, val=8, test=4, seed=11)


@pytest.fixture(scope="module")
def model_path(tiny, one_epoch_model):
    """A real model trained for one epoch on the tiny dataset."""
    return one_epoch_model(tiny, "start", batch_size=12)


def wait_idle(qtbot, window, timeout=60_000):
    qtbot.waitUntil(lambda: not window.busy, timeout=timeout)


def _add_photo_faces(qtbot, window, photo: Path) -> int:
    """Open ``photo``, add its faces; returns the row of the first new face."""
    with qtbot.waitSignal(window.photoShown, timeout=60_000):
        window.open_photo(photo)
    assert window.acts["add_faces"].isEnabled()
    n_before = len(window.dataset)
    window.acts["add_faces"].trigger()
    wait_idle(qtbot, window)
    return n_before


def test_the_loop_photo_faces_save_export_fine_tune_compare(qtbot, tiny, model_path,
                                                           shared_data, tmp_path, open_window):
    from facekp.core.data import dataset as data
    from facekp.core.data import formats
    from facekp.core.photos import importers

    window = open_window(qtbot, data=str(tiny), model=str(model_path))
    photo = shared_data / "photos" / "Tom_Cruise_avp_2014_4.jpg"
    first = _add_photo_faces(qtbot, window, photo)
    ds = window.dataset
    assert len(ds) == first + 1 == 37
    assert ds.checked[:first].all() and not ds.checked[first]
    assert ds.sources[first] == str(photo) and ds.names[first] == f"{photo.name}#1"
    assert ds.splits[first] == "train"             # a dataset with splits trains on them
    # the face on screen is the new one, its labels the photo's predicted points in the crop
    assert window.view_mode == "dataset" and window.row == first
    (box, kp, _det, crop, *_), = window.photo.faces
    expected = crop.to_crop(kp)                   # points outside the crop stay missing
    expected[~((expected >= 0) & (expected <= 96)).all(axis=1)] = np.nan
    np.testing.assert_allclose(ds.keypoints[first].reshape(15, 2), expected, atol=1e-3)
    assert "not yet checked" in window.session.face_text(first)
    assert window.isWindowModified()

    # saved, the flag and the photo's name survive
    assert window.files.write_dataset(tmp_path / "more.npz")
    back = data.read_npz(tmp_path / "more.npz")
    assert back.checked.tolist() == [True] * first + [False]
    assert back.sources[first] == str(photo)

    # File > Export dataset as ...: each format, and back
    for fmt, out in (("coco", "c.json"), ("dlib", "d.xml"), ("pts", "pts"), ("csv", "k.csv")):
        written = window.files.export_dataset(fmt, tmp_path / out)
        assert written and written[0] == tmp_path / out
    again, _ = importers.import_labels(formats.images_folder(tmp_path / "c.json"),
                                      tmp_path / "c.json")
    np.testing.assert_allclose(again.keypoints, back.keypoints, atol=1e-4)
    coco = json.loads((tmp_path / "c.json").read_text())
    assert len(coco["annotations"]) == 37
    assert len(list((tmp_path / "pts").glob("*.pts"))) == 37

    # one undo takes the faces out again; redo brings them back
    window.undo_stack.undo()
    wait_idle(qtbot, window)
    assert len(window.dataset) == first and window.dataset.checked.all()
    window.undo_stack.redo()
    wait_idle(qtbot, window)
    assert len(window.dataset) == first + 1 and window.row == first

    _fine_tune_and_compare(qtbot, window, model_path, tmp_path)


def _fine_tune_and_compare(qtbot, window, model_path, tmp_path):
    """One epoch from the loaded model on the edited dataset, then the two side by side."""
    from facekp.core.model.checkpoints import read_record

    panel = window.training_panel
    assert panel.loaded_model == model_path and panel.fine_tune.isEnabled()
    panel.fine_tune.setChecked(True)
    assert not panel.arch.isEnabled()
    asked = []
    window.ask_switch_model = lambda text: asked.append(text) or False
    out = tmp_path / "tuned.keras"
    with qtbot.waitSignal(panel.modelTrained, timeout=180_000):
        assert panel.start(config={"epochs": 1, "batch_size": 12}, out=out)
    result = panel.thread.result
    assert result.reason == "completed" and result.epochs_run == 1 and result.best_epoch == 1
    record = read_record(out)
    assert record["fine_tuned_from"] == str(model_path)
    ds = window.dataset                            # trained on the dataset as edited
    train = ds.splits == "train"
    if record["config"]["complete_only"]:
        train &= ds.present.all(axis=1)
    assert record["train_faces"] == int(train.sum())
    qtbot.waitUntil(lambda: bool(asked), timeout=60_000)   # compared with the loaded model
    assert "validation faces" in asked[0] and window.model_path == model_path
    wait_idle(qtbot, window)

    # the Models dock lists both, with their records; compare them on one face
    models = window.model_list
    names = [i.name for i in models.infos]
    assert "start.keras" in names and "tuned.keras" in names
    tuned = next(i for i in models.infos if i.name == "tuned.keras")
    assert tuned.val_rmse_px == pytest.approx(result.best_val_rmse_px)
    models.select(model_path, out)
    assert models.compare_button.isEnabled()
    window.select_row(0)
    wait_idle(qtbot, window)
    models.compare_selected()
    qtbot.waitUntil(lambda: models.comparing() and np.isfinite(window.canvas.compare).all(),
                    timeout=60_000)
    wait_idle(qtbot, window)
    from facekp.core.model import metrics
    from facekp.core.model.predict import Predictor

    truth = window.dataset.keypoints[:1]
    expected = metrics.point_errors(Predictor(out).predict(window.dataset.images[:1]), truth)[0]
    view = window.kp_view
    np.testing.assert_allclose(view.split_values, expected, rtol=1e-3, atol=1e-3)
    assert np.isfinite(view.current).all()
    rmse_b = np.sqrt(np.nanmean(expected ** 2) / 2)
    assert view.horizontalHeaderItem(2).text() == "tuned +"        # the models' names
    assert view.horizontalHeaderItem(1).text() == "start ×"
    assert view.horizontalHeaderItem(2).toolTip().startswith("tuned.keras")
    assert f"face RMSE {rmse_b:.2f} px" in view.horizontalHeaderItem(2).toolTip()
    assert view.horizontalHeaderItem(1).toolTip().startswith("start.keras")
    models.stop_comparing()
    assert np.isnan(window.canvas.compare).all()


def test_faces_are_added_while_unsure_points_are_hidden(qtbot, tiny, shared_data, open_window):
    """Photo > Hide unsure points on: the faces on screen are added, the points hidden as
    unsure left missing (as drawn), the others the model's."""
    from facekp.gui.canvas import UNSURE_POINT_BELOW

    window = open_window(qtbot, data=str(tiny))             # the shipped model, with its head
    window.acts["hide_unsure_points"].setChecked(True)
    photo = shared_data / "photos" / "Tom_Cruise_avp_2014_4.jpg"
    first = _add_photo_faces(qtbot, window, photo)
    assert len(window.dataset) == first + 1 and window.row == first
    (_box, kp, _det, crop, conf), = window.photo.faces
    expected = crop.to_crop(kp)
    expected[~((expected >= 0) & (expected <= 96)).all(axis=1)] = np.nan
    expected[np.asarray(conf) < UNSURE_POINT_BELOW] = np.nan
    np.testing.assert_allclose(window.dataset.keypoints[first].reshape(15, 2), expected,
                               atol=1e-3)
    assert not window.dataset.checked[first]


def test_adding_a_face_predicts_only_the_new_face_and_selects_it(qtbot, tiny, shared_data,
                                                                  open_window):
    """The faces already predicted keep their predictions (the RMSE column never goes
    blank); the new face is predicted alone and is the table's current row, in view."""
    window = open_window(qtbot, data=str(tiny))
    qtbot.waitUntil(lambda: not window.busy and window.session.all_predicted(), timeout=60_000)
    panel = window.dataset_panel
    panel.set_split("val")
    panel.sort_worst_first()
    before = window.session.predictions.copy()
    predicted = []
    predict = window.predictor.predict
    window.predictor.predict = lambda images, **kw: predicted.append(len(images)) or \
        predict(images, **kw)
    blank = []
    window.dataset_panel.model.modelReset.connect(
        lambda: blank.append(np.isnan(window.dataset_panel.model.errors).sum()))
    photo = shared_data / "photos" / "Tom_Cruise_avp_2014_4.jpg"
    with qtbot.waitSignal(window.photoShown, timeout=60_000):
        window.open_photo(photo)
    predicted.clear()
    first = len(window.dataset)
    window.acts["add_faces"].trigger()
    assert not np.isnan(window.dataset_panel.model.errors[:first]).any()   # never blank
    qtbot.waitUntil(lambda: not window.busy and window.session.all_predicted(), timeout=60_000)
    assert sum(predicted) == 1, predicted                       # the new face only
    np.testing.assert_array_equal(window.session.predictions[:first], before)
    assert window.row == first and panel.current_row() == first
    index = panel.table.selectionModel().currentIndex()
    assert panel.table.viewport().rect().intersects(panel.table.visualRect(index))
    window.undo_stack.undo()                                    # and back: nothing predicted
    qtbot.waitUntil(lambda: not window.busy, timeout=60_000)
    assert sum(predicted) == 1 and len(window.dataset) == first
    np.testing.assert_array_equal(window.session.predictions, before)
