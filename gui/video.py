"""Video mode: a video's frames on the canvas with a frame slider and play/pause under it,
and the faces of the frame shown (boxes, track ids, keypoints) predicted as it is shown.

Frames are read with OpenCV (facekp.core.photos.video.VideoReader) and tracked by
facekp.core.photos.video.FaceTracker in the engine's jobs (TensorFlow's thread): playing goes frame
after frame, so faces are followed between frames as ``facekp predict VIDEO`` follows them; a jump
of the slider starts tracking afresh (the detector runs on that frame). Playback shows the next
frame when the one before is drawn, so a slow machine plays slower rather than queueing frames.

Paused, "," and "." step a frame back and on, and Photo > Add faces to dataset adds the frame's
faces (:mod:`facekp.gui.photo_faces`). While two models are compared (the Models dock), the
second one's keypoints are drawn on each face of the frame, in its crop, as on dataset faces.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QPixmap
from PySide6.QtWidgets import QLabel, QSlider, QToolBar

from .workers import Job


class Video(QObject):
    """The video of one window: its toolbar (play/pause, slider, frame label) and state."""

    frameShown = Signal(int)            # frame index, once drawn with its faces

    def __init__(self, window):
        super().__init__(window)
        self.window = window
        self.reader = None
        self.tracker = None
        self.index = -1                  # frame on screen
        self._tracked = -2               # last frame the tracker saw
        self._wanted: int | None = None  # frame asked for while another is being made
        self._busy = False
        self._asked = -1                 # the last frame asked for (where "." steps from)
        self.frame: tuple | None = None  # (index, RGB frame, faces) on screen
        self.timer = QTimer(self)
        self.timer.timeout.connect(self._tick)
        self._make_bar()

    def _make_bar(self) -> None:
        bar = self.bar = QToolBar("Video", self.window)
        bar.setObjectName("video-toolbar")
        self.play_action = QAction("Play", bar)
        self.play_action.setCheckable(True)
        self.play_action.setShortcut("Space")
        self.play_action.toggled.connect(self.set_playing)
        bar.addAction(self.play_action)
        # Play and Pause take the same width, so that the slider stays where it is
        button = bar.widgetForAction(self.play_action)
        button.setFixedWidth(max(button.fontMetrics().horizontalAdvance(t)
                                 for t in ("Play", "Pause")) + 20)
        self.label = QLabel("", bar)
        self.label.setMinimumWidth(260)
        bar.addWidget(self.label)
        self.slider = QSlider(Qt.Orientation.Horizontal, bar)
        self.slider.valueChanged.connect(self.show_frame)
        bar.addWidget(self.slider)
        self.window.addToolBar(Qt.ToolBarArea.BottomToolBarArea, bar)
        bar.hide()

    # --- opening ------------------------------------------------------------------------
    def open(self, path: str | Path) -> bool:
        """Open a video and show its first frame; False (and a message) if OpenCV cannot."""
        from facekp.core.errors import FacekpError
        from facekp.core.photos.video import VideoReader

        try:
            reader = VideoReader(path)
        except FacekpError as exc:
            self.window.show_error(str(exc))
            return False
        self.set_playing(False)
        if self.reader is not None:
            self.reader.close()
        self.reader, self.tracker, self.index, self._tracked = reader, None, -1, -2
        self.frame = None
        count = reader.frame_count or 1
        # as wide as the widest text this video gives: the slider beside it never moves
        self.label.setFixedWidth(max(260, self.label.fontMetrics().horizontalAdvance(
            _frame_text(count - 1, count, count / reader.fps, 88)) + 12))
        self.slider.blockSignals(True)
        self.slider.setRange(0, count - 1)
        self.slider.setValue(0)
        self.slider.blockSignals(False)
        self.window.session.view_mode = "video"
        self.window.files.add_recent(reader.path)
        self.bar.show()
        self.window.update_title()
        self.window.update_enabled()  # Space is the video's now, not the review queue's
        self.window.update_keypoint_errors()  # a video has no truth: not the dataset face's
        self.show_frame(0)
        return True

    def leave(self) -> None:
        """Another view takes the canvas: playback stops and the video's bar hides."""
        self.set_playing(False)
        self.bar.hide()

    # --- frames -------------------------------------------------------------------------
    def show_frame(self, index: int) -> None:
        """Read, track and draw frame ``index`` (in a job; the latest request wins)."""
        if self.reader is None:
            return
        self._asked = index
        if self._busy:
            self._wanted = index
            return
        self._busy = True
        w = self.window
        second = self._second()
        w.jobs.submit(Job("video", lambda: self._make_frame(index, second),
                          on_done=self._drawn, on_failed=self._failed, priority=Job.NOW))

    def _second(self):
        """The second model of a comparison (the Models dock), when it predicts the points of
        the window's model (its crosses are drawn beside the model's); else None."""
        w = self.window
        second = w.model_list.second[1] if w.model_list.second is not None else None
        if second is None or w.predictor is None or \
                second.keypoint_set != w.predictor.keypoint_set:
            return None
        return second

    def redraw(self) -> None:
        """The frame on screen again (a second model to compare came or went)."""
        if self.reader is not None and self.index >= 0:
            self.show_frame(self.index)

    def step(self, delta: int) -> None:
        """Go > Previous / Next frame (, and .): one frame back or on, while paused."""
        if self.reader is None or self.play_action.isChecked():
            return
        target = min(max(self._asked + delta, 0), self.slider.maximum())
        if target != self._asked:
            self.show_frame(target)

    def _make_frame(self, index: int, second=None):
        """(index, RGB frame, faces, the second model's keypoints of each face or None) —
        runs in the engine thread. A face is (box, keypoints, detection, the crop they were
        predicted in), as a photo's."""
        import cv2

        bgr = self.reader.read(index)
        if bgr is None:
            return index, None, [], None
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        tracker = self._tracker()
        if tracker is None:
            return index, rgb, [], None
        if index != self._tracked + 1:
            tracker.reset()
        self._tracked = index
        gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        tracks = tracker.step(rgb, index / self.reader.fps, gray=gray)
        faces = [(t.box.as_list(), t.keypoints.copy(), t.detection, t.crop) for t in tracks]
        compare = second.predict_crops(gray, [t.crop for t in tracks]) \
            if second is not None and tracks else None
        return index, rgb, faces, compare

    def _tracker(self):
        """The tracker on the window's current model and the Photo menu's detector."""
        predictor = self.window.predictor
        predictor = None if predictor is None else predictor.for_photos()
        if predictor is None:
            return None
        if self.tracker is None or self.tracker.predictor is not predictor:
            from facekp.core.photos.video import FaceTracker

            self.tracker = FaceTracker(predictor, fps=self.reader.fps)
            self._tracked = -2
        photos = self.window.photos
        predictor.detector = photos._detector(photos.detector_name())
        return self.tracker

    def _drawn(self, result) -> None:
        self._busy = False
        index, rgb, faces, compare = result
        w = self.window
        if rgb is None or self.reader is None:
            self.set_playing(False)
        elif w.session.view_mode == "video":
            self._draw(index, rgb, faces, compare)
        if self._wanted is not None:
            wanted, self._wanted = self._wanted, None
            self.show_frame(wanted)

    def _draw(self, index: int, rgb, faces, compare=None) -> None:
        from .canvas import rgb_qimage

        c = self.window.canvas
        if c.mode == "photo" and self.index >= 0:
            c.pixmap_item.setPixmap(QPixmap.fromImage(rgb_qimage(rgb)))
            c.set_faces(faces, compare=compare)
        else:
            c.show_photo(rgb, faces, compare=compare)
        self.index, self.frame = index, (index, rgb, faces)
        self.slider.blockSignals(True)
        self.slider.setValue(index)
        self.slider.blockSignals(False)
        self.label.setText(self.frame_text())
        self.say()
        self.window.update_enabled()           # Add faces to dataset: this frame's faces
        self.frameShown.emit(index)

    def frame_text(self) -> str:
        """" frame 21 / 32 · 0.80 s · 1 face" of the frame on screen."""
        index, _rgb, faces = self.frame
        return _frame_text(index, self.slider.maximum() + 1, index / self.reader.fps,
                           len(faces))

    def say(self) -> None:
        """The status bar names the video and the frame on screen (never a dataset face), and
        while paused what can be done with it."""
        if self.frame is None or self.reader is None:
            return
        text = f"{self.reader.path.name} ·{self.frame_text()}"
        if self.window.model_list.second is not None and self.frame[2]:
            text += (" · red × the model, blue + the second model" if self._second() else
                     " · the second model predicts another keypoint set: not drawn")
        if not self.play_action.isChecked():
            text += " · paused: , and . step a frame; Ctrl+Shift+A adds its faces to the dataset"
        self.window.statusBar().showMessage(text)

    def paused_frame(self) -> tuple | None:
        """(index, RGB frame, faces) of the frame on screen while the video is paused."""
        if self.window.session.view_mode != "video" or self.play_action.isChecked():
            return None
        return self.frame

    def _failed(self, message: str) -> None:
        self._busy = False
        self.set_playing(False)
        self.window.show_error(message)

    # --- playing ------------------------------------------------------------------------
    def set_playing(self, on: bool) -> None:
        if self.play_action.isChecked() != bool(on):
            self.play_action.setChecked(bool(on))     # comes back here through toggled
            return
        self.play_action.setText("Pause" if on else "Play")
        if on and self.reader is not None:
            self.timer.start(max(1, round(1000 / self.reader.fps)))
        else:
            self.timer.stop()
        if self.window.session.view_mode == "video":
            self.window.update_enabled()       # frame steps and adding faces: when paused
            self.say()

    def _tick(self) -> None:
        if self._busy or self.reader is None:
            return
        if self.index >= self.slider.maximum():
            self.set_playing(False)
            return
        self.show_frame(self.index + 1)


def _frame_text(index: int, count: int, seconds: float, faces: int) -> str:
    return (f" frame {index + 1} / {count} · {seconds:.2f} s · "
            f"{faces} face{'s' if faces != 1 else ''}")
