"""Face detectors for photos: BlazeFace with MTCNN behind it (the default), MTCNN, and
OpenCV's Haar cascade.

A detector turns an RGB photo (H x W x 3 uint8) into :class:`Detection` s, largest first:
a box in photo pixels, the detector's confidence, and for MTCNN five points (the eye centres,
the nose tip and the mouth corners), for BlazeFace six (the eye centres, the nose tip, the
mouth centre and the ear tragions). Each detection frames its face for the model by the rule
for its points (:meth:`Detection.crop`).

MTCNN runs the P-, R- and O-Net of the ``mtcnn`` package (its weights ship inside the wheel;
nothing is downloaded) through our own driver, which makes it fast enough for the photo path:

- the photo is scanned on a copy whose longer side is at most :data:`MTCNN_MAX_SIDE` pixels,
  and the image pyramid starts at the smallest face looked for (``min_face`` pixels of that
  copy, :data:`MTCNN_MIN_FACE`) and stops where a level would be smaller than P-Net's 12-pixel
  window (the package's own pyramid runs past that and then reports no face at all);
- each network is traced once (``tf.function`` with open height and width), not called
  layer by layer in eager mode; P-Net sees all levels of the pyramid in one call;
- R- and O-Net see every candidate of a photo in one batch (as the package does), cutting
  the patches inside their traced graph.
The networks' outputs, and so the detections, are the package's stages' to the bit (tested).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from facekp.core.errors import DataError
from facekp.core.faces.blazeface import MIN_FACE as BLAZE_MIN_FACE
from facekp.core.faces.framing import (DETECT_SIDE, Box, Crop, crop_for_box, crop_for_landmarks,
                                       crop_for_six, find_faces, to_gray)

DETECTORS = ("blazeface", "mtcnn", "haar")
DEFAULT_DETECTOR = "blazeface"
#: Longer side of the copy MTCNN scans (photos larger than this are scaled down first), so
#: faces smaller than MTCNN_MIN_FACE / MTCNN_MAX_SIDE (3.75 %) of a photo's longer side are not
#: looked for; this bounds the time on large photos (``--detect-side`` raises it).
MTCNN_MAX_SIDE = 640
#: Smallest face MTCNN looks for, in pixels of the scanned copy (box side).
MTCNN_MIN_FACE = 24
#: Pyramid step (each level is this times the previous one), as in the MTCNN paper.
MTCNN_PYRAMID_STEP = 0.709
#: Face-probability thresholds of P-, R- and O-Net (the package's are 0.6, 0.7, 0.8; P-Net at 0.7
#: sends R-Net fewer candidates with the same recall on the photos benchmark).
MTCNN_THRESHOLDS = (0.7, 0.7, 0.8)
#: BlazeFace looks again in tiles when a face it found is smaller than this times its
#: whole-photo view's reach (:class:`BlazeFaceDetector`).
TILE_TRIGGER = 2.0
#: Pyramid levels P-Net takes in one call (a photo with more is scanned in several calls;
#: unused inputs get a blank 12 x 12 level, whose cost is negligible).
PNET_LEVELS = 12
_EMPTY_LEVEL = np.zeros((1, 12, 12, 3), np.uint8)
#: Names of the five MTCNN points, in the order of :attr:`Detection.points` (image left/right:
#: the first eye is the one on the left of the picture, the subject's right eye).
POINT_NAMES = ("eye_image_left", "eye_image_right", "nose", "mouth_image_left",
               "mouth_image_right")
#: Names of BlazeFace's six points, in the order of :attr:`Detection.points` (image left first).
BLAZE_POINT_NAMES = ("eye_image_left", "eye_image_right", "nose", "mouth_center",
                     "ear_image_left", "ear_image_right")


@dataclass(frozen=True)
class Detection:
    """A face found in a photo: box (photo pixels), the detector's confidence (0-1, None for
    a detector that gives none) and its points in photo pixels: MTCNN's five (5, 2),
    BlazeFace's six (6, 2), None for Haar (named by :attr:`point_names`)."""
    box: Box
    confidence: float | None = None
    points: np.ndarray | None = None

    @property
    def point_names(self) -> tuple[str, ...]:
        if self.points is None:
            return ()
        return BLAZE_POINT_NAMES if len(self.points) == 6 else POINT_NAMES

    def crop(self) -> Crop:
        """The model's framing of this face: the rule for its detector's points (or box)."""
        if self.points is None:
            return crop_for_box(self.box)
        if len(self.points) == 6:
            return crop_for_six(self.points)
        return crop_for_landmarks(self.points)


