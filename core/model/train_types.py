"""The values a training run takes and gives: :class:`TrainConfig` (how to train),
:class:`TrainingListener` (the progress protocol the command line and the app implement) and
:class:`TrainResult` (how a run ended)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

LR_SCHEDULES = ("constant", "cosine")
#: Augmentation presets (facekp.core.model.augment.PRESETS): "basic" geometry and light, "wild"
#: adds what photos bring (low resolution, blur, JPEG, gamma, noise, occlusion, larger rotations).
AUGMENT_PRESETS = ("basic", "wild")


# --- configuration ------------------------------------------------------------------------

@dataclass
class TrainConfig:
    """How to train. ``None`` for ``augment``, ``complete_only`` and ``lr_schedule`` means the
    architecture's default (``facekp.core.model.architectures.ARCH_DEFAULTS``); :meth:`for_arch`
    also takes the architecture's epochs, batch size, learning rate and patience."""
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

    Methods are called from the thread that runs :meth:`facekp.core.model.train.Trainer.run` (a GUI forwards them to
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

    ``reason``: "completed", "early_stop", "stopped" (by :meth:`facekp.core.model.train.Trainer.stop`) or "error"
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
        d["best_val_rmse_px"] = finite_or_none(self.best_val_rmse_px)
        return d


class StopRequested(Exception):
    """Raised inside ``fit`` to leave it right after the current batch."""


def finite_or_none(v) -> float | None:
    """A float for JSON: None for NaN/inf."""
    v = float(v)
    return v if math.isfinite(v) else None
