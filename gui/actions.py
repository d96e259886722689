"""Every action of the app as data: text, shortcut, handler, tip and when it is enabled.

:func:`make_actions` turns the table into QActions, :func:`make_menus` and
:func:`make_toolbar` lay them out, and :func:`update_enabled` is the one place that decides
which are enabled. A handler is the name of a window method (or ``"obj.method"`` of one of its
parts); a checkable action's handler receives the new checked state.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QAbstractSpinBox, QApplication, QComboBox, QLineEdit,
                               QPlainTextEdit, QTextEdit, QToolBar)

K = QKeySequence.StandardKey


@dataclass(frozen=True)
class Spec:
    name: str
    text: str
    handler: str | None = None
    shortcut: object = None            # a key, a StandardKey, or a tuple of them
    tip: str = ""
    checkable: bool = False
    checked: bool = False
    enabled: str = "always"            # a key of the state update_enabled computes
    short: str = ""                    # the toolbar's text, when shorter than ``text``


def _layer(name: str, layer: str, text: str, key: str, tip: str = "", checked=True) -> Spec:
    return Spec(name, text, f"canvas.set_layer_visible:{layer}", key, tip, True, checked,
                "model" if layer in ("prediction", "lines") else "always")


def _pick(k: int) -> Spec:
    from .correct import pick_key
    from .session import display_name

    return Spec(f"pick_{k + 1}", _pick_text(k, display_name(k)), f"correct.pick:{k}",
                pick_key(k), "select this keypoint; the next click on the face places it",
                enabled="face")


def _pick_text(k: int, name: str) -> str:
    return f"Pick {k + 1} · {name}"


def retitle_picks(window, keypoint_set) -> None:
    """The pick actions name the points of the dataset's set (those past its size: "—")."""
    from .correct import PICK_KEYS
    from .session import display_name

    window.pick_count = keypoint_set.size
    for k in range(PICK_KEYS):
        window.acts[f"pick_{k + 1}"].setText(
            _pick_text(k, display_name(k, keypoint_set) if k < keypoint_set.size else "—"))
    update_enabled(window)


REVIEW_ACTIONS: tuple[Spec, ...] = (
    Spec("queue_next", "&Next in queue", "review.step:1", "Space",
         "the next face of the review queue (the Review dock chooses the queue)",
         enabled="browsing"),
    Spec("queue_prev", "&Previous in queue", "review.step:-1", "Shift+Space",
         "the previous face of the review queue", enabled="browsing"),
    Spec("accept_point", "Accept predicted &point", "correct.accept_point", ("Return", "Enter"),
         "the selected (or picked) keypoint takes its predicted position", enabled="face"),
    Spec("accept_face", "Accept predicted &face", "correct.accept_face",
         ("Shift+Return", "Shift+Enter"), "every keypoint of the face takes its predicted "
         "position (one undoable edit)", enabled="face"),
    Spec("place", "Place &missing points by clicking", "correct.place_missing", "M",
         "each click places the next missing keypoint, in keypoint order; number keys pick "
         "a keypoint; M again (or Esc) stops", enabled="face"),
    Spec("pick_name", "Pick a keypoint by &name…", "correct.pick_by_name", "K",
         "a searchable list of the set's keypoints (number keys pick the first ten, Alt+1-5 "
         "the next five); the next click on the face places the one picked", enabled="face"),
    Spec("cancel_place", "&Stop placing points", "correct.cancel", "Escape",
         "the next click on the face places nothing", enabled="placing"),
    Spec("mark_checked", "Mark face as &checked", "review.toggle_checked", "C",
         "mark the face's points as checked by a person, or (when they are) as not checked; "
         "the Review dock's \"Not yet checked\" queue lists the others", enabled="face"),
) + tuple(_pick(k) for k in range(15))

