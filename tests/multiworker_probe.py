"""One worker of the two-worker training test (``python tests/multiworker_probe.py ARGS``)
runs ``facekp train`` (facekp.core.cli.models) with a tiny registered architecture, 'test-probe',
whose first layer writes the faces of the first batch the model trains on to $FACEKP_TEST_PROBE (a
JSON list of each face's SHA-1), so that the test can tell which faces each worker trained on.
$FACEKP_TEST_STOP_AT=EPOCH:BATCH makes this worker ask for a stop there.

Imported by the test as well, so that its process knows the Probe layer when it loads the
model written by the workers.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys

import keras
import numpy as np
from keras import layers


def face_hash(image) -> str:
    """A face's identity: the SHA-1 of its 96x96 uint8 pixels."""
    return hashlib.sha1(np.asarray(image, dtype=np.uint8).reshape(96, 96).tobytes()).hexdigest()


@keras.saving.register_keras_serializable(package="facekp_test")
class Probe(layers.Layer):
    """Passes its input through; the first time it runs, writes that batch's face hashes."""

    seen = False

    def call(self, x):
        import tensorflow as tf

        def record(batch):
            path = os.environ.get("FACEKP_TEST_PROBE")
            if path and not Probe.seen:
                Probe.seen = True
                with open(path, "w") as f:
                    json.dump([face_hash(face) for face in batch.numpy()], f)
            return np.float32(0.0)

        flag = tf.py_function(record, [x], tf.float32)
        flag.set_shape(())
        return x + flag

    def compute_output_spec(self, x):
        return keras.KerasTensor(x.shape, x.dtype)


def probe_net(keypoints=15):
    inputs = keras.Input((96, 96, 1))
    x = layers.Rescaling(1 / 255)(Probe()(inputs))
    x = layers.Conv2D(8, 3, strides=2, activation="relu")(x)
    x = layers.MaxPooling2D(4)(x)
    x = layers.Dense(2 * keypoints)(layers.Flatten()(x))
    return keras.Model(inputs, layers.Rescaling(96.0)(x), name="probe")


def register() -> str:
    from facekp.core.model import architectures as model

    if "test-probe" not in model.ARCHITECTURES:
        model.register("test-probe", augment=False, complete_only=False)(probe_net)
    return "test-probe"


def stop_at(epoch: int, batch: int) -> None:
    """Make this worker ask its Trainer to stop at ``epoch``, ``batch`` (as Ctrl+C would)."""
    from facekp.core.cli import models

    on_batch = models._CliListener.on_batch

    def on_batch_then_stop(self, e, b, loss_px):
        on_batch(self, e, b, loss_px)
        if (e, b) == (epoch, batch):
            self.trainer.stop()

    models._CliListener.on_batch = on_batch_then_stop


if __name__ == "__main__":
    from facekp.core.cli import main as cli

    register()
    if os.environ.get("FACEKP_TEST_STOP_AT"):  # EPOCH:BATCH
        stop_at(*map(int, os.environ["FACEKP_TEST_STOP_AT"].split(":")))
    sys.exit(cli.main(sys.argv[1:]))
