"""Photo mode: open a photo (decoded and scaled for the screen off the GUI thread), find and
predict its faces, and predict inside a box the person draws. Ground truth beside the photo
(facekp.core.photos.photo_truth: a .pts of the same name or a dlib XML naming it) is drawn against
the prediction, and each face's NME and per-keypoint errors are shown."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from .session import Photo
from .workers import Job

#: Longest side of a photo as drawn; larger photos are shown scaled down (faces are still
#: found and predicted on the full photo, and drawn in its coordinates).
DISPLAY_MAX = 4096


def load_for_display(path: str | Path) -> Photo:
    """Read a photo upright (facekp.core.faces.framing.load_photo) and make the picture to draw: at most
    ``DISPLAY_MAX`` pixels on its longer side. Slow for big photos: runs in a job."""
    from PIL import Image

    from facekp.core.faces import framing as faces

    from facekp.core.errors import DataError
    from facekp.core.photos.photo_truth import find_truth

    path = Path(path)
    image = faces.load_photo(path)
    w, h = image.size
    scale = max(1.0, max(w, h) / DISPLAY_MAX)
    shown = image if scale == 1.0 else image.resize(
        (max(1, round(w / scale)), max(1, round(h / scale))), Image.Resampling.BILINEAR,
        reducing_gap=2.0)
    photo = Photo(path, image, np.asarray(shown), scale)
    try:
        photo.truth = find_truth(path)
    except DataError as exc:            # the photo is still shown; the status bar says why
        photo.truth_error = str(exc)
    return photo


#: "Hide unsure faces" leaves out faces the detector is less sure of than this (MTCNN's scale).
UNSURE_BELOW = 0.95
#: ... on BlazeFace's scale (its real faces score 0.6-0.95, its false ones rarely above 0.7).
BLAZE_UNSURE_BELOW = 0.7


def unsure_below(detection) -> float:
    """The confidence under which a detection counts as unsure, on its detector's scale."""
    points = getattr(detection, "points", None)
    return BLAZE_UNSURE_BELOW if points is not None and len(points) == 6 else UNSURE_BELOW


def _detect_only(detector, image, boxes):
    """Faces without a model: the detector's boxes (and confidence), no keypoints."""
    if boxes is not None:
        return [(b.as_list(), None, None, None) for b in boxes]
    return [(d.box.as_list(), None, d, None) for d in detector.detect(image)]


