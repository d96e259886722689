"""CNN architectures by name, and the masked RMSE loss.

Every model takes raw pixel values (N x 96 x 96 x 1, 0-255) and returns keypoints in pixels of
the crop (N x 2K for a keypoint set of K points; Kaggle's 15 by default): scaling (/255 in, x96 out) lives in the model's own first and last layers,
so callers never normalise. Internally the networks regress targets scaled by 1/96, as the
reference recipe did; the loss divides by 96 again so its value and gradients are those of
the reference (RMSE on 1/96-scaled coordinates). Figures shown to people are in pixels
(``loss * 96``, or :class:`MaskedRMSE`).
"""
from __future__ import annotations

from typing import Any, Callable

import keras
from keras import layers, ops

from facekp.core.data.keypoints import IMAGE_SIZE

TARGET_SCALE = float(IMAGE_SIZE)  # network outputs are keypoints / 96

#: name -> builder(keypoints=K): every architecture sizes its output from the set's K.
ARCHITECTURES: dict[str, Callable[..., keras.Model]] = {}
#: Per-architecture training defaults (a Trainer config starts from these).
ARCH_DEFAULTS: dict[str, dict] = {}


def register(name: str, **defaults):
    """Decorator: make a model builder available by ``name`` with its training defaults."""
    def wrap(fn: Callable[..., keras.Model]):
        ARCHITECTURES[name] = fn
        ARCH_DEFAULTS[name] = defaults
        return fn
    return wrap


def build_model(name: str, keypoints: int = 15) -> keras.Model:
    """A new model of architecture ``name`` predicting ``keypoints`` points (2K outputs)."""
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; expected one of "
                         f"{', '.join(sorted(ARCHITECTURES))}")
    if int(keypoints) < 1:
        raise ValueError(f"a model needs at least one keypoint, got {keypoints}")
    return ARCHITECTURES[name](keypoints=int(keypoints))


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
def seed(keypoints: int = 15) -> keras.Model:
    """The reference CNN, exactly: 3 conv (32 3x3, 64 2x2, 128 2x2, VALID, ReLU) each followed
    by 2x2 max-pooling (SAME); dense 500, 500 (ReLU), dropout 0.5, dense 30 (2K for K
    keypoints). Weights from a truncated normal with stddev 0.1, biases 0.1. 8,051,502
    parameters for Kaggle's 15 points."""
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
    x = layers.Dense(2 * keypoints, name="keypoints_scaled", **kw())(x)
    return keras.Model(inputs, _head_out(x), name="seed")


# --- compact conv nets with batch norm -----------------------------------------------------

