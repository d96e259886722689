"""CNN architectures by name, and the masked RMSE loss.

Every model takes raw pixel values (N x 96 x 96 x 1, 0-255) and returns keypoints in pixels of
the crop (N x 30): scaling (/255 in, x96 out) lives in the model's own first and last layers,
so callers never normalise. Internally the networks regress targets scaled by 1/96, as the
reference recipe did; the loss divides by 96 again so its value and gradients are those of
the reference (RMSE on 1/96-scaled coordinates). Figures shown to people are in pixels
(``loss * 96``, or :class:`MaskedRMSE`).
"""
from __future__ import annotations

from typing import Callable

import keras
from keras import layers, ops

from .keypoints import IMAGE_SIZE

TARGET_SCALE = float(IMAGE_SIZE)  # network outputs are keypoints / 96

ARCHITECTURES: dict[str, Callable[[], keras.Model]] = {}
#: Per-architecture training defaults (a Trainer config starts from these).
ARCH_DEFAULTS: dict[str, dict] = {}


def register(name: str, **defaults):
    """Decorator: make a model builder available by ``name`` with its training defaults."""
    def wrap(fn: Callable[[], keras.Model]):
        ARCHITECTURES[name] = fn
        ARCH_DEFAULTS[name] = defaults
        return fn
    return wrap


def build_model(name: str) -> keras.Model:
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; expected one of "
                         f"{', '.join(sorted(ARCHITECTURES))}")
    return ARCHITECTURES[name]()


# --- loss and metric -----------------------------------------------------------------------

@keras.saving.register_keras_serializable(package="facekp")
def masked_rmse(y_true, y_pred):
    """RMSE over the keypoint coordinates present in ``y_true`` (NaN = missing), in 1/96 units.

    ``y_true`` and ``y_pred`` are in pixels; both are divided by 96 so the value equals the
    reference recipe's loss on scaled targets. A batch with no labels gives 0.
    """
    mask = ops.logical_not(ops.isnan(y_true))
    diff = ops.where(mask, (y_pred - ops.where(mask, y_true, 0.0)) / TARGET_SCALE, 0.0)
    count = ops.sum(ops.cast(mask, diff.dtype))
    return ops.sqrt(ops.sum(ops.square(diff)) / ops.maximum(count, 1.0))


@keras.saving.register_keras_serializable(package="facekp")
class MaskedRMSE(keras.metrics.Metric):
    """RMSE in pixels over every present coordinate seen since the last reset (exact, not a
    mean of batch RMSEs)."""

    def __init__(self, name: str = "rmse_px", **kwargs):
        super().__init__(name=name, **kwargs)
        self.sse = self.add_variable(shape=(), initializer="zeros", name="sse", dtype="float64")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count",
                                       dtype="float64")

    def update_state(self, y_true, y_pred, sample_weight=None):
        mask = ops.logical_not(ops.isnan(y_true))
        diff = ops.where(mask, y_pred - ops.where(mask, y_true, 0.0), 0.0)
        self.sse.assign_add(ops.cast(ops.sum(ops.square(diff)), "float64"))
        self.count.assign_add(ops.cast(ops.sum(ops.cast(mask, "float32")), "float64"))

    def result(self):
        return ops.sqrt(self.sse / ops.maximum(self.count, 1.0))

    def reset_state(self):
        self.sse.assign(0.0)
        self.count.assign(0.0)


def _io(name: str):
    """Input (raw 0-255 pixels) and its rescaling to [0, 1]."""
    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 1), name="image")
    return inputs, layers.Rescaling(1.0 / 255.0, name="to_unit")(inputs)


def _head_out(x):
    """Scaled output (1/96 units) -> pixels."""
    return layers.Rescaling(TARGET_SCALE, name="to_pixels")(x)


# --- the reference design ----------------------------------------------------------------

@register("seed", augment=False, complete_only=True, learning_rate=1e-3, epochs=100,
          batch_size=64, patience=10)
def seed() -> keras.Model:
    """The reference CNN, exactly: 3 conv (32 3x3, 64 2x2, 128 2x2, VALID, ReLU) each followed
    by 2x2 max-pooling (SAME); dense 500, 500 (ReLU), dropout 0.5, dense 30. Weights from a
    truncated normal with stddev 0.1, biases 0.1. 8,051,502 parameters."""
    def kw():
        return dict(kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.1),
                    bias_initializer=keras.initializers.Constant(0.1))

    inputs, x = _io("seed")
    x = layers.Conv2D(32, 3, padding="valid", activation="relu", name="conv1", **kw())(x)
    x = layers.MaxPooling2D(2, padding="same", name="pool1")(x)
    x = layers.Conv2D(64, 2, padding="valid", activation="relu", name="conv2", **kw())(x)
    x = layers.MaxPooling2D(2, padding="same", name="pool2")(x)
    x = layers.Conv2D(128, 2, padding="valid", activation="relu", name="conv3", **kw())(x)
    x = layers.MaxPooling2D(2, padding="same", name="pool3")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(500, activation="relu", name="fc1", **kw())(x)
    x = layers.Dense(500, activation="relu", name="fc2", **kw())(x)
    x = layers.Dropout(0.5, name="dropout")(x)
    x = layers.Dense(30, name="keypoints_scaled", **kw())(x)
    return keras.Model(inputs, _head_out(x), name="seed")