class Photos:
    """Photo mode of one window (its session, canvas, jobs and status bar)."""

    def __init__(self, window):
        self.window = window
        self.opening: Path | None = None
        self._detectors: dict = {}
        self._detectors_lock = threading.Lock()  # made in the engine's job or a task thread

    def detector_name(self) -> str:
        """The face detector the Photo menu asks for: "haar", "mtcnn" or "blazeface" (the
        default)."""
        if self.window.acts["haar"].isChecked():
            return "haar"
        return "mtcnn" if self.window.acts["mtcnn"].isChecked() else "blazeface"

    def _detector(self, name: str):
        """The detector by name, made once (in a job: MTCNN loads three networks)."""
        with self._detectors_lock:
            if name not in self._detectors:
                from facekp.core.faces.detect import make_detector

                self._detectors[name] = make_detector(name)
            return self._detectors[name]

    def connect(self) -> None:
        self.window.jobs.engine.ready.connect(self._warm_up)

    def _warm_up(self, _info=None) -> None:
        """Once TensorFlow is loaded, make the photo detector in the background and run it
        once on a blank image, so that the person's first photo does not wait for it (MTCNN,
        behind BlazeFace, loads and traces its three networks: over a second and a half on 2
        cores). The model's TensorFlow Lite form is made when the model loads (gui/models.py)."""
        name = self.detector_name()

        def job():
            self._detector(name).detect(np.zeros((60, 80, 3), np.uint8))
        self.window.jobs.submit(Job("detector", job, priority=Job.BACKGROUND))

    def set_mtcnn(self, on: bool) -> None:
        """MTCNN alone (Haar off); a shown photo is searched again."""
        self._switch_detector("haar" if on else None)

    def set_haar(self, on: bool) -> None:
        """Haar's cascade (MTCNN alone off); a shown photo is searched again."""
        self._switch_detector("mtcnn" if on else None)

    def _switch_detector(self, other: str | None) -> None:
        """The two detector toggles exclude each other (turning ``other`` off, whose own
        signal comes back here with nothing to turn off); a shown photo is searched again."""
        if other is not None and self.window.acts[other].isChecked():
            self.window.acts[other].setChecked(False)
            return  # its toggled signal searched the photo again
        if self.window.session.photo is not None and self.window.session.view_mode == "photo":
            self.predict()

    def set_hide_unsure(self, what: str, on: bool) -> None:
        """Photo > Hide unsure faces (``what`` "faces") or points ("points"): the photo is
        drawn again and the status bar says how many were hidden (or shown again), or why
        none were."""
        w = self.window
        photo = w.session.photo
        if photo is None or w.session.view_mode != "photo":
            if w.isVisible():        # (not as the saved toggles are restored at start)
                w.statusBar().showMessage(f"Hide unsure {what}: {'on' if on else 'off'} "
                                          "(for photos: open one to see it)", 8000)
            return
        self.show(photo)
        w.update_enabled()     # Add faces to dataset adds the faces shown
        text = unsure_faces_text(photo.faces, on) if what == "faces" else \
            unsure_points_text(self._faces_kept(photo), on, w.predictor)
        w.statusBar().showMessage(text, 15000)

    def show(self, photo) -> None:
        """Draw the photo with its shown faces and its ground truth (if any) against them."""
        shown = self.shown_faces(photo)
        by_face = {id(f): s for f, s in zip(photo.faces, photo.scores)}
        self.window.canvas.show_photo(photo.array, shown, photo.scale,
                                      truth=photo.truth.faces if photo.truth else None,
                                      scores=[by_face.get(id(f)) for f in shown])

    def shown_faces(self, photo) -> list:
        """The photo's faces as drawn: without the unsure ones when the person hides them,
        and without the points the model is unsure of when the person hides those."""
        faces = self._faces_kept(photo)
        if self.window.acts["hide_unsure_points"].isChecked():
            faces = [_without_unsure_points(f) for f in faces]
        return faces

    def _faces_kept(self, photo) -> list:
        """The photo's faces, without the unsure ones when the person hides them."""
        if not self.window.acts["hide_unsure"].isChecked():
            return list(photo.faces)
        return [f for f in photo.faces if not _unsure_face(f)]

    def open(self, path: str | Path, option: bool = False) -> None:
        """Open a photo: read and scaled in a job; shown, then predicted, when it arrives
        (``option``: the command line's --photo, whose failure is the option's)."""
        path = Path(path)
        self.opening = path
        w = self.window
        w.statusBar().showMessage(f"Opening {path.name}…")
        w.jobs.run(Job("photo", lambda: load_for_display(path), on_done=self._loaded,
                       on_failed=lambda message: w.show_error(message, option)))

    def _loaded(self, photo: Photo) -> None:
        if photo.path != self.opening:       # another photo was asked for meanwhile
            return
        w = self.window
        w.session.photo = photo
        w.session.view_mode = "photo"
        self.show(photo)
        w.update_title()
        w.update_keypoint_errors()
        w.files.add_recent(photo.path)
        w.update_enabled()
        self.predict()

    def predict(self, boxes=None) -> None:
        """Find and predict the faces (or predict inside ``boxes``, added to those found)."""
        w = self.window
        photo = w.session.photo
        predictor = None if w.predictor is None else w.predictor.for_photos()
        done = lambda result, photo=photo, manual=boxes is not None: \
            self._predicted(photo, manual, result)
        name = self.detector_name()

        def find_and_predict():
            predictor.detector = self._detector(name)
            return predictor.predict_photo(photo.image, boxes=boxes,
                                           confidence=predictor.confidence_head is not None)

        if predictor is not None:
            w.statusBar().showMessage(f"Finding and predicting faces in {photo.path.name}…")
            w.jobs.submit(Job("photo", find_and_predict, on_done=done, on_failed=w.show_error,
                              priority=Job.NOW))
        else:
            w.jobs.run(Job("photo", lambda: _detect_only(self._detector(name), photo.image,
                                                         boxes),
                           on_done=done, on_failed=w.show_error))

    def _predicted(self, photo: Photo, manual: bool, result) -> None:
        w = self.window
        if w.session.photo is not photo:
            return
        if isinstance(result, list):           # detection only
            found, message = result, ""
        else:                                  # facekp.core.model.predict PhotoResult
            found, message = result.face_tuples(), result.message
        from facekp.core.photos.photo_truth import score_faces

        photo.faces = photo.faces + found if manual else found
        photo.scores = score_faces(photo.truth, photo.faces)
        photo.message = message or ("" if photo.faces else "no face found")
        if w.session.view_mode == "photo":
            self.show(photo)
            w.update_keypoint_errors()
        self._say(photo)
        w.update_enabled()
        w.photoShown.emit()

    def _say(self, photo: Photo) -> None:
        w = self.window
        n = len(photo.faces)
        if n == 0:
            self.set_box_mode(True)
            w.statusBar().showMessage(f"No face found in {photo.path.name}: drag a square "
                                      f"around a face to predict inside it{truth_text(photo)}")
            return
        note = "" if w.predictor is not None else \
            " (no model yet: boxes only — train or open a model to see keypoints)"
        w.statusBar().showMessage(f"{photo.path.name}: {n} face{'s' if n != 1 else ''}{note}"
                                  f"{truth_text(photo)}. Press B to draw a box around a face "
                                  "it missed.")

    def set_box_mode(self, on: bool) -> None:
        act = self.window.acts["draw_box"]
        if act.isChecked() != bool(on):
            act.setChecked(bool(on))       # comes back here through toggled
            return
        self.window.canvas.set_box_mode(bool(on))

    def box_drawn(self, box) -> None:
        if self.window.session.photo is None:
            return
        from facekp.core.faces.framing import Box

        self.set_box_mode(False)
        self.predict(boxes=[Box(*box)])

    def keypoint_errors(self, view_mode: str) -> tuple:
        """The Keypoint errors dock's values (facekp.gui.dataset_panel.KeypointErrorView.set_values)
        for a photo: each keypoint's distance in photo pixels from its truth to its prediction
        (:func:`facekp.gui.dataset_panel.point_distances`, as for dataset faces) on its first
        face with ground truth, and its mean over all its faces with ground truth."""
        from .dataset_panel import point_distances

        photo = self.window.session.photo
        pairs = [(i, s) for i, s in enumerate(photo.scores if photo else [])
                 if s.truth is not None and photo.faces[i][1] is not None]
        if view_mode != "photo" or not pairs:
            missing = "no prediction" if photo and photo.truth and view_mode == "photo" \
                else "no truth"
            return None, None, missing, f"this {view_mode}"
        pred = np.stack([np.reshape(photo.faces[i][1], -1) for i, _ in pairs])
        truth = np.stack([np.reshape(s.truth, -1) for _, s in pairs])
        each, mean = point_distances(pred, truth)
        return each[0], mean, f"photo ({len(pairs)})", f"face {pairs[0][0] + 1} (px)"

    def keypoint_confidence(self) -> tuple[np.ndarray | None, int]:
        """Keypoint confidences (15,) of the photo face the Keypoint errors dock shows (the
        first face with ground truth, else the first face; None without confidences) and that
        face's index."""
        photo = self.window.session.photo
        if photo is None or not photo.faces:
            return None, 0
        pairs = [i for i, s in enumerate(photo.scores or []) if s is not None and
                 s.truth is not None and photo.faces[i][1] is not None]
        index = pairs[0] if pairs else 0
        face = photo.faces[index]
        return (face[4] if len(face) > 4 else None), index


