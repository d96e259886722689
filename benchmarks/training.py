"""Training throughput: the Trainer (tf.data + Keras fit + callbacks) against the reference loop.

The reference loop is the way the original tutorial trained: numpy batches fed to the model one
call at a time (``train_on_batch``, as it fed ``feed_dict``), the training set reshuffled every
epoch, the validation loss computed after every epoch and the model saved when it improved.
Both train the same architecture, from the same seed, on the same faces with the same batch
size, learning rate and epochs, one after the other in this one process.

Printed: images/s over whole epochs (training + validation + checkpoint) and over the training
batches alone, for epochs after the first (the first one also traces the graphs), and the
ratio Trainer / reference (> 1: the Trainer is faster). Each runs --rounds times (2), in
A-B-B-A order, and the rates pool all rounds.

    python benchmarks/training.py [--faces 1024] [--val 256] [--epochs 3] [--batch-size 64]
                                  [--rounds 2]
    python benchmarks/training.py --smoke      # seconds: 32 faces, 2 epochs (still runs?)
"""
from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from common import add_smoke, parse_args, temporary_folder  # noqa: E402


def reference_loop(arch, train, val, epochs, batch_size, lr, seed, out):
    import keras

    from facekp.core.model.architectures import MaskedRMSE, build_model, masked_rmse

    keras.utils.set_random_seed(seed)
    model = build_model(arch)
    model.compile(optimizer=keras.optimizers.Adam(lr), loss=masked_rmse,
                  metrics=[MaskedRMSE()])
    x = train.images[..., None].astype(np.float32)
    y = train.keypoints
    vx = val.images[..., None].astype(np.float32)
    vy = val.keypoints
    rng = np.random.default_rng(seed)
    epoch_times, batch_spans, best = [], [], math.inf
    for _ in range(epochs):
        t0 = time.perf_counter()
        order = rng.permutation(len(x))
        stamps = []
        for a in range(0, len(x), batch_size):
            idx = order[a:a + batch_size]
            model.train_on_batch(x[idx], y[idx])
            stamps.append(time.perf_counter())
        model.reset_metrics()
        for a in range(0, len(vx), batch_size):
            logs = model.test_on_batch(vx[a:a + batch_size], vy[a:a + batch_size],
                                       return_dict=True)
        val_px = float(logs["rmse_px"])
        model.reset_metrics()
        if val_px < best:
            best = val_px
            model.save(out)
        epoch_times.append(time.perf_counter() - t0)
        batch_spans.append(stamps[-1] - stamps[0])
    return epoch_times, batch_spans, best


def trainer_run(arch, train, val, epochs, batch_size, lr, seed, out):
    from facekp.core.model.train import Trainer
    from facekp.core.model.train_types import TrainConfig, TrainingListener

    class Clock(TrainingListener):
        def __init__(self):
            self.epoch_ends = []
            self.batches = {}

        def on_started(self, info):
            self.start = time.perf_counter()

        def on_batch(self, epoch, batch, loss_px):
            self.batches.setdefault(epoch, []).append(time.perf_counter())

        def on_epoch(self, epoch, train_px, val_px, best, elapsed_s):
            self.epoch_ends.append(time.perf_counter())
            self.last_val = val_px

    clock = Clock()
    cfg = TrainConfig(arch=arch, epochs=epochs, batch_size=batch_size, learning_rate=lr,
                      patience=0, augment=False, complete_only=False, seed=seed)
    result = Trainer(cfg, train, val, out, clock).run()
    if result.reason != "completed":
        raise SystemExit(f"Trainer ended with {result.reason}: {result.message}")
    ends = [clock.start] + clock.epoch_ends
    epoch_times = list(np.diff(ends))
    batch_spans = [clock.batches[e][-1] - clock.batches[e][0] for e in sorted(clock.batches)]
    return epoch_times, batch_spans, result.best_val_rmse_px


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="seed")
    parser.add_argument("--faces", type=int, default=1024, help="training faces")
    parser.add_argument("--val", type=int, default=256, help="validation faces")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=2,
                        help="runs of each, in A-B-B-A order; rates pooled (default 2)")
    add_smoke(parser, faces=32, val=16, epochs=2, batch_size=16, rounds=1)
    args = parse_args(parser)
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (the first epoch traces the graphs)")

    from facekp.core.data import dataset as data
    from facekp.core.resources import DEFAULT_DATASET

    from facekp.core.data import opener as _opener  # the embedded dataset as kaggle15
    faces = _opener.load(DEFAULT_DATASET)
    rng = np.random.default_rng(args.seed)
    complete = faces.split("train").complete()
    train = complete.subset(np.sort(rng.choice(len(complete), min(args.faces, len(complete)),
                                               replace=False)))
    val = faces.split("val")
    val = val.subset(np.arange(min(args.val, len(val))))
    n, e, b = len(train), args.epochs, args.batch_size
    steps = math.ceil(n / b)
    print(f"{args.arch}: {n} training faces ({steps} batches of {b}), {len(val)} validation "
          f"faces, {e} epochs; load average before: {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs", flush=True)

    # Rounds in A-B-B-A order (reference, Trainer, Trainer, reference, ...): on a shared
    # machine whose speed drifts, both then meet the same conditions on average.
    runs = {"reference": [], "Trainer": []}
    with temporary_folder("training") as tmp:
        for k in range(args.rounds):
            order = ("reference", "Trainer") if k % 2 == 0 else ("Trainer", "reference")
            for name in order:
                fn = reference_loop if name == "reference" else trainer_run
                runs[name].append(fn(args.arch, train, val, e, b, args.lr, args.seed,
                                     Path(tmp) / f"{name}-{k}.keras"))
                print(f"  round {k + 1}: {name} done", flush=True)

    def rates(results):
        """Rates over all rounds together (total images / total seconds)."""
        whole = n * (e - 1) * len(results) / sum(sum(r[0][1:]) for r in results)
        batches = (steps - 1) * b * (e - 1) * len(results) / sum(sum(r[1][1:]) for r in results)
        first = n * len(results) / sum(r[0][0] for r in results)
        return whole, batches, first, float(np.mean([r[2] for r in results]))

    ref, trn = runs["reference"], runs["Trainer"]
    r, t = rates(ref), rates(trn)
    print(f"{args.rounds} round(s) of each:")
    print(f"{'':28s}{'reference loop':>16s}{'Trainer':>12s}{'ratio':>8s}")
    rows = [("images/s, whole epochs", 0), ("images/s, training batches", 1),
            ("images/s, first epoch", 2)]
    for label, i in rows:
        print(f"{label:28s}{r[i]:16.1f}{t[i]:12.1f}{t[i] / r[i]:8.2f}")
    print(f"{'val RMSE px at end, mean':28s}{r[3]:16.2f}{t[3]:12.2f}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
