"""One figure, one definition, one name wherever the app shows it; texts that say what they
mean; the loss plot's axes and legend; the dataset table's order and names. Real widgets,
offscreen; real faces; the shipped model or models trained for one epoch on a few faces."""
from __future__ import annotations

import re

import numpy as np
import pytest

pytestmark = pytest.mark.usefixtures("gui_settings")


@pytest.fixture(scope="module")
def tiny(real_subset_npz):
    """24 real train faces + 12 validation + 4 test faces, as an .npz."""
    return real_subset_npz("gui-figures", train=24, val=12, test=4, seed=7)


def wait_idle(qtbot, window, timeout=120_000):
    qtbot.waitUntil(lambda: not window.busy and window.session.all_predicted(),
                    timeout=timeout)


# --- 8: one definition per figure ------------------------------------------------------------

def test_a_points_error_is_its_distance_in_px_in_the_hover_and_the_dock(qtbot, tiny,
                                                                       open_window):
    window = open_window(qtbot, data=str(tiny))
    wait_idle(qtbot, window)
    window.select_row(3)
    s, view = window.session, window.kp_view
    for k in range(15):
        hover = window.canvas.describe_point(k, "truth")
        shown = re.search(r"error ([\d.]+) px", hover)
        if shown:
            assert view.item(k, 1).text() == shown.group(1), (k, hover)
    truth = s.dataset.keypoints.reshape(-1, 15, 2)
    pred = s.predictions.reshape(-1, 15, 2)
    distance = np.hypot(*(pred - truth).transpose(2, 0, 1))
    np.testing.assert_allclose(view.current, distance[3], rtol=1e-6)
    np.testing.assert_allclose(view.split_values, np.nanmean(distance, axis=0), rtol=1e-6)
    assert "distance in px" in view.horizontalHeaderItem(1).toolTip()
    assert "distance in px" in view.horizontalHeaderItem(2).toolTip()


def test_a_models_validation_rmse_is_the_same_in_the_dialog_and_the_models_dock(
        qtbot, tiny, one_epoch_model, open_window):
    loaded = one_epoch_model(tiny, "figures-a", batch_size=12)
    new = one_epoch_model(tiny, "figures-b", batch_size=8)
    window = open_window(qtbot, data=str(tiny), model=str(loaded))
    wait_idle(qtbot, window)
    asked = []
    window.ask_switch_model = lambda text: asked.append(text) or False
    window.model_list.opened.append(new)
    window.model_list.refresh()
    window.models.trained(str(new))
    qtbot.waitUntil(lambda: bool(asked) and not window.busy, timeout=120_000)
    dock = {window.model_list.table.item(r, 0).text(): window.model_list.table.item(r, 4).text()
            for r in range(window.model_list.table.rowCount())}
    new_px, old_px = re.findall(r"has (?:validation RMSE )?([\d.]+) px", asked[0])
    assert (new_px, old_px) == (dock[new.name], dock[loaded.name]), (asked[0], dock)
    assert "one pass" in asked[0]
    assert "one pass" in window.model_list.table.horizontalHeaderItem(4).toolTip()


# --- 15: texts that say what they mean ------------------------------------------------------

def test_recovery_texts_count_in_words_and_each_answer_says_what_it_does(qtbot, tiny, tmp_path):
    import shutil

    from PySide6.QtWidgets import QMessageBox

    from facekp.core.data import dataset as data
    from facekp.gui.recovery import find_recovery, images_checksum, recovery_path, \
        restore_box, write_recovery

    path = tmp_path / "mine.npz"
    shutil.copy(tiny, path)
    ds = data.read_npz(path)
    edited = ds.subset(slice(None))
    edited.keypoints = ds.keypoints.copy()
    edited.keypoints[2, :2] += 3.0
    write_recovery(recovery_path(path), edited, path, images_checksum(ds.images), False)
    _rec, restored, text = find_recovery(path, ds)
    assert restored is not None and "(1 face differs from the file)" in text, text
    box = restore_box(None, text)
    B = QMessageBox.StandardButton
    assert [box.button(b).text() for b in (B.Yes, B.Discard, B.Cancel)] == \
        ["Restore", "Discard them", "Not now"]
    assert "Not now: the file is shown as it is and the edits stay kept" in box.informativeText()


