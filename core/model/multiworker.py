"""The Keras 3 workaround that lets ``fit`` run under ``MultiWorkerMirroredStrategy`` with
two or more workers. It touches private Keras methods (``_symbolic_build``,
``_maybe_symbolic_build``): recheck it when Keras is upgraded."""
from __future__ import annotations

import numpy as np


def fit_across_workers(model, strategy) -> None:
    """Let Keras 3's ``fit`` and ``evaluate`` run under ``MultiWorkerMirroredStrategy`` with
    several workers, where they fail as they are (keras-team/keras#20585):

    - they first pull a batch to build the metrics and the optimizer and all-reduce it as a
      tuple, which the strategy cannot: build them here from a batch of zeros instead;
    - they average each replica's logs with ``strategy.reduce(MEAN, axis=0)``, which fails for
      scalars: each replica's step returns its losses and metrics as 1-element vectors, so the
      reduce gives their mean over every replica of every worker (the same on each worker).
    """
    import tensorflow as tf

    from facekp.core.model.architectures import IMAGE_SIZE

    batch = (np.zeros((1, IMAGE_SIZE, IMAGE_SIZE, 1), np.float32), np.zeros((1, int(model.output_shape[-1])), np.float32))
    with strategy.scope():
        model._symbolic_build(data_batch=batch)
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None

    def per_replica(step):
        def vector_logs(data):
            return {name: tf.reshape(value, (1,)) for name, value in step(data).items()}
        return vector_logs

    model.train_step = per_replica(model.train_step)
    model.test_step = per_replica(model.test_step)
