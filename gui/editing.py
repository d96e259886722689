"""Editing ground truth with undo: move, add and delete keypoints of dataset faces, and delete
a whole face (a false detection, a duplicate)."""
from __future__ import annotations

import numpy as np
from PySide6.QtGui import QUndoCommand

from .session import display_name


class SetPointCommand(QUndoCommand):
    """Move, add (old is None) or delete (new is None) one ground-truth keypoint."""

    def __init__(self, editing: "Editing", row: int, k: int, old, new, text: str):
        super().__init__(text)
        self.editing, self.row, self.k = editing, row, k
        self.old = None if old is None else (float(old[0]), float(old[1]))
        self.new = None if new is None else (float(new[0]), float(new[1]))

    def redo(self) -> None:
        self.editing.set_point(self.row, self.k, self.new)

    def undo(self) -> None:
        self.editing.set_point(self.row, self.k, self.old)


class SetHiddenCommand(QUndoCommand):
    """Mark one labelled keypoint hidden (occluded) or visible again."""

    def __init__(self, editing: "Editing", row: int, k: int, hidden: bool, text: str):
        super().__init__(text)
        self.editing, self.row, self.k, self.hidden = editing, row, k, hidden

    def redo(self) -> None:
        self.editing.set_hidden(self.row, self.k, self.hidden)

    def undo(self) -> None:
        self.editing.set_hidden(self.row, self.k, not self.hidden)


class SetFaceCommand(QUndoCommand):
    """Set every keypoint of one face at once (e.g. accept the whole prediction)."""

    def __init__(self, editing: "Editing", row: int, old, new, text: str):
        super().__init__(text)
        self.editing, self.row = editing, row
        self.old = np.array(old, dtype=np.float32)
        self.new = np.array(new, dtype=np.float32)

    def redo(self) -> None:
        self.editing.set_face(self.row, self.new)

    def undo(self) -> None:
        self.editing.set_face(self.row, self.old)


class DeleteFaceCommand(QUndoCommand):
    """Face ``row`` removed from the window's dataset; undo puts it back where it was. The
    other faces keep their predictions (nothing is predicted again)."""

    def __init__(self, window, row: int):
        super().__init__(f"delete face {row}")
        self.window, self.row = window, row
        self.before = window.session.dataset
        self.state = None

    def redo(self) -> None:
        w, s = self.window, self.window.session
        self.before, self.state = s.dataset, s.predictions_state()
        keep = np.delete(np.arange(len(self.before)), self.row)
        preds, errors, confidence, source = self.state
        kept = (preds[keep], errors[keep], None if confidence is None else confidence[keep],
                source)
        self._show(self.before.subset(keep), kept, min(self.row, len(keep) - 1))

    def undo(self) -> None:
        self._show(self.before, self.state, self.row)

    def _show(self, dataset, state, row: int) -> None:
        w = self.window
        w.datasets.show(dataset, w.session.dataset_path, keep_undo=True, predictions=state)
        if row >= 0 and len(dataset):
            w.select_row(row)
            w.show_row(row)


class ReplaceDatasetCommand(QUndoCommand):
    """The window's dataset replaced by another one (a photo's faces added, unsaved edits
    restored); undo shows the one before. ``rows``: the face to show after a redo and after an
    undo (None: the face on screen). A first redo finds ``after`` already on screen and leaves
    it so."""

    def __init__(self, window, before, after, text: str, rows=(None, None)):
        super().__init__(text)
        self.window, self.before, self.after, self.rows = window, before, after, rows

    def redo(self) -> None:
        self._show(self.after, self.rows[0])

    def undo(self) -> None:
        self._show(self.before, self.rows[1])

    def _show(self, dataset, row) -> None:
        w = self.window
        if w.session.dataset is dataset:
            return
        row = w.session.row if row is None else row
        w.datasets.show(dataset, w.session.dataset_path, keep_undo=True)
        if row is not None and len(dataset):
            row = min(row, len(dataset) - 1)
            w.select_row(row)
            w.show_row(row)


