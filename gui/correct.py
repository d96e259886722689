"""Accept and correct: a prediction becomes the label (one point or the whole face), and
missing points are placed by clicking, in keypoint order, number keys (or a searchable list,
for sets of more points) picking the keypoint. Esc stops placing.

While a point is picked, a click on the face places it; a press on a green point is that
point's own (dragged, it moves; clicked, it becomes the picked one when the picked point is
labelled), so a stray click never moves a labelled point other than the picked one.

Every change goes through :class:`facekp.gui.editing.Editing`, so each is one undoable edit.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, Qt
from PySide6.QtWidgets import QDialog, QLineEdit, QListWidget, QListWidgetItem, QVBoxLayout

from .session import display_name, point_label

#: Keypoints with a key of their own: 1-9, 0, then Alt+1-5.
PICK_KEYS = 15


def pick_key(k: int) -> str:
    """The key that picks keypoint ``k`` (0-based): 1-9, 0 for the 10th, Alt+1-5 after."""
    return str(k + 1) if k < 9 else ("0" if k == 9 else f"Alt+{k - 9}")


class KeypointPicker(QDialog):
    """A searchable list of a set's keypoints: type part of a name, Enter picks the first
    shown (or the selected) one."""

    def __init__(self, parent, keypoint_set, on_pick):
        super().__init__(parent)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.setWindowTitle(f"Pick a keypoint of {keypoint_set.name}")
        self.on_pick = on_pick
        self.search = QLineEdit()
        self.search.setPlaceholderText("type part of a name or a number…")
        self.list = QListWidget()
        for i in range(keypoint_set.size):
            item = QListWidgetItem(f"{i + 1} · {point_label(i, keypoint_set)}")
            item.setData(Qt.ItemDataRole.UserRole, i)
            item.setData(Qt.ItemDataRole.UserRole + 1, display_name(i, keypoint_set).lower())
            self.list.addItem(item)
        self.search.installEventFilter(self)       # Enter is the list's, not the window's
        self.search.textChanged.connect(self._filter)
        self.search.returnPressed.connect(self._accept)
        self.list.itemActivated.connect(lambda _item: self._accept())
        layout = QVBoxLayout(self)
        layout.addWidget(self.search)
        layout.addWidget(self.list)
        self.resize(360, 420)
        self._filter("")

    def eventFilter(self, obj, event) -> bool:
        if event.type() == QEvent.Type.ShortcutOverride and \
                event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            event.accept()
        return False

    def _filter(self, text: str) -> None:
        words = text.lower().replace("_", " ").split()
        first = None
        for r in range(self.list.count()):
            item = self.list.item(r)
            name = item.data(Qt.ItemDataRole.UserRole + 1)
            hide = not all(w in name or w == str(r + 1) for w in words)
            item.setHidden(hide)
            if not hide and first is None:
                first = item
        self.list.setCurrentItem(first)

    def _accept(self) -> None:
        item = self.list.currentItem()
        if item is not None and not item.isHidden():
            self.on_pick(int(item.data(Qt.ItemDataRole.UserRole)))
            self.accept()


def next_missing(missing: list[int], after: int | None) -> int | None:
    """The first missing keypoint after ``after`` in keypoint order (wrapping), or None."""
    if not missing:
        return None
    later = [k for k in missing if after is None or k > after]
    return (later or missing)[0]


class Correct:
    """The Review menu's accept, pick and place actions for one window."""

    def __init__(self, window):
        self.window = window
        self.picked: int | None = None      # the keypoint the next click places
        self.picker: KeypointPicker | None = None

    def connect(self) -> None:
        w = self.window
        w.canvas.placeClicked.connect(self.place_at)
        w.dataset_panel.currentChanged.connect(lambda _row: self.stop())
        w.photoShown.connect(self.stop)

    def _face(self) -> int | None:
        s = self.window.session
        return s.row if s.view_mode == "dataset" and s.dataset is not None else None

    def _say(self, text: str, ms: int = 8000) -> None:
        self.window.statusBar().showMessage(text, ms)

    def _name(self, k: int) -> str:
        return display_name(k, self.window.session.keypoint_set)

    # --- accept ------------------------------------------------------------------------------
    def _prediction(self, row: int) -> np.ndarray | None:
        s = self.window.session
        if s.model_problem or not s.same_set and s.model_set is not None:
            self._say(s.model_problem or f"The model predicts {s.prediction_set.name} points, "
                      f"the dataset holds {s.keypoint_set.name}: its points cannot become "
                      "labels here")
            return None
        if not s.has_prediction(row):
            self._say("This face has no prediction yet: load a model (or wait for it)")
            return None
        return s.predictions[row]

    def accept_point(self) -> None:
        """The selected ground-truth point (or the picked keypoint) takes its prediction."""
        row = self._face()
        if row is None:
            return
        k = self.window.canvas.selected_truth()
        k = self.picked if k is None else k
        if k is None:
            self._say("Click a green point or press a keypoint's number first, then Enter "
                      "(Shift+Enter accepts the whole face)")
            return
        pred = self._prediction(row)
        if pred is None:
            return
        self.window.editing.accept_requested(k, (float(pred[2 * k]), float(pred[2 * k + 1])))
        self._say(f"Accepted the prediction for {self._name(k)} (Ctrl+Z undoes)")

    def accept_face(self) -> None:
        """Every keypoint of the face takes its prediction, as one edit."""
        row = self._face()
        if row is None:
            return
        pred = self._prediction(row)
        if pred is None:
            return
        self.stop()
        self.window.editing.set_face_points(pred, f"accept the prediction for face {row}")
        self._say(f"Accepted the prediction for all {len(pred) // 2} points of face {row} "
                  "(Ctrl+Z undoes)")

    # --- pick and place ----------------------------------------------------------------------
    def pick(self, k: int) -> None:
        """Keypoint ``k``: selected if labelled; the next click on the face places it."""
        row = self._face()
        if row is None:
            return
        ks = self.window.session.keypoint_set
        if not 0 <= k < ks.size:
            self._say(f"{ks.name} has {ks.size} keypoints: there is no keypoint {k + 1}")
            return
        canvas = self.window.canvas
        for item in canvas.truth_items:
            item.setSelected(item.index == k and item.isVisible())
        self._arm(k, row)

    def pick_by_name(self) -> None:
        """A searchable list of the set's keypoints (for sets of more than the number keys)."""
        if self._face() is None:
            return
        if self.picker is not None:
            self.picker.close()
        self.picker = KeypointPicker(self.window, self.window.session.keypoint_set, self.pick)
        self.picker.destroyed.connect(lambda *_: setattr(self, "picker", None))
        self.picker.show()
        self.picker.search.setFocus()

    def truth_clicked(self, k: int, xy) -> None:
        """A green point was clicked (not dragged) while a point is picked: the picked point,
        when missing, is placed there; when labelled, it stays and the clicked one is picked."""
        row, picked = self._face(), self.picked
        if row is None or picked is None or k == picked:
            return
        if self.window.session.point(row, picked) is None:
            self.place_at(xy)
        else:
            self.pick(k)

    def cancel(self) -> None:
        """Esc: stop placing points."""
        if self.picked is not None:
            self.stop()
            self._say("Stopped placing points", 4000)

    def place_missing(self) -> None:
        """Start (or stop) placing this face's missing points by clicking, in keypoint order."""
        row = self._face()
        if row is None:
            return
        if self.picked is not None:
            self.stop()
            self._say("Stopped placing points")
            return
        k = next_missing(self.window.session.missing_keypoints(row), None)
        if k is None:
            self._say("This face has every keypoint (number keys pick one to move)")
            return
        self._arm(k, row)

    def _arm(self, k: int, row: int) -> None:
        self.picked = k
        self.window.canvas.set_place_mode(True)
        self.window.update_enabled()
        labelled = self.window.session.point(row, k) is not None
        self._say(f"Click to place {k + 1} · "
                  f"{point_label(k, self.window.session.keypoint_set)}"
                  + (" (it is labelled: the click moves it, or drag it)" if labelled else "")
                  + " — Enter accepts its prediction instead; Esc stops", 0)

    def place_at(self, xy) -> None:
        """A click in place mode: the picked keypoint goes there; the next missing one (in
        keypoint order) is picked, until none is left."""
        row, k = self._face(), self.picked
        if row is None or k is None:
            return
        s, e = self.window.session, self.window.editing
        old = s.point(row, k)
        if old is None:
            e.add_requested(k, xy)
        else:
            e.point_moved(k, old, xy)
        nxt = next_missing(s.missing_keypoints(row), k)
        if nxt is None:
            self.stop()
            self._say(f"Placed {self._name(k)}: every keypoint of face {row} is labelled")
        else:
            self._arm(nxt, row)

    def stop(self) -> None:
        if self.picked is not None:
            self.picked = None
            self.window.canvas.set_place_mode(False)
            self.window.statusBar().clearMessage()
            self.window.update_enabled()
