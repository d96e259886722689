"""Photo > Add faces to dataset: the faces of the photo on screen become dataset faces, cut out
with the crop their keypoints came from (facekp.core.photos.photo_faces), the model's points as
labels marked as not yet checked, the photo's name kept. One undoable step."""
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
        """The faces of the photo on screen that can be added, as they are drawn."""
        s = self.window.session
        if s.view_mode != "photo" or s.photo is None:
            return []
        return addable_faces(self.window.photos.shown_faces(s.photo))

    def can_add(self) -> bool:
        return bool(self._shown())

    def add_to_dataset(self) -> int:
        """Add the photo's faces as they are shown: those the detector is unsure of stay out
        while they are hidden, and the points the model is unsure of stay missing while those
        are hidden. Returns how many were added."""
        from facekp.core.data.dataset import Dataset
        from facekp.core.photos.photo_faces import add_faces, photo_dataset

        w = self.window
        photo = w.session.photo
        shown = self._shown()
        if not shown:
            hidden = photo is not None and w.session.view_mode == "photo" and \
                addable_faces(photo.faces)
            w.show_error("No face shown to add: Photo > Hide unsure faces hides them all"
                         if hidden else
                         "No predicted faces to add: open a photo with a model loaded")
            return 0
        new = photo_dataset(photo.image, [(f[3], f[1]) for f in shown], photo.path)
        before = w.session.dataset
        if before is None:
            before = Dataset.from_arrays(np.zeros((0, 96, 96), np.uint8))
        after = add_faces(before, new)
        n = len(new)
        w.undo_stack.push(ReplaceDatasetCommand(
            w, before, after, f"add {n} face{'s' if n != 1 else ''} of {photo.path.name}",
            rows=(len(before), max(0, len(before) - 1) if len(before) else None)))
        w.statusBar().showMessage(
            f"Added {n} face{'s' if n != 1 else ''} of {photo.path.name} to {w.session.label} "
            f"(faces {len(before)}-{len(after) - 1}): the model's points, not yet checked"
            f"{' (its unsure points, hidden, left missing)' if self._hiding_points() else ''}"
            " — correct them, then save", 15000)
        return n

    def _hiding_points(self) -> bool:
        return self.window.acts["hide_unsure_points"].isChecked()
