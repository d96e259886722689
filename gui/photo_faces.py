"""Photo > Add faces to dataset: the faces of the photo on screen become dataset faces, cut out
with the crop their keypoints came from (facekp.core.photos.photo_faces), the model's points as
labels marked as not yet checked, the photo's name kept. One undoable step."""
from __future__ import annotations

import numpy as np

from .editing import ReplaceDatasetCommand


def addable_faces(photo) -> list:
    """The photo's faces that have keypoints and the crop they came from."""
    if photo is None:
        return []
    return [f for f in photo.faces if len(f) > 3 and f[1] is not None and f[3] is not None]


class PhotoFaces:
    """Adding a photo's faces to the window's dataset (or to a new one)."""

    def __init__(self, window):
        self.window = window

    def can_add(self) -> bool:
        s = self.window.session
        return s.view_mode == "photo" and bool(addable_faces(s.photo))

    def add_to_dataset(self) -> int:
        """Add the photo's shown faces (those the detector is unsure of stay out while they
        are hidden); returns how many were added."""
        from facekp.core.data.dataset import Dataset
        from facekp.core.photos.photo_faces import add_faces, photo_dataset

        w = self.window
        photo = w.session.photo
        ok = {id(f) for f in addable_faces(photo)}
        shown = [f for f in w.photos.shown_faces(photo) if id(f) in ok] if photo else []
        if w.session.view_mode != "photo" or not shown:
            w.show_error("No predicted faces to add: open a photo with a model loaded")
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
            f"(faces {len(before)}-{len(after) - 1}): the model's points, not yet checked — "
            "correct them, then save", 15000)
        return n
