"""Datasets bigger than memory: TFRecord shards streamed with ``tf.data``.

A shard folder holds ``index.json`` and, for each split, up to N TFRecord files named
``SPLIT-00000-of-0000N.tfrecord`` (``unassigned-...`` for faces without a split). Each record
is a ``tf.train.Example`` of one face:

- ``image``: 9,216 bytes, the uint8 96x96 grayscale pixels row by row;
- ``keypoints``: 2K float32 (K points of the index's keypoint set; 30 in Kaggle column order
  for kaggle15), pixels of the crop, NaN = missing;
- ``name``, ``person``, ``split``, ``source`` (the photo it was cut from): UTF-8 strings;
  ``row``: int64, the face's row in the dataset the shards were written from (reading them back
  restores that order); ``checked``: int64 1/0 (a person has checked its labels); ``hidden``:
  K int64 1/0 (labelled points marked hidden). Shards written before the last three read as
  checked, without a photo, nothing hidden.

The index (:data:`INDEX`) holds the format and its version, the keypoint names and columns, the
dataset's meta, per split the faces, complete faces (all 15 keypoints), labelled faces (at
least one) and people, the sorted list of people, and per file its split, faces, complete and
labelled faces and size in bytes. The faces of a split are shuffled once (seeded) when written
and dealt into its files in turn, so each file holds a mix of people.

Training streams: the split's files in a shuffled order, read several at a time
(``interleave``), records parsed in parallel, shuffled in a bounded buffer
(:data:`SHUFFLE_BUFFER` faces), batched and prefetched by ``facekp.core.model.train``'s one
pipeline; no more than that buffer of faces is held in memory. Under multi-worker training each
worker reads whole files (auto-shard policy FILE) when a split has at least as many files as there
are workers, else every worker reads everything and keeps its share of records (DATA).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from facekp.core.data.dataset import SPLITS, Dataset, summarize
from facekp.core.errors import DataError
from facekp.core.fileio import atomic_folder, refuse_special
from facekp.core.data.keypoint_sets import KAGGLE15, KeypointSet, from_dict
from facekp.core.data.keypoints import IMAGE_SIZE

FORMAT = "facekp-shards"
VERSION = 1
INDEX = "index.json"
UNASSIGNED = "unassigned"
#: Faces held in the shuffle buffer while streaming (about 38 MB of pixels).
SHUFFLE_BUFFER = 4096
#: Files read at once while streaming (``interleave``'s cycle length, at most).
CYCLE_LENGTH = 8
PIXELS = IMAGE_SIZE * IMAGE_SIZE


def is_shards(path: str | Path) -> bool:
    """Where a dataset is given, a folder means shards, unless it is named like a dataset file
    (``faces.npz/``) and holds no index: that one is reported as a folder, not a file."""
    path = Path(path)
    return path.is_dir() and ((path / INDEX).is_file()
                              or path.suffix.lower() not in (".npz", ".csv"))


def _file_label(split: str) -> str:
    return split or UNASSIGNED


# --- writing -------------------------------------------------------------------------------

def write_shards(dataset: Dataset, out: str | Path, shards: int, overwrite: bool = False,
                 seed: int = 0, progress: Callable[[int, int], None] | None = None) -> dict:
    """Write ``dataset`` to the folder ``out`` as ``shards`` TFRecord files per split (fewer
    for a split with fewer faces) plus ``index.json``; return the index.

    Written into a temporary folder beside ``out``, renamed into place when complete. An
    existing ``out`` is refused unless ``overwrite``, and even then only an empty folder or a
    shard folder (one with an index) is replaced.
    """
    out = Path(out)
    if isinstance(shards, bool) or not isinstance(shards, (int, np.integer)) or shards < 1:
        raise DataError(out, f"the number of shards must be 1 or more, got {shards}")
    if len(dataset) == 0:
        raise DataError(out, "no faces to write")
    _check_replaceable(out, overwrite)
    with atomic_folder(out) as tmp:
        index = _write_files(dataset, tmp, int(shards), seed, progress)
        (tmp / INDEX).write_text(json.dumps(index, indent=1))
    return index


def _check_replaceable(out: Path, overwrite: bool) -> None:
    refuse_special(out)
    if not out.exists():
        return
    if not out.is_dir():
        raise DataError(out, "is a file; shards are written to a folder")
    if not overwrite:
        raise DataError(out, "already exists; give --overwrite to replace it")
    if not (out / INDEX).is_file() and any(out.iterdir()):
        raise DataError(out, f"is a folder without {INDEX} (not a shard folder); it is never "
                             "replaced: choose a new folder")


def _write_files(dataset: Dataset, folder: Path, shards: int, seed: int,
                 progress: Callable[[int, int], None] | None) -> dict:
    """Every split's faces (shuffled with ``seed``) dealt into its files; the index."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    files, done = [], 0
    complete = dataset.present.all(axis=1)
    labelled = dataset.present.any(axis=1)
    for split in (*SPLITS, ""):
        rows = rng.permutation(np.flatnonzero(dataset.splits == split))
        n = min(shards, len(rows))
        for i in range(n):
            part = rows[i::n]
            name = f"{_file_label(split)}-{i:05d}-of-{n:05d}.tfrecord"
            with tf.io.TFRecordWriter(str(folder / name)) as writer:
                for r in part:
                    writer.write(_example(dataset, int(r)))
            files.append({"file": name, "split": split, "faces": len(part),
                          "complete": int(complete[part].sum()),
                          "labelled": int(labelled[part].sum()),
                          "bytes": (folder / name).stat().st_size})
            done += len(part)
            if progress is not None:
                progress(done, len(dataset))
    return _index(dataset, files)


