"""Soak: many start/stop training cycles in one process, watching memory: the core Trainer,
and (--app) the real app offscreen, started and stopped from its Training dock.

Each cycle trains a fresh Trainer on a small real subset of the embedded dataset for one
epoch (validation and a best-model checkpoint included) and stops it a batch into the second
epoch, as a person pressing Start then Stop does; then the Trainer is dropped and
``keras.backend.clear_session()`` runs, as the app does between runs.

Printed after every --every (10) cycles: the process's resident memory (RSS, MB), its
operating-system threads and Python threads. At the end: RSS growth from cycle --every to
the last cycle; the target is at most 100 MB over cycles 10 to 50 (exit status 1 above it).

With --app each cycle presses Start training in the real window (QT_QPA_PLATFORM=offscreen),
presses Stop at the first batch of the second epoch, and waits until the run has ended and
the window is idle again (the app then compares the new model and keeps the loaded one);
also printed: the TrainingThread objects alive.

    python benchmarks/soak.py [--cycles 50] [--every 10] [--arch seed] [--faces 64] [--app]
    python benchmarks/soak.py --smoke [--app]   # seconds: 2 cycles of 16 faces (still runs?)
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from common import (add_smoke, exit_status, fail_on_modal_dialogs, os_threads,  # noqa: E402
                    parse_args, private_app_settings, rss_mb, temporary_folder, wait_until)

TARGET_MB = 100


def process_status() -> tuple[float, int]:
    """(RSS in MB, operating-system threads) of this process."""
    return rss_mb(), os_threads()


def one_cycle(arch: str, train, val, out: Path, batch_size: int) -> str:
    """Train until one batch into the second epoch, then stop; the reason it ended."""
    import keras

    from facekp.core.model.train import Trainer
    from facekp.core.model.train_types import TrainConfig, TrainingListener

    steps = -(-len(train) // batch_size)

    class StopInSecondEpoch(TrainingListener):
        def __init__(self):
            self.trainer = None

        def on_batch(self, epoch, batch, loss_px):
            if epoch >= 2:
                self.trainer.stop()

    listener = StopInSecondEpoch()
    cfg = TrainConfig.for_arch(arch, epochs=3, batch_size=batch_size, patience=0,
                               augment=False)
    trainer = Trainer(cfg, train, val, out, listener)
    listener.trainer = trainer
    result = trainer.run()
    if result.reason == "error":
        raise SystemExit(f"cycle failed: {result.message}")
    if result.epochs_run != 1 or steps < 1:
        raise SystemExit(f"cycle ended after {result.epochs_run} epochs, expected 1")
    del trainer, listener
    keras.backend.clear_session()
    gc.collect()
    return result.reason


def app_cycles(args, train, val, tmp: Path) -> dict[int, float]:
    """Start/stop cycles in the real app (offscreen); RSS after every ``args.every``."""
    private_app_settings(tmp)
    from PySide6.QtWidgets import QApplication

    from facekp.core.data import dataset as data
    from facekp.gui.main_window import MainWindow, Options
    from facekp.gui.workers import TrainingThread

    subset = tmp / "subset.npz"
    data.write_npz(train.concat(val), subset)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    window = MainWindow(Options(data=str(subset), remember=False))
    window.ask_switch_model = lambda text: False   # keep the loaded model, no dialog
    fail_on_modal_dialogs(window)                  # any other dialog: exit status 3, no hang

    window.show()
    wait_until(lambda: not window.busy, 300)
    panel, marks, t0 = window.training_panel, {}, time.monotonic()
    for cycle in range(1, args.cycles + 1):
        done = {"v": False}
        config = {"arch": args.arch, "epochs": 3, "batch_size": args.batch_size, "patience": 0}
        if not panel.start(config=config, out=tmp / f"soak-{cycle}.keras"):
            raise SystemExit(f"cycle {cycle}: training did not start ({panel.status.text()})")
        panel.thread.epochDone.connect(lambda *a: panel.stop())
        panel.thread.trainingFinished.connect(lambda r: done.__setitem__("v", True))
        wait_until(lambda: done["v"] and not panel.is_running() and not window.busy, 600)
        gc.collect()
        if cycle % args.every == 0:
            rss, threads = process_status()
            alive = sum(isinstance(o, TrainingThread) for o in gc.get_objects())
            marks[cycle] = rss
            print(f"app cycle {cycle:4d}: RSS {rss:7.0f} MB  threads {threads:3d} (Python "
                  f"{threading.active_count()})  TrainingThread objects {alive}  "
                  f"{time.monotonic() - t0:6.0f} s", flush=True)
    window.close()
    app.processEvents()
    return marks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=50, help="start/stop cycles (default 50)")
    parser.add_argument("--every", type=int, default=10, help="report every N cycles (10)")
    parser.add_argument("--arch", default="seed", help="architecture (default seed)")
    parser.add_argument("--faces", type=int, default=64, help="training faces (default 64)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--app", action="store_true",
                        help="cycles in the real app (offscreen) instead of the core Trainer")
    add_smoke(parser, cycles=2, every=1, faces=16, batch_size=16)
    args = parse_args(parser)
    if args.cycles < args.every or args.every < 1:
        parser.error("--cycles must be at least --every, and --every at least 1")

    from facekp.core.data import dataset as data
    from facekp.core.resources import DEFAULT_DATASET

    from facekp.core.data import opener as _opener  # the embedded dataset as kaggle15
    faces = _opener.load(DEFAULT_DATASET)
    rng = np.random.default_rng(0)
    train = faces.split("train").complete()
    train = train.subset(np.sort(rng.choice(len(train), args.faces, replace=False)))
    val = faces.split("val").subset(np.arange(16))
    rss0, threads0 = process_status()
    print(f"{args.arch}: {args.cycles} cycles of {len(train)} training and {len(val)} "
          f"validation faces; before: RSS {rss0:.0f} MB, {threads0} threads", flush=True)
    marks: dict[int, float] = {}
    t0 = time.monotonic()
    with temporary_folder("soak") as tmp:
        if args.app:
            marks.update(app_cycles(args, train, val, Path(tmp)))
        for cycle in range(1, args.cycles + 1 if not args.app else 1):
            one_cycle(args.arch, train, val, Path(tmp) / "soak.keras", args.batch_size)
            if cycle % args.every == 0:
                rss, threads = process_status()
                marks[cycle] = rss
                print(f"cycle {cycle:4d}: RSS {rss:7.0f} MB  threads {threads:3d} (Python "
                      f"{threading.active_count()})  {time.monotonic() - t0:6.0f} s",
                      flush=True)
    first, last = min(marks), max(marks)
    growth = marks[last] - marks[first]
    print(f"RSS growth from cycle {first} to {last}: {growth:+.0f} MB (target <= {TARGET_MB} "
          f"MB over cycles 10 to 50)")
    return exit_status(growth <= TARGET_MB * (last - first) / 40, args)


if __name__ == "__main__":
    sys.exit(main())
