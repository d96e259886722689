"""The live loss plot of the training dock (pyqtgraph), a widget of its own.

Every training batch's RMSE (px) is a faint point at its fractional epoch, per-epoch training
and validation RMSE are lines, and the best epoch so far is marked. Points arrive already
coalesced; the plot is redrawn at most every ``REDRAW_INTERVAL_MS``.

pyqtgraph takes a few hundred milliseconds to import, so the plot itself is created after the
window is on screen (:meth:`LossPlot.ensure`); until then a placeholder shows.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSize, Qt, QTimer
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

REDRAW_INTERVAL_MS = 100
TRAIN_COLOR = (90, 150, 255)
VAL_COLOR = (255, 150, 40)
BATCH_COLOR = (160, 180, 235, 150)
BEST_COLOR = (60, 220, 90)
BACKGROUND = (30, 30, 34)


class LossPlot(QWidget):
    """Batch points, epoch lines and the best epoch; ``log_scale`` and ``ignore_outliers``
    choose how the y axis is drawn."""

    def __init__(self, parent=None, log_scale: bool = True, ignore_outliers: bool = True):
        super().__init__(parent)
        self.log_scale = log_scale
        self.ignore_outliers = ignore_outliers
        self.plot = None
        self.redraws = 0
        self.reset()
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._placeholder = QLabel("loss plot loading…")
        self._placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._placeholder.setMinimumHeight(200)
        self._layout.addWidget(self._placeholder)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(REDRAW_INTERVAL_MS)
        self._timer.timeout.connect(self.redraw)

    def sizeHint(self) -> QSize:
        """Small: the Training panel scrolls to its preferred height (its wrapped labels ask
        for one), so a plot that asked for pyqtgraph's 480 px pushed its own x axis and
        legend below a 900-px window; it grows into whatever room the dock has."""
        return QSize(320, 220)

    def reset(self) -> None:
        self.batch_x: list[float] = []
        self.batch_y: list[float] = []
        self.epoch_rows: list[dict] = []
        self.best: dict | None = None

    # --- data -------------------------------------------------------------------------
    def add_batches(self, points, steps: int) -> None:
        """``points``: (epoch, batch, loss_px), both 1-based: a point sits at the fraction of
        its epoch done."""
        steps = max(1, steps)
        for epoch, batch, loss in points:
            self.batch_x.append(epoch - 1 + batch / steps)
            self.batch_y.append(loss)
        self.schedule()

    def add_epoch(self, row: dict) -> None:
        self.epoch_rows.append(row)
        if row.get("best"):
            self.best = row
        self.schedule()

    # --- drawing ------------------------------------------------------------------------
    def ensure(self) -> None:
        """Create the pyqtgraph plot (imports pyqtgraph: call once the window is shown)."""
        if self.plot is not None:
            return
        import pyqtgraph as pg

        pg.setConfigOptions(antialias=True)
        plot = pg.PlotWidget(background=BACKGROUND,
                             axisItems={"left": _plain_log_axis(pg)(orientation="left")})
        plot.setMinimumHeight(200)
        item = plot.getPlotItem()
        item.showGrid(x=True, y=True, alpha=0.25)
        # grid lines at the major ticks and one minor level only: two minor levels double the
        # plot's paint time while training shares the CPU
        for axis in ("left", "bottom"):
            item.getAxis(axis).setStyle(maxTickLevel=1)
        item.setLabel("bottom", "epoch")
        item.setLabel("left", "RMSE", units="px")
        for axis in ("left", "bottom"):        # epochs as epochs: never "epoch (x0.001)"
            item.getAxis(axis).enableAutoSIPrefix(False)
        self._make_curves(pg, item)
        self.legend = _legend_below(pg, item)   # beside the points, never over them
        item.setLogMode(False, self.log_scale)
        self.plot = plot
        self._layout.removeWidget(self._placeholder)
        self._placeholder.deleteLater()
        self._layout.addWidget(plot)
        self.redraw()

    def _make_curves(self, pg, item) -> None:
        def line(color, name):
            return item.plot([], [], pen=pg.mkPen(color, width=2), symbol="o", symbolSize=6,
                             symbolBrush=color, symbolPen=None, name=name)

        self.batch_curve = item.plot([], [], pen=None, symbol="o", symbolSize=4,
                                     symbolPen=None, symbolBrush=pg.mkBrush(*BATCH_COLOR),
                                     name="batch (train)")
        self.train_curve = line(TRAIN_COLOR, "train (epoch)")
        self.val_curve = line(VAL_COLOR, "validation")
        self.best_curve = item.plot([], [], pen=None, symbol="star", symbolSize=16,
                                    symbolBrush=BEST_COLOR, symbolPen=pg.mkPen("w", width=1),
                                    name="best")
        self.best_line = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen(
            BEST_COLOR, width=1, style=Qt.PenStyle.DashLine))
        self.best_line.hide()
        item.addItem(self.best_line, ignoreBounds=True)

    def schedule(self) -> None:
        if not self._timer.isActive():
            self._timer.start()

    def stop(self) -> None:
        self._timer.stop()
        self.redraw()

    def redraw(self) -> None:
        """Give the curves the data so far and fit the y axis."""
        if self.plot is None:
            return
        self.redraws += 1
        self.batch_curve.setData(np.asarray(self.batch_x), np.asarray(self.batch_y))
        ep = np.array([r["epoch"] for r in self.epoch_rows], dtype=float)
        self.train_curve.setData(ep, self._column("train_rmse_px"))
        self.val_curve.setData(ep, self._column("val_rmse_px"))
        if self.best is not None:
            self.best_curve.setData([self.best["epoch"]], [self.best["val_rmse_px"]])
            self.best_line.setValue(self.best["epoch"])
            self.best_line.show()
        else:
            self.best_curve.setData([], [])
            self.best_line.hide()
        self._apply_range()

    def _column(self, key: str) -> np.ndarray:
        return np.array([r[key] for r in self.epoch_rows], dtype=float)

    def _apply_range(self) -> None:
        item = self.plot.getPlotItem()
        values = np.concatenate([np.asarray(self.batch_y, float), self._column("train_rmse_px"),
                                 self._column("val_rmse_px")])
        values = values[np.isfinite(values) & (values > 0)]
        if not self.ignore_outliers or len(values) < 5:
            item.enableAutoRange(axis="y")
            return
        lo = float(values.min()) * 0.9
        # the bulk: the upper end of the last 90% of the points (the first batches are huge)
        hi = max(float(np.percentile(values[len(values) // 10:], 98)) * 1.15, lo * 1.5)
        if self.log_scale:
            item.setYRange(math.log10(lo), math.log10(hi), padding=0)
        else:
            item.setYRange(max(0.0, lo), hi, padding=0)

    def set_log_scale(self, on: bool) -> None:
        self.log_scale = bool(on)
        if self.plot is not None:
            self.plot.getPlotItem().setLogMode(False, self.log_scale)
            self.redraw()

    def set_ignore_outliers(self, on: bool) -> None:
        self.ignore_outliers = bool(on)
        self.redraw()

    def set_title(self, text: str) -> None:
        if self.plot is not None:
            self.plot.getPlotItem().setTitle(text, size="9pt")

    def save_png(self, path: str | Path) -> Path:
        """The plot as a PNG (atomic)."""
        from facekp.core.fileio import atomic_path

        self.ensure()
        self.redraw()
        path = Path(path)
        with atomic_path(path) as tmp:
            if not self.plot.grab().save(str(tmp), "PNG"):
                raise OSError(f"could not write {path}")
        return path


def _legend_below(pg, item):
    """The curves' legend in a row of its own under the plot (a legend inside the plot
    covered the first epochs' points)."""
    legend = pg.LegendItem(colCount=4, labelTextColor=(220, 220, 220))
    item.layout.addItem(legend, 4, 1)
    for curve in item.listDataItems():
        if curve.name():
            legend.addItem(curve, curve.name())
    return legend


def _plain_log_axis(pg):
    class PlainLogAxis(pg.AxisItem):
        """Log-scale ticks as plain pixel values (3, 5, 10, 20), not 3·10⁰."""

        def logTickStrings(self, values, scale, spacing):
            return [f"{10 ** v:.3g}" for v in values]

    return PlainLogAxis
