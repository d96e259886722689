"""Predictor: a saved ``.keras`` model -> keypoints for 96x96 crops or for whole photos.

Crops: :meth:`Predictor.predict` takes uint8 (N, 96, 96) faces and returns float32 (N, 2K)
keypoints in pixels of the crop, K the points of the model's keypoint set
(:attr:`Predictor.keypoint_set`, named by the model's training record; Kaggle's 15 for models
that name none). The model is called directly (one traced function, no
``model.predict``, whose fixed overhead is larger than the whole forward pass of one face).

With ``flip_average`` each crop is also predicted mirrored (one batch of both), the mirrored
prediction mapped back (x -> 95 - x, left/right swapped) and the two averaged.

Photos: :meth:`Predictor.predict_photo` applies the EXIF orientation, finds faces with a
detector (:mod:`facekp.core.faces.detect`: MTCNN by default, Haar on request), frames each by the
one crop rule the training data was made with (:func:`facekp.core.faces.framing.crop_for_landmarks`
from MTCNN's five points; :func:`facekp.core.faces.framing.crop_for_box` for Haar's boxes),
predicts, and maps the keypoints back to the photo's pixels. With 2 passes (by default only for
faces framed from a box) each face is framed again around its first-pass keypoints
(:func:`facekp.core.faces.framing.crop_for_points`, the landmark rule) and predicted once more, and
the face's keypoints are the mean of the two views in photo pixels (README, Models, gives the
figures).
"""
from __future__ import annotations

import functools
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from facekp.core import parallel
from facekp.core.errors import DataError
from facekp.core.faces.framing import (
    Box, Crop, GrayOnRead, crop_for_box, crop_for_points, crop_image, to_gray,
)
from facekp.core.data.keypoints import IMAGE_SIZE

#: Largest change of framing accepted from the second pass (ratio of crop sides).
SECOND_PASS_MAX_RESCALE = 2.0
#: A photo's crops are cut on several cores only this many a core or more (a crop takes
#: 0.06-0.3 ms, mostly OpenCV's area resize; handing work to another thread about 0.1).
CROPS_PER_PART = 4
BATCH = 256
#: How the model is run (see :class:`Predictor`): Keras (the default: exact, for evaluation,
#: training and comparisons) or TensorFlow Lite, float32 or with 8-bit weights.
ENGINES = ("keras", "tflite-int8", "tflite")
#: The engine of the photo paths (facekp predict, folders, videos, the app): the fastest.
PHOTO_ENGINE = "tflite-int8"


@dataclass
class FaceResult:
    """One face: the detector (or given) box, the crop the final keypoints came from, the
    model's K keypoints (K, 2) in photo pixels (pixel centres, x then y, in its set's order),
    and the detector's confidence and five points (None where the detector gives none)."""
    box: Box
    crop: Crop
    keypoints: np.ndarray
    detection: Any = None  # facekp.core.faces.detect.Detection
    #: (K,) confidence of each keypoint, 0..1 (facekp.core.model.confidence; None without a head)
    keypoint_confidence: np.ndarray | None = None

    @property
    def confidence(self) -> float | None:
        return None if self.detection is None else self.detection.confidence


@dataclass
class PhotoResult:
    """The faces of one photo (largest first) and a message for people ("no face found")."""
    faces: list[FaceResult] = field(default_factory=list)
    message: str = ""
    size: tuple[int, int] | None = None  # (width, height) after the EXIF orientation
    image: Any = None  # the oriented PIL image, for drawing (None for an RGB array given)

    def face_tuples(self) -> list[tuple]:
        """Each face as ``(box [x0, y0, x1, y1], keypoints, detection, crop, confidences)``,
        the form :func:`facekp.core.photos.photo_json.photo_record` and the app's canvas take."""
        return [(f.box.as_list(), f.keypoints, f.detection, f.crop, f.keypoint_confidence)
                for f in self.faces]


