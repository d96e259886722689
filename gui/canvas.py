"""The image canvas: a QGraphicsView showing a 96x96 face or a whole photo with keypoints.

Scene coordinates are image pixels with (0, 0) at the top-left *edge* of the image, so a
keypoint at pixel centre (x, y) (core's convention) sits at scene (x + 0.5, y + 0.5).

Layers (each toggled on its own): the image, ground truth (green circles, draggable on a
face; green rings on a photo with ground truth beside it), predictions (red crosses), error
lines (thin, from each ground-truth point to its prediction), the skeleton (lines between the
points the keypoint set's edges join) and face boxes (photos). Markers keep their size on
screen at any zoom. A legend in the corner says what each marker is, and that left and right
are the subject's.

The face follows a keypoint set (:meth:`Canvas.set_keypoint_set`): K ground-truth points of
the dataset's set, and predictions in the model's set (the same, or one derived from it).

The canvas never edits data itself: it reports what the user did (a point dragged, a point to
add or delete, a box drawn) through signals, and the window turns those into undoable commands
and calls :meth:`Canvas.set_truth` back.
"""
from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import (QAction, QBrush, QColor, QImage, QPainter, QPainterPath, QPen,
                           QPixmap)
from PySide6.QtWidgets import (QGraphicsEllipseItem, QGraphicsItem, QGraphicsLineItem,
                               QGraphicsPathItem, QGraphicsPixmapItem, QGraphicsRectItem,
                               QGraphicsScene, QGraphicsSimpleTextItem, QGraphicsView, QLabel,
                               QMenu)

from facekp.core.data.keypoint_sets import KAGGLE15, KeypointSet

from .session import display_name, point_label

TRUTH_COLOR = QColor(40, 220, 60)
PRED_COLOR = QColor(240, 40, 40)
#: A photo's predicted point the model is unsure of (its keypoint confidence below
#: UNSURE_POINT_BELOW: less likely than not within 3 px of where a labeller would put it).
UNSURE_POINT_COLOR = QColor(220, 60, 220)
UNSURE_POINT_BELOW = 0.5
#: A second model's predictions, when two models are compared on one face.
COMPARE_COLOR = QColor(60, 160, 255)
LINE_COLOR = QColor(255, 230, 80, 220)
#: Skeleton lines between ground-truth points (and, fainter, between predicted ones).
SKELETON_COLOR = QColor(40, 220, 60, 150)
PRED_SKELETON_COLOR = QColor(240, 40, 40, 110)
BOX_COLOR = QColor(255, 200, 0)
DRAW_BOX_COLOR = QColor(80, 170, 255)
LABEL_BACKGROUND = QColor(20, 20, 24, 170)
#: A set of more points than this gets smaller ground-truth circles.
DENSE = 20
LAYERS = ("image", "truth", "prediction", "lines", "boxes", "skeleton")


def gray_qimage(image: np.ndarray) -> QImage:
    arr = np.ascontiguousarray(image, dtype=np.uint8)
    h, w = arr.shape
    return QImage(arr.data, w, h, w, QImage.Format.Format_Grayscale8).copy()


def rgb_qimage(image: np.ndarray) -> QImage:
    arr = np.ascontiguousarray(image[..., :3], dtype=np.uint8)
    h, w = arr.shape[:2]
    return QImage(arr.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


class Layer(QGraphicsItem):
    """An invisible parent: hiding it hides its children, who still get their own events."""

    def __init__(self, z: float):
        super().__init__()
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemHasNoContents)
        self.setZValue(z)

    def boundingRect(self) -> QRectF:
        return QRectF()

    def paint(self, painter, option, widget=None) -> None:
        pass


class TruthItem(QGraphicsEllipseItem):
    """A ground-truth keypoint: a green circle of fixed screen size, draggable when editable."""

    RADIUS = 6.0

    def __init__(self, canvas: "Canvas", index: int, parent: QGraphicsItem,
                 radius: float = RADIUS):
        r = radius
        super().__init__(-r, -r, 2 * r, 2 * r, parent)
        self.canvas = canvas
        self.index = index
        self.hidden = False
        self.restyle()
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemSendsGeometryChanges)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsSelectable)
        self.setAcceptHoverEvents(True)
        self.setCursor(Qt.CursorShape.OpenHandCursor)
        self._press_pos: QPointF | None = None

    def restyle(self) -> None:
        """Solid and filled for a visible point, dashed and hollow for a hidden (occluded)
        one; white while selected."""
        pen = QPen(QColor(255, 255, 255) if self.isSelected() else TRUTH_COLOR, 2.0)
        if self.hidden:
            pen.setStyle(Qt.PenStyle.DashLine)
        self.setPen(pen)
        self.setBrush(QBrush(Qt.BrushStyle.NoBrush) if self.hidden
                      else QBrush(QColor(40, 220, 60, 50)))

    def set_editable(self, editable: bool) -> None:
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsMovable, editable)
        self.setCursor(Qt.CursorShape.OpenHandCursor if editable else Qt.CursorShape.ArrowCursor)

    def itemChange(self, change, value):
        if change == QGraphicsItem.GraphicsItemChange.ItemPositionChange:
            rect = self.canvas.image_rect
            return QPointF(min(max(value.x(), rect.left()), rect.right()),
                           min(max(value.y(), rect.top()), rect.bottom()))
        if change == QGraphicsItem.GraphicsItemChange.ItemPositionHasChanged:
            self.canvas._truth_item_moved(self.index)
        elif change == QGraphicsItem.GraphicsItemChange.ItemSelectedHasChanged:
            self.restyle()
        return super().itemChange(change, value)

    def mousePressEvent(self, event) -> None:
        self._press_pos = QPointF(self.pos())
        super().mousePressEvent(event)

    def mouseReleaseEvent(self, event) -> None:
        super().mouseReleaseEvent(event)
        start, self._press_pos = self._press_pos, None
        if start is not None and (self.pos() - start).manhattanLength() > 1e-6:
            self.canvas._truth_item_dropped(self.index, start, QPointF(self.pos()))
        elif start is not None:
            self.canvas._truth_item_clicked(self.index, event.scenePos())

    def hoverEnterEvent(self, event) -> None:
        self.setScale(1.35)
        self.canvas._hover(self.canvas.describe_point(self.index, "truth"))
        super().hoverEnterEvent(event)

    def hoverLeaveEvent(self, event) -> None:
        self.setScale(1.0)
        self.canvas._hover("")
        super().hoverLeaveEvent(event)


