"""Training-time augmentation of batches of 96x96 faces and their keypoints (TensorFlow ops).

:func:`augment_batch` works on batched tensors inside a ``tf.data`` pipeline (``.map`` after
``.batch``): images float32 (B, 96, 96, 1) with raw 0-255 pixels, keypoints float32 (B, 30) in
pixels of the crop with NaN for missing values. It returns the same shapes and dtypes.

Per image, in this order:
1. horizontal flip with probability ``flip``: columns reversed, x -> 95 - x (pixel centres,
   ``core.keypoints.FLIP_X_OFFSET``), and the subject's left/right keypoints trade places
   together with their missing-value masks (``core.keypoints.FLIP_PERMUTATION``);
2. one similarity transform about the crop centre (rotation, scale, shift) applied to the
   image and to the keypoints alike; a keypoint that leaves the crop becomes missing (NaN);
3. brightness and contrast jitter (pixels clipped to 0-255).

Geometry uses the pixel-centre convention of ``core.keypoints``: the pixel in column j, row i
has centre (j, i). ``tf.raw_ops.ImageProjectiveTransformV3`` samples the input at index
coordinates, which is exactly that convention, so no half-pixel corrections are needed.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np
import tensorflow as tf

from .keypoints import FLIP_PERMUTATION, FLIP_X_OFFSET, IMAGE_SIZE, NUM_KEYPOINTS

#: Rotation/scaling centre: the middle of the crop in pixel-centre coordinates.
CENTRE = (IMAGE_SIZE - 1) / 2.0
#: A keypoint whose transformed position lies outside the crop's pixel area
#: ([-0.5, 95.5] in pixel-centre coordinates) becomes missing.
LOW, HIGH = -0.5, IMAGE_SIZE - 0.5


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation strength. Every range is symmetric: a value is drawn uniformly from
    [-r, r] (or [1 - r, 1 + r] for scale and contrast) independently per image."""
    flip: float = 0.5            # probability of a horizontal flip
    rotate_deg: float = 10.0     # rotation range in degrees
    scale: float = 0.1           # scale range: 1 +- scale
    shift_px: float = 4.0        # shift range in crop pixels, x and y independently
    brightness: float = 0.1      # brightness shift range, as a fraction of 255
    contrast: float = 0.2        # contrast factor range: 1 +- contrast (about the image mean)

    def scaled(self, strength: float) -> "AugmentConfig":
        """The same kinds of change, ``strength`` times as strong (the flip stays as is)."""
        return replace(self, rotate_deg=self.rotate_deg * strength, scale=self.scale * strength,
                       shift_px=self.shift_px * strength,
                       brightness=self.brightness * strength,
                       contrast=self.contrast * strength)

    def as_dict(self) -> dict:
        return asdict(self)


DEFAULT = AugmentConfig()


class _Draws:
    """Uniform random draws: stateful when no seed is given, stateless (reproducible) otherwise.

    ``seed`` may be an int or an int tensor of shape (2,) (e.g. a per-batch seed in tf.data).
    """

    def __init__(self, seed):
        if seed is None:
            self.base = None
        else:
            s = tf.cast(tf.convert_to_tensor(seed), tf.int64)
            self.base = tf.reshape(s, [-1])
            if self.base.shape[0] == 1:
                self.base = tf.concat([self.base, tf.zeros([1], tf.int64)], 0)
        self.count = 0

    def uniform(self, shape, low, high):
        self.count += 1
        if self.base is None:
            return tf.random.uniform(shape, low, high, dtype=tf.float32)
        seed = self.base + tf.constant([0, 1], tf.int64) * self.count * 7919
        return tf.random.stateless_uniform(shape, seed=seed, minval=low, maxval=high,
                                           dtype=tf.float32)


def flip_batch(images: tf.Tensor, keypoints: tf.Tensor, which: tf.Tensor):
    """Flip the images (B, H, W, C) and keypoints (B, 30) where ``which`` (B,) bool is true."""
    flipped_images = tf.reverse(images, axis=[2])
    kp = tf.gather(keypoints, np.asarray(FLIP_PERMUTATION), axis=1)
    is_x = tf.constant(np.arange(2 * NUM_KEYPOINTS) % 2 == 0)
    flipped_kp = tf.where(is_x[None, :], FLIP_X_OFFSET - kp, kp)
    images = tf.where(which[:, None, None, None], flipped_images, images)
    keypoints = tf.where(which[:, None], flipped_kp, keypoints)
    return images, keypoints


