"""Edits are never lost: autosave to a recovery file, restore it when the dataset is opened
again, and a warning before overwriting a dataset that changed on disk since it was opened.

The recovery file of ``faces.npz`` is ``faces.npz.recovery`` beside it (in the app's data
folder instead for the shipped dataset or a folder that cannot be written). It is an .npz
holding every field the dataset's own .npz holds (facekp.core.data.dataset.NPZ_FIELDS: keypoints,
names, persons, splits, whether each face was checked, the photo it came from; and meta) and a
checksum of the opened file's images; the images themselves only when they are not the opened
file's (faces were added). It is written atomically a few seconds after an edit, off the GUI
thread, and removed when the edits are saved, undone or discarded. A restore is one undoable
step: undoing it shows the file as it is.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
import zlib
from pathlib import Path

import numpy as np
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QMessageBox

from . import settings as app_settings
from .workers import Job

SUFFIX = ".recovery"
#: An edit is written to the recovery file at most this long after it was made.
AUTOSAVE_SECONDS = 5.0


def file_stamp(path) -> tuple[int, int] | None:
    """(modification time ns, size) of a file; None if it is not there."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def images_checksum(images: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(images).data)


def recovery_path(dataset_path) -> Path:
    """Where the recovery file of ``dataset_path`` (None: a dataset without a file) goes."""
    from facekp.core.resources import DEFAULT_DATASET

    if dataset_path is None:
        return app_settings.data_dir() / "recovery" / f"untitled{SUFFIX}"
    path = Path(dataset_path).resolve()
    if path != Path(DEFAULT_DATASET).resolve() and os.access(path.parent, os.W_OK):
        return path.with_name(path.name + SUFFIX)
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    return app_settings.data_dir() / "recovery" / f"{path.name}.{digest}{SUFFIX}"


def write_recovery(path: Path, dataset, source, checksum: int, with_images: bool) -> Path:
    """The labels of ``dataset`` (and its images when ``with_images``) to ``path``, atomically."""
    from facekp.core.data.dataset import NPZ_FIELDS
    from facekp.core.fileio import atomic_path

    # every field the .npz holds (the images only when asked), so a restore loses none
    arrays = {name: getattr(dataset, name) for name in NPZ_FIELDS
              if with_images or name != "images"}
    arrays.update(meta=np.array(json.dumps(dataset.meta, sort_keys=True)),
                  keypoint_set=np.array(json.dumps(dataset.keypoint_set.to_dict())),
                  source=np.array(str(source or "")), checksum=np.array(checksum, np.int64),
                  saved_at=np.array(time.time()))
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            (np.savez_compressed if with_images else np.savez)(fh, **arrays)
    return path


def find_recovery(dataset_path, dataset) -> tuple[Path, object, str] | None:
    """A recovery file for the dataset just opened: (its path, the dataset it restores or
    None, a sentence for the person); None when there is none."""
    from facekp.core.data.dataset import Dataset
    from facekp.core.data.keypoint_sets import from_dict

    rec = recovery_path(dataset_path)
    if not rec.is_file():
        return None
    try:
        with np.load(rec, allow_pickle=False) as npz:
            f = {k: npz[k] for k in npz.files}
        if "images" in f:
            images = f["images"]
        elif len(f["keypoints"]) == len(dataset) and \
                int(f["checksum"]) == images_checksum(dataset.images):
            images = dataset.images
        else:
            return rec, None, (f"{rec} holds edits of another version of "
                               f"{Path(dataset_path).name}; it is left as it is")
        # a recovery file of an older version holds no checked or sources: as read_npz does
        restored = Dataset(images, f["keypoints"], f["names"], f["persons"], f["splits"],
                           json.loads(str(f["meta"])), f.get("checked"), f.get("sources"),
                           keypoint_set=(from_dict(json.loads(str(f["keypoint_set"])), rec)
                                         if "keypoint_set" in f else dataset.keypoint_set),
                           hidden=f.get("hidden"))
    except Exception as exc:  # an unreadable recovery file is reported, never fatal
        return rec, None, f"{rec} could not be read ({exc}); it is left as it is"
    if restored.keypoint_set != dataset.keypoint_set:   # the file opened in another set
        return rec, None, (f"{rec} holds edits in keypoint set {restored.keypoint_set.name!r} "
                           f"and {Path(dataset_path).name} is open in "
                           f"{dataset.keypoint_set.name!r}; it is left as it is")
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(float(f["saved_at"])))
    n = _changed_faces(dataset, restored)
    return rec, restored, (f"Unsaved edits of {Path(dataset_path).name} were kept from "
                           f"{when} ({n} face{'s' if n != 1 else ''} "
                           f"differ{'s' if n == 1 else ''} from the file). Restore them?")