def _cross_path(size: float) -> QPainterPath:
    path = QPainterPath()
    path.moveTo(-size, -size)
    path.lineTo(size, size)
    path.moveTo(-size, size)
    path.lineTo(size, -size)
    return path


class PredictionItem(QGraphicsPathItem):
    """A predicted keypoint: a red cross of fixed screen size."""

    SIZE = 5.0

    def __init__(self, canvas: "Canvas", index: int, parent: QGraphicsItem, face: int = -1,
                 scene_size: float | None = None, color: QColor = PRED_COLOR):
        """``scene_size`` None: a fixed size on screen (faces); else a size in image pixels
        (photos, where a cross must stay small next to a small face at any zoom)."""
        size = self.SIZE if scene_size is None else scene_size
        super().__init__(_cross_path(size), parent)
        self.canvas = canvas
        self.index = index
        self.face = face
        self._size = size
        pen = QPen(color, 2.2 if scene_size is None else 1.6)
        pen.setCapStyle(Qt.PenCapStyle.RoundCap)
        pen.setCosmetic(True)
        self.setPen(pen)
        if scene_size is None:
            self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
        self.setAcceptHoverEvents(True)

    def shape(self) -> QPainterPath:  # an easier target for the mouse than two thin lines
        path = QPainterPath()
        s = self._size * 1.4
        path.addRect(QRectF(-s, -s, 2 * s, 2 * s))
        return path

    def hoverEnterEvent(self, event) -> None:
        self.setScale(1.35)
        self.canvas._hover(self.canvas.describe_point(self.index, "prediction", self.face))
        super().hoverEnterEvent(event)

    def hoverLeaveEvent(self, event) -> None:
        self.setScale(1.0)
        self.canvas._hover("")
        super().hoverLeaveEvent(event)


class FaceLabel(QGraphicsSimpleTextItem):
    """A photo face's label ("face 1 · 0.99 · NME 0.041"): fixed size on screen, on a
    translucent dark plate so that it reads over any picture; :meth:`Canvas._place_labels`
    puts it inside the photo, clear of the other labels, shortened ("1 · 0.99", then "1")
    when the photo is too crowded on screen for the whole text (which its tooltip keeps)."""

    PAD = 2.0

    def __init__(self, texts: tuple[str, ...], box, parent: QGraphicsItem):
        super().__init__(texts[0], parent)
        self.texts = texts
        self.box = tuple(float(v) for v in box)
        self.setBrush(BOX_COLOR)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)

    def boundingRect(self) -> QRectF:
        return super().boundingRect().adjusted(-self.PAD, -self.PAD, self.PAD, self.PAD)

    def paint(self, painter, option, widget=None) -> None:
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(LABEL_BACKGROUND)
        painter.drawRoundedRect(self.boundingRect(), 3, 3)
        super().paint(painter, option, widget)