ACTIONS: tuple[Spec, ...] = (
    Spec("open", "&Open…", "files.open_dialog", K.Open,
         "open a photo, a video, a dataset (.npz, Kaggle .csv) or a model (.keras)"),
    Spec("open_dataset", "Open &dataset…", "files.open_dataset_dialog", "Ctrl+Shift+O"),
    Spec("new_dataset", "&New dataset from photos…", "datasets.new_from_photos_dialog",
         "Ctrl+N", "choose a keypoint set, then a folder of photos: every face found becomes a "
         "face to label, all its points missing"),
    Spec("open_model", "Open &model…", "files.open_model_dialog", "Ctrl+M"),
    Spec("save", "&Save dataset", "files.save_dataset", K.Save,
         "save the dataset with your edits (.npz)", enabled="unsaved", short="Save"),
    Spec("save_as", "Save dataset &as…", "files.save_dataset_as", K.SaveAs, enabled="dataset"),
    Spec("export_csv", "Export dataset as &Kaggle CSV…", "files.export_kaggle_csv",
         enabled="dataset"),
    Spec("export_coco", "Export dataset as &COCO keypoints…", "files.export_dataset_dialog:coco",
         tip="COCO keypoints JSON with the 96x96 crops as PNGs beside it", enabled="dataset"),
    Spec("export_dlib", "Export dataset as d&lib XML…", "files.export_dataset_dialog:dlib",
         tip="dlib imglab XML with the 96x96 crops as PNGs beside it", enabled="dataset"),
    Spec("export_pts", "Export dataset as .p&ts files…", "files.export_dataset_dialog:pts",
         tip="a new folder with a PNG and an iBUG-style .pts per face", enabled="dataset"),
    Spec("export_view", "Export current &view as PNG…", "files.export_view_dialog", "Ctrl+E"),
    Spec("export_pred", "Export &predictions (CSV/JSON)…", "files.export_predictions_dialog",
         "Ctrl+Shift+E", enabled="model"),
    Spec("export_loss", "Export &loss curve as PNG…", "files.export_loss_dialog"),
    Spec("quit", "&Quit", "close", K.Quit),
    Spec("delete", "&Delete selected point", "editing.delete_selected", (K.Delete, "Backspace"),
         "delete the selected ground-truth point (click it first)", enabled="face"),
    Spec("toggle_hidden", "Mark point &hidden (occluded)", "editing.toggle_hidden", "O",
         "the selected (or picked) labelled point is there but hidden: drawn dashed, trained "
         "on as any label, exported to COCO as visibility 1; O again: visible", enabled="face"),
    Spec("delete_face", "Delete &face", "editing.delete_face", "Shift+Delete",
         "remove the face on screen from the dataset (a false detection, a duplicate); "
         "Ctrl+Z puts it back", enabled="face"),
    Spec("add", "&Add missing keypoint", "editing.add_missing", "Insert",
         "place the next missing keypoint at its average position; then drag it into place "
         "(or right-click the face)", enabled="face"),
    _layer("image", "image", "&Image", "I"),
    _layer("truth", "truth", "&Ground truth", "G", "green circles: labelled keypoints"),
    _layer("pred", "prediction", "&Predictions", "P", "red crosses: the model's keypoints"),
    _layer("lines", "lines", "Error &lines", "L",
           "a line from each labelled point to its prediction"),
    _layer("boxes", "boxes", "Face &boxes", "Shift+B"),
    _layer("skeleton", "skeleton", "S&keleton lines", "E",
           "lines between the keypoints the keypoint set joins (eyes, brows, nose, lips, jaw)"),
    Spec("legend", "L&egend", "canvas.set_legend_visible", "Shift+L",
         "what each marker on the face is; left and right are the subject's", True, True),
    Spec("smooth", "&Smooth pixels", "canvas.set_smooth", "S",
         "smooth interpolation instead of crisp (nearest) pixels", True, False),
    Spec("fit", "&Fit to window", "canvas.fit", ("F", "Ctrl+0")),
    Spec("zoom_in", "Zoom &in", "canvas.zoom_in", ("+", "=", "Ctrl+=")),
    Spec("zoom_out", "Zoom &out", "canvas.zoom_out", ("-", "Ctrl+-")),
    Spec("reset_layout", "&Reset layout", "window_layout.reset", None,
         "every dock back in its place, sized for the window"),
    Spec("next", "&Next face", "step:1", "D", "next row of the table", enabled="dataset",
         short="Next"),
    Spec("prev", "&Previous face", "step:-1", "A", "previous row of the table",
         enabled="dataset", short="Previous"),
    Spec("worst", "Sort &worst first", "dataset_panel.sort_worst_first", "W",
         "sort the table by per-face RMSE, largest first", enabled="dataset"),
    Spec("back", "Back to &dataset", "back_to_dataset", "Escape",
         "the dataset's face again, after a photo or a video", enabled="away", short="Back"),
    Spec("prev_frame", "Previous video &frame", "video.step:-1", ",",
         "one frame back, while the video is paused", enabled="video_paused"),
    Spec("next_frame", "Next video fra&me", "video.step:1", ".",
         "one frame on, while the video is paused", enabled="video_paused"),
    Spec("draw_box", "Draw a face &box", "photos.set_box_mode", "B",
         "drag a square around a face the detector missed; keypoints are predicted inside it",
         True, False, enabled="photo", short="Draw box"),
    Spec("add_faces", "&Add faces to dataset", "photo_faces.add_to_dataset", "Ctrl+Shift+A",
         "the faces of the photo (or of the paused video's frame) into the dataset, the "
         "model's points as labels to check",
         enabled="photo_faces"),
    Spec("mtcnn", "Use the &MTCNN face detector", "photos.set_mtcnn", None,
         "MTCNN alone instead of BlazeFace (with MTCNN behind it): slower, the detector the "
         "shipped model's training faces were framed with", True, False),
    Spec("haar", "Use the &Haar face detector", "photos.set_haar", None,
         "OpenCV's Haar cascade instead of BlazeFace: frontal faces only, no confidence",
         True, False),
    Spec("hide_unsure", "&Hide unsure faces", "photos.set_hide_unsure:faces", None,
         "leave out faces the detector is less than 95 % sure of", True, False),
    Spec("hide_unsure_points", "Hide unsure &points", "photos.set_hide_unsure:points", None,
         "leave out the points the model is unsure of (keypoint confidence below 0.5: drawn "
         "magenta when shown)", True, False),
    Spec("predict", "&Predict dataset", "models.predict_dataset", "Ctrl+R",
         "predict every face with the current model", enabled="model_and_dataset",
         short="Predict"),
    Spec("train", "Start &training", "start_training", "Ctrl+T",
         "train a model on the dataset's train faces (the Training dock shows it)",
         enabled="can_train", short="Train"),
    Spec("stop", "S&top training", "training_panel.stop", "Ctrl+.",
         "stop after the current batch; the best model so far is kept", enabled="training",
         short="Stop"),
    Spec("shortcuts", "&Keyboard shortcuts", "review.show_shortcuts", "F1",
         "every key of the app"),
    Spec("about", "&About facekp", "about"),
) + REVIEW_ACTIONS