def truth_text(photo: Photo) -> str:
    """What the status bar says of a photo's ground truth: where it came from and each
    matched face's NME, why a truth file was not used, or nothing without one."""
    if photo.truth_error:
        return f" · ground truth not used: {photo.truth_error}"
    if photo.truth is None:
        return ""
    nmes = [f"face {i + 1} NME {s.nme:.3f}" for i, s in enumerate(photo.scores)
            if np.isfinite(s.nme)]
    return (f" · ground truth from {photo.truth.source.name}: "
            + (", ".join(nmes) if nmes else "no predicted face matches it"))


def _unsure_face(face: tuple) -> bool:
    """Whether the detector is less sure of the face than its threshold (:func:`unsure_below`:
    each detector's confidence on its own scale; never for a face without a detector's
    confidence: Haar's, or a box the person drew)."""
    detection = face[2] if len(face) > 2 else None
    conf = None if detection is None else detection.confidence
    return conf is not None and conf < unsure_below(detection)


def unsure_faces_text(faces: list, hiding: bool) -> str:
    """What Photo > Hide unsure faces did: how many faces it hid (or shows again), or why
    there is none to hide."""
    n = len(faces)
    unsure = [i + 1 for i, f in enumerate(faces) if _unsure_face(f)]
    if not n:
        return "No face on this photo to hide"
    if not any(len(f) > 2 and f[2] is not None and f[2].confidence is not None for f in faces):
        return ("No face is unsure: this detector gives no confidence (Haar, or boxes drawn "
                f"by hand), so all {n} stay shown")
    if not unsure:
        return f"No face is unsure: the detector is sure enough of all {n}"
    which = ", ".join(str(i) for i in unsure[:12]) + ("…" if len(unsure) > 12 else "")
    k = len(unsure)
    if not hiding:
        return f"Showing all {n} faces again, the {k} unsure ones too (face {which})"
    return (f"Hid {k} of {n} faces the detector is unsure of (face {which}); {n - k} shown")


