"""Any dataset by its path: a ``.npz``, a Kaggle ``.csv`` or a folder of TFRecord shards, opened
or saved.

Where :mod:`facekp.core.data.dataset` (.npz), :mod:`facekp.core.data.kaggle_csv` and
:mod:`facekp.core.data.shards` (folders) meet, above them, so that none imports another.
"""
from __future__ import annotations

from pathlib import Path

from facekp.core.data.dataset import Dataset, read_npz, write_npz
from facekp.core.data.kaggle_csv import read_kaggle_csv, write_kaggle_csv
from facekp.core.data.shards import Shards, is_shards, open_shards
from facekp.core.errors import DataError
from facekp.core.fileio import check_input_file


def load(path: str | Path) -> Dataset:
    """Read a dataset from ``.npz``, a Kaggle ``.csv`` (training or test layout) or a shard
    folder (every face is read into memory: streaming commands use :func:`open_dataset`)."""
    path = Path(path)
    if is_shards(path):
        return open_shards(path).read()
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return read_npz(path)
    if suffix == ".csv":
        return read_kaggle_csv(path)
    check_input_file(path, "dataset file")
    raise DataError(path, "unknown dataset format; expected a .npz or a Kaggle .csv file")


def open_dataset(path: str | Path) -> Dataset | Shards:
    """A dataset to train or evaluate on: shards (a folder) are opened for streaming, a file is
    read into memory."""
    return open_shards(path) if is_shards(Path(path)) else load(path)


def save(dataset: Dataset, path: str | Path) -> Path:
    """Write ``dataset`` atomically as a ``.npz`` or a Kaggle training ``.csv``, by the name's
    suffix."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return write_npz(dataset, path)
    if suffix == ".csv":
        return write_kaggle_csv(dataset, path)
    raise DataError(path, "unknown dataset format; expected a file name ending in .npz or .csv")