#: Menus: action names, "-" for a separator, "@recent" for the recent-files menu, "@docks"
#: for the docks' show/hide toggles, "@undo" / "@redo" for the undo stack's own actions.
MENUS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("&File", ("open", "@recent", "open_dataset", "open_model", "new_dataset", "-", "save",
               "save_as",
               "export_csv", "export_coco", "export_dlib", "export_pts", "-", "export_view",
               "export_pred", "export_loss", "-", "quit")),
    ("&Edit", ("@undo", "@redo", "-", "add", "delete", "toggle_hidden", "-", "delete_face")),
    ("&View", ("image", "truth", "pred", "lines", "skeleton", "boxes", "legend", "-", "smooth",
               "fit", "zoom_in", "zoom_out", "-", "@docks", "reset_layout")),
    ("&Go", ("next", "prev", "worst", "back", "-", "prev_frame", "next_frame")),
    ("&Photo", ("draw_box", "add_faces", "-", "mtcnn", "haar", "hide_unsure",
                "hide_unsure_points")),
    ("&Model", ("open_model", "predict", "-", "train", "stop")),
    ("&Review", ("queue_next", "queue_prev", "-", "accept_point", "accept_face", "place",
                 "pick_name", "cancel_place", "-", "mark_checked")),
    ("&Help", ("shortcuts", "about")),
)

