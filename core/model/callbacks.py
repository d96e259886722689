"""The Keras side of a training run: the callback that reports each batch and epoch to the
run's listener, keeps the best epoch (checkpointed at once), stops early, and leaves ``fit``
right after the batch in which a stop was asked for."""
from __future__ import annotations

import math
import time

from facekp.core.errors import FacekpError
from facekp.core.model.pipeline import current_lr
from facekp.core.model.train_types import StopRequested, finite_or_none


def record_epoch(state, model, epoch: int, train_px: float, val_px: float,
                  elapsed: float) -> bool:
    """Add an epoch to the history; a best epoch's weights are kept and checkpointed."""
    # The first finite validation is the best so far (best_val starts as NaN).
    best = math.isfinite(val_px) and not (val_px >= state.best_val)
    state.last_epoch = epoch + 1
    state.history.append({
        "epoch": epoch + 1, "train_rmse_px": finite_or_none(train_px),
        "val_rmse_px": finite_or_none(val_px),
        "best": bool(best), "elapsed_s": round(elapsed, 3), "lr": current_lr(model)})
    if best:
        state.best_val, state.best_epoch = val_px, epoch + 1
        state.best_weights = model.get_weights()
        state.checkpointer.save(model, state.best_weights)
    return bool(best)


def make_callback(trainer, n_train: int, batch_size: int):
    """The Keras callback of ``trainer``'s run (a :class:`facekp.core.model.train.Trainer`):
    per-batch loss, per-epoch RMSE, checkpoints, early stopping and the stop request. (Built
    in this function so that importing this module needs no Keras.)"""
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
                raise StopRequested

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
                raise StopRequested

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            train_px = float(logs.get("rmse_px", math.nan))
            val_px = float(logs.get("val_rmse_px", math.nan))
            elapsed = time.monotonic() - self.t0
            best = record_epoch(state, self.model, epoch, train_px, val_px, elapsed)
            self.wait = 0 if best else self.wait + 1
            trainer.listener.on_epoch(epoch + 1, train_px, val_px, best, elapsed)
            if trainer.config.patience and self.wait >= trainer.config.patience:
                self.early_stopped = True
                self.model.stop_training = True
            if trainer._stop_agreed():
                raise StopRequested

    return _Callback()