def _example(dataset: Dataset, r: int) -> bytes:
    import tensorflow as tf

    feature = tf.train.Feature
    return tf.train.Example(features=tf.train.Features(feature={
        "image": feature(bytes_list=tf.train.BytesList(
            value=[np.ascontiguousarray(dataset.images[r]).tobytes()])),
        "keypoints": feature(float_list=tf.train.FloatList(value=dataset.keypoints[r])),
        "name": feature(bytes_list=tf.train.BytesList(value=[dataset.names[r].encode()])),
        "person": feature(bytes_list=tf.train.BytesList(value=[dataset.persons[r].encode()])),
        "split": feature(bytes_list=tf.train.BytesList(value=[dataset.splits[r].encode()])),
        "row": feature(int64_list=tf.train.Int64List(value=[r])),
        "checked": feature(int64_list=tf.train.Int64List(value=[int(dataset.checked[r])])),
        "source": feature(bytes_list=tf.train.BytesList(value=[dataset.sources[r].encode()])),
        "hidden": feature(int64_list=tf.train.Int64List(
            value=dataset.hidden[r].astype(np.int64))),
    })).SerializeToString()


def _index(dataset: Dataset, files: list[dict]) -> dict:
    splits = {}
    for split in (*SPLITS, ""):
        mine = [f for f in files if f["split"] == split]
        if mine:
            people = dataset.persons[(dataset.splits == split) & (dataset.persons != "")]
            splits[_file_label(split)] = {
                "faces": sum(f["faces"] for f in mine), "files": len(mine),
                "complete": sum(f["complete"] for f in mine),
                "labelled": sum(f["labelled"] for f in mine),
                "people": int(len(np.unique(people)))}
    return {"format": FORMAT, "version": VERSION, "faces": len(dataset),
            "image": {"height": IMAGE_SIZE, "width": IMAGE_SIZE, "dtype": "uint8"},
            "keypoint_names": list(dataset.keypoint_set.names),
            "columns": list(dataset.keypoint_set.columns),
            "keypoint_set": dataset.keypoint_set.to_dict(),
            "splits": splits, "people": sorted(set(dataset.persons.tolist()) - {""}),
            "files": files, "meta": dataset.meta}


# --- opening -------------------------------------------------------------------------------

