"""Augmentation geometry: a dot painted at a keypoint lands where the transformed keypoint says."""
from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from facekp.core.model import augment
from facekp.core.model.augment import AugmentConfig, augment_batch
from facekp.core.data.keypoints import FLIP_KEYPOINT_ORDER, FLIP_PERMUTATION, NAMES, NUM_KEYPOINTS

GEOMETRY_ONLY = dict(brightness=0.0, contrast=0.0)


def dot_images(points: np.ndarray, sigma: float = 1.2) -> np.ndarray:
    """One image per point (K, 2): a Gaussian dot of peak 255 centred on the point
    (pixel-centre coordinates), on black."""
    yy, xx = np.mgrid[0:96, 0:96].astype(np.float64)
    imgs = np.exp(-((xx[None] - points[:, 0, None, None]) ** 2
                    + (yy[None] - points[:, 1, None, None]) ** 2) / (2 * sigma ** 2))
    return (255.0 * imgs)[..., None].astype(np.float32)


def centroids(images: np.ndarray) -> np.ndarray:
    """Intensity-weighted centre (x, y) of each image (B, 96, 96, 1)."""
    w = images[..., 0].astype(np.float64)
    yy, xx = np.mgrid[0:96, 0:96]
    total = w.sum(axis=(1, 2))
    return np.stack([(w * xx).sum(axis=(1, 2)) / total, (w * yy).sum(axis=(1, 2)) / total], 1)


def one_dot_per_keypoint(face_keypoints: np.ndarray):
    """15 images, image k showing keypoint k of the face; every image carries all 30 values."""
    pts = face_keypoints.reshape(NUM_KEYPOINTS, 2)
    return dot_images(pts), np.repeat(face_keypoints[None], NUM_KEYPOINTS, axis=0)


@pytest.fixture(scope="module")
def complete_faces(faces):
    return faces.split("train").complete().subset(slice(0, 6))


@pytest.mark.parametrize("flip", [0.0, 1.0])
def test_dots_land_on_transformed_keypoints(complete_faces, flip):
    cfg = AugmentConfig(flip=flip, rotate_deg=15.0, scale=0.15, shift_px=5.0, **GEOMETRY_ONLY)
    checked = 0
    for i, kp in enumerate(complete_faces.keypoints):
        images, keypoints = one_dot_per_keypoint(kp)
        out_img, out_kp = augment_batch(tf.constant(images), tf.constant(keypoints), seed=i,
                                        config=cfg)
        out_img, out_kp = out_img.numpy(), out_kp.numpy().reshape(-1, NUM_KEYPOINTS, 2)
        found = centroids(out_img)
        for k in range(NUM_KEYPOINTS):
            # the dot painted for keypoint k now carries the name it has after the flip
            name_index = FLIP_KEYPOINT_ORDER[k] if flip else k
            expected = out_kp[k, name_index]
            source = kp.reshape(NUM_KEYPOINTS, 2)[k]
            if np.isnan(expected).any() or (expected < 4).any() or (expected > 91).any() or \
                    (source < 4).any() or (source > 91).any():
                continue  # gone from the crop, or too close to an edge for a whole dot
            assert np.abs(found[k] - expected).max() < 0.5, (NAMES[name_index], found[k], expected)
            checked += 1
    assert checked > 80


def test_transform_really_moves_points(complete_faces):
    """The random transform is not the identity: points move by more than a pixel on average."""
    kp = complete_faces.keypoints
    images = np.zeros((len(kp), 96, 96, 1), np.float32)
    cfg = AugmentConfig(flip=0.0, **GEOMETRY_ONLY)
    _, out = augment_batch(images, kp, seed=3, config=cfg)
    moved = np.nanmean(np.abs(out.numpy() - kp))
    assert moved > 1.0


