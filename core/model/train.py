"""Training: a :class:`Trainer` runs Keras ``fit`` over ``tf.data`` pipelines and reports its
progress through a small plain-Python protocol (:class:`TrainingListener`, in
:mod:`facekp.core.model.train_types`) that the command line and the GUI both use.

- Training data (:mod:`facekp.core.model.pipeline`): shuffled every epoch, batched, cast to
  float32, optionally augmented (:mod:`facekp.core.model.augment`), prefetched.
- Validation RMSE in pixels (:class:`facekp.core.model.architectures.MaskedRMSE`) after every
  epoch (:mod:`facekp.core.model.callbacks`); the best model is saved as ``.keras`` whenever it
  improves, atomically, with the run's record inside (:mod:`facekp.core.model.checkpoints`).
  Early stopping after ``patience`` epochs without improvement; at the end the model in memory
  holds the best weights, as the file does.
- :meth:`Trainer.stop` (any thread) ends training after the current batch; the best model
  saved so far stays on disk.
- Runs under a ``tf.distribute`` strategy: the default one on a single device,
  ``MirroredStrategy`` when several GPUs are visible (or the strategy passed in, e.g. a
  ``MultiWorkerMirroredStrategy`` from :func:`facekp.core.model.cluster.make_strategy`). With
  several workers, ``batch_size`` is per worker, each worker trains on its own shard of the
  faces, only the chief writes the model, and stop decisions are all-reduced so that every
  worker leaves training at the same batch (:mod:`facekp.core.model.multiworker` holds the
  Keras workaround that needs). Memory hygiene between runs: :mod:`facekp.core.model.memory`.

Epochs and batches are 1-based in the protocol. Every figure is in pixels of the 96x96 crop.
"""
from __future__ import annotations

import contextlib
import math
import threading
from dataclasses import dataclass, field
from pathlib import Path

from facekp.core.data.dataset import Dataset
from facekp.core.errors import FacekpError
from facekp.core.fileio import check_writable, remove_stale_partials
from facekp.core.model.checkpoints import Checkpointer, read_record, record_path
from facekp.core.model.cluster import any_worker, default_strategy, is_chief, workers
from facekp.core.model.memory import released_custom_gradients, return_freed_memory
from facekp.core.model.multiworker import fit_across_workers
from facekp.core.model.callbacks import make_callback
from facekp.core.model.pipeline import optimizer, training_datasets
from facekp.core.model.train_types import (
    StopRequested, TrainConfig, TrainingListener, TrainResult, finite_or_none,
)

# --- the trainer --------------------------------------------------------------------------