def _conv_bn_relu(x, filters: int, kernel: int = 3, strides: int = 1, name: str = ""):
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False,
                      name=name)(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def conv_bn_net(name: str, widths=(32, 48, 96, 192), stage_convs=(1, 2, 2, 1), reduce: int = 64,
                hidden: int = 512, dropout: float = 0.1, keypoints: int = 15) -> keras.Model:
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
    x = layers.Dense(2 * keypoints, kernel_initializer=keras.initializers.RandomNormal(stddev=1e-3),
                     bias_initializer=keras.initializers.Constant(0.5),
                     name="keypoints_scaled")(x)
    return keras.Model(inputs, _head_out(x), name=name)


@register("convbn", augment=True, complete_only=False, learning_rate=1.5e-3, epochs=90,
          batch_size=32, patience=0, lr_schedule="cosine")
def convbn(keypoints: int = 15) -> keras.Model:
    """Compact conv + batch-norm net: 32-48-96-192 channels, one 3x3 conv at 48 and 24 px,
    two at 12, one at 6, a 1x1 reduction to 64 and a dense head on the 6x6 map (about
    1.5 M parameters, ~34 M multiply-adds per face). Trained on every labelled keypoint with
    augmentation and a cosine schedule; no early stop (the schedule sets the length)."""
    return conv_bn_net("convbn", stage_convs=(1, 1, 2, 1), keypoints=keypoints)


def fold_batch_norm(model: keras.Model) -> keras.Model:
    """The same function as ``model`` (inference) in fewer layers, so one crop predicts
    faster. In a functional model (a chain or any graph of layers each used once):

    - a BatchNormalization whose only input is a Conv2D/Dense with no activation, and which is
      that layer's only consumer, is folded into it; a plain ReLU that is the only consumer
      after that becomes the layer's activation;
    - a plain scaling (Rescaling without offset, such as the /255 input and x96 output
      scalings) is folded into the Conv2D/Dense it alone feeds, or into the linear (or ReLU,
      for a positive scale) Conv2D/Dense that alone feeds it;
    - Dropout is dropped; every other layer is rebuilt as it is, with its weights.

    Outputs agree to float rounding. A layer used more than once raises ValueError."""
    import numpy as np

    sole_consumer = _sole_consumer(model)
    new: dict[int, Any] = {}          # id(old tensor) -> new tensor
    absorbed: set[int] = set()        # ids of layers folded into another
    input_scale: dict[int, float] = {}  # id(layer) -> scale of its folded input Rescaling
    new_inputs = []
    for t in model.inputs:
        x = keras.Input(t.shape[1:], name=t.name.split(":")[0])
        new[id(t)] = x
        new_inputs.append(x)

    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer) or id(layer) in absorbed:
            continue
        node = layer._inbound_nodes[0]
        ins = [new[id(t)] for t in node.input_tensors]
        out = node.output_tensors[0]
        if isinstance(layer, layers.Dropout):
            new[id(out)] = ins[0]
            continue
        s = _plain_scale(layer)
        nxt = sole_consumer(out)
        if s is not None and isinstance(nxt, _LINEAR_TYPES):
            input_scale[id(nxt)] = input_scale.get(id(layer), 1.0) * s
            new[id(out)] = ins[0]
            continue
        cfg = layer.get_config()
        weights = [np.asarray(w, np.float64) for w in layer.get_weights()]
        if isinstance(layer, _LINEAR_TYPES):
            kernel = weights[0] * input_scale.get(id(layer), 1.0)  # zero padding stays zero
            bias = weights[1] if layer.use_bias else np.zeros(kernel.shape[-1])
            kernel, bias, out = _fold_after(cfg, kernel, bias, nxt, sole_consumer, absorbed, out)
            weights = [kernel, bias]
        rebuilt = layer.__class__.from_config(cfg)
        y = rebuilt(ins[0] if len(ins) == 1 else ins)
        if weights:
            rebuilt.set_weights([w.astype("float32") for w in weights])
        new[id(out)] = y
    outputs = [new[id(t)] for t in model.outputs]
    return keras.Model(new_inputs if len(new_inputs) > 1 else new_inputs[0],
                       outputs if len(outputs) > 1 else outputs[0], name=model.name)


_LINEAR_TYPES = (layers.Conv2D, layers.Dense)


def _sole_consumer(model: keras.Model):
    """``f(tensor)``: the one layer that reads ``tensor`` (None if several, or an output)."""
    consumers: dict[int, list] = {}
    for layer in model.layers:
        nodes = layer._inbound_nodes
        if not isinstance(layer, keras.layers.InputLayer) and len(nodes) != 1:
            raise ValueError(f"{model.name}: layer {layer.name} is used {len(nodes)} times; "
                             "only models whose layers are each used once can be folded")
        for node in nodes:
            for t in node.input_tensors:
                consumers.setdefault(id(t), []).append(layer)
    output_ids = {id(t) for t in model.outputs}

    def sole_consumer(tensor):
        c = consumers.get(id(tensor), [])
        return c[0] if len(c) == 1 and id(tensor) not in output_ids else None

    return sole_consumer


def _plain_scale(layer) -> float | None:
    if not isinstance(layer, layers.Rescaling):
        return None
    cfg = layer.get_config()
    scale, offset = cfg.get("scale"), cfg.get("offset", 0.0)
    if isinstance(scale, (int, float)) and isinstance(offset, (int, float)) and offset == 0:
        return float(scale)
    return None


def _fold_after(cfg: dict, kernel, bias, nxt, sole_consumer, absorbed: set, out):
    """Fold into a Conv2D/Dense (``cfg``, ``kernel``, ``bias``) what alone follows it: a
    BatchNormalization, then a plain ReLU, then a plain scaling. Returns the new kernel and
    bias and the tensor the folded chain ends in; ``cfg`` and ``absorbed`` are updated."""
    import numpy as np

    def value(v):
        return ops.convert_to_numpy(v).astype(np.float64)

    def follow(layer):
        absorbed.add(id(layer))
        end = layer._inbound_nodes[0].output_tensors[0]
        return end, sole_consumer(end)

    if cfg["activation"] == "linear" and isinstance(nxt, layers.BatchNormalization):
        n = kernel.shape[-1]
        gamma = value(nxt.gamma) if nxt.scale else np.ones(n)
        beta = value(nxt.beta) if nxt.center else np.zeros(n)
        scale = gamma / np.sqrt(value(nxt.moving_variance) + nxt.epsilon)
        kernel, bias = kernel * scale, beta + (bias - value(nxt.moving_mean)) * scale
        out, nxt = follow(nxt)
    if cfg["activation"] == "linear" and isinstance(nxt, layers.ReLU) and _plain_relu(nxt):
        cfg["activation"] = "relu"
        out, nxt = follow(nxt)
    s = _plain_scale(nxt) if nxt is not None else None
    if s is not None and (cfg["activation"] == "linear"
                          or (cfg["activation"] == "relu" and s > 0)):
        kernel, bias = kernel * s, bias * s
        out, _ = follow(nxt)
    cfg["use_bias"] = True
    return kernel, bias, out


