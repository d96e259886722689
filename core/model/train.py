"""Training: a :class:`Trainer` runs Keras ``fit`` over ``tf.data`` pipelines and reports its
progress through a small plain-Python protocol (:class:`TrainingListener`) that the command
line and the GUI both use.

- Training data: shuffled every epoch, batched, cast to float32, optionally augmented
  (``facekp.core.model.augment.augment_batch``, imported only when augmentation is on), prefetched.
- Validation RMSE in pixels (:class:`facekp.core.model.architectures.MaskedRMSE`) after every epoch;
  the best
model
  is saved as ``.keras`` whenever it improves, atomically (temporary file + rename), together
  with a small JSON record of the run beside it (``<model>.train.json``, see
  :func:`record_path`). Early stopping after ``patience`` epochs without improvement; at the
  end the model in memory holds the best weights, as the file does.
- :meth:`Trainer.stop` (any thread) ends training after the current batch; the best model
  saved so far stays on disk.
- Runs under a ``tf.distribute`` strategy: the default one on a single device,
  ``MirroredStrategy`` when several GPUs are visible (or the strategy passed in, e.g. a
  ``MultiWorkerMirroredStrategy`` from :func:`facekp.core.model.cluster.make_strategy`). With
  several workers, ``batch_size`` is per worker, each worker trains on its own shard of the faces,
  only the chief writes the model, and stop decisions are all-reduced so that every worker
  leaves training at the same batch.

Epochs and batches are 1-based in the protocol. Every figure is in pixels of the 96x96 crop.
"""
from __future__ import annotations

import contextlib
import json
import math
import threading
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from facekp.core.model.cluster import any_worker, is_chief, workers
from facekp.core.data.dataset import Dataset
from facekp.core.errors import FacekpError
from facekp.core.fileio import atomic_path, check_writable, remove_stale_partials

LR_SCHEDULES = ("constant", "cosine")
#: Augmentation presets (facekp.core.model.augment.PRESETS): "basic" geometry and light, "wild" adds
# what
#: photos bring (low resolution, blur, JPEG, gamma, noise, occlusion, larger rotations).
AUGMENT_PRESETS = ("basic", "wild")


# --- configuration ------------------------------------------------------------------------

@dataclass
class TrainConfig:
    """How to train. ``None`` for ``augment``, ``complete_only`` and ``lr_schedule`` means the
    architecture's default (``facekp.core.model.architectures.ARCH_DEFAULTS``); :meth:`for_arch`
    also takes the
    architecture's epochs, batch size, learning rate and patience."""
    arch: str = "seed"
    epochs: int = 100
    batch_size: int = 64
    learning_rate: float = 1e-3
    patience: int = 10
    augment: bool | None = None
    complete_only: bool | None = None
    seed: int = 0
    lr_schedule: str | None = None
    augment_strength: float | None = None
    augment_preset: str | None = None

    @classmethod
    def for_arch(cls, arch: str = "seed", **overrides) -> "TrainConfig":
        """The architecture's registered training defaults, with ``overrides`` (``None`` values
        are ignored, so command-line options left out keep the defaults)."""
        from facekp.core.model.architectures import ARCH_DEFAULTS, ARCHITECTURES

        if arch not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {arch!r}; expected one of "
                             f"{', '.join(sorted(ARCHITECTURES))}")
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in ARCH_DEFAULTS.get(arch, {}).items() if k in names}
        values.update({k: v for k, v in overrides.items() if v is not None})
        unknown = set(values) - names
        if unknown:
            raise TypeError(f"unknown training option(s): {', '.join(sorted(unknown))}")
        values["arch"] = arch
        return cls(**values)

    def resolved(self) -> "TrainConfig":
        """A copy with every ``None`` replaced by the architecture's default, checked."""
        from facekp.core.model.architectures import ARCH_DEFAULTS, ARCHITECTURES

        if self.arch not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {self.arch!r}; expected one of "
                             f"{', '.join(sorted(ARCHITECTURES))}")
        d = ARCH_DEFAULTS.get(self.arch, {})
        cfg = replace(
            self,
            augment=bool(d.get("augment", False)) if self.augment is None else bool(self.augment),
            complete_only=(bool(d.get("complete_only", False)) if self.complete_only is None
                           else bool(self.complete_only)),
            lr_schedule=(d.get("lr_schedule") or "constant") if self.lr_schedule is None
            else self.lr_schedule,
            augment_strength=float(d.get("augment_strength", 1.0)
                                   if self.augment_strength is None else self.augment_strength),
            augment_preset=(d.get("augment_preset") or "basic") if self.augment_preset is None
            else self.augment_preset,
        )
        if cfg.augment_preset not in AUGMENT_PRESETS:
            raise ValueError(f"unknown augmentation {cfg.augment_preset!r}; expected one of "
                             f"{', '.join(AUGMENT_PRESETS)}")
        if cfg.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"unknown learning-rate schedule {cfg.lr_schedule!r}; expected one "
                             f"of {', '.join(LR_SCHEDULES)}")
        if int(cfg.epochs) < 1:
            raise ValueError(f"epochs must be at least 1, got {cfg.epochs}")
        if int(cfg.batch_size) < 1:
            raise ValueError(f"batch size must be at least 1, got {cfg.batch_size}")
        if not float(cfg.learning_rate) > 0:
            raise ValueError(f"learning rate must be positive, got {cfg.learning_rate}")
        if not 0 < cfg.augment_strength <= 3:
            raise ValueError("augmentation strength must be above 0 and at most 3, got "
                             f"{cfg.augment_strength}")
        if int(cfg.patience) < 0:
            raise ValueError(f"patience must be 0 (no early stopping) or more, got {cfg.patience}")
        return cfg

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- progress protocol --------------------------------------------------------------------