class Trainer:
    """Trains ``config.arch`` on ``train``, validating on ``val``, saving the best to ``out``.

    ``train``, ``val``: a :class:`facekp.core.data.dataset.Dataset` (in memory) or streamed
    faces (:class:`facekp.core.data.shards.ShardSplit`), labelled in one keypoint set (the
    model's outputs are sized from it and its record names it). ``config.complete_only``
    keeps the training faces with all their keypoints; validation uses every face (missing keypoints masked).
    ``resume``: a ``.keras`` model saved by a Trainer (or any compatible model): training goes
    on from its weights and optimizer state, at the epoch after the one it was saved at (read
    from its training record when there is one). ``fine_tune``: a ``.keras`` model whose
    weights training starts from, with a fresh optimizer of ``config`` and ``config.epochs``
    epochs counted from 1; the first epoch's model is kept as the best so far, so a run always
    leaves a fine-tuned model to compare with the one it started from. ``strategy``: a
    ``tf.distribute`` strategy (default: :func:`facekp.core.model.cluster.default_strategy`).
    ``fit_confidence``: fit a keypoint confidence head for the model written.
    """

    def __init__(self, config: TrainConfig, train: Dataset, val: Dataset, out: str | Path,
                 listener: TrainingListener | None = None, resume: str | Path | None = None,
                 strategy=None, fine_tune: str | Path | None = None,
                 fit_confidence: bool = True):
        self.config = config.resolved()
        self.fit_confidence = fit_confidence
        self.train_data, self.val_data = train, val
        self.out = Path(out)
        if self.out.suffix != ".keras":
            raise ValueError(f"{self.out}: a model file name must end in .keras")
        self.listener = listener or TrainingListener()
        self.resume = None if resume is None else Path(resume)
        self.fine_tune = None if fine_tune is None else Path(fine_tune)
        if self.resume is not None and self.fine_tune is not None:
            raise ValueError("resume and fine_tune exclude each other: give one model")
        self.strategy = strategy
        self.model = None
        self._chief, self._workers = True, 1  # set from the strategy when the run starts
        self._stop = threading.Event()
        self._writing = threading.Event()

    def stop(self) -> None:
        """Ask training to end after the current batch (thread-safe, returns at once)."""
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    @property
    def writes_model(self) -> bool:
        """This process writes the model: False on the other workers of a multi-worker run
        (known once the run has started)."""
        return self._chief

    @property
    def writing(self) -> bool:
        """A model file is being written now (a Ctrl+C handler must not interrupt it)."""
        return self._writing.is_set()

    def run(self) -> TrainResult:
        """Train (blocking). Never raises for training problems: they end with reason
        "error" and a message. ``listener.on_finished`` is called with the result."""
        self._state = _RunState()
        try:
            with released_custom_gradients():
                result = self._run()
        except StopRequested:
            result = self._result("stopped", "stopped by the user")
        except FacekpError as exc:
            result = self._result("error", str(exc))
        except KeyboardInterrupt:  # abort at once, but never in the middle of a model write
            if self._state.checkpointer is not None:
                with contextlib.suppress(Exception):
                    self._state.checkpointer.wait()
            raise
        except Exception as exc:  # a training failure must reach the caller as a result
            result = self._result("error", _explain(exc, (self.train_data, self.val_data)))
        if result.model_path is not None:
            _fit_confidence_head(self, result)
        # A caller may keep the Trainer (a finished job in the app): let it hold the trained
        # model only, not the checkpoint copy of the model and the best weights as well.
        if self._state.checkpointer is not None:
            self._state.checkpointer.shadow = None
        self._state.best_weights = None
        return_freed_memory()
        self.listener.on_finished(result)
        return result

    def _stop_agreed(self) -> bool:
        """Stop now? This run's request; with several workers, any worker's request, so that
        they all leave training at the same batch (every worker asks at the same points)."""
        if self._workers == 1:
            return self._stop.is_set()
        return any_worker(self._strategy, self._stop.is_set())

    def _result(self, reason: str, message: str) -> TrainResult:
        s = self._state
        if s.checkpointer is not None:
            try:
                s.checkpointer.wait()  # the last best model is on disk before we report
            except Exception as exc:
                reason, message = "error", f"the model could not be saved to {self.out}: {exc}"
        if s.best_weights is not None and self.model is not None:
            with contextlib.suppress(Exception):  # the file on disk is what counts
                self.model.set_weights(s.best_weights)
        return TrainResult(reason=reason, message=message, best_epoch=s.best_epoch,
                           best_val_rmse_px=s.best_val, epochs_run=s.last_epoch,
                           model_path=self.out if s.saved else None, history=list(s.history))

    def _run(self) -> TrainResult:
        import keras

        cfg, s = self.config, self._state
        train = self.train_data.complete() if cfg.complete_only else self.train_data
        val = self.val_data
        strategy = self._strategy = self.strategy or default_strategy()
        self._chief, self._workers = is_chief(strategy), workers(strategy)
        _check_before_training(self, train, val)
        # Each worker trains on its own share of the faces (as many on each), batch_size at a
        # time: together one step averages the gradients of batch_size x workers faces.
        shared = len(train) // self._workers * self._workers
        steps = math.ceil(shared / self._workers / cfg.batch_size)
        keras.utils.set_random_seed(cfg.seed)
        model, initial_epoch, arch = _compiled_model(self, steps, strategy)
        if self._workers > 1:
            fit_across_workers(model, strategy)
        self.model = model
        train_ds, val_ds = training_datasets(train, val, cfg, self._workers, strategy)
        s.base_record = _base_record(self, arch, model, train, val)
        s.checkpointer = Checkpointer(self)
        if self.resume is not None:
            _start_from_resumed(self, model, val_ds, initial_epoch)
        self.listener.on_started({
            "epochs": cfg.epochs, "steps_per_epoch": steps, "train_faces": len(train),
            "val_faces": len(val), "arch": arch, "initial_epoch": initial_epoch,
            "config": cfg.as_dict(), "workers": self._workers})
        callback = make_callback(self, shared, cfg.batch_size * self._workers)
        if initial_epoch >= cfg.epochs:
            return self._result("completed", f"already trained for {initial_epoch} epochs")
        # One training iterator for the whole fit (a new one per epoch cost time at every
        # epoch's start); the pipeline reshuffles each pass itself.
        model.fit(train_ds, validation_data=val_ds, epochs=cfg.epochs, steps_per_epoch=steps,
                  initial_epoch=initial_epoch, callbacks=[callback], shuffle=False, verbose=0)
        if callback.early_stopped:
            return self._result("early_stop", f"validation RMSE did not improve for "
                                              f"{cfg.patience} epochs")
        return self._result("completed", f"trained for {cfg.epochs} epochs")

    def _record(self) -> dict:
        s = self._state
        return dict(s.base_record, best_epoch=s.best_epoch,
                    best_val_rmse_px=finite_or_none(s.best_val), history=list(s.history))


