"""Help > Keyboard shortcuts: every key of the app, read from the actions themselves (the
table in :mod:`facekp.gui.actions`, the undo stack's, the canvas's arrows), so it cannot go
stale."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QHeaderView, QTableWidget,
                               QTableWidgetItem, QVBoxLayout)

from . import actions as app_actions


def _keys(action) -> str:
    return ", ".join(k.toString(QKeySequence.SequenceFormat.NativeText)
                     for k in action.shortcuts())


def shortcut_rows(window) -> list[tuple[str, str, str, str]]:
    """(group, keys, action, what it does) for every action that has a key: the menus' order
    first, then keys that are in no menu."""
    menu_of = {name: title.replace("&", "") for title, names in app_actions.MENUS
               for name in names}
    tips = {spec.name: spec.tip for spec in app_actions.ACTIONS}
    rows, seen = [], set()
    ordered = [n for _, names in app_actions.MENUS for n in names if n in window.acts]
    ordered += [spec.name for spec in app_actions.ACTIONS]
    for name in ordered:
        act = window.acts[name]
        if name in seen or not act.shortcuts():
            continue
        seen.add(name)
        rows.append((menu_of.get(name, "Keys"), _keys(act), act.text().replace("&", ""),
                     tips.get(name, "")))
    own = set(window.acts.values())
    for act in window.canvas.actions():
        if act.shortcuts() and act not in own:
            rows.append(("On the face", _keys(act), act.text() or "step", act.toolTip()))
    return rows


class ShortcutsDialog(QDialog):
    """A table of every key."""

    def __init__(self, window):
        super().__init__(window)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.setWindowTitle("Keyboard shortcuts")
        self.resize(760, 620)
        rows = shortcut_rows(window)
        self.table = QTableWidget(len(rows), 4)
        self.table.setHorizontalHeaderLabels(["Menu", "Keys", "Action", "What it does"])
        for r, values in enumerate(rows):
            for c, value in enumerate(values):
                self.table.setItem(r, c, QTableWidgetItem(value))
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        for c in range(3):
            header.setSectionResizeMode(c, QHeaderView.ResizeMode.ResizeToContents)
        # "What it does" takes the rest of the width and wraps there, never cut
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.table.setWordWrap(True)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addWidget(buttons)