class TrainingListener:
    """Receives a Trainer's progress. Every method is a no-op here; override what you need.

    Methods are called from the thread that runs :meth:`Trainer.run` (a GUI forwards them to
    its own thread with signals).
    """

    def on_started(self, info: dict) -> None:
        """Totals, before the first batch: keys ``epochs``, ``steps_per_epoch``,
        ``train_faces``, ``val_faces``, ``arch`` (plus ``initial_epoch``, ``config``)."""

    def on_batch(self, epoch: int, batch: int, loss_px: float) -> None:
        """One training batch done: its own loss (masked RMSE) in pixels."""

    def on_epoch(self, epoch: int, train_rmse_px: float, val_rmse_px: float, best: bool,
                 elapsed_s: float) -> None:
        """One epoch done. ``best``: validation improved and the model was saved.
        ``elapsed_s``: seconds since training started (setup excluded)."""

    def on_finished(self, result: "TrainResult") -> None:
        """Training ended (always called once, also after an error)."""

    def on_note(self, text: str) -> None:
        """A one-line remark for people (e.g. a resumed model had no optimizer state)."""


@dataclass
class TrainResult:
    """How a training run ended.

    ``reason``: "completed", "early_stop", "stopped" (by :meth:`Trainer.stop`) or "error"
    (``message`` says what went wrong). ``best_epoch`` is 0 and ``model_path`` None when no
    model was saved. ``epochs_run`` is the number of the last epoch completed.
    """
    reason: str
    message: str = ""
    best_epoch: int = 0
    best_val_rmse_px: float = math.nan
    epochs_run: int = 0
    model_path: Path | None = None
    history: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["model_path"] = None if self.model_path is None else str(self.model_path)
        d["best_val_rmse_px"] = _num(self.best_val_rmse_px)
        return d


def record_path(model_path: str | Path) -> Path:
    """The JSON record written beside a trained model: ``M.keras`` -> ``M.train.json``."""
    p = Path(model_path)
    return p.with_name(p.stem + ".train.json")


#: The training record's name inside a ``.keras`` file (a zip archive): the model and its
#: record are renamed into place together, so they always agree.
RECORD_MEMBER = "facekp.train.json"