def test_flip_swaps_left_and_right_names_and_masks(complete_faces):
    kp = complete_faces.keypoints[:2].copy()
    left_eye = NAMES.index("left_eye_center")
    kp[0, 2 * left_eye: 2 * left_eye + 2] = np.nan  # the subject's left eye is missing
    images = dot_images(kp[:, 2 * NAMES.index("nose_tip"):][:, :2])
    cfg = AugmentConfig(flip=1.0, rotate_deg=0.0, scale=0.0, shift_px=0.0, **GEOMETRY_ONLY)
    out_img, out_kp = augment_batch(images, kp, config=cfg)
    out_kp = out_kp.numpy()
    expected = kp[:, FLIP_PERMUTATION].copy()
    expected[:, 0::2] = 95.0 - expected[:, 0::2]
    np.testing.assert_allclose(out_kp, expected, atol=1e-4)
    right_eye = NAMES.index("right_eye_center")
    # after the flip, the missing eye is the subject's right one
    assert np.isnan(out_kp[0, 2 * right_eye: 2 * right_eye + 2]).all()
    assert not np.isnan(out_kp[0, 2 * left_eye: 2 * left_eye + 2]).any()
    # the left eye is on the image's right side (larger x) before and after
    assert out_kp[1, 2 * left_eye] > out_kp[1, 2 * right_eye]
    np.testing.assert_allclose(out_img.numpy(), images[:, :, ::-1], atol=1e-3)


def test_missing_stays_missing(faces):
    incomplete = faces.subset(np.flatnonzero(~faces.present.all(axis=1))[:16])
    assert len(incomplete) > 0
    images = incomplete.images[..., None].astype(np.float32)
    cfg = AugmentConfig(flip=0.0)
    _, out = augment_batch(images, incomplete.keypoints, seed=1, config=cfg)
    out = out.numpy()
    assert np.isnan(out[np.isnan(incomplete.keypoints)]).all()


def test_points_leaving_the_crop_become_missing():
    pts = np.array([[10.0, 50.0], [90.0, 50.0], [50.0, 2.0], [50.0, 93.0]] * 4)[:NUM_KEYPOINTS]
    kp = pts.reshape(1, -1).astype(np.float32)
    images = np.zeros((1, 96, 96, 1), np.float32)
    # shift 20 px right and 5 px up: x=90 points leave, y=2 points leave, the rest stay
    forward = augment.similarity_matrices(tf.constant([0.0]), tf.constant([1.0]),
                                          tf.constant([[20.0, -5.0]]))
    _, out = augment.warp_batch(tf.constant(images), tf.constant(kp), forward)
    out = out.numpy().reshape(NUM_KEYPOINTS, 2)
    for p, q in zip(pts, out):
        target = p + [20.0, -5.0]
        if (target < -0.5).any() or (target > 95.5).any():
            assert np.isnan(q).all()
        else:
            np.testing.assert_allclose(q, target, atol=1e-4)


def test_known_rotation_about_the_centre():
    """A 90 degree turn about (47.5, 47.5) maps (x, y) to (95 - y, x), image and point alike."""
    pt = np.array([[30.0, 20.0]])
    images = dot_images(pt)
    kp = np.full((1, 30), np.nan, np.float32)
    kp[0, :2] = pt[0]
    forward = augment.similarity_matrices(tf.constant([math.pi / 2]), tf.constant([1.0]),
                                          tf.constant([[0.0, 0.0]]))
    out_img, out_kp = augment.warp_batch(tf.constant(images), tf.constant(kp), forward)
    np.testing.assert_allclose(out_kp.numpy()[0, :2], [95.0 - 20.0, 30.0], atol=1e-3)
    np.testing.assert_allclose(centroids(out_img.numpy())[0], [75.0, 30.0], atol=0.05)


def test_photometric_jitter_stays_in_range_and_changes_pixels(faces):
    sub = faces.split("val").subset(slice(0, 8))
    images = sub.images[..., None].astype(np.float32)
    cfg = AugmentConfig(flip=0.0, rotate_deg=0.0, scale=0.0, shift_px=0.0,
                        brightness=0.2, contrast=0.3)
    out_img, out_kp = augment_batch(images, sub.keypoints, seed=5, config=cfg)
    out_img = out_img.numpy()
    assert out_img.min() >= 0.0 and out_img.max() <= 255.0
    assert np.abs(out_img - images).mean() > 2.0
    np.testing.assert_allclose(out_kp.numpy(), sub.keypoints, atol=1e-5)