TOOLBAR = ("open", "save", "-", "@undo", "@redo", "-", "prev", "next", "back", "-", "truth",
           "pred", "lines", "smooth", "fit", "-", "draw_box", "predict", "-", "train", "stop")

#: View toggles kept between sessions (settings key -> action name).
REMEMBERED_TOGGLES = {"truth": "truth", "prediction": "pred", "lines": "lines",
                      "boxes": "boxes", "skeleton": "skeleton", "legend": "legend",
                      "smooth": "smooth", "haar_detector": "haar", "mtcnn_detector": "mtcnn",
                      "hide_unsure": "hide_unsure", "hide_unsure_points": "hide_unsure_points"}


def _keys(shortcut) -> list[QKeySequence]:
    if shortcut is None:
        return []
    items = shortcut if isinstance(shortcut, tuple) else (shortcut,)
    return [QKeySequence(k) for k in items]


def resolve(window, handler: str) -> Callable:
    """``"obj.method"`` or ``"method"`` of the window; ``":arg"`` binds one argument."""
    target, _, arg = handler.partition(":")
    obj = window
    for part in target.split("."):
        obj = getattr(obj, part)
    if not arg:
        return obj
    value = int(arg) if arg.lstrip("-").isdigit() else arg
    return lambda *rest: obj(value, *rest)


def make_actions(window) -> dict[str, QAction]:
    """QActions for :data:`ACTIONS` (added to the window so their shortcuts work anywhere),
    plus the undo stack's undo and redo."""
    actions: dict[str, QAction] = {}
    for spec in ACTIONS:
        act = QAction(spec.text, window)
        act.setShortcuts(_keys(spec.shortcut))
        if spec.short:
            act.setIconText(spec.short)
        if spec.checkable:
            act.setCheckable(True)
            act.setChecked(spec.checked)
        if spec.tip:
            act.setStatusTip(spec.tip)
            act.setToolTip(f"{spec.text.replace('&', '').replace('…', '')} — {spec.tip}")
        if spec.handler:
            slot = resolve(window, spec.handler)
            if spec.checkable:
                act.toggled.connect(slot)
            else:
                act.triggered.connect(lambda _=False, slot=slot: slot())
        window.addAction(act)            # whatever widget of the window has focus
        actions[spec.name] = act
    actions["@undo"] = window.undo_stack.createUndoAction(window, "&Undo")
    actions["@undo"].setShortcut(QKeySequence("Ctrl+Z"))
    actions["@redo"] = window.undo_stack.createRedoAction(window, "&Redo")
    actions["@redo"].setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
    for name, short in (("@undo", "Undo"), ("@redo", "Redo")):
        # the toolbar says only this; the menu and the tooltip name the edit ("Undo add ...")
        actions[name].setIconText(short)
    window.addAction(actions["@undo"])
    window.addAction(actions["@redo"])
    _canvas_arrows(window)
    TypingKeepsEnter(window)
    return actions


def is_text_field(widget) -> bool:
    """A widget a person types into (a line, a number, a text, an editable combobox)."""
    if isinstance(widget, QComboBox):
        return widget.isEditable()
    return isinstance(widget, (QLineEdit, QAbstractSpinBox, QTextEdit, QPlainTextEdit))


