"""The training dock: settings, Start/Stop, the live loss plot and progress with ETA.

The run itself is a :class:`facekp.gui.workers.TrainingThread`; the plot is
:class:`facekp.gui.loss_plot.LossPlot`. The panel never writes over a model file it did not create
in this run of the app.
"""
from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout,
                               QHBoxLayout, QLabel, QLineEdit, QProgressBar, QPushButton,
                               QSpinBox, QToolButton, QVBoxLayout, QWidget)

from facekp.core.progress import format_seconds

from . import settings as app_settings
from .loss_plot import LossPlot
from .workers import TrainingThread

ENDINGS = {"completed": "Training finished",
           "early_stop": "Training stopped early (no improvement)",
           "stopped": "Training stopped", "error": "Training failed"}


#: Fine-tuning settings ("Continue from the loaded model"), chosen by measuring one epoch of
#: each candidate on the shipped model (validation RMSE as training measures it, shipped
#: 1.477 px): lr 1e-3 -> 1.675, 3e-4 -> 1.530, 1e-4 -> 1.502, 3e-5 -> 1.484, 1e-5 -> 1.477
#: with the heatmap's own augmentation; 1e-4 without augmentation -> 1.463 (then 1.465 and
#: 1.477 in epochs 2 and 3: the best epoch is kept). README, Training in the app.
FINE_TUNE = {"epochs": 3, "learning_rate": 1e-4, "patience": 2, "augment": False,
             "lr_schedule": "constant"}


