"""What feeds a training run: faces to ``tf.data`` batches (shuffled, augmented, sharded over
workers) and the optimizer with its learning-rate schedule."""
from __future__ import annotations

from typing import Any

import numpy as np

from facekp.core.errors import FacekpError


def pipeline(ds, batch_size: int, shuffle: bool, seed: int = 0, augment: float = 0.0,
              repeat: bool = False, preset: str = "basic", shard: tuple[int, int] | None = None,
              workers: int = 1):
    """Faces -> batches of float32 (B, 96, 96, 1), (B, 2K), augmented (``facekp.core.model.augment``,
    its ``preset``, flipping by the faces' keypoint set) at ``augment`` times its strength when
    above 0.
    ``repeat``: pass after pass without end, each reshuffled (one iterator for the whole fit,
    with ``steps_per_epoch`` = batches per pass, so epochs still begin at a pass's start).

    ``ds``: a :class:`facekp.core.data.dataset.Dataset` (in memory, shuffled whole) or a stream of
    faces such as :class:`facekp.core.data.shards.ShardSplit` (``elements``, ``shuffle_buffer`` and
    ``auto_shard_policy``: shuffled in a bounded buffer).
    ``shard`` (count, index), for one worker of several: in memory, after shuffling, keep faces
    index, index + count, ... of the first ``N - N % count`` (every shard as large, a different
    remainder left out each pass); a stream keeps whole files (or every count-th face when
    there are fewer files than workers). Before batching and augmenting, so a worker prepares
    only its own faces. ``workers``: the number of workers a pipeline left to tf.data's
    auto-sharding (validation) is split over; it picks a stream's policy."""
    import tensorflow as tf

    if hasattr(ds, "elements"):  # streamed: files read as the pipeline goes
        d = ds.elements(shuffle=shuffle, seed=seed, shard=shard, workers=workers)
        buffer, policy = ds.shuffle_buffer, ds.auto_shard_policy(workers)
    else:
        d = tf.data.Dataset.from_tensor_slices((ds.images[..., None], ds.keypoints))
        buffer, policy = len(ds), tf.data.experimental.AutoShardPolicy.DATA
    if shuffle:
        d = d.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    if shard is not None and not hasattr(ds, "elements"):
        count, index = shard
        d = d.take(len(ds) - len(ds) % count).shard(count, index)
    d = d.batch(batch_size)
    # Plain tensor code: skipping AutoGraph's source conversion avoids its warnings and a
    # ~200 ms hold of the GIL that froze the app's event loop when training starts.
    no_autograph = tf.autograph.experimental.do_not_convert
    d = d.map(no_autograph(lambda x, y: (tf.cast(x, tf.float32), y)),
              num_parallel_calls=tf.data.AUTOTUNE)
    if augment:
        from facekp.core.model.augment import PRESETS, augment_batch

        strength = PRESETS[preset].scaled(float(augment))
        kset = ds.keypoint_set
        d = d.map(no_autograph(lambda x, y: augment_batch(x, y, config=strength,
                                                          keypoint_set=kset)),
                  num_parallel_calls=tf.data.AUTOTUNE)
    if repeat:
        d = d.repeat()
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = policy
    return d.prefetch(tf.data.AUTOTUNE).with_options(options)


def optimizer(cfg, steps_per_epoch: int):
    import keras

    lr: Any = float(cfg.learning_rate)
    if cfg.lr_schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(lr, decay_steps=cfg.epochs * steps_per_epoch)
    return keras.optimizers.Adam(learning_rate=lr)


def current_lr(model) -> float | None:
    try:
        opt = model.optimizer
        lr = opt.learning_rate
        return float(np.asarray(lr))
    except Exception:
        return None


def training_datasets(train, val, cfg, workers: int, strategy):
    """The training and validation pipelines of a run (``cfg``: its TrainConfig). Several
    workers: each worker's training pipeline shuffles every face the same way (the same seed)
    and keeps its own share (:func:`pipeline`'s ``shard``), so the workers train on different
    faces in every step; validation is auto-sharded by tf.data (each worker validates on its
    part, and the workers' RMSEs are all-reduced so that every worker decides alike)."""
    augment = cfg.augment_strength if cfg.augment else 0.0
    if workers == 1:
        train_ds = pipeline(train, cfg.batch_size, shuffle=True, seed=cfg.seed,
                            augment=augment, repeat=True, preset=cfg.augment_preset)
        return train_ds, pipeline(val, cfg.batch_size, shuffle=False)
    global_batch = cfg.batch_size * workers
    if global_batch % strategy.num_replicas_in_sync:
        raise FacekpError(f"a batch size of {cfg.batch_size} per worker does not split "
                          f"evenly over the {strategy.num_replicas_in_sync // workers}"
                          " devices of each worker")

    def worker_pipeline(context):
        return pipeline(train, context.get_per_replica_batch_size(global_batch),
                        shuffle=True, seed=cfg.seed, augment=augment, repeat=True,
                        preset=cfg.augment_preset,
                        shard=(context.num_input_pipelines, context.input_pipeline_id))

    train_ds = strategy.distribute_datasets_from_function(worker_pipeline)
    return train_ds, pipeline(val, global_batch, shuffle=False, workers=workers)