def read_record(model_path: str | Path) -> dict | None:
    """The training record of a model (config, best epoch, history), or None if absent: the
    one inside the model file, else (a model saved before records went inside) the JSON file
    beside it."""
    import zipfile

    try:
        with zipfile.ZipFile(model_path) as archive:
            return json.loads(archive.read(RECORD_MEMBER))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        pass
    try:
        return json.loads(record_path(model_path).read_text())
    except (OSError, ValueError):
        return None


def default_strategy():
    """MirroredStrategy over all GPUs when several are visible, else the default strategy."""
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy([g.name for g in gpus])
    return tf.distribute.get_strategy()


class _StopRequested(Exception):
    """Raised inside ``fit`` to leave it right after the current batch."""


# --- the trainer --------------------------------------------------------------------------

class Trainer:
    """Trains ``config.arch`` on ``train``, validating on ``val``, saving the best to ``out``.

    ``train`` and ``val``: :class:`facekp.core.data.dataset.Dataset` (in memory) or streamed faces
    (:class:`facekp.core.data.shards.ShardSplit`), each as :func:`_pipeline` takes them.

    ``config.complete_only`` keeps the training faces with all 15 keypoints; validation always
    uses every face of ``val`` (missing keypoints masked), as ``facekp evaluate`` does.

    ``resume``: a ``.keras`` model saved by a Trainer (or any compatible model): training goes
    on from its weights and optimizer state, at the epoch after the one it was saved at (read
    from its training record when there is one). ``fine_tune``: a ``.keras`` model whose
    weights training starts from, with a fresh optimizer of ``config`` and ``config.epochs``
    epochs counted from 1 (for a model's own schedule, use ``resume``); the first epoch's model
    is kept as the best so far, so a run always leaves a fine-tuned model to compare with the
    one it started from. ``strategy``: a ``tf.distribute`` strategy (default:
    :func:`default_strategy`).
    """

    def __init__(self, config: TrainConfig, train: Dataset, val: Dataset, out: str | Path,
                 listener: TrainingListener | None = None, resume: str | Path | None = None,
                 strategy=None, fine_tune: str | Path | None = None,
                 fit_confidence: bool = True):
        self.config = config.resolved()
        #: fit a keypoint confidence head for the trained model (:meth:`_confidence_head`)
        self.fit_confidence = fit_confidence
        self.train_data = train
        self.val_data = val
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
            with _released_custom_gradients():
                result = self._run()
        except _StopRequested:
            result = self._result("stopped", "stopped by the user")
        except FacekpError as exc:
            result = self._result("error", str(exc))
        except KeyboardInterrupt:  # abort at once, but never in the middle of a model write
            if self._state.checkpointer is not None:
                with contextlib.suppress(Exception):
                    self._state.checkpointer.wait()
            raise
        except Exception as exc:  # a training failure must reach the caller as a result
            result = self._result("error", self._explain(exc))
        if result.model_path is not None:
            self._confidence_head(result)
        # A caller may keep the Trainer (a finished job in the app): let it hold the trained
        # model only, not the checkpoint copy of the model and the best weights as well.
        if self._state.checkpointer is not None:
            self._state.checkpointer.shadow = None
        self._state.best_weights = None
        _return_freed_memory()
        self.listener.on_finished(result)
        return result

    def _confidence_head(self, result: TrainResult) -> None:
        """Beside the model this run wrote, a keypoint confidence head fitted for it
        (:func:`facekp.core.model.confidence.fit_for_predictor`: on the training faces, calibrated
        on the validation faces), so that a trained or fine-tuned model says how sure it is of
        each point as the shipped one does. A run that was stopped (also after its last
        epoch) or failed, or trained from a stream, fits none; then a head left beside ``out``
        by the model this run replaced is removed (it belongs to another model). The chief
        alone writes; a failure is a note, never a failed run."""
        from facekp.core.model.confidence import fit_for_predictor, head_path
        from facekp.core.model.predict import Predictor

        path = head_path(self.out)
        if not self._chief or not self.out.is_file():
            return
        in_memory = all(hasattr(d, "images") for d in (self.train_data, self.val_data))
        fit = (self.fit_confidence and in_memory and not self._stop.is_set()
               and result.reason in ("completed", "early_stop"))
        try:
            if not fit:
                path.unlink(missing_ok=True)
                return
            self.listener.on_note(f"fitting the keypoint confidence head ({path.name})")
            head = fit_for_predictor(Predictor(self.out, confidence=None), self.train_data,
                                     self.val_data, info={
                                         "fitted_on": f"training faces ({len(self.train_data)})",
                                         "calibrated_on": f"validation faces "
                                                          f"({len(self.val_data)})",
                                         "fitted_by": "facekp.core.model.train.Trainer"})
            head.save(path)
        except (ValueError, OSError, FacekpError) as exc:
            path.unlink(missing_ok=True)
            self.listener.on_note(f"no keypoint confidence head for {self.out.name}: {exc}")

    # -- internals --

    def _stop_agreed(self) -> bool:
        """Stop now? This run's request; with several workers, any worker's request, so that
        they all leave training at the same batch (every worker asks at the same points)."""
        if self._workers == 1:
            return self._stop.is_set()
        return any_worker(self._strategy, self._stop.is_set())

    def _explain(self, exc: Exception) -> str:
        """A failure's message. A stream's unreadable record is traced to its file by reading
        the streamed files again (``check``, which names the corrupt one)."""
        if type(exc).__name__ in ("DataLossError", "InvalidArgumentError",
                                  "FailedPreconditionError"):  # a file's count is not its index's
            for part in (self.train_data, self.val_data):
                try:
                    getattr(part, "check", lambda: None)()
                except FacekpError as found:
                    return str(found)
        return f"{type(exc).__name__}: {exc}"

    def _result(self, reason: str, message: str) -> TrainResult:
        s = self._state
        if s.checkpointer is not None:
            try:
                s.checkpointer.wait()  # the last best model is on disk before we report
            except Exception as exc:
                reason, message = "error", f"the model could not be saved to {self.out}: {exc}"
        if s.best_weights is not None and self.model is not None:
            try:
                self.model.set_weights(s.best_weights)
            except Exception:  # the file on disk is what counts; keep the result
                pass
        return TrainResult(reason=reason, message=message, best_epoch=s.best_epoch,
                           best_val_rmse_px=s.best_val, epochs_run=s.last_epoch,
                           model_path=self.out if s.saved else None, history=list(s.history))

    def _run(self) -> TrainResult:
        import keras

        cfg = self.config
        s = self._state
        train = self.train_data.complete() if cfg.complete_only else self.train_data
        val = self.val_data
        strategy = self._strategy = self.strategy or default_strategy()
        self._chief, self._workers = is_chief(strategy), workers(strategy)
        self._check_before_training(train, val)
        # Each worker trains on its own share of the faces (as many on each), batch_size at a
        # time: together one step averages the gradients of batch_size x workers faces.
        shared = len(train) // self._workers * self._workers
        steps = math.ceil(shared / self._workers / cfg.batch_size)
        keras.utils.set_random_seed(cfg.seed)
        model, initial_epoch, arch = self._compiled_model(steps, strategy)
        if self._workers > 1:
            _fit_across_workers(model, strategy)
        self.model = model
        train_ds, val_ds = self._datasets(train, val, strategy)
        s.base_record = {"arch": arch, "model": model.name, "config": cfg.as_dict(),
                         "train_faces": len(train), "val_faces": len(val),
                         "data": self.train_data.meta.get("source")
                         or self.train_data.meta.get("imported_from")}
        if self._workers > 1:
            s.base_record.update(workers=self._workers,
                                 global_batch_size=cfg.batch_size * self._workers)
        if self.fine_tune is not None:
            s.base_record["fine_tuned_from"] = str(self.fine_tune)
        if self.resume is not None:
            s.base_record["resumed_from"] = str(self.resume)
            logs = model.evaluate(val_ds, verbose=0, return_dict=True)
            s.best_val = float(logs["rmse_px"])
            s.best_epoch = s.last_epoch = initial_epoch
            s.best_weights = model.get_weights()
            if self.out.resolve() != self.resume.resolve():
                self._save(model)
            else:
                s.saved = True

        self.listener.on_started({
            "epochs": cfg.epochs, "steps_per_epoch": steps, "train_faces": len(train),
            "val_faces": len(val), "arch": arch, "initial_epoch": initial_epoch,
            "config": cfg.as_dict(), "workers": self._workers,
        })
        callback = _make_callback(self, shared, cfg.batch_size * self._workers)
        s.checkpointer = _Checkpointer(self)
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

    def _check_before_training(self, train: Dataset, val: Dataset) -> None:
        """Data to train and validate on, an output that can be written (found now, not at
        the first checkpoint), and no temporary files left there by a killed run."""
        if len(train) == 0:
            what = "faces with all 15 keypoints" if self.config.complete_only else "faces"
            raise FacekpError(f"no training {what}")
        if len(val) == 0 or val.labelled == 0:
            raise FacekpError("no labelled validation faces (validation RMSE decides which "
                              "model is kept)")
        if self._chief:  # the other workers of a multi-worker run never write there
            check_writable(self.out)
            for path in (self.out, record_path(self.out)):
                remove_stale_partials(path)
        if self._stop.is_set():
            raise _StopRequested

    def _datasets(self, train: Dataset, val: Dataset, strategy):
        """The training and validation pipelines. Several workers: each worker's training
        pipeline shuffles every face the same way (the same seed) and keeps its own share
        (:func:`_pipeline`'s ``shard``), so the workers train on different faces in every step;
        validation is auto-sharded by tf.data (each worker validates on its part, and the
        workers' RMSEs are all-reduced so that every worker decides alike)."""
        cfg = self.config
        augment = cfg.augment_strength if cfg.augment else 0.0
        if self._workers == 1:
            train_ds = _pipeline(train, cfg.batch_size, shuffle=True, seed=cfg.seed,
                                 augment=augment, repeat=True, preset=cfg.augment_preset)
            return train_ds, _pipeline(val, cfg.batch_size, shuffle=False)
        global_batch = cfg.batch_size * self._workers
        if global_batch % strategy.num_replicas_in_sync:
            raise FacekpError(f"a batch size of {cfg.batch_size} per worker does not split "
                              f"evenly over the {strategy.num_replicas_in_sync // self._workers}"
                              " devices of each worker")

        def worker_pipeline(context):
            return _pipeline(train, context.get_per_replica_batch_size(global_batch),
                             shuffle=True, seed=cfg.seed, augment=augment, repeat=True,
                             preset=cfg.augment_preset,
                             shard=(context.num_input_pipelines, context.input_pipeline_id))

        train_ds = strategy.distribute_datasets_from_function(worker_pipeline)
        return train_ds, _pipeline(val, global_batch, shuffle=False, workers=self._workers)

    def _compiled_model(self, steps: int, strategy):
        """(model, initial epoch, architecture name): a new model, or the resumed one with its
        optimizer state (a fresh optimizer, said in a note, when it was saved without)."""
        from facekp.core.model.architectures import MaskedRMSE, build_model, masked_rmse

        cfg = self.config
        initial_epoch, arch = 0, cfg.arch
        with strategy.scope():
            if self.resume is not None:
                model = _load_for_training(self.resume)
                record = read_record(self.resume) or {}
                initial_epoch = int(record.get("best_epoch") or 0)
                arch = record.get("arch") or model.name
                self._state.history = [h for h in record.get("history", [])
                                       if h.get("epoch", 0) <= initial_epoch]
                optimizer = getattr(model, "optimizer", None)
                if optimizer is None:
                    self.listener.on_note(f"{self.resume} holds no optimizer state; training "
                                          "goes on from its weights with a fresh optimizer")
                    optimizer = _optimizer(cfg, steps)
            elif self.fine_tune is not None:
                from facekp.core.model.predict import load_model

                model = load_model(self.fine_tune)
                arch = (read_record(self.fine_tune) or {}).get("arch") or model.name
                optimizer = _optimizer(cfg, steps)
            else:
                model = build_model(cfg.arch)
                optimizer = _optimizer(cfg, steps)
            model.compile(optimizer=optimizer, loss=masked_rmse, metrics=[MaskedRMSE()])
        return model, initial_epoch, arch

    def _record(self) -> dict:
        s = self._state
        return dict(s.base_record, best_epoch=s.best_epoch, best_val_rmse_px=_num(s.best_val),
                    history=list(s.history))

    def _save(self, model) -> None:
        """Write the model and its record now (see :func:`_write`)."""
        self._writing.set()
        self._write(model, self._record())

    def _write(self, model, record: dict) -> None:
        """Write (the caller has set ``_writing``, which this clears when done). Only the chief
        writes to ``out``; the other workers of a multi-worker run save alike (a save may take
        part in collective operations, so every worker makes it) into a temporary folder that
        they remove at once, TensorFlow's pattern for Keras multi-worker saving."""
        try:
            if self._chief:
                _write(model, self.out, record)
            else:
                _write_and_remove(model, self.out.name, record)
            self._state.saved = True
        finally:
            self._writing.clear()