def unsaved_text(window) -> str:
    """What the question about unsaved edits says: how many steps away from the file the
    dataset is (a restore of kept edits is one of them) and the last one."""
    stack = window.undo_stack
    clean = stack.cleanIndex()
    n = abs(stack.index() - clean) if clean >= 0 else max(stack.index(), 1)
    last = stack.text(stack.index() - 1) if stack.index() > 0 else ""
    what = f"{n} unsaved change{'s' if n != 1 else ''}"
    return (f"{window.session.label} has {what}" + (f" (the last: {last})" if last else "")
            + ". Save them?")


def restore_box(parent, text: str) -> QMessageBox:
    """The question about a recovery file, each answer saying what it does."""
    B = QMessageBox.StandardButton
    box = QMessageBox(QMessageBox.Icon.Question, "Restore unsaved edits?", text,
                      B.Yes | B.Discard | B.Cancel, parent)
    box.setDefaultButton(B.Yes)
    box.button(B.Yes).setText("Restore")
    box.button(B.Discard).setText("Discard them")
    box.button(B.Cancel).setText("Not now")
    box.setInformativeText(
        "Restore: the edits are shown, unsaved (Ctrl+Z shows the file as it is).\n"
        "Discard them: the kept edits are deleted; the file is shown as it is.\n"
        "Not now: the file is shown as it is and the edits stay kept: the next time it is "
        "opened, this is asked again.")
    return box


def _changed_faces(old, new) -> int:
    if len(old) != len(new):
        return abs(len(new) - len(old)) + int(
            (~_same(old.keypoints[:len(new)], new.keypoints[:len(old)])).sum())
    return int((~_same(old.keypoints, new.keypoints)).sum())


def _same(a, b) -> np.ndarray:
    return ((a == b) | (np.isnan(a) & np.isnan(b))).all(axis=1)


def load_with_recovery(path, keypoint_set=None):
    """For the loading job: (dataset, the file's stamp before reading, find_recovery's);
    ``keypoint_set``: open the dataset in that set (derived), else in its own."""
    from facekp.core.data import opener

    stamp = file_stamp(path)
    dataset = opener.load(path, keypoint_set)  # any set: the window follows the dataset's
    return dataset, stamp, find_recovery(path, dataset)


