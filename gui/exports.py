"""Writing predictions shown in the app to CSV or JSON (by file extension), atomically.

Plain Python (no Qt): dataset predictions as one row per face with the 30 Kaggle columns, and
photo predictions as one row per face with its box; JSON holds the same with keypoints by name.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from facekp.core.fileio import atomic_path
from facekp.core.data.keypoints import COLUMNS
from facekp.core.photos.photo_json import rounded, keypoints_record, photo_record


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise ValueError(f"{path}: choose a file name ending in .csv or .json")
    return suffix[1:]


def write_dataset_predictions(path: str | Path, dataset, predictions: np.ndarray,
                              errors: np.ndarray | None = None) -> Path:
    """Predictions for every predicted face of ``dataset`` (rows never predicted are left out).

    CSV: ``index,name,person,split,rmse_px`` then the 30 Kaggle columns (pixels of the crop).
    JSON: ``{"faces": [{"index", "name", "person", "split", "rmse_px", "keypoints": {name:
    [x, y]}}]}``.
    """
    import pandas as pd

    path = Path(path)
    kind = _kind(path)
    predictions = np.asarray(predictions, dtype=np.float64)
    rows = np.flatnonzero(~np.isnan(predictions).all(axis=1))
    errors = np.full(len(dataset), np.nan) if errors is None else np.asarray(errors, float)
    with atomic_path(path) as tmp:
        if kind == "csv":
            table = pd.DataFrame({"index": rows, "name": dataset.names[rows],
                                  "person": dataset.persons[rows], "split": dataset.splits[rows],
                                  "rmse_px": np.round(errors[rows], 4)})
            coords = pd.DataFrame(np.round(predictions[rows], 3), columns=list(COLUMNS))
            pd.concat([table, coords], axis=1).to_csv(tmp, index=False, na_rep="")
        else:
            faces = [{"index": int(r), "name": str(dataset.names[r]),
                      "person": str(dataset.persons[r]), "split": str(dataset.splits[r]),
                      "rmse_px": rounded(errors[r]), "keypoints": keypoints_record(predictions[r])}
                     for r in rows]
            tmp.write_text(json.dumps({"units": "pixels of the 96x96 crop", "faces": faces},
                                      indent=1))
    return path


def write_photo_predictions(path: str | Path, photo: str | Path, faces,
                            message: str = "") -> Path:
    """Faces found in a photo: ``faces`` is a list of ``(box [x0, y0, x1, y1], keypoints
    (15, 2) or None)`` in photo pixels.

    CSV: ``photo,face,box_x0,box_y0,box_x1,box_y1`` then the 30 Kaggle columns (photo pixels).
    JSON: the schema of ``facekp predict --json`` (:mod:`facekp.core.photos.photo_json`), one
    record.
    """
    path = Path(path)
    kind = _kind(path)
    with atomic_path(path) as tmp:
        if kind == "csv":
            import csv

            with open(tmp, "w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(["photo", "face", "box_x0", "box_y0", "box_x1", "box_y1",
                            *COLUMNS])
                for i, (box, kp, *_) in enumerate(faces):
                    coords = (np.full(len(COLUMNS), np.nan) if kp is None
                              else np.asarray(kp, dtype=np.float64).reshape(len(COLUMNS)))
                    w.writerow([str(photo), i + 1, *[rounded(v) for v in box],
                                *["" if np.isnan(v) else rounded(v) for v in coords]])
        else:
            out = photo_record(photo, faces, message)
            tmp.write_text(json.dumps(out, indent=1))
    return path