class Canvas(QGraphicsView):
    """Shows one face crop (editable ground truth) or one photo (boxes and predictions)."""

    pointMoved = Signal(int, object, object)      # keypoint, old (x, y), new (x, y) in px
    truthClicked = Signal(int, object)            # keypoint clicked (not dragged), (x, y) px
    pointAddRequested = Signal(int, object)       # keypoint, (x, y)
    pointDeleteRequested = Signal(int)            # keypoint
    boxDrawn = Signal(object)                     # (x0, y0, x1, y1) photo px
    placeClicked = Signal(object)                 # (x, y) px: a click in place mode
    hovered = Signal(str)
    zoomChanged = Signal(float)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setRenderHint(QPainter.RenderHint.Antialiasing)
        self.setBackgroundBrush(QColor(38, 38, 42))
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.SmartViewportUpdate)
        self.setMinimumSize(240, 240)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

        self.mode = "empty"            # "face", "photo" or "empty"
        self.editable = True
        self.smooth = False
        self._auto_fit = True
        self._visible = {name: True for name in LAYERS}
        self.keypoint_set: KeypointSet = KAGGLE15      # the ground truth's (the dataset's)
        self.prediction_set: KeypointSet = KAGGLE15    # the predictions' (the model's)
        self._truth = np.full((KAGGLE15.size, 2), np.nan)
        self._pred = np.full((KAGGLE15.size, 2), np.nan)
        self._pred2 = np.full((KAGGLE15.size, 2), np.nan)
        self._point_conf: np.ndarray | None = None   # the face's predicted points' confidence
        self.photo_set: KeypointSet = KAGGLE15         # a photo's predictions' (the model's)
        self._faces: list[tuple[tuple[float, float, float, float], np.ndarray]] = []
        self._scores: list = []       # photo faces' facekp.core.photos.photo_truth.FaceScore (or None)
        self._face_confidence: list = []
        self._box_mode = False
        self._place_mode = False
        self._box_start: QPointF | None = None
        self._box_item: QGraphicsRectItem | None = None
        self.image_rect = QRectF(0, 0, 96, 96)
        self._build_scene()
        self._message = QGraphicsSimpleTextItem()
        self._message.setBrush(QColor(200, 200, 200))
        self._message.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
        self.scene().addItem(self._message)
        self.legend = QLabel(self.viewport())
        self.legend.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.legend.setStyleSheet("QLabel { background: rgba(20, 20, 24, 190); color: #ddd; "
                                  "border-radius: 4px; padding: 4px 6px; }")
        self.legend.move(6, 6)
        self._legend_on = True
        self.show_message("Loading…")

    # --- scene construction -------------------------------------------------------------
    def _build_scene(self) -> None:
        scene = self.scene()
        self.layers = {name: Layer(z) for name, z in
                       zip(LAYERS, (0, 3, 4, 2, 1, 1.5))}
        for layer in self.layers.values():
            scene.addItem(layer)
        self.pixmap_item = QGraphicsPixmapItem(self.layers["image"])
        self.pixmap_item.setShapeMode(QGraphicsPixmapItem.ShapeMode.BoundingRectShape)
        self.truth_items: list[TruthItem] = []
        self.pred_items: list[PredictionItem] = []
        self.compare_items: list[PredictionItem] = []
        self.line_items: list[QGraphicsLineItem] = []
        self.skeleton_items: list[QGraphicsLineItem] = []
        self.pred_skeleton_items: list[QGraphicsLineItem] = []
        self._photo_items: list[QGraphicsItem] = []
        self._build_points()

    def _build_points(self) -> None:
        """The face's markers: K truth circles, error lines and skeleton lines of the dataset's
        set; prediction crosses (and their skeleton) of the predictions' set."""
        scene = self.scene()
        for item in self._face_items():
            scene.removeItem(item)
        k, kp = self.keypoint_set.size, self.prediction_set.size
        dense = 0.75 if k > DENSE else 1.0      # 68 points: smaller circles, still clickable
        self.truth_items = [TruthItem(self, i, self.layers["truth"], TruthItem.RADIUS * dense)
                            for i in range(k)]
        self.pred_items = [PredictionItem(self, i, self.layers["prediction"]) for i in range(kp)]
        self.compare_items = [PredictionItem(self, i, self.layers["prediction"],
                                             color=COMPARE_COLOR) for i in range(kp)]
        for item in self.compare_items:     # a larger "+" under the red "x": both show
            item.setPath(_cross_path(PredictionItem.SIZE * 1.6))
            item.setRotation(45)
            item.setZValue(-1)
        self.line_items = [_line(self.layers["lines"], LINE_COLOR, 1.2) for _ in range(k)]
        self.edges = _edge_index(self.keypoint_set)
        self.pred_edges = _edge_index(self.prediction_set)
        self.skeleton_items = [_line(self.layers["skeleton"], SKELETON_COLOR, 1.3)
                               for _ in self.edges]
        self.pred_skeleton_items = [_line(self.layers["skeleton"], PRED_SKELETON_COLOR, 1.0,
                                          Qt.PenStyle.DashLine) for _ in self.pred_edges]
        # points of an unchanged set stay (a model of another set was loaded)
        self._truth = self._truth if len(self._truth) == k else np.full((k, 2), np.nan)
        self._pred = self._pred if len(self._pred) == kp else np.full((kp, 2), np.nan)
        self._pred2 = self._pred2 if len(self._pred2) == kp else np.full((kp, 2), np.nan)
        for item in self._face_items():
            item.hide()
        self._update_face_items()

    def _face_items(self) -> list[QGraphicsItem]:
        return (self.truth_items + self.pred_items + self.line_items + self.compare_items
                + self.skeleton_items + self.pred_skeleton_items)

    def set_keypoint_set(self, keypoint_set: KeypointSet,
                         prediction_set: KeypointSet | None = None) -> None:
        """The dataset's set (ground truth) and the model's (predictions; None: the same)."""
        prediction_set = prediction_set or keypoint_set
        if (keypoint_set, prediction_set) == (self.keypoint_set, self.prediction_set):
            return
        self.keypoint_set, self.prediction_set = keypoint_set, prediction_set
        self._point_conf = None
        self._build_points()
        self._update_legend()

    # --- public API ---------------------------------------------------------------------
    def show_message(self, text: str) -> None:
        """Show only a text (e.g. while loading)."""
        self.mode = "empty"
        self.pixmap_item.setPixmap(QPixmap())
        self._clear_photo_items()
        for item in self._face_items():
            item.hide()
        self._update_legend()
        self._message.setText(text)
        self._message.show()
        br = self._message.boundingRect()
        self._message.setPos(-br.width() / 2, -br.height() / 2)
        self.scene().setSceneRect(QRectF(-br.width() / 2 - 20, -br.height() / 2 - 20,
                                         br.width() + 40, br.height() + 40))
        self.fit()

    def show_face(self, image: np.ndarray, truth: np.ndarray | None,
                  prediction: np.ndarray | None, editable: bool = True,
                  hidden: np.ndarray | None = None) -> None:
        """A 96x96 crop; ``truth`` (the keypoint set's K points) and ``prediction`` (the
        prediction set's) are (K, 2) or flat px, NaN = missing; ``hidden``: (K,) the labelled
        points marked hidden (occluded), drawn dashed and hollow."""
        self.set_hidden(hidden)
        was_face = self.mode == "face"
        self.mode = "face"
        self.editable = editable
        self._message.hide()
        self._clear_photo_items()
        self.set_box_mode(False)
        self.set_place_mode(self._place_mode)
        self._set_pixmap(QPixmap.fromImage(gray_qimage(image)))
        for item in self.truth_items:
            item.set_editable(editable)
            item.setSelected(False)
        self.set_truth(truth)
        self.set_prediction(prediction)
        if not was_face or self._auto_fit:
            self.fit()

    def set_hidden(self, hidden: np.ndarray | None) -> None:
        """Which truth points are labelled but hidden (occluded): drawn dashed and hollow."""
        for i, item in enumerate(self.truth_items):
            item.hidden = bool(hidden is not None and i < len(hidden) and hidden[i])
            item.restyle()
        self._update_legend()

    def set_truth(self, truth: np.ndarray | None) -> None:
        self._truth = _points(truth, self.keypoint_set.size)
        self._update_face_items()

    def set_prediction(self, prediction: np.ndarray | None) -> None:
        self._pred = _points(prediction, self.prediction_set.size)
        self._update_face_items()

    def set_compare(self, prediction: np.ndarray | None) -> None:
        """A second model's keypoints on the face (blue crosses); None hides them (and so
        do keypoints of another set than the predictions')."""
        self._pred2 = _points(prediction, self.prediction_set.size)
        self._update_face_items()

    def set_point_confidence(self, values: np.ndarray | None) -> None:
        """The face's predicted points' confidences (K of the prediction set, 0..1; None:
        unknown): in the hover text, and points under UNSURE_POINT_BELOW drawn magenta."""
        values = None if values is None else np.asarray(values, np.float64).ravel()
        self._point_conf = values if values is not None and \
            len(values) == self.prediction_set.size else None
        self._update_face_items()

    @property
    def compare(self) -> np.ndarray:
        return self._pred2.copy()

    @property
    def truth(self) -> np.ndarray:
        return self._truth.copy()

    @property
    def prediction(self) -> np.ndarray:
        return self._pred.copy()

    def show_photo(self, image: np.ndarray,
                   faces: list[tuple[tuple[float, float, float, float], np.ndarray | None]],
                   scale: float = 1.0, truth=None, scores=None, compare=None) -> None:
        """A whole photo (H x W x 3 uint8) with each face's box and keypoints (photo px).
        ``scale``: photo pixels per pixel of ``image`` (a large photo is drawn smaller);
        ``truth``, ``scores`` and ``compare``: as :meth:`set_faces` takes them."""
        new_image = self.mode != "photo" or self.pixmap_item.pixmap().size().toTuple() != \
            (image.shape[1], image.shape[0]) or self.pixmap_item.scale() != scale
        self.mode = "photo"
        self._message.hide()
        for item in self._face_items():
            item.hide()
        if new_image:
            self._set_pixmap(QPixmap.fromImage(rgb_qimage(image)), scale)
        self.set_faces(faces, truth, scores, compare)
        if new_image or self._auto_fit:
            self.fit()

    def set_faces(self, faces, truth=None, scores=None, compare=None) -> None:
        """Draw each face's box, its number (and the detector's confidence, also as the box's
        hover text) and its predicted keypoints (photo pixels). A face is ``(box, keypoints
        or None)``, ``(box, keypoints, facekp.core.faces.detect.Detection or None)``, that and the
        crop, or that and the keypoints' confidences (K,) or None (facekp.core.model.confidence;
        shown in the hover text). ``truth``: the photo's labelled faces ((K, 2) photo px each),
        drawn as green rings; ``scores``: each face's facekp.core.photos.photo_truth.FaceScore (or
        None): error lines from its labelled points to its prediction, and its NME by its number and
        in the hover text; ``compare``: a second model's keypoints of each face (photo px, or
        None), drawn as blue crosses, as on a dataset face."""
        self._clear_photo_items()
        self._face_confidence = [face[4] if len(face) > 4 else None for face in faces]
        self._faces = [(tuple(float(v) for v in face[0]),
                        None if face[1] is None else _points(face[1])) for face in faces]
        self._scores = list(scores) if scores is not None else [None] * len(self._faces)
        confidences = [face[2].confidence if len(face) > 2 and face[2] is not None else None
                       for face in faces]
        for f, (box, kp) in enumerate(self._faces):
            self._draw_box(f, box, confidences[f])
            if kp is None:
                continue
            size = _marker_size(box)
            conf = self._face_confidence[f]
            for i, (x, y) in enumerate(kp):
                if np.isnan(x) or np.isnan(y):
                    continue
                unsure = conf is not None and conf[i] < UNSURE_POINT_BELOW
                item = PredictionItem(self, i, self.layers["prediction"], face=f,
                                      scene_size=size,
                                      color=UNSURE_POINT_COLOR if unsure else PRED_COLOR)
                item.setPos(x + 0.5, y + 0.5)
                item.setToolTip(self.describe_point(i, "prediction", f))  # not the box's
                self._photo_items.append(item)
            score = self._scores[f]
            if score is not None and score.truth is not None:
                self._draw_error_lines(kp, score.truth)
        for points in truth or []:
            self._draw_truth(np.asarray(points, np.float64))
        for (box, _kp), points in zip(self._faces, compare or []):
            if points is not None:
                self._draw_compare(_points(points), _marker_size(box))
        self._place_labels()
        self._update_legend()

    def _draw_box(self, f: int, box, conf: float | None) -> None:
        """Face ``f``'s box and label: number, the detector's confidence, the NME."""
        rect = QGraphicsRectItem(QRectF(QPointF(box[0], box[1]), QPointF(box[2], box[3])),
                                 self.layers["boxes"])
        pen = QPen(BOX_COLOR, 1.5)
        pen.setCosmetic(True)
        rect.setPen(pen)
        nme = self.face_nme(f)
        rect.setToolTip(f"face {f + 1}" + ("" if conf is None else
                                           f": the detector is {100 * conf:.1f} % sure")
                        + ("" if nme is None else f"; NME {nme:.3f} against ground truth (by eye-centre distance)"))
        text = (f"face {f + 1}" + ("" if conf is None else f" · {conf:.2f}")
                + ("" if nme is None else f" · NME {nme:.3f}"))
        shorter = f"face {f + 1}" if conf is None else f"{f + 1} · {conf:.2f}"
        label = FaceLabel((text, shorter, f"{f + 1}"), box, self.layers["boxes"])
        label.setToolTip(rect.toolTip())
        self._photo_items += [rect, label]

    def _place_labels(self) -> None:
        """Each photo face's label inside the photo and clear of the others (labels keep
        their size on screen, so this runs again at each zoom): the whole text where every
        label finds room, else shorter ones."""
        labels = [i for i in self._photo_items if isinstance(i, FaceLabel)]
        for level in range(len(labels[0].texts) if labels else 0):
            for label in labels:
                label.setText(label.texts[min(level, len(label.texts) - 1)])
            if self._try_labels(labels):
                return

    def _try_labels(self, labels: list) -> bool:
        """Place ``labels`` in turn, each in the first free spot of: just inside its box's
        top edge (left, then right), above the box, below it, then lower inside it; False
        when one found no free spot (it then takes the spot it overlaps least)."""
        zoom = self.zoom if self.zoom > 0 else 1.0
        image, placed, all_free = self.image_rect, [], True
        for label in labels:
            br = label.boundingRect()
            w, h = br.width() / zoom, br.height() / zoom
            x0, y0, x1, y1 = label.box
            spots = [(x0, y0), (x0, y0 - h), (x0, y1), (x1 - w, y0), (x1 - w, y0 - h),
                     (x1 - w, y1)]
            lower = np.arange(y0 + h / 2, y1 - h / 2, h / 2)    # never away from its face
            spots += [(x, y) for y in lower for x in (x0, x1 - w)]
            rects = [_inside(QRectF(x, y, w, h), image) for x, y in spots]
            free = next((r for r in rects if not any(r.intersects(p) for p in placed)), None)
            all_free = all_free and free is not None
            rect = free or min(rects, key=lambda r: sum(_overlap(r, p) for p in placed))
            label.setPos(rect.left() - br.left() / zoom, rect.top() - br.top() / zoom)
            placed.append(rect)
        return all_free

    def _draw_truth(self, points: np.ndarray) -> None:
        """A labelled photo face: a green ring (sized to the face) on each labelled point."""
        ok = np.isfinite(points).all(axis=1)
        if not ok.any():
            return
        extent = float(np.ptp(points[ok], axis=0).max())
        r = max(0.8, 0.025 * extent)
        pen = QPen(TRUTH_COLOR, 1.6)
        pen.setCosmetic(True)
        for i in np.flatnonzero(ok):
            x, y = points[i]
            ring = QGraphicsEllipseItem(QRectF(-r, -r, 2 * r, 2 * r), self.layers["truth"])
            ring.setPen(pen)
            ring.setPos(x + 0.5, y + 0.5)
            ring.setToolTip(f"{point_label(i, self.photo_set)}: ground truth "
                            f"({x:.1f}, {y:.1f})")
            self._photo_items.append(ring)

    def _draw_compare(self, points: np.ndarray, size: float) -> None:
        """A second model's keypoints on a photo face: a larger blue "+" under each red "x"."""
        for i, (x, y) in enumerate(points):
            if np.isfinite([x, y]).all():
                item = PredictionItem(self, i, self.layers["prediction"], scene_size=size * 1.6,
                                      color=COMPARE_COLOR)
                item.setRotation(45)
                item.setZValue(-1)
                item.setAcceptHoverEvents(False)
                item.setToolTip(f"point {i + 1} · {self._photo_point_name(i)}: the second "
                                f"model's ({x:.1f}, {y:.1f})")
                item.setPos(x + 0.5, y + 0.5)
                self._photo_items.append(item)

    def _draw_error_lines(self, prediction: np.ndarray, truth: np.ndarray) -> None:
        pen = QPen(LINE_COLOR, 1.2)
        pen.setCosmetic(True)
        for (px, py), (tx, ty) in zip(prediction, np.asarray(truth, np.float64)):
            if np.isfinite([px, py, tx, ty]).all():
                line = QGraphicsLineItem(tx + 0.5, ty + 0.5, px + 0.5, py + 0.5,
                                         self.layers["lines"])
                line.setPen(pen)
                self._photo_items.append(line)

    def face_nme(self, face: int) -> float | None:
        """Photo face ``face``'s NME against its ground truth (None: none, or not finite)."""
        score = self._scores[face] if 0 <= face < len(self._scores) else None
        return None if score is None or not np.isfinite(score.nme) else float(score.nme)

    @property
    def faces(self):
        return list(self._faces)

    def set_layer_visible(self, name: str, visible: bool) -> None:
        self._visible[name] = bool(visible)
        self.layers[name].setVisible(bool(visible))
        self._update_legend()

    def set_legend_visible(self, visible: bool) -> None:
        """The legend in the canvas's corner (View > Legend)."""
        self._legend_on = bool(visible)
        self._update_legend()

    def legend_entries(self) -> list[str]:
        """What the legend says, one entry per line (markers on screen, then left/right)."""
        return [text for _, text in self._legend()]

    def _legend(self) -> list[tuple[str, str]]:
        """(marker as rich text, words) for the markers on screen."""
        def shown(items, layer):
            return self._visible[layer] and any(i.isVisible() for i in items)

        photo_items = [i for i in self._photo_items if isinstance(i, PredictionItem)]
        rings = [i for i in self._photo_items if isinstance(i, QGraphicsEllipseItem)]
        pred = self.pred_items + [i for i in photo_items if i.pen().color() == PRED_COLOR]
        unsure = ([i for i in self.pred_items if i.pen().color() == UNSURE_POINT_COLOR]
                  + [i for i in photo_items if i.pen().color() == UNSURE_POINT_COLOR])
        out = []
        if shown(self.truth_items + rings, "truth"):
            out.append((_dot(TRUTH_COLOR, "●"), "ground truth" + (" (drag to move)" if
                                                                   self.mode == "face" and
                                                                   self.editable else "")))
        if shown([i for i in self.truth_items if i.hidden], "truth"):
            out.append((_dot(TRUTH_COLOR, "○"), "hidden point (labelled, occluded)"))
        if shown(pred, "prediction"):
            out.append((_dot(PRED_COLOR, "✕"), "prediction"))
        compare = [i for i in photo_items if i.pen().color() == COMPARE_COLOR]
        if shown(self.compare_items + compare, "prediction"):
            out.append((_dot(COMPARE_COLOR, "+"), "second model"))
        if shown(unsure, "prediction"):
            out.append((_dot(UNSURE_POINT_COLOR, "✕"),
                        f"unsure (confidence below {UNSURE_POINT_BELOW:g})"))
        if shown(self.skeleton_items + self.pred_skeleton_items, "skeleton"):
            out.append((_dot(SKELETON_COLOR, "—"), f"skeleton ({self.keypoint_set.name})"))
        if out:
            out.append(("", "left / right: the subject's (left is the image's right)"))
        return out

    def scrollContentsBy(self, dx: int, dy: int) -> None:
        """Scrolling moves the viewport's child widgets with the picture: the legend stays in
        its corner."""
        super().scrollContentsBy(dx, dy)
        self.legend.move(6, 6)

    def _update_legend(self) -> None:
        entries = self._legend() if self._legend_on and self.mode != "empty" else []
        self.legend.setVisible(bool(entries))
        if entries:
            self.legend.setText("<br>".join(f"{m}&nbsp;{t}" if m else f"<i>{t}</i>"
                                            for m, t in entries))
            self._fit_legend()

    def _fit_legend(self) -> None:
        """The legend at its natural size, its lines wrapped in a canvas narrower than it."""
        room = max(120, self.viewport().width() - 12)
        self.legend.setWordWrap(False)
        self.legend.adjustSize()
        if self.legend.width() > room:
            self.legend.setWordWrap(True)
            self.legend.resize(room, self.legend.heightForWidth(room))

    def layer_visible(self, name: str) -> bool:
        return self._visible[name]

    def set_smooth(self, smooth: bool) -> None:
        self.smooth = bool(smooth)
        self.pixmap_item.setTransformationMode(
            Qt.TransformationMode.SmoothTransformation if smooth
            else Qt.TransformationMode.FastTransformation)
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self.smooth)
        self.viewport().update()

    def set_box_mode(self, on: bool) -> None:
        """While on, dragging on the photo draws a face box (reported by ``boxDrawn``)."""
        self._box_mode = bool(on) and self.mode == "photo"
        self.setDragMode(QGraphicsView.DragMode.NoDrag if self._box_mode
                         else QGraphicsView.DragMode.ScrollHandDrag)
        self.viewport().setCursor(Qt.CursorShape.CrossCursor if self._box_mode
                                  else Qt.CursorShape.OpenHandCursor)

    def set_place_mode(self, on: bool) -> None:
        """While on, a left click on a face reports its pixel (``placeClicked``) instead of
        panning or dragging a point."""
        self._place_mode = bool(on) and self.mode == "face"
        self.setDragMode(QGraphicsView.DragMode.NoDrag if self._place_mode
                         else QGraphicsView.DragMode.ScrollHandDrag)
        self.viewport().setCursor(Qt.CursorShape.CrossCursor if self._place_mode
                                  else Qt.CursorShape.OpenHandCursor)

    @property
    def place_mode(self) -> bool:
        return self._place_mode

    @property
    def box_mode(self) -> bool:
        return self._box_mode

    def fit(self) -> None:
        self._auto_fit = True
        rect = self.scene().sceneRect()
        self.resetTransform()
        if self.mode == "empty" or rect.isEmpty():
            self.centerOn(0, 0)
            return
        self.fitInView(rect, Qt.AspectRatioMode.KeepAspectRatio)
        self._place_labels()
        self.zoomChanged.emit(self.zoom)

    def zoom_by(self, factor: float) -> None:
        new = self.zoom * factor
        if not 0.02 <= new <= 200:
            return
        self._auto_fit = False
        self.scale(factor, factor)
        self._place_labels()
        self.zoomChanged.emit(self.zoom)

    def zoom_in(self) -> None:
        self.zoom_by(1.25)

    def zoom_out(self) -> None:
        self.zoom_by(0.8)

    @property
    def zoom(self) -> float:
        return float(self.transform().m11())

    def selected_truth(self) -> int | None:
        for item in self.truth_items:
            if item.isSelected() and item.isVisible():
                return item.index
        return None

    def describe_point(self, index: int, kind: str, face: int = -1) -> str:
        """Hover text of keypoint ``index``: its name (with whose left or right it is), truth
        and prediction, their error and the prediction's confidence where known (a photo
        face's: with its ground truth and NME where a truth file was found)."""
        if kind == "prediction" and face >= 0:
            x, y = self._faces[face][1][index]
            text = (f"face {face + 1} · point {index + 1} · {self._photo_point_name(index)}: "
                    f"predicted ({x:.1f}, {y:.1f})")
            conf = self._face_confidence[face] if face < len(self._face_confidence) else None
            if conf is not None and index < len(conf):
                text += (f" · keypoint confidence {conf[index]:.2f} (chance it is within 3 px "
                         "of the 96 px face)")
            score = self._scores[face] if face < len(self._scores) else None
            if score is not None and score.truth is not None and \
                    np.isfinite(score.truth[index]).all():
                tx, ty = score.truth[index]
                text += (f" · ground truth ({tx:.1f}, {ty:.1f})"
                         f" · error {score.errors[index]:.2f} px")
            nme = self.face_nme(face)
            return text + ("" if nme is None else f" · face NME {nme:.3f}")
        name = point_label(index, self.prediction_set if kind == "prediction"
                           else self.keypoint_set)
        same = self.keypoint_set == self.prediction_set
        nan = np.full(2, np.nan)
        t = self._truth[index] if kind == "truth" or same else nan
        p = self._pred[index] if kind == "prediction" or same else nan
        parts = [f"{index + 1} · {name}"]
        if not np.isnan(t).any():
            parts.append(f"ground truth ({t[0]:.1f}, {t[1]:.1f})")
        if not np.isnan(p).any():
            parts.append(f"predicted ({p[0]:.1f}, {p[1]:.1f})")
            if self._point_conf is not None:
                parts.append(f"confidence {self._point_conf[index]:.2f}")
        if not np.isnan(t).any() and not np.isnan(p).any():
            parts.append(f"error {math.hypot(*(p - t)):.2f} px")
        return " · ".join(parts)

    def _photo_point_name(self, index: int) -> str:
        """A photo keypoint's name in the model's set (its side spelled out), or its number
        alone for a point past the set's last (a model of another set, not yet followed)."""
        if index < self.photo_set.size:
            return point_label(index, self.photo_set)
        return f"keypoint {index + 1}"

    def render_image(self):
        """The visible view as a QImage (what 'Export view' saves)."""
        return self.viewport().grab().toImage()

    # --- internals ----------------------------------------------------------------------
    def _set_pixmap(self, pixmap: QPixmap, scale: float = 1.0) -> None:
        self.pixmap_item.setPixmap(pixmap)
        self.pixmap_item.setScale(scale)
        self.set_smooth(self.smooth)
        self.image_rect = QRectF(0, 0, pixmap.width() * scale, pixmap.height() * scale)
        margin = max(self.image_rect.width(), self.image_rect.height()) * 0.02
        self.scene().setSceneRect(self.image_rect.adjusted(-margin, -margin, margin, margin))

    def _clear_photo_items(self) -> None:
        scene = self.scene()
        for item in self._photo_items:
            scene.removeItem(item)
        self._photo_items = []
        self._faces = []
        self._scores = []

    def _update_face_items(self) -> None:
        if self.mode != "face":
            return
        same = self.keypoint_set == self.prediction_set
        for i, (t, ti, li) in enumerate(zip(self._truth, self.truth_items, self.line_items)):
            t_ok = not np.isnan(t).any()
            if t_ok:
                ti.setPos(t[0] + 0.5, t[1] + 0.5)
            ti.setVisible(t_ok)
            p = self._pred[i] if same else np.full(2, np.nan)
            if t_ok and not np.isnan(p).any():
                li.setLine(t[0] + 0.5, t[1] + 0.5, p[0] + 0.5, p[1] + 0.5)
            li.setVisible(t_ok and not np.isnan(p).any())
        conf = self._point_conf
        for i, (p, pi_) in enumerate(zip(self._pred, self.pred_items)):
            p_ok = not np.isnan(p).any()
            if p_ok:
                pi_.setPos(p[0] + 0.5, p[1] + 0.5)
                unsure = conf is not None and conf[i] < UNSURE_POINT_BELOW
                pen = pi_.pen()
                pen.setColor(UNSURE_POINT_COLOR if unsure else PRED_COLOR)
                pi_.setPen(pen)
            pi_.setVisible(p_ok)
        for q, item in zip(self._pred2, self.compare_items):
            if not np.isnan(q).any():
                item.setPos(q[0] + 0.5, q[1] + 0.5)
            item.setVisible(not np.isnan(q).any())
        _join(self.skeleton_items, self.edges, self._truth)
        _join(self.pred_skeleton_items, self.pred_edges, self._pred)
        self._update_legend()

    def _truth_item_moved(self, index: int) -> None:
        """Live feedback while dragging: the error line and skeleton lines follow the point."""
        item = self.truth_items[index]
        p = self._pred[index] if self.keypoint_set == self.prediction_set and \
            index < len(self._pred) else np.full(2, np.nan)
        if not np.isnan(p).any():
            self.line_items[index].setLine(item.pos().x(), item.pos().y(), p[0] + 0.5, p[1] + 0.5)
        for line, (a, b) in zip(self.skeleton_items, self.edges):
            if index in (a, b) and line.isVisible():
                pa, pb = self.truth_items[a].pos(), self.truth_items[b].pos()
                line.setLine(pa.x(), pa.y(), pb.x(), pb.y())

    def _truth_item_clicked(self, index: int, pos: QPointF) -> None:
        xy = self.scene_to_pixel(self._clamp(pos))
        QTimer.singleShot(0, lambda: self.truthClicked.emit(index, xy))

    def _truth_item_dropped(self, index: int, start: QPointF, end: QPointF) -> None:
        old = (start.x() - 0.5, start.y() - 0.5)
        new = (end.x() - 0.5, end.y() - 0.5)
        # Report after the mouse event has unwound: receivers may rebuild the view.
        QTimer.singleShot(0, lambda: self.pointMoved.emit(index, old, new))

    def _hover(self, text: str) -> None:
        self.setToolTip(text)
        self.hovered.emit(text)

    def scene_to_pixel(self, pos: QPointF) -> tuple[float, float]:
        return pos.x() - 0.5, pos.y() - 0.5

    # --- events -------------------------------------------------------------------------
    def wheelEvent(self, event) -> None:
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.zoom_by(1.25 ** steps)
        event.accept()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self._auto_fit:
            self.fit()
        if self.legend.isVisible():
            self._fit_legend()

    def mousePressEvent(self, event) -> None:
        """A click places a point (place mode) or starts a box (box mode); else Qt's own. In
        place mode a press on a green point is the point's own (it is dragged, or a click on
        it reported by ``truthClicked``): no labelled point jumps to a stray click."""
        if self._place_mode and self.mode == "face" and event.button() == Qt.MouseButton.LeftButton \
                and not self._truth_under(event.position().toPoint()):
            pos = self.scene_to_pixel(self._clamp(self.mapToScene(event.position().toPoint())))
            event.accept()
            QTimer.singleShot(0, lambda: self.placeClicked.emit(pos))
            return
        if self._box_mode and event.button() == Qt.MouseButton.LeftButton:
            self._box_start = self._clamp(self.mapToScene(event.position().toPoint()))
            self._box_item = QGraphicsRectItem(QRectF(self._box_start, self._box_start))
            pen = QPen(DRAW_BOX_COLOR, 2, Qt.PenStyle.DashLine)
            pen.setCosmetic(True)
            self._box_item.setPen(pen)
            self._box_item.setZValue(10)
            self.scene().addItem(self._box_item)
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event) -> None:
        if self._box_start is not None and self._box_item is not None:
            end = self._clamp(self.mapToScene(event.position().toPoint()))
            self._box_item.setRect(_square(self._box_start, end))
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event) -> None:
        if self._box_start is not None and self._box_item is not None:
            rect = self._box_item.rect()
            self.scene().removeItem(self._box_item)
            self._box_item, self._box_start = None, None
            event.accept()
            if rect.width() >= 8:
                self.draw_box(rect.left(), rect.top(), rect.right(), rect.bottom())
            return
        super().mouseReleaseEvent(event)

    def draw_box(self, x0: float, y0: float, x1: float, y1: float) -> None:
        """As if the user dragged a box from (x0, y0) to (x1, y1) in photo pixels."""
        self.boxDrawn.emit((float(x0), float(y0), float(x1), float(y1)))

    def _truth_under(self, pos) -> "TruthItem | None":
        for item in self.items(pos):
            if isinstance(item, TruthItem) and item.isVisible() and self._visible["truth"]:
                return item
        return None

    def _clamp(self, p: QPointF) -> QPointF:
        r = self.image_rect
        return QPointF(min(max(p.x(), r.left()), r.right()), min(max(p.y(), r.top()), r.bottom()))

    def contextMenuEvent(self, event) -> None:
        """Right-click on a face: delete the point under the mouse or add a missing one."""
        if self.mode != "face" or not self.editable:
            return super().contextMenuEvent(event)
        menu = QMenu(self)
        item = self.itemAt(event.pos())
        while item is not None and not isinstance(item, TruthItem):
            item = item.parentItem()
        if isinstance(item, TruthItem) and item.isVisible():
            act = QAction(f"Delete {display_name(item.index, self.keypoint_set)}", menu)
            act.triggered.connect(lambda _=False, k=item.index: self.pointDeleteRequested.emit(k))
            menu.addAction(act)
        missing = [i for i in range(len(self._truth)) if np.isnan(self._truth[i]).any()]
        pos = self.scene_to_pixel(self._clamp(self.mapToScene(event.pos())))
        if missing:
            sub = menu.addMenu("Add missing keypoint here")
            for k in missing:
                act = QAction(display_name(k, self.keypoint_set), sub)
                act.triggered.connect(lambda _=False, k=k: self.pointAddRequested.emit(k, pos))
                sub.addAction(act)
        if not menu.isEmpty():
            menu.exec(event.globalPos())