def unsure_points_text(faces: list, hiding: bool, predictor=None) -> str:
    """What Photo > Hide unsure points did on the faces shown: how many points it hid (or
    shows again) on how many faces, or why there is none to hide."""
    from .canvas import UNSURE_POINT_BELOW

    with_points = [f for f in faces if f[1] is not None]
    confs = [np.asarray(f[4]) for f in with_points if len(f) > 4 and f[4] is not None]
    if not with_points:
        return "No predicted points on this photo to hide"
    if not confs:
        head = predictor is not None and getattr(predictor, "confidence_head", None)
        return ("No point is unsure: " + ("the points have no confidence yet" if head else
                "the model has no confidence head, so no point can be called unsure"))
    counts = [int((c < UNSURE_POINT_BELOW).sum()) for c in confs]
    total, faces_with = sum(counts), sum(1 for c in counts if c)
    points = sum(len(c) for c in confs)
    if not total:
        return (f"No point is unsure: every one of the {points} points has a keypoint "
                f"confidence of at least {UNSURE_POINT_BELOW:g}")
    what = f"{total} unsure point{'s' if total != 1 else ''}"
    why = f"(keypoint confidence below {UNSURE_POINT_BELOW:g}) on {faces_with} of " \
          f"{len(confs)} faces"
    return (f"Hid {what} {why}: {points - total} of {points} points shown" if hiding
            else f"Showing the {what} again {why}, in magenta")


def _without_unsure_points(face: tuple) -> tuple:
    """A photo face whose keypoints below the canvas's unsure-point confidence are missing
    (NaN), so they are not drawn; a face without keypoint confidences stays as it is."""
    from .canvas import UNSURE_POINT_BELOW

    conf = face[4] if len(face) > 4 else None
    if conf is None or face[1] is None:
        return face
    kp = np.array(face[1], dtype=np.float64).reshape(-1, 2)
    kp[np.asarray(conf) < UNSURE_POINT_BELOW] = np.nan
    return (face[0], kp, *face[2:])