def test_save_title_and_the_unsaved_question(qtbot, tiny, tmp_path, shared_data, open_window):
    import shutil

    from facekp.gui.recovery import unsaved_text

    path = tmp_path / "mine.npz"
    shutil.copy(tiny, path)
    window = open_window(qtbot, data=str(path))
    wait_idle(qtbot, window)
    save = window.acts["save"]
    assert not save.isEnabled()                              # nothing to save yet
    assert window.windowTitle() == "facekp — mine.npz[*] · face 0"
    window.editing.delete_requested(10)
    assert save.isEnabled() and window.isWindowModified()
    assert unsaved_text(window) == ("mine.npz has 1 unsaved change (the last: delete nose "
                                     "tip of face 0). Save them?")
    window.files.save_dataset()
    assert not save.isEnabled()
    window.undo_stack.undo()                                 # the file now holds the edit
    assert save.isEnabled() and unsaved_text(window).startswith("mine.npz has 1 unsaved "
                                                                 "change")
    with qtbot.waitSignal(window.photoShown, timeout=60_000):
        window.open_photo(shared_data / "photos" / "Tom_Cruise_avp_2014_4.jpg")
    assert window.windowTitle() == "facekp — mine.npz[*] · Tom_Cruise_avp_2014_4.jpg"


def test_headers_and_the_shortcuts_table_are_not_cut(qtbot, tiny, open_window):
    from facekp.gui.shortcuts import ShortcutsDialog

    window = open_window(qtbot, data=str(tiny))
    wait_idle(qtbot, window)
    window.dataset_panel.set_split("val")
    view = window.kp_view
    assert view.horizontalHeaderItem(2).text() == "validation (12)"
    metrics = view.horizontalHeader().fontMetrics()
    for c in (1, 2, view.SURE):
        text = view.horizontalHeaderItem(c).text()
        assert view.columnWidth(c) >= metrics.horizontalAdvance(text) + 8, (c, text)

    dialog = ShortcutsDialog(window)
    dialog.show()
    qtbot.waitExposed(dialog)
    table = dialog.table
    width = table.columnWidth(3)
    fm = table.fontMetrics()
    from PySide6.QtCore import QRect, Qt
    for r in range(table.rowCount()):
        text = table.item(r, 3).text()
        needed = fm.boundingRect(QRect(0, 0, width - 8, 10_000),
                                 int(Qt.TextFlag.TextWordWrap), text).height()
        assert table.rowHeight(r) >= needed, (r, text)
    dialog.close()


# --- 16: the loss plot ------------------------------------------------------------------------

def test_loss_plot_counts_epochs_and_its_legend_covers_no_point(qtbot):
    from facekp.gui.loss_plot import LossPlot

    plot = LossPlot()
    qtbot.addWidget(plot)
    plot.resize(500, 320)
    plot.show()
    plot.ensure()
    plot.add_batches([(1, b, 40.0 / b) for b in range(1, 9)], steps=10)   # epoch 0.1 - 0.8
    plot.add_epoch({"epoch": 1, "train_rmse_px": 6.0, "val_rmse_px": 7.0, "best": True})
    plot.redraw()
    qtbot.wait(50)
    item = plot.plot.getPlotItem()
    bottom = item.getAxis("bottom")
    assert not bottom.autoSIPrefix and "x0.001" not in bottom.labelString()
    assert bottom.labelString().startswith("<span") and "epoch" in bottom.labelString()
    names = [label.text for _sample, label in plot.legend.items]
    assert names == ["batch (train)", "train (epoch)", "validation", "best"]
    viewbox = item.getViewBox().sceneBoundingRect()
    assert not plot.legend.sceneBoundingRect().intersects(viewbox)