def _points(values, k: int | None = None) -> np.ndarray:
    """(K, 2) px of flat or (K, 2) values; all missing for None or another count than ``k``."""
    if values is None:
        return np.full((k or 0, 2), np.nan)
    points = np.asarray(values, dtype=np.float64).reshape(-1, 2).copy()
    return points if k is None or len(points) == k else np.full((k, 2), np.nan)


def _line(parent, color: QColor, width: float, style=Qt.PenStyle.SolidLine) -> QGraphicsLineItem:
    line = QGraphicsLineItem(parent)
    pen = QPen(color, width, style)
    pen.setCosmetic(True)
    line.setPen(pen)
    return line


def _edge_index(keypoint_set: KeypointSet) -> list[tuple[int, int]]:
    return [(keypoint_set.index(a), keypoint_set.index(b)) for a, b in keypoint_set.edges]


def _join(lines, edges, points: np.ndarray) -> None:
    """Skeleton ``lines`` between ``points`` (K, 2) px where both ends are there."""
    for line, (a, b) in zip(lines, edges):
        ok = a < len(points) and b < len(points) and np.isfinite(points[[a, b]]).all()
        if ok:
            line.setLine(points[a, 0] + 0.5, points[a, 1] + 0.5,
                         points[b, 0] + 0.5, points[b, 1] + 0.5)
        line.setVisible(bool(ok))


