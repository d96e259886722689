"""The window's layout: a size that fits the screen, dock columns sized by the window's width,
View > Reset layout, and dock widths that come back when the window is made larger again.

Qt's main window gives every pixel a window gains to the face (the central widget) and takes
the pixels it loses from the face first, then from the docks; so docks squeezed by a small
window stayed narrow after it was maximised. Here each dock column has the width the person
chose (dragging a separator) or the default; on every resize of the window the columns are
given that width again, narrowed as far as needed to leave the face ``CANVAS_MIN`` pixels.
"""
from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QDockWidget, QFrame, QScrollArea

LEFT = Qt.DockWidgetArea.LeftDockWidgetArea
RIGHT = Qt.DockWidgetArea.RightDockWidgetArea
#: The window's size when the screen has room for it.
DEFAULT_SIZE = (1400, 900)
#: Room left around the window for its frame (title bar, borders) when it is fitted to a screen.
FRAME = (16, 48)
#: Default width of the left and right dock columns: a share of the window's width, at most
#: so many pixels (520 and 400 at the default size).
COLUMNS = {LEFT: (0.372, 520), RIGHT: (0.286, 400)}
#: The face keeps at least this many pixels of width while docks are narrowed for it.
CANVAS_MIN = 400
#: A window shorter than this (a small screen) gets the Models dock as a third tab beside
#: Training and Review, so that the Training dock's form and plot have the column's height.
TABS_BELOW = 800


def add_dock(window, title: str, name: str, widget, area) -> QDockWidget:
    """A dock named ``name`` (the saved layout finds it by that) holding ``widget``."""
    dock = QDockWidget(title, window)
    dock.setObjectName(name)
    dock.setWidget(widget)
    window.addDockWidget(area, dock)
    return dock


def scrollable(widget) -> QScrollArea:
    """``widget`` in a scroll area, so that a dock holding it can be made shorter than the
    widget's own minimum (it scrolls then)."""
    area = QScrollArea()
    area.setWidget(widget)
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    return area


class WindowLayout(QObject):
    """The size and dock layout of one main window (``docks``: all of its dock widgets)."""

    def __init__(self, window, docks):
        super().__init__(window)
        self.window, self.docks = window, tuple(docks)
        self.wanted: dict = {}              # dock area -> the column's width to keep
        self.default_state = None
        self._pressed_on_separator = False
        self.fit_screen()
        if window.height() < TABS_BELOW:
            window.tabifyDockWidget(window.review_dock, window.models_dock)
            window.review_dock.raise_()
        self.apply_defaults()
        window.installEventFilter(self)

    # --- defaults ----------------------------------------------------------------------------
    def fit_screen(self) -> None:
        """The default size, made smaller where the screen (less the window's frame) is. The
        offscreen platform (tests, --screenshot) has no real screen: its size is not used."""
        w, h = DEFAULT_SIZE
        screen = self.window.screen()
        if screen is not None and QGuiApplication.platformName() != "offscreen":
            avail = screen.availableGeometry()
            w, h = min(w, avail.width() - FRAME[0]), min(h, avail.height() - FRAME[1])
            self.window.move(avail.x() + (avail.width() - w - FRAME[0]) // 2,
                             avail.y() + (avail.height() - h - FRAME[1]) // 2)
        self.window.resize(w, h)

    def remember_default(self) -> None:
        """The layout as built (before any saved one is restored): what Reset layout restores."""
        self.default_state = self.window.saveState()

    def default_widths(self) -> dict:
        width = self.window.width()
        return {area: int(min(cap, share * width)) for area, (share, cap) in COLUMNS.items()}

    def apply_defaults(self) -> None:
        """Dock columns at their default widths for the window's width; the left column's
        two docks share its height."""
        self.wanted = self.default_widths()
        self.apply()
        left = [d for d in self.docks if self.window.dockWidgetArea(d) == LEFT]
        if len(left) == 2:
            height = self.window.height()
            self.window.resizeDocks(left, [int(height * 0.56), int(height * 0.44)],
                                    Qt.Orientation.Vertical)

    def reset(self) -> None:
        """View > Reset layout: every dock back in its place (shown, docked, the Review tab
        in front), the toolbar too, columns at their default widths."""
        w = self.window
        if self.default_state is not None:
            w.restoreState(self.default_state)
        for dock in self.docks:
            dock.setFloating(False)
            dock.show()
        w.review_dock.raise_()
        w.toolbar.show()
        self.apply_defaults()

    # --- columns -----------------------------------------------------------------------------
    def columns(self) -> dict:
        """Dock area -> its docks on screen (docked, not closed), for the left and right."""
        found: dict = {}
        for dock in self.docks:
            area = self.window.dockWidgetArea(dock)
            if area in COLUMNS and not dock.isHidden() and not dock.isFloating():
                found.setdefault(area, []).append(dock)
        return found

    def record(self) -> None:
        """The columns' widths now are the ones to keep (the person chose them)."""
        self.wanted = {area: max(d.width() for d in docks)
                       for area, docks in self.columns().items()}

    def apply(self) -> None:
        """Give each column its width to keep, narrowed (in proportion) where the face would
        otherwise get less than ``CANVAS_MIN`` pixels."""
        columns = self.columns()
        want = {area: self.wanted[area] for area in columns if area in self.wanted}
        if not want:
            return
        room = self.window.width() - CANVAS_MIN - 8 * len(want)
        total = sum(want.values())
        if total > room:
            want = {area: int(width * max(room, 0) / total) for area, width in want.items()}
        docks = [columns[area][0] for area in want]
        current = [d.width() for d in docks]
        if any(abs(c - w) > 2 for c, w in zip(current, want.values())):
            self.window.resizeDocks(docks, list(want.values()), Qt.Orientation.Horizontal)

    def eventFilter(self, obj, event) -> bool:
        kind = event.type()
        if obj is self.window and kind == QEvent.Type.Resize and self.wanted:
            self.apply()
        elif obj is self.window and kind == QEvent.Type.MouseButtonPress:
            # on the window itself, not a child: a separator between docks (or the face)
            self._pressed_on_separator = self.window.childAt(event.position().toPoint()) is None
        elif obj is self.window and kind == QEvent.Type.MouseButtonRelease \
                and self._pressed_on_separator:
            self._pressed_on_separator = False
            QTimer.singleShot(0, self.record)       # once the drag has been laid out
        elif obj is self.window and kind == QEvent.Type.Show and not self.wanted:
            QTimer.singleShot(0, self.record)       # a restored layout: keep its widths
        return False
