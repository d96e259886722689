"""The review queue in the window: a dock to choose the queue and see why a face is in it,
Space / Shift+Space to step through it, and its kind and position kept between sessions.

The queues themselves are :mod:`facekp.core.quality.review` (ordering) and
:class:`facekp.gui.session.ReviewQueue` (position), both without Qt. A queue is rebuilt when its
inputs change (a dataset, a model's predictions, confidence), never while the person edits, so it
does not jump under them; the "Re-sort" button rebuilds it on request.

Besides core's queues, the app has one of its own: the faces not yet checked (predicted
points, e.g. a photo's faces added to the dataset), with "Mark as checked" (C) to set or clear
a face's flag, one undoable step. The dock says where the face on screen is in the queue, how
far the predictions or confidence a queue waits for have come, and a face's reason again after
each edit (the queue's order stays until it is rebuilt).

Confidence, computed in the background when a queue needs it: the model's own per-keypoint
confidence (:mod:`facekp.core.model.confidence`, a head beside the model file) where it has one,
else the stand-in, the agreement between each face and its mirror image
(:func:`facekp.core.quality.review.flip_disagreement`).
"""
from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QUndoCommand
from PySide6.QtWidgets import (QComboBox, QGridLayout, QHBoxLayout, QLabel, QPushButton,
                               QVBoxLayout, QWidget)

from facekp.core.quality.review import KINDS, NEEDS_CONFIDENCE, Reasons

from . import settings as app_settings
from .session import ReviewQueue
from .workers import Job

CHUNK = 256
STAND_IN = "flip agreement (stand-in: this model has no confidence head)"
HEAD = "the model's confidence head (chance each point is within 3 px)"
#: The app's own queue: faces whose points were predicted and nobody has checked yet.
UNCHECKED = "unchecked"
#: Every queue of the dock: core's (facekp.core.quality.review.KINDS) and the app's own.
ALL_KINDS = {**KINDS, UNCHECKED: "Not yet checked"}


class SetCheckedCommand(QUndoCommand):
    """Mark one face as checked or not checked (its ``Dataset.checked`` flag)."""

    def __init__(self, review: "Review", dataset, row: int, checked: bool):
        super().__init__(f"mark face {row} as {'checked' if checked else 'not checked'}")
        self.review, self.dataset, self.row, self.checked = review, dataset, row, checked

    def redo(self) -> None:
        self.review.set_checked(self.dataset, self.row, self.checked)

    def undo(self) -> None:
        self.review.set_checked(self.dataset, self.row, not self.checked)