def open_shards(path: str | Path) -> "Shards":
    """The shard folder at ``path``, its index read and checked, and every file present with
    the size the index gives (DataError naming the folder or the file otherwise)."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, "no such shard folder")
    if not path.is_dir():
        raise DataError(path, "is a file, expected a shard folder")
    index_path = path / INDEX
    if not index_path.is_file():
        raise DataError(path, f"no {INDEX}: not a shard folder (write one with 'facekp "
                              "convert D.npz --out DIR --shards N')")
    try:
        index = json.loads(index_path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(index_path, f"not a readable shard index ({exc})") from None
    _check_index(index_path, index)
    for f in index["files"]:
        file = path / f["file"]
        if not file.is_file():
            raise DataError(file, "shard file missing (the index lists it)")
        size = file.stat().st_size
        if size != f["bytes"]:
            raise DataError(file, f"corrupt shard: {size} bytes, the index says {f['bytes']}")
    return Shards(path, index)


def _check_index(path: Path, index: Any) -> None:
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise DataError(path, f"not a facekp shard index (expected \"format\": \"{FORMAT}\")")
    version = index.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise DataError(path, f"shard format version {version!r}; this facekp reads version "
                              f"{VERSION} or older: update facekp")
    kset = index_keypoint_set(path, index)
    if index.get("columns") != list(kset.columns):
        raise DataError(path, f"keypoint columns differ from the {2 * kset.size} of keypoint set "
                              f"{kset.name!r}", column="columns")
    files = index.get("files")
    keys = {"file", "split", "faces", "complete", "labelled", "bytes"}
    if (not isinstance(files, list) or not files
            or not all(isinstance(f, dict) and keys <= set(f) for f in files)):
        raise DataError(path, f"the index lists no shard files (each needs {sorted(keys)})")
    for f in files:
        if f["split"] not in (*SPLITS, "") or Path(f["file"]).name != f["file"]:
            raise DataError(path, f"bad file entry {f!r}", column="files")


def index_keypoint_set(path: Path, index: dict) -> KeypointSet:
    """The keypoint set a shard index names (folders written before sets travelled: kaggle15)."""
    return from_dict(index["keypoint_set"], path) if "keypoint_set" in index else KAGGLE15


class Shards:
    """An opened shard folder: counts from its index; faces streamed from its files."""

    def __init__(self, path: Path, index: dict):
        self.path = Path(path)
        self.index = index
        self.meta = dict(index.get("meta") or {})
        self.keypoint_set = index_keypoint_set(self.path / INDEX, index)

    def __len__(self) -> int:
        return int(self.index["faces"])

    def split_counts(self) -> dict[str, int]:
        """Faces per split name ('' for unassigned), as :meth:`Dataset.split_counts`."""
        counts = dict.fromkeys((*SPLITS, ""), 0)
        for f in self.index["files"]:
            counts[f["split"]] += int(f["faces"])
        return counts

    def split(self, name: str) -> "ShardSplit":
        """The faces of one split ('all': every face), streamed."""
        if name != "all" and name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {', '.join(SPLITS)}, all")
        files = [f for f in self.index["files"] if name == "all" or f["split"] == name]
        return ShardSplit(self, files)

    def read(self) -> Dataset:
        """Every face in memory, in the order of the dataset the shards were written from
        (for the app and for commands that need random access, not for training)."""
        parts = list(self.split("all").batches(1024, fields=True))
        if not parts:
            raise DataError(self.path, "the shard files hold no faces")
        order = np.argsort(np.concatenate([p["row"] for p in parts]), kind="stable")

        def cat(key):
            return np.concatenate([p[key] for p in parts])[order]
        return Dataset(cat("image"), cat("keypoints"), cat("name"), cat("person"),
                       cat("split"), dict(self.meta), checked=cat("checked").astype(bool),
                       sources=cat("source"), keypoint_set=self.keypoint_set,
                       hidden=cat("hidden").astype(bool))

    def describe(self) -> dict[str, Any]:
        """:func:`facekp.core.data.dataset.describe`'s summary from one streaming pass: keypoints, people and
        splits are collected (no pixels), images are hashed for duplicates."""
        import hashlib

        keypoints, persons, splits, seen, dupes = [], [], [], set(), 0
        for part in self.split("all").batches(1024, fields=True):
            keypoints.append(part["keypoints"])
            persons.append(part["person"])
            splits.append(part["split"])
            for image in part["image"]:
                key = hashlib.blake2b(image.tobytes(), digest_size=16).digest()
                dupes += key in seen
                seen.add(key)
        return summarize(np.concatenate(keypoints), np.concatenate(persons),
                         np.concatenate(splits), dupes, self.keypoint_set)


class ShardSplit:
    """Some files of a shard folder (a split, or all): what ``facekp.core.model.train``'s pipeline and
    ``facekp.core.quality.evaluate`` stream, with the counts they need known from the index."""

    def __init__(self, shards: Shards, files: list[dict], complete_only: bool = False):
        self.shards = shards
        self.entries = files
        self.files = [shards.path / f["file"] for f in files]
        self.complete_only = complete_only
        self.meta = dict(shards.meta, source=str(shards.path))
        self.keypoint_set = shards.keypoint_set
        self.shuffle_buffer = SHUFFLE_BUFFER

    def __len__(self) -> int:
        key = "complete" if self.complete_only else "faces"
        return sum(int(f[key]) for f in self.entries)

    @property
    def labelled(self) -> int:
        """Faces with at least one keypoint labelled."""
        key = "complete" if self.complete_only else "labelled"
        return sum(int(f[key]) for f in self.entries)

    def complete(self) -> "ShardSplit":
        """The faces with every keypoint labelled (filtered while streaming)."""
        return ShardSplit(self.shards, self.entries, complete_only=True)

    def auto_shard_policy(self, workers: int):
        """FILE when every worker can have whole files, else DATA (see the module's doc)."""
        import tensorflow as tf

        policy = tf.data.experimental.AutoShardPolicy
        return policy.FILE if len(self.files) >= max(1, workers) else policy.DATA

    def elements(self, shuffle: bool, seed: int = 0, shard: tuple[int, int] | None = None,
                 workers: int = 1):
        """A ``tf.data.Dataset`` of (uint8 image (96, 96, 1), float32 keypoints (30,)) for one
        pass: files in a shuffled order and read several at a time when ``shuffle``, in order
        otherwise (the shuffle buffer is the caller's: ``facekp.core.model.pipeline.pipeline``). Its
        length is asserted (so Keras knows it, and a file holding fewer faces than the index says
        fails), except for one worker's share: ``shard``, or ``workers`` > 1 that tf.data's
        auto-sharding gives whole files (:meth:`auto_shard_policy`).

        ``shard`` (count, index): one worker's share of the faces. With at least ``count``
        files, whole files (every count-th of the index's list, the same on every worker);
        with fewer, every count-th face of a pass read in the same order on every worker."""
        import tensorflow as tf

        files = tf.data.Dataset.from_tensor_slices(
            ([str(f) for f in self.files], np.array([e["faces"] for e in self.entries], np.int64)))
        by_file = shard is not None and len(self.files) >= shard[0]
        if by_file:
            files = files.shard(*shard)
        count = len(self.files) // shard[0] if by_file else len(self.files)
        if shuffle:
            files = files.shuffle(max(1, count), seed=seed, reshuffle_each_iteration=True)
        cycle = max(1, min(count, CYCLE_LENGTH)) if shuffle else 1
        # workers that split faces (not files) must read every pass in the same order
        ordered = not shuffle or (shard is not None and not by_file)
        parallel = {"num_parallel_calls": tf.data.AUTOTUNE, "deterministic": ordered}
        d = files.interleave(_records_as_indexed, cycle_length=cycle,
                             **(parallel if cycle > 1 else {}))
        k2 = 2 * self.keypoint_set.size
        d = d.map(_no_autograph(lambda r: _parse_training(r, k2)), **parallel)
        if self.complete_only:
            d = d.filter(_no_autograph(
                lambda x, y: tf.reduce_all(tf.logical_not(tf.math.is_nan(y)))))
        if shard is None:
            if workers > 1 and self.auto_shard_policy(workers) == \
                    tf.data.experimental.AutoShardPolicy.FILE:
                return d
            return d.apply(tf.data.experimental.assert_cardinality(len(self)))
        return d if by_file else d.shard(*shard)

    def check(self) -> None:
        """Read every file through: a DataError names a corrupt one (see :meth:`batches`)."""
        for _ in self.batches(1024):
            pass

    def batches(self, batch_size: int = 256, fields: bool = False
                ) -> Iterator[dict[str, np.ndarray]]:
        """Batches as numpy, file by file in order: ``image`` uint8 (B, 96, 96) and
        ``keypoints`` (B, 30), with ``fields`` also ``name``, ``person``, ``split``, ``row``.
        A corrupt file, or one holding another number of faces than the index says, is a
        DataError naming it."""
        import tensorflow as tf

        k2 = 2 * self.keypoint_set.size
        parse = _no_autograph(lambda r: _parse_batch(r, fields, k2))
        for file, entry in zip(self.files, self.entries):
            count = 0
            try:
                d = tf.data.TFRecordDataset(str(file)).batch(batch_size).map(parse)
                for part in d.as_numpy_iterator():
                    count += len(part["keypoints"])
                    yield _keep(part, self.complete_only)
            except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as exc:
                raise DataError(file, f"corrupt shard: {_reason(exc)}") from None
            if count != entry["faces"]:
                raise DataError(file, f"holds {count} faces, the index says {entry['faces']}")


def _reason(exc) -> str:
    """What TensorFlow says is wrong with a record, without its internals (the function node,
    the op and the device it ran on): e.g. 'corrupted record at 142546'."""
    import re

    text = re.sub(r"\{\{[^}]*\}\}|\[Op:[^\]]*\]|\bname:\s*$", "", exc.message.splitlines()[0])
    return " ".join(text.split()) or "a record cannot be read"


def _records_as_indexed(file, faces):
    """A shard file's records, failing (FailedPreconditionError) where the file holds another
    number of faces than its index entry says: training checks the counts as ``info`` does,
    while it reads (:meth:`ShardSplit.check` then names the file)."""
    import tensorflow as tf

    return tf.data.TFRecordDataset(file).apply(tf.data.experimental.assert_cardinality(faces))


def _no_autograph(fn):
    import tensorflow as tf

    return tf.autograph.experimental.do_not_convert(fn)


def _parse_training(record, k2: int):
    """One serialized face -> (uint8 (96, 96, 1), float32 (2K,))."""
    import tensorflow as tf

    f = tf.io.parse_single_example(record, {
        "image": tf.io.FixedLenFeature([], tf.string),
        "keypoints": tf.io.FixedLenFeature([k2], tf.float32)})
    image = tf.reshape(tf.io.decode_raw(f["image"], tf.uint8), (IMAGE_SIZE, IMAGE_SIZE, 1))
    return image, f["keypoints"]


def _parse_batch(records, fields: bool, k2: int):
    import tensorflow as tf

    spec = {"image": tf.io.FixedLenFeature([], tf.string),
            "keypoints": tf.io.FixedLenFeature([k2], tf.float32)}
    if fields:
        spec.update({k: tf.io.FixedLenFeature([], tf.string) for k in ("name", "person",
                                                                       "split")})
        spec["row"] = tf.io.FixedLenFeature([], tf.int64)
        # shards written before these fields: checked, no photo, nothing hidden
        spec["checked"] = tf.io.FixedLenFeature([], tf.int64, default_value=1)
        spec["source"] = tf.io.FixedLenFeature([], tf.string, default_value=b"")
        spec["hidden"] = tf.io.FixedLenFeature([k2 // 2], tf.int64,
                                               default_value=[0] * (k2 // 2))
    f = tf.io.parse_example(records, spec)
    f["image"] = tf.reshape(tf.io.decode_raw(f["image"], tf.uint8), (-1, IMAGE_SIZE, IMAGE_SIZE))
    return f


def _keep(part: dict, complete_only: bool) -> dict[str, np.ndarray]:
    for key in ("name", "person", "split", "source"):
        if key in part:
            part[key] = np.array([v.decode() for v in part[key]], dtype=str)
    if complete_only:
        keep = ~np.isnan(part["keypoints"]).any(axis=1)
        part = {k: v[keep] for k, v in part.items()}
    return part
