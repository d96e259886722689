"""The 15 Kaggle facial keypoints: names, column order, left/right flips, 68 -> 15 mapping.

Conventions (used everywhere in core):
- Coordinates are pixels of the 96x96 crop, x then y, in Kaggle column order.
- A coordinate is the position of a pixel *centre*: pixel column j spans [j - 0.5, j + 0.5].
  A horizontal flip (reverse the columns of the image) therefore maps x -> 95 - x
  (``FLIP_X_OFFSET``), and the left/right keypoints swap places together with their
  missing-value masks (``FLIP_PERMUTATION``).
- Left and right are the subject's, as in Kaggle's data.
- Missing keypoints are NaN.
"""
from __future__ import annotations

import numpy as np

IMAGE_SIZE = 96

NAMES: tuple[str, ...] = (
    "left_eye_center",
    "right_eye_center",
    "left_eye_inner_corner",
    "left_eye_outer_corner",
    "right_eye_inner_corner",
    "right_eye_outer_corner",
    "left_eyebrow_inner_end",
    "left_eyebrow_outer_end",
    "right_eyebrow_inner_end",
    "right_eyebrow_outer_end",
    "nose_tip",
    "mouth_left_corner",
    "mouth_right_corner",
    "mouth_center_top_lip",
    "mouth_center_bottom_lip",
)
NUM_KEYPOINTS = len(NAMES)

#: The 30 Kaggle columns: ``<name>_x, <name>_y`` for each keypoint, in this order.
COLUMNS: tuple[str, ...] = tuple(f"{n}_{a}" for n in NAMES for a in ("x", "y"))

#: Horizontal flip of a 96-px crop in pixel-centre coordinates: x -> FLIP_X_OFFSET - x.
FLIP_X_OFFSET = IMAGE_SIZE - 1


def outside_crop(points: np.ndarray) -> np.ndarray:
    """(..., 2) crop points -> (...) True where a point is not in the 96x96 crop (x or y below
    0 or above 96, infinite or NaN). Importers make such points missing, never clip them."""
    p = np.asarray(points, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return ~((p >= 0) & (p <= IMAGE_SIZE)).all(axis=-1)


#: Keypoints that trade places under a horizontal flip (subject's left <-> right).
FLIP_PAIRS: tuple[tuple[str, str], ...] = (
    ("left_eye_center", "right_eye_center"),
    ("left_eye_inner_corner", "right_eye_inner_corner"),
    ("left_eye_outer_corner", "right_eye_outer_corner"),
    ("left_eyebrow_inner_end", "right_eyebrow_inner_end"),
    ("left_eyebrow_outer_end", "right_eyebrow_outer_end"),
    ("mouth_left_corner", "mouth_right_corner"),
)


def flip_order(names, pairs) -> np.ndarray:
    """(K,) index into keypoints ``names`` giving their order on the mirrored face: each of
    ``pairs`` (left, right) trades places."""
    order = list(range(len(names)))
    for a, b in pairs:
        ia, ib = names.index(a), names.index(b)
        order[ia], order[ib] = ib, ia
    return np.asarray(order)


def column_permutation(order: np.ndarray) -> np.ndarray:
    """(2K,) index into x, y columns from a (K,) keypoint order (x and y move together)."""
    return np.stack([2 * order, 2 * order + 1], axis=1).ravel()


def flip_columns(keypoints: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Keypoints (..., 2K) of an image whose columns were reversed: x -> 95 - x and the
    keypoints put in the mirrored ``order`` (NaN stays NaN)."""
    kp = np.asarray(keypoints, dtype=np.float32)[..., column_permutation(order)].copy()
    kp[..., 0::2] = FLIP_X_OFFSET - kp[..., 0::2]
    return kp


#: Index into the 15 keypoints giving the flipped order.
FLIP_KEYPOINT_ORDER = flip_order(NAMES, FLIP_PAIRS)
#: Index into the 30 columns giving the flipped order (x and y of each swapped pair).
FLIP_PERMUTATION = column_permutation(FLIP_KEYPOINT_ORDER)


def flip_keypoints(keypoints: np.ndarray) -> np.ndarray:
    """Keypoints (..., 30) of an image whose columns were reversed (NaN stays NaN)."""
    return flip_columns(keypoints, FLIP_KEYPOINT_ORDER)


def flip_images(images: np.ndarray) -> np.ndarray:
    """Reverse the columns of images (..., H, W)."""
    return np.ascontiguousarray(np.asarray(images)[..., ::-1])


# --- iBUG 68-point layout -> Kaggle 15 ---------------------------------------------------
#: For each of the 15 keypoints, the iBUG 68 indices whose mean gives it (0-based).
FROM_68: dict[str, tuple[int, ...]] = {
    "left_eye_center": (42, 43, 44, 45, 46, 47),
    "right_eye_center": (36, 37, 38, 39, 40, 41),
    "left_eye_inner_corner": (42,),
    "left_eye_outer_corner": (45,),
    "right_eye_inner_corner": (39,),
    "right_eye_outer_corner": (36,),
    "left_eyebrow_inner_end": (22,),
    "left_eyebrow_outer_end": (26,),
    "right_eyebrow_inner_end": (21,),
    "right_eyebrow_outer_end": (17,),
    "nose_tip": (30,),
    "mouth_left_corner": (54,),
    "mouth_right_corner": (48,),
    "mouth_center_top_lip": (51,),
    "mouth_center_bottom_lip": (57,),
}
NOSE_TIP_68 = 30


def mapping_from_68(sources) -> np.ndarray:
    """(K, 68) weights from, for each of K points, the 68-point indices whose mean gives it."""
    m = np.zeros((len(sources), 68), dtype=np.float64)
    for i, idx in enumerate(sources):
        m[i, list(idx)] = 1.0 / len(idx)
    return m


_MAP_68 = mapping_from_68([FROM_68[name] for name in NAMES])


def from_68(points68: np.ndarray) -> np.ndarray:
    """(..., 68, 2) iBUG points -> (..., 15, 2) Kaggle keypoints in the same frame."""
    p = np.asarray(points68, dtype=np.float64)
    if p.shape[-2:] != (68, 2):
        raise ValueError(f"expected 68 (x, y) points, got shape {p.shape}")
    return np.einsum("kj,...jc->...kc", _MAP_68, p)


def as_points(keypoints: np.ndarray) -> np.ndarray:
    """(..., 30) Kaggle columns -> (..., 15, 2) points."""
    kp = np.asarray(keypoints)
    return kp.reshape(kp.shape[:-1] + (NUM_KEYPOINTS, 2))


def as_columns(points: np.ndarray) -> np.ndarray:
    """(..., 15, 2) points -> (..., 30) Kaggle columns."""
    p = np.asarray(points)
    return p.reshape(p.shape[:-2] + (2 * NUM_KEYPOINTS,))