class Editing:
    """The canvas's edit requests -> undoable commands -> the session and the widgets."""

    def __init__(self, window):
        self.window = window

    @property
    def _row(self) -> int | None:
        s = self.window.session
        return s.row if s.view_mode == "dataset" else None

    def _push(self, k: int, old, new, verb: str) -> None:
        row = self._row
        if row is None:
            return
        text = (f"{verb} {display_name(k, self.window.session.keypoint_set)} "
                f"{'to' if verb == 'add' else 'of'} face {row}")
        self.window.undo_stack.push(SetPointCommand(self, row, k, old, new, text))

    def point_moved(self, k: int, old, new) -> None:
        self._push(k, old, new, "move")

    def add_requested(self, k: int, xy) -> None:
        self._push(k, None, xy, "add")

    def accept_requested(self, k: int, xy) -> None:
        """Keypoint ``k`` takes the predicted position ``xy`` (added if it was missing)."""
        row = self._row
        if row is not None:
            self._push(k, self.window.session.point(row, k), xy, "accept prediction for")

    def delete_requested(self, k: int) -> None:
        row = self._row
        old = None if row is None else self.window.session.point(row, k)
        if old is not None:
            self._push(k, old, None, "delete")
            self.window.statusBar().showMessage(
                f"Deleted {k + 1} · {display_name(k, self.window.session.keypoint_set)} of "
                f"face {row}: it is missing now (Ctrl+Z puts it back)", 8000)

    def delete_selected(self) -> None:
        k = self.window.canvas.selected_truth()
        if k is None:
            self.window.statusBar().showMessage("Click a green ground-truth point first (or "
                                                "press its number), then Delete", 5000)
            return
        self.delete_requested(k)

    def toggle_hidden(self) -> None:
        """Mark the selected (or picked) labelled point hidden (occluded: labelled where it
        is, but not visible), or visible again; undoable. COCO export keeps it (visibility 1)."""
        w, row = self.window, self._row
        k = w.canvas.selected_truth()
        if k is None:
            k = w.correct.picked
        if row is None or k is None or w.session.point(row, k) is None:
            w.statusBar().showMessage("Click a green ground-truth point first (or press its "
                                      "number), then O to mark it hidden", 5000)
            return
        hide = not bool(w.session.dataset.hidden[row, k])
        name = display_name(k, w.session.keypoint_set)
        w.undo_stack.push(SetHiddenCommand(self, row, k, hide,
                                           f"mark {name} of face {row} "
                                           f"{'hidden' if hide else 'visible'}"))
        w.statusBar().showMessage(f"{k + 1} · {name} of face {row}: "
                                  + ("hidden (labelled, occluded: drawn dashed)" if hide
                                     else "visible again"), 6000)

    def set_hidden(self, row: int, k: int, hidden: bool) -> None:
        """Used by the undo commands."""
        w = self.window
        w.session.dataset.hidden[row, k] = hidden
        if w.session.row == row and w.session.view_mode == "dataset":
            w.canvas.set_hidden(w.session.dataset.hidden[row])
        else:
            w.select_row(row)

    def delete_face(self) -> None:
        """Remove the face on screen from the dataset, as one undoable edit."""
        w, row = self.window, self._row
        if row is None:
            return
        w.correct.stop()
        name = w.session.dataset.names[row]
        w.undo_stack.push(DeleteFaceCommand(w, row))
        w.statusBar().showMessage(f"Deleted face {row} ({name}) from the dataset: "
                                  f"{len(w.session)} faces left (Ctrl+Z puts it back)", 8000)

    def add_missing(self) -> None:
        """Add the first missing keypoint of the face at its average position."""
        w, row = self.window, self._row
        if row is None:
            return
        missing = w.session.missing_keypoints(row)
        if not missing:
            w.statusBar().showMessage("This face has every keypoint", 5000)
            return
        k = missing[0]
        self.add_requested(k, tuple(w.session.mean_points[k]))
        w.statusBar().showMessage(f"Added {display_name(k, w.session.keypoint_set)} at its "
                                  "average position: drag "
                                  "it into place", 8000)

    def set_face_points(self, values, text: str) -> None:
        """All 2K coordinates of the face on screen, as one undoable edit."""
        row = self._row
        if row is None:
            return
        old = self.window.session.dataset.keypoints[row].copy()
        self.window.undo_stack.push(SetFaceCommand(self, row, old, values, text))

    def set_face(self, row: int, values) -> None:
        """Set all keypoints of a face; used by the undo commands."""
        self._changed(row, self.window.session.set_face(row, values))

    def set_point(self, row: int, k: int, xy) -> None:
        """Set (or with ``xy=None`` clear) one keypoint; used by the undo commands."""
        self._changed(row, self.window.session.set_point(row, k, xy))

    def _changed(self, row: int, err) -> None:
        w = self.window
        w.dataset_panel.model.row_changed(row, err)
        if w.session.row != row or w.session.view_mode != "dataset":
            # an undo/redo of another face: bring that face into view (showing all splits
            # if the filter hides it)
            w.select_row(row)
            if w.session.view_mode != "dataset":
                w.show_row(row)
        else:
            w.canvas.set_truth(w.session.dataset.keypoints[row])
            w.canvas.set_hidden(w.session.dataset.hidden[row])
            w.update_keypoint_errors()
