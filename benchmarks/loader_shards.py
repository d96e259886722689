"""Training from TFRecord shards against training from the .npz, on the same faces.

Makes a dataset K times the embedded one (``--times``, 10) by repeating its faces (every copy
keeps its person and split, so the splits stay by person), writes it once as an .npz and once
as shards (``--shards`` files per split, 8), then in a fresh Python process for each opens it
the way ``facekp train --data`` does (the .npz read into memory by ``facekp.core.data.dataset.load``
and shuffled whole; the shards opened by ``facekp.core.data.shards.open_shards`` and streamed),
builds the Trainer's own pipeline (``facekp.core.model.pipeline.pipeline``, the architecture's batch
size, augmentation and complete-faces rule) and trains ``--arch`` (seed) for two epochs of
``--steps`` batches (40): the first warms up (traces the graphs, fills the shuffle buffer), the
second is timed. Rounds (``--repeat``, 1) alternate which goes first.

Each child reports training images/s over the timed epoch's batches and its peak resident
memory (``ru_maxrss``), with the resident memory after its imports (the same for both).
Printed: the medians and the ratios shards / .npz, with the targets (images/s >= 0.9x, peak
memory below the .npz path's).

    python benchmarks/loader.py shards [--times 10] [--steps 40] [--repeat 1] [--arch seed]
    python benchmarks/loader.py shards --smoke    # seconds: 256 faces, 2 batches (still runs?)
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import (ROOT, add_smoke, exit_status, parse_args, peak_rss_mb,  # beside this script
                    rss_mb, temporary_folder)


def make_data(folder: Path, times: int, shards: int,
              sample: int | None = None) -> tuple[Path, Path, int]:
    """The embedded dataset (or ``sample`` faces of it drawn at random) repeated ``times``
    times, as an .npz and as shards."""
    import numpy as np

    from facekp.core.data import dataset as data
    from facekp.core.data.shards import write_shards
    from facekp.core.resources import DEFAULT_DATASET

    from facekp.core.data import opener as _opener  # the embedded dataset as kaggle15
    faces = _opener.load(DEFAULT_DATASET)
    if sample is not None and sample < len(faces):
        rng = np.random.default_rng(0)
        faces = faces.subset(np.sort(rng.choice(len(faces), sample, replace=False)))
    idx = np.tile(np.arange(len(faces)), times)
    big = faces.subset(idx)
    big.names = np.char.add(big.names, np.repeat([f"#{k}" for k in range(times)], len(faces)))
    npz, folder_out = folder / "faces.npz", folder / "faces-shards"
    data.write_npz(big, npz)
    write_shards(big, folder_out, shards)
    return npz, folder_out, len(big)


def child(which: str, path: str, arch: str, steps: int) -> None:
    """Open the data as ``facekp train --data`` does and train from the Trainer's own
    pipeline (``facekp.core.model.pipeline.pipeline``) for two epochs of ``steps`` batches; print one
    JSON line: images/s over the second epoch's batches, peak RSS."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    from facekp.core.data import dataset as data
    from facekp.core.data import opener
    from facekp.core.model.architectures import MaskedRMSE, build_model, masked_rmse
    from facekp.core.data.shards import open_shards
    from facekp.core.model.pipeline import pipeline
    from facekp.core.model.train_types import TrainConfig

    before = rss_mb()
    config = TrainConfig.for_arch(arch).resolved()
    source = open_shards(path) if which == "shards" else opener.load(path)
    train, _, _ = data.training_splits(source)
    train = train.complete() if config.complete_only else train
    pipeline = pipeline(train, config.batch_size, shuffle=True, seed=0,
                         augment=config.augment_strength if config.augment else 0.0,
                         repeat=True, preset=config.augment_preset)
    keras.utils.set_random_seed(0)
    model = build_model(arch)
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=masked_rmse,
                  metrics=[MaskedRMSE()])

    class Clock(keras.callbacks.Callback):
        stamps: list[float] = []

        def on_train_batch_end(self, batch, logs=None):
            if getattr(self, "epoch", 0) == 1:
                self.stamps.append(time.perf_counter())

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

    clock = Clock()
    model.fit(pipeline, epochs=2, steps_per_epoch=steps, callbacks=[clock], verbose=0)
    peak = peak_rss_mb()
    span = clock.stamps[-1] - clock.stamps[0]
    print(json.dumps({"images_s": (len(clock.stamps) - 1) * config.batch_size / span,
                      "peak_mb": peak, "before_mb": before, "train_faces": len(train)}))


