"""The Models dock: the models the app knows (shipped, trained in the app, opened), with
architecture, date and validation RMSE from their records (facekp.core.quality.model_info). Pick one
to load, or two to compare on the same face: the first is loaded (red crosses), the second drawn in
blue, and the Keypoint errors dock shows both models' errors on the face."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QHeaderView, QLabel,
                               QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout,
                               QWidget)

from .workers import Job

COLUMNS = ("model", "from", "arch", "date", "val px")


class ModelList(QWidget):
    """The dock's widget and the comparison of two models for one window."""

    def __init__(self, window):
        super().__init__(window)
        self.window = window
        self.opened: list[Path] = []
        self.infos: list = []
        self.second = None                  # (ModelInfo, Predictor) being compared, or None
        self._second_rows: dict[int, np.ndarray] = {}
        self._rows_of = None                # the dataset _second_rows belong to
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.MultiSelection)
        self.table.horizontalHeader().setSectionResizeMode(
            QHeaderView.ResizeMode.ResizeToContents)
        from .models import VALIDATION_RMSE

        self.table.horizontalHeaderItem(4).setToolTip(
            f"validation RMSE in px from the model's training record: {VALIDATION_RMSE}")
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.load_button = QPushButton("Load")
        self.load_button.clicked.connect(lambda: self.load_selected())
        self.compare_button = QPushButton("Compare two")
        self.compare_button.setToolTip("Select two models: the first is loaded (red), the "
                                       "second drawn in blue on the same face")
        self.compare_button.clicked.connect(lambda: self.compare_selected())
        self.stop_button = QPushButton("Stop comparing")
        self.stop_button.clicked.connect(lambda: self.stop_comparing())
        self.note = QLabel("Select one model to load, or two to compare.")
        self.note.setWordWrap(True)
        buttons = QHBoxLayout()
        for b in (self.load_button, self.compare_button, self.stop_button):
            buttons.addWidget(b)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.note)
        self._selection_changed()

    # --- the list ------------------------------------------------------------------------
    def refresh(self, *_args) -> None:
        """Fill the table again (the window's model, once loaded, counts as opened)."""
        from facekp.core.quality.model_info import known_models
        from facekp.core.resources import SHIPPED_MODELS

        from . import settings as app_settings

        w = self.window
        if w.model_path is not None and w.model_path not in self.opened:
            self.opened.append(Path(w.model_path))
        shipped = [p for p in SHIPPED_MODELS.values() if p.exists()]   # kaggle15, ibug68
        self.infos = known_models(shipped, app_settings.models_dir(), self.opened,
                                  trained=w.training_panel.created)
        self.table.setRowCount(len(self.infos))
        for r, info in enumerate(self.infos):
            rmse = "" if info.val_rmse_px is None else f"{info.val_rmse_px:.2f}"
            loaded = w.model_path is not None and Path(w.model_path).resolve() == \
                info.path.resolve()
            values = (info.name, info.origin, info.arch or "?", (info.date or "")[:10], rmse)
            for c, text in enumerate(values):
                item = QTableWidgetItem(text)
                item.setToolTip(f"{info.path}{' (loaded)' if loaded else ''}, {info.date}")
                font = item.font()
                font.setBold(loaded)          # the loaded model in bold
                item.setFont(font)
                self.table.setItem(r, c, item)

    def selected(self) -> list:
        rows = sorted({i.row() for i in self.table.selectedIndexes()})
        return [self.infos[r] for r in rows if r < len(self.infos)]

    def select(self, *paths) -> None:
        """Select the rows of ``paths`` (tests, and after a model is opened)."""
        self.table.clearSelection()
        for r, info in enumerate(self.infos):
            if any(info.path.resolve() == Path(p).resolve() for p in paths):
                self.table.selectRow(r)

    def _selection_changed(self) -> None:
        n = len(self.selected())
        self.load_button.setEnabled(n == 1)
        self.compare_button.setEnabled(n == 2)
        self.stop_button.setEnabled(self.second is not None)

    def load_selected(self) -> None:
        chosen = self.selected()
        if len(chosen) == 1:
            self.stop_comparing()
            self.window.models.load(chosen[0].path)

    # --- comparing -----------------------------------------------------------------------
    def comparing(self) -> bool:
        return self.second is not None

    def compare_selected(self) -> None:
        """Compare the two selected models: the loaded one (else the first in the list) stays
        or becomes the window's model (red), the other is drawn beside it (blue)."""
        chosen = self.selected()
        if len(chosen) != 2:
            return
        w = self.window
        loaded = w.model_path is not None and chosen[1].path.resolve() == \
            Path(w.model_path).resolve()
        first, second = chosen[::-1] if loaded else chosen
        if w.model_path is None or Path(w.model_path).resolve() != first.path.resolve():
            w.models.load(first.path)

        def job():
            from facekp.core.model.predict import Predictor
            return Predictor(second.path)

        w.statusBar().showMessage(f"Loading {second.name} to compare…")
        w.jobs.submit(Job("model", job, on_done=lambda p: self._second_ready(second, p),
                          on_failed=w.show_error, priority=Job.NOW))

    def _second_ready(self, info, predictor) -> None:
        self.second = (info, predictor)
        self._second_rows = {}
        self._selection_changed()
        name = self.window.model_path.name if self.window.model_path else "the loaded model"
        self.note.setText(f"Comparing: red × = {name}, blue + = {info.name}.")
        self.window.statusBar().showMessage(f"Comparing {name} (red ×) with {info.name} "
                                            "(blue +)", 10000)
        self.face_changed()

    def stop_comparing(self) -> None:
        self.second = None
        self._second_rows = {}
        self.window.canvas.set_compare(None)
        if self.window.session.view_mode == "video":
            self.window.video.redraw()
        self._selection_changed()
        self.note.setText("Select one model to load, or two to compare.")
        self.window.update_keypoint_errors()

    def face_changed(self, *_args) -> None:
        """The face on screen changed: the second model's keypoints for it (predicted once)."""
        w = self.window
        s = w.session
        if self.second is not None and s.view_mode == "video":
            return w.video.redraw()          # the frame again, the second model's points on it
        if self.second is None or s.view_mode != "dataset" or s.row is None:
            return
        row = s.row
        if self._rows_of is not s.dataset:      # another dataset (or faces added): predict anew
            self._second_rows, self._rows_of = {}, s.dataset
        if row in self._second_rows:
            self._show_second(row)
            return
        predictor, images = self.second[1], s.dataset.images

        def done(pred, row=row, dataset=s.dataset):
            if dataset is s.dataset:
                self._second_rows[row] = pred[0]
                self._show_second(row)

        w.jobs.submit(Job("predict", lambda: predictor.predict(images[row:row + 1]),
                          on_done=done, on_failed=w.show_error, priority=Job.NOW))

    def _show_second(self, row: int) -> None:
        w = self.window
        if w.session.row == row and w.session.view_mode == "dataset":
            w.canvas.set_compare(self._second_rows[row])
            w.update_keypoint_errors()

    def update_table(self) -> None:
        """The Keypoint errors dock while comparing: both models' errors on this face (each
        point's distance in px from its label), the columns named after the models."""
        from .dataset_panel import DISTANCE_TIP, point_distances

        w, s = self.window, self.window.session
        row = s.row
        truth = s.dataset.keypoints[row] if s.dataset is not None and row is not None \
            else None
        a = b = None
        if truth is not None and s.has_prediction(row):
            a = point_distances(s.predictions[row], truth)[1]
        if truth is not None and row in self._second_rows and s.view_mode == "dataset":
            b = point_distances(self._second_rows[row], truth)[1]
        name_a = w.model_path.name if w.model_path else "the loaded model"
        name_b = self.second[0].name
        w.kp_view.set_values(a, b, f"{_short(name_b)} +", f"{_short(name_a)} ×")
        for column, name, mark, values in ((1, name_a, "red ×", a), (2, name_b, "blue +", b)):
            w.kp_view.horizontalHeaderItem(column).setToolTip(
                f"{name} ({mark}): {DISTANCE_TIP}{_face_rmse(values)}")


def _short(name: str, limit: int = 14) -> str:
    """A model's file name short enough for a column header (its start, which people name)."""
    stem = name[:-6] if name.endswith(".keras") else name
    return stem if len(stem) <= limit else stem[:limit - 1] + "…"


def _face_rmse(distances) -> str:
    """The face's RMSE (the table's figure) from its points' distances, for a tooltip."""
    if distances is None or not np.isfinite(distances).any():
        return ""
    d = np.asarray(distances, float)
    return f"; face RMSE {np.sqrt(np.nanmean(d ** 2) / 2):.2f} px"