class Predictor:
    """Keypoints from a Keras model (a ``.keras`` path or a model object)."""

    def __init__(self, model: Any, detector: Any = None, flip_average: bool = True,
                 min_confidence: float = 0.0, confidence: Any = "auto", keypoint_set=None,
                 engine: str = "keras"):
        """``detector``: a name of :data:`facekp.core.faces.detect.DETECTORS` or a detector object (None:
        MTCNN, made when a photo first needs it); ``flip_average``: average each crop with its
        mirror image (on by default: the default model's test RMSE 1.505 -> 1.475 px, README);
        ``min_confidence``: faces the detector is less sure of are left out;
        ``confidence``: the keypoint confidence head (:mod:`facekp.core.model.confidence`): "auto"
        (the ``NAME.confidence.json`` beside a model file, if there is one), None (no confidence),
        a path or a :class:`facekp.core.model.confidence.ConfidenceHead`;
        ``keypoint_set``: the set a model object predicts (a file's record names its own);
        ``engine``: "keras" (default: the model's own traced call, exact), "tflite-int8"
        (:data:`PHOTO_ENGINE`, the photo paths': the model converted to TensorFlow Lite with
        8-bit weights on first use, about 1.5 s, then each call without Keras's per-call
        overhead and about 2.5 x faster than float32; the shipped model's test RMSE 1.4692 ->
        1.4695 px) or "tflite" (float32; keypoints within 1e-4 px of Keras's)."""
        import tensorflow as tf

        from facekp.core.model.confidence import ConfidenceHead, head_path, load_head

        if isinstance(model, (str, Path)):
            self.path: Path | None = Path(model)
            model = load_model(self.path)
        else:
            self.path = None
        if isinstance(confidence, str) and confidence == "auto":
            beside = head_path(self.path) if self.path is not None else None
            confidence = beside if beside is not None and beside.exists() else None
        self.confidence_head: ConfidenceHead | None = (
            load_head(confidence) if isinstance(confidence, (str, Path)) else confidence)
        self._maps_forward = None
        self.model = model
        if keypoint_set is not None:
            self.keypoint_set = keypoint_set
        k2 = int(model.output_shape[-1])
        if 2 * self.keypoint_set.size != k2:
            raise DataError(self.path, f"the model gives {k2} values per face and its keypoint "
                                       f"set {self.keypoint_set.name!r} has "
                                       f"{self.keypoint_set.size} points (expected "
                                       f"{2 * self.keypoint_set.size})")
        self._flip_order = self.keypoint_set.flip_order()
        head = self.confidence_head
        if head is not None and tuple(head.keypoint_names) != self.keypoint_set.names:
            raise DataError(confidence if isinstance(confidence, (str, Path)) else None,
                            f"a confidence head for {len(head.keypoint_names)} keypoints "
                            f"({', '.join(head.keypoint_names[:2])}, ...), not for the "
                            f"model's set {self.keypoint_set.name!r}")
        self._detector = detector
        self.flip_average = bool(flip_average)
        self.min_confidence = float(min_confidence)
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
        self.engine = engine
        self._lite = None       # the model through TensorFlow Lite, made on first use
        self._lite_lock = threading.Lock()  # an interpreter serves one thread at a time
        # Traced once here; calling the concrete function skips the tf.function's argument
        # binding and dispatch (about 1 ms of a 5 ms single-crop call).
        self._keras_forward = tf.function(
            lambda x: model(x, training=False),
            input_signature=[tf.TensorSpec([None, IMAGE_SIZE, IMAGE_SIZE, 1], tf.float32)]
        ).get_concrete_function()
        self._to_tensor = tf.convert_to_tensor

    @property
    def detector(self):
        """The face detector (made on first use: MTCNN builds three networks)."""
        if self._detector is None or isinstance(self._detector, str):
            from facekp.core.faces.detect import DEFAULT_DETECTOR, make_detector

            self._detector = make_detector(self._detector or DEFAULT_DETECTOR)
        return self._detector

    @detector.setter
    def detector(self, detector) -> None:
        self._detector = detector

    @functools.cached_property
    def keypoint_set(self):
        """The keypoint set the model predicts: the one its training record names (models
        trained before sets travelled, and model objects without a file and without a set
        given: kaggle15)."""
        return model_keypoint_set(self.path)

    def _flip(self, keypoints: np.ndarray) -> np.ndarray:
        """Keypoints (N, 2K) predicted on mirrored crops, mapped back to the crops."""
        from facekp.core.data.keypoints import flip_columns

        return flip_columns(keypoints, self._flip_order)

    # -- crops --

    def predict(self, images: np.ndarray, batch_size: int = BATCH) -> np.ndarray:
        """uint8 (N, 96, 96) faces (or (N, 96, 96, 1)) -> float32 (N, 2K) keypoints, pixels."""
        x = _faces(images)
        out = np.empty((len(x), 2 * self.keypoint_set.size), np.float32)
        for a in range(0, len(x), batch_size):
            chunk = x[a:a + batch_size, :, :, None].astype(np.float32)
            if not self.flip_average:
                out[a:a + len(chunk)] = self._forward(chunk)
                continue
            both = self._forward(np.concatenate([chunk, chunk[:, :, ::-1]]))
            out[a:a + len(chunk)] = (both[:len(chunk)] + self._flip(both[len(chunk):])) / 2
        return out

    def predict_with_confidence(self, images: np.ndarray, batch_size: int = BATCH
                                ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`predict`'s keypoints (N, 2K) and each keypoint's confidence (N, K), 0..1:
        the estimated probability that the point is within 3 px of its label
        (:mod:`facekp.core.model.confidence`). Each crop is also predicted mirrored and under the
        head's re-crops (8 by default), all in one call with the faces and their mirror images
        (a one-face photo's whole path: 1.5-2.1 x without confidence). FacekpError
        when the predictor has no confidence head."""
        from facekp.core.errors import FacekpError

        head = self.confidence_head
        if head is None:
            raise FacekpError("this model has no confidence head (a .confidence.json file "
                              "beside it; see README, Keypoint confidence)")
        kp, sig = self.confidence_signals(images, head.views, "face_peak" in head.features,
                                          batch_size)
        return kp, head.confidence(sig)

    def confidence_signals(self, images: np.ndarray, views=None, maps: bool = True,
                           batch_size: int = BATCH, stop=None) -> tuple[np.ndarray, dict]:
        """:meth:`predict`'s keypoints (N, 2K) and the signals a confidence head reads
        (:func:`facekp.core.model.confidence.signals`), from the re-crops ``views`` (default
        :data:`facekp.core.model.confidence.VIEWS`) and, with ``maps``, the model's heatmaps.
        ``stop``: a callable asked before each chunk of faces; when it says True, this raises
        :class:`facekp.core.model.train_types.StopRequested`."""
        from facekp.core.model.confidence import (
            FEATURES, VIEWS, heatmap_peaks, signals, unwarp, warp_views,
        )
        from facekp.core.model.train_types import StopRequested

        views = VIEWS if views is None else views
        x = _faces(images)
        kset = self.keypoint_set
        kp = np.empty((len(x), 2 * kset.size), np.float32)
        parts: list[dict] = []
        step = max(1, batch_size // (2 + len(views)))
        for a in range(0, len(x), step):
            if stop is not None and stop():
                raise StopRequested
            chunk = x[a:a + step].astype(np.float32)
            n = len(chunk)
            # the faces, their mirror images and the head's re-crops in one call
            out, logits = self._maps(np.concatenate(
                [chunk, chunk[:, :, ::-1], warp_views(chunk, views)])[..., None], maps)
            final = (out[:n] + self._flip(out[n:2 * n])) / 2 if self.flip_average else out[:n]
            moved = out[2 * n:].reshape(len(views), n, -1)
            logits = None if logits is None else logits[:2 * n]
            moved = np.stack([unwarp(v, view) for v, view in zip(moved, views)])
            peaks = None if logits is None else heatmap_peaks(logits)
            parts.append(signals(final, moved, None if peaks is None else peaks[:n],
                                 None if peaks is None else peaks[n:], chunk, kset))
            kp[a:a + n] = final
        names = parts[0].keys() if parts else FEATURES
        empty = np.zeros((0, kset.size))
        return kp, {k: np.concatenate([p[k] for p in parts]) if parts else empty for k in names}

    def for_photos(self) -> "Predictor":
        """This predictor with the photo paths' engine (:data:`PHOTO_ENGINE`): the same model,
        keypoint set, confidence head and detector, made once and kept (so a window's dataset
        figures stay the Keras model's exact ones while its photos run fast)."""
        if self.engine == PHOTO_ENGINE:
            return self
        if getattr(self, "_photo_twin", None) is None:
            import copy

            twin = copy.copy(self)
            twin.engine, twin._lite, twin._lite_lock = PHOTO_ENGINE, None, threading.Lock()
            self._photo_twin = twin
        return self._photo_twin

    def warm_up(self) -> None:
        """Make the model's TensorFlow Lite form now (about 1.5 s; twice that with a
        confidence head, whose heatmaps need a second form) instead of on the first call
        (nothing to make for the Keras engine)."""
        if self.engine == "keras":
            return
        blank = np.zeros((1, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
        self.predict(blank)
        if self.confidence_head is not None:
            self.predict_with_confidence(blank)

    def _forward(self, x: np.ndarray) -> np.ndarray:
        """Keypoints (N, 2K) of float images (N, 96, 96, 1), by the predictor's engine."""
        if self.engine == "keras":
            return self._keras_forward(self._to_tensor(x)).numpy()
        with self._lite_lock:
            return self._runner(False)(x)

    def _runner(self, maps: bool):
        """The model through TensorFlow Lite (with its heatmaps when ``maps``), made once."""
        from facekp.core.model.export import LiteRunner

        if self._lite is None:
            self._lite = {}
        if maps not in self._lite:
            self._lite[maps] = LiteRunner(self.model, maps=maps,
                                          int8_weights=self.engine == "tflite-int8")
        return self._lite[maps]

    def _maps(self, x: np.ndarray, want_maps: bool):
        """Keypoints (and heatmap logits when ``want_maps``) of float images (N, 96, 96, 1)."""
        if not want_maps:
            return self._forward(x), None
        try:
            self.model.get_layer("heatmaps")
        except ValueError:
            from facekp.core.errors import FacekpError
            raise FacekpError("the confidence head needs heatmaps, and this model has no "
                              "layer named 'heatmaps'") from None
        if self.engine != "keras":
            with self._lite_lock:
                logits, out = self._runner(True)(x)
            return out, logits
        if self._maps_forward is None:
            import keras
            import tensorflow as tf

            both = keras.Model(self.model.inputs, [self.model.get_layer("heatmaps").output,
                                                   self.model.outputs[0]])
            self._maps_forward = tf.function(
                lambda t: both(t, training=False),
                input_signature=[tf.TensorSpec([None, IMAGE_SIZE, IMAGE_SIZE, 1], tf.float32)]
            ).get_concrete_function()
        logits, out = self._maps_forward(self._to_tensor(x))
        return out.numpy(), logits.numpy()

    # -- photos --

    def predict_photo(self, photo: Any, boxes: Sequence[Box] | None = None,
                      passes: int | None = None, confidence: bool = False) -> PhotoResult:
        """Keypoints of every face in a photo (a path, a PIL image or an array).

        ``boxes=None`` finds the faces (:attr:`detector`); otherwise each given box (photo
        pixels, Haar-like: see :func:`facekp.core.faces.framing.box_from_points`) is framed by the
        box rule. ``passes``: 1 or 2 for every face; None (default) frames a face again (2 passes)
        only when its first crop came from a box (Haar, a drawn box): MTCNN's five points already
        frame it as the second pass would (test people: NME 0.0499 one pass, 0.0497 two).
        ``confidence``: also give each face's :attr:`FaceResult.keypoint_confidence` (with 2
        passes the mean of the two crops'; FacekpError without a confidence head). Off by
        default: it predicts each crop 10 times instead of twice.
        No face gives an empty result with a message, not an error; an unreadable file raises
        :class:`facekp.core.errors.DataError`.
        """
        from PIL import Image

        from facekp.core.faces.framing import load_photo

        if passes not in (None, 1, 2):
            raise ValueError(f"passes must be 1 or 2, got {passes}")
        pixels = None  # the decoded array as given: the detector reads it without a copy
        if isinstance(photo, (str, Path)):
            image = load_photo(photo)
        elif isinstance(photo, Image.Image):
            image = photo
        else:
            pixels = np.asarray(photo)
            # an RGB array needs no PIL copy (2 ms for 3 MP); other arrays go through one
            image = None if _rgb_array(pixels) else Image.fromarray(pixels)
        if pixels is None and image.mode == "RGB":
            pixels = np.array(image)     # (np.asarray is several times slower on Pillow)
        from facekp.core.faces.detect import Detection

        # the grayscale the crops read, converted where they read it
        gray = GrayOnRead(pixels) if pixels is not None and _rgb_array(pixels) \
            else to_gray(image)
        size = (gray.shape[1], gray.shape[0])
        found = (self.detector.detect(image if pixels is None else pixels) if boxes is None
                 else [Detection(b) for b in boxes])
        found = [d for d in found if d.confidence is None or d.confidence >= self.min_confidence]
        if not found:
            return PhotoResult([], "no face found", size, image)
        faces = self.predict_detections(gray, found, passes, bool(confidence))
        n = len(faces)
        return PhotoResult(faces, f"{n} face{'s' if n != 1 else ''} found", size, image)

    def predict_detections(self, gray: np.ndarray, found: Sequence[Any],
                           passes: int | None = None, confidence: bool = False
                           ) -> list[FaceResult]:
        """Keypoints of detected faces (facekp.core.faces.detect.Detection s) in a 2-D uint8 photo: each
        framed by the rule its detection allows, predicted, and framed again by ``passes``
        (see :meth:`predict_photo`, also for ``confidence``). Video tracking starts its
        tracks here."""
        crops = [d.crop() if hasattr(d, "crop") else crop_for_box(d.box) for d in found]
        if not crops:
            return []
        points, conf = self._crops(gray, crops, confidence)
        twice = [passes == 2 or (passes is None and d.points is None) for d in found]
        self._second_pass(gray, crops, points, conf, twice)
        return [FaceResult(d.box, c, p, d, k)
                for d, c, p, k in zip(found, crops, points, conf)]

    def _second_pass(self, gray, crops: list[Crop], points: list, conf: list,
                     which: list[bool]) -> None:
        """Frame the faces in ``which`` again around their keypoints, predict, and average
        the two views (and their confidences, where given) in place."""
        again = [reframe(p, c) if w else None for p, c, w in zip(points, crops, which)]
        redo = [i for i, c in enumerate(again) if c is not None]
        if redo:
            new, new_conf = self._crops(gray, [again[i] for i in redo], conf[0] is not None)
            for j, i in enumerate(redo):
                crops[i], points[i] = again[i], (points[i] + new[j]) / 2
                if conf[i] is not None:
                    conf[i] = (conf[i] + new_conf[j]) / 2

    def predict_crops(self, gray: np.ndarray, crops: list[Crop]) -> list[np.ndarray]:
        """The K keypoints (K, 2), photo pixels, of each crop of a 2-D uint8 photo."""
        return self._crops(gray, crops)[0]

    def _crops(self, gray: np.ndarray, crops: list[Crop], confidence: bool = False
               ) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
        """Keypoints in photo pixels (and confidences, or Nones) of each crop of ``gray``."""
        images = crop_images(gray, crops)
        if confidence:
            kp, conf = self.predict_with_confidence(images)
        else:
            kp, conf = self.predict(images), [None] * len(crops)
        kp = kp.reshape(len(crops), self.keypoint_set.size, 2)
        return [c.to_photo(k) for c, k in zip(crops, kp)], list(conf)


def _rgb_array(pixels: np.ndarray) -> bool:
    """A uint8 H x W x 3 (or 4) array: the photo path reads it as it is."""
    return pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] in (3, 4)


def crop_images(gray: np.ndarray, crops: Sequence[Crop]) -> np.ndarray:
    """uint8 (N, 96, 96): each crop of a 2-D uint8 photo or a :class:`GrayOnRead`
    (:func:`crop_image`). A group photo's crops are shared out to the cores
    (:mod:`facekp.core.parallel`; OpenCV lets go of the GIL while it converts and resizes), at
    least :data:`CROPS_PER_PART` to a core: bald_guys.jpg's 24 from its GrayOnRead took
    3.9-4.2 ms one after another here, 2.3-2.6 ms shared out."""
    images = np.empty((len(crops), IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    parts = max(1, min(parallel.workers(), len(crops) // CROPS_PER_PART))

    def cut(_worker: int, i: int) -> None:  # the next crop (the largest come first)
        images[i] = crop_image(gray, crops[i])

    parallel.each(cut, len(crops), parts)
    return images


def _faces(images) -> np.ndarray:
    """(N, 96, 96) faces from (N, 96, 96) or (N, 96, 96, 1); ValueError otherwise."""
    x = np.asarray(images)
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim != 3 or x.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(f"expected faces as N x {IMAGE_SIZE} x {IMAGE_SIZE}, got {x.shape}")
    return x


def reframe(points: np.ndarray, first: Crop) -> Crop | None:
    """The second-pass crop, or None when the first pass's keypoints are too implausible to
    frame a face by (not finite, or a framing far from the detector's)."""
    if not np.isfinite(points).all():
        return None
    try:
        crop = crop_for_points(points)
    except ValueError:
        return None
    ratio = crop.side / first.side
    cx, cy = crop.x0 + crop.side / 2, crop.y0 + crop.side / 2
    if not (1 / SECOND_PASS_MAX_RESCALE <= ratio <= SECOND_PASS_MAX_RESCALE) or \
            not first.box.contains(cx, cy):
        return None
    return crop


# --- loading ------------------------------------------------------------------------------

def load_model(path: str | Path, compile: bool = False):
    """Load a ``.keras`` keypoint model (for inference; ``compile=True`` also restores its
    optimizer state, to go on training); DataError if it is not one."""
    import keras

    from facekp.core.model import architectures as _custom_objects  # noqa: F401  (registers the loss and metric)
    from facekp.core.fileio import check_input_file

    path = check_input_file(path, "model file")
    if path.suffix.lower() != ".h5" and not zipfile.is_zipfile(path):
        raise DataError(path, "not a Keras model file (expected a .keras file saved by "
                              "'facekp train')")
    try:
        model = keras.saving.load_model(path, compile=compile)
    except Exception as exc:
        reason = str(exc).strip().split(". ")[0].splitlines()[0] if str(exc).strip() else ""
        raise DataError(path, "a Keras file this version cannot load"
                        + (f" ({reason[:160]})" if reason else "")) from None
    ins, outs = tuple(model.input_shape), tuple(model.output_shape)
    if ins[1:] != (IMAGE_SIZE, IMAGE_SIZE, 1) or len(outs) != 2 or not outs[1] \
            or outs[1] % 2:
        raise DataError(path, f"model maps {ins} -> {outs}; expected (None, 96, 96, 1) -> "
                              "(None, 2K): 96x96 faces to K keypoints (30 for Kaggle's 15)")
    return model


def model_keypoint_set(path: str | Path | None):
    """The keypoint set a model file predicts: the one its training record (inside the file,
    or the card beside a shipped one) names; kaggle15 for models that name none (trained
    before sets travelled) and for no file."""
    from facekp.core.data.keypoint_sets import KAGGLE15, from_dict
    from facekp.core.model.checkpoints import read_record

    record = read_record(path) if path is not None else None
    if record and isinstance(record.get("keypoint_set"), dict):
        return from_dict(record["keypoint_set"], path)
    return KAGGLE15