def run_child(which: str, path: Path, args) -> dict:
    cmd = [sys.executable, __file__, "--child", which, str(path), "--arch", args.arch,
           "--steps", str(args.steps)]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if res.returncode != 0:
        sys.exit(f"{which} training failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--times", type=int, default=10, help="copies of the embedded dataset")
    p.add_argument("--shards", type=int, default=8, help="shard files per split")
    p.add_argument("--steps", type=int, default=40,
                   help="batches timed (after as many that warm up)")
    p.add_argument("--arch", default="seed")
    p.add_argument("--repeat", type=int, default=1, help="rounds (medians over them)")
    p.add_argument("--sample", type=int, default=None,
                   help="faces of the embedded dataset drawn at random (default: all)")
    p.add_argument("--child", nargs=2, metavar=("WHICH", "PATH"), help=argparse.SUPPRESS)
    add_smoke(p, times=1, sample=256, shards=2, steps=2, repeat=1)
    args = parse_args(p, argv)
    if args.child:
        child(*args.child, args.arch, args.steps)
        return 0
    if args.steps < 2:
        p.error("--steps must be 2 or more")
    with temporary_folder("shards") as tmp:
        t0 = time.perf_counter()
        npz, folder, n = make_data(Path(tmp), args.times, args.shards, args.sample)
        size = sum(f.stat().st_size for f in folder.iterdir()) / 1e6
        source = f"{args.sample} faces of " if args.sample else ""
        print(f"{n} faces ({args.times} x {source}the embedded dataset) written as {npz.name} "
              f"({npz.stat().st_size / 1e6:.0f} MB) and as {args.shards} shards per split "
              f"({size:.0f} MB) in {time.perf_counter() - t0:.0f} s", flush=True)
        runs: dict[str, list[dict]] = {"npz": [], "shards": []}
        for r in range(args.repeat):
            order = ("npz", "shards") if r % 2 == 0 else ("shards", "npz")
            for which in order:
                res = run_child(which, npz if which == "npz" else folder, args)
                runs[which].append(res)
                print(f"run {r + 1} {which:6s}: {res['images_s']:6.1f} images/s, peak RSS "
                      f"{res['peak_mb']:7.1f} MB (after imports {res['before_mb']:.1f} MB), "
                      f"{res['train_faces']} training faces", flush=True)
    return report(runs, args)


def report(runs: dict[str, list[dict]], args) -> int:
    def med(which, key):
        return statistics.median(r[key] for r in runs[which])

    speed = med("shards", "images_s") / med("npz", "images_s")
    m_npz, m_sh = med("npz", "peak_mb"), med("shards", "peak_mb")
    b_npz, b_sh = med("npz", "before_mb"), med("shards", "before_mb")
    print(f"medians over {args.repeat} round(s), {args.arch}, {args.steps} batches timed:")
    print(f"  training images/s  npz {med('npz', 'images_s'):7.1f}   shards "
          f"{med('shards', 'images_s'):7.1f}   ratio shards/npz {speed:.3f}  (target >= 0.9)")
    print(f"  peak RSS           npz {m_npz:7.1f} MB  shards {m_sh:7.1f} MB  ratio "
          f"shards/npz {m_sh / m_npz:.3f}  (target < 1)")
    print(f"  peak RSS above the after-imports baseline: npz {m_npz - b_npz:7.1f} MB  shards "
          f"{m_sh - b_sh:7.1f} MB")
    ok = speed >= 0.9 and m_sh < m_npz
    print("targets met" if ok else "TARGET MISSED")
    return exit_status(ok, args)


if __name__ == "__main__":
    sys.exit(main())
