"""The main window: it assembles the parts and passes news between them.

- :mod:`facekp.gui.session` holds the state (dataset, predictions, current face, photo), no Qt;
- :mod:`facekp.gui.actions` declares every action; menus, toolbar and enabled state come from it;
- :mod:`facekp.gui.files` opens, saves and exports; :mod:`facekp.gui.photos` is photo mode;
  :mod:`facekp.gui.models` loads models and predicts; :mod:`facekp.gui.editing` edits with undo;
- :mod:`facekp.gui.workers` runs everything slow off the GUI thread as jobs (TensorFlow is imported
  by its engine thread); training runs in the training panel's thread.

The window shows at once with a status message; each part fills in when it is ready.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from PySide6.QtCore import QTimer, Signal
from PySide6.QtGui import QUndoStack
from PySide6.QtWidgets import QLabel, QMainWindow, QMessageBox, QProgressBar

from . import actions as app_actions
from . import settings as app_settings
from .canvas import Canvas
from .correct import Correct
from .datasets import Datasets
from .dataset_panel import DatasetPanel, KeypointErrorView
from .editing import Editing
from .files import Files, kind_of
from .model_list import ModelList
from .models import Models
from .photo_faces import PhotoFaces
from .photos import Photos
from .recovery import Recovery, unsaved_text
from .review import Review
from .session import Session
from .training_panel import TrainingPanel
from .video import Video
from .window_layout import LEFT, RIGHT, WindowLayout, add_dock, scrollable
from .workers import Jobs


@dataclass
class Options:
    data: str | None = None
    model: str | None = None
    image: int | None = None
    photo: str | None = None
    split: str | None = None
    queue: str | None = None           # a review queue to start on (facekp.core.quality.review.KINDS)
    keypoints: str | None = None       # open the dataset in this keypoint set (kaggle15, ibug68)
    #: an interactive session: the saved layout is restored, and layout, view toggles, recent
    #: files and folders are written to the person's settings. Off for --screenshot and tests.
    remember: bool = True


GIL_SWITCH_S = 0.001


class MainWindow(QMainWindow):
    """The app. ``idle`` is emitted whenever no loading, prediction or training is pending."""

    idle = Signal()
    modelChanged = Signal(object)      # path or None
    photoShown = Signal()
    badOption = Signal(str)            # --data, --photo or --image could not be honoured

    def __init__(self, options: Options | None = None):
        super().__init__()
        # Background threads (loading, prediction) hand the GIL back to this thread within
        # 1 ms instead of Python's 5 (the gaps left opening a big dataset are GIL waits;
        # benchmarks/gui_responsiveness.py --big, README).
        sys.setswitchinterval(GIL_SWITCH_S)
        self.options = options or Options()
        self.setObjectName("facekp-main")
        self.setAcceptDrops(True)
        self.session = Session()
        self.predictor = None
        self.model_path: Path | None = None
        self.engine_info: dict | None = None
        self.engine_failed = False
        self._loading: set[str] = set()     # "engine", "dataset" and "training" besides jobs
        self._closing = self._started = False
        self.jobs = Jobs(self)
        self.undo_stack = QUndoStack(self)
        self.undo_stack.cleanChanged.connect(self._clean_changed)
        self._make_parts()
        self._make_docks()
        self.acts = app_actions.make_actions(self)
        app_actions.make_menus(self, self.acts, self.window_layout.docks)
        self.toolbar = app_actions.make_toolbar(self, self.acts)
        self._make_statusbar()
        self._connect()
        self.update_title()
        self.models.update_state()
        self.model_list.refresh()
        self.window_layout.remember_default()
        if self.options.remember and app_settings.restore_window(self, self._toggles()):
            self.window_layout.wanted = {}        # the restored widths are kept, once shown

    # --- construction --------------------------------------------------------------------
    def _make_parts(self) -> None:
        self.files = Files(self, self.options.remember)
        self.photos = Photos(self)
        self.video, self.photo_faces = Video(self), PhotoFaces(self)
        self.models = Models(self)
        self.datasets = Datasets(self)
        self.editing = Editing(self)
        self.canvas = Canvas(self)
        self.setCentralWidget(self.canvas)
        self.dataset_panel = DatasetPanel(self)
        self.kp_view = KeypointErrorView(self)
        self.training_panel = TrainingPanel(self, remember=self.options.remember)
        self.training_panel.data_provider = self.training_data
        self.review, self.correct, self.recovery = Review(self), Correct(self), Recovery(self)
        self.model_list = ModelList(self)

    def _make_docks(self) -> None:
        dock = partial(add_dock, self)                  # (title, name, widget, area)
        self.dataset_dock = dock("Dataset", "dataset-dock", self.dataset_panel, LEFT)
        self.kp_dock = dock("Keypoint errors", "keypoint-dock", self.kp_view, LEFT)
        self.training_dock = dock("Training", "training-dock", scrollable(self.training_panel),
                                  RIGHT)
        self.review_dock = dock("Review", "review-dock", self.review.panel, RIGHT)
        self.tabifyDockWidget(self.training_dock, self.review_dock)
        self.review_dock.raise_()
        self.models_dock = dock("Models", "models-dock", self.model_list, RIGHT)
        self.window_layout = WindowLayout(self, (self.dataset_dock, self.kp_dock,
                                                 self.training_dock, self.review_dock,
                                                 self.models_dock))

    def _make_statusbar(self) -> None:
        sb = self.statusBar()
        self.engine_label = QLabel("Loading TensorFlow…")
        self.zoom_label = QLabel("")
        self.busy_bar = QProgressBar()
        self.busy_bar.setRange(0, 0)
        self.busy_bar.setMaximumSize(120, 14)
        for widget in (self.busy_bar, self.engine_label, self.zoom_label):
            sb.addPermanentWidget(widget)
        sb.showMessage("Starting…")

    def _connect(self) -> None:
        c, e = self.canvas, self.editing
        c.pointMoved.connect(e.point_moved)
        c.truthClicked.connect(self.correct.truth_clicked)
        c.pointAddRequested.connect(e.add_requested)
        c.pointDeleteRequested.connect(e.delete_requested)
        c.boxDrawn.connect(self.photos.box_drawn)
        c.hovered.connect(lambda text: text and self.statusBar().showMessage(text))
        c.zoomChanged.connect(lambda zoom: self.zoom_label.setText(f"{zoom * 100:.0f}%"))
        p = self.dataset_panel
        p.currentChanged.connect(self.show_row)
        p.table.clicked.connect(self._table_clicked)
        p.predictRequested.connect(self.models.predict_dataset)
        p.splitChanged.connect(lambda _split: self.update_keypoint_errors(split_changed=True))
        self.kp_view.picked.connect(self.correct.pick)
        t = self.training_panel
        t.modelTrained.connect(self._model_trained)
        self.modelChanged.connect(t.set_loaded_model)
        for signal in (self.modelChanged, t.modelTrained):
            signal.connect(self.model_list.refresh)
        p.currentChanged.connect(self.model_list.face_changed)
        t.trainingStateChanged.connect(self._training_state)
        t.statusMessage.connect(lambda text: self.statusBar().showMessage(text, 8000))
        j = self.jobs
        j.changed.connect(self._busy_changed)
        j.error.connect(self.show_error)
        j.engine.status.connect(self.models.engine_status)
        j.engine.ready.connect(self.models.engine_ready)
        j.engine.loadFailed.connect(self.models.engine_failed)
        for part in (self.review, self.correct, self.recovery, self.photos):
            part.connect()

    def _clean_changed(self, clean: bool) -> None:  # a method: disconnected when we are gone
        self.setWindowModified(not clean)
        self.update_enabled()                        # Save: only with something to save

    # --- state the tests and parts read ----------------------------------------------------
    dataset = property(lambda self: self.session.dataset)
    dataset_path = property(lambda self: self.session.dataset_path)
    predictions = property(lambda self: self.session.predictions)
    errors = property(lambda self: self.session.errors)
    row = property(lambda self: self.session.row)
    view_mode = property(lambda self: self.session.view_mode)
    photo = property(lambda self: self.session.photo)
    engine = property(lambda self: self.jobs.engine)

    @property
    def busy(self) -> set[str]:
        return self.jobs.busy | self._loading

    # --- startup and busy ------------------------------------------------------------------
    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not self._started:
            self._started = True
            QTimer.singleShot(0, self.start_loading)

    def start_loading(self) -> None:
        """Kick off background loading (called once the window is on screen)."""
        self.set_loading("engine", True)
        self.jobs.engine.start()
        from facekp.core.resources import DEFAULT_DATASET

        self.load_dataset(self.options.data or DEFAULT_DATASET, initial=True)
        # pyqtgraph takes a moment to import: after the first paint
        QTimer.singleShot(30, self.training_panel.ensure_plot)
        if self.options.photo:
            QTimer.singleShot(0, lambda: self.open_photo(self.options.photo, option=True))

    def set_loading(self, name: str, on: bool) -> None:
        (self._loading.add if on else self._loading.discard)(name)
        self._busy_changed()

    def _busy_changed(self) -> None:
        self.busy_bar.setVisible(bool(self.busy))
        if not self.busy:
            QTimer.singleShot(0, self._emit_idle)

    def _emit_idle(self) -> None:
        if not self.busy and not self._closing:
            self.idle.emit()

    # --- model ------------------------------------------------------------------------
    def update_enabled(self) -> None:
        app_actions.update_enabled(self)

    # --- dataset ----------------------------------------------------------------------------
    def load_dataset(self, path: str | Path, initial: bool = False) -> None:
        self.datasets.load(path, initial)

    def training_data(self):
        return self.datasets.training_data()

    # --- navigation ---------------------------------------------------------------------------
    def step(self, delta: int) -> None:
        if self.session.view_mode == "photo":
            return self.back_to_dataset()
        self.dataset_panel.step(delta)

    def select_row(self, row: int) -> None:
        """Select ``row`` in the table, showing every split if the filter hides it."""
        if not self.dataset_panel.select_row(row):
            self.dataset_panel.set_split("all")
            self.dataset_panel.select_row(row)

    def show_row(self, row: int) -> None:
        """Show dataset face ``row`` with its truth and prediction (predicted now if not yet)."""
        s = self.session
        if s.dataset is None or not 0 <= row < len(s):
            return
        s.row, s.view_mode = row, "dataset"
        self.video.leave()
        self.photos.set_box_mode(False)
        pred = s.predictions[row] if s.predictions is not None else None
        self.canvas.show_face(s.dataset.images[row], s.dataset.keypoints[row], pred,
                              editable=True, hidden=s.dataset.hidden[row])
        self.update_title()
        self.update_keypoint_errors()
        self.update_enabled()
        if self.predictor is not None and pred is not None and not s.has_prediction(row):
            self.models.predict_rows([row])
        self.statusBar().showMessage(s.face_text(row))

    def _table_clicked(self, _index) -> None:
        row = self.dataset_panel.current_row()
        if self.session.view_mode == "photo" and row is not None:  # clicked again: its face
            self.show_row(row)

    def back_to_dataset(self) -> None:
        if self.session.view_mode == "dataset" or self.session.dataset is None:
            return
        self.show_row(self.session.row if self.session.row is not None else 0)

    def open_path(self, path: str | Path) -> None:
        kind = kind_of(path)
        if kind == "model":
            self.models.load(path)
        elif kind == "dataset":
            if self.confirm_discard_edits():
                self.load_dataset(path)
        elif kind == "video":
            self.video.open(path)
        else:
            self.open_photo(path)

    def open_photo(self, path: str | Path, option: bool = False) -> None:
        self.video.leave()
        self.photos.open(path, option)

    def update_keypoint_errors(self, split_changed: bool = False) -> None:
        """The Keypoint errors dock: the face on screen (and its keypoint confidences) and its
        split; a photo's face against the ground truth beside it; nothing for a video."""
        s = self.session
        self.kp_view.set_keypoint_set(s.keypoint_set if s.view_mode == "dataset"
                                      else s.model_set or s.keypoint_set)
        self.kp_view.show_errors_of(self)  # (anew each time: ``split_changed`` needs no cache)
        confidence = self.review.face_confidence()
        self.kp_view.set_confidence(*confidence)
        self.canvas.set_point_confidence(confidence[0] if s.view_mode == "dataset" else None)

    # --- training -----------------------------------------------------------------------------
    def start_training(self) -> bool:
        """Model > Start training: the Training dock comes into view, then the run starts."""
        self.training_dock.show()
        self.training_dock.raise_()
        return self.training_panel.start()

    def _training_state(self, running: bool) -> None:
        if running:
            self.training_dock.show()
            self.training_dock.raise_()
        self.update_enabled()
        self.set_loading("training", running)

    def _model_trained(self, path: str) -> None:
        if not self._closing:
            self.models.trained(path)

    # --- questions and messages ------------------------------------------------------------
    def update_title(self) -> None:
        """One pattern in every mode: "facekp — DATASET[*] · what is on screen" ("face 12",
        a photo's or a video's name); the * of unsaved edits stands by the dataset they are
        of, whatever is on screen."""
        s, reader = self.session, self.video.reader
        shown = {"photo": s.photo and s.photo.path.name,
                 "video": reader and reader.path.name}.get(s.view_mode) or \
            (f"face {s.row}" if s.view_mode == "dataset" and s.row is not None else None)
        parts = ([f"{s.label}[*]"] if s.dataset is not None else []) + ([shown] if shown else [])
        title = "facekp — " + " · ".join(parts) if parts else "facekp[*]"
        self.setWindowTitle(title if "[*]" in title else title + "[*]")

    def show_error(self, message: str, option: bool = False) -> None:
        """Errors a person can act on, in one line (status bar, stderr); ``option``: badOption too."""
        self.statusBar().showMessage(message, 15000)
        print(f"facekp-gui: {message}", file=sys.stderr)
        if option:
            self.badOption.emit(message)

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
            return self.files.save_dataset()
        if answer == QMessageBox.StandardButton.Discard:
            self.recovery.discard()
        return answer == QMessageBox.StandardButton.Discard

    def ask_unsaved(self):
        """The question asked about unsaved edits (tests replace it)."""
        B = QMessageBox.StandardButton
        return QMessageBox.question(self, "Unsaved edits", unsaved_text(self),
                                    B.Save | B.Discard | B.Cancel, B.Save)

    def ask_switch_model(self, text: str) -> bool:
        """Whether to use a newly trained model (tests and --screenshot replace it)."""
        B = QMessageBox.StandardButton
        return QMessageBox.question(self, "Use the new model?", text, B.Yes | B.No,
                                    B.No) == B.Yes

    # --- settings, drag and drop, close ---------------------------------------------------
    def _toggles(self) -> dict:
        return {key: self.acts[name] for key, name in app_actions.REMEMBERED_TOGGLES.items()}

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        for url in event.mimeData().urls():
            if url.isLocalFile():
                self.open_path(url.toLocalFile())
                event.acceptProposedAction()
                return

    def closeEvent(self, event) -> None:
        if not self._closing and not self.confirm_discard_edits():
            event.ignore()
            return
        self._closing = True
        if self.training_panel.is_running():
            self.statusBar().showMessage("Stopping training (the best model is kept)…")
        # wait for every thread: destroying a running QThread would abort the process
        self.training_panel.shutdown()
        self.jobs.shutdown()
        if self.options.remember:
            app_settings.save_window(self, self._toggles())
        super().closeEvent(event)
