"""The dataset browser: a table of faces (with per-image error once predicted), a split
filter, prediction progress, and a per-keypoint error view."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QAbstractTableModel, QItemSelectionModel, QModelIndex, Qt, Signal
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QHBoxLayout, QHeaderView, QLabel,
                               QProgressBar, QPushButton, QStyledItemDelegate, QTableView,
                               QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from facekp.core.data.keypoint_sets import KAGGLE15, KeypointSet

from .session import display_name, point_label, split_label


class DatasetModel(QAbstractTableModel):
    """Rows of a core Dataset: index, name, person, split, labelled points, RMSE px."""

    COLUMNS = ("#", "name", "person", "split", "points", "RMSE px")
    COL_INDEX, COL_NAME, COL_PERSON, COL_SPLIT, COL_POINTS, COL_RMSE = range(6)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.dataset = None
        self.errors = np.zeros(0)
        self._marks = (np.inf, np.inf)
        self._present = np.zeros(0, dtype=int)

    def set_dataset(self, dataset) -> None:
        self.beginResetModel()
        self.dataset = dataset
        n = 0 if dataset is None else len(dataset)
        self.errors = np.full(n, np.nan)
        self._marks = (np.inf, np.inf)
        self._present = np.zeros(n, dtype=int) if dataset is None else \
            dataset.present.sum(axis=1).astype(int)
        self.endResetModel()

    def set_errors(self, errors: np.ndarray) -> None:
        self.errors = np.asarray(errors, dtype=np.float64).copy()
        finite = self.errors[np.isfinite(self.errors)]
        # the worst tenth of the predicted faces in red, the next 15% in amber
        self._marks = (tuple(np.percentile(finite, [75, 90])) if len(finite) >= 10
                       else (np.inf, np.inf))
        if self.rowCount():
            self.dataChanged.emit(self.index(0, self.COL_RMSE),
                                  self.index(self.rowCount() - 1, self.COL_RMSE))

    def row_changed(self, row: int, error: float | None = None) -> None:
        """A face was edited: refresh its labelled-point count (and error)."""
        self._present[row] = int(self.dataset.present[row].sum())
        if error is not None:
            self.errors[row] = error
        self.dataChanged.emit(self.index(row, 0), self.index(row, len(self.COLUMNS) - 1))

    def sort_keys(self, column: int) -> np.ndarray:
        """One sortable value per face for a column: numbers for #, points and RMSE (faces
        not yet predicted sort as -1), text for the others."""
        ds = self.dataset
        n = 0 if ds is None else len(ds)
        if column == self.COL_POINTS:
            return self._present.copy()
        if column == self.COL_RMSE:
            return np.where(np.isnan(self.errors), -1.0, self.errors)
        if ds is None or column == self.COL_INDEX:
            return np.arange(n)
        if column == self.COL_NAME:
            return np.asarray(ds.names).astype(str)
        if column == self.COL_PERSON:
            return np.asarray(ds.persons).astype(str)
        return np.array([split_label(v) for v in ds.splits])

    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() or self.dataset is None else len(self.dataset)

    def columnCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.COLUMNS[section]
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.ToolTipRole:
            return ("Root-mean-square error of the predicted coordinates against the ground "
                    "truth, in pixels of the 96x96 face. Click: worst first; again: best first"
                    if section == self.COL_RMSE else None)
        return None

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        """Qt's model API: text, alignment and the error colour of one cell."""
        if not index.isValid() or self.dataset is None:
            return None
        r, c = index.row(), index.column()
        ds = self.dataset
        if role == Qt.ItemDataRole.DisplayRole:
            if c == self.COL_INDEX:
                return str(r)
            if c == self.COL_NAME:
                return str(ds.names[r])
            if c == self.COL_PERSON:
                return str(ds.persons[r])
            if c == self.COL_SPLIT:
                return split_label(ds.splits[r])
            if c == self.COL_POINTS:
                return f"{self._present[r]}/{ds.keypoint_set.size}"
            if c == self.COL_RMSE:
                e = self.errors[r]
                return "" if np.isnan(e) else f"{e:.2f}"
        elif role == Qt.ItemDataRole.ToolTipRole and c in (self.COL_NAME, self.COL_PERSON):
            return str(ds.names[r] if c == self.COL_NAME else ds.persons[r])
        elif role == Qt.ItemDataRole.TextAlignmentRole:
            if c in (self.COL_INDEX, self.COL_POINTS, self.COL_RMSE):
                return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        elif role == Qt.ItemDataRole.ForegroundRole and c == self.COL_RMSE:
            e = self.errors[r]
            if not np.isnan(e):
                amber, red = self._marks
                return QColor(220, 60, 50) if e > red else (QColor(200, 140, 20) if e > amber
                                                             else None)
        return None