@dataclass
class _RunState:
    best_val: float = math.nan  # NaN until a first validation
    best_epoch: int = 0
    best_weights: list | None = None
    last_epoch: int = 0
    saved: bool = False
    history: list = field(default_factory=list)
    base_record: dict = field(default_factory=dict)
    checkpointer: "_Checkpointer | None" = None


def _write(model, path: Path, record: dict) -> None:
    """The model with its record inside (one file, one rename), then the record beside it
    for people to read (:func:`read_record` trusts the one inside)."""
    import zipfile

    text = json.dumps(record, indent=1)
    with atomic_path(path) as tmp:
        model.save(tmp)
        with zipfile.ZipFile(tmp, "a") as archive:
            archive.writestr(RECORD_MEMBER, text)
        _fault("written")
    _fault("renamed")
    with atomic_path(record_path(path)) as tmp:
        tmp.write_text(text)


def _write_and_remove(model, name: str, record: dict) -> None:
    """A non-chief worker's save: the same write into a temporary folder, then removed."""
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="facekp-worker-"))
    try:
        _write(model, folder / name, record)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


#: Fault injection for tests of kills and interrupts during a checkpoint write:
#: ``STAGE:ACTION`` with STAGE ``written`` (the temporary model file complete, not yet
#: renamed) or ``renamed`` (the model in place, the record beside it not yet written) and
#: ACTION ``kill`` (SIGKILL this process) or ``sleep=SECONDS``.
FAULT_ENV = "FACEKP_CHECKPOINT_FAULT"


