"""Face boxes in a photo, and the one crop used by training data and photo prediction alike.

Framing from five face points (:func:`crop_for_landmarks`; the default, driven by MTCNN's
points): the two eye centres, the nose tip and the two mouth corners. The crop is centred on
the points' mean, moved up by ``LANDMARK_SHIFT_UP`` x a reference length (the mean of the eye
distance and the eye-to-mouth distance), and its side is ``LANDMARK_CROP_SCALE`` x that length.
The crop is not rotated or aligned to the eyes, so eye positions still vary as in Kaggle's
crops. Calibrated on the embedded dataset's training people only (README, Data): median eye
distance 36 px, eye centres at y = 37.

Framing from a box (:func:`crop_for_box`; the Haar detector, ``--detector haar``): a square
crop of ``CROP_SCALE`` x the box's side, its centre moved down by ``CROP_SHIFT_DOWN`` x the
side, which gives the same Kaggle-like faces from Haar's boxes (see shared/GUIDE.md).

Coordinates are pixel centres (see facekp.core.data.keypoints): a crop of side ``s`` starting at
integer ``(x0, y0)`` maps a photo point ``p`` to ``(p + 0.5 - x0) * 96 / s - 0.5``.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facekp.core.data.keypoints import IMAGE_SIZE, NAMES

CROP_SCALE = 0.965
CROP_SHIFT_DOWN = 0.016
LANDMARK_CROP_SCALE = 2.562
LANDMARK_SHIFT_UP = 0.207
#: Framing from BlazeFace's six points (:func:`crop_for_six`): rows give the crop centre's x and
#: y offset and its side, in reference lengths, from :func:`six_features`; fitted by least
#: squares on the embedded dataset's training people and their mirror images so that its crops
#: match the five-point (MTCNN) crops the shipped model was trained on (benchmarks/framing.py).
SIX_FRAMING = np.array([
    [-0.1786, -0.0174, -0.1786, 0.0174, 1.3455, 0.0, -0.4942, 0.0, 0.2428, 0.079, 0.2428,
     -0.079, 0.0],
    [0.3192, 0.1129, -0.3192, 0.1129, 0.0, -0.0603, 0.0, -0.0828, -0.1713, 0.0013, 0.1713,
     0.0013, -0.0932],
    [0.9597, -0.1791, -0.9597, -0.1791, 0.0, 0.3939, 0.0, -0.0178, -0.5965, 0.2486, 0.5965,
     0.2486, 2.25]])
#: Turning the box of the 68 labelled points into a detector-like box (for faces Haar misses).
POINTS_BOX_SCALE = 1.14
POINTS_BOX_SHIFT_UP = 0.16


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in photo pixels, x0, y0 inclusive edges, x1, y1 exclusive edges."""
    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def center(self) -> tuple[float, float]:
        return (self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2

    def contains(self, x: float, y: float) -> bool:
        return self.x0 <= x < self.x1 and self.y0 <= y < self.y1

    def as_list(self) -> list[float]:
        return [float(self.x0), float(self.y0), float(self.x1), float(self.y1)]


@dataclass(frozen=True)
class Crop:
    """A square region of a photo (integer origin and side) resized to 96x96."""
    x0: int
    y0: int
    side: int

    @property
    def scale(self) -> float:
        """Crop pixels per photo pixel."""
        return IMAGE_SIZE / self.side

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        """(..., 2) photo points -> crop points (pixel centres)."""
        p = np.asarray(points, dtype=np.float64)
        origin = np.array([self.x0, self.y0], dtype=np.float64)
        return (p + 0.5 - origin) * self.scale - 0.5

    def to_photo(self, points: np.ndarray) -> np.ndarray:
        """(..., 2) crop points -> photo points (pixel centres)."""
        p = np.asarray(points, dtype=np.float64)
        origin = np.array([self.x0, self.y0], dtype=np.float64)
        return (p + 0.5) / self.scale + origin - 0.5

    @property
    def box(self) -> Box:
        return Box(self.x0, self.y0, self.x0 + self.side, self.y0 + self.side)


def crop_for_box(box: Box) -> Crop:
    """The model's framing for a detector box: the single rule used everywhere."""
    side = max(box.width, box.height) * CROP_SCALE
    cx, cy = box.center
    cy += CROP_SHIFT_DOWN * max(box.width, box.height)
    s = max(8, int(round(side)))
    return Crop(int(round(cx - s / 2)), int(round(cy - s / 2)), s)


def crop_for_landmarks(points5: np.ndarray) -> Crop:
    """The model's framing from five face points (5 x 2, photo pixels, pixel centres): two eye
    centres, the nose tip, two mouth corners, eyes first and mouth corners last (either
    left/right order). The crop's centre column lies on the points' mean, so a mirrored face
    gets the mirrored crop."""
    p = np.asarray(points5, dtype=np.float64).reshape(5, 2)
    if not np.isfinite(p).all():
        raise ValueError("need five finite face points (eyes, nose tip, mouth corners)")
    eyes, mouth = p[:2].mean(axis=0), p[3:].mean(axis=0)
    ref = (np.linalg.norm(p[0] - p[1]) + np.linalg.norm(eyes - mouth)) / 2
    cx, cy = p.mean(axis=0)
    cy -= LANDMARK_SHIFT_UP * ref
    s = max(8, int(round(LANDMARK_CROP_SCALE * ref)))
    # columns x0 .. x0 + s - 1 have their middle at x0 + (s - 1) / 2 (pixel centres)
    return Crop(int(round(cx - (s - 1) / 2)), int(round(cy - (s - 1) / 2)), s)


def six_features(points6: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """BlazeFace's six points (eye centres, nose tip, mouth centre, ear tragions; image left
    first) -> (13 features: the points relative to their weighted mean (the mouth centre
    counted twice, standing for both corners), in reference lengths, and 1; that mean; the
    reference length: the mean of the eye distance and the eye-to-mouth distance)."""
    p = np.asarray(points6, dtype=np.float64).reshape(6, 2)
    ref = (np.linalg.norm(p[0] - p[1]) + np.linalg.norm(p[:2].mean(axis=0) - p[3])) / 2
    centre = (p[0] + p[1] + p[2] + 2 * p[3]) / 5
    return np.append(((p - centre) / max(ref, 1e-9)).reshape(-1), 1.0), centre, float(ref)


def crop_for_six(points6: np.ndarray) -> Crop:
    """The model's framing from BlazeFace's six points (6 x 2, photo pixels, pixel centres):
    two eye centres, the nose tip, the mouth centre, two ear tragions, image left first. A
    linear rule (:data:`SIX_FRAMING`) fitted so that its crops match the five-point crops the
    shipped model was trained on (README, Data: median differences on unseen people); a
    mirrored face gets the mirrored crop."""
    feats, centre, ref = six_features(points6)
    if not np.isfinite(feats).all() or ref <= 0:
        raise ValueError("need six finite, distinct face points")
    dx, dy, side = SIX_FRAMING @ feats
    cx, cy = centre + np.array([dx, dy]) * ref
    s = max(8, int(round(side * ref)))
    return Crop(int(round(cx - (s - 1) / 2)), int(round(cy - (s - 1) / 2)), s)


#: Indices of the five framing points among the 15 keypoints (eyes, nose tip, mouth corners).
FIVE_OF_15 = [NAMES.index(n) for n in ("left_eye_center", "right_eye_center", "nose_tip",
                                       "mouth_left_corner", "mouth_right_corner")]


def five_from_15(points: np.ndarray) -> np.ndarray:
    """The five framing points (eye centres, nose tip, mouth corners) of 15 keypoints."""
    return np.asarray(points, dtype=np.float64).reshape(-1, 2)[FIVE_OF_15]


def crop_for_points(points: np.ndarray) -> Crop:
    """Re-framing around a face's 15 keypoints (15 x 2, photo pixels) with the landmark rule
    (:func:`crop_for_landmarks`): the second pass of photo prediction, and the framing of
    labelled faces the detector misses. ValueError when a framing point is missing."""
    return crop_for_landmarks(five_from_15(points))


def crop_image(gray: "np.ndarray | GrayOnRead", crop: Crop) -> np.ndarray:
    """Cut ``crop`` out of a 2-D uint8 photo (or a :class:`GrayOnRead`; zero padding outside)
    and resize to 96x96."""
    import cv2

    h, w = gray.shape[:2]
    x0, y0, s = crop.x0, crop.y0, crop.side
    region = np.zeros((s, s), dtype=np.uint8)
    sx0, sy0 = max(0, x0), max(0, y0)
    sx1, sy1 = min(w, x0 + s), min(h, y0 + s)
    if sx1 > sx0 and sy1 > sy0:
        region[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = gray[sy0:sy1, sx0:sx1]
    interp = cv2.INTER_AREA if s >= IMAGE_SIZE else cv2.INTER_LINEAR
    return cv2.resize(region, (IMAGE_SIZE, IMAGE_SIZE), interpolation=interp)


@functools.lru_cache(maxsize=4)
def haar_cascade(filename: str = "haarcascade_frontalface_default.xml"):
    """One of the Haar cascades shipped with opencv-python-headless (< 5), loaded once."""
    import cv2

    path = Path(cv2.data.haarcascades) / filename
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        raise RuntimeError(f"OpenCV could not load its face detector from {path}")
    return cascade


def detect_faces(gray: np.ndarray, params: dict | None = None) -> list[Box]:
    """Frontal faces in a 2-D uint8 image (OpenCV Haar cascade), largest first.
    ``params``: detectMultiScale's settings (default :data:`DETECT_PARAMS`)."""
    found = haar_cascade().detectMultiScale(np.ascontiguousarray(gray),
                                            **(DETECT_PARAMS if params is None else params))
    boxes = [Box(float(x), float(y), float(x + w), float(y + h)) for x, y, w, h in found]
    return sorted(boxes, key=lambda b: -b.width * b.height)


def box_from_points(points: np.ndarray) -> Box:
    """A detector-like box from labelled face points (for faces the detector misses)."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    x0, y0 = np.nanmin(p, axis=0)
    x1, y1 = np.nanmax(p, axis=0)
    side = max(x1 - x0, y1 - y0) * POINTS_BOX_SCALE
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 - POINTS_BOX_SHIFT_UP * side
    return Box(cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)


def to_gray(image) -> np.ndarray:
    """A PIL image or array (H x W, H x W x 3/4) -> 2-D uint8 grayscale array."""
    from PIL import Image

    if isinstance(image, Image.Image):
        return np.array(image.convert("L"))  # np.asarray is several times slower on Pillow
    arr = np.asarray(image)
    if arr.ndim == 2:
        return arr.astype(np.uint8, copy=False)
    return np.asarray(Image.fromarray(arr[..., :3].astype(np.uint8)).convert("L"))


class GrayOnRead:
    """An RGB photo's grayscale, converted where it is read: ``gray[y0:y1, x0:x1]`` converts
    that region (OpenCV's conversion, which reads the photo where it lies). The crops of a
    group photo's faces read a share of it: bald_guys.jpg's 24 crops took 6.4 ms with each
    region converted by Pillow (a copy of the region first), 2.8 ms so, and all 3 megapixels
    through Pillow 4.5-5.7 ms. OpenCV weighs R, G and B as Pillow does (ITU-R 601-2) in its
    own fixed point: the same value as :func:`to_gray`'s, or one level off (28 of the 4.3
    million pixels of the three photos in shared/data/photos; one pixel of bald_guys.jpg's 24
    crops). :func:`crop_image` takes it where it takes a 2-D array."""
    ndim = 2

    def __init__(self, rgb: np.ndarray):
        self._rgb = rgb
        self.shape = tuple(rgb.shape[:2])

    def __getitem__(self, index) -> np.ndarray:
        import cv2

        region = self._rgb[index]
        code = cv2.COLOR_RGB2GRAY if region.shape[2] == 3 else cv2.COLOR_RGBA2GRAY
        return cv2.cvtColor(region, code)


#: The EXIF tag that says how a photo is turned (1: upright).
EXIF_ORIENTATION = 0x0112


#: Photos larger than this many megapixels are refused (decoding one takes memory and time);
#: the environment variable of that name raises (or lowers) the limit.
MAX_PHOTO_MEGAPIXELS = 150
MAX_PHOTO_ENV = "FACEKP_MAX_PHOTO_MEGAPIXELS"


def max_photo_pixels() -> int:
    """The photo size limit in pixels: $FACEKP_MAX_PHOTO_MEGAPIXELS, else the default. A value
    that is not a positive number is a FacekpError naming the variable (never ignored)."""
    import math
    import os

    from facekp.core.errors import FacekpError

    text = os.environ.get(MAX_PHOTO_ENV)
    if text is None:
        return MAX_PHOTO_MEGAPIXELS * 1_000_000
    try:
        megapixels = float(text)
    except ValueError:
        megapixels = math.nan
    if not (math.isfinite(megapixels) and megapixels > 0):
        raise FacekpError(f"{MAX_PHOTO_ENV}={text}: expected a positive number of megapixels "
                          f"(the largest photo to open, e.g. {MAX_PHOTO_MEGAPIXELS}), or leave it "
                          f"unset for {MAX_PHOTO_MEGAPIXELS}")
    return max(1, int(megapixels * 1_000_000))


def load_photo(path: str | Path):
    """Open a photo with its EXIF orientation applied -> PIL image (RGB). DataError if unreadable
    or larger than :func:`max_photo_pixels`. 16-bit and float photos are scaled to 8 bits."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    from facekp.core.errors import DataError
    from facekp.core.fileio import check_input_file

    path = check_input_file(path, "image file")
    Image.MAX_IMAGE_PIXELS = None  # the limit below replaces Pillow's (and says how to raise it)
    try:
        with Image.open(path) as im:
            _check_photo_size(path, im.size)
            im.load()
            # exif_transpose and convert copy the image even when there is nothing to do (7-8
            # ms each for a megapixel): only turn a photo that says it is turned, only convert
            # one that is not RGB already.
            if im.getexif().get(EXIF_ORIENTATION, 1) != 1:
                im = ImageOps.exif_transpose(im)
            if im.mode in ("I", "F") or im.mode.startswith("I;16"):
                im = _to_8_bits(im)
            return im if im.mode == "RGB" else im.convert("RGB")
    except UnidentifiedImageError:
        raise DataError(path, "not an image file Pillow can read (expected JPEG, PNG, ...)") from None
    except OSError as exc:
        raise DataError(path, f"image could not be read: {exc}") from None


def _check_photo_size(path: Path, size: tuple[int, int]) -> None:
    import math

    from facekp.core.errors import DataError

    width, height = size
    limit = max_photo_pixels()
    if width * height > limit:
        needed = math.ceil(width * height / 1e5) / 10  # megapixels, rounded up: enough
        raise DataError(path, f"photo is {width} x {height} = {width * height / 1e6:.1f} "
                              f"megapixels, above the limit of {limit / 1e6:g} megapixels; "
                              f"set {MAX_PHOTO_ENV}={needed:g} (or more) to open it")


def _to_8_bits(im):
    """A 16-bit, 32-bit integer or float grayscale image -> 8-bit ('L'), scaled, not clipped:
    16-bit range for integers up to 65535, 0-1 or 0-255 for floats, else its own maximum."""
    from PIL import Image

    arr = np.asarray(im, dtype=np.float64)
    finite = arr[np.isfinite(arr)]
    top = float(finite.max()) if finite.size else 0.0
    if im.mode == "F":
        full = 1.0 if top <= 1.0 else 255.0 if top <= 255.0 else top
    else:
        full = 255.0 if top <= 255 and im.mode == "I" else 65535.0 if top <= 65535 else top
    # the scale comes from the finite pixels; NaN is black, infinities the ends of the range
    arr = np.nan_to_num(arr, nan=0.0, posinf=full, neginf=0.0)
    scaled = np.clip(arr * (255.0 / full), 0, 255)
    return Image.fromarray(np.round(scaled).astype(np.uint8), mode="L")


# --- faces in photos (the photo path) ----------------------------------------------------

#: Longer side of the image the face detector scans (see :func:`find_faces`).
DETECT_SIDE = 512
#: Haar's scan: pyramid steps of 1.2, and 2 neighbours (the confirming cascade behind it
#: removes what that lets through).
DETECT_PARAMS = dict(scaleFactor=1.2, minNeighbors=2, minSize=(30, 30))
#: Region around a candidate box given to the confirming cascade: box side x (1 + 2 x margin).
CONFIRM_MARGIN = 0.25
#: ... resized to this many pixels a side (the face then spans about 80 px).
CONFIRM_SIZE = 120


def find_faces(gray: np.ndarray, detect_side: int = DETECT_SIDE, confirm: bool = True
               ) -> list[Box]:
    """Frontal faces in a 2-D uint8 photo, largest first, in photo pixels.

    OpenCV's Haar cascade (:func:`detect_faces` with :data:`DETECT_PARAMS`) scans a copy of the
    photo whose longer side is at most
    ``detect_side`` pixels (its smallest face is 30 px there, so faces smaller than about
    30/``detect_side`` of the photo's longer side are not looked for; this bounds the time on
    large photos); each candidate must then be confirmed by a second, differently trained
    cascade (OpenCV's ``frontalface_alt2``) on the region around it, which removes most false
    detections on textures and animals; a box lying mostly inside a larger one is dropped.
    """
    import cv2

    h, w = gray.shape[:2]
    scale = min(1.0, detect_side / max(h, w))
    small = gray if scale >= 1.0 else cv2.resize(
        gray, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    sx, sy = w / small.shape[1], h / small.shape[0]
    boxes = [Box(b.x0 * sx, b.y0 * sy, b.x1 * sx, b.y1 * sy)
             for b in detect_faces(small, DETECT_PARAMS)]
    if confirm:
        boxes = [b for b in boxes if _confirmed(gray, b)]
    kept: list[Box] = []
    for b in boxes:  # largest first
        if all(_overlap(b, k) <= 0.5 for k in kept):
            kept.append(b)
    return kept


def _overlap(small: Box, big: Box) -> float:
    """Share of ``small``'s area inside ``big``."""
    ix = max(0.0, min(small.x1, big.x1) - max(small.x0, big.x0))
    iy = max(0.0, min(small.y1, big.y1) - max(small.y0, big.y0))
    return ix * iy / max(small.width * small.height, 1e-9)


def _confirmed(gray: np.ndarray, box: Box) -> bool:
    """Does the second cascade also see a face in the region around ``box``?"""
    import cv2

    side = max(box.width, box.height)
    m = CONFIRM_MARGIN * side
    s = max(8, int(round(side + 2 * m)))
    x0, y0 = int(round(box.x0 - m)), int(round(box.y0 - m))
    h, w = gray.shape[:2]
    region = np.zeros((s, s), np.uint8)  # zero padding where the region leaves the photo
    sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(w, x0 + s), min(h, y0 + s)
    if sx1 > sx0 and sy1 > sy0:
        region[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = gray[sy0:sy1, sx0:sx1]
    size = CONFIRM_SIZE
    region = cv2.resize(region, (size, size),
                        interpolation=cv2.INTER_AREA if s >= size else cv2.INTER_LINEAR)
    face = size / (1 + 2 * CONFIRM_MARGIN)
    confirm = haar_cascade("haarcascade_frontalface_alt2.xml")
    # Look only for faces of about the candidate's size (0.75 to 1.4 x): as selective as an
    # open search on the real photos and faces tried, at half the time.
    found = confirm.detectMultiScale(region, scaleFactor=1.1, minNeighbors=3,
                                     minSize=(int(0.75 * face),) * 2,
                                     maxSize=(int(1.4 * face),) * 2)
    return len(found) > 0