class Detector(Protocol):
    name: str

    def detect(self, rgb: np.ndarray) -> list[Detection]: ...


class HaarDetector:
    """OpenCV's Haar cascade with a confirming second cascade (:func:`facekp.core.faces.framing.find_faces`):
    fast, frontal faces only, no confidence and no points."""
    name = "haar"

    def __init__(self, detect_side: int | None = None):
        self.detect_side = DETECT_SIDE if detect_side is None else int(detect_side)

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        return [Detection(b) for b in find_faces(to_gray(rgb), self.detect_side)]


class MtcnnDetector:
    """MTCNN (joint face detection and alignment) through a fast driver: see the module text."""
    name = "mtcnn"

    def __init__(self, min_face: int = MTCNN_MIN_FACE, max_side: int = MTCNN_MAX_SIDE,
                 thresholds: tuple[float, float, float] = MTCNN_THRESHOLDS,
                 weights_dir: str | Path | None = None):
        self.min_face = int(min_face)
        self.max_side = int(max_side)
        self.thresholds = tuple(float(t) for t in thresholds)
        self._nets = _mtcnn_nets(None if weights_dir is None else str(weights_dir))

    def pyramid(self, width: int, height: int) -> list[float]:
        """Scales at which P-Net (a 12-pixel window) sees faces from ``min_face`` pixels up."""
        first = 12.0 / max(self.min_face, 12)
        smallest = min(width, height)
        count = max(1, int(math.floor(math.log(12.0 / (smallest * first))
                                      / math.log(MTCNN_PYRAMID_STEP))) + 1)
        return [first * MTCNN_PYRAMID_STEP ** k for k in range(count)]

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Faces in an RGB photo (array or PIL image), largest first: P-Net over the pyramid
        of a copy at most ``max_side`` pixels long, then R- and O-Net on the candidates."""
        import cv2

        rgb = _as_rgb(rgb)
        h, w = rgb.shape[:2]
        shrink = min(1.0, self.max_side / max(h, w))
        small = rgb if shrink >= 1.0 else cv2.resize(
            rgb, (max(1, round(w * shrink)), max(1, round(h * shrink))),
            interpolation=cv2.INTER_AREA)
        if min(small.shape[:2]) < 12:
            return []
        rows = self._propose(small)
        if len(rows):
            rows = self._refine(small, rows)
        back = 1.0 / shrink
        out = []
        for r in rows:
            box = Box(*(float(v) * back for v in r[1:5]))
            pts = np.stack([r[6:11], r[11:16]], axis=1).astype(np.float64) * back
            out.append(Detection(box, float(r[5]), pts))
        return sorted(out, key=lambda d: -d.box.width * d.box.height)

    def _propose(self, rgb: np.ndarray) -> np.ndarray:
        """P-Net over the pyramid -> candidate rows [0, x0, y0, x1, y1, score] (squared)."""
        import cv2
        from mtcnn.utils.bboxes import (generate_bounding_box, resize_to_square,
                                        smart_nms_from_bboxes)

        h, w = rgb.shape[:2]
        levels, sizes = [], []
        level = rgb
        for scale in self.pyramid(w, h):
            size = (max(12, int(math.ceil(w * scale))), max(12, int(math.ceil(h * scale))))
            # each level from the one before (a fraction of the pixels to read), in uint8
            # (several times faster than float; P-Net normalises in its graph)
            level = cv2.resize(level, size, interpolation=cv2.INTER_AREA)
            levels.append(level[None])
            sizes.append(size)
        found = []
        for start in range(0, len(levels), PNET_LEVELS):
            chunk = levels[start:start + PNET_LEVELS]
            outputs = self._nets.pnet(*chunk, *[_EMPTY_LEVEL] * (PNET_LEVELS - len(chunk)))
            for size, (reg, cls) in zip(sizes[start:], outputs[:len(chunk)]):
                rows = generate_bounding_box(reg, cls, self.thresholds[0])
                if not len(rows):
                    continue
                rows[:, 1:5] /= np.array([size[0] / w, size[1] / h, size[0] / w, size[1] / h])
                found.append(smart_nms_from_bboxes(rows, threshold=0.5, method="union",
                                                   initial_sort=False))
        if not found:
            return np.empty((0, 6))
        rows = smart_nms_from_bboxes(np.concatenate(found), threshold=0.7, method="union",
                                     initial_sort=True)
        return resize_to_square(rows)

    def _refine(self, rgb: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """R- then O-Net on P-Net's candidate rows -> [0, x0, y0, x1, y1, score, 5 x, 5 y]:
        the package's stages, each with its patch cutting and network in one traced call."""
        from mtcnn.utils.bboxes import (adjust_bboxes, pick_matches, replace_confidence,
                                        resize_to_square, smart_nms_from_bboxes)
        from mtcnn.utils.landmarks import adjust_landmarks

        import tensorflow as tf

        pixels = tf.constant((rgb[None].astype(np.float32) - 127.5) / 128.0)  # as _normalised
        offsets, scores = self._nets.rnet(pixels, *_patch_boxes(rows, rgb.shape))
        rows = adjust_bboxes(replace_confidence(rows, scores), offsets)
        rows = pick_matches(rows, score_threshold=self.thresholds[1])
        rows = resize_to_square(smart_nms_from_bboxes(rows, threshold=0.7, method="union",
                                                      initial_sort=True))
        if not len(rows):
            return rows
        offsets, landmarks, scores = self._nets.onet(pixels, *_patch_boxes(rows, rgb.shape))
        landmarks = adjust_landmarks(landmarks, rows)
        rows = adjust_bboxes(replace_confidence(rows, scores), offsets)
        rows = pick_matches(np.concatenate([rows, landmarks], axis=-1), scores_column=5,
                            score_threshold=self.thresholds[2])
        return smart_nms_from_bboxes(rows, threshold=0.7, method="min", initial_sort=True)


