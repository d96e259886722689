"""A trained model out of facekp: TensorFlow Lite or a SavedModel, and the TFLite runner the
Predictor calls.

Both formats hold the whole model as facekp runs it: uint8-range float pixels of a 96 x 96
grayscale face in (N x 96 x 96 x 1, 0-255; the input normalisation is inside the model) and the
K keypoints out (N x 2K, x then y in crop pixels, pixel centres, the soft-argmax readout of a
heatmap model included). ``facekp export-model``.

:class:`LiteRunner` runs a model converted to TensorFlow Lite in process: one interpreter per
batch size (a photo's faces and their mirror images, and the confidence head's re-crops, in one
call), without the per-call dispatch of a Keras or ``tf.function`` call (on a one-face photo
the model's call goes from about 8 to 4 ms here), in float32 or with 8-bit weights (the
Predictor's default: about 2.5 x faster again on CPU; the shipped model's test RMSE 1.4692 ->
1.4695 px, keypoints a mean 0.014 px from float32's).

A call of more than :data:`CHUNK` crops (a group photo's faces and their mirror images) is
cut into chunks of that many, which one-thread interpreters run side by side, one per core,
each taking the next chunk not yet taken (:func:`facekp.core.parallel.each`); the keypoints
are the same to the bit. Measured on
this 2-core machine with 48 crops (bald_guys.jpg's 24 faces): chunks of 8 take 10-15 % less
CPU time than one batch of 48 (a chunk's activations stay in the caches); and one interpreter
with two threads, which meet at every layer, takes longer whatever the load: 17 ms against 16
side by side with a core to spare, 36-40 against 31-33 while another process kept a core busy.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from facekp.core import parallel
from facekp.core.data.keypoints import IMAGE_SIZE

FORMATS = ("savedmodel", "tflite")
#: Crops an interpreter runs at once: a call with more runs them in chunks of this many.
CHUNK = 8
#: Interpreters kept per worker (one per batch size seen, oldest dropped).
MAX_INTERPRETERS = 8


def _serving(model, maps: bool = False):
    """A concrete function of the model (and of its heatmaps, with ``maps``) on any batch."""
    import keras
    import tensorflow as tf

    outputs = model.outputs[0]
    if maps:
        outputs = [model.get_layer("heatmaps").output, outputs]
    net = keras.Model(model.inputs, outputs)

    @tf.function(input_signature=[tf.TensorSpec([None, IMAGE_SIZE, IMAGE_SIZE, 1], tf.float32,
                                                name="faces")])
    def serve(faces):
        return net(faces, training=False)

    return serve.get_concrete_function(), net


def tflite_bytes(model, maps: bool = False, int8_weights: bool = False) -> bytes:
    """The model (with its heatmaps as a second output, with ``maps``) converted to TensorFlow
    Lite (the built-in ops only), its batch size open: float32, or with ``int8_weights`` its
    weights stored as 8-bit integers and the layers run by TFLite's hybrid int8 kernels
    (dynamic-range quantisation: activations quantised on the fly)."""
    import io
    import contextlib

    import tensorflow as tf

    _, net = _serving(model, maps)
    converter = tf.lite.TFLiteConverter.from_keras_model(net)
    if int8_weights:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    # the converter prints the temporary SavedModel it goes through; keep that off stdout
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        return converter.convert()


def interpreter(content: bytes, threads: int = 1):
    """A TFLite interpreter (TensorFlow's) for a model's bytes, on ``threads`` threads."""
    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite's notice that LiteRT replaces it
        return tf.lite.Interpreter(model_content=content, num_threads=threads)


class LiteRunner:
    """A Keras keypoint model run through TensorFlow Lite: ``runner(x)`` -> keypoints (N, 2K),
    or with ``maps`` (heatmaps (N, h, w, K), keypoints). ``workers``: interpreters side by side
    for a call of several chunks (default :func:`facekp.core.parallel.workers`: one per core,
    up to 4). One call at a time (the Predictor holds a lock around it)."""

    def __init__(self, model=None, maps: bool = False, content: bytes | None = None,
                 int8_weights: bool = False, workers: int | None = None):
        self.content = content if content is not None else tflite_bytes(model, maps,
                                                                        int8_weights)
        self.maps = maps
        self.workers = max(1, workers or parallel.workers())
        self._by_batch: list[dict[int, tuple]] = [{} for _ in range(self.workers)]

    def _for(self, worker: int, n: int):
        """Worker ``worker``'s one-thread interpreter for batches of ``n``, made once."""
        mine = self._by_batch[worker]
        if n not in mine:
            if len(mine) >= MAX_INTERPRETERS:
                mine.pop(next(iter(mine)))
            it = interpreter(self.content)
            inp = it.get_input_details()[0]["index"]
            it.resize_tensor_input(inp, [n, IMAGE_SIZE, IMAGE_SIZE, 1])
            it.allocate_tensors()
            outs = sorted(it.get_output_details(), key=lambda d: len(d["shape"]))
            mine[n] = (it, inp, [d["index"] for d in outs])
        return mine[n]

    def _run(self, worker: int, x: np.ndarray) -> list[np.ndarray]:
        """Keypoints (2-D) then heatmaps (4-D, with ``maps``) of one chunk."""
        it, inp, outs = self._for(worker, len(x))
        it.set_tensor(inp, x)
        it.invoke()
        return [it.get_tensor(i) for i in outs]

    def __call__(self, x: np.ndarray):
        x = np.ascontiguousarray(x, dtype=np.float32)
        chunks = [x[a:a + CHUNK] for a in range(0, len(x), CHUNK)] or [x]
        # each worker runs the next chunk not yet taken (the calling thread is worker 0)
        done = parallel.each(lambda j, i: self._run(j, chunks[i]), len(chunks), self.workers)
        got = [np.concatenate(parts) if len(parts) > 1 else parts[0] for parts in zip(*done)]
        return (got[1], got[0]) if self.maps else got[0]


def export_model(model_path: str | Path, fmt: str, out: str | Path,
                 overwrite: bool = False, load=None) -> Path:
    """Write the model at ``model_path`` as ``fmt`` (:data:`FORMATS`) to ``out`` (a .tflite file,
    or a SavedModel folder); an existing ``out`` only with ``overwrite`` (DataError naming it).
    Nothing half-written: the file or folder appears whole or not at all. ``load``: reads the
    model file (facekp.core.model.predict.load_model, which uses this module: passed in so
    that the two do not import each other)."""
    from facekp.core.fileio import (atomic_folder, atomic_path, check_output,
                                    check_output_folder, refuse_input_as_output)

    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")
    out = Path(out)
    refuse_input_as_output(out, {"model": [model_path]})
    if fmt == "tflite":
        check_output(out, overwrite)
    else:
        check_output_folder(out, overwrite, replaceable=lambda p: (p / "saved_model.pb").is_file(),
                            what="a SavedModel export")
    if load is None:
        raise ValueError("export_model needs load=, the function that reads a model file")
    model = load(model_path)
    if fmt == "tflite":
        content = tflite_bytes(model)
        with atomic_path(out) as tmp:
            Path(tmp).write_bytes(content)
        return out
    import tensorflow as tf

    fn, net = _serving(model)
    module = tf.Module()
    module.net = net
    with atomic_folder(out) as tmp:
        tf.saved_model.save(module, str(tmp), signatures={"serving_default": fn})
    return out
