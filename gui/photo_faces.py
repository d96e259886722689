"""Photo > Add faces to dataset: the faces of the photo on screen (or of the paused video's frame)
become dataset faces, cut out with the crop their keypoints came from
(facekp.core.photos.photo_faces), the model's points as labels marked as not yet checked, the
photo's name kept (a frame's faces are named after the video and the frame, as the video's bar
numbers it: ``clip.mp4@frame12#1``). One undoable step."""
from __future__ import annotations

import numpy as np

from .editing import ReplaceDatasetCommand


def addable_faces(faces) -> list:
    """The faces (a photo's, or those drawn of it) that have keypoints and the crop they came
    from."""
    return [f for f in faces if len(f) > 3 and f[1] is not None and f[3] is not None]


class PhotoFaces:
    """Adding a photo's faces to the window's dataset (or to a new one)."""

    def __init__(self, window):
        self.window = window

    def _shown(self) -> list:
        """The faces of the photo or paused video frame on screen that can be added, as they
        are drawn."""
        source = self._source()
        return addable_faces(source[3]) if source else []

    def _source(self) -> tuple | None:
        """(picture, path, name of its faces, faces drawn) of the photo on screen or of the
        paused video's frame; None for anything else."""
        w = self.window
        s = w.session
        if s.view_mode == "photo" and s.photo is not None:
            return s.photo.image, s.photo.path, s.photo.path.name, \
                w.photos.shown_faces(s.photo)
        frame = w.video.paused_frame()
        if frame is None:
            return None
        index, rgb, faces = frame
        path = w.video.reader.path
        return rgb, path, f"{path.name}@frame{index + 1}", faces

    def can_add(self) -> bool:
        return bool(self._shown())

    def add_to_dataset(self) -> int:
        """Add the photo's (or the paused frame's) faces as they are shown: those the detector
        is unsure of stay out while they are hidden, and the points the model is unsure of stay
        missing while those are hidden. Returns how many were added."""
        from facekp.core.data.dataset import Dataset
        from facekp.core.photos.photo_faces import add_faces, photo_dataset

        w = self.window
        source = self._source()
        shown = addable_faces(source[3]) if source else []
        if not shown:
            w.show_error(self._why_none())
            return 0
        image, path, name, _faces = source
        new = photo_dataset(image, [(f[3], f[1]) for f in shown], path, name=name)
        hiding = self._hiding_points() and w.session.view_mode == "photo"
        before = w.session.dataset
        if before is None:
            before = Dataset.from_arrays(np.zeros((0, 96, 96), np.uint8))
        after = add_faces(before, new)
        n = len(new)
        w.undo_stack.push(ReplaceDatasetCommand(
            w, before, after, f"add {n} face{'s' if n != 1 else ''} of {name}",
            rows=(len(before), max(0, len(before) - 1) if len(before) else None)))
        w.statusBar().showMessage(
            f"Added {n} face{'s' if n != 1 else ''} of {name} to {w.session.label} "
            f"(faces {len(before)}-{len(after) - 1}): the model's points, not yet checked"
            f"{' (its unsure points, hidden, left missing)' if hiding else ''}"
            " — correct them, then save", 15000)
        return n

    def _why_none(self) -> str:
        """Why there is no face to add, in words a person can act on."""
        w = self.window
        s = w.session
        if s.view_mode == "video":
            if w.video.play_action.isChecked():
                return "Pause the video first: the faces of the frame on screen are added"
            return "No predicted faces on this frame to add: load a model, or step to a " \
                "frame with a face (, and .)"
        photo = s.photo
        if photo is not None and s.view_mode == "photo" and addable_faces(photo.faces):
            return "No face shown to add: Photo > Hide unsure faces hides them all"
        return "No predicted faces to add: open a photo (or pause a video) with a model loaded"

    def _hiding_points(self) -> bool:
        return self.window.acts["hide_unsure_points"].isChecked()
