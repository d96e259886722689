"""Background work for the app: QThread subclasses that run core's work and report by signals.

Rules that keep the window responsive and the process safe (see the design guide):
- Each worker is a QThread *subclass* whose signals live on the object (in the GUI thread);
  ``run()`` does the work and emits. Receivers are slots of GUI-thread objects, so Qt queues
  every emission onto the GUI thread.
- Nothing here touches widgets.
- TensorFlow is imported by :class:`EngineThread` in the background, never by the GUI thread
  before the engine reports ready.
- Training progress is coalesced: per-batch points are buffered and sent at most every
  ``min_interval`` seconds (and at each epoch end), so a fast training loop cannot flood the
  GUI's event queue.
"""
from __future__ import annotations

import itertools
import os
import queue
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

from PySide6.QtCore import QThread, Signal


#: Background threads (engine, training, tasks) run this much "nicer" than the GUI thread on
#: Linux, so a busy CPU still serves the interface first. Threads they start (TensorFlow's
#: thread pools, tf.data) inherit it. FACEKP_GUI_NICE overrides it (0: off).
BACKGROUND_NICE = int(os.environ.get("FACEKP_GUI_NICE", "5") or 0)


def lower_thread_priority(nice: int = BACKGROUND_NICE) -> None:
    """Make the calling thread (and the threads it starts) yield the CPU to the GUI thread."""
    if not sys.platform.startswith("linux") or nice <= 0:
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, max(os.getpriority(os.PRIO_PROCESS, tid), nice))
    except (AttributeError, OSError):
        pass


