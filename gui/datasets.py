"""Datasets in the window: read one in a job, show it (table, first face, predictions), and
hand its training faces to the training panel by core's one rule."""
from __future__ import annotations

from functools import partial
from pathlib import Path

from PySide6.QtCore import QTimer

from .editing import ReplaceDatasetCommand
from .workers import Job


class Datasets:
    """Loading and showing datasets for one window."""

    def __init__(self, window):
        self.window = window

    def load(self, path: str | Path, initial: bool = False) -> None:
        """Read a dataset in a job; shown when it arrives (an error is one line)."""
        w = self.window
        path = Path(path)
        w.statusBar().showMessage(f"Loading {path.name}…")
        if w.session.dataset is None:
            w.canvas.show_message(f"Loading {path.name}…")

        def done(result):
            dataset, restored = w.recovery.opened(path, *result)
            self.show(dataset if restored is None else restored, path)
            if restored is not None:      # one undoable step: undo shows the file as it is
                w.recovery.restored()
                w.undo_stack.push(ReplaceDatasetCommand(w, dataset, restored,
                                                        "restore unsaved edits"))
            if not initial:
                w.files.add_recent(path)

        def failed(message):
            w.show_error(message, option=initial)  # --data (or the embedded dataset)
            if w.session.dataset is None:
                w.canvas.show_message("No dataset: open one with File > Open")

        from .recovery import load_with_recovery

        w.jobs.run(Job("dataset", lambda: load_with_recovery(path), on_done=done,
                       on_failed=failed))

    def show(self, dataset, path: Path | None, keep_undo: bool = False) -> None:
        """Show ``dataset``: the table, the first (or --image) face, then its predictions
        (``keep_undo``: the undo stack stays, when an undoable step changed the dataset)."""
        w = self.window
        if not keep_undo:
            w.undo_stack.clear()
        w.jobs.engine.new_generation()
        s = w.session
        carried = carried_predictions(s.dataset, s.predictions, dataset) if keep_undo else None
        s.set_dataset(dataset, path)
        w.dataset_panel.set_dataset(dataset)
        if carried is not None and len(carried[0]):
            s.store_predictions(*carried)
            w.dataset_panel.set_errors(s.errors)
        w.update_title()
        w.training_panel.set_data_description(s.training_description())
        n = len(dataset)
        if w.options.split:
            w.dataset_panel.set_split(w.options.split)
        visible = w.dataset_panel.visible_rows()     # --split without --image: its first face
        row = w.options.image if w.options.image is not None else \
            (int(visible[0]) if len(visible) else 0)
        w.options.image = None
        if n and not 0 <= row < n:
            w.show_error(f"--image {row}: the dataset has faces 0 to {n - 1}", option=True)
            row = 0
        w.review.dataset_shown(row if n else None, opened=not keep_undo)
        if n and s.view_mode == "photo":  # a photo is on screen: select without showing
            s.row = row
            w.dataset_panel.blockSignals(True)
            w.select_row(row)
            w.dataset_panel.blockSignals(False)
        elif n:
            w.select_row(row)
        else:
            s.row = None
            w.canvas.show_message(f"{s.label} has no faces")
            w.update_keypoint_errors()
        w.statusBar().showMessage(f"{s.label}: {n} faces", 5000)
        w.update_enabled()
        if keep_undo:   # after the step has chosen its face (predicted first, on its own)
            QTimer.singleShot(0, partial(w.models.predict_dataset, only_missing=True))
        else:
            w.models.predict_dataset()

    def training_data(self):
        """(train, val, note) for the training panel, by core's one rule; None (said in the
        status bar) when the dataset cannot train."""
        w = self.window
        if w.session.dataset is None:
            w.show_error("Open a dataset first")
            return None
        try:
            return w.session.training_data()
        except Exception as exc:
            w.show_error(f"{w.session.label}: {exc}")
            return None


def carried_predictions(old, predictions, new) -> tuple | None:
    """The predictions of ``old``'s faces that ``new`` (the dataset an undoable step put in its
    place: faces added, edits restored) holds unchanged at the same rows: (rows, their
    predictions); None when there are none. The model sees only the image, so an unchanged
    image keeps its prediction, whatever its labels became."""
    import numpy as np

    if old is None or predictions is None or new is None:
        return None
    m = min(len(old), len(new))
    same = (old.images[:m] == new.images[:m]).reshape(m, -1).all(axis=1) if m else \
        np.zeros(0, bool)
    rows = np.flatnonzero(same & ~np.isnan(predictions[:m]).all(axis=1))
    return rows, predictions[rows].copy()
