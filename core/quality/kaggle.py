"""Kaggle submission: a model + ``test.csv`` + ``IdLookupTable.csv`` -> ``submission.csv``.

The lookup table (``RowId,ImageId,FeatureName[,Location]``) says which keypoint coordinate of
which test image each submission row holds; not every image asks for all 30. The submission has
exactly the lookup table's rows in its order, as ``RowId,Location``, with locations (pixels of
the 96x96 image) clipped to [0, 96].
"""
from __future__ import annotations

import difflib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from facekp.core.errors import DataError
from facekp.core.fileio import atomic_path, check_input_file
from facekp.core.data.keypoint_sets import KAGGLE15, derivable, derive_keypoints
from facekp.core.data.keypoints import COLUMNS, IMAGE_SIZE

LOOKUP_COLUMNS = ("RowId", "ImageId", "FeatureName")


@dataclass
class Lookup:
    """The parsed lookup table: per row its RowId, ImageId and column index (0-29)."""
    row_ids: np.ndarray
    image_ids: np.ndarray
    columns: np.ndarray
    path: Path

    def __len__(self) -> int:
        return len(self.row_ids)


def read_lookup(path: str | Path) -> Lookup:
    """Read and check ``IdLookupTable.csv``; DataError naming the row and column otherwise."""
    path = check_input_file(path, "lookup table")
    raw = path.read_bytes()
    if b"\x00" in raw[:65536]:
        raise DataError(path, "not a CSV text file (it holds binary data)")
    try:
        frame = pd.read_csv(io.BytesIO(raw), dtype=str, keep_default_na=False,
                            skipinitialspace=True, encoding="utf-8-sig")
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(path, f"not a readable CSV file ({str(exc).strip()[:200]})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    for col in LOOKUP_COLUMNS:
        if col not in frame.columns:
            close = difflib.get_close_matches(col, list(frame.columns), n=1)
            hint = f" (is {close[0]!r} misspelled?)" if close else ""
            raise DataError(path, f"missing column {col!r}{hint}; expected Kaggle's "
                                  "RowId,ImageId,FeatureName,Location", row=1, column=col)
    if len(frame) == 0:
        raise DataError(path, "has a header but no rows")
    rows = np.arange(len(frame)) + 2  # spreadsheet row numbers (header = row 1)
    row_ids = _integers(path, frame["RowId"], "RowId", rows)
    image_ids = _integers(path, frame["ImageId"], "ImageId", rows)
    dup = pd.Series(row_ids).duplicated().to_numpy()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        raise DataError(path, f"RowId {row_ids[i]} appears twice", row=int(rows[i]),
                        column="RowId")
    names = frame["FeatureName"].str.strip()
    index = {c: i for i, c in enumerate(COLUMNS)}
    columns = names.map(index)
    if columns.isna().any():
        i = int(np.flatnonzero(columns.isna().to_numpy())[0])
        bad = names.iloc[i]
        close = difflib.get_close_matches(bad, COLUMNS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise DataError(path, f"unknown FeatureName {bad!r}{hint}; expected one of Kaggle's 30 "
                              "keypoint columns such as 'left_eye_center_x'", row=int(rows[i]),
                        column="FeatureName")
    return Lookup(row_ids, image_ids, columns.to_numpy(dtype=np.int64), path)


def _integers(path: Path, col: pd.Series, name: str, rows: np.ndarray) -> np.ndarray:
    text = col.str.strip()
    nums = pd.to_numeric(text, errors="coerce")
    bad = nums.isna() | (nums != nums.round())
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(path, f"{text.iloc[i]!r} is not a whole number", row=int(rows[i]),
                        column=name)
    return nums.to_numpy().astype(np.int64)


def make_submission(model: Any, test: Any, lookup: str | Path, out: str | Path,
                    progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Write ``out`` (``RowId,Location``) for the lookup table's rows, atomically.

    ``model``: a :class:`facekp.core.model.predict.Predictor`, a ``.keras`` path or a Keras model.
    ``test``: Kaggle's ``test.csv`` (``ImageId,Image``) or a Dataset whose names are the ImageIds.
    Returns ``{"rows", "images", "clipped"}``.
    """
    from facekp.core.data import kaggle_csv
    from facekp.core.model.predict import Predictor

    table = read_lookup(lookup)
    if isinstance(test, (str, Path)):
        test_path = Path(test)
        dataset = kaggle_csv.read_kaggle_csv(test_path, progress=progress)
        if dataset.meta.get("layout") != "test":
            raise DataError(test_path, "this is a training file (keypoint columns + Image); "
                                       "expected Kaggle's test.csv layout ImageId,Image")
    else:
        dataset, test_path = test, None
    try:
        ids = np.asarray([int(str(n).strip()) for n in dataset.names], dtype=np.int64)
    except ValueError:
        raise DataError(test_path, "ImageId values must be whole numbers",
                        column="ImageId") from None
    order = np.argsort(ids, kind="stable")
    pos = np.searchsorted(ids[order], table.image_ids)
    pos = np.minimum(pos, len(ids) - 1)
    found = ids[order][pos] == table.image_ids
    if not found.all():
        i = int(np.flatnonzero(~found)[0])
        where = test_path if test_path is not None else "the test images"
        raise DataError(table.path, f"ImageId {table.image_ids[i]} is not in {where}",
                        row=i + 2, column="ImageId")
    rows_of_images = order[pos]
    needed = np.unique(rows_of_images)
    predictor = model if isinstance(model, Predictor) else Predictor(model)
    kset = predictor.keypoint_set
    if not derivable(kset, KAGGLE15):
        raise DataError(predictor.path, f"the model predicts keypoint set {kset.name!r} "
                                        f"({kset.size} points); a Kaggle submission needs "
                                        "kaggle15's 15 points (a kaggle15 model, or an ibug68 "
                                        "one whose points give them)")
    pred = np.full((len(dataset), len(COLUMNS)), np.nan, np.float32)
    # a 68-point model's points give Kaggle's 15 (each the mean of the points it comes from)
    pred[needed] = derive_keypoints(predictor.predict(dataset.images[needed]), kset, KAGGLE15)
    values = pred[rows_of_images, table.columns].astype(np.float64)
    clipped = int(((values < 0) | (values > IMAGE_SIZE)).sum())
    values = np.clip(values, 0.0, float(IMAGE_SIZE))
    with atomic_path(out) as tmp:
        frame = pd.DataFrame({"RowId": table.row_ids, "Location": values})
        frame.to_csv(tmp, index=False, float_format="%.4f", lineterminator="\n")
    return {"rows": int(len(table)), "images": int(len(needed)), "clipped": clipped}
