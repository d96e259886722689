"""Opening, saving and exporting: functions that take paths (tests call them without a dialog)
and :class:`Files`, whose dialogs only ask for a path and then call them.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QFileDialog

from . import exports
from . import settings as app_settings

DATASET_SUFFIXES = {".npz", ".csv"}
MODEL_SUFFIXES = {".keras"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm"}   # as facekp.core.photos.video's
OPEN_FILTER = ("All supported (*.jpg *.jpeg *.png *.bmp *.tif *.tiff *.webp *.npz *.csv *.keras "
               "*.mp4 *.avi *.mov *.mkv *.webm);;"
               "Photos (*.jpg *.jpeg *.png *.bmp *.tif *.tiff *.webp);;"
               "Videos (*.mp4 *.avi *.mov *.mkv *.webm);;"
               "Datasets (*.npz *.csv);;Models (*.keras);;All files (*)")


def kind_of(path: str | Path) -> str:
    """"model", "dataset", "video" or "photo", by the file name's ending; a folder is a
    dataset (TFRecord shards, read whole: the app shows every face)."""
    from facekp.core.data.shards import is_shards

    if is_shards(path):
        return "dataset"
    suffix = Path(path).suffix.lower()
    if suffix in MODEL_SUFFIXES:
        return "model"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    return "dataset" if suffix in DATASET_SUFFIXES else "photo"


def write_dataset(dataset, path: str | Path) -> Path:
    """The dataset to ``path`` (.npz or Kaggle .csv, atomically, via facekp.core.data.dataset)."""
    from facekp.core.data import opener

    path = Path(path)
    opener.save(dataset, path)
    return path


def export_view(canvas, path: str | Path) -> Path:
    """What the canvas shows, as a PNG (atomic)."""
    from facekp.core.fileio import atomic_path

    path = Path(path)
    image = canvas.render_image()
    with atomic_path(path) as tmp:
        if not image.save(str(tmp), "PNG"):
            raise OSError(f"could not write {path}")
    return path


#: File > Export dataset as ...: format -> (dialog title, suggested name, filter, ending)
DATASET_EXPORTS = {
    "coco": ("COCO keypoints JSON", "faces-coco.json", "COCO JSON (*.json)", ".json"),
    "dlib": ("dlib imglab XML", "faces-dlib.xml", "dlib XML (*.xml)", ".xml"),
    "pts": (".pts files (a new folder)", "faces-pts", "Folder (*)", ""),
    "csv": ("Kaggle CSV", "training.csv", "Kaggle CSV (*.csv)", ".csv"),
}


def export_dataset(dataset, fmt: str, path: str | Path) -> list[Path]:
    """The dataset in a standard format (facekp.core.data.formats.export): the files written.
    The save dialog asked before a file was chosen that exists, so an earlier export there is
    replaced (a folder holding other files never is)."""
    from facekp.core.data import formats

    return formats.export(dataset, fmt, Path(path), overwrite=True)


def export_predictions(session, path: str | Path) -> Path:
    """The photo's faces (photo mode) or the dataset's predictions, CSV or JSON by ending."""
    path = Path(path)
    photo = session.photo
    if session.view_mode == "photo" and photo is not None:
        return exports.write_photo_predictions(path, photo.path, photo.faces, photo.message)
    if session.predictions is None or np.isnan(session.predictions).all():
        raise ValueError("no predictions yet: load or train a model first")
    return exports.write_dataset_predictions(path, session.dataset, session.predictions,
                                             session.errors)


class Files:
    """The File menu's dialogs, recent files and last folder for one window."""

    def __init__(self, window, remember: bool):
        self.window = window
        self.remember = remember      # False: nothing goes to the person's settings

    # --- settings -----------------------------------------------------------------------
    def add_recent(self, path: str | Path) -> None:
        if self.remember:
            app_settings.add_recent_file(path)

    def last_dir(self) -> str:
        return str(app_settings.settings().value("last_dir", str(Path.home())))

    def _asked(self, path: str, suffix: str | None = None) -> Path:
        if suffix and not path.lower().endswith(suffix):
            path += suffix
        if self.remember:
            app_settings.settings().setValue("last_dir", str(Path(path).parent))
        return Path(path)

    def fill_recent_menu(self) -> None:
        menu = self.window.recent_menu
        menu.clear()
        files = app_settings.recent_files()
        for f in files:
            menu.addAction(f).triggered.connect(lambda _=False, f=f: self.window.open_path(f))
        if files:
            menu.addSeparator()
            menu.addAction("Clear list", app_settings.clear_recent_files)
        else:
            menu.addAction("(none)").setEnabled(False)

    # --- dialogs that ask -----------------------------------------------------------------
    def _open(self, title: str, filters: str) -> None:
        path, _ = QFileDialog.getOpenFileName(self.window, title, self.last_dir(), filters)
        if path:
            self.window.open_path(self._asked(path))

    def open_dialog(self) -> None:
        self._open("Open a photo, video, dataset or model", OPEN_FILTER)

    def open_dataset_dialog(self) -> None:
        self._open("Open a dataset", "Datasets (*.npz *.csv)")

    def open_model_dialog(self) -> None:
        self._open("Open a model", "Keras models (*.keras)")

    def _save_path(self, title: str, name: str, filters: str) -> str:
        path, _ = QFileDialog.getSaveFileName(self.window, title,
                                              str(Path(self.last_dir()) / name), filters)
        return path

    def save_dataset(self) -> bool:
        """Save to the dataset's own .npz; ask for a name for anything else (a CSV, the
        shipped dataset, a dataset without a file)."""
        from facekp.core.resources import DEFAULT_DATASET

        session = self.window.session
        if session.dataset is None:
            return False
        path = session.dataset_path
        if path is None or path.suffix.lower() != ".npz" or \
                path.resolve() == Path(DEFAULT_DATASET).resolve():
            return self.save_dataset_as()
        return self.write_dataset(path)

    def save_dataset_as(self) -> bool:
        if self.window.session.dataset is None:
            return False
        path = self._save_path("Save dataset as", "faces-edited.npz", "Dataset (*.npz)")
        return bool(path) and self.write_dataset(self._asked(path, ".npz"))

    def export_kaggle_csv(self) -> None:
        if self.window.session.dataset is None:
            return
        path = self._save_path("Export as Kaggle CSV", "training.csv", "Kaggle CSV (*.csv)")
        if path:
            self.write_dataset(self._asked(path, ".csv"), adopt=False)

    def export_dataset_dialog(self, fmt: str) -> None:
        if self.window.session.dataset is None:
            return
        title, name, filters, ending = DATASET_EXPORTS[fmt]
        path = self._save_path(f"Export the dataset as {title}", name, filters)
        if path:
            self.export_dataset(fmt, self._asked(path, ending or None))

    def export_dataset(self, fmt: str, path: str | Path) -> list[Path] | None:
        """Write the dataset as ``fmt`` (facekp.core.data.formats); a problem is one line."""
        w = self.window
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            written = export_dataset(w.session.dataset, fmt, path)
        except Exception as exc:
            w.show_error(f"Could not export to {path}: {exc}")
            return None
        finally:
            QApplication.restoreOverrideCursor()
        w.statusBar().showMessage(f"Exported {len(w.session)} faces as "
                                  f"{DATASET_EXPORTS[fmt][0]} to {written[0]}", 8000)
        return written

    def export_view_dialog(self) -> None:
        path = self._save_path("Export the view as PNG", "view.png", "PNG image (*.png)")
        if path:
            self.export_view(self._asked(path))

    def export_predictions_dialog(self) -> None:
        name = "photo-keypoints" if self.window.session.view_mode == "photo" else "predictions"
        path = self._save_path("Export predictions", f"{name}.csv", "CSV (*.csv);;JSON (*.json)")
        if path:
            self.export_predictions(self._asked(path))

    def export_loss_dialog(self) -> None:
        path = self._save_path("Export the loss curve", "loss.png", "PNG image (*.png)")
        if path:
            self.export_loss_curve(self._asked(path))

    # --- doing, with the window's messages ------------------------------------------------
    def write_dataset(self, path: Path, adopt: bool = True) -> bool:
        """Write the dataset; ``adopt``: it becomes the file the window edits and the undo
        stack is marked clean."""
        w = self.window
        path = Path(path)
        if adopt and not w.recovery.may_overwrite(path):
            w.statusBar().showMessage(f"Not saved: {path.name} changed on disk", 8000)
            return False
        w.statusBar().showMessage(f"Saving {path.name}…")
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            write_dataset(w.session.dataset, path)
        except Exception as exc:
            w.show_error(f"Could not save {path}: {exc}")
            return False
        finally:
            QApplication.restoreOverrideCursor()
        if adopt:
            w.session.dataset_path = path
            w.recovery.saved(path)
            w.undo_stack.setClean()
            w.update_title()
            self.add_recent(path)
        w.statusBar().showMessage(f"Saved {len(w.session)} faces to {path}", 8000)
        return True

    def export_view(self, path: str | Path) -> Path:
        path = export_view(self.window.canvas, path)
        self.window.statusBar().showMessage(f"Saved the view to {path}", 5000)
        return path

    def export_predictions(self, path: str | Path) -> Path | None:
        try:
            path = export_predictions(self.window.session, path)
        except Exception as exc:
            self.window.show_error(f"Could not write {path}: {exc}")
            return None
        self.window.statusBar().showMessage(f"Saved predictions to {path}", 5000)
        return path

    def export_loss_curve(self, path: str | Path) -> Path:
        path = self.window.training_panel.save_plot_png(path)
        self.window.statusBar().showMessage(f"Saved the loss curve to {path}", 5000)
        return path