def _fault(stage: str) -> None:
    import os

    spec = os.environ.get(FAULT_ENV, "")
    where, _, action = spec.partition(":")
    if not spec or where != stage:
        return
    if action == "kill":
        import signal

        os.kill(os.getpid(), signal.SIGKILL)
    elif action.startswith("sleep="):
        time.sleep(float(action.split("=", 1)[1]))


class _Checkpointer:
    """Saves the best model without holding training up.

    At an improvement the weights and the optimizer state are copied (a snapshot, fast) into a
    second copy of the model, which a background thread then writes (atomically, as always)
    while the next epoch trains. One save at a time: a new one first waits for the last. A
    model that cannot be copied this way is saved in the foreground instead.
    """

    def __init__(self, trainer: "Trainer"):
        self.trainer = trainer
        self.shadow = None
        self.usable = True
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.background_saves = 0  # saves made from the snapshot, while training went on

    def save(self, model, weights: list | None = None) -> None:
        """Save ``model`` as it is now (``weights``: its get_weights(), if already taken)."""
        self.wait()
        record = self.trainer._record()
        if self.usable and self.shadow is None:
            self.shadow = self._make_shadow(model)
            self.usable = self.shadow is not None
        if not self.usable:
            self.trainer._save(model)
            return
        shadow = self.shadow
        shadow.set_weights(model.get_weights() if weights is None else weights)
        for target, value in zip(shadow.optimizer.variables, model.optimizer.variables):
            target.assign(value.numpy())
        self.thread = threading.Thread(target=self._run, args=(shadow, record),
                                       name="facekp-checkpoint", daemon=True)
        self.trainer._writing.set()
        self.thread.start()
        self.background_saves += 1

    def _run(self, shadow, record) -> None:
        try:
            self.trainer._write(shadow, record)
        except BaseException as exc:  # reported by wait()
            self.error = exc

    def wait(self) -> None:
        if self.thread is not None:
            self.thread.join()
            self.thread = None
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    @staticmethod
    def _make_shadow(model):
        import keras

        from facekp.core.model.architectures import MaskedRMSE, masked_rmse

        try:
            shadow = keras.models.clone_model(model)
            optimizer = model.optimizer.__class__.from_config(model.optimizer.get_config())
            shadow.compile(optimizer=optimizer, loss=masked_rmse, metrics=[MaskedRMSE()])
            shadow.optimizer.build(shadow.trainable_variables)
            pairs = list(zip(shadow.weights, model.weights))
            pairs += list(zip(shadow.optimizer.variables, model.optimizer.variables))
            if (len(shadow.weights) != len(model.weights)
                    or len(shadow.optimizer.variables) != len(model.optimizer.variables)
                    or any(tuple(a.shape) != tuple(b.shape) for a, b in pairs)):
                return None
            return shadow
        except Exception:
            return None