class DatasetView(QAbstractTableModel):
    """The table's rows: the DatasetModel's faces of one split, in the order the user sorted.

    Filtering and sorting are numpy operations on whole columns (``DatasetModel.sort_keys``),
    not a QSortFilterProxyModel: that one asks the Python model for two values per comparison,
    which held the GUI thread for seconds when a whole dataset was re-sorted by RMSE.
    ``order`` holds the dataset rows shown, top to bottom; ``position`` the inverse (-1: not
    shown). Ties sort by dataset index.
    """

    def __init__(self, source: DatasetModel, parent=None):
        super().__init__(parent)
        self.source = source
        self._split = "all"
        self._sort = (DatasetModel.COL_INDEX, Qt.SortOrder.AscendingOrder)
        self.order = np.zeros(0, dtype=int)
        self.position = np.zeros(0, dtype=int)
        source.modelReset.connect(self._rebuild_reset)
        source.dataChanged.connect(self._source_changed)

    # --- structure --------------------------------------------------------------------------
    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.order)

    def columnCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(DatasetModel.COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        return self.source.headerData(section, orientation, role)

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or index.row() >= len(self.order):
            return None
        return self.source.data(self.source.index(int(self.order[index.row()]), index.column()),
                                role)

    def dataset_row(self, view_row: int) -> int:
        return int(self.order[view_row])

    def view_row(self, dataset_row: int) -> int:
        """The table row showing a dataset row, or -1 when the split filter hides it."""
        if not 0 <= dataset_row < len(self.position):
            return -1
        return int(self.position[dataset_row])

    # --- filter and sort ----------------------------------------------------------------------
    @property
    def split(self) -> str:
        return self._split

    def set_split(self, split: str) -> None:
        self._split = split
        self._rebuild_reset()

    def sort(self, column: int, order=Qt.SortOrder.AscendingOrder) -> None:
        self._sort = (int(column), order)
        if len(self.order):
            self._relayout()

    def _ordered(self) -> np.ndarray:
        ds = self.source.dataset
        if ds is None:
            return np.zeros(0, dtype=int)
        rows = np.arange(len(ds))
        if self._split != "all":
            rows = rows[np.asarray(ds.splits).astype(str) == self._split]
        column, order = self._sort
        keys = self.source.sort_keys(column)[rows]
        rank = np.unique(keys, return_inverse=True)[1].ravel()
        if order == Qt.SortOrder.DescendingOrder:
            rank = -rank
        return rows[np.lexsort((rows, rank))]

    def _set_order(self, order: np.ndarray) -> None:
        self.order = order
        n = 0 if self.source.dataset is None else len(self.source.dataset)
        self.position = np.full(n, -1, dtype=int)
        self.position[order] = np.arange(len(order))

    def _rebuild_reset(self) -> None:
        self.beginResetModel()
        self._set_order(self._ordered())
        self.endResetModel()

    def _relayout(self) -> None:
        """Re-sort in place, keeping the selection on the same faces."""
        self.layoutAboutToBeChanged.emit()
        old = self.order
        persistent = self.persistentIndexList()
        self._set_order(self._ordered())
        self.changePersistentIndexList(
            persistent, [self.index(int(self.position[old[i.row()]]), i.column())
                         for i in persistent])
        self.layoutChanged.emit()

    def _source_changed(self, top_left, bottom_right, roles=()) -> None:
        if not len(self.order):
            return
        if top_left.column() <= self._sort[0] <= bottom_right.column():
            self._relayout()
        self.dataChanged.emit(self.index(0, top_left.column()),
                              self.index(len(self.order) - 1, bottom_right.column()))


class DatasetPanel(QWidget):
    """Table + split filter + prediction progress. ``currentChanged`` gives dataset rows."""

    currentChanged = Signal(int)
    predictRequested = Signal()
    splitChanged = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.model = DatasetModel(self)
        self.view = DatasetView(self.model, self)

        self.split_box = QComboBox()
        for key in ("all", "train", "val", "test"):
            self.split_box.addItem(split_label(key), key)
        self.split_box.currentIndexChanged.connect(self._split_changed)
        self.summary = QLabel("")
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.summary.setWordWrap(True)     # a narrow dock wraps it (no minimum width of its own)

        self.table = QTableView()
        self.table.setModel(self.view)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(DatasetModel.COL_INDEX, Qt.SortOrder.AscendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(22)
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        # the name gives and takes the dock's width: the RMSE column stays in sight in a
        # narrow dock (a 1280 x 720 window), without a horizontal scroll
        header.setSectionResizeMode(DatasetModel.COL_NAME, QHeaderView.ResizeMode.Stretch)
        header.setMinimumSectionSize(36)
        self.table.setWordWrap(False)
        # a long name keeps its start (the person, the clip); the whole name is its tooltip
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self._sorted_by = DatasetModel.COL_INDEX
        header.sortIndicatorChanged.connect(self._sort_changed)
        self.view.layoutChanged.connect(self._keep_current_in_view)
        for col, width in enumerate((40, 150, 100, 70, 46, 62)):
            self.table.setColumnWidth(col, width)
        self.table.selectionModel().currentRowChanged.connect(self._current_row_changed)

        self.predict_button = QPushButton("Predict all")
        self.predict_button.setToolTip("Predict every face with the current model (Ctrl+R) "
                                       "to fill the RMSE column")
        self.predict_button.clicked.connect(self.predictRequested)
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.progress.setMaximumHeight(18)
        self.progress.hide()

        top = QHBoxLayout()
        top.addWidget(QLabel("Split:"))
        top.addWidget(self.split_box)
        top.addStretch(1)
        top.addWidget(self.predict_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.progress)
        layout.addWidget(self.summary)

    # --- data -----------------------------------------------------------------------------
    def set_dataset(self, dataset) -> None:
        self.model.set_dataset(dataset)
        self._update_summary()

    def set_errors(self, errors: np.ndarray) -> None:
        self.model.set_errors(errors)
        self._update_summary()

    def _update_summary(self) -> None:
        ds = self.model.dataset
        if ds is None:
            self.summary.setText("")
            return
        rows = self.visible_rows()
        e = self.model.errors[rows] if len(rows) else np.zeros(0)
        done = int(np.isfinite(e).sum())
        text = f"{len(rows)} faces"
        if done:
            text += f" · mean per-image RMSE {np.nanmean(e):.2f} px over {done} predicted"
        self.summary.setText(text)

    def set_progress(self, done: int, total: int, text: str = "Predicting") -> None:
        if total <= 0 or done >= total:
            self.progress.hide()
            return
        self.progress.show()
        # QProgressBar.setValue repaints at once, and with it the whole window's dirty
        # region (the table whose errors just changed): 20-60 ms in the middle of each chunk's
        # callback. With updates off it only schedules a paint, which Qt coalesces.
        self.progress.setUpdatesEnabled(False)
        self.progress.setRange(0, total)
        self.progress.setValue(done)
        self.progress.setFormat(f"{text} %v/%m faces")
        self.progress.setUpdatesEnabled(True)

    # --- navigation -------------------------------------------------------------------------
    @property
    def split(self) -> str:
        return self.view.split

    def set_split(self, split: str) -> None:
        i = self.split_box.findData(split)
        if i >= 0:
            self.split_box.setCurrentIndex(i)

    def _split_changed(self, _i: int) -> None:
        current = self.current_row()
        self.view.set_split(self.split_box.currentData())
        self._update_summary()
        self.splitChanged.emit(self.view.split)
        if current is not None and self.view.view_row(current) >= 0:
            self.select_row(current)
        elif self.view.rowCount():
            self.select_view_row(0)

    def visible_rows(self) -> np.ndarray:
        """Dataset rows in the current table order."""
        return self.view.order.copy()

    def current_row(self) -> int | None:
        idx = self.table.selectionModel().currentIndex()
        if not idx.isValid():
            return None
        return self.view.dataset_row(idx.row())

    def select_row(self, row: int) -> bool:
        vrow = self.view.view_row(row)
        if vrow < 0:
            return False
        self.select_view_row(vrow)
        return True

    def select_view_row(self, vrow: int) -> None:
        """Select the ``vrow``-th row of the table as shown (clamped)."""
        if not self.view.rowCount():
            return
        vrow = max(0, min(vrow, self.view.rowCount() - 1))
        idx = self.view.index(vrow, 0)
        self.table.selectionModel().setCurrentIndex(
            idx, QItemSelectionModel.SelectionFlag.ClearAndSelect
            | QItemSelectionModel.SelectionFlag.Rows)
        self.table.scrollTo(idx)

    def step(self, delta: int) -> None:
        """Next (+1) / previous (-1) face in the table's current order."""
        idx = self.table.selectionModel().currentIndex()
        self.select_view_row(idx.row() + delta if idx.isValid() else 0)

    def sort_worst_first(self) -> None:
        self.table.sortByColumn(DatasetModel.COL_RMSE, Qt.SortOrder.DescendingOrder)

    def _sort_changed(self, column: int, order) -> None:
        """A first click on "RMSE px" sorts worst first, as its tooltip and Sort worst first
        (W) say; a second click best first."""
        first = column != self._sorted_by
        self._sorted_by = column
        if first and column == DatasetModel.COL_RMSE and order == Qt.SortOrder.AscendingOrder:
            self.table.horizontalHeader().setSortIndicator(column, Qt.SortOrder.DescendingOrder)

    def _keep_current_in_view(self) -> None:
        """After a re-sort (an edit changed a face's error), the current face stays in view."""
        idx = self.table.selectionModel().currentIndex()
        if idx.isValid():
            self.table.scrollTo(idx, QAbstractItemView.ScrollHint.EnsureVisible)

    def _current_row_changed(self, current, _previous) -> None:
        if current.isValid():
            self.currentChanged.emit(self.view.dataset_row(current.row()))


def point_distances(pred, truth) -> tuple[np.ndarray, np.ndarray]:
    """A point's error, the one figure the app shows for it (the canvas's hover, this dock):
    the distance in px from its label to its prediction. ``pred``, ``truth``: (N, 2K), or one
    face's (2K,). Returns ((N, K) distances, NaN where either is missing; (K,) mean over the
    faces that have the point)."""
    from facekp.core.model import metrics

    pred, truth = np.asarray(pred, np.float64), np.asarray(truth, np.float64)
    if pred.ndim == 1:
        pred, truth = pred[None], truth.reshape(1, -1)
    d = metrics.point_errors(pred, truth).reshape(len(pred), pred.shape[1] // 2)
    n = np.isfinite(d).sum(axis=0)
    mean = np.where(n > 0, np.nansum(d, axis=0) / np.maximum(n, 1), np.nan)
    return d, mean


class _BarDelegate(QStyledItemDelegate):
    """Draws a number as a horizontal bar scaled to the column's maximum."""

    def __init__(self, view: "KeypointErrorView", color: QColor):
        super().__init__(view)
        self.view = view
        self.color = color

    def paint(self, painter: QPainter, option, index) -> None:
        value = index.data(Qt.ItemDataRole.UserRole)
        if value is not None and np.isfinite(value) and self.view.bar_max > 0:
            r = option.rect.adjusted(2, 4, -2, -4)
            w = int(r.width() * min(1.0, value / self.view.bar_max))
            painter.save()
            painter.fillRect(r.x(), r.y(), w, r.height(), self.color)
            painter.restore()
        super().paint(painter, option, index)


#: What the dock's error columns hold (their header tooltip).
DISTANCE_TIP = "distance in px from the labelled point to the predicted one"


class KeypointErrorView(QTableWidget):
    """Each keypoint's error, the distance in px from its label to its prediction
    (:func:`point_distances`), for the current face and its mean over the current split, and
    the keypoint confidence of the face's prediction ("sure": the chance the point is within
    3 px of where a labeller would put it; points under one half in the unsure colour)."""

    SURE = 3
    #: picked = Signal(int): a row was double-clicked (the window picks that keypoint)
    picked = Signal(int)

    def __init__(self, parent=None):
        super().__init__(0, 4, parent)
        self.setHorizontalHeaderLabels(["keypoint · error px", "this face", "split", "sure"])
        self.verticalHeader().hide()
        self.verticalHeader().setDefaultSectionSize(20)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        header = self.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for c in (1, 2, self.SURE):     # each header whole ("validation (403)"), not cut
            header.setSectionResizeMode(c, QHeaderView.ResizeMode.ResizeToContents)
        self.bar_max = 0.0
        self.setItemDelegateForColumn(1, _BarDelegate(self, QColor(240, 40, 40, 90)))
        self.setItemDelegateForColumn(2, _BarDelegate(self, QColor(120, 140, 255, 90)))
        self.keypoint_set: KeypointSet | None = None
        self.split_label = "split"
        self.cellDoubleClicked.connect(lambda row, _col: self.picked.emit(row))
        self.set_keypoint_set(KAGGLE15)

    def set_keypoint_set(self, keypoint_set: KeypointSet) -> None:
        """One row per keypoint of ``keypoint_set`` (numbered as the number keys pick them)."""
        if keypoint_set == self.keypoint_set:
            return
        self.keypoint_set = keypoint_set
        k = keypoint_set.size
        self.setRowCount(k)
        for i in range(k):
            name = QTableWidgetItem(f"{i + 1} {display_name(i, keypoint_set)}")
            name.setToolTip(point_label(i, keypoint_set) + " — double-click to pick it")
            self.setItem(i, 0, name)
            for c in (1, 2, self.SURE):
                item = QTableWidgetItem("")
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.setItem(i, c, item)
        self.current = np.full(k, np.nan)
        self.split_values = np.full(k, np.nan)
        self.confidence = np.full(k, np.nan)

    def _fit(self, values) -> np.ndarray:
        """K values as floats; NaN for None or a count that is not this set's."""
        k = self.rowCount()
        v = None if values is None else np.asarray(values, float).ravel()
        return v if v is not None and len(v) == k else np.full(k, np.nan)

    def show_errors_of(self, w) -> None:
        """The errors of window ``w``'s face on screen and of its split (a photo's against
        the truth beside it; the comparison of two models; nothing across keypoint sets)."""
        s = w.session
        if w.model_list.comparing() and s.view_mode == "dataset" and s.row is not None:
            return w.model_list.update_table()
        if s.view_mode in ("photo", "video"):
            return self.set_values(*w.photos.keypoint_errors(s.view_mode))
        if s.dataset is None or s.predictions is None or s.row is None or not s.same_set:
            return self.set_values(None, None)   # (a derived set: no point pairs)
        split, rows = w.dataset_panel.split, s.predicted_rows(w.dataset_panel.visible_rows())
        values = point_distances(s.predictions[rows], s.dataset.keypoints[rows])[1]
        current = point_distances(s.predictions[s.row], s.dataset.keypoints[s.row])[1]
        self.set_values(current, values if len(rows) else None,
                        f"{split_label(split) if split != 'all' else 'all'} ({len(rows)})")

    def set_values(self, current: np.ndarray | None, split: np.ndarray | None,
                   split_label: str = "split", face_label: str = "this face") -> None:
        """Per-keypoint errors of the face on screen and of the split (None: empty)."""
        self.current = self._fit(current)
        self.split_values = self._fit(split)
        self.split_label = split_label
        self.setHorizontalHeaderLabels(["keypoint · error px", face_label, split_label,
                                        self.horizontalHeaderItem(self.SURE).text()])
        self.horizontalHeaderItem(0).setToolTip(f"Each keypoint's error: the {DISTANCE_TIP}")
        self.horizontalHeaderItem(1).setToolTip(f"{face_label}: {DISTANCE_TIP}")
        self.horizontalHeaderItem(2).setToolTip(f"{split_label}: {DISTANCE_TIP}, mean over "
                                                "the faces that have the point")
        both = np.concatenate([self.current, self.split_values])
        self.bar_max = float(np.nanmax(both)) if np.isfinite(both).any() else 0.0
        for i in range(self.rowCount()):
            for c, values in ((1, self.current), (2, self.split_values)):
                v = values[i]
                item = self.item(i, c)
                item.setText("" if np.isnan(v) else f"{v:.2f}")
                item.setData(Qt.ItemDataRole.UserRole, None if np.isnan(v) else float(v))
        self.viewport().update()

    def set_confidence(self, values: np.ndarray | None, source: str = "",
                       title: str = "sure") -> None:
        """The "sure" column: keypoint confidences (K,) of the face on screen, 0..1 (None or
        NaN: none to show); ``source`` says where they come from (the column's tooltip)."""
        from .canvas import UNSURE_POINT_BELOW, UNSURE_POINT_COLOR

        self.confidence = self._fit(values)
        unsure = QColor(UNSURE_POINT_COLOR)
        unsure.setAlpha(70)
        for i, v in enumerate(self.confidence):
            item = self.item(i, self.SURE)
            item.setText("" if np.isnan(v) else f"{v:.2f}")
            item.setBackground(unsure if v < UNSURE_POINT_BELOW else QColor(0, 0, 0, 0))
        self.horizontalHeaderItem(self.SURE).setText(title)
        self.horizontalHeaderItem(self.SURE).setToolTip(
            "keypoint confidence: the chance that the predicted point is within 3 px (96 px "
            "crop) of where a labeller would put it" + (f"\nfrom {source}" if source else ""))