def describe_error(exc: BaseException) -> str:
    """One line for a person: core's own errors as they are, anything else with its type."""
    from core.errors import FacekpError

    if isinstance(exc, FacekpError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class TaskThread(QThread):
    """Runs ``fn(progress)`` once in a thread; ``progress(done, total)`` is rate-limited."""

    progress = Signal(int, int)
    succeeded = Signal(object)
    failed = Signal(str)

    def __init__(self, fn: Callable[[Callable[[int, int], None]], Any], parent=None,
                 min_interval: float = 0.1):
        super().__init__(parent)
        self._fn = fn
        self._min_interval = min_interval
        self._last = 0.0
        self.result: Any = None
        self.error: str | None = None

    def _report(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or now - self._last >= self._min_interval:
            self._last = now
            self.progress.emit(int(done), int(total))

    def run(self) -> None:
        lower_thread_priority()
        try:
            self.result = self._fn(self._report)
        except Exception as exc:  # reported to the user as one line
            if not _is_user_error(exc):
                traceback.print_exc()
            self.error = describe_error(exc)
            self.failed.emit(self.error)
        else:
            self.succeeded.emit(self.result)


def _is_user_error(exc: BaseException) -> bool:
    try:
        from core.errors import FacekpError
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, FacekpError)


# --- the engine: TensorFlow, models and predictions, one job at a time --------------------

@dataclass(order=True)
class _Job:
    priority: int
    seq: int
    kind: str = field(compare=False)
    fn: Callable = field(compare=False)
    token: Any = field(compare=False, default=None)
    generation: int | None = field(compare=False, default=None)


class EngineThread(QThread):
    """Imports TensorFlow in the background, then runs model jobs one at a time.

    Jobs are ``fn(progress) -> result`` callables with a priority (lower first), so a single
    image or a photo is served before the remaining chunks of a dataset-wide prediction.
    A job submitted with a ``generation`` is skipped when :meth:`new_generation` has been
    called since (e.g. the model changed), which is how stale predictions are cancelled.
    """

    status = Signal(str)
    ready = Signal(object)          # dict: architectures, arch_defaults, train_defaults, ...
    loadFailed = Signal(str)
    jobProgress = Signal(str, object, int, int)   # kind, token, done, total
    jobDone = Signal(str, object, object)         # kind, token, result
    jobFailed = Signal(str, object, str)          # kind, token, message

    PRIORITY_NOW = 0
    PRIORITY_NORMAL = 10
    PRIORITY_BACKGROUND = 20

    def __init__(self, parent=None):
        super().__init__(parent)
        self._queue: queue.PriorityQueue[_Job] = queue.PriorityQueue()
        self._seq = itertools.count()
        self._generation = 0
        self._closing = threading.Event()
        self.info: dict | None = None
        self.lock = threading.Lock()  # held while a job runs

    # called from the GUI thread
    def submit(self, kind: str, fn: Callable, token: Any = None,
               priority: int = PRIORITY_NORMAL, generation: int | None = None) -> None:
        if self._closing.is_set():
            return
        self._queue.put(_Job(priority, next(self._seq), kind, fn, token, generation))

    @property
    def generation(self) -> int:
        return self._generation

    def new_generation(self) -> int:
        self._generation += 1
        return self._generation

    def shutdown(self) -> None:
        """Skip the queued jobs, finish the running one (or the TensorFlow import), wait."""
        self._closing.set()
        self._queue.put(_Job(-1, -1, "quit", lambda progress: None))
        self.wait()

    # the thread
    def run(self) -> None:
        lower_thread_priority()
        try:
            self.status.emit("Loading TensorFlow…")
            self.info = load_engine()
        except Exception as exc:
            traceback.print_exc()
            self.loadFailed.emit(describe_error(exc))
            return
        if self._closing.is_set():
            return
        self.ready.emit(self.info)
        while True:
            job = self._queue.get()
            if self._closing.is_set() or job.kind == "quit":
                return
            if job.generation is not None and job.generation != self._generation:
                continue

            def progress(done: int, total: int, _job=job) -> None:
                self.jobProgress.emit(_job.kind, _job.token, int(done), int(total))

            try:
                with self.lock:
                    result = job.fn(progress)
            except Exception as exc:
                if not _is_user_error(exc):
                    traceback.print_exc()
                self.jobFailed.emit(job.kind, job.token, describe_error(exc))
            else:
                if job.generation is not None and job.generation != self._generation:
                    continue
                self.jobDone.emit(job.kind, job.token, result)


def load_engine() -> dict:
    """Import TensorFlow/Keras and core's model modules; describe what training offers.

    The import creates some 300,000 Python objects that live as long as the process. The
    cyclic garbage collector is paused while they are made and then told to leave them out of
    every later collection (``gc.freeze``): otherwise each full collection, in whichever
    thread triggers it, walks them all while holding the GIL, freezing the window for a few
    hundred milliseconds each time.
    """
    import dataclasses
    import gc

    gc.disable()
    try:
        import tensorflow as tf  # noqa: F401  (the slow part)
        import keras

        from core import model as core_model
    finally:
        gc.enable()
        gc.freeze()

    info: dict[str, Any] = {
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "architectures": sorted(core_model.ARCHITECTURES),
        "arch_defaults": {k: dict(v) for k, v in core_model.ARCH_DEFAULTS.items()},
        "train_defaults": {},
        "training": None,       # None = available; else why not
        "prediction": None,
    }
    try:
        from core import train as core_train
        info["train_defaults"] = {f.name: f.default for f in dataclasses.fields(core_train.TrainConfig)
                                  if f.default is not dataclasses.MISSING}
    except ImportError as exc:
        info["training"] = f"training is not available in this build ({exc})"
    try:
        from core import predict as _predict  # noqa: F401
    except ImportError as exc:
        info["prediction"] = f"prediction is not available in this build ({exc})"
    return info


# --- training -----------------------------------------------------------------------------

class TrainingThread(QThread):
    """Runs core's ``Trainer.run()`` in ``run()``; a TrainingListener adapter emits signals.

    ``stop()`` is safe from any thread: it asks the Trainer to stop after the current batch
    (the best model so far is kept). Per-batch points arrive in lists through ``batches``, at
    most every ``min_interval`` seconds, plus once before every ``epochDone``.
    """

    status = Signal(str)
    trainingStarted = Signal(object)   # info dict from on_started
    batches = Signal(object)           # list of (epoch, batch, loss_px)
    epochDone = Signal(object)         # dict epoch, train_rmse_px, val_rmse_px, best, elapsed_s
    trainingFinished = Signal(object)  # TrainResult (or a stand-in with reason "error")

    def __init__(self, config: dict, train, val, out, resume=None, parent=None,
                 min_interval: float = 0.1):
        super().__init__(parent)
        self.config = dict(config)
        self.train_data = train
        self.val_data = val
        self.out = out
        self.resume = resume
        self.min_interval = min_interval
        self._lock = threading.Lock()
        self._trainer = None
        self._stop_requested = False
        self.batches_seen = 0          # raw count of on_batch calls (tests, stats)
        self.batches_at_stop: int | None = None
        self.result = None

    def stop(self) -> None:
        with self._lock:
            if self._stop_requested:
                return
            self._stop_requested = True
            self.batches_at_stop = self.batches_seen
            trainer = self._trainer
        if trainer is not None:
            trainer.stop()

    @property
    def stop_requested(self) -> bool:
        return self._stop_requested

    def run(self) -> None:
        lower_thread_priority()
        self.status.emit("Preparing training: loading TensorFlow and building the model…")
        try:
            from core.train import TrainConfig, Trainer, TrainingListener

            thread = self

            class Adapter(TrainingListener):
                def __init__(self):
                    self.buffer: list[tuple[int, int, float]] = []
                    self.last_emit = 0.0

                def on_started(self, info):
                    thread.trainingStarted.emit(dict(info))

                def on_batch(self, epoch, batch, loss_px):
                    thread.batches_seen += 1
                    self.buffer.append((int(epoch), int(batch), float(loss_px)))
                    now = time.monotonic()
                    if now - self.last_emit >= thread.min_interval:
                        self.flush(now)

                def flush(self, now=None):
                    if self.buffer:
                        thread.batches.emit(self.buffer)
                        self.buffer = []
                    self.last_emit = time.monotonic() if now is None else now

                def on_epoch(self, epoch, train_rmse_px, val_rmse_px, best, elapsed_s):
                    self.flush()
                    thread.epochDone.emit({"epoch": int(epoch),
                                           "train_rmse_px": _f(train_rmse_px),
                                           "val_rmse_px": _f(val_rmse_px),
                                           "best": bool(best), "elapsed_s": float(elapsed_s)})

                def on_finished(self, result):
                    self.flush()

            adapter = Adapter()
            trainer = Trainer(TrainConfig(**self.config), self.train_data, self.val_data,
                              self.out, listener=adapter, resume=self.resume)
            with self._lock:
                self._trainer = trainer
                stop_now = self._stop_requested
            if stop_now:
                trainer.stop()
            result = trainer.run()
            adapter.flush()
        except Exception as exc:  # bad config, missing module: reported, never raised
            traceback.print_exc(file=sys.stderr)
            result = FailedTraining(describe_error(exc))
        self.result = result
        self.trainingFinished.emit(result)


def _f(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


@dataclass
class FailedTraining:
    """Stands in for a TrainResult when training could not even start."""
    message: str
    reason: str = "error"
    best_epoch: int | None = None
    best_val_rmse_px: float | None = None
    epochs_run: int = 0
    model_path: Any = None
    history: list = field(default_factory=list)
