"""Datasets in the window: read one in a job, show it (table, first face, predictions), and
hand its training faces to the training panel by core's one rule."""
from __future__ import annotations

from pathlib import Path

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

    def show(self, dataset, path: Path | None, keep_undo: bool = False,
             predictions=None) -> None:
        """Show ``dataset``: the table, the first (or --image) face, then its predictions
        (``keep_undo``: the undo stack stays, when an undoable step changed the dataset;
        ``predictions``: Session.predictions_state of these faces, kept instead of predicting
        again)."""
        w = self.window
        if not keep_undo:
            w.undo_stack.clear()
        w.jobs.engine.new_generation()
        s = w.session
        s.set_dataset(dataset, path)
        if predictions is not None:
            s.restore_predictions(predictions)
        self.follow_set()
        w.dataset_panel.set_dataset(dataset)
        if predictions is not None:
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
        if s.model_problem:
            w.show_error(s.model_problem)
        elif predictions is None or not s.all_predicted():
            w.models.predict_dataset()

    def follow_set(self) -> None:
        """The canvas, the Keypoint errors dock and the pick actions follow the dataset's
        keypoint set (and the canvas's crosses the model's, unless it cannot be used here)."""
        from . import actions as app_actions

        w, s = self.window, self.window.session
        w.canvas.set_keypoint_set(s.keypoint_set,
                                  s.keypoint_set if s.model_problem else s.prediction_set)
        w.canvas.photo_set = s.model_set or s.keypoint_set
        w.kp_view.set_keypoint_set(s.keypoint_set)
        app_actions.retitle_picks(w, s.keypoint_set)

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