def _patch_boxes(rows: np.ndarray, shape: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Candidate rows -> (boxes [y0, x0, y1, x1] as fractions of the photo, float32; photo
    index per box) for ``tf.image.crop_and_resize``, as the package's ``extract_patches``."""
    h, w = shape[:2]
    boxes = rows[:, [2, 1, 4, 3]] / np.asarray([[h, w, h, w]])
    return boxes.astype(np.float32), rows[:, 0].astype(np.int32)


def _normalised(pixels):
    """uint8 pixels (a tensor) -> MTCNN's input range [-1, 1), float32."""
    import tensorflow as tf

    return (tf.cast(pixels, tf.float32) - 127.5) / 128.0


@dataclass
class _Nets:
    #: P-Net on PNET_LEVELS pyramid levels (uint8, 1 x H x W x 3 each) in one call
    pnet: object
    #: R-Net / O-Net on the patches of one photo (1 x H x W x 3, normalised as by
    #: :func:`_normalised`) cut at the given boxes (see :func:`_patch_boxes`)
    rnet: object
    onet: object
    #: the Keras models behind the concrete functions above, which hold their variables only
    #: weakly: without this a garbage collection deletes them under the traced functions
    models: tuple = ()


@functools.lru_cache(maxsize=2)
def _mtcnn_nets(weights_dir: str | None) -> _Nets:
    """The three MTCNN networks (weights from the ``mtcnn`` package, or ``weights_dir``
    holding pnet.lz4, rnet.lz4 and onet.lz4), each traced once as a concrete function: called
    directly it skips the argument binding and dispatch that a ``tf.function`` with open
    shapes repeats on every call. P-Net sees the whole pyramid in one call (its levels run
    side by side in one graph instead of a dozen calls a photo), R- and O-Net cut their patches
    inside their graph. The networks' outputs are the package's own, to the bit."""
    import tensorflow as tf

    try:
        from mtcnn.stages import StageONet, StagePNet, StageRNet
    except ImportError as exc:
        raise DataError("mtcnn", f"the MTCNN face detector is not installed ({exc}); "
                                 "pip install mtcnn, or use the haar detector") from None
    models = []
    for cls, name in ((StagePNet, "pnet.lz4"), (StageRNet, "rnet.lz4"), (StageONet, "onet.lz4")):
        path = _weights_path(name, weights_dir)
        try:
            models.append(cls(weights=str(path))._model)
        except Exception as exc:  # a truncated or foreign file: joblib/pickle/keras errors
            raise DataError(path, f"MTCNN weight file could not be loaded ({type(exc).__name__}: "
                                  f"{str(exc)[:120]}); reinstall the mtcnn package") from None
    pnet_model, rnet_model, onet_model = models
    level = tf.TensorSpec([1, None, None, 3], tf.uint8)

    @tf.function(input_signature=[level] * PNET_LEVELS)
    def pnet(*levels):
        return [pnet_model(_normalised(x)) for x in levels]

    def patches(model, side):
        @tf.function(input_signature=[tf.TensorSpec([1, None, None, 3], tf.float32),
                                      tf.TensorSpec([None, 4], tf.float32),
                                      tf.TensorSpec([None], tf.int32)])
        def run(normalised, boxes, index):
            return model(tf.image.crop_and_resize(normalised, boxes, index, (side, side)))
        return run.get_concrete_function()

    return _Nets(pnet=pnet.get_concrete_function(), rnet=patches(rnet_model, 24),
                 onet=patches(onet_model, 48), models=tuple(models))


def _weights_path(name: str, weights_dir: str | None) -> Path:
    import importlib.resources

    if weights_dir is not None:
        path = Path(weights_dir) / name
    else:
        path = Path(str(importlib.resources.files("mtcnn.assets.weights") / name))
    if not path.is_file():
        raise DataError(path, "MTCNN weight file not found; reinstall the mtcnn package "
                              "or use the haar detector")
    return path


def _as_rgb(image) -> np.ndarray:
    """A PIL image or array (gray, RGB or RGBA) -> H x W x 3 uint8 array."""
    from PIL import Image

    if isinstance(image, Image.Image):
        image = image if image.mode == "RGB" else image.convert("RGB")
        return np.array(image)  # np.asarray takes several times longer on a Pillow image
    arr = np.asarray(image)
    if arr.ndim == 2:
        return np.repeat(arr[..., None], 3, axis=2).astype(np.uint8, copy=False)
    return arr[..., :3].astype(np.uint8, copy=False)


class BlazeFaceDetector:
    """BlazeFace first, MTCNN for the faces it cannot see (:mod:`facekp.core.faces.blazeface`).

    BlazeFace's full-range model scans the whole photo in one view (a few milliseconds at any
    photo size) and finds faces from about a tenth of the photo's longer side up to faces that
    fill or overflow the frame. When a face it found is near that reach (less than
    :data:`TILE_TRIGGER` times it: a group photo, say), it looks again in overlapping tiles,
    which reach faces half as large. When it finds no face, MTCNN looks (it reaches faces of
    24 pixels in a copy of at most ``max_side`` pixels, and sees some turned faces BlazeFace
    misses) (``mtcnn``: "auto" as just said, "never", or "always", which adds MTCNN's faces
    not already found by BlazeFace). A face BlazeFace finds below its reliable reach (less than
    :data:`facekp.core.faces.blazeface.MIN_FACE` pixels of its view) is handed to MTCNN on the
    region around it, whose five points frame it (BlazeFace's points at that size are off by
    pixels of its view). Faces come with BlazeFace's six points or MTCNN's five."""
    name = "blazeface"

    def __init__(self, model: str = "full", weights: str | Path | None = None,
                 mtcnn: str = "auto", max_side: int = MTCNN_MAX_SIDE,
                 min_confidence: float | None = None):
        from facekp.core.faces.blazeface import SCORE_THRESHOLD, blazeface

        if mtcnn not in ("auto", "never", "always"):
            raise ValueError(f"mtcnn must be auto, never or always, got {mtcnn!r}")
        self.blaze = blazeface(model, None if weights is None else str(weights))
        self.threshold = SCORE_THRESHOLD if min_confidence is None else float(min_confidence)
        self.mtcnn_mode = mtcnn
        self.max_side = int(max_side)
        self._mtcnn: MtcnnDetector | None = None

    @property
    def mtcnn(self) -> MtcnnDetector:
        if self._mtcnn is None:
            self._mtcnn = MtcnnDetector(max_side=self.max_side)
        return self._mtcnn

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Faces in an RGB photo (array or PIL image), largest first."""
        rgb = _as_rgb(rgb)
        h, w = rgb.shape[:2]
        copies: dict = {}     # the photo's shrunk copies, for the whole view and the tiles
        rows = self.blaze.detect(rgb, self.threshold, copies=copies) if min(h, w) >= 8 \
            else np.empty((0, 18))
        if len(rows) and (rows[:, 17] < TILE_TRIGGER * BLAZE_MIN_FACE).any():
            # faces near the whole view's reach: others may lie just beyond it (a group); the
            # tiles' finer view replaces the whole view's for the faces both see
            tiled = self.blaze.detect(rgb, self.threshold, self.blaze.tiles(w, h), copies)
            both = _centre_in(rows, tiled) | _centre_in(tiled, rows).T
            rows = np.concatenate([tiled, rows[~both.any(axis=1)]]) if len(tiled) else rows
        out = [Detection(Box(*(float(v) for v in r[1:5])), float(r[0]),
                         r[5:17].reshape(6, 2).astype(np.float64)) for r in rows]
        if self.mtcnn_mode != "never":
            out = [self._refined(rgb, d) if r[17] < BLAZE_MIN_FACE else d
                   for d, r in zip(out, rows)]
        if self.mtcnn_mode == "always" or (self.mtcnn_mode == "auto" and not out):
            out += [d for d in self.mtcnn.detect(rgb)
                    if not any(o.box.contains(*d.box.center) for o in out)]
        return sorted(out, key=lambda d: -d.box.width * d.box.height)


    def _refined(self, rgb: np.ndarray, found: Detection) -> Detection:
        """A face below BlazeFace's reliable reach (its points then miss by pixels of its
        small view): MTCNN on the region around it (one face side of margin; a small region,
        so milliseconds) gives its five points, the training faces' framing. BlazeFace's
        detection stays when MTCNN sees no face there."""
        import cv2

        h, w = rgb.shape[:2]
        side = max(found.box.width, found.box.height)
        x0, y0 = int(max(0, found.box.x0 - side)), int(max(0, found.box.y0 - side))
        x1, y1 = int(min(w, found.box.x1 + side)), int(min(h, found.box.y1 + side))
        region = rgb[y0:y1, x0:x1]
        f = max(1.0, 1.25 * MTCNN_MIN_FACE / max(side, 1.0))  # MTCNN's smallest face, and some
        if f > 1:
            region = cv2.resize(region, None, fx=f, fy=f, interpolation=cv2.INTER_LINEAR)
        for d in self.mtcnn.detect(region):
            box = Box(d.box.x0 / f + x0, d.box.y0 / f + y0, d.box.x1 / f + x0, d.box.y1 / f + y0)
            if found.box.contains(*box.center):
                return Detection(box, d.confidence, d.points / f + np.array([x0, y0]))
        return found


def _centre_in(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) bools: does row a[i]'s box centre lie in row b[j]'s box?"""
    cx, cy = ((a[:, 1] + a[:, 3]) / 2)[:, None], ((a[:, 2] + a[:, 4]) / 2)[:, None]
    return (b[:, 1] <= cx) & (cx < b[:, 3]) & (b[:, 2] <= cy) & (cy < b[:, 4])


def make_detector(name: str = DEFAULT_DETECTOR, **kwargs) -> Detector:
    """A detector by name (:data:`DETECTORS`); ValueError for another name."""
    if name == "blazeface":
        return BlazeFaceDetector(**kwargs)
    if name == "mtcnn":
        return MtcnnDetector(**kwargs)
    if name == "haar":
        return HaarDetector(**kwargs)
    raise ValueError(f"unknown face detector {name!r}; expected one of {', '.join(DETECTORS)}")