def test_no_eta_once_stop_is_asked(qtbot, tiny, open_window):
    import time

    window = open_window(qtbot, data=str(tiny))
    panel = window.training_panel
    panel.ensure_plot()

    class Thread:                  # a run in its second epoch (no training in this file)
        stop_requested = False

        def stop(self):
            self.stop_requested = True

    panel.thread, panel._running = Thread(), True
    panel.started_at = panel.first_batch_at = time.monotonic() - 20
    panel.steps, panel.planned_epochs, panel.last_batch = 10, 5, (2, 3)
    title = panel.loss.plot.getPlotItem().titleLabel
    panel._update_title()
    assert "ETA" in title.text
    panel.stop()
    assert "ETA" not in title.text and "elapsed" in title.text
    panel.thread, panel._running = None, False


# --- 17: the dataset table --------------------------------------------------------------------

def test_table_rmse_first_click_is_worst_first_and_an_edit_keeps_the_face_in_view(
        qtbot, tiny, open_window):
    from PySide6.QtCore import QPoint, Qt

    from facekp.gui.dataset_panel import DatasetModel

    window = open_window(qtbot, data=str(tiny))
    wait_idle(qtbot, window)
    panel = window.dataset_panel
    table, errors = panel.table, window.session.errors
    panel.resize(panel.width(), 260)                      # a short table: rows out of view
    header = table.horizontalHeader()
    x = header.sectionViewportPosition(DatasetModel.COL_RMSE) + 5
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton,
                     pos=QPoint(x, header.height() // 2))
    assert panel.visible_rows()[0] == int(np.nanargmax(errors))           # worst first
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton,
                     pos=QPoint(x, header.height() // 2))
    assert panel.visible_rows()[0] == int(np.nanargmin(errors))           # then best first

    row = int(panel.visible_rows()[-1])                    # the worst face, at the bottom
    window.select_row(row)
    window.acts["accept_face"].trigger()   # now the best face: re-sorted to the top ...
    qtbot.wait(50)
    index = table.selectionModel().currentIndex()
    assert panel.view.dataset_row(index.row()) == row == panel.visible_rows()[0]
    assert table.viewport().rect().intersects(table.visualRect(index))


def test_table_names_keep_their_start(qtbot, tiny, open_window):
    from PySide6.QtCore import Qt

    window = open_window(qtbot, data=str(tiny))
    table = window.dataset_panel.table
    assert table.textElideMode() == Qt.TextElideMode.ElideRight
    index = window.dataset_panel.view.index(0, 1)
    assert index.data(Qt.ItemDataRole.ToolTipRole) == str(window.dataset.names[
        window.dataset_panel.view.dataset_row(0)])


def test_the_canvas_legend_stays_in_its_corner_when_the_picture_scrolls(qtbot, tiny,
                                                                         open_window):
    """Scrolling a zoomed face moved the legend (a child of the viewport) with the picture,
    half out of sight."""
    window = open_window(qtbot, data=str(tiny))
    canvas = window.canvas
    assert canvas.legend.isVisible()
    corner = canvas.legend.pos()
    canvas.zoom_by(6.0)
    for bar in (canvas.horizontalScrollBar(), canvas.verticalScrollBar()):
        assert bar.maximum() > 0
        bar.setValue(bar.maximum())
        bar.setValue(bar.minimum() + 7)
    assert canvas.legend.pos() == corner
    # a canvas narrower than the legend wraps its lines instead of cutting them
    window.resize(900, window.height())
    window.canvas.resize(260, window.canvas.height())
    qtbot.wait(50)
    assert canvas.legend.width() <= canvas.viewport().width() - 12
    assert canvas.legend.pos() == corner and canvas.legend.isVisible()