def _plain_relu(layer) -> bool:
    cfg = layer.get_config()
    return (cfg.get("max_value") is None and not cfg.get("negative_slope")
            and not cfg.get("threshold"))


# --- heatmaps read out by a soft-argmax ----------------------------------------------------

@keras.saving.register_keras_serializable(package="facekp")
class SoftArgmax(layers.Layer):
    """Heatmap logits (N, H, W, K) -> keypoints in crop pixels (N, 2K) ordered x0, y0, x1, ...

    Each map is turned into a probability distribution with a softmax over its H x W cells, and
    the keypoint is the expected position of the cell centres under it (integral regression):
    differentiable, sub-cell precise, and free of the position-specific weights a dense head
    learns. A map of H cells covers ``size`` input pixels, so cell j has its centre at
    ``(j + 0.5) * size / H - 0.5`` in pixel-centre coordinates."""

    def __init__(self, size: int = IMAGE_SIZE, **kwargs):
        super().__init__(**kwargs)
        self.size = int(size)

    def call(self, logits):
        h, w, k = logits.shape[1], logits.shape[2], logits.shape[3]
        flat = ops.reshape(ops.transpose(logits, (0, 3, 1, 2)), (-1, k, h * w))
        p = ops.reshape(ops.softmax(flat, axis=-1), (-1, k, h, w))
        ys = (ops.arange(h, dtype=p.dtype) + 0.5) * (self.size / h) - 0.5
        xs = (ops.arange(w, dtype=p.dtype) + 0.5) * (self.size / w) - 0.5
        x = ops.sum(ops.sum(p, axis=2) * xs, axis=-1)
        y = ops.sum(ops.sum(p, axis=3) * ys, axis=-1)
        return ops.reshape(ops.stack([x, y], axis=-1), (-1, 2 * k))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 2 * input_shape[3])

    def get_config(self):
        return {**super().get_config(), "size": self.size}


def heatmap_net(name: str, widths=(32, 48, 96, 160), up_width: int = 64,
                keypoints: int = 15) -> keras.Model:
    """A small encoder-decoder that draws one heatmap per keypoint at 24 x 24 (4 px cells) and
    reads each out with :class:`SoftArgmax`.

    Encoder: stride-2 stem (48 px), then 2x2 pooling to 24, 12 and 6 px with two 3x3 conv + BN
    + ReLU per stage (the 6 px stage sees the whole face). Decoder: the 6 px features are
    upsampled to 12 and then 24 px, each time added to the encoder's features of that size
    (1x1 projections) and refined by a 3x3 conv; a 1x1 conv gives the heatmap logits."""
    inputs, x = _io(name)
    x = _conv_bn_relu(x, widths[0], strides=2, name="stem")
    skips = []
    for s in range(1, 4):
        x = layers.MaxPooling2D(2, name=f"pool{s}")(x)
        x = _conv_bn_relu(x, widths[s], name=f"s{s}c0")
        x = _conv_bn_relu(x, widths[s], name=f"s{s}c1")
        skips.append(x)
    for s, skip in ((2, skips[1]), (1, skips[0])):
        x = layers.UpSampling2D(2, interpolation="bilinear", name=f"up{s}")(x)
        x = _conv_bn_relu(x, up_width, kernel=1, name=f"up{s}_proj")
        lateral = _conv_bn_relu(skip, up_width, kernel=1, name=f"lat{s}")
        x = layers.Add(name=f"merge{s}")([x, lateral])
        x = _conv_bn_relu(x, up_width, name=f"up{s}_conv")
    x = layers.Conv2D(keypoints, 1, name="heatmaps")(x)
    return keras.Model(inputs, SoftArgmax(IMAGE_SIZE, name="keypoints")(x), name=name)


@register("heatmap", augment=True, augment_preset="wild", augment_strength=1.0,
          complete_only=False, learning_rate=2e-3, epochs=60, batch_size=32, patience=0,
          lr_schedule="cosine")
def heatmap(keypoints: int = 15) -> keras.Model:
    """:func:`heatmap_net`: one heatmap per keypoint (15 for Kaggle's set) at 24 x 24 read out
    by a soft-argmax."""
    return heatmap_net("heatmap", keypoints=keypoints)