# --- the steps of a run -------------------------------------------------------------------

def _check_before_training(trainer: Trainer, train: Dataset, val: Dataset) -> None:
    """Data to train and validate on, an output that can be written (found now, not at the
    first checkpoint), and no temporary files left there by a killed run."""
    if val.keypoint_set != train.keypoint_set:
        raise FacekpError(f"the training faces hold keypoint set {train.keypoint_set.name!r} "
                          f"and the validation faces {val.keypoint_set.name!r}; train and "
                          "validate on one set")
    if len(train) == 0:
        what = (f"faces with all {train.keypoint_set.size} keypoints"
                if trainer.config.complete_only else "faces")
        raise FacekpError(f"no training {what}")
    if len(val) == 0 or val.labelled == 0:
        raise FacekpError("no labelled validation faces (validation RMSE decides which "
                          "model is kept)")
    if trainer._chief:  # the other workers of a multi-worker run never write there
        check_writable(trainer.out)
        for path in (trainer.out, record_path(trainer.out)):
            remove_stale_partials(path)
    if trainer.stop_requested:
        raise StopRequested


def _compiled_model(trainer: Trainer, steps: int, strategy):
    """(model, initial epoch, architecture name): a new model, or the resumed one with its
    optimizer state (a fresh optimizer, said in a note, when it was saved without)."""
    from facekp.core.model.architectures import MaskedRMSE, build_model, masked_rmse

    cfg = trainer.config
    initial_epoch, arch = 0, cfg.arch
    with strategy.scope():
        if trainer.resume is not None:
            _check_model_set(trainer.resume, trainer.train_data.keypoint_set)
            model = _load_for_training(trainer.resume)
            record = read_record(trainer.resume) or {}
            initial_epoch = int(record.get("best_epoch") or 0)
            arch = record.get("arch") or model.name
            trainer._state.history = [h for h in record.get("history", [])
                                      if h.get("epoch", 0) <= initial_epoch]
            opt = getattr(model, "optimizer", None)
            if opt is None:
                trainer.listener.on_note(f"{trainer.resume} holds no optimizer state; "
                                         "training goes on from its weights with a fresh "
                                         "optimizer")
                opt = optimizer(cfg, steps)
        elif trainer.fine_tune is not None:
            from facekp.core.model.predict import load_model

            _check_model_set(trainer.fine_tune, trainer.train_data.keypoint_set)
            model = load_model(trainer.fine_tune)
            arch = (read_record(trainer.fine_tune) or {}).get("arch") or model.name
            opt = optimizer(cfg, steps)
        else:
            model = build_model(cfg.arch, trainer.train_data.keypoint_set.size)
            opt = optimizer(cfg, steps)
        model.compile(optimizer=opt, loss=masked_rmse, metrics=[MaskedRMSE()])
    return model, initial_epoch, arch


def _check_model_set(path: Path, keypoint_set) -> None:
    """A model to go on training predicts the faces' keypoint set; one line naming both
    sets otherwise."""
    from facekp.core.model.predict import model_keypoint_set

    have = model_keypoint_set(path)
    if have != keypoint_set:
        raise FacekpError(f"{path} predicts keypoint set {have.name!r} ({have.size} points) "
                          f"and the faces hold {keypoint_set.name!r} ({keypoint_set.size} "
                          "points); train it on faces of its own set, or train a new model")


