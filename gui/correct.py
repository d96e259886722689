"""Accept and correct: a prediction becomes the label (one point or the whole face), and
missing points are placed by clicking, in keypoint order, number keys picking the keypoint.

Every change goes through :class:`facekp.gui.editing.Editing`, so each is one undoable edit.
"""
from __future__ import annotations

import numpy as np

from facekp.core.data.keypoints import NUM_KEYPOINTS

from .session import display_name


def pick_key(k: int) -> str:
    """The key that picks keypoint ``k`` (0-based): 1-9, 0 for the 10th, Alt+1-5 after."""
    return str(k + 1) if k < 9 else ("0" if k == 9 else f"Alt+{k - 9}")


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

    # --- accept ------------------------------------------------------------------------------
    def _prediction(self, row: int) -> np.ndarray | None:
        s = self.window.session
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
        self._say(f"Accepted the prediction for {display_name(k)} (Ctrl+Z undoes)")

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
        self._say(f"Accepted the prediction for all {NUM_KEYPOINTS} points of face {row} "
                  "(Ctrl+Z undoes)")

    # --- pick and place ----------------------------------------------------------------------
    def pick(self, k: int) -> None:
        """Keypoint ``k``: selected if labelled; the next click on the face places it."""
        row = self._face()
        if row is None:
            return
        canvas = self.window.canvas
        for item in canvas.truth_items:
            item.setSelected(item.index == k and item.isVisible())
        self._arm(k, row)

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
        labelled = self.window.session.point(row, k) is not None
        self._say(f"Click to place {k + 1} · {display_name(k)}"
                  + (" (it is labelled: the click moves it)" if labelled else "")
                  + " — Enter accepts its prediction instead; M stops", 0)

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
            self._say(f"Placed {display_name(k)}: every keypoint of face {row} is labelled")
        else:
            self._arm(nxt, row)

    def stop(self) -> None:
        if self.picked is not None:
            self.picked = None
            self.window.canvas.set_place_mode(False)
            self.window.statusBar().clearMessage()