def similarity_matrices(angle_rad: tf.Tensor, scale: tf.Tensor, shift: tf.Tensor) -> tf.Tensor:
    """Forward transforms (B, 2, 3) taking an input point p to ``s R (p - c) + c + t``."""
    cos, sin = tf.cos(angle_rad) * scale, tf.sin(angle_rad) * scale
    c = CENTRE
    tx = c + shift[:, 0] - (cos * c - sin * c)
    ty = c + shift[:, 1] - (sin * c + cos * c)
    row0 = tf.stack([cos, -sin, tx], axis=1)
    row1 = tf.stack([sin, cos, ty], axis=1)
    return tf.stack([row0, row1], axis=1)


def _inverse_as_projective(forward: tf.Tensor) -> tf.Tensor:
    """(B, 2, 3) forward affine -> (B, 8) output->input transform for ImageProjectiveTransform."""
    a, b, tx = forward[:, 0, 0], forward[:, 0, 1], forward[:, 0, 2]
    c, d, ty = forward[:, 1, 0], forward[:, 1, 1], forward[:, 1, 2]
    det = a * d - b * c
    ia, ib, ic, id_ = d / det, -b / det, -c / det, a / det
    itx = -(ia * tx + ib * ty)
    ity = -(ic * tx + id_ * ty)
    zeros = tf.zeros_like(a)
    return tf.stack([ia, ib, itx, ic, id_, ity, zeros, zeros], axis=1)


def warp_batch(images: tf.Tensor, keypoints: tf.Tensor, forward: tf.Tensor):
    """Apply forward affines (B, 2, 3) to images (bilinear, edges extended) and keypoints;
    keypoints that land outside the crop become NaN."""
    transforms = _inverse_as_projective(forward)
    warped = tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms,
        output_shape=tf.constant([IMAGE_SIZE, IMAGE_SIZE], tf.int32),
        fill_value=tf.constant(0.0, images.dtype), interpolation="BILINEAR",
        fill_mode="NEAREST")
    pts = tf.reshape(keypoints, [-1, NUM_KEYPOINTS, 2])
    moved = tf.einsum("bij,bkj->bki", forward[:, :, :2], pts) + forward[:, None, :, 2]
    inside = tf.reduce_all((moved >= LOW) & (moved <= HIGH), axis=2, keepdims=True)
    moved = tf.where(inside, moved, tf.constant(np.nan, moved.dtype))
    return warped, tf.reshape(moved, [-1, 2 * NUM_KEYPOINTS])


def augment_batch(images, keypoints, seed=None, config: AugmentConfig | None = None):
    """Randomly flip, rotate, scale, shift and re-light a batch (see the module docstring).

    ``seed=None`` draws fresh random values on every call (what a training pipeline wants);
    an int or a (2,) int tensor makes the draws reproducible for that seed.
    """
    cfg = DEFAULT if config is None else config
    images = tf.convert_to_tensor(images, tf.float32)
    keypoints = tf.convert_to_tensor(keypoints, tf.float32)
    batch = tf.shape(images)[0]
    draw = _Draws(seed)

    if cfg.flip > 0:
        images, keypoints = flip_batch(images, keypoints, draw.uniform([batch], 0.0, 1.0) < cfg.flip)

    if cfg.rotate_deg > 0 or cfg.scale > 0 or cfg.shift_px > 0:
        r = math.radians(cfg.rotate_deg)
        angle = draw.uniform([batch], -r, r)
        scale = draw.uniform([batch], 1.0 - cfg.scale, 1.0 + cfg.scale)
        shift = draw.uniform([batch, 2], -cfg.shift_px, cfg.shift_px)
        images, keypoints = warp_batch(images, keypoints, similarity_matrices(angle, scale, shift))

    if cfg.brightness > 0 or cfg.contrast > 0:
        contrast = draw.uniform([batch, 1, 1, 1], 1.0 - cfg.contrast, 1.0 + cfg.contrast)
        bright = draw.uniform([batch, 1, 1, 1], -cfg.brightness, cfg.brightness) * 255.0
        mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
        images = tf.clip_by_value((images - mean) * contrast + mean + bright, 0.0, 255.0)

    return images, keypoints
