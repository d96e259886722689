"""Any dataset by its path: a ``.npz``, a Kaggle ``.csv`` or a folder of TFRecord shards, opened
or saved.

Where :mod:`facekp.core.data.dataset` (.npz), :mod:`facekp.core.data.kaggle_csv` and
:mod:`facekp.core.data.shards` (folders) meet, above them, so that none imports another.

Keypoint sets: a dataset opens in the set it was saved in, or in the one asked for when its
keypoints can be turned into it (an ibug68 dataset read as kaggle15). The embedded dataset
holds the 68 iBUG points and opens as kaggle15, the default everywhere, unless a set is asked
for (``facekp train --keypoints ibug68``, or a model of that set).
"""
from __future__ import annotations

from pathlib import Path

from facekp.core.data.dataset import Dataset, read_npz, write_npz
from facekp.core.data.kaggle_csv import read_kaggle_csv, write_kaggle_csv
from facekp.core.data.keypoint_sets import DEFAULT as DEFAULT_SET, KeypointSet, derivable
from facekp.core.data.shards import Shards, is_shards, open_shards
from facekp.core.errors import DataError
from facekp.core.fileio import check_input_file


def load(path: str | Path, keypoint_set: KeypointSet | None = None,
         prefer: KeypointSet | None = None) -> Dataset:
    """Read a dataset from ``.npz``, a Kaggle ``.csv`` (training or test layout) or a shard
    folder (every face is read into memory: streaming commands use :func:`open_dataset`).

    ``keypoint_set``: the set wanted; the dataset's keypoints are turned into it, or a
    DataError names both sets. ``prefer``: a set to turn them into only where that can be
    done (a model's set; the caller checks what it got). Neither: the set saved in the file
    (kaggle15 for the embedded dataset, see the module's docstring)."""
    path = Path(path)
    if is_shards(path):
        dataset = open_shards(path).read()
    else:
        suffix = path.suffix.lower()
        if suffix == ".npz":
            dataset = read_npz(path)
        elif suffix == ".csv":
            dataset = read_kaggle_csv(path)
        else:
            check_input_file(path, "dataset file")
            raise DataError(path, "unknown dataset format; expected a .npz or a Kaggle .csv "
                                  "file")
    return in_set(dataset, path, keypoint_set, prefer)


def in_set(dataset: Dataset, path: Path, keypoint_set: KeypointSet | None,
           prefer: KeypointSet | None) -> Dataset:
    """``dataset`` (read from ``path``) in the set asked for (see :func:`load`)."""
    have = dataset.keypoint_set
    want = keypoint_set
    if want is None and prefer is not None and derivable(have, prefer):
        want = prefer
    if want is None and is_embedded(path):
        want = DEFAULT_SET
    if want is None or want == have:
        return dataset
    if not derivable(have, want):
        raise DataError(path, f"holds keypoint set {have.name!r} ({have.size} points), which "
                              f"cannot be turned into {want.name!r} ({want.size} points)")
    return dataset.in_set(want)


def is_embedded(path: str | Path) -> bool:
    """``path`` is the dataset the app ships (``resources/faces.npz``)."""
    from facekp.core.resources import DEFAULT_DATASET

    try:
        return Path(path).resolve() == DEFAULT_DATASET.resolve()
    except OSError:
        return False


def open_dataset(path: str | Path, keypoint_set: KeypointSet | None = None,
                 prefer: KeypointSet | None = None) -> Dataset | Shards:
    """A dataset to train or evaluate on: shards (a folder) are opened for streaming (in the
    set they hold), a file is read into memory (:func:`load`, with its sets)."""
    if is_shards(Path(path)):
        shards = open_shards(path)
        if keypoint_set is not None and shards.keypoint_set != keypoint_set:
            raise DataError(path, f"the shards hold keypoint set {shards.keypoint_set.name!r} "
                                  f"and {keypoint_set.name!r} was asked for: read them into a "
                                  ".npz first ('facekp convert')")
        return shards
    return load(path, keypoint_set, prefer)


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
