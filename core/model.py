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


# --- compact conv nets with batch norm -----------------------------------------------------

def _conv_bn_relu(x, filters: int, kernel: int = 3, strides: int = 1, name: str = ""):
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False,
                      name=name)(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def conv_bn_net(name: str, widths=(32, 48, 96, 192), stage_convs=(1, 2, 2, 1), reduce: int = 64,
                hidden: int = 512, dropout: float = 0.1) -> keras.Model:
    """A plain conv + batch-norm stack that keeps a 6x6 map for a dense head.

    A stride-2 3x3 stem (96 -> 48), then stages at 24, 12 and 6 px, each after 2x2
    max-pooling, of 3x3 conv + BN + ReLU; a 1x1 conv reduces the 6x6 map to ``reduce``
    channels, which a dense layer (BN, ReLU, dropout) reads as a whole, so where a feature
    sits on the face stays known. The last layer starts near the crop centre (0.5 in 1/96
    units, tiny weights), so early batches do not chase wild guesses. The layers form a
    single chain, so :func:`fold_batch_norm` can fold the BN layers into the convolutions
    for inference.
    """
    inputs, x = _io(name)
    x = _conv_bn_relu(x, widths[0], strides=2, name="stem")
    for i in range(1, stage_convs[0]):
        x = _conv_bn_relu(x, widths[0], name=f"s0c{i}")
    for s in range(1, 4):
        x = layers.MaxPooling2D(2, name=f"pool{s}")(x)
        for i in range(stage_convs[s]):
            x = _conv_bn_relu(x, widths[s], name=f"s{s}c{i}")
    x = _conv_bn_relu(x, reduce, kernel=1, name="reduce")
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(hidden, use_bias=False, name="fc")(x)
    x = layers.BatchNormalization(name="fc_bn")(x)
    x = layers.ReLU(name="fc_relu")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    x = layers.Dense(30, kernel_initializer=keras.initializers.RandomNormal(stddev=1e-3),
                     bias_initializer=keras.initializers.Constant(0.5),
                     name="keypoints_scaled")(x)
    return keras.Model(inputs, _head_out(x), name=name)


@register("convbn", augment=True, complete_only=False, learning_rate=1.5e-3, epochs=90,
          batch_size=32, patience=0, lr_schedule="cosine")
def convbn() -> keras.Model:
    """Compact conv + batch-norm net: 32-48-96-192 channels, one 3x3 conv at 48 and 24 px,
    two at 12, one at 6, a 1x1 reduction to 64 and a dense head on the 6x6 map (about
    1.5 M parameters, ~34 M multiply-adds per face). Trained on every labelled keypoint with
    augmentation and a cosine schedule; no early stop (the schedule sets the length)."""
    return conv_bn_net("convbn", stage_convs=(1, 1, 2, 1))


def fold_batch_norm(model: keras.Model) -> keras.Model:
    """The same function as ``model`` (inference) in fewer layers, so one crop predicts
    faster: each BatchNormalization is folded into the Conv2D/Dense before it, a ReLU right
    after such a layer becomes its activation, Dropout is dropped, and a plain scaling
    (Rescaling without offset, such as the /255 input and x96 output scalings) is folded into
    the Conv2D/Dense next to it. ``model`` must be a single chain of layers (as
    :func:`conv_bn_net` builds); outputs agree to float rounding."""
    import numpy as np

    chain = [l for l in model.layers if not isinstance(l, keras.layers.InputLayer)]
    previous = model.inputs[0] if len(model.inputs) == 1 else None
    for layer in chain:
        nodes = layer._inbound_nodes
        if (previous is None or len(nodes) != 1 or len(nodes[0].input_tensors) != 1
                or nodes[0].input_tensors[0] is not previous):
            raise ValueError(f"{model.name}: not a single chain of layers at {layer.name}; "
                             "only chains can be folded")
        previous = layer.output
    if len(model.outputs) != 1 or model.outputs[0] is not previous:
        raise ValueError(f"{model.name}: not a single chain of layers")

    # 1. a list of [class, config, weights], batch norm and ReLU merged, dropout gone
    specs: list[list] = []
    i = 0
    while i < len(chain):
        layer = chain[i]
        nxt = chain[i + 1] if i + 1 < len(chain) else None
        if isinstance(layer, layers.Dropout):
            i += 1
            continue
        cfg = layer.get_config()
        weights = [np.asarray(w, np.float64) for w in layer.get_weights()]
        i += 1
        if isinstance(layer, (layers.Conv2D, layers.Dense)) and cfg["activation"] == "linear":
            kernel = weights[0]
            bias = weights[1] if layer.use_bias else np.zeros(kernel.shape[-1])
            if isinstance(nxt, layers.BatchNormalization):
                ones, zeros = np.ones(kernel.shape[-1]), np.zeros(kernel.shape[-1])
                def value(v):
                    return ops.convert_to_numpy(v).astype(np.float64)

                gamma = value(nxt.gamma) if nxt.scale else ones
                beta = value(nxt.beta) if nxt.center else zeros
                scale = gamma / np.sqrt(value(nxt.moving_variance) + nxt.epsilon)
                kernel = kernel * scale
                bias = beta + (bias - value(nxt.moving_mean)) * scale
                i += 1
            after = chain[i] if i < len(chain) else None
            if isinstance(after, layers.ReLU) and _plain_relu(after):
                cfg["activation"] = "relu"
                i += 1
            cfg["use_bias"] = True
            weights = [kernel, bias]
        specs.append([layer.__class__, cfg, weights])

    # 2. plain scalings folded into the neighbouring linear layer
    def linear(spec):
        return spec[0] in (layers.Conv2D, layers.Dense)

    def plain_scale(spec):
        if spec[0] is not layers.Rescaling:
            return None
        scale, offset = spec[1].get("scale"), spec[1].get("offset", 0.0)
        if isinstance(scale, (int, float)) and isinstance(offset, (int, float)) and offset == 0:
            return float(scale)
        return None

    j = 0
    while j < len(specs):
        s = plain_scale(specs[j])
        if s is not None and j + 1 < len(specs) and linear(specs[j + 1]):
            specs[j + 1][2][0] = specs[j + 1][2][0] * s  # zero padding stays zero: exact
            del specs[j]
            continue
        if (s is not None and j > 0 and linear(specs[j - 1])
                and (specs[j - 1][1]["activation"] == "linear"
                     or (specs[j - 1][1]["activation"] == "relu" and s > 0))):
            specs[j - 1][2] = [w * s for w in specs[j - 1][2]]
            del specs[j]
            continue
        j += 1

    inputs = keras.Input(model.input_shape[1:], name=model.inputs[0].name.split(":")[0])
    x = inputs
    for cls, cfg, weights in specs:
        new = cls.from_config(cfg)
        x = new(x)
        if weights:
            new.set_weights([w.astype("float32") for w in weights])
    return keras.Model(inputs, x, name=model.name)


def _plain_relu(layer) -> bool:
    cfg = layer.get_config()
    return (cfg.get("max_value") is None and not cfg.get("negative_slope")
            and not cfg.get("threshold"))