class TrainingPanel(QWidget):
    """Controls and live plot. Emits ``modelTrained(path)`` when a run leaves a model."""

    modelTrained = Signal(str)
    trainingStateChanged = Signal(bool)   # running?
    statusMessage = Signal(str)

    def __init__(self, parent=None, remember: bool = True):
        super().__init__(parent)
        self.remember = remember          # False: the person's settings are never written
        self.thread: TrainingThread | None = None
        self._running = False       # from start until the run's end is shown (its thread may
                                    # still be returning then)
        self.engine_info: dict | None = None
        self.data_provider = None   # callable -> (train Dataset, val Dataset, note) or None
        self.created: set[Path] = set()   # model files this panel wrote in this run
        self.loaded_model: Path | None = None   # the window's model (to fine-tune)
        self._reset_run()
        form = self._make_form()
        buttons = self._make_buttons()
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("idle")
        self.status = QLabel("Train a model on the dataset's train split; validation on its "
                             "val split.")
        self.status.setWordWrap(True)
        s = app_settings.settings()
        self.loss = LossPlot(self, _bool(s.value("training/log_scale", True)),
                             _bool(s.value("training/ignore_outliers", True)))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addLayout(self._make_toggles())
        layout.addWidget(self.loss, 1)
        self._clock = QTimer(self)
        self._clock.setInterval(1000)
        self._clock.timeout.connect(self._update_progress)

    def _make_form(self) -> QFormLayout:
        self.arch = QComboBox()
        self.arch.addItem("seed")
        self.arch.currentTextChanged.connect(self._arch_changed)
        self.epochs = _spin(1, 100000, 100)
        self.batch_size = _spin(1, 4096, 64)
        self.learning_rate = QDoubleSpinBox()
        self.learning_rate.setDecimals(6)
        self.learning_rate.setRange(1e-6, 1.0)
        self.learning_rate.setSingleStep(1e-4)
        self.learning_rate.setValue(1e-3)
        self.patience = _spin(0, 100000, 10)
        self.patience.setSpecialValueText("off")
        self.patience.setToolTip("Stop when validation RMSE has not improved for this many epochs")
        self.augment = QComboBox()
        for text, value in (("architecture default", None), ("on", True), ("off", False)):
            self.augment.addItem(text, value)
        self.out_path = QLineEdit()
        self.out_path.setPlaceholderText("a new file in the app's models folder")
        browse = QToolButton()
        browse.setText("…")
        browse.clicked.connect(self._browse_out)
        out_row = QHBoxLayout()
        out_row.setContentsMargins(0, 0, 0, 0)
        out_row.addWidget(self.out_path, 1)
        out_row.addWidget(browse)
        self.fine_tune = QCheckBox("Continue from the loaded model")
        self.fine_tune.setEnabled(False)
        self.fine_tune.toggled.connect(self._fine_tune_toggled)
        self.data_label = QLabel("no dataset yet")
        self.data_label.setWordWrap(True)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        for label, field in (("Start from", self.fine_tune), ("Architecture", self.arch),
                             ("Epochs", self.epochs),
                             ("Batch size", self.batch_size), ("Learning rate", self.learning_rate),
                             ("Patience", self.patience), ("Augmentation", self.augment),
                             ("Save model to", out_row), ("Data", self.data_label)):
            form.addRow(label, field)
        return form

    def _make_buttons(self) -> QHBoxLayout:
        self.start_button = QPushButton("Start training")
        # a lambda: clicked(bool) would otherwise arrive as start's first argument
        self.start_button.clicked.connect(lambda: self.start())
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop after the current batch; the best model so far is kept")
        self.stop_button.clicked.connect(lambda: self.stop())
        self.stop_button.setEnabled(False)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button, 1)
        buttons.addWidget(self.stop_button)
        return buttons

    def _make_toggles(self) -> QHBoxLayout:
        self.log_scale = QCheckBox("Log scale")
        self.ignore_outliers = QCheckBox("Ignore outliers")
        self.ignore_outliers.setToolTip("Scale the y axis to the bulk of the points, not the "
                                        "first few batches")
        self.log_scale.setChecked(self.loss.log_scale)
        self.ignore_outliers.setChecked(self.loss.ignore_outliers)
        self.log_scale.toggled.connect(lambda on: self._toggled("log_scale", on))
        self.ignore_outliers.toggled.connect(lambda on: self._toggled("ignore_outliers", on))
        toggles = QHBoxLayout()
        toggles.addWidget(self.log_scale)
        toggles.addWidget(self.ignore_outliers)
        toggles.addStretch(1)
        return toggles

    def _toggled(self, key: str, on: bool) -> None:
        if self.remember:
            app_settings.settings().setValue(f"training/{key}", bool(on))
        (self.loss.set_log_scale if key == "log_scale" else self.loss.set_ignore_outliers)(on)

    def _reset_run(self) -> None:
        self.info: dict = {}
        self.steps = 0
        self.last_batch = (0, 0)
        self.started_at: float | None = None
        self.first_batch_at: float | None = None
        self.batches_done = 0
        self.fitting_head = False   # the run is fitting its keypoint confidence head

    # --- plot -------------------------------------------------------------------------------
    def ensure_plot(self) -> None:
        """Create the loss plot (imports pyqtgraph: call once the window is shown)."""
        self.loss.ensure()
        self._update_title()

    def save_plot_png(self, path: str | Path) -> Path:
        return self.loss.save_png(path)

    def _update_title(self) -> None:
        parts = []
        if self.started_at is not None:
            parts.append(f"elapsed {format_seconds(time.monotonic() - self.started_at)}")
            if self.is_running() and not self.stopping():    # no ETA once Stop is asked
                parts.append(f"ETA {format_seconds(self.eta())}")
        best = self.loss.best
        if best is not None:
            parts.append(f"best val {best['val_rmse_px']:.2f} px @ epoch {best['epoch']}")
        self.loss.set_title("  ·  ".join(parts) if parts else "training loss")

    # --- engine and data -------------------------------------------------------------------
    def set_engine_info(self, info: dict) -> None:
        self.engine_info = info
        current = self.arch.currentText()
        self.arch.blockSignals(True)
        self.arch.clear()
        for name in info.get("architectures") or ["seed"]:
            self.arch.addItem(name)
        self.arch.setCurrentIndex(max(0, self.arch.findText(current)))
        self.arch.blockSignals(False)
        self._arch_changed(self.arch.currentText())
        if info.get("training"):
            self.start_button.setEnabled(False)
            self.status.setText(info["training"])

    def _arch_changed(self, name: str) -> None:
        if not self.engine_info:
            return
        defaults = dict(self.engine_info.get("train_defaults") or {})
        defaults.update(self.engine_info.get("arch_defaults", {}).get(name, {}))
        for key, box, kind in (("epochs", self.epochs, int), ("batch_size", self.batch_size, int),
                               ("learning_rate", self.learning_rate, float),
                               ("patience", self.patience, int)):
            if key in defaults:
                box.setValue(kind(defaults[key]))
        self.augment.setCurrentIndex(0)

    def _fine_tune_toggled(self, on: bool) -> None:
        """"Continue from the loaded model": the Architecture box shows the loaded model's
        (greyed: the run is that one), and the settings become :data:`FINE_TUNE` (measured
        not to make the shipped model worse); unticked, the architecture's defaults again."""
        self.arch.setEnabled(not on and not self.is_running())
        if not on:
            self._arch_changed(self.arch.currentText())
            return
        from facekp.core.quality.model_info import describe_model

        arch = describe_model(self.loaded_model).arch if self.loaded_model else None
        if arch:
            if self.arch.findText(arch) < 0:
                self.arch.addItem(arch)
            self.arch.blockSignals(True)       # the fine-tuning settings, not its defaults
            self.arch.setCurrentText(arch)
            self.arch.blockSignals(False)
        self.epochs.setValue(FINE_TUNE["epochs"])
        self.learning_rate.setValue(FINE_TUNE["learning_rate"])
        self.patience.setValue(FINE_TUNE["patience"])
        self.augment.setCurrentIndex(self.augment.findData(FINE_TUNE["augment"]))

    def set_loaded_model(self, path) -> None:
        """The window's model changed (None: no model): what "continue from" starts from."""
        self.loaded_model = None if path is None else Path(path)
        self.fine_tune.setEnabled(self.loaded_model is not None and not self.is_running())
        name = self.loaded_model.name if self.loaded_model else "no model loaded"
        self.fine_tune.setToolTip(f"Start from the weights of {name} (a fresh optimizer with "
                                  "these settings) on the dataset as edited; the new model is "
                                  "compared with it when it is done")
        if self.loaded_model is None:
            self.fine_tune.setChecked(False)

    def fine_tune_from(self) -> Path | None:
        """The model the next run starts from, when "continue from" is ticked."""
        return self.loaded_model if self.fine_tune.isChecked() else None

    def set_data_description(self, text: str) -> None:
        self.data_label.setText(text)

    def config(self) -> dict:
        """The dock's settings as facekp.core.model.train_types.TrainConfig overrides."""
        cfg = {"arch": self.arch.currentText() or "seed", "epochs": self.epochs.value(),
               "batch_size": self.batch_size.value(),
               "learning_rate": float(self.learning_rate.value()),
               "patience": self.patience.value()}
        if self.augment.currentData() is not None:
            cfg["augment"] = bool(self.augment.currentData())
        tuned = self.fine_tune_from()
        if tuned is not None:            # the loaded model's own architecture, when known
            from facekp.core.quality.model_info import describe_model

            arch = describe_model(tuned).arch
            if arch and self.arch.findText(arch) >= 0:
                cfg["arch"] = arch
            cfg["lr_schedule"] = FINE_TUNE["lr_schedule"]
        return cfg

    def _browse_out(self) -> None:
        start = self.out_path.text() or str(app_settings.models_dir())
        path, _ = QFileDialog.getSaveFileName(self, "Save the trained model as", start,
                                              "Keras model (*.keras)")
        if path:
            self.out_path.setText(path if path.endswith(".keras") else path + ".keras")

    def output_path(self) -> Path:
        """The file the next run writes: the one typed, else a new name in the models folder."""
        text = self.out_path.text().strip()
        if text:
            return Path(text)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        tuned = self.fine_tune_from()
        stem = f"{tuned.stem}-tuned" if tuned else self.arch.currentText() or "model"
        base = app_settings.models_dir() / f"{stem}-{stamp}"
        path, n = base.with_suffix(".keras"), 1
        while path.exists():
            n += 1
            path = base.with_name(f"{base.name}-{n}.keras")
        return path

    def refuses(self, out: Path) -> str | None:
        """Why ``out`` may not be written (None: it may): an existing model file is only
        overwritten when this panel created it in this run of the app."""
        if out.exists() and out.resolve() not in self.created:
            return (f"{out} exists and was not trained here: choose a new file name (the app "
                    "never overwrites a model it did not make)")
        return None

    # --- run --------------------------------------------------------------------------------
    def is_running(self) -> bool:
        """A run was started and its end not yet shown (not the thread's own state: the end
        arrives while the thread is still returning, and the window's buttons follow this)."""
        return self._running

    def start(self, *, train=None, val=None, config: dict | None = None,
              out: str | Path | None = None) -> bool:
        """Start a run (datasets default to the window's train/val faces); False if it
        cannot start (running already, no data, an output it may not write)."""
        if self.is_running():
            return False
        if train is None or val is None:
            provided = self.data_provider() if self.data_provider is not None else None
            if provided is None:
                self.status.setText("No dataset to train on yet.")
                return False
            train, val, _ = provided
        cfg = {**self.config(), **(config or {})}
        out = Path(out) if out is not None else self.output_path()
        why = self.refuses(out)
        if why:
            self.status.setText(why)
            self.statusMessage.emit(why)
            return False
        self._release_thread()
        self.ensure_plot()
        self.loss.reset()
        self._reset_run()
        self.started_at = time.monotonic()
        self.planned_epochs = int(cfg.get("epochs", 1))
        self.out = out
        tuned = self.fine_tune_from()
        self.thread = self._make_thread(cfg, train, val, out, tuned)
        self._running = True
        self._set_running_ui(True)
        what = f"Fine-tuning {tuned.name}" if tuned else f"Training {cfg['arch']}"
        self.status.setText(f"{what} on {len(train)} faces, validating on {len(val)}; "
                            f"model → {out}")
        self.loss.redraw()
        self.thread.start()
        self._clock.start()
        self.trainingStateChanged.emit(True)
        return True

    def _make_thread(self, cfg: dict, train, val, out: Path, tuned=None) -> TrainingThread:
        thread = TrainingThread(cfg, train, val, out, parent=self, fine_tune=tuned)
        thread.status.connect(self._thread_status)
        thread.trainingStarted.connect(self._on_started)
        thread.batches.connect(self._on_batches)
        thread.epochDone.connect(self._on_epoch)
        thread.trainingFinished.connect(self._on_finished)
        return thread

    def _release_thread(self) -> None:
        """The previous run's thread goes (it holds nothing big, but they would pile up)."""
        old, self.thread = self.thread, None
        if old is not None:
            old.wait()
            old.setParent(None)   # dropped with the last reference

    def _set_running_ui(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        for w in (self.epochs, self.batch_size, self.learning_rate, self.patience,
                  self.augment, self.out_path):
            w.setEnabled(not running)
        self.fine_tune.setEnabled(not running and self.loaded_model is not None)
        self.arch.setEnabled(not running and not self.fine_tune.isChecked())
        if running:
            self.progress.setRange(0, 0)  # busy until the first batch
            self.progress.setFormat("preparing…")

    def stopping(self) -> bool:
        """Stop was asked for the run that is still ending."""
        return self.thread is not None and bool(getattr(self.thread, "stop_requested", False))

    def stop(self) -> None:
        if self.is_running():
            self.thread.stop()
            self.stop_button.setEnabled(False)
            what = "the keypoint confidence head's fit" if self.fitting_head else \
                "training after the current batch"
            self.progress.setFormat("stopping…" if self.fitting_head
                                    else "stopping after this batch…")
            self.statusMessage.emit(f"Stopping {what}…")
            self._update_title()

    def shutdown(self) -> None:
        """Stop a run and wait for its thread (closing the window): it ends after the current
        batch, or once the model is built when it had not started yet."""
        if self.thread is None:
            return
        if self.thread.isRunning():
            self.thread.stop()
        self.thread.wait()

    # --- thread signals ------------------------------------------------------------------
    def _thread_status(self, text: str) -> None:
        self.fitting_head = text.startswith("Fitting the keypoint confidence head")
        self.status.setText(text)
        self.statusMessage.emit(text)

    def _on_started(self, info: dict) -> None:
        self.info = dict(info)
        self.steps = int(info.get("steps_per_epoch") or 0)
        self.planned_epochs = int(info.get("epochs") or self.planned_epochs)
        self.status.setText(f"Training {info.get('arch', '')}: {info.get('train_faces', '?')} "
                            f"training faces, {info.get('val_faces', '?')} validation faces, "
                            f"{self.steps} batches per epoch.")
        self._update_progress()

    def _on_batches(self, points: list) -> None:
        if self.first_batch_at is None:
            self.first_batch_at = time.monotonic()
        self.loss.add_batches(points, self.steps)
        if points:
            self.last_batch = tuple(points[-1][:2])
        self.batches_done += len(points)
        self._update_progress(title=False)

    def _on_epoch(self, row: dict) -> None:
        self.loss.add_epoch(row)
        self.last_batch = (row["epoch"], self.steps)
        self._update_progress()

    def _on_finished(self, result) -> None:
        """``result``: core's TrainResult, or None when the run could not start."""
        self._clock.stop()
        self.loss.stop()
        self._running = self.fitting_head = False
        self._update_title()
        self._set_running_ui(False)
        reason = result.reason if result is not None else "error"
        path = result.model_path if result is not None else None
        saved = bool(path) and Path(path).exists() and reason != "error"
        text = self._ending(result, reason, saved)
        if saved:
            self.created.add(Path(path).resolve())
        self.progress.setRange(0, 1)
        self.progress.setValue(1 if reason in ("completed", "early_stop") else 0)
        self.progress.setFormat(text.split(":")[0])
        self.status.setText(text + ".")
        self.statusMessage.emit(text)
        self.trainingStateChanged.emit(False)
        if saved and result.best_epoch:
            self.modelTrained.emit(str(path))

    def _ending(self, result, reason: str, saved: bool) -> str:
        """How the run ended, for the dock and the status bar."""
        text = ENDINGS.get(reason, f"Training ended ({reason})")
        if result is not None and result.best_epoch:
            text += (f": best validation RMSE {result.best_val_rmse_px:.2f} px at epoch "
                     f"{result.best_epoch}")
        message = (result.message if result is not None else self.thread.error) or ""
        if message and reason == "error":
            text += f": {message}"
        if reason == "stopped" and not saved:
            text += " before its first epoch ended: no model was written"
        if saved:
            text += f"; model saved to {result.model_path}"
            if reason != "stopped" and self.thread.stop_requested:
                text += ", with no keypoint confidence head (Stop ended its fit)"
        return text

    def eta(self) -> float:
        if not self.steps or self.first_batch_at is None:
            return float("nan")
        epoch, batch = self.last_batch
        done = (epoch - 1) * self.steps + batch
        elapsed = time.monotonic() - self.started_at
        return elapsed / max(1, done) * max(0, self.planned_epochs * self.steps - done)

    def _update_progress(self, title: bool = True) -> None:
        """Progress bar text; the plot's title (a relayout) only when ``title`` (clock, epochs)."""
        if self.is_running() and self.steps:
            epoch, batch = self.last_batch
            total = self.planned_epochs * self.steps
            done = (max(1, epoch) - 1) * self.steps + batch if self.batches_done else 0
            self.progress.setRange(0, total)
            self.progress.setValue(min(done, total))
            if not self.thread.stop_requested:
                self.progress.setFormat(f"epoch {max(1, epoch)}/{self.planned_epochs} · batch "
                                        f"{batch}/{self.steps} · ETA {format_seconds(self.eta())}")
        if title:
            self._update_title()


def _spin(lo: int, hi: int, value: int) -> QSpinBox:
    box = QSpinBox()
    box.setRange(lo, hi)
    box.setValue(value)
    return box


def _bool(v) -> bool:
    if isinstance(v, str):
        return v.lower() in ("1", "true", "yes")
    return bool(v)
