"""The main window: canvas in the middle, dataset / keypoint errors / training in docks.

Everything slow happens off the GUI thread:
- the dataset is read by a :class:`TaskThread` (pandas and friends load there too);
- TensorFlow is imported by the :class:`EngineThread`, which then loads models and runs
  predictions one job at a time (a single face or a photo before a dataset-wide pass);
- training runs in the training panel's :class:`TrainingThread`.

The window shows at once with a status message; each part fills in when it is ready.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QByteArray, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence, QUndoCommand, QUndoStack
from PySide6.QtWidgets import (QApplication, QDockWidget, QFileDialog, QLabel, QMainWindow,
                               QMessageBox, QProgressBar, QToolBar, QWidget)

from core.keypoints import NAMES

from . import settings as app_settings
from .canvas import NICE, Canvas
from .dataset_panel import DatasetPanel, KeypointErrorView
from .training_panel import TrainingPanel
from .workers import EngineThread, TaskThread

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"}
DATASET_SUFFIXES = {".npz", ".csv"}
MODEL_SUFFIXES = {".keras"}
PREDICT_CHUNK = 256
OPEN_FILTER = ("All supported (*.jpg *.jpeg *.png *.bmp *.tif *.tiff *.webp *.npz *.csv *.keras);;"
               "Photos (*.jpg *.jpeg *.png *.bmp *.tif *.tiff *.webp);;"
               "Datasets (*.npz *.csv);;Models (*.keras);;All files (*)")


@dataclass
class Options:
    data: str | None = None
    model: str | None = None
    image: int | None = None
    photo: str | None = None
    split: str | None = None
    restore_state: bool = True


class SetPointCommand(QUndoCommand):
    """Move, add (old is None) or delete (new is None) one ground-truth keypoint."""

    def __init__(self, window: "MainWindow", row: int, k: int, old, new, text: str):
        super().__init__(text)
        self.window, self.row, self.k = window, row, k
        self.old = None if old is None else (float(old[0]), float(old[1]))
        self.new = None if new is None else (float(new[0]), float(new[1]))

    def redo(self) -> None:
        self.window.set_point(self.row, self.k, self.new)

    def undo(self) -> None:
        self.window.set_point(self.row, self.k, self.old)


class MainWindow(QMainWindow):
    """The app. ``idle`` is emitted whenever no loading, prediction or training is pending."""

    idle = Signal()
    modelChanged = Signal(object)      # path or None
    datasetLoaded = Signal()
    photoShown = Signal()

    def __init__(self, options: Options | None = None):
        super().__init__()
        self.options = options or Options()
        self.setObjectName("facekp-main")
        self.resize(1400, 900)
        self.setAcceptDrops(True)

        self.dataset = None
        self.dataset_path: Path | None = None
        self.predictions: np.ndarray | None = None
        self.errors: np.ndarray | None = None
        self.predictor = None
        self.model_path: Path | None = None
        self.engine_info: dict | None = None
        self.engine_error: str | None = None
        self.row: int | None = None
        self.view_mode = "dataset"
        self.photo = None           # dict: path, image (PIL), array, faces, message
        self._busy: set[str] = set()
        self._tasks: set[TaskThread] = set()
        self._closing = False
        self._predict_total = 0
        self._predict_done = 0
        self._split_kp_cache: tuple | None = None
        self._started = False

        self.undo_stack = QUndoStack(self)
        self.undo_stack.cleanChanged.connect(self._clean_changed)

        self.canvas = Canvas(self)
        self.setCentralWidget(self.canvas)
        self.dataset_panel = DatasetPanel(self)
        self.kp_view = KeypointErrorView(self)
        self.training_panel = TrainingPanel(self)
        self.training_panel.data_provider = self.training_data
        self._make_docks()
        self._make_actions()
        self._make_menus()
        self._make_toolbar()
        self._make_statusbar()
        self._connect()
        self._update_title()
        self._update_model_state()
        if self.options.restore_state:
            self._restore_state()

        self.engine = EngineThread(self)
        self.engine.status.connect(self._engine_status)
        self.engine.ready.connect(self._engine_ready)
        self.engine.loadFailed.connect(self._engine_failed)
        self.engine.jobProgress.connect(self._job_progress)
        self.engine.jobDone.connect(self._job_done)
        self.engine.jobFailed.connect(self._job_failed)

    # ======================================================================================
    # construction
    def _make_docks(self) -> None:
        def dock(title: str, name: str, widget: QWidget, area) -> QDockWidget:
            d = QDockWidget(title, self)
            d.setObjectName(name)
            d.setWidget(widget)
            self.addDockWidget(area, d)
            return d

        left = Qt.DockWidgetArea.LeftDockWidgetArea
        right = Qt.DockWidgetArea.RightDockWidgetArea
        self.dataset_dock = dock("Dataset", "dataset-dock", self.dataset_panel, left)
        self.kp_dock = dock("Keypoint errors", "keypoint-dock", self.kp_view, left)
        self.training_dock = dock("Training", "training-dock", self.training_panel, right)
        self.resizeDocks([self.dataset_dock, self.training_dock], [520, 400],
                         Qt.Orientation.Horizontal)
        self.resizeDocks([self.dataset_dock, self.kp_dock], [440, 350], Qt.Orientation.Vertical)

    def _action(self, text: str, slot=None, shortcut=None, checkable=False, checked=False,
                tip: str | None = None) -> QAction:
        act = QAction(text, self)
        if shortcut is not None:
            if isinstance(shortcut, (list, tuple)):
                act.setShortcuts([QKeySequence(s) for s in shortcut])
            else:
                act.setShortcut(QKeySequence(shortcut))
        if checkable:
            act.setCheckable(True)
            act.setChecked(checked)
        if tip:
            act.setStatusTip(tip)
            act.setToolTip(f"{text.replace('&', '').replace('…', '')} — {tip}")
        if slot is not None:
            (act.toggled if checkable else act.triggered).connect(slot)
        self.addAction(act)
        return act

    def _make_actions(self) -> None:
        A, K = self._action, QKeySequence.StandardKey
        self.act_open = A("&Open…", self.open_dialog, K.Open,
                          tip="open a photo, a dataset (.npz, Kaggle .csv) or a model (.keras)")
        self.act_open_dataset = A("Open &dataset…", self.open_dataset_dialog, "Ctrl+Shift+O")
        self.act_open_model = A("Open &model…", self.open_model_dialog, "Ctrl+M")
        self.act_save = A("&Save dataset", self.save_dataset, K.Save,
                          tip="save the dataset with your edits (.npz)")
        self.act_save_as = A("Save dataset &as…", self.save_dataset_as, K.SaveAs)
        self.act_export_csv = A("Export dataset as &Kaggle CSV…", self.export_kaggle_csv)
        self.act_export_view = A("Export current &view as PNG…", self.export_view,
                                 "Ctrl+E")
        self.act_export_pred = A("Export &predictions (CSV/JSON)…", self.export_predictions,
                                 "Ctrl+Shift+E")
        self.act_export_loss = A("Export &loss curve as PNG…", self.export_loss_curve)
        self.act_quit = A("&Quit", self.close, K.Quit)

        self.act_undo = self.undo_stack.createUndoAction(self, "&Undo")
        self.act_undo.setShortcut(QKeySequence("Ctrl+Z"))
        self.act_redo = self.undo_stack.createRedoAction(self, "&Redo")
        self.act_redo.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        self.addAction(self.act_undo)
        self.addAction(self.act_redo)
        self.act_delete = A("&Delete selected point", self.delete_selected_point,
                            [QKeySequence.StandardKey.Delete, "Backspace"],
                            tip="delete the selected ground-truth point (click it first)")
        self.act_add = A("&Add missing keypoint", self.add_missing_point, "Insert",
                         tip="place the next missing keypoint at its average position; "
                             "then drag it into place (or right-click the face)")

        self.act_truth = A("&Ground truth", lambda on: self.canvas.set_layer_visible("truth", on),
                           "G", True, True, "green circles: labelled keypoints")
        self.act_pred = A("&Predictions", lambda on: self.canvas.set_layer_visible("prediction", on),
                          "P", True, True, "red crosses: the model's keypoints")
        self.act_lines = A("Error &lines", lambda on: self.canvas.set_layer_visible("lines", on),
                           "L", True, True, "a line from each labelled point to its prediction")
        self.act_boxes = A("Face &boxes", lambda on: self.canvas.set_layer_visible("boxes", on),
                           "Shift+B", True, True)
        self.act_image = A("&Image", lambda on: self.canvas.set_layer_visible("image", on),
                           "I", True, True)
        self.act_smooth = A("&Smooth pixels", self.canvas.set_smooth, "S", True, False,
                            "smooth interpolation instead of crisp (nearest) pixels")
        self.act_fit = A("&Fit to window", self.canvas.fit, ["F", "Ctrl+0"])
        self.act_zoom_in = A("Zoom &in", self.canvas.zoom_in, ["+", "=", "Ctrl+="])
        self.act_zoom_out = A("Zoom &out", self.canvas.zoom_out, ["-", "Ctrl+-"])

        self.act_next = A("&Next face", lambda: self.step(1), "D", tip="next row of the table")
        self.act_prev = A("&Previous face", lambda: self.step(-1), "A",
                          tip="previous row of the table")
        # Up/Down on the canvas step too (the table handles its own arrow keys).
        for key, delta in (("Down", 1), ("Up", -1)):
            act = QAction(self)
            act.setShortcut(QKeySequence(key))
            act.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            act.triggered.connect(lambda _=False, d=delta: self.step(d))
            self.canvas.addAction(act)
        self.act_worst = A("Sort &worst first", self.dataset_panel.sort_worst_first, "W",
                           tip="sort the table by per-face RMSE, largest first")
        self.act_back = A("Back to &dataset", self.back_to_dataset, "Escape")
        self.act_draw_box = A("Draw a face &box", self.canvas.set_box_mode, "B", True, False,
                              "drag a square around a face the detector missed; keypoints are "
                              "predicted inside it")
        self.act_draw_box.setEnabled(False)
        self.act_predict = A("&Predict dataset", self.predict_dataset, "Ctrl+R",
                             tip="predict every face with the current model")
        self.act_train = A("Start &training", lambda: self.training_panel.start(), "Ctrl+T")
        self.act_stop = A("S&top training", self.training_panel.stop, "Ctrl+.")
        self.act_stop.setEnabled(False)
        self.act_about = A("&About facekp", self.about)

    def _make_menus(self) -> None:
        mb = self.menuBar()
        m = mb.addMenu("&File")
        m.addAction(self.act_open)
        self.recent_menu = m.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        m.addAction(self.act_open_dataset)
        m.addAction(self.act_open_model)
        m.addSeparator()
        m.addAction(self.act_save)
        m.addAction(self.act_save_as)
        m.addAction(self.act_export_csv)
        m.addSeparator()
        m.addAction(self.act_export_view)
        m.addAction(self.act_export_pred)
        m.addAction(self.act_export_loss)
        m.addSeparator()
        m.addAction(self.act_quit)

        m = mb.addMenu("&Edit")
        m.addAction(self.act_undo)
        m.addAction(self.act_redo)
        m.addSeparator()
        m.addAction(self.act_add)
        m.addAction(self.act_delete)

        m = mb.addMenu("&View")
        for a in (self.act_image, self.act_truth, self.act_pred, self.act_lines, self.act_boxes):
            m.addAction(a)
        m.addSeparator()
        m.addAction(self.act_smooth)
        m.addAction(self.act_fit)
        m.addAction(self.act_zoom_in)
        m.addAction(self.act_zoom_out)
        m.addSeparator()
        for d in (self.dataset_dock, self.kp_dock, self.training_dock):
            m.addAction(d.toggleViewAction())

        m = mb.addMenu("&Go")
        for a in (self.act_next, self.act_prev, self.act_worst, self.act_back):
            m.addAction(a)
        m = mb.addMenu("&Photo")
        m.addAction(self.act_draw_box)
        m = mb.addMenu("&Model")
        for a in (self.act_open_model, self.act_predict, self.act_train, self.act_stop):
            m.addAction(a)
        m = mb.addMenu("&Help")
        m.addAction(self.act_about)

    def _make_toolbar(self) -> None:
        tb = QToolBar("Main", self)
        tb.setObjectName("main-toolbar")
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.addToolBar(tb)
        for a in (self.act_open, self.act_save, None, self.act_undo, self.act_redo, None,
                  self.act_prev, self.act_next, self.act_back, None, self.act_truth,
                  self.act_pred, self.act_lines, self.act_smooth, self.act_fit, None,
                  self.act_draw_box, self.act_predict):
            tb.addSeparator() if a is None else tb.addAction(a)
        self.toolbar = tb

    def _make_statusbar(self) -> None:
        sb = self.statusBar()
        self.engine_label = QLabel("Loading TensorFlow…")
        self.zoom_label = QLabel("")
        self.busy_bar = QProgressBar()
        self.busy_bar.setRange(0, 0)
        self.busy_bar.setMaximumWidth(120)
        self.busy_bar.setMaximumHeight(14)
        sb.addPermanentWidget(self.busy_bar)
        sb.addPermanentWidget(self.engine_label)
        sb.addPermanentWidget(self.zoom_label)
        sb.showMessage("Starting…")

    def _connect(self) -> None:
        self.canvas.pointMoved.connect(self._point_moved)
        self.canvas.pointAddRequested.connect(self._point_add_requested)
        self.canvas.pointDeleteRequested.connect(self._point_delete_requested)
        self.canvas.boxDrawn.connect(self._box_drawn)
        self.canvas.hovered.connect(self._hovered)
        self.canvas.zoomChanged.connect(self._zoom_changed)
        self.dataset_panel.currentChanged.connect(self.show_row)
        self.dataset_panel.table.clicked.connect(self._table_clicked)
        self.dataset_panel.predictRequested.connect(self.predict_dataset)
        self.dataset_panel.splitChanged.connect(self._split_changed)
        self.training_panel.modelTrained.connect(self._model_trained)
        self.training_panel.trainingStateChanged.connect(self._training_state)
        self.training_panel.statusMessage.connect(self._panel_message)

    def _clean_changed(self, clean: bool) -> None:
        self.setWindowModified(not clean)

    def _zoom_changed(self, zoom: float) -> None:
        self.zoom_label.setText(f"{zoom * 100:.0f}%")

    def _split_changed(self, _split: str) -> None:
        self._update_kp_view(split_changed=True)

    def _panel_message(self, text: str) -> None:
        self.statusBar().showMessage(text, 8000)

    # ======================================================================================
    # startup
    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not self._started:
            self._started = True
            QTimer.singleShot(0, self.start_loading)

    def start_loading(self) -> None:
        """Kick off background loading (called once the window is on screen)."""
        self._busy_add("engine")
        self.engine.start()
        path = self.options.data
        if path is None:
            from core.resources import DEFAULT_DATASET
            path = DEFAULT_DATASET
        self.load_dataset(path, initial=True)
        # pyqtgraph takes a moment to import: after the first paint
        QTimer.singleShot(30, self.training_panel.ensure_plot)
        if self.options.photo:
            QTimer.singleShot(0, lambda: self.open_photo(self.options.photo))

    # --- busy / idle --------------------------------------------------------------------------
    def _busy_add(self, name: str) -> None:
        self._busy.add(name)
        self.busy_bar.show()

    def _busy_done(self, name: str) -> None:
        self._busy.discard(name)
        if not self._busy:
            self.busy_bar.hide()
            QTimer.singleShot(0, self._emit_idle)

    def _emit_idle(self) -> None:
        if not self._busy and not self._closing:
            self.idle.emit()

    @property
    def busy(self) -> set[str]:
        return set(self._busy)

    def _start_task(self, name: str, fn, on_done, on_failed=None, on_progress=None) -> TaskThread:
        task = TaskThread(fn, self)
        self._tasks.add(task)
        self._busy_add(name)

        def finished():
            self._tasks.discard(task)
            task.deleteLater()
            self._busy_done(name)

        task.succeeded.connect(on_done)
        task.failed.connect(on_failed or self.show_error)
        if on_progress is not None:
            task.progress.connect(on_progress)
        task.finished.connect(finished)
        task.start()
        return task

    # ======================================================================================
    # engine and model
    def _engine_status(self, text: str) -> None:
        self.engine_label.setText(text)
        self.statusBar().showMessage(text)

    def _engine_ready(self, info: dict) -> None:
        self.engine_info = info
        self.training_panel.set_engine_info(info)
        self.engine_label.setText(f"TensorFlow {info['tensorflow']} ready")
        path = self.options.model
        if path is None:
            from core.resources import default_model
            path = default_model()
        if path is not None and not info.get("prediction"):
            self.load_model(path)
        else:
            self._update_model_state()
            if info.get("prediction"):
                self.statusBar().showMessage(info["prediction"], 10000)
        self._busy_done("engine")

    def _engine_failed(self, message: str) -> None:
        self.engine_error = message
        self.engine_label.setText("TensorFlow unavailable")
        self.show_error(f"TensorFlow could not be loaded: {message}. Datasets and photos still "
                        "open; prediction and training are off.")
        self.training_panel.start_button.setEnabled(False)
        self._busy_done("engine")

    def load_model(self, path: str | Path) -> None:
        """Load a .keras model in the engine thread; predictions refresh when it is ready."""
        path = Path(path)
        if self.engine_info is None:
            self.options.model = str(path)  # picked up when the engine is ready
            return
        self._busy_add("model")
        self.engine_label.setText(f"Loading model {path.name}…")

        def job(progress, path=path):
            from core.predict import Predictor
            return Predictor(path)

        self.engine.submit("model", job, token=path, priority=EngineThread.PRIORITY_NOW)

    def _model_loaded(self, path: Path, predictor) -> None:
        self.predictor = predictor
        self.model_path = Path(path)
        self.engine.new_generation()  # cancels pending predictions of the old model
        self._busy.discard("predict")
        self.modelChanged.emit(self.model_path)
        if self.dataset is not None:
            self.predictions = np.full_like(self.dataset.keypoints, np.nan)
            self.errors = np.full(len(self.dataset), np.nan)
            self.dataset_panel.set_errors(self.errors)
        self._update_model_state()
        self.statusBar().showMessage(f"Model {self.model_path.name} loaded", 5000)
        app_settings.add_recent_file(self.model_path)
        if self.view_mode == "photo" and self.photo is not None:
            self._predict_photo()
        if self.dataset is not None:
            self.predict_dataset()

    def _model_trained(self, path: str) -> None:
        self.statusBar().showMessage(f"Training done: loading the new model {Path(path).name}…")
        self.load_model(path)

    def _update_model_state(self) -> None:
        has = self.predictor is not None
        for a in (self.act_pred, self.act_lines, self.act_predict, self.act_export_pred):
            a.setEnabled(has)
        self.dataset_panel.predict_button.setEnabled(has)
        if has:
            self.engine_label.setText(f"Model: {self.model_path.name}")
            self.engine_label.setToolTip(str(self.model_path))
        elif self.engine_info is not None:
            self.engine_label.setText("No model: ground truth only — train one in the "
                                      "Training panel or open a .keras file")
            self.engine_label.setToolTip("")

    # --- engine job results ---------------------------------------------------------------
    def _job_progress(self, kind: str, token, done: int, total: int) -> None:
        pass

    def _job_done(self, kind: str, token, result) -> None:
        if kind == "model":
            self._model_loaded(token, result)
            self._busy_done("model")
        elif kind == "chunk":
            idx, preds = result
            self._store_predictions(idx, preds)
            self._predict_done += len(idx)
            self.dataset_panel.set_progress(self._predict_done, self._predict_total)
            if self._predict_done >= self._predict_total:
                self.dataset_panel.set_progress(1, 1)
                self._update_kp_view(split_changed=True)
                e = self.errors[np.isfinite(self.errors)]
                if len(e):
                    self.statusBar().showMessage(
                        f"Predicted {self._predict_total} faces: mean per-face RMSE "
                        f"{e.mean():.2f} px (sort by RMSE to see the worst first)", 8000)
                self._busy_done("predict")
        elif kind == "one":
            idx, preds = result
            self._store_predictions(idx, preds)
        elif kind == "photo":
            self._photo_predicted(token, result)
            self._busy_done("photo")

    def _job_failed(self, kind: str, token, message: str) -> None:
        if kind == "model":
            self._busy_done("model")
            self._update_model_state()
            self.show_error(f"Could not load the model: {message}")
        elif kind == "chunk":
            self._busy_done("predict")
            self.dataset_panel.set_progress(1, 1)
            self.show_error(f"Prediction failed: {message}")
        elif kind == "photo":
            self._busy_done("photo")
            self.show_error(message)
        else:
            self.show_error(message)

    # ======================================================================================
    # dataset
    def load_dataset(self, path: str | Path, initial: bool = False) -> None:
        path = Path(path)
        self.statusBar().showMessage(f"Loading {path.name}…")
        if self.dataset is None:
            self.canvas.show_message(f"Loading {path.name}…")

        def job(progress, path=path):
            from core import data
            return data.load(path)

        def done(dataset, path=path):
            self.set_dataset(dataset, path)
            if not initial:
                app_settings.add_recent_file(path)

        def failed(message, path=path):
            self.show_error(message)
            if self.dataset is None:
                self.canvas.show_message("No dataset: open one with File > Open")

        self._start_task("dataset", job, done, failed)

    def set_dataset(self, dataset, path: Path | None) -> None:
        self.undo_stack.clear()
        self.dataset = dataset
        self.dataset_path = Path(path) if path is not None else None
        self.engine.new_generation()
        self._busy.discard("predict")
        self.predictions = np.full_like(dataset.keypoints, np.nan)
        self.errors = np.full(len(dataset), np.nan)
        self._split_kp_cache = None
        self.dataset_panel.set_dataset(dataset)
        self._mean_points = self._mean_keypoints()
        self._update_title()
        self._describe_training_data()
        n = len(dataset)
        if self.options.split:
            self.dataset_panel.set_split(self.options.split)
        row = self.options.image if self.options.image is not None else 0
        self.options.image = None
        if n:
            if not 0 <= row < n:
                self.show_error(f"--image {row}: the dataset has faces 0 to {n - 1}")
                row = 0
            photo = self.view_mode == "photo"
            if photo:  # a photo is on screen: select the face without showing it
                self.row = row
                self.dataset_panel.blockSignals(True)
            if not self.dataset_panel.select_row(row):
                self.dataset_panel.set_split("all")
                self.dataset_panel.select_row(row)
            self.dataset_panel.blockSignals(False)
        self.statusBar().showMessage(f"{self._dataset_label()}: {n} faces", 5000)
        self.datasetLoaded.emit()
        if self.predictor is not None:
            self.predict_dataset()

    def _dataset_label(self) -> str:
        return self.dataset_path.name if self.dataset_path else "dataset"

    def _describe_training_data(self) -> None:
        ds = self.dataset
        if ds is None:
            return
        tr, va = int((ds.splits == "train").sum()), int((ds.splits == "val").sum())
        complete = int(ds.present.all(axis=1)[ds.splits == "train"].sum())
        if tr and va:
            text = (f"{tr} train faces ({complete} with all 15 points), {va} validation faces "
                    f"from {self._dataset_label()}")
        else:
            text = (f"{len(ds)} faces without train/val splits: they will be split by person "
                    "(80/10/10) when training starts")
        self.training_panel.set_data_description(text)

    def training_data(self):
        """(train, val, description) for the training panel: the current dataset's splits."""
        ds = self.dataset
        if ds is None:
            self.show_error("Open a dataset first")
            return None
        if not (ds.splits == "train").any() or not (ds.splits == "val").any():
            from core import data
            ds = data.split_by_person(ds)
        return ds.split("train"), ds.split("val"), ""

    def _mean_keypoints(self) -> np.ndarray:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(self.dataset.keypoints, axis=0) if len(self.dataset) else \
                np.full(30, np.nan)
        return np.where(np.isnan(mean), 48.0, mean).reshape(15, 2)

    # --- navigation ----------------------------------------------------------------------------
    def step(self, delta: int) -> None:
        if self.view_mode == "photo":
            self.back_to_dataset()
            return
        self.dataset_panel.step(delta)

    def show_row(self, row: int) -> None:
        if self.dataset is None or not 0 <= row < len(self.dataset):
            return
        self.row = row
        self.view_mode = "dataset"
        self.act_draw_box.setChecked(False)
        self.act_draw_box.setEnabled(False)
        truth = self.dataset.keypoints[row]
        pred = self.predictions[row] if self.predictions is not None else None
        self.canvas.show_face(self.dataset.images[row], truth, pred, editable=True)
        self._update_title()
        self._update_kp_view()
        if self.predictor is not None and pred is not None and np.isnan(pred).all():
            self._predict_rows(np.array([row]), kind="one")
        ds = self.dataset
        e = self.errors[row] if self.errors is not None else np.nan
        text = f"face {row}: {ds.names[row]}"
        if ds.persons[row]:
            text += f" · {ds.persons[row]}"
        if ds.splits[row]:
            text += f" · {ds.splits[row]}"
        if np.isfinite(e):
            text += f" · RMSE {e:.2f} px"
        self.statusBar().showMessage(text)

    def _table_clicked(self, index) -> None:
        if self.view_mode == "photo":   # the current row clicked again: back to its face
            row = self.dataset_panel.current_row()
            if row is not None:
                self.show_row(row)

    def back_to_dataset(self) -> None:
        if self.view_mode == "dataset" or self.dataset is None:
            return
        row = self.row if self.row is not None else 0
        self.show_row(row)

    # --- predictions ---------------------------------------------------------------------------
    def predict_dataset(self) -> None:
        """Predict every face (in chunks, current split first) to fill the RMSE column."""
        if self.predictor is None or self.dataset is None:
            return
        generation = self.engine.new_generation()
        n = len(self.dataset)
        visible = self.dataset_panel.visible_rows()
        rest = np.setdiff1d(np.arange(n), visible)
        order = np.concatenate([visible, rest]).astype(int)
        self._predict_total, self._predict_done = n, 0
        self._busy_add("predict")
        self.dataset_panel.set_progress(0, n)
        if self.row is not None:
            self._predict_rows(np.array([self.row]), kind="one", generation=generation)
        for start in range(0, n, PREDICT_CHUNK):
            self._predict_rows(order[start:start + PREDICT_CHUNK], kind="chunk",
                               generation=generation)

    def _predict_rows(self, rows: np.ndarray, kind: str, generation: int | None = None) -> None:
        predictor = self.predictor
        images = self.dataset.images

        def job(progress, rows=rows, predictor=predictor, images=images):
            return rows, predictor.predict(images[rows])

        priority = EngineThread.PRIORITY_NOW if kind == "one" else EngineThread.PRIORITY_BACKGROUND
        self.engine.submit(kind, job, priority=priority,
                           generation=self.engine.generation if generation is None else generation)

    def _store_predictions(self, rows: np.ndarray, preds: np.ndarray) -> None:
        from core import evaluate

        if self.dataset is None or self.predictions is None:
            return
        self.predictions[rows] = preds
        self.errors[rows] = evaluate.per_image(self.predictions[rows], self.dataset.keypoints[rows])
        self.dataset_panel.set_errors(self.errors)
        self._split_kp_cache = None
        if self.row is not None and self.row in set(int(r) for r in rows) \
                and self.view_mode == "dataset":
            self.canvas.set_prediction(self.predictions[self.row])
            self._update_kp_view()

    def _update_kp_view(self, split_changed: bool = False) -> None:
        if self.dataset is None or self.predictions is None or self.row is None:
            self.kp_view.set_values(None, None)
            return
        from core import evaluate

        r = self.row
        cur = None
        if not np.isnan(self.predictions[r]).all():
            cur = evaluate.per_keypoint(self.predictions[r:r + 1], self.dataset.keypoints[r:r + 1])
        split = self.dataset_panel.split
        if split_changed or self._split_kp_cache is None or self._split_kp_cache[0] != split:
            rows = self.dataset_panel.visible_rows()
            rows = rows[~np.isnan(self.predictions[rows]).all(axis=1)] if len(rows) else rows
            values = (evaluate.per_keypoint(self.predictions[rows], self.dataset.keypoints[rows])
                      if len(rows) else None)
            self._split_kp_cache = (split, values, len(rows))
        _, values, count = self._split_kp_cache
        label = {"all": "all", "val": "validation"}.get(split, split)
        self.kp_view.set_values(cur, values, f"{label} ({count})")

    # ======================================================================================
    # editing
    def _point_moved(self, k: int, old, new) -> None:
        if self.row is None or self.view_mode != "dataset":
            return
        self.undo_stack.push(SetPointCommand(self, self.row, k, old, new,
                                             f"move {NICE[NAMES[k]]} of face {self.row}"))

    def _point_add_requested(self, k: int, xy) -> None:
        if self.row is None:
            return
        self.undo_stack.push(SetPointCommand(self, self.row, k, None, xy,
                                             f"add {NICE[NAMES[k]]} to face {self.row}"))

    def _point_delete_requested(self, k: int) -> None:
        if self.row is None:
            return
        old = self.dataset.keypoints[self.row, 2 * k:2 * k + 2]
        if np.isnan(old).any():
            return
        self.undo_stack.push(SetPointCommand(self, self.row, k, old, None,
                                             f"delete {NICE[NAMES[k]]} of face {self.row}"))

    def delete_selected_point(self) -> None:
        k = self.canvas.selected_truth()
        if k is None:
            self.statusBar().showMessage("Click a green ground-truth point first, then Delete", 5000)
            return
        self._point_delete_requested(k)

    def add_missing_point(self) -> None:
        if self.row is None or self.view_mode != "dataset":
            return
        kp = self.dataset.keypoints[self.row].reshape(15, 2)
        missing = [k for k in range(15) if np.isnan(kp[k]).any()]
        if not missing:
            self.statusBar().showMessage("This face has all 15 keypoints", 5000)
            return
        k = missing[0]
        self._point_add_requested(k, tuple(self._mean_points[k]))
        self.statusBar().showMessage(f"Added {NICE[NAMES[k]]} at its average position: drag it "
                                     "into place", 8000)

    def set_point(self, row: int, k: int, xy) -> None:
        """Set (or with ``xy=None`` clear) one ground-truth keypoint; used by undo commands."""
        from core import evaluate

        ds = self.dataset
        ds.keypoints[row, 2 * k:2 * k + 2] = (np.nan, np.nan) if xy is None else xy
        err = None
        if self.predictions is not None and not np.isnan(self.predictions[row]).all():
            err = float(evaluate.per_image(self.predictions[row:row + 1], ds.keypoints[row:row + 1])[0])
            self.errors[row] = err
        self.dataset_panel.model.row_changed(row, err)
        self._split_kp_cache = None
        if self.row != row or self.view_mode != "dataset":
            # an undo/redo of another face: bring that face into view (showing all splits
            # if the filter hides it)
            if not self.dataset_panel.select_row(row):
                self.dataset_panel.set_split("all")
                self.dataset_panel.select_row(row)
            if self.view_mode != "dataset":
                self.show_row(row)
        else:
            self.canvas.set_truth(ds.keypoints[row])
            self._update_kp_view()

    # ======================================================================================
    # photos
    def open_photo(self, path: str | Path) -> None:
        from core import faces

        path = Path(path)
        self.statusBar().showMessage(f"Opening {path.name}…")
        try:
            image = faces.load_photo(path)
        except Exception as exc:  # DataError: one line for the user
            self.show_error(str(exc))
            return
        self.photo = {"path": path, "image": image, "array": np.asarray(image), "faces": [],
                      "message": ""}
        self.view_mode = "photo"
        self.act_draw_box.setEnabled(True)
        self.canvas.show_photo(self.photo["array"], [])
        self._update_title()
        app_settings.add_recent_file(path)
        self._predict_photo()

    def _predict_photo(self, boxes=None) -> None:
        photo = self.photo
        predictor = self.predictor
        if predictor is not None:
            self._busy_add("photo")
            def job(progress, image=photo["image"], boxes=boxes):
                return predictor.predict_photo(image, boxes=boxes)

            self.engine.submit("photo", job, token=(photo["path"], boxes is not None),
                               priority=EngineThread.PRIORITY_NOW)
            self.statusBar().showMessage(f"Finding and predicting faces in {photo['path'].name}…")
        else:
            # no model (yet): find the faces without TensorFlow and show their boxes
            def job(progress, image=photo["image"], boxes=boxes):
                from core.faces import find_faces, to_gray

                found = boxes if boxes is not None else find_faces(to_gray(image))
                return [(b, None) for b in found]

            token = (photo["path"], boxes is not None)
            self._start_task("photo", job, lambda result, t=token: self._photo_predicted(t, result),
                             lambda msg: self.show_error(msg))

    def _photo_predicted(self, token, result) -> None:
        path, manual = token
        if self.photo is None or self.photo["path"] != path:
            return
        if isinstance(result, list):           # detection only
            found = [(b.as_list(), None) for b, _ in result]
            message = "" if found else "no face found"
        else:                                  # core.predict PhotoResult
            found = [(f.box.as_list(), np.asarray(f.keypoints)) for f in result.faces]
            message = getattr(result, "message", "") or ("" if found else "no face found")
        if manual:
            self.photo["faces"] = self.photo["faces"] + found
        else:
            self.photo["faces"] = found
        self.photo["message"] = message
        if self.view_mode == "photo":
            self.canvas.show_photo(self.photo["array"], self.photo["faces"])
        name = path.name
        n = len(self.photo["faces"])
        if n == 0:
            self.canvas.set_box_mode(True)
            self.act_draw_box.setChecked(True)
            self.statusBar().showMessage(
                f"No face found in {name}: drag a square around a face to predict inside it")
        else:
            note = "" if self.predictor is not None else \
                " (no model yet: boxes only — train or open a model to see keypoints)"
            self.statusBar().showMessage(f"{name}: {n} face{'s' if n != 1 else ''}{note}. "
                                         "Press B to draw a box around a face it missed.")
        self.photoShown.emit()

    def _box_drawn(self, box) -> None:
        if self.photo is None:
            return
        from core.faces import Box

        b = Box(*box)
        self.act_draw_box.setChecked(False)
        self.canvas.set_box_mode(False)
        self._predict_photo(boxes=[b])

    # ======================================================================================
    # files: open, save, export
    def open_path(self, path: str | Path) -> None:
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix in MODEL_SUFFIXES:
            self.load_model(path)
        elif suffix in DATASET_SUFFIXES:
            if self.confirm_discard_edits():
                self.load_dataset(path)
        else:
            self.open_photo(path)

    def open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a photo, dataset or model",
                                              self._last_dir(), OPEN_FILTER)
        if path:
            self._remember_dir(path)
            self.open_path(path)

    def open_dataset_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a dataset", self._last_dir(),
                                              "Datasets (*.npz *.csv)")
        if path:
            self._remember_dir(path)
            self.open_path(path)

    def open_model_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a model", self._last_dir(),
                                              "Keras models (*.keras)")
        if path:
            self._remember_dir(path)
            self.load_model(path)

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        files = app_settings.recent_files()
        for f in files:
            act = self.recent_menu.addAction(f)
            act.triggered.connect(lambda _=False, f=f: self.open_path(f))
        if files:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear list", app_settings.clear_recent_files)
        else:
            self.recent_menu.addAction("(none)").setEnabled(False)

    def _last_dir(self) -> str:
        return str(app_settings.settings().value("last_dir", str(Path.home())))

    def _remember_dir(self, path: str) -> None:
        app_settings.settings().setValue("last_dir", str(Path(path).parent))

    def save_dataset(self) -> bool:
        from core.resources import DEFAULT_DATASET

        if self.dataset is None:
            return False
        path = self.dataset_path
        if path is None or path.suffix.lower() != ".npz" or \
                path.resolve() == Path(DEFAULT_DATASET).resolve():
            return self.save_dataset_as()   # never overwrite the shipped dataset
        return self.write_dataset(path)

    def save_dataset_as(self) -> bool:
        if self.dataset is None:
            return False
        start = str(Path(self._last_dir()) / "faces-edited.npz")
        path, _ = QFileDialog.getSaveFileName(self, "Save dataset as", start, "Dataset (*.npz)")
        if not path:
            return False
        if not path.lower().endswith(".npz"):
            path += ".npz"
        self._remember_dir(path)
        return self.write_dataset(Path(path), adopt=True)

    def write_dataset(self, path: Path, adopt: bool = True) -> bool:
        """Write the dataset (atomically, via core.data). ``adopt``: it becomes the file the
        window edits and the undo stack is marked clean."""
        from core import data

        path = Path(path)
        self.statusBar().showMessage(f"Saving {path.name}…")
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            data.save(self.dataset, path)
        except Exception as exc:
            self.show_error(f"Could not save {path}: {exc}")
            return False
        finally:
            QApplication.restoreOverrideCursor()
        if adopt:
            self.dataset_path = path
            self.undo_stack.setClean()
            self._update_title()
            app_settings.add_recent_file(path)
        self.statusBar().showMessage(f"Saved {len(self.dataset)} faces to {path}", 8000)
        return True

    def export_kaggle_csv(self) -> None:
        if self.dataset is None:
            return
        start = str(Path(self._last_dir()) / "training.csv")
        path, _ = QFileDialog.getSaveFileName(self, "Export as Kaggle CSV", start,
                                              "Kaggle CSV (*.csv)")
        if path:
            if not path.lower().endswith(".csv"):
                path += ".csv"
            self._remember_dir(path)
            self.write_dataset(Path(path), adopt=False)

    def export_view(self, path: str | Path | None = None) -> Path | None:
        from core.fileio import atomic_path

        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Export the view as PNG",
                                                  str(Path(self._last_dir()) / "view.png"),
                                                  "PNG image (*.png)")
            if not path:
                return None
        path = Path(path)
        image = self.canvas.render_image()
        with atomic_path(path) as tmp:
            if not image.save(str(tmp), "PNG"):
                raise OSError(f"could not write {path}")
        self.statusBar().showMessage(f"Saved the view to {path}", 5000)
        return path

    def export_predictions(self, path: str | Path | None = None) -> Path | None:
        from . import exports

        if path is None:
            default = "photo-keypoints" if self.view_mode == "photo" else "predictions"
            path, _ = QFileDialog.getSaveFileName(
                self, "Export predictions", str(Path(self._last_dir()) / f"{default}.csv"),
                "CSV (*.csv);;JSON (*.json)")
            if not path:
                return None
        path = Path(path)
        try:
            if self.view_mode == "photo" and self.photo is not None:
                exports.write_photo_predictions(path, self.photo["path"], self.photo["faces"])
            else:
                if self.predictions is None or np.isnan(self.predictions).all():
                    self.show_error("No predictions yet: load or train a model first")
                    return None
                exports.write_dataset_predictions(path, self.dataset, self.predictions,
                                                  self.errors)
        except Exception as exc:
            self.show_error(f"Could not write {path}: {exc}")
            return None
        self.statusBar().showMessage(f"Saved predictions to {path}", 5000)
        return path

    def export_loss_curve(self, path: str | Path | None = None) -> Path | None:
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Export the loss curve",
                                                  str(Path(self._last_dir()) / "loss.png"),
                                                  "PNG image (*.png)")
            if not path:
                return None
        path = self.training_panel.save_plot_png(path)
        self.statusBar().showMessage(f"Saved the loss curve to {path}", 5000)
        return path

    # ======================================================================================
    # drag and drop
    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        for url in event.mimeData().urls():
            if url.isLocalFile():
                self.open_path(url.toLocalFile())
                event.acceptProposedAction()
                return

    # ======================================================================================
    # misc
    def _hovered(self, text: str) -> None:
        if text:
            self.statusBar().showMessage(text)

    def _training_state(self, running: bool) -> None:
        self.act_train.setEnabled(not running)
        self.act_stop.setEnabled(running)
        if running:
            self._busy_add("training")
        else:
            self._busy_done("training")

    def _update_title(self) -> None:
        title = "facekp"
        if self.view_mode == "photo" and self.photo is not None:
            title += f" — {self.photo['path'].name}"
        elif self.dataset is not None:
            title += f" — {self._dataset_label()}[*]"
            if self.row is not None:
                title += f" · face {self.row}"
        self.setWindowTitle(title if "[*]" in title else title + "[*]")

    def show_error(self, message: str) -> None:
        """Errors a person can act on: one line in the status bar (and stderr)."""
        import sys

        self.statusBar().showMessage(message, 15000)
        print(f"facekp-gui: {message}", file=sys.stderr)

    def about(self) -> None:
        QMessageBox.about(
            self, "About facekp",
            "<b>facekp</b>: facial keypoint detection.<br><br>The embedded dataset is derived "
            "from frames of the YouTube Faces dataset labelled with 68 landmarks (public "
            "udacity/P1_Facial_Keypoints repository, MIT licence); the rights to the images "
            "themselves are not stated there, so it is for development and demonstration.")

    def confirm_discard_edits(self) -> bool:
        """True when there are no unsaved edits, or the user saved or discarded them."""
        if self.undo_stack.isClean():
            return True
        answer = self.ask_unsaved()
        if answer == QMessageBox.StandardButton.Save:
            return self.save_dataset()
        return answer == QMessageBox.StandardButton.Discard

    def ask_unsaved(self):
        """The question asked about unsaved edits (tests replace it)."""
        return QMessageBox.question(
            self, "Unsaved edits",
            f"The dataset has {self.undo_stack.index()} unsaved edit(s). Save them?",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
            | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Save)

    # --- state ------------------------------------------------------------------------------
    def _restore_state(self) -> None:
        s = app_settings.settings()
        geometry = s.value("window/geometry")
        state = s.value("window/state")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        if isinstance(state, QByteArray):
            self.restoreState(state)
        for act, key in ((self.act_truth, "truth"), (self.act_pred, "prediction"),
                         (self.act_lines, "lines"), (self.act_boxes, "boxes"),
                         (self.act_smooth, "smooth")):
            v = s.value(f"view/{key}")
            if v is not None:
                act.setChecked(str(v).lower() in ("true", "1"))

    def _save_state(self) -> None:
        s = app_settings.settings()
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/state", self.saveState())
        for act, key in ((self.act_truth, "truth"), (self.act_pred, "prediction"),
                         (self.act_lines, "lines"), (self.act_boxes, "boxes"),
                         (self.act_smooth, "smooth")):
            s.setValue(f"view/{key}", act.isChecked())
        s.sync()

    def closeEvent(self, event) -> None:
        if not self._closing and not self.confirm_discard_edits():
            event.ignore()
            return
        self._closing = True
        if self.training_panel.is_running():
            self.statusBar().showMessage("Stopping training (the best model is kept)…")
            QApplication.processEvents()
        # Wait for every thread: destroying a running QThread would abort the process.
        self.training_panel.shutdown()
        self.engine.shutdown()
        for task in list(self._tasks):
            task.wait()
        self._save_state()
        super().closeEvent(event)
