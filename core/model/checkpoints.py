"""A trained model on disk: its training record inside the ``.keras`` file (and beside it for
people to read), atomic writes, fault injection for the tests of kills mid-write, and the
:class:`Checkpointer` that writes the best model in the background while training goes on."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from facekp.core.fileio import atomic_path


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


def write_model(model, path: Path, record: dict) -> None:
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


def write_and_remove(model, name: str, record: dict) -> None:
    """A non-chief worker's save: the same write into a temporary folder, then removed."""
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="facekp-worker-"))
    try:
        write_model(model, folder / name, record)
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


class Checkpointer:
    """Saves the best model without holding training up.

    At an improvement the weights and the optimizer state are copied (a snapshot, fast) into a
    second copy of the model, which a background thread then writes (atomically, as always)
    while the next epoch trains. One save at a time: a new one first waits for the last. A
    model that cannot be copied this way is saved in the foreground instead.
    """

    def __init__(self, trainer):
        """``trainer``: the :class:`facekp.core.model.train.Trainer` whose best model this saves."""
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
            self.save_now(model)
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

    def save_now(self, model) -> None:
        """Write ``model`` and the run's record in the foreground (see :meth:`write`)."""
        self.trainer._writing.set()
        self.write(model, self.trainer._record())

    def write(self, model, record: dict) -> None:
        """Write (the caller has set the trainer's ``_writing``, cleared here when done). Only
        the chief writes to ``out``; the other workers of a multi-worker run save alike (a save
        may take part in collective operations, so every worker makes it) into a temporary
        folder that they remove at once, TensorFlow's pattern for Keras multi-worker saving."""
        t = self.trainer
        try:
            if t.writes_model:
                write_model(model, t.out, record)
            else:
                write_and_remove(model, t.out.name, record)
            t._state.saved = True
        finally:
            t._writing.clear()

    def _run(self, shadow, record) -> None:
        try:
            self.write(shadow, record)
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