def _base_record(trainer: Trainer, arch: str, model, train, val) -> dict:
    """What the training record says of the run whatever its epochs bring."""
    cfg, data = trainer.config, trainer.train_data
    record = {"arch": arch, "model": model.name, "config": cfg.as_dict(),
              "keypoint_set": train.keypoint_set.to_dict(),
              "train_faces": len(train), "val_faces": len(val),
              "data": data.meta.get("source") or data.meta.get("imported_from")}
    if trainer._workers > 1:
        record.update(workers=trainer._workers,
                      global_batch_size=cfg.batch_size * trainer._workers)
    if trainer.fine_tune is not None:
        record["fine_tuned_from"] = str(trainer.fine_tune)
    if trainer.resume is not None:
        record["resumed_from"] = str(trainer.resume)
    return record


def _start_from_resumed(trainer: Trainer, model, val_ds, initial_epoch: int) -> None:
    """A resumed model is the best so far: validated now, and written to ``out`` when that is
    another file."""
    s = trainer._state
    logs = model.evaluate(val_ds, verbose=0, return_dict=True)
    s.best_val = float(logs["rmse_px"])
    s.best_epoch = s.last_epoch = initial_epoch
    s.best_weights = model.get_weights()
    if trainer.out.resolve() != trainer.resume.resolve():
        s.checkpointer.save_now(model)
    else:
        s.saved = True


def _explain(exc: Exception, parts) -> str:
    """A failure's message. A stream's unreadable record is traced to its file by reading the
    streamed files again (``check``, which names the corrupt one)."""
    if type(exc).__name__ in ("DataLossError", "InvalidArgumentError",
                              "FailedPreconditionError"):  # a file's count is not its index's
        for part in parts:
            try:
                getattr(part, "check", lambda: None)()
            except FacekpError as found:
                return str(found)
    return f"{type(exc).__name__}: {exc}"


def _fit_confidence_head(trainer: Trainer, result: TrainResult) -> None:
    """Beside the model this run wrote, a keypoint confidence head fitted for it
    (:func:`facekp.core.model.confidence.fit_for_predictor`: on the training faces, calibrated
    on the validation faces), so that a trained or fine-tuned model says how sure it is of
    each point as the shipped one does. A run that was stopped (also after its last epoch) or
    failed, or trained from a stream, fits none, nor one whose stop is asked during the fit;
    then a head left beside ``out`` by the model this run replaced is removed (it belongs to
    another model). The chief alone writes; a failure is a note, never a failed run."""
    from facekp.core.model.confidence import fit_for_predictor, head_path
    from facekp.core.model.predict import Predictor

    out, train, val = trainer.out, trainer.train_data, trainer.val_data
    path = head_path(out)
    if not trainer.writes_model or not out.is_file():
        return
    in_memory = all(hasattr(d, "images") for d in (train, val))
    fit = (trainer.fit_confidence and in_memory and not trainer.stop_requested
           and result.reason in ("completed", "early_stop"))
    try:
        if not fit:
            path.unlink(missing_ok=True)
            return
        trainer.listener.on_note(f"fitting the keypoint confidence head ({path.name})")
        head = fit_for_predictor(Predictor(out, confidence=None), train, val, info={
            "fitted_on": f"training faces ({len(train)})",
            "calibrated_on": f"validation faces ({len(val)})",
            "fitted_by": "facekp.core.model.train.Trainer"},
            stop=lambda: trainer.stop_requested)
        head.save(path)
    except StopRequested:              # Stop ends the fit too; the model stays as it is
        path.unlink(missing_ok=True)
        trainer.listener.on_note(f"stopped: no keypoint confidence head for {out.name}")
    except (ValueError, OSError, FacekpError) as exc:
        path.unlink(missing_ok=True)
        trainer.listener.on_note(f"no keypoint confidence head for {out.name}: {exc}")


@dataclass
class _RunState:
    best_val: float = math.nan  # NaN until a first validation
    best_epoch: int = 0
    best_weights: list | None = None
    last_epoch: int = 0
    saved: bool = False
    history: list = field(default_factory=list)
    base_record: dict = field(default_factory=dict)
    checkpointer: "Checkpointer | None" = None


def _load_for_training(path: Path):
    from facekp.core.model.predict import load_model

    return load_model(path, compile=True)
