"""Training-time augmentation of batches of 96x96 faces and their keypoints (TensorFlow ops).

:func:`augment_batch` works on batched tensors inside a ``tf.data`` pipeline (``.map`` after
``.batch``): images float32 (B, 96, 96, 1) with raw 0-255 pixels, keypoints float32 (B, 2K) in
pixels of the crop with NaN for missing values (K points of a keypoint set, Kaggle's 15 by
default). It returns the same shapes and dtypes.

Per image, in this order:
1. horizontal flip with probability ``flip``: columns reversed, x -> 95 - x (pixel centres,
   ``facekp.core.data.keypoints.FLIP_X_OFFSET``), and the subject's left/right keypoints trade
   places together with their missing-value masks (the set's flip pairs,
   :meth:`facekp.core.data.keypoint_sets.KeypointSet.flip_order`);
2. one similarity transform about the crop centre (rotation, scale, shift) applied to the
   image and to the keypoints alike; a keypoint that leaves the crop becomes missing (NaN);
3. what photos bring and crops of a curated dataset lack, each with its own probability or
   range (all off in :data:`DEFAULT`, on in :data:`WILD`): a low-resolution copy (the face
   scaled down to an eye distance of about 8-20 px and back up), Gaussian blur, JPEG
   artefacts, gamma, then brightness and contrast jitter, Gaussian noise, and a grey
   rectangle over part of the face (occlusion); pixels clipped to 0-255.

Geometry uses the pixel-centre convention of ``facekp.core.data.keypoints``: the pixel in column j,
row i has centre (j, i). ``tf.raw_ops.ImageProjectiveTransformV3`` samples the input at index
coordinates, which is exactly that convention, so no half-pixel corrections are needed.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np
import tensorflow as tf

from facekp.core.data.keypoint_sets import DEFAULT as DEFAULT_SET, KeypointSet
from facekp.core.data.keypoints import FLIP_X_OFFSET, IMAGE_SIZE, column_permutation

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
    #: rotation angle = rotate_deg x u ** rotate_power x sign, u uniform in [0, 1]: 1 is
    #: uniform; 2 keeps most faces near upright while a few turn up to rotate_deg.
    rotate_power: float = 1.0
    low_res: float = 0.0         # probability of a low-resolution copy (eye distance 8-20 px)
    blur: float = 0.0            # probability of a Gaussian blur (sigma 0.5-1.8 px)
    jpeg: float = 0.0            # probability of JPEG artefacts (quality 10-50)
    gamma: float = 0.0           # gamma range: exp(+-gamma)
    noise: float = 0.0           # Gaussian noise: sigma drawn from [0, noise] grey levels
    occlude: float = 0.0         # probability of a grey rectangle (12-36 px a side)

    def scaled(self, strength: float) -> "AugmentConfig":
        """The same kinds of change, ``strength`` times as strong (probabilities stay)."""
        return replace(self, rotate_deg=self.rotate_deg * strength, scale=self.scale * strength,
                       shift_px=self.shift_px * strength,
                       brightness=self.brightness * strength,
                       contrast=self.contrast * strength, gamma=self.gamma * strength,
                       noise=self.noise * strength)

    def as_dict(self) -> dict:
        return asdict(self)


DEFAULT = AugmentConfig()
#: Faces in the wild: photos bring small, blurred, compressed, dim, turned and partly hidden
#: faces that the embedded dataset's crops lack (issue "faces in the wild").
WILD = AugmentConfig(rotate_deg=30.0, rotate_power=3.0, scale=0.12, shift_px=3.0,
                     brightness=0.15, contrast=0.3, low_res=0.2, blur=0.15, jpeg=0.15,
                     gamma=0.35, noise=6.0, occlude=0.1)
PRESETS = {"basic": DEFAULT, "wild": WILD}
#: Eye distance of the embedded dataset's crops (px), for the low-resolution copies.
CROP_EYE_DISTANCE = 36.0


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
        return tf.random.stateless_uniform(shape, seed=self._seed(), minval=low, maxval=high,
                                           dtype=tf.float32)

    def normal(self, shape):
        self.count += 1
        if self.base is None:
            return tf.random.normal(shape, dtype=tf.float32)
        return tf.random.stateless_normal(shape, seed=self._seed(), dtype=tf.float32)

    def _seed(self):
        return self.base + tf.constant([0, 1], tf.int64) * self.count * 7919


def flip_batch(images: tf.Tensor, keypoints: tf.Tensor, which: tf.Tensor,
               keypoint_set: KeypointSet = DEFAULT_SET):
    """Flip the images (B, H, W, C) and keypoints (B, 2K of ``keypoint_set``) where ``which``
    (B,) bool is true."""
    flipped_images = tf.reverse(images, axis=[2])
    kp = tf.gather(keypoints, column_permutation(keypoint_set.flip_order()), axis=1)
    is_x = tf.constant(np.arange(2 * keypoint_set.size) % 2 == 0)
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
    pts = tf.reshape(keypoints, [tf.shape(keypoints)[0], -1, 2])
    moved = tf.einsum("bij,bkj->bki", forward[:, :, :2], pts) + forward[:, None, :, 2]
    inside = tf.reduce_all((moved >= LOW) & (moved <= HIGH), axis=2, keepdims=True)
    moved = tf.where(inside, moved, tf.constant(np.nan, moved.dtype))
    return warped, tf.reshape(moved, tf.shape(keypoints))


def augment_batch(images, keypoints, seed=None, config: AugmentConfig | None = None,
                  keypoint_set: KeypointSet = DEFAULT_SET):
    """Randomly flip, rotate, scale, shift and re-light a batch (see the module docstring);
    ``keypoints`` are (B, 2K) of ``keypoint_set``, whose pairs trade places in a flip.

    ``seed=None`` draws fresh random values on every call (what a training pipeline wants);
    an int or a (2,) int tensor makes the draws reproducible for that seed.
    """
    cfg = DEFAULT if config is None else config
    images = tf.convert_to_tensor(images, tf.float32)
    keypoints = tf.convert_to_tensor(keypoints, tf.float32)
    batch = tf.shape(images)[0]
    draw = _Draws(seed)

    if cfg.flip > 0:
        images, keypoints = flip_batch(images, keypoints,
                                       draw.uniform([batch], 0.0, 1.0) < cfg.flip, keypoint_set)

    if cfg.rotate_deg > 0 or cfg.scale > 0 or cfg.shift_px > 0:
        r = math.radians(cfg.rotate_deg)
        angle = draw.uniform([batch], -1.0, 1.0)
        angle = r * tf.sign(angle) * tf.abs(angle) ** cfg.rotate_power
        scale = draw.uniform([batch], 1.0 - cfg.scale, 1.0 + cfg.scale)
        shift = draw.uniform([batch, 2], -cfg.shift_px, cfg.shift_px)
        images, keypoints = warp_batch(images, keypoints, similarity_matrices(angle, scale, shift))

    images = degrade_batch(images, cfg, draw)

    if cfg.brightness > 0 or cfg.contrast > 0:
        contrast = draw.uniform([batch, 1, 1, 1], 1.0 - cfg.contrast, 1.0 + cfg.contrast)
        bright = draw.uniform([batch, 1, 1, 1], -cfg.brightness, cfg.brightness) * 255.0
        mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
        images = tf.clip_by_value((images - mean) * contrast + mean + bright, 0.0, 255.0)
    if cfg.noise > 0:
        sigma = draw.uniform([batch, 1, 1, 1], 0.0, cfg.noise)
        images = images + sigma * draw.normal(tf.shape(images))
    if cfg.occlude > 0:
        images = occlude_batch(images, draw.uniform([batch], 0.0, 1.0) < cfg.occlude, draw)
    return tf.clip_by_value(images, 0.0, 255.0), keypoints


def degrade_batch(images: tf.Tensor, cfg: AugmentConfig, draw: "_Draws") -> tf.Tensor:
    """Low resolution, blur, JPEG artefacts and gamma, each on a random part of the batch
    (one strength per batch for the first three, so the batch stays one tensor op)."""
    batch = tf.shape(images)[0]

    def some(p):
        return (draw.uniform([batch], 0.0, 1.0) < p)[:, None, None, None]

    if cfg.low_res > 0:
        side = tf.cast(tf.round(IMAGE_SIZE * draw.uniform([], 8.0, 20.0) / CROP_EYE_DISTANCE),
                       tf.int32)
        small = tf.image.resize(images, tf.stack([side, side]), method="area")
        back = tf.image.resize(small, [IMAGE_SIZE, IMAGE_SIZE], method="bilinear")
        images = tf.where(some(cfg.low_res), back, images)
    if cfg.blur > 0:
        images = tf.where(some(cfg.blur), gaussian_blur(images, draw.uniform([], 0.5, 1.8)),
                          images)
    if cfg.jpeg > 0:
        quality = tf.cast(draw.uniform([], 10.0, 50.0), tf.int32)
        pixels = tf.cast(tf.clip_by_value(tf.round(images), 0.0, 255.0), tf.uint8)
        jpeg = tf.map_fn(lambda im: tf.image.adjust_jpeg_quality(im, quality), pixels)
        images = tf.where(some(cfg.jpeg), tf.cast(jpeg, tf.float32), images)
    if cfg.gamma > 0:
        gamma = tf.exp(draw.uniform([batch, 1, 1, 1], -cfg.gamma, cfg.gamma))
        images = 255.0 * tf.pow(tf.clip_by_value(images, 0.0, 255.0) / 255.0, gamma)
    return images


def gaussian_blur(images: tf.Tensor, sigma: tf.Tensor, radius: int = 4) -> tf.Tensor:
    """Blur (B, H, W, 1) images with a Gaussian of ``sigma`` px (edges reflected)."""
    x = tf.range(-radius, radius + 1, dtype=tf.float32)
    k = tf.exp(-x ** 2 / (2.0 * sigma ** 2))
    k = k / tf.reduce_sum(k)
    padded = tf.pad(images, [[0, 0], [radius, radius], [radius, radius], [0, 0]], "REFLECT")
    rows = tf.nn.conv2d(padded, tf.reshape(k, [-1, 1, 1, 1]), 1, "VALID")
    return tf.nn.conv2d(rows, tf.reshape(k, [1, -1, 1, 1]), 1, "VALID")


def occlude_batch(images: tf.Tensor, which: tf.Tensor, draw: "_Draws") -> tf.Tensor:
    """A grey rectangle (12-36 px a side, random grey) over part of each image where ``which``;
    keypoints under it stay labelled (the model learns where hidden points are)."""
    batch = tf.shape(images)[0]
    size = draw.uniform([batch, 2], 12.0, 36.0)
    centre = draw.uniform([batch, 2], 10.0, IMAGE_SIZE - 10.0)
    grey = draw.uniform([batch, 1, 1, 1], 0.0, 255.0)
    pos = tf.range(IMAGE_SIZE, dtype=tf.float32)
    inside_x = tf.abs(pos[None, :] - centre[:, :1]) <= size[:, :1] / 2
    inside_y = tf.abs(pos[None, :] - centre[:, 1:]) <= size[:, 1:] / 2
    box = (inside_y[:, :, None] & inside_x[:, None, :])[..., None] & which[:, None, None, None]
    return tf.where(box, grey, images)
