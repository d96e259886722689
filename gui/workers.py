"""Background work for the app: one way to run it, a :class:`Job` handed to :class:`Jobs`.

A job is a function for another thread plus its own ``on_done`` / ``on_failed`` callbacks,
called on the GUI thread; :meth:`Jobs.run` gives it a thread of its own, :meth:`Jobs.submit`
queues it on the TensorFlow engine. Training is the one long job with a thread of its own
kind (:class:`TrainingThread`), because it reports progress as it goes.

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
from collections import Counter
from typing import Any, Callable

from PySide6.QtCore import QObject, QThread, Signal


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
    from facekp.core.errors import FacekpError

    if isinstance(exc, FacekpError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class Job:
    """Work for a background thread and what to do with its outcome.

    ``fn()`` runs off the GUI thread; then exactly one of ``on_done(result)`` or
    ``on_failed(message)`` is called on the GUI thread (a job made stale by a newer
    ``generation`` is dropped without either). Whatever happens, :class:`Jobs` counts the job
    as finished, so the window never waits on a job that died.
    """

    NOW, NORMAL, BACKGROUND = 0, 10, 20

    def __init__(self, name: str, fn: Callable[[], Any], on_done: Callable | None = None,
                 on_failed: Callable[[str], None] | None = None, priority: int = NORMAL,
                 generation: int | None = None):
        self.name, self.fn = name, fn
        self.on_done, self.on_failed = on_done, on_failed
        self.priority, self.generation = priority, generation


def _run_job(job: Job) -> tuple[bool, Any]:
    """(True, result) or (False, one line): any exception, even a BaseException, is caught."""
    try:
        return True, job.fn()
    except BaseException as exc:  # noqa: BLE001  (reported to the window, never lost)
        if not _is_user_error(exc):
            traceback.print_exc()
        return False, describe_error(exc)


class TaskThread(QThread):
    """Runs one :class:`Job` in its own thread (work that needs no TensorFlow)."""

    succeeded = Signal(object, object)   # job, result
    failed = Signal(object, str)         # job, message

    def __init__(self, job: Job, parent=None):
        super().__init__(parent)
        self.job = job

    def run(self) -> None:
        lower_thread_priority()
        ok, value = _run_job(self.job)
        (self.succeeded if ok else self.failed).emit(self.job, value)


def _is_user_error(exc: BaseException) -> bool:
    from facekp.core.errors import FacekpError

    return isinstance(exc, FacekpError)


# --- the engine: TensorFlow, models and predictions, one job at a time --------------------

class EngineThread(QThread):
    """Imports TensorFlow in the background, then runs :class:`Job` s one at a time.

    Jobs run in priority order (lower first), so a single face or a photo is served before
    the remaining chunks of a dataset-wide prediction. A job with a ``generation`` is dropped
    when :meth:`new_generation` has been called since (e.g. the model changed).
    """

    status = Signal(str)
    ready = Signal(object)          # dict: architectures, arch_defaults, train_defaults, ...
    loadFailed = Signal(str)
    jobDone = Signal(object, object)      # job, result
    jobFailed = Signal(object, str)       # job, message
    jobDropped = Signal(object)           # job (stale, or the engine is not there)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._queue: queue.PriorityQueue = queue.PriorityQueue()
        self._seq = itertools.count()
        self._generation = 0
        self._closing = threading.Event()
        self.info: dict | None = None

    # called from the GUI thread
    def submit(self, job: Job) -> None:
        self._queue.put((job.priority, next(self._seq), job))

    @property
    def generation(self) -> int:
        return self._generation

    def new_generation(self) -> int:
        self._generation += 1
        return self._generation

    def shutdown(self) -> None:
        """Skip the queued jobs, finish the running one (or the TensorFlow import), wait."""
        self._closing.set()
        self._queue.put((-1, -1, None))
        self.wait()

    def _stale(self, job: Job) -> bool:
        return job.generation is not None and job.generation != self._generation

    # the thread
    def run(self) -> None:
        """Import TensorFlow, then serve jobs until :meth:`shutdown`."""
        lower_thread_priority()
        try:
            self.status.emit("Loading TensorFlow…")
            self.info = load_engine()
        except BaseException as exc:  # noqa: BLE001
            traceback.print_exc()
            self.loadFailed.emit(describe_error(exc))
            self._drain()
            return
        if self._closing.is_set():
            return
        self.ready.emit(self.info)
        while True:
            job = self._queue.get()[2]
            if self._closing.is_set() or job is None:
                return
            if self._stale(job):
                self.jobDropped.emit(job)
                continue
            ok, value = _run_job(job)
            if not ok:
                self.jobFailed.emit(job, value)
            elif self._stale(job):
                self.jobDropped.emit(job)
            else:
                self.jobDone.emit(job, value)

    def _drain(self) -> None:
        """TensorFlow could not load: every job waiting (and every later one) is dropped."""
        while not self._queue.empty():
            job = self._queue.get()[2]
            if job is not None:
                self.jobDropped.emit(job)


class Jobs(QObject):
    """One way to run background work: :meth:`run` gives a job its own thread, :meth:`submit`
    queues it on the engine (TensorFlow). ``busy`` names the kinds of job not finished yet;
    ``error`` carries the message of a job that failed without its own ``on_failed`` or whose
    callback raised."""

    changed = Signal()
    error = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.pending: Counter[str] = Counter()
        self._threads: set[TaskThread] = set()
        self.engine = EngineThread(self)
        self.engine.jobDone.connect(self._done)
        self.engine.jobFailed.connect(self._failed)
        self.engine.jobDropped.connect(self._dropped)
        self.engine_failed = False
        self.engine.loadFailed.connect(self._engine_failed)

    @property
    def busy(self) -> set[str]:
        return {name for name, n in self.pending.items() if n > 0}

    def run(self, job: Job) -> None:
        self._begin(job)
        thread = TaskThread(job, self)
        self._threads.add(thread)
        thread.succeeded.connect(self._done)
        thread.failed.connect(self._failed)
        thread.finished.connect(lambda t=thread: self._thread_ended(t))
        thread.start()

    def submit(self, job: Job) -> None:
        self._begin(job)
        if self.engine_failed:
            self._dropped(job)
        else:
            self.engine.submit(job)

    def shutdown(self) -> None:
        """Wait for every thread (destroying a running QThread would abort the process)."""
        self.engine.shutdown()
        for thread in list(self._threads):
            thread.wait()

    def _begin(self, job: Job) -> None:
        self.pending[job.name] += 1
        self.changed.emit()

    def _end(self, job: Job) -> None:
        self.pending[job.name] = max(0, self.pending[job.name] - 1)
        self.changed.emit()

    def _call(self, job: Job, callback, value) -> None:
        try:
            if callback is not None:
                callback(value)
        except Exception as exc:  # a bug in a callback: shown, and the job still ends
            traceback.print_exc()
            self.error.emit(f"{job.name}: {describe_error(exc)}")
        finally:
            self._end(job)

    def _done(self, job: Job, result) -> None:
        self._call(job, job.on_done, result)

    def _failed(self, job: Job, message: str) -> None:
        if job.on_failed is None:
            self.error.emit(message)
        self._call(job, job.on_failed, message)

    def _dropped(self, job: Job) -> None:
        self._end(job)

    def _engine_failed(self, _message: str) -> None:
        self.engine_failed = True

    def _thread_ended(self, thread: TaskThread) -> None:
        self._threads.discard(thread)
        thread.deleteLater()


def load_engine() -> dict:
    """Import TensorFlow/Keras and core's model modules; describe what training offers.

    The import creates a great many Python objects that live as long as the process. The
    cyclic garbage collector is paused while they are made and then told to leave them out of
    every later collection (``gc.freeze``): otherwise each full collection, in whichever
    thread triggers it, walks them all while holding the GIL, freezing the window each time.
    """
    import dataclasses
    import gc

    gc.disable()
    try:
        import tensorflow as tf  # noqa: F401  (the slow part)
        import keras

        from facekp.core.model import architectures as core_model
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
        from facekp.core.model import train_types
        info["train_defaults"] = {f.name: f.default for f in dataclasses.fields(train_types.TrainConfig)
                                  if f.default is not dataclasses.MISSING}
    except ImportError as exc:
        info["training"] = f"training is not available in this build ({exc})"
    try:
        from facekp.core.model import predict as _predict  # noqa: F401
    except ImportError as exc:
        info["prediction"] = f"prediction is not available in this build ({exc})"
    return info


# --- training -----------------------------------------------------------------------------

class _Listener:
    """core's TrainingListener protocol -> the thread's signals, batches coalesced."""

    def __init__(self, thread: "TrainingThread"):
        self.thread = thread
        self.buffer: list[tuple[int, int, float]] = []
        self.last_emit = 0.0

    def on_started(self, info):
        self.thread.trainingStarted.emit(dict(info))

    def on_batch(self, epoch, batch, loss_px):
        self.thread.batches_seen += 1
        self.buffer.append((int(epoch), int(batch), float(loss_px)))
        now = time.monotonic()
        if now - self.last_emit >= self.thread.min_interval:
            self.flush(now)

    def flush(self, now=None):
        if self.buffer:
            self.thread.batches.emit(self.buffer)
            self.buffer = []
        self.last_emit = time.monotonic() if now is None else now

    def on_epoch(self, epoch, train_rmse_px, val_rmse_px, best, elapsed_s):
        self.flush()
        self.thread.epochDone.emit({"epoch": int(epoch), "train_rmse_px": _f(train_rmse_px),
                                    "val_rmse_px": _f(val_rmse_px), "best": bool(best),
                                    "elapsed_s": float(elapsed_s)})

    def on_finished(self, result):
        self.flush()

    def on_note(self, text):
        self.thread.status.emit(text[:1].upper() + text[1:] + "…")


class TrainingThread(QThread):
    """Runs core's ``Trainer.run()`` in ``run()``; a listener turns its reports into signals.

    ``stop()`` is safe from any thread: it asks the Trainer to stop after the current batch
    (the best model so far is kept). Per-batch points arrive in lists through ``batches``, at
    most every ``min_interval`` seconds, plus once before every ``epochDone``. When the run
    ends, ``result`` is core's TrainResult (None when training could not start: ``error``
    says why), and the thread lets go of the data, the Trainer and its model.
    """

    status = Signal(str)
    trainingStarted = Signal(object)   # info dict from on_started
    batches = Signal(object)           # list of (epoch, batch, loss_px)
    epochDone = Signal(object)         # dict epoch, train_rmse_px, val_rmse_px, best, elapsed_s
    trainingFinished = Signal(object)  # TrainResult, or None (see ``error``)

    def __init__(self, config: dict, train, val, out, parent=None, min_interval: float = 0.1,
                 fine_tune=None):
        super().__init__(parent)
        self.config = dict(config)
        self.fine_tune = fine_tune      # a model to start from (facekp.core.model.train.Trainer fine_tune)
        self.train_data = train
        self.val_data = val
        self.out = out
        self.min_interval = min_interval
        self._lock = threading.Lock()
        self._trainer = None
        self._stop_requested = False
        self.batches_seen = 0          # raw count of on_batch calls (tests, stats)
        self.batches_at_stop: int | None = None
        self.result = None
        self.error: str | None = None

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
            self.result = self._train()
        except BaseException as exc:  # noqa: BLE001  (bad config, missing module: reported)
            traceback.print_exc(file=sys.stderr)
            self.error = describe_error(exc)
        finally:
            with self._lock:
                self._trainer = None
            self.train_data = self.val_data = None
        self.trainingFinished.emit(self.result)

    def _train(self):
        from facekp.core.model.train import Trainer
        from facekp.core.model.train_types import TrainConfig

        listener = _Listener(self)
        trainer = Trainer(TrainConfig(**self.config), self.train_data, self.val_data,
                          self.out, listener=listener, fine_tune=self.fine_tune)
        with self._lock:
            self._trainer = trainer
            stop_now = self._stop_requested
        if stop_now:
            trainer.stop()
        result = trainer.run()
        listener.flush()
        return result


def _f(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")