def test_seed_reproducible_and_usable_in_tf_data(faces):
    sub = faces.split("val").subset(slice(0, 8))
    images = sub.images[..., None].astype(np.float32)
    a = augment_batch(images, sub.keypoints, seed=7)
    b = augment_batch(images, sub.keypoints, seed=7)
    np.testing.assert_array_equal(a[0].numpy(), b[0].numpy())
    ds = tf.data.Dataset.from_tensor_slices((images, sub.keypoints)).batch(4).map(augment_batch)
    shapes = [(x.shape, y.shape, x.dtype, y.dtype) for x, y in ds]
    assert shapes == [((4, 96, 96, 1), (4, 30), tf.float32, tf.float32)] * 2


NO_GEOMETRY = dict(flip=0.0, rotate_deg=0.0, scale=0.0, shift_px=0.0, brightness=0.0,
                   contrast=0.0)


def sharpness(images: np.ndarray) -> float:
    """Mean absolute difference between horizontally neighbouring pixels."""
    return float(np.abs(np.diff(images.astype(np.float64), axis=2)).mean())


@pytest.mark.parametrize("kind", ["low_res", "blur", "jpeg", "occlude", "noise", "gamma"])
def test_photo_degradations_change_pixels_and_keep_keypoints(faces, kind):
    cfg = AugmentConfig(**NO_GEOMETRY, **{kind: 6.0 if kind == "noise" else
                                          0.4 if kind == "gamma" else 1.0})
    x = faces.images[:16, :, :, None].astype(np.float32)
    out, kp = augment_batch(x, faces.keypoints[:16], seed=2, config=cfg)
    out, kp = out.numpy(), kp.numpy()
    np.testing.assert_array_equal(kp, faces.keypoints[:16])  # pixels only, NaN stays NaN
    assert out.min() >= 0 and out.max() <= 255
    changed = np.abs(out - x)[..., 0]
    assert changed.mean() > 0.5
    if kind in ("low_res", "blur"):
        assert sharpness(out) < 0.92 * sharpness(x)  # detail really lost (sigma >= 0.5 px)
    if kind == "noise":
        assert sharpness(out) > sharpness(x)
    if kind == "occlude":  # one flat grey rectangle of 12-36 px a side per face
        for img, diff in zip(out[..., 0], changed):
            rows, cols = np.nonzero(np.abs(diff) > 0)
            if len(rows):
                assert 8 <= np.ptp(rows) + 1 <= 37 and 8 <= np.ptp(cols) + 1 <= 37
                box = img[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
                assert box.max() - box.min() < 1e-3


def test_wild_preset_is_reproducible_and_trains_through_tf_data(faces):
    from facekp.core.model.augment import WILD

    x = faces.images[:8, :, :, None].astype(np.float32)
    a = augment_batch(x, faces.keypoints[:8], seed=5, config=WILD)[0].numpy()
    b = augment_batch(x, faces.keypoints[:8], seed=5, config=WILD)[0].numpy()
    np.testing.assert_array_equal(a, b)
    ds = tf.data.Dataset.from_tensor_slices((x, faces.keypoints[:8])).batch(4).map(
        lambda i, k: augment_batch(i, k, config=WILD))
    shapes = [(i.shape, k.shape) for i, k in ds]
    assert shapes == [((4, 96, 96, 1), (4, 30))] * 2


def test_rotation_power_keeps_most_faces_near_upright():
    cfg = AugmentConfig(flip=0.0, rotate_deg=30.0, rotate_power=3.0, scale=0.0, shift_px=0.0,
                        brightness=0.0, contrast=0.0)
    # one keypoint 30 px right of the centre: its angle about the centre is the rotation
    kp = np.full((2000, 30), np.nan, np.float32)
    kp[:, 0], kp[:, 1] = 47.5 + 30, 47.5
    _, out = augment_batch(np.zeros((2000, 96, 96, 1), np.float32), kp, seed=0, config=cfg)
    angle = np.degrees(np.arctan2(out.numpy()[:, 1] - 47.5, out.numpy()[:, 0] - 47.5))
    assert np.abs(angle).max() <= 30.01 and np.abs(angle).max() > 20
    assert np.median(np.abs(angle)) == pytest.approx(30 * 0.5 ** 3, abs=1.0)
