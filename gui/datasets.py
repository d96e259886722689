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

        kset = w.options.keypoints if initial else None   # --keypoints: the first dataset

        def job():
            from facekp.core.data.keypoint_sets import load_set

            return load_with_recovery(path, load_set(kset) if kset else None)

        w.jobs.run(Job("dataset", job, on_done=done, on_failed=failed))

    def show(self, dataset, path: Path | None, keep_undo: bool = False,
             predictions=None) -> None:
        """Show ``dataset``: the table, the first (or --image) face, then its predictions
        (``keep_undo``: the undo stack stays, when an undoable step changed the dataset;
        ``predictions``: Session.predictions_state of these faces, kept instead of predicting
        again; without them, an undoable step keeps the predictions of the faces it left
        unchanged)."""
        w = self.window
        if not keep_undo:
            w.undo_stack.clear()
        w.jobs.engine.new_generation()
        s = w.session
        carried = carried_predictions(s.dataset, s.predictions, dataset) \
            if keep_undo and predictions is None else None
        s.set_dataset(dataset, path)
        if predictions is not None:
            s.restore_predictions(predictions)
        self.follow_set()
        w.dataset_panel.set_dataset(dataset)
        if predictions is not None:
            w.dataset_panel.set_errors(s.errors)
        elif carried is not None and len(carried[0]):
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
        if w.models.follow_dataset():    # the shipped model of this set: it predicts
            return
        if s.model_problem:
            w.show_error(s.model_problem)
        elif keep_undo:   # after the step has chosen its face (predicted first, on its own)
            QTimer.singleShot(0, partial(w.models.predict_dataset, only_missing=True))
        elif predictions is None or not s.all_predicted():
            w.models.predict_dataset()

    # --- File > New dataset from photos --------------------------------------------------
    def new_from_photos_dialog(self) -> None:
        """Choose the keypoint set, then the folder of photos; their faces become a new
        dataset with every point missing, to be labelled from the first click."""
        from PySide6.QtWidgets import QFileDialog

        w = self.window
        if not w.confirm_discard_edits():
            return
        keypoint_set = self.ask_keypoint_set()
        if keypoint_set is None:
            return
        folder = QFileDialog.getExistingDirectory(w, "New dataset: the folder of photos",
                                                  w.files.last_dir())
        if folder:
            self.new_from_photos(keypoint_set, folder)

    def ask_keypoint_set(self):
        """The keypoint set for a new dataset: a built-in one or a set's .json (None: cancel).
        Replaced in tests."""
        from PySide6.QtWidgets import QFileDialog, QInputDialog

        from facekp.core.data.keypoint_sets import BUILTIN, load_set
        from facekp.core.errors import FacekpError

        w = self.window
        choices = [f"{s.name} ({s.size} points)" for s in BUILTIN.values()]
        choices.append("a keypoint set file (.json)…")
        choice, ok = QInputDialog.getItem(w, "New dataset from photos",
                                          "The points to label on every face:", choices, 0,
                                          False)
        if not ok:
            return None
        if choice == choices[-1]:
            path, _ = QFileDialog.getOpenFileName(w, "A keypoint set", w.files.last_dir(),
                                                  "Keypoint sets (*.json)")
            if not path:
                return None
            try:
                return load_set(path)
            except FacekpError as exc:
                w.show_error(str(exc))
                return None
        return list(BUILTIN.values())[choices.index(choice)]

    def new_from_photos(self, keypoint_set, folder: str | Path) -> None:
        """Find the faces of every photo in ``folder`` (the Photo menu's detector, in the
        engine's thread) and show them as a new, unsaved dataset of ``keypoint_set``: every
        point missing, every face not yet checked, named after its photo
        (:func:`facekp.core.photos.photo_faces.find_photo_faces`)."""
        from facekp.core.errors import FacekpError
        from facekp.core.photos.batch import photo_paths

        w = self.window
        try:
            photos = photo_paths([folder])
        except FacekpError as exc:
            w.show_error(str(exc))
            return
        name = w.photos.detector_name()
        w.statusBar().showMessage(f"Finding the faces of {len(photos)} photos in {folder}…")

        def job():
            from facekp.core.photos.photo_faces import find_photo_faces

            return find_photo_faces(photos, keypoint_set, detector=w.photos._detector(name))

        def done(result):
            dataset, _lines = result
            if len(dataset) == 0:
                w.show_error(f"no face found in the {len(photos)} photos of {folder}")
                return
            self.show(dataset, None)
            w.statusBar().showMessage(
                f"New dataset: {len(dataset)} faces from {len(photos)} photos, keypoint set "
                f"{keypoint_set.name}; M places the points of a face in order, Ctrl+S saves",
                20000)

        w.jobs.submit(Job("new dataset", job, on_done=done, on_failed=w.show_error))

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