class Recovery:
    """Autosave, restore and the changed-on-disk check for one window."""

    def __init__(self, window):
        self.window = window
        self.interval_ms = int(AUTOSAVE_SECONDS * 1000)
        self.timer = QTimer(window)
        self.timer.setSingleShot(True)
        self.timer.timeout.connect(self.autosave)
        self.stamp: tuple[int, int] | None = None      # the opened file, when opened/saved
        self._source_images = None
        self._checksum: int | None = None
        self._written: Path | None = None
        self._pending: Path | None = None

    def connect(self) -> None:
        stack = self.window.undo_stack
        stack.indexChanged.connect(self._edited)
        stack.cleanChanged.connect(self._clean_changed)

    def _clean_changed(self, clean: bool) -> None:
        if clean and not self.window._closing:    # (a closing window's stack clears itself)
            self.discard()

    # --- questions (tests and --screenshot replace them) -----------------------------------
    def ask_restore(self, text: str) -> bool | None:
        """True: restore; False: discard the recovery file; None: keep it for later. Only an
        interactive session asks; any other keeps the file and shows the file as it is."""
        if not self.window.options.remember:
            return None
        box = restore_box(self.window, text)
        box.exec()
        B = QMessageBox.StandardButton
        return {B.Yes: True, B.Discard: False}.get(box.standardButton(box.clickedButton()))

    def ask_overwrite(self, path: Path) -> bool:
        """Whether to overwrite ``path``, which changed on disk since it was opened (never,
        outside an interactive session)."""
        if not self.window.options.remember:
            return False
        B = QMessageBox.StandardButton
        return QMessageBox.warning(
            self.window, "The file changed on disk",
            f"{path} changed on disk since it was opened (another program or another window "
            "wrote it). Overwrite it with this dataset and lose those changes?",
            B.Yes | B.No, B.No) == B.Yes

    # --- opening and saving ----------------------------------------------------------------
    def opened(self, path, dataset, stamp, found):
        """A dataset was read: remember its file; offer a recovery file. (The file's dataset,
        the dataset restored from the recovery file or None.)"""
        self.timer.stop()
        self._written = None
        self.stamp, self._source_images, self._checksum = stamp, dataset.images, None
        if found is None:
            return dataset, None
        rec, restored, text = found
        if restored is None:
            self.window.show_error(text)
            return dataset, None
        answer = self.ask_restore(text)
        if answer is False:
            rec.unlink(missing_ok=True)
        if not answer:
            return dataset, None
        self._pending = rec
        return dataset, restored

    def restored(self) -> None:
        """The restored dataset is on screen: its recovery file stays until it is saved (or
        the restore is undone)."""
        self._written, self._pending = self._pending, None
        self.window.statusBar().showMessage("Restored the unsaved edits: save to keep them "
                                            "(Ctrl+Z shows the file as it is)", 10000)

    def may_overwrite(self, path) -> bool:
        """Before writing the dataset to ``path``: False when ``path`` is the opened file, it
        changed on disk since, and the person does not want to overwrite it."""
        s = self.window.session
        same = s.dataset_path is not None and Path(path).resolve() == s.dataset_path.resolve()
        if not same or self.stamp is None or file_stamp(path) == self.stamp:
            return True
        return self.ask_overwrite(Path(path))

    def saved(self, path) -> None:
        self.stamp = file_stamp(path)
        self._source_images, self._checksum = self.window.session.dataset.images, None

    # --- autosave ----------------------------------------------------------------------------
    def _edited(self, _index: int) -> None:
        if not self.window._closing and not self.window.undo_stack.isClean() and not self.timer.isActive():
            self.timer.start(self.interval_ms)

    def autosave(self) -> None:
        """Write the recovery file now (off the GUI thread) if there are unsaved edits."""
        w = self.window
        ds = w.session.dataset
        if ds is None or w.undo_stack.isClean():
            return
        snapshot = ds.subset(slice(None))
        snapshot.keypoints = ds.keypoints.copy()
        source, path = w.session.dataset_path, recovery_path(w.session.dataset_path)
        with_images = source is None or ds.images is not self._source_images
        checksum = self._checksum

        def job():
            crc = images_checksum(snapshot.images) if checksum is None and not with_images \
                else checksum or 0
            write_recovery(path, snapshot, source, crc, with_images)
            return crc

        def done(crc):
            if not with_images:
                self._checksum = crc
            self._written = path
            if w.undo_stack.isClean():       # saved or undone meanwhile: not needed
                self.discard()

        w.jobs.run(Job("autosave", job, on_done=done,
                       on_failed=lambda m: w.show_error(f"Autosave failed: {m}")))

    def discard(self) -> None:
        """No unsaved edits any more (saved, undone, discarded): the recovery file goes."""
        self.timer.stop()
        if self._written is not None:
            self._written.unlink(missing_ok=True)
            self._written = None