def _record_epoch(state, model, epoch: int, train_px: float, val_px: float,
                  elapsed: float) -> bool:
    """Add an epoch to the history; a best epoch's weights are kept and checkpointed."""
    # The first finite validation is the best so far (best_val starts as NaN).
    best = math.isfinite(val_px) and not (val_px >= state.best_val)
    state.last_epoch = epoch + 1
    state.history.append({
        "epoch": epoch + 1, "train_rmse_px": _num(train_px), "val_rmse_px": _num(val_px),
        "best": bool(best), "elapsed_s": round(elapsed, 3), "lr": _current_lr(model)})
    if best:
        state.best_val, state.best_epoch = val_px, epoch + 1
        state.best_weights = model.get_weights()
        state.checkpointer.save(model, state.best_weights)
    return bool(best)


def _make_callback(trainer: Trainer, n_train: int, batch_size: int):
    """The Keras callback of a run: per-batch loss, per-epoch RMSE, checkpoints, early
    stopping and the stop request. (Built here so that importing this module needs no Keras.)"""
    import keras

    state = trainer._state

    class _Callback(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.wait = 0
            self.early_stopped = False
            self.t0 = time.monotonic()
            self.epoch = 0
            self.seen, self.total = 0, 0.0

        def on_train_begin(self, logs=None):
            self.t0 = time.monotonic()

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
            self.seen, self.total = 0, 0.0
            if trainer._stop_agreed():
                raise _StopRequested

        def on_train_batch_end(self, batch, logs=None):
            """Each batch's own loss to the listener, and the stop check."""
            # logs["loss"] is the epoch's running mean weighted by batch size: difference it
            # to get this batch's own loss.
            b = min(batch_size, n_train - batch * batch_size)
            seen = self.seen + b
            total = float(logs["loss"]) * seen
            loss = (total - self.total) / b
            self.seen, self.total = seen, total
            if not math.isfinite(loss):
                raise FacekpError(f"training diverged: the loss became {loss} at epoch "
                                  f"{self.epoch + 1}, batch {batch + 1}; try a lower learning "
                                  "rate")
            trainer.listener.on_batch(self.epoch + 1, batch + 1, max(loss, 0.0) * 96.0)
            if trainer._stop_agreed():
                raise _StopRequested

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            train_px = float(logs.get("rmse_px", math.nan))
            val_px = float(logs.get("val_rmse_px", math.nan))
            elapsed = time.monotonic() - self.t0
            best = _record_epoch(state, self.model, epoch, train_px, val_px, elapsed)
            self.wait = 0 if best else self.wait + 1
            trainer.listener.on_epoch(epoch + 1, train_px, val_px, best, elapsed)
            if trainer.config.patience and self.wait >= trainer.config.patience:
                self.early_stopped = True
                self.model.stop_training = True
            if trainer._stop_agreed():
                raise _StopRequested

    return _Callback()


# --- pieces -------------------------------------------------------------------------------

#: glibc's malloc arenas for a training process (unless MALLOC_ARENA_MAX says otherwise).
MALLOC_ARENAS = 2


def _glibc():
    import ctypes

    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to tune
        return None


def _limit_malloc_arenas() -> None:
    """Cap glibc's malloc arenas before TensorFlow starts its thread pools.

    A run allocates and frees hundreds of MB (weights, optimizer slots, batches) from many
    threads; glibc gives threads their own arenas and keeps freed pages in them, so a process
    that trained again and again grew by 6-8 MB a run although nothing was in use any more
    (benchmarks/soak.py: +326 MB over cycles 10 to 50; with 2 arenas, flat).
    """
    import os

    libc = _glibc()
    if libc is not None and "MALLOC_ARENA_MAX" not in os.environ:
        m_arena_max = -8  # from malloc.h
        libc.mallopt(m_arena_max, MALLOC_ARENAS)


def _return_freed_memory() -> None:
    """Collect garbage and hand the C heap's free pages back to the system (glibc only)."""
    import gc

    gc.collect()
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


_limit_malloc_arenas()


@contextlib.contextmanager
def _released_custom_gradients():
    """Release what TensorFlow keeps of a run's training graph when the run ends.

    ``tf.custom_gradient`` in graph mode (used by the distribution strategy's ``all_reduce``
    in every traced training step) registers its gradient function in TensorFlow's global
    gradient registry under a fresh name and never removes it. That function holds the traced
    graph, and the graph holds the model's variables and optimizer slots: every training run
    in a process leaked about the model's size three times over (120 MB for 'seed'), even
    after ``keras.backend.clear_session()``. The gradients are only needed while the step is
    traced, so the entries a run added are dropped when it ends. (One run at a time, as the
    app and the CLI do: a second run tracing at that moment could lose its entries.)
    """
    try:
        from tensorflow.python.framework import ops

        registry = ops._gradient_registry._registry
    except (ImportError, AttributeError):  # a TensorFlow without that private registry
        yield
        return
    before = set(registry)
    try:
        yield
    finally:
        for name in [k for k in list(registry) if k not in before]:
            if name.startswith("CustomGradient-"):
                registry.pop(name, None)


def _optimizer(cfg: TrainConfig, steps_per_epoch: int):
    import keras

    lr: Any = float(cfg.learning_rate)
    if cfg.lr_schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(lr, decay_steps=cfg.epochs * steps_per_epoch)
    return keras.optimizers.Adam(learning_rate=lr)


def _current_lr(model) -> float | None:
    try:
        opt = model.optimizer
        lr = opt.learning_rate
        return float(np.asarray(lr))
    except Exception:
        return None


def _pipeline(ds, batch_size: int, shuffle: bool, seed: int = 0, augment: float = 0.0,
              repeat: bool = False, preset: str = "basic", shard: tuple[int, int] | None = None,
              workers: int = 1):
    """Faces -> batches of float32 (B, 96, 96, 1), (B, 30), augmented (``facekp.core.model.augment``, its
    ``preset``) at ``augment`` times its strength when above 0.
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
        d = d.map(no_autograph(lambda x, y: augment_batch(x, y, config=strength)),
                  num_parallel_calls=tf.data.AUTOTUNE)
    if repeat:
        d = d.repeat()
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = policy
    return d.prefetch(tf.data.AUTOTUNE).with_options(options)


def _fit_across_workers(model, strategy) -> None:
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

    batch = (np.zeros((1, IMAGE_SIZE, IMAGE_SIZE, 1), np.float32), np.zeros((1, 30), np.float32))
    with strategy.scope():
        model._symbolic_build(data_batch=batch)
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None

    def per_replica(step):
        def vector_logs(data):
            return {name: tf.reshape(value, (1,)) for name, value in step(data).items()}
        return vector_logs

    model.train_step = per_replica(model.train_step)
    model.test_step = per_replica(model.test_step)


def _load_for_training(path: Path):
    from facekp.core.model.predict import load_model

    return load_model(path, compile=True)


def _num(v) -> float | None:
    """A float for JSON: None for NaN/inf."""
    v = float(v)
    return v if math.isfinite(v) else None
