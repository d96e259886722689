"""The window on a small screen, offscreen: it fits 1280 x 720 with every dock on screen or one
tab away, View > Reset layout puts every dock back, dock widths squeezed by a small window come
back when it is made large again, and the toolbar's buttons all fit (Undo and Redo short)."""
from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, Qt

#: The app's settings and trained models go to a temporary place (conftest.gui_settings).
pytestmark = pytest.mark.usefixtures("gui_settings")

#: What a 1280 x 720 screen leaves for the window inside its frame (title bar, borders).
SMALL = (1280 - 16, 720 - 48)


@pytest.fixture(scope="module")
def tiny(real_subset_npz):
    return real_subset_npz("gui-layout", train=8, val=4, seed=3)


def _on_screen(window, dock) -> bool:
    return (dock.isVisible() and not dock.isFloating() and dock.width() >= 60
            and dock.height() >= 60 and window.rect().contains(dock.geometry()))


def _reachable(window, dock) -> bool:
    """On screen in the window, or a tab of a group whose front dock is."""
    return _on_screen(window, dock) or any(_on_screen(window, d)
                                           for d in window.tabifiedDockWidgets(dock))


def _resize(qtbot, window, size):
    window.resize(*size)
    qtbot.waitUntil(lambda: window.size().toTuple() == tuple(size), timeout=5000)
    qtbot.wait(50)                         # the docks are laid out


def test_the_window_fits_a_1280x720_screen_with_every_dock_reachable(qtbot, tiny, open_window):
    w = open_window(qtbot, data=str(tiny))
    smallest = w.minimumSizeHint().expandedTo(w.minimumSize())
    assert smallest.width() <= SMALL[0] and smallest.height() <= SMALL[1]
    _resize(qtbot, w, SMALL)
    for dock in w.window_layout.docks:
        assert _reachable(w, dock), dock.objectName()
    assert w.canvas.width() >= 400
    table = w.dataset_panel.table      # every column in sight: the name column gives way
    qtbot.waitUntil(lambda: table.horizontalScrollBar().maximum() == 0, timeout=5000)
    header = table.horizontalHeader()
    assert header.sectionViewportPosition(header.count() - 1) + \
        header.sectionSize(header.count() - 1) <= table.viewport().width()
    assert header.sectionSize(1) >= 80         # the name keeps room to be read


def test_reset_layout_and_dock_widths_that_come_back(qtbot, tiny, open_window):
    w = open_window(qtbot, data=str(tiny))
    _resize(qtbot, w, (1400, 900))
    left, right = w.dataset_dock.width(), w.review_dock.width()
    _resize(qtbot, w, (900, 600))                         # squeezed by a small window ...
    assert w.dataset_dock.width() < left
    _resize(qtbot, w, (1920, 1080))                       # ... and back when maximised
    assert abs(w.dataset_dock.width() - left) <= 3 and abs(w.review_dock.width() - right) <= 3

    # a separator dragged by the person: that width is kept instead
    x = w.dataset_dock.geometry().right() + 3
    y = w.dataset_dock.geometry().center().y()
    assert w.childAt(QPoint(x, y)) is None                # the separator, no widget
    qtbot.mousePress(w, Qt.MouseButton.LeftButton, pos=QPoint(x, y))
    qtbot.wait(20)
    qtbot.mouseMove(w, QPoint(x - 120, y))
    qtbot.wait(50)                                        # (Qt moves it on a timer)
    qtbot.mouseRelease(w, Qt.MouseButton.LeftButton, pos=QPoint(x - 120, y))
    qtbot.wait(50)
    dragged = w.dataset_dock.width()
    assert dragged < left - 60
    _resize(qtbot, w, (900, 600))
    _resize(qtbot, w, (1600, 1000))
    assert abs(w.dataset_dock.width() - dragged) <= 3

    # View > Reset layout: a closed dock and a floating one come back, default widths
    w.kp_dock.close()
    w.models_dock.setFloating(True)
    w.acts["reset_layout"].trigger()
    qtbot.wait(50)
    for dock in w.window_layout.docks:
        assert _reachable(w, dock), dock.objectName()
    assert abs(w.dataset_dock.width() - 520) <= 3 and abs(w.review_dock.width() - 400) <= 3


def test_undo_and_redo_are_short_on_the_toolbar_and_every_button_fits(qtbot, tiny,
                                                                       open_window):
    w = open_window(qtbot, data=str(tiny))
    _resize(qtbot, w, SMALL)
    w.select_row(0)
    w.editing.delete_requested(14)
    qtbot.wait(50)
    undo = w.toolbar.widgetForAction(w.acts["@undo"])
    assert undo.text() == "Undo"
    assert undo.toolTip() == "Undo delete mouth center bottom lip of face 0"
    for act in w.toolbar.actions():
        if not act.isSeparator():
            assert w.toolbar.widgetForAction(act).isVisible(), act.text()   # no overflow
    w.undo_stack.undo()
    redo = w.toolbar.widgetForAction(w.acts["@redo"])
    assert redo.text() == "Redo" and redo.toolTip().startswith("Redo delete")


def test_a_window_started_on_a_small_screen_gives_the_training_dock_its_column(
        qtbot, tiny, open_window, monkeypatch):
    """Started at the size a 1280 x 720 screen leaves (the offscreen screen is not fitted to:
    the default size stands in for it), the Models dock is a third tab beside Training and
    Review, so the Training dock's form and plot get the column's height; Reset layout keeps
    that arrangement."""
    monkeypatch.setattr("facekp.gui.window_layout.DEFAULT_SIZE", SMALL)
    w = open_window(qtbot, data=str(tiny))
    assert w.size().toTuple() == SMALL
    assert set(w.tabifiedDockWidgets(w.review_dock)) == {w.training_dock, w.models_dock}
    w.training_dock.raise_()
    qtbot.wait(50)
    assert w.training_dock.height() >= SMALL[1] - 150
    for dock in w.window_layout.docks:
        assert _reachable(w, dock), dock.objectName()
    assert w.canvas.width() >= 400
    w.acts["reset_layout"].trigger()
    qtbot.wait(50)
    assert set(w.tabifiedDockWidgets(w.review_dock)) == {w.training_dock, w.models_dock}


def test_the_training_dock_shows_its_whole_plot_in_a_900_px_window(qtbot, tiny, open_window):
    """The Training panel scrolls to its preferred height (its wrapped labels ask for one):
    a loss plot that asked for 480 px put its x axis and legend below a 900-px window."""
    w = open_window(qtbot, data=str(tiny))
    _resize(qtbot, w, (1400, 900))
    w.review_dock.hide()
    w.models_dock.hide()
    w.training_dock.show()
    w.training_panel.loss.ensure()
    qtbot.wait(100)
    area = w.training_dock.widget()
    qtbot.waitUntil(lambda: area.viewport().height() >= 600, timeout=5000)
    assert area.verticalScrollBar().maximum() == 0
    plot = w.training_panel.loss
    bottom = plot.mapTo(area.viewport(), plot.rect().bottomLeft()).y()
    assert plot.height() >= 250 and bottom <= area.viewport().height()