class ReviewPanel(QWidget):
    """The Review dock: queue kind, position, the reason for the face, and buttons that
    mirror the Review menu."""

    kindChanged = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.kind_box = QComboBox()
        for key, text in ALL_KINDS.items():
            self.kind_box.addItem(text, key)
        self.kind_box.currentIndexChanged.connect(
            lambda _i: self.kindChanged.emit(self.kind_box.currentData()))
        self.position = QLabel("")
        self.position.setWordWrap(True)   # "waiting for predictions: 1,024 / 3,893 faces…"
        self.reason = QLabel("")
        self.reason.setWordWrap(True)
        self.reason.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.note = QLabel("")
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: gray")
        self.buttons: dict[str, QPushButton] = {}
        top = QHBoxLayout()
        top.addWidget(QLabel("Queue:"))
        top.addWidget(self.kind_box, 1)
        grid = QGridLayout()
        for i, (name, text) in enumerate((("queue_prev", "◀ Previous"), ("queue_next", "Next ▶"),
                                          ("accept_point", "Accept point"),
                                          ("accept_face", "Accept face"),
                                          ("place", "Place missing"),
                                          ("mark_checked", "Mark as checked"),
                                          ("resort", "Re-sort"))):
            self.buttons[name] = QPushButton(text)
            grid.addWidget(self.buttons[name], i // 2, i % 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.position)
        layout.addWidget(self.reason)
        layout.addLayout(grid)
        layout.addWidget(self.note)
        layout.addStretch(1)

    def set_kind(self, kind: str) -> None:
        self.kind_box.blockSignals(True)
        self.kind_box.setCurrentIndex(max(0, self.kind_box.findData(kind)))
        self.kind_box.blockSignals(False)


class Review:
    """The review queue of one window: building, stepping, remembering."""

    def __init__(self, window):
        self.window = window
        self.panel = ReviewPanel(window)
        self.kind = window.options.queue or "worst"
        self._inputs: tuple = ()            # what the queue was built from
        self._dataset = None
        self._pending_row: int | None = None    # a remembered position, until the queue is
        self._start = bool(window.options.queue)  # complete; or go to its first face then
        self._stepping = False
        self._confidence_for = None
        self._first_row: int | None = None      # the face a dataset was first shown at
        if window.options.remember and not window.options.queue:
            self.kind = str(app_settings.settings().value("review/kind", self.kind))
        self.kind = self.kind if self.kind in ALL_KINDS else "worst"
        self._built_for = None                  # the dataset the session's queue is of
        self._confidence_done = (0, 0)          # faces with confidence so far, of how many
        self.panel.set_kind(self.kind)

    def connect(self) -> None:
        """Signals (after the window's actions exist: the dock's buttons trigger them)."""
        w = self.window
        self.panel.kindChanged.connect(self.set_kind)
        for name, button in self.panel.buttons.items():
            if name == "resort":
                button.clicked.connect(self.rebuild)
            else:
                act = w.acts[name]
                button.clicked.connect(act.trigger)
                button.setToolTip(f"{act.text().replace('&', '')} "
                                  f"({act.shortcut().toString() or 'no key'})")
        w.idle.connect(self.refresh)
        w.dataset_panel.splitChanged.connect(lambda _split: self.refresh())
        w.dataset_panel.currentChanged.connect(self._face_changed)
        w.undo_stack.indexChanged.connect(self._edited)

    # --- the queue ---------------------------------------------------------------------------
    def set_kind(self, kind: str) -> None:
        """Another queue: built now, and the person goes to its first face (when ready)."""
        self.kind = kind
        self.panel.set_kind(kind)
        self._remember("review/kind", kind)
        self._start = True
        self.refresh()

    def _key(self) -> tuple:
        s = self.window.session
        return (s.dataset, s.predictions, s.all_predicted(), s.confidence, self.kind,
                self.window.dataset_panel.split, len(s))

    def refresh(self) -> None:
        """When idle: a new dataset, new predictions or confidence rebuild the queue; a queue
        that needs confidence asks for it."""
        s = self.window.session
        if s.dataset is not self._dataset:
            self.dataset_shown(s.row, opened=False)
        self._want_confidence()
        if not self._inputs or any(a != b if isinstance(a, str) else a is not b
                                   for a, b in zip(self._key(), self._inputs)):
            self.rebuild()

    def rebuild(self) -> None:
        s = self.window.session
        self._inputs = self._key()
        panel = self.window.dataset_panel
        started = s.queue.position >= 0 or s.row != self._first_row
        q = self._build(None if panel.split == "all" else panel.visible_rows())
        self._built_for = s.dataset
        if started and s.view_mode == "dataset" and s.row is not None and not self._stepping:
            q.seek(s.row)    # once the person is in the queue, Space goes on from this face
        if not q.waiting and self._pending_row is not None:
            # only a person who is still where the dataset opened is taken there
            if q.seek(self._pending_row) and s.view_mode == "dataset" and \
                    s.row == self._first_row:
                self._go(self._pending_row)
            self._pending_row = None
        elif not q.waiting and self._start and len(q):
            self._start = False
            q.position = -1
            self.step(1)
        self.update_panel()

    def _build(self, rows) -> ReviewQueue:
        """The session's queue of this kind, built now over ``rows`` (None: every face)."""
        s = self.window.session
        if self.kind != UNCHECKED:
            return s.build_queue(self.kind, rows)
        ds, at = s.dataset, s.queue.current_row
        todo = np.zeros(0, int) if ds is None else np.flatnonzero(~ds.checked)
        if rows is not None:
            todo = todo[np.isin(todo, rows)]
        s.queue = ReviewQueue(UNCHECKED, todo, Reasons(partial(unchecked_reason, ds), todo))
        if at is not None:
            s.queue.seek(at)
        return s.queue

    def step(self, delta: int) -> None:
        """Space / Shift+Space: the next or previous face of the queue."""
        s = self.window.session
        if s.dataset is None:
            return
        if not self._inputs:
            self.rebuild()
        q = s.queue
        if q.waiting:
            what = "the predictions are" if q.waiting == "predictions" else "confidence is"
            self._say(f"The {ALL_KINDS[q.kind].lower()} queue fills once {what} ready")
            return
        before = q.position
        self._pending_row = None                 # the person moves on from here
        row = q.step(delta)
        if row is None:
            self._say(f"No faces in the {ALL_KINDS[q.kind].lower()} queue")
            return
        if q.position == before:
            self._say("End of the queue" if delta > 0 else "Start of the queue", 4000)
        self._go(row)
        self._remember("review/row", row)
        self.update_panel()

    def _go(self, row: int) -> None:
        w = self.window
        self._stepping = True
        try:
            w.select_row(row)
            if w.session.view_mode != "dataset" or w.session.row != row:
                w.show_row(row)
        finally:
            self._stepping = False

    def _face_changed(self, row: int) -> None:
        q = self.window.session.queue
        if not self._stepping and row != self._first_row:
            self._pending_row = None             # the person moved: they stay where they are
        if not self._stepping and q.seek(row):
            self._remember("review/row", row)
        self.update_panel()

    def dataset_shown(self, row: int | None, opened: bool) -> None:
        """A dataset is being shown at face ``row`` (before it is selected). One ``opened``
        from its file (not one an undoable step changed) goes to the remembered position of
        its queue once the queue is ready, unless the person has gone to another face (or a
        photo) by then."""
        s = self.window.session
        self._dataset, self._inputs, self._confidence_for = s.dataset, (), None
        self._confidence_done = (0, 0)
        self._first_row = row
        self._pending_row = None
        if opened and self.window.options.remember and s.dataset_path is not None:
            st = app_settings.settings()
            if st.value("review/dataset") == str(s.dataset_path.resolve()):
                row = st.value("review/row")
                self._pending_row = int(row) if row is not None else None
                # a remembered place wins over --queue's first face; without one, --queue
                # still starts there
                self._start = self._start and self._pending_row is None
            else:
                st.remove("review/row")
            self._remember("review/dataset", str(s.dataset_path.resolve()))

    # --- confidence --------------------------------------------------------------------------
    def _want_confidence(self) -> None:
        w, s = self.window, self.window.session
        if (self.kind not in NEEDS_CONFIDENCE or s.confidence is not None or w.predictor is None
                or not s.all_predicted() or self._confidence_for is s.predictions):
            return
        self._confidence_for = s.predictions
        n = len(s)
        buffer = np.full((n, s.prediction_set.size), np.nan)
        left = {"chunks": -(-n // CHUNK)}
        images, predictor, holder = s.dataset.images, w.predictor, {}
        predictions = s.predictions

        own = predictor.confidence_head is not None  # the model's own head, else the stand-in

        def job(rows):
            from facekp.core.quality import review

            if own:
                return rows, predictor.predict_with_confidence(images[rows])[1]
            single = holder.setdefault("single", None) or review.single_view(predictor)
            holder["single"] = single
            return rows, review.flip_disagreement(single, images[rows])

        def done(result):
            rows, values = result
            buffer[rows] = values
            left["chunks"] -= 1
            if s.predictions is predictions:
                self._confidence_done = (self._confidence_done[0] + len(rows), n)
            if left["chunks"] == 0 and s.predictions is predictions:
                from facekp.core.quality.review import flip_confidence

                s.confidence, s.confidence_source = ((buffer, HEAD) if own
                                                     else (flip_confidence(buffer), STAND_IN))
                self._say("Review queue: confidence ready", 3000)
                w.update_keypoint_errors()
            if s.predictions is predictions:
                self.update_panel()
        self._say(f"Review queue: computing confidence ({'the model' if own else 'flip agreement'}"
                  ")…", 0)
        self._confidence_done = (0, n)
        gen = w.jobs.engine.generation
        for a in range(0, n, CHUNK):
            w.jobs.submit(Job("confidence", lambda r=np.arange(a, min(a + CHUNK, n)): job(r),
                              on_done=done, on_failed=w.show_error, priority=Job.BACKGROUND,
                              generation=gen))

    def face_confidence(self) -> tuple[np.ndarray | None, str, str]:
        """Keypoint confidences (15,) of the face on screen, where they come from and the
        column's title, for the Keypoint errors dock: a dataset face's from the review queues'
        confidence when it is ready, else from the model's head, computed for this one face
        (in the background: the dock is refreshed when it is done); for a photo, the face
        whose errors the dock shows, else its first (facekp.gui.photos)."""
        w, s = self.window, self.window.session
        if s.view_mode == "photo":
            values, index = w.photos.keypoint_confidence()
            return values, HEAD, f"face {index + 1} sure"
        if s.view_mode != "dataset" or s.row is None or s.dataset is None:
            return None, "", "sure"
        if s.confidence is not None:
            return s.confidence[s.row], s.confidence_source, "sure"
        if s.row in s.face_confidence:
            return s.face_confidence[s.row], HEAD, "sure"
        predictor, row, cache = w.predictor, s.row, s.face_confidence
        if predictor is None or predictor.confidence_head is None or \
                not np.isfinite(s.predictions[row]).all():
            return None, "", "sure"
        image = s.dataset.images[row:row + 1]

        def done(values):
            cache[row] = values[0]
            if s.face_confidence is cache and s.row == row and s.view_mode == "dataset":
                w.update_keypoint_errors()
        cache.setdefault(row, np.full(s.prediction_set.size, np.nan))  # asked for once
        w.jobs.submit(Job("face confidence", lambda: predictor.predict_with_confidence(image)[1],
                          on_done=done, on_failed=w.show_error, priority=Job.NOW))
        return None, "", "sure"

    # --- showing and remembering -------------------------------------------------------------
    def update_panel(self) -> None:
        """The dock: where the face on screen is in the queue (or how far what the queue
        waits for has come), why the face is in it, and the checked button's text."""
        s, p = self.window.session, self.panel
        q = s.queue
        waiting = self.waiting_for()
        if q.waiting and not waiting and q.kind == self.kind and self._built_for is s.dataset:
            return self.rebuild()        # what it waited for is here: the queue, at once
        row = s.row if s.view_mode == "dataset" else None
        p.position.setText(self._position(q, waiting, row))
        if waiting or row is None or self._built_for is not s.dataset:
            p.reason.setText("")
        else:
            reason = q.reason(row)
            p.reason.setText(f"<b>Face {row}</b>: {reason}" if reason else
                             f"Face {row} is not in this queue")
        p.note.setText(f"Confidence: {s.confidence_source}" if s.confidence_source and
                       self.kind in NEEDS_CONFIDENCE else "")
        self._update_checked_action()

    def waiting_for(self) -> str:
        """What this queue waits for now: "predictions", "confidence" or "" (ready)."""
        s = self.window.session
        if s.dataset is None or self.kind == UNCHECKED:
            return ""
        return s.queue_waiting_for(self.kind)

    def _position(self, q: ReviewQueue, waiting: str, row: int | None) -> str:
        """"8 / 120" for the face on screen (the queue's position when it is not in it),
        or how far the predictions or confidence the queue waits for have come."""
        s = self.window.session
        if waiting == "predictions":
            done = 0 if s.predictions is None else \
                int((~np.isnan(s.predictions).all(axis=1)).sum())
            return f"waiting for predictions: {done:,} / {len(s):,} faces…"
        if waiting == "confidence":
            done, n = self._confidence_done
            return (f"waiting for confidence: {done:,} / {n:,} faces…" if n else
                    "waiting for confidence…")
        if self._built_for is not s.dataset:
            return "building the queue…"
        if not len(q):
            return "no faces in this queue"
        hits = np.flatnonzero(q.rows == row) if row is not None else []
        at = int(hits[0]) if len(hits) else -1
        if at < 0:
            last = f"{q.position + 1:,}" if q.position >= 0 else "–"
            return f"– / {len(q):,} (last: {last})"
        return f"{at + 1:,} / {len(q):,}"

    # --- checked or not --------------------------------------------------------------------
    def toggle_checked(self) -> None:
        """Mark the face on screen as checked, or (when it is) as not checked: undoable."""
        w, s = self.window, self.window.session
        if s.dataset is None or s.row is None or s.view_mode != "dataset":
            return
        w.undo_stack.push(SetCheckedCommand(self, s.dataset, s.row,
                                            not bool(s.dataset.checked[s.row])))

    def set_checked(self, dataset, row: int, checked: bool) -> None:
        w, s = self.window, self.window.session
        dataset.checked[row] = checked
        if s.dataset is dataset and s.row == row and s.view_mode == "dataset":
            w.statusBar().showMessage(s.face_text(row))
        self.update_panel()

    def _update_checked_action(self) -> None:
        s = self.window.session
        act = self.window.acts.get("mark_checked") if hasattr(self.window, "acts") else None
        if act is None:
            return
        on_screen = s.dataset is not None and s.row is not None and s.row < len(s) and \
            s.view_mode == "dataset"
        checked = on_screen and bool(s.dataset.checked[s.row])
        act.setText("Mark face as &not checked" if checked else "Mark face as &checked")
        self.panel.buttons["mark_checked"].setText("Mark not checked" if checked
                                                   else "Mark as checked")

    # --- reasons after an edit ---------------------------------------------------------------
    def _edited(self, _index: int) -> None:
        """An edit (or its undo): each face's reason is said again for the dataset as it is
        now; the order stays (the queue does not jump under the person) until it is rebuilt.
        A face the edit took out of the queue says so."""
        if self.window._closing:           # (a closing window's stack clears itself)
            return
        s = self.window.session
        q = s.queue
        if s.dataset is None or self._built_for is not s.dataset or not len(q) or \
                q.kind != self.kind or self.waiting_for():
            return self.update_panel()
        fresh = self._fresh_reasons()
        gone = _DONE.get(self.kind, "no longer in this queue (after an edit)")
        in_fresh = set(fresh.rows.tolist())
        q.reasons = Reasons(lambda r: fresh.say(r) if r in in_fresh else gone, q.rows)
        self.update_panel()

    def _fresh_reasons(self) -> Reasons:
        """The reasons of this kind of queue for the dataset as it is now (written when
        read; ``rows``: the faces in it)."""
        s = self.window.session
        if self.kind == UNCHECKED:
            return Reasons(partial(unchecked_reason, s.dataset),
                           np.flatnonzero(~s.dataset.checked))
        predicted = s.predictions if s.all_predicted() and not s.model_problem else None
        return s.core_queue(self.kind, predicted).reasons

    def _say(self, text: str, ms: int = 6000) -> None:
        self.window.statusBar().showMessage(text, ms)

    def _remember(self, key: str, value) -> None:
        if self.window.options.remember:
            app_settings.settings().setValue(key, value)

    def show_shortcuts(self) -> None:
        from .shortcuts import ShortcutsDialog

        ShortcutsDialog(self.window).show()



#: What a face that an edit took out of a queue says.
_DONE = {"missing": "no points missing now", UNCHECKED: "checked",
         "worst": "no longer comparable (no labelled point with a prediction)"}


def unchecked_reason(dataset, row: int) -> str:
    """Why a face is in the not-yet-checked queue."""
    source = str(dataset.sources[row]) if dataset is not None else ""
    return ("predicted points, not yet checked" +
            (f" (from {Path(source).name})" if source else ""))
