"""Video mode: a video's frames on the canvas with a frame slider and play/pause under it,
and the faces of the frame shown (boxes, track ids, keypoints) predicted as it is shown.

Frames are read with OpenCV (facekp.core.photos.video.VideoReader) and tracked by
facekp.core.photos.video.FaceTracker in the engine's jobs (TensorFlow's thread): playing goes frame
after frame, so faces are followed between frames as ``facekp predict VIDEO`` follows them; a jump
of the slider starts tracking afresh (the detector runs on that frame). Playback shows the next
frame when the one before is drawn, so a slow machine plays slower rather than queueing frames.
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
        count = reader.frame_count or 1
        self.slider.blockSignals(True)
        self.slider.setRange(0, count - 1)
        self.slider.setValue(0)
        self.slider.blockSignals(False)
        self.window.session.view_mode = "video"
        self.window.files.add_recent(reader.path)
        self.bar.show()
        self.window.setWindowTitle(f"{reader.path.name} — facekp[*]")
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
        if self._busy:
            self._wanted = index
            return
        self._busy = True
        w = self.window
        w.jobs.submit(Job("video", lambda: self._make_frame(index), on_done=self._drawn,
                          on_failed=self._failed, priority=Job.NOW))

    def _make_frame(self, index: int):
        """(index, RGB frame, faces) — runs in the engine thread."""
        import cv2

        bgr = self.reader.read(index)
        if bgr is None:
            return index, None, []
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        tracker = self._tracker()
        if tracker is None:
            return index, rgb, []
        if index != self._tracked + 1:
            tracker.reset()
        self._tracked = index
        tracks = tracker.step(rgb, index / self.reader.fps,
                              gray=cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
        return index, rgb, [(t.box.as_list(), t.keypoints.copy(), t.detection) for t in tracks]

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
        index, rgb, faces = result
        w = self.window
        if rgb is None or self.reader is None:
            self.set_playing(False)
        elif w.session.view_mode == "video":
            self._draw(index, rgb, faces)
        if self._wanted is not None:
            wanted, self._wanted = self._wanted, None
            self.show_frame(wanted)

    def _draw(self, index: int, rgb, faces) -> None:
        from .canvas import rgb_qimage

        c = self.window.canvas
        if c.mode == "photo" and self.index >= 0:
            c.pixmap_item.setPixmap(QPixmap.fromImage(rgb_qimage(rgb)))
            c.set_faces(faces)
        else:
            c.show_photo(rgb, faces)
        self.index = index
        self.slider.blockSignals(True)
        self.slider.setValue(index)
        self.slider.blockSignals(False)
        n = len(faces)
        self.label.setText(f" frame {index + 1} / {self.slider.maximum() + 1} · "
                           f"{index / self.reader.fps:.2f} s · {n} face{'s' if n != 1 else ''}")
        self.frameShown.emit(index)

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

    def _tick(self) -> None:
        if self._busy or self.reader is None:
            return
        if self.index >= self.slider.maximum():
            self.set_playing(False)
            return
        self.show_frame(self.index + 1)
