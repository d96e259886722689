"""The training dock: settings, Start/Stop, a live loss plot (pyqtgraph) and progress with ETA.

The plot shows every training batch's RMSE (px) as a faint point at its fractional epoch,
per-epoch training and validation RMSE as lines, and the best epoch so far marked. Points
arrive from :class:`gui.workers.TrainingThread` already coalesced (at most ~10 lists a
second); the plot is redrawn at most every ``REDRAW_INTERVAL_MS``.

pyqtgraph takes a few hundred milliseconds to import, so the plot widget is created after the
window is on screen (:meth:`TrainingPanel.ensure_plot`).
"""
from __future__ import annotations

import math
import time
from datetime import datetime
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout,
                               QHBoxLayout, QLabel, QLineEdit, QProgressBar, QPushButton,
                               QSpinBox, QToolButton, QVBoxLayout, QWidget)

from . import settings as app_settings
from .workers import TrainingThread

REDRAW_INTERVAL_MS = 100
TRAIN_COLOR = (90, 150, 255)
VAL_COLOR = (255, 150, 40)
BATCH_COLOR = (160, 180, 235, 150)
BEST_COLOR = (60, 220, 90)


def format_seconds(seconds: float) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "–"
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class TrainingPanel(QWidget):
    """Controls and live plot. Emits ``modelTrained(path)`` when a run leaves a model."""

    modelTrained = Signal(str)
    trainingStateChanged = Signal(bool)   # running?
    statusMessage = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.thread: TrainingThread | None = None
        self.engine_info: dict | None = None
        self.data_provider = None   # callable -> (train Dataset, val Dataset, description)
        self.plot = None
        self._reset_series()

        # settings
        self.arch = QComboBox()
        self.arch.addItem("seed")
        self.arch.currentTextChanged.connect(self._arch_changed)
        self.epochs = QSpinBox()
        self.epochs.setRange(1, 100000)
        self.epochs.setValue(100)
        self.batch_size = QSpinBox()
        self.batch_size.setRange(1, 4096)
        self.batch_size.setValue(64)
        self.learning_rate = QDoubleSpinBox()
        self.learning_rate.setDecimals(6)
        self.learning_rate.setRange(1e-6, 1.0)
        self.learning_rate.setSingleStep(1e-4)
        self.learning_rate.setValue(1e-3)
        self.patience = QSpinBox()
        self.patience.setRange(0, 100000)
        self.patience.setSpecialValueText("off")
        self.patience.setValue(10)
        self.patience.setToolTip("Stop when validation RMSE has not improved for this many epochs")
        self.augment = QComboBox()
        self.augment.addItem("architecture default", None)
        self.augment.addItem("on", True)
        self.augment.addItem("off", False)
        self.out_path = QLineEdit()
        self.out_path.setPlaceholderText("a new file in the app's models folder")
        browse = QToolButton()
        browse.setText("…")
        browse.clicked.connect(self._browse_out)
        out_row = QHBoxLayout()
        out_row.setContentsMargins(0, 0, 0, 0)
        out_row.addWidget(self.out_path, 1)
        out_row.addWidget(browse)
        self.data_label = QLabel("no dataset yet")
        self.data_label.setWordWrap(True)

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("Architecture", self.arch)
        form.addRow("Epochs", self.epochs)
        form.addRow("Batch size", self.batch_size)
        form.addRow("Learning rate", self.learning_rate)
        form.addRow("Patience", self.patience)
        form.addRow("Augmentation", self.augment)
        form.addRow("Save model to", out_row)
        form.addRow("Data", self.data_label)

        self.start_button = QPushButton("Start training")
        self.start_button.clicked.connect(self.start)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop after the current batch; the best model so far is kept")
        self.stop_button.clicked.connect(self.stop)
        self.stop_button.setEnabled(False)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button, 1)
        buttons.addWidget(self.stop_button)

        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("idle")
        self.status = QLabel("Train a model on the dataset's train split; validation on its "
                             "val split.")
        self.status.setWordWrap(True)

        self.log_scale = QCheckBox("Log scale")
        self.ignore_outliers = QCheckBox("Ignore outliers")
        self.ignore_outliers.setToolTip("Scale the y axis to the bulk of the points, not the "
                                        "first few batches")
        s = app_settings.settings()
        self.log_scale.setChecked(_bool(s.value("training/log_scale", True)))
        self.ignore_outliers.setChecked(_bool(s.value("training/ignore_outliers", True)))
        self.log_scale.toggled.connect(self._log_toggled)
        self.ignore_outliers.toggled.connect(self._outliers_toggled)
        toggles = QHBoxLayout()
        toggles.addWidget(self.log_scale)
        toggles.addWidget(self.ignore_outliers)
        toggles.addStretch(1)

        self.plot_holder = QVBoxLayout()
        self.plot_placeholder = QLabel("loss plot loading…")
        self.plot_placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.plot_placeholder.setMinimumHeight(200)
        self.plot_holder.addWidget(self.plot_placeholder)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addLayout(toggles)
        layout.addLayout(self.plot_holder, 1)

        self._redraw_timer = QTimer(self)
        self._redraw_timer.setSingleShot(True)
        self._redraw_timer.setInterval(REDRAW_INTERVAL_MS)
        self._redraw_timer.timeout.connect(self._redraw)
        self._clock = QTimer(self)
        self._clock.setInterval(1000)
        self._clock.timeout.connect(self._update_progress)
        self.redraws = 0

    # --- plot ---------------------------------------------------------------------------
    def ensure_plot(self) -> None:
        """Create the pyqtgraph plot (imports pyqtgraph: call once the window is shown)."""
        if self.plot is not None:
            return
        import pyqtgraph as pg

        class PlainLogAxis(pg.AxisItem):
            """Log-scale ticks as plain pixel values (3, 5, 10, 20), not 3·10⁰."""

            def logTickStrings(self, values, scale, spacing):
                return [f"{10 ** v:.3g}" for v in values]

        pg.setConfigOptions(antialias=True)
        plot = pg.PlotWidget(background=(30, 30, 34),
                             axisItems={"left": PlainLogAxis(orientation="left")})
        plot.setMinimumHeight(200)
        item = plot.getPlotItem()
        item.showGrid(x=True, y=True, alpha=0.25)
        # Grid lines at the major ticks and one minor level only: pyqtgraph's default (two
        # minor levels) doubled the plot's paint time (10 -> 5 ms here), and the plot repaints
        # a few times a second while training shares the CPU.
        for axis in ("left", "bottom"):
            item.getAxis(axis).setStyle(maxTickLevel=1)
        item.setLabel("bottom", "epoch")
        item.setLabel("left", "RMSE", units="px")
        item.getAxis("left").enableAutoSIPrefix(False)
        item.addLegend(offset=(-10, 10))
        self.batch_curve = item.plot([], [], pen=None, symbol="o", symbolSize=4,
                                     symbolPen=None, symbolBrush=pg.mkBrush(*BATCH_COLOR),
                                     name="batch (train)")
        self.train_curve = item.plot([], [], pen=pg.mkPen(TRAIN_COLOR, width=2), symbol="o",
                                     symbolSize=6, symbolBrush=TRAIN_COLOR, symbolPen=None,
                                     name="train (epoch)")
        self.val_curve = item.plot([], [], pen=pg.mkPen(VAL_COLOR, width=2), symbol="o",
                                   symbolSize=6, symbolBrush=VAL_COLOR, symbolPen=None,
                                   name="validation")
        self.best_curve = item.plot([], [], pen=None, symbol="star", symbolSize=16,
                                    symbolBrush=BEST_COLOR, symbolPen=pg.mkPen("w", width=1),
                                    name="best")
        self.best_line = pg.InfiniteLine(angle=90, movable=False,
                                         pen=pg.mkPen(BEST_COLOR, width=1, style=Qt.PenStyle.DashLine))
        self.best_line.hide()
        item.addItem(self.best_line, ignoreBounds=True)
        item.setLogMode(False, self.log_scale.isChecked())
        self.plot = plot
        self.plot_holder.removeWidget(self.plot_placeholder)
        self.plot_placeholder.deleteLater()
        self.plot_holder.addWidget(plot)
        self._redraw()
        self._update_title()

    def _reset_series(self) -> None:
        self.batch_x: list[float] = []
        self.batch_y: list[float] = []
        self.epoch_rows: list[dict] = []
        self.best: dict | None = None
        self.info: dict = {}
        self.steps = 0
        self.last_batch = (0, 0)
        self.started_at: float | None = None
        self.first_batch_at: float | None = None
        self.batches_done = 0

    def _schedule_redraw(self) -> None:
        if not self._redraw_timer.isActive():
            self._redraw_timer.start()

    def _redraw(self) -> None:
        if self.plot is None:
            return
        self.redraws += 1
        self.batch_curve.setData(np.asarray(self.batch_x), np.asarray(self.batch_y))
        ep = np.array([r["epoch"] for r in self.epoch_rows], dtype=float)
        tr = np.array([r["train_rmse_px"] for r in self.epoch_rows], dtype=float)
        va = np.array([r["val_rmse_px"] for r in self.epoch_rows], dtype=float)
        self.train_curve.setData(ep, tr)
        self.val_curve.setData(ep, va)
        if self.best is not None:
            self.best_curve.setData([self.best["epoch"]], [self.best["val_rmse_px"]])
            self.best_line.setValue(self.best["epoch"])
            self.best_line.show()
        else:
            self.best_curve.setData([], [])
            self.best_line.hide()
        self._apply_range()

    def _apply_range(self) -> None:
        item = self.plot.getPlotItem()
        values = np.concatenate([np.asarray(self.batch_y, float),
                                 [r["train_rmse_px"] for r in self.epoch_rows],
                                 [r["val_rmse_px"] for r in self.epoch_rows]])
        values = values[np.isfinite(values) & (values > 0)]
        if not self.ignore_outliers.isChecked() or len(values) < 5:
            item.enableAutoRange(axis="y")
            return
        lo = float(values.min()) * 0.9
        # the bulk: the upper end of the last 90% of the points (the first batches are huge)
        hi = float(np.percentile(values[len(values) // 10:], 98)) * 1.15
        hi = max(hi, lo * 1.5)
        if self.log_scale.isChecked():
            item.setYRange(math.log10(lo), math.log10(hi), padding=0)
        else:
            item.setYRange(max(0.0, lo), hi, padding=0)

    def _update_title(self) -> None:
        if self.plot is None:
            return
        parts = []
        if self.started_at is not None:
            elapsed = time.monotonic() - self.started_at
            parts.append(f"elapsed {format_seconds(elapsed)}")
            if self.is_running():
                parts.append(f"ETA {format_seconds(self.eta())}")
        if self.best is not None:
            parts.append(f"best val {self.best['val_rmse_px']:.2f} px @ epoch {self.best['epoch']}")
        self.plot.getPlotItem().setTitle("  ·  ".join(parts) if parts else "training loss",
                                         size="9pt")

    def _log_toggled(self, on: bool) -> None:
        app_settings.settings().setValue("training/log_scale", bool(on))
        if self.plot is not None:
            self.plot.getPlotItem().setLogMode(False, bool(on))
            self._redraw()

    def _outliers_toggled(self, on: bool) -> None:
        app_settings.settings().setValue("training/ignore_outliers", bool(on))
        if self.plot is not None:
            self._redraw()

    def save_plot_png(self, path: str | Path) -> Path:
        """The loss plot as a PNG (atomic)."""
        from core.fileio import atomic_path

        self.ensure_plot()
        self._redraw()
        path = Path(path)
        with atomic_path(path) as tmp:
            if not self.plot.grab().save(str(tmp), "PNG"):
                raise OSError(f"could not write {path}")
        return path

    def history(self) -> list[dict]:
        return list(self.epoch_rows)

    # --- engine and data -------------------------------------------------------------------
    def set_engine_info(self, info: dict) -> None:
        self.engine_info = info
        current = self.arch.currentText()
        self.arch.blockSignals(True)
        self.arch.clear()
        for name in info.get("architectures") or ["seed"]:
            self.arch.addItem(name)
        i = self.arch.findText(current)
        self.arch.setCurrentIndex(max(0, i))
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
        if "epochs" in defaults:
            self.epochs.setValue(int(defaults["epochs"]))
        if "batch_size" in defaults:
            self.batch_size.setValue(int(defaults["batch_size"]))
        if "learning_rate" in defaults:
            self.learning_rate.setValue(float(defaults["learning_rate"]))
        if "patience" in defaults:
            self.patience.setValue(int(defaults["patience"]))
        self.augment.setCurrentIndex(0)

    def set_data_description(self, text: str) -> None:
        self.data_label.setText(text)

    def config(self) -> dict:
        cfg = {"arch": self.arch.currentText() or "seed", "epochs": self.epochs.value(),
               "batch_size": self.batch_size.value(),
               "learning_rate": float(self.learning_rate.value()),
               "patience": self.patience.value()}
        if self.augment.currentData() is not None:
            cfg["augment"] = bool(self.augment.currentData())
        return cfg

    def _browse_out(self) -> None:
        start = self.out_path.text() or str(app_settings.models_dir())
        path, _ = QFileDialog.getSaveFileName(self, "Save the trained model as", start,
                                              "Keras model (*.keras)")
        if path:
            if not path.endswith(".keras"):
                path += ".keras"
            self.out_path.setText(path)

    def output_path(self) -> Path:
        text = self.out_path.text().strip()
        if text:
            return Path(text)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        return app_settings.models_dir() / f"{self.arch.currentText() or 'model'}-{stamp}.keras"

    # --- run --------------------------------------------------------------------------------
    def is_running(self) -> bool:
        return self.thread is not None and self.thread.isRunning()

    def start(self, train=None, val=None, config: dict | None = None,
              out: str | Path | None = None) -> bool:
        """Start a run (datasets default to the window's train/val splits)."""
        if self.is_running():
            return False
        if train is None or val is None:
            if self.data_provider is None:
                self.status.setText("No dataset loaded yet.")
                return False
            provided = self.data_provider()
            if provided is None:
                return False
            train, val, _ = provided
        cfg = self.config()
        cfg.update(config or {})
        out = Path(out) if out is not None else self.output_path()
        self.ensure_plot()
        self._reset_series()
        self.started_at = time.monotonic()
        self.planned_epochs = int(cfg.get("epochs", 1))
        self.out = out
        thread = TrainingThread(cfg, train, val, out, parent=self)
        thread.status.connect(self._thread_status)
        thread.trainingStarted.connect(self._on_started)
        thread.batches.connect(self._on_batches)
        thread.epochDone.connect(self._on_epoch)
        thread.trainingFinished.connect(self._on_finished)
        self.thread = thread
        self.start_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self._set_controls_enabled(False)
        self.progress.setRange(0, 0)  # busy until the first batch
        self.progress.setFormat("preparing…")
        self.status.setText(f"Training {cfg['arch']} on {len(train)} faces, validating on "
                            f"{len(val)}; model → {out}")
        self._redraw()
        thread.start()
        self._clock.start()
        self.trainingStateChanged.emit(True)
        return True

    def stop(self) -> None:
        if self.is_running():
            self.thread.stop()
            self.stop_button.setEnabled(False)
            self.progress.setFormat("stopping after this batch…")
            self.statusMessage.emit("Stopping training after the current batch…")

    def shutdown(self) -> None:
        """Stop a run and wait for its thread (closing the window): it ends after the current
        batch, or once the model is built when it had not started yet."""
        if self.thread is None:
            return
        if self.thread.isRunning():
            self.thread.stop()
        self.thread.wait()

    def _set_controls_enabled(self, on: bool) -> None:
        for w in (self.arch, self.epochs, self.batch_size, self.learning_rate, self.patience,
                  self.augment, self.out_path):
            w.setEnabled(on)

    # --- thread signals ------------------------------------------------------------------
    def _thread_status(self, text: str) -> None:
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
        steps = max(1, self.steps)
        for epoch, batch, loss in points:
            # epochs and batches are 1-based: a point sits at the fraction of its epoch done
            self.batch_x.append(epoch - 1 + batch / steps)
            self.batch_y.append(loss)
            self.last_batch = (epoch, batch)
        self.batches_done += len(points)
        self._update_progress(title=False)
        self._schedule_redraw()

    def _on_epoch(self, row: dict) -> None:
        self.epoch_rows.append(row)
        if row.get("best"):
            self.best = row
        self.last_batch = (row["epoch"], self.steps)
        self._update_progress()
        self._schedule_redraw()

    def _on_finished(self, result) -> None:
        self._clock.stop()
        self._redraw_timer.stop()
        self._redraw()
        self._update_title()
        self.start_button.setEnabled(True)
        self.stop_button.setEnabled(False)
        self._set_controls_enabled(True)
        reason = getattr(result, "reason", "error")
        text = {
            "completed": "Training finished",
            "early_stop": "Training stopped early (no improvement)",
            "stopped": "Training stopped",
            "error": "Training failed",
        }.get(reason, f"Training ended ({reason})")
        best_epoch = getattr(result, "best_epoch", None)
        best_val = getattr(result, "best_val_rmse_px", None)
        if best_epoch:
            text += f": best validation RMSE {best_val:.2f} px at epoch {best_epoch}"
        message = getattr(result, "message", "")
        if message and reason == "error":
            text += f": {message}"
        path = getattr(result, "model_path", None)
        if path and Path(path).exists() and reason != "error":
            text += f"; model saved to {path}"
        self.progress.setRange(0, 1)
        self.progress.setValue(1 if reason in ("completed", "early_stop") else 0)
        self.progress.setFormat(text.split(":")[0])
        self.status.setText(text + ".")
        self.statusMessage.emit(text)
        self.trainingStateChanged.emit(False)
        if path and Path(path).exists() and best_epoch:
            self.modelTrained.emit(str(path))

    def eta(self) -> float:
        if not self.steps or self.first_batch_at is None:
            return float("nan")
        epoch, batch = self.last_batch
        done = (epoch - 1) * self.steps + batch
        total = self.planned_epochs * self.steps
        elapsed = time.monotonic() - self.started_at
        return elapsed / max(1, done) * max(0, total - done)

    def _update_progress(self, title: bool = True) -> None:
        """Progress bar text; the plot's title (a relayout) only when ``title`` (clock, epochs)."""
        if not self.is_running() or not self.steps:
            if title:
                self._update_title()
            return
        epoch, batch = self.last_batch
        total = self.planned_epochs * self.steps
        done = (max(1, epoch) - 1) * self.steps + batch if self.batches_done else 0
        self.progress.setRange(0, total)
        self.progress.setValue(min(done, total))
        if not self.thread.stop_requested:
            self.progress.setFormat(f"epoch {max(1, epoch)}/{self.planned_epochs} · batch "
                                    f"{batch}/{self.steps} · "
                                    f"ETA {format_seconds(self.eta())}")
        if title:
            self._update_title()


def _bool(v) -> bool:
    if isinstance(v, str):
        return v.lower() in ("1", "true", "yes")
    return bool(v)
