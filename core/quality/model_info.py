"""What the app and the CLI say about a model file: architecture, date and validation RMSE,
from its training record (:func:`facekp.core.model.checkpoints.read_record`) or, for the shipped model,
the JSON
description beside it (``default.keras`` -> ``default.json``). No TensorFlow."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Iterable


@dataclass
class ModelInfo:
    """One model file and what its records say (None where they say nothing)."""
    path: Path
    origin: str                       # "shipped", "trained" or "opened"
    arch: str | None = None
    date: str | None = None           # YYYY-MM-DD HH:MM, or the record's date
    val_rmse_px: float | None = None
    fine_tuned_from: str | None = None

    @property
    def name(self) -> str:
        return self.path.name


def describe_model(path: str | Path, origin: str = "opened") -> ModelInfo:
    """A model's :class:`ModelInfo`: its training record, else the shipped description, else
    the file's date only."""
    from facekp.core.model.checkpoints import read_record

    path = Path(path)
    info = ModelInfo(path, origin)
    record = read_record(path) if path.exists() else None
    if record:
        info.arch = record.get("arch")
        info.val_rmse_px = _float(record.get("best_val_rmse_px"))
        info.fine_tuned_from = record.get("fine_tuned_from") or record.get("resumed_from")
    else:
        try:
            doc = json.loads(path.with_suffix(".json").read_text())
        except (OSError, ValueError):
            doc = {}
        if isinstance(doc, dict):
            info.arch = doc.get("arch")
            # the training's own figure first: the one every trained model's record has
            info.val_rmse_px = _float((doc.get("training") or {}).get("best_val_rmse_px")
                                      or doc.get("val_rmse_px"))
            info.date = doc.get("date")
    if info.date is None and path.exists():
        info.date = datetime.fromtimestamp(path.stat().st_mtime).strftime("%Y-%m-%d %H:%M")
    return info


def known_models(shipped: Iterable[str | Path] = (), trained_dir: str | Path | None = None,
                 opened: Iterable[str | Path] = (), trained: Iterable[str | Path] = ()
                 ) -> list[ModelInfo]:
    """The models the app knows: the shipped ones, ``trained`` ones and the ``.keras`` files
    in ``trained_dir`` (newest first), and ``opened`` ones, each once (by resolved path),
    existing files only."""
    trained = sorted((Path(p) for p in trained), key=lambda p: -p.stat().st_mtime
                     if p.exists() else 0)
    if trained_dir is not None and Path(trained_dir).is_dir():
        trained += sorted(Path(trained_dir).glob("*.keras"), key=lambda p: -p.stat().st_mtime)
    seen: set[Path] = set()
    out = []
    for origin, paths in (("shipped", shipped), ("trained", trained), ("opened", opened)):
        for p in paths:
            p = Path(p)
            key = p.resolve()
            if key in seen or not p.is_file():
                continue
            seen.add(key)
            out.append(describe_model(p, origin))
    return out


def _float(v) -> float | None:
    try:
        return None if v is None else float(v)
    except (TypeError, ValueError):
        return None