class TypingKeepsEnter(QObject):
    """Enter and Shift+Enter are the window's (accept a prediction) whatever widget has focus,
    except a field being typed in: there they end the input, as they do in any program. So is
    Escape (back to the dataset, stop placing points): in a field it leaves the view alone.

    A shortcut is looked up before the focus widget sees its key, unless the widget accepts
    the key's ShortcutOverride event first; QLineEdit and the spin boxes accept it for the
    printable keys, Delete and the arrows, not for Enter or Escape, so this filter, installed
    on each text field as it gets focus, accepts it for those."""

    KEYS = (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Escape)

    def __init__(self, window):
        super().__init__(window)
        QApplication.instance().focusChanged.connect(self._focus_changed)

    def _focus_changed(self, _old, new) -> None:
        if new is not None and is_text_field(new):
            new.installEventFilter(self)        # (once: installing again replaces it)

    def eventFilter(self, obj, event) -> bool:
        if event.type() == QEvent.Type.ShortcutOverride and event.key() in self.KEYS \
                and is_text_field(obj):
            event.accept()
        return False


def _canvas_arrows(window) -> None:
    """Up/Down on the canvas step too (the table handles its own arrow keys)."""
    for key, delta in (("Down", 1), ("Up", -1)):
        act = QAction("Next face" if delta > 0 else "Previous face", window.canvas)
        act.setShortcut(QKeySequence(key))
        act.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        act.triggered.connect(lambda _=False, d=delta: window.step(d))
        window.canvas.addAction(act)


def make_menus(window, actions: dict[str, QAction], docks) -> None:
    """The menu bar from :data:`MENUS`; sets ``window.recent_menu``."""
    bar = window.menuBar()
    for title, names in MENUS:
        menu = bar.addMenu(title)
        for name in names:
            if name == "-":
                menu.addSeparator()
            elif name == "@recent":
                window.recent_menu = menu.addMenu("Open &recent")
                window.recent_menu.aboutToShow.connect(window.files.fill_recent_menu)
            elif name == "@docks":
                for dock in docks:
                    menu.addAction(dock.toggleViewAction())
            else:
                menu.addAction(actions[name])


def make_toolbar(window, actions: dict[str, QAction]) -> QToolBar:
    tb = QToolBar("Main", window)
    tb.setObjectName("main-toolbar")
    tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
    window.addToolBar(tb)
    for name in TOOLBAR:
        tb.addSeparator() if name == "-" else tb.addAction(actions[name])
    return tb


def state_of(window) -> dict[str, bool]:
    """What the enabled state of every action depends on."""
    session = window.session
    has_model = window.predictor is not None
    has_dataset = session.dataset is not None and len(session) > 0
    photo = session.view_mode == "photo" and session.photo is not None
    video = session.view_mode == "video" and window.video.reader is not None
    browsing = has_dataset and session.view_mode not in ("photo", "video")
    training = window.training_panel.is_running()
    return {
        "always": True,
        "dataset": has_dataset,
        # edits not saved yet (or faces without a file of their own): Save has work to do
        "unsaved": has_dataset and (not window.undo_stack.isClean()
                                    or session.dataset_path is None),
        # the dataset's faces are on screen (not a photo or a video): the review queue's
        # Space is then its own, and a video's Space plays and pauses
        "browsing": browsing,
        "face": browsing and session.row is not None,
        "placing": browsing and window.correct.picked is not None,
        "photo": photo,
        # a photo or a video on screen: Back to dataset (Esc) leaves it
        "away": photo or video,
        "video_paused": video and not window.video.play_action.isChecked(),
        "photo_faces": window.photo_faces.can_add(),
        "model": has_model,
        "model_and_dataset": has_model and has_dataset,
        "training": training,
        "can_train": (not training and has_dataset and not window.engine_failed
                      and not (window.engine_info or {}).get("training")),
    }


def update_enabled(window) -> None:
    """The one function that enables and disables actions (and the buttons that mirror them)."""
    state = state_of(window)
    for spec in ACTIONS:
        window.acts[spec.name].setEnabled(state[spec.enabled])
    for k in range(getattr(window, "pick_count", 15), 15):   # past the set's last point
        window.acts[f"pick_{k + 1}"].setEnabled(False)
    window.dataset_panel.predict_button.setEnabled(state["model_and_dataset"])
    if not state["training"]:          # while it runs, the panel's buttons are its own
        window.training_panel.start_button.setEnabled(state["can_train"])