def _dot(color: QColor, symbol: str) -> str:
    return f'<span style="color:{color.name()}; font-weight:bold">{symbol}</span>'


def _marker_size(box) -> float:
    """A photo marker's size in photo pixels: small next to its face at any zoom."""
    return max(0.8, 0.022 * max(box[2] - box[0], box[3] - box[1]))


def _inside(rect: QRectF, bounds: QRectF) -> QRectF:
    """``rect`` moved (not resized) into ``bounds`` as far as it fits (its top-left first)."""
    x = max(bounds.left(), min(rect.left(), bounds.right() - rect.width()))
    y = max(bounds.top(), min(rect.top(), bounds.bottom() - rect.height()))
    return QRectF(x, y, rect.width(), rect.height())


def _overlap(a: QRectF, b: QRectF) -> float:
    both = a.intersected(b)
    return both.width() * both.height() if not both.isEmpty() else 0.0


def _square(a: QPointF, b: QPointF) -> QRectF:
    """The square with corner ``a`` reaching towards ``b`` (face boxes are square)."""
    side = max(abs(b.x() - a.x()), abs(b.y() - a.y()))
    sx = 1 if b.x() >= a.x() else -1
    sy = 1 if b.y() >= a.y() else -1
    return QRectF(a, QPointF(a.x() + sx * side, a.y() + sy * side)).normalized()
