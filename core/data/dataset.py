"""Datasets of 96x96 grayscale faces with 15 keypoints: the .npz file, splits by person.

A :class:`Dataset` holds uint8 images (N x 96 x 96), float32 keypoints (N x 30, Kaggle column
order, pixels of the crop, NaN = missing) and per-row name, person and split
('train', 'val', 'test' or '' when not assigned), whether a person has checked the face's
labels (False for points a model predicted and nobody has looked at yet) and the photo the
face was cut from ('' when unknown).

Kaggle's CSV layouts: :mod:`facekp.core.data.kaggle_csv`; any dataset by its path:
:mod:`facekp.core.data.opener`.
"""
from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from facekp.core.errors import DataError
from facekp.core.fileio import atomic_path, check_input_file
from facekp.core.data.keypoint_sets import KAGGLE15, KeypointSet, derive_keypoints, from_dict
from facekp.core.data.keypoints import IMAGE_SIZE

PIXELS = IMAGE_SIZE * IMAGE_SIZE
SPLITS = ("train", "val", "test")
#: The arrays an .npz holds per face; beside them ``meta`` and ``keypoint_set`` as JSON strings.
NPZ_FIELDS = ("images", "keypoints", "names", "persons", "splits", "checked", "sources",
              "hidden")


@dataclass
class Dataset:
    images: np.ndarray
    keypoints: np.ndarray
    names: np.ndarray
    persons: np.ndarray
    splits: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    #: per face: a person has checked its labels (False: a model's points, not yet checked)
    checked: np.ndarray | None = None
    #: per face: the photo it was cut from ('' when unknown)
    sources: np.ndarray | None = None
    #: the keypoints' set: K names in order (``keypoints`` is N x 2K), flips, skeleton
    keypoint_set: KeypointSet = KAGGLE15
    #: N x K: a labelled point the labeller marked hidden (occluded: COCO visibility 1); it is
    #: trained on as any labelled point and drawn differently. False where not labelled.
    hidden: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.images = np.asarray(self.images)
        n = len(self.images)
        if self.images.dtype != np.uint8 or self.images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(f"images must be uint8 N x 96 x 96, got {self.images.dtype} "
                             f"{self.images.shape}")
        if not isinstance(self.keypoint_set, KeypointSet):
            raise ValueError(f"keypoint_set must be a KeypointSet, got {self.keypoint_set!r}")
        k2 = 2 * self.keypoint_set.size
        self.keypoints = np.asarray(self.keypoints, dtype=np.float32)
        if self.keypoints.shape != (n, k2):
            raise ValueError(f"keypoints must be N x {k2} with N={n} ({self.keypoint_set.name}), "
                             f"got {self.keypoints.shape}")
        self.names = np.asarray(self.names, dtype=str)
        self.persons = np.asarray(self.persons, dtype=str)
        self.splits = np.asarray(self.splits, dtype=str)
        self.checked = (np.ones(n, bool) if self.checked is None
                        else np.asarray(self.checked, dtype=bool))
        self.sources = (np.full(n, "", dtype=str) if self.sources is None
                        else np.asarray(self.sources, dtype=str))
        k = self.keypoint_set.size
        self.hidden = (np.zeros((n, k), bool) if self.hidden is None
                       else np.asarray(self.hidden, dtype=bool))
        if self.hidden.shape != (n, k):
            raise ValueError(f"hidden must be N x K = {n} x {k}, got {self.hidden.shape}")
        self.hidden = self.hidden & ~np.isnan(self.keypoints.reshape(n, k, 2)).any(axis=2)
        for label, arr in (("names", self.names), ("persons", self.persons),
                           ("splits", self.splits), ("checked", self.checked),
                           ("sources", self.sources)):
            if arr.shape != (n,):
                raise ValueError(f"{label} must have {n} entries, got shape {arr.shape}")

    @classmethod
    def from_arrays(cls, images: np.ndarray, keypoints: np.ndarray | None = None,
                    names: Sequence[str] | None = None, persons: Sequence[str] | None = None,
                    splits: Sequence[str] | None = None, meta: dict | None = None,
                    checked: Sequence[bool] | None = None,
                    sources: Sequence[str] | None = None,
                    keypoint_set: KeypointSet = KAGGLE15,
                    hidden: np.ndarray | None = None) -> "Dataset":
        n = len(images)
        k2 = 2 * keypoint_set.size
        return cls(
            images=images,
            keypoints=np.full((n, k2), np.nan, np.float32) if keypoints is None else keypoints,
            names=[str(i + 1) for i in range(n)] if names is None else names,
            persons=[""] * n if persons is None else persons,
            splits=[""] * n if splits is None else splits,
            meta=dict(meta or {}), checked=checked, sources=sources, keypoint_set=keypoint_set,
            hidden=hidden,
        )

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index: np.ndarray | Sequence[int] | slice) -> "Dataset":
        idx = index if isinstance(index, slice) else np.asarray(index)
        return replace(self, images=self.images[idx], keypoints=self.keypoints[idx],
                       names=self.names[idx], persons=self.persons[idx],
                       splits=self.splits[idx], meta=dict(self.meta),
                       checked=self.checked[idx], sources=self.sources[idx],
                       hidden=self.hidden[idx])

    def split(self, name: str) -> "Dataset":
        """Rows of one split ('train', 'val' or 'test'); 'all' returns every row."""
        if name == "all":
            return self
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {', '.join(SPLITS)}, all")
        return self.subset(np.flatnonzero(self.splits == name))

    @property
    def present(self) -> np.ndarray:
        """Boolean N x K: keypoint labelled (both x and y present)."""
        kp = self.keypoints.reshape(len(self), self.keypoint_set.size, 2)  # -1 fails on 0 rows
        # (x, y) as two planes: 30x faster than .any(axis=2) over pairs (8 ms at 39k faces)
        return ~(np.isnan(kp[..., 0]) | np.isnan(kp[..., 1]))

    @property
    def labelled(self) -> int:
        """Faces with at least one keypoint labelled."""
        return int(self.present.any(axis=1).sum())

    def split_counts(self) -> dict[str, int]:
        """Faces per split name: 'train', 'val', 'test' and '' (unassigned)."""
        return {s: int((self.splits == s).sum()) for s in (*SPLITS, "")}

    def complete(self) -> "Dataset":
        """Rows with every keypoint labelled (what the reference recipe trains on)."""
        return self.subset(np.flatnonzero(self.present.all(axis=1)))

    def concat(self, other: "Dataset") -> "Dataset":
        """This dataset's faces, then ``other``'s (both of one keypoint set)."""
        if other.keypoint_set != self.keypoint_set:
            raise DataError(None, f"cannot join faces of keypoint set "
                                  f"{other.keypoint_set.name!r} to faces of "
                                  f"{self.keypoint_set.name!r}")

        def cat(name):
            return np.concatenate([getattr(self, name), getattr(other, name)])

        return replace(self, images=cat("images"), keypoints=cat("keypoints"),
                       names=cat("names"), persons=cat("persons"), splits=cat("splits"),
                       meta=dict(self.meta), checked=cat("checked"), sources=cat("sources"),
                       hidden=cat("hidden"))

    def in_set(self, target: KeypointSet) -> "Dataset":
        """The same faces with their keypoints in ``target``'s set (derived: an ibug68 dataset
        gives kaggle15 keypoints; ValueError when the sets cannot be derived)."""
        if target == self.keypoint_set:
            return self
        keypoints = derive_keypoints(self.keypoints, self.keypoint_set, target)
        # a derived point is hidden when any point it comes from is
        used = (target.from_68_matrix() > 0).astype(float)
        hidden = (self.hidden.astype(float) @ used.T) > 0
        return replace(self, keypoints=keypoints, keypoint_set=target, hidden=hidden)

    def migrate(self, target: KeypointSet, renames: dict[str, str] | None = None,
                drop: bool = False) -> "Dataset":
        """The same faces in ``target``, a new version of this dataset's set: each point keeps
        its labels under its name (or under the new name ``renames`` gives it, old -> new);
        a point new in ``target`` starts missing. A point ``target`` no longer has is a
        DataError naming it, unless ``drop``."""
        renames = dict(renames or {})
        old = self.keypoint_set
        for a, b in renames.items():
            if a not in old.names:
                raise DataError(None, f"--rename {a}:{b}: {a!r} is not a keypoint of "
                                      f"{old.name!r}")
            if b not in target.names:
                raise DataError(None, f"--rename {a}:{b}: {b!r} is not a keypoint of "
                                      f"{target.name!r}")
        new_name = {n: renames.get(n, n) for n in old.names}
        lost = [n for n in old.names if new_name[n] not in target.names]
        if lost and not drop:
            raise DataError(None, f"{target.name!r} has no keypoint {lost[0]!r}"
                                  + (f" (nor {len(lost) - 1} more)" if len(lost) > 1 else "")
                                  + "; rename it (--rename OLD:NEW) or give --drop to lose "
                                    "its labels")
        n, k = len(self), target.size
        pts = np.full((n, k, 2), np.nan, np.float32)
        hidden = np.zeros((n, k), bool)
        here = self.keypoints.reshape(n, old.size, 2)
        for i, name in enumerate(old.names):
            if new_name[name] in target.names:
                j = target.index(new_name[name])
                pts[:, j], hidden[:, j] = here[:, i], self.hidden[:, i]
        return replace(self, keypoints=pts.reshape(n, 2 * k), keypoint_set=target,
                       hidden=hidden)

    @property
    def unchecked(self) -> np.ndarray:
        """Indices of the faces whose labels nobody has checked yet (a model's points)."""
        return np.flatnonzero(~self.checked)


# --- splits -------------------------------------------------------------------------------

def split_by_person(dataset: Dataset, fractions: Sequence[float] = (0.8, 0.1, 0.1),
                    seed: int = 0) -> Dataset:
    """Assign every row to train/val/test so that each person is in exactly one split.

    People (not faces) are shuffled with ``seed`` and cut by ``fractions``; the same input and
    seed always give the same split. Rows without a person each count as their own person.
    """
    if len(fractions) != 3 or abs(sum(fractions) - 1) > 1e-6 or min(fractions) < 0:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions}")
    persons = np.where(dataset.persons == "", np.char.add("row-", dataset.names.astype(str)),
                       dataset.persons)
    people = np.unique(persons)  # sorted: independent of row order
    order = np.random.default_rng(seed).permutation(len(people))
    n_val = int(round(fractions[1] * len(people)))
    n_test = int(round(fractions[2] * len(people)))
    labels = np.empty(len(people), dtype=object)
    labels[order[:n_test]] = "test"
    labels[order[n_test:n_test + n_val]] = "val"
    labels[order[n_test + n_val:]] = "train"
    lookup = dict(zip(people, labels))
    splits = np.array([lookup[p] for p in persons], dtype=str)
    meta = dict(dataset.meta, split={"by": "person", "fractions": list(fractions), "seed": seed})
    return replace(dataset, splits=splits, meta=meta)


#: How a dataset without any splits is divided for training (people, not faces).
TRAINING_FRACTIONS = (0.9, 0.1, 0.0)


def training_splits(dataset, seed: int = 0) -> tuple[Any, Any, str]:
    """The one rule for which faces train and which validate, for the CLI and the app alike.

    A dataset's own splits are used as they are (its test faces are never touched). Only a
    dataset with no splits at all is divided by person, 90% train / 10% validation, and the
    returned note says so (it is empty otherwise). A dataset with splits but no train or no
    validation faces is a :class:`DataError`. ``dataset``: a :class:`Dataset` or shards
    (:class:`facekp.core.data.shards.Shards`, whose splits are streamed; shards without splits
    cannot be divided here).
    """
    note = ""
    if not _has_splits(dataset):
        if not isinstance(dataset, Dataset):
            raise DataError(None, "no splits assigned; shards to train from need train and val "
                                  "splits: write them from a dataset with splits (e.g. "
                                  "'facekp import --split 0.8,0.1,0.1 ... --shards N')")
        dataset = split_by_person(dataset, TRAINING_FRACTIONS, seed=seed)
        note = ("no splits assigned; using 90% of its people for training and 10% for "
                "validation")
    train, val = dataset.split("train"), dataset.split("val")
    for name, part in (("train", train), ("val", val)):
        if len(part) == 0:
            raise DataError(None, f"no faces in split {name!r}; assign splits with "
                                  "'facekp import --split 0.8,0.1,0.1'")
    return train, val, note


def evaluation_faces(dataset, split: str) -> tuple[Any, str]:
    """The faces to evaluate on for ``split`` ("all" or a split name), and a note.

    A dataset without any splits has no test faces to hold out: every face is used and the
    note says so (it is empty otherwise). ``dataset``: a :class:`Dataset` or shards.
    """
    if split == "all" or not _has_splits(dataset):
        note = "" if split == "all" else (f"no splits assigned; evaluating every face instead "
                                          f"of split {split!r}")
        return dataset.split("all"), note
    return dataset.split(split), ""


def _has_splits(dataset) -> bool:
    """Some face has a split (any name but '', the unassigned)."""
    return dataset.split_counts()[""] < len(dataset)


def duplicate_rows(dataset: Dataset) -> np.ndarray:
    """Indices of the faces whose pixels are identical to an earlier face's (sorted)."""
    import hashlib

    seen: set[bytes] = set()
    dupes = []
    for i, image in enumerate(dataset.images):
        key = hashlib.blake2b(np.ascontiguousarray(image).tobytes(), digest_size=16).digest()
        if key in seen:
            dupes.append(i)
        seen.add(key)
    return np.asarray(dupes, dtype=np.int64)


# --- summary ------------------------------------------------------------------------------

def describe(dataset: Dataset) -> dict[str, Any]:
    """Faces, split sizes, and per keypoint: missing count, mean and std of x and y."""
    return summarize(dataset.keypoints, dataset.persons, dataset.splits,
                     len(duplicate_rows(dataset)), dataset.keypoint_set)


def summarize(keypoints: np.ndarray, persons: np.ndarray, splits: np.ndarray,
              duplicates: int, keypoint_set: KeypointSet = KAGGLE15) -> dict[str, Any]:
    """:func:`describe`'s summary from the per-face arrays it needs (no pixels) and the
    number of duplicate faces."""
    n, names = len(keypoints), keypoint_set.names
    kp = keypoints.reshape(n, len(names), 2)
    present = ~np.isnan(kp).any(axis=2)
    per_kp = {}
    with np.errstate(invalid="ignore"), _quiet_nan_warnings():
        mean = np.nanmean(kp, axis=0) if n else np.full((len(names), 2), np.nan)
        std = np.nanstd(kp, axis=0) if n else np.full((len(names), 2), np.nan)
    missing = (~present).sum(axis=0)
    for i, name in enumerate(names):
        per_kp[name] = {
            "missing": int(missing[i]),
            "mean_x": _num(mean[i, 0]), "mean_y": _num(mean[i, 1]),
            "std_x": _num(std[i, 0]), "std_y": _num(std[i, 1]),
        }
    counts = {s: int((splits == s).sum()) for s in SPLITS}
    unassigned = int((splits == "").sum())
    if unassigned:
        counts["unassigned"] = unassigned
    return {
        "faces": n,
        "keypoint_set": keypoint_set.name,
        "keypoints_per_face": len(names),
        "complete": int(present.all(axis=1).sum()),
        "people": int(len(np.unique(persons[persons != ""]))),
        "duplicates": int(duplicates),
        "splits": counts,
        "keypoints": per_kp,
    }


def format_description(desc: dict[str, Any]) -> str:
    """:func:`describe`'s figures as the lines ``facekp info`` prints."""
    k = desc["keypoints_per_face"]
    lines = [f"faces: {desc['faces']}  (all {k} keypoints: {desc['complete']}, "
             f"people: {desc['people']})",
             f"keypoint set: {desc['keypoint_set']} ({k} keypoints)",
             "splits: " + ", ".join(f"{k} {v}" for k, v in desc["splits"].items())]
    if desc.get("duplicates"):
        lines.append(f"warning: {desc['duplicates']} duplicate faces (same pixels as an earlier "
                     "face); 'facekp import --dedupe' leaves them out")
    lines.append(f"{'keypoint':26s} {'missing':>7s} {'mean x':>7s} {'std x':>6s} "
                 f"{'mean y':>7s} {'std y':>6s}")
    for name, s in desc["keypoints"].items():
        def f(v, w):
            return f"{'-':>{w}s}" if v is None else f"{v:{w}.1f}"
        lines.append(f"{name:26s} {s['missing']:7d} {f(s['mean_x'], 7)} {f(s['std_x'], 6)} "
                     f"{f(s['mean_y'], 7)} {f(s['std_y'], 6)}")
    return "\n".join(lines)


def _num(v: float) -> float | None:
    return None if np.isnan(v) else round(float(v), 3)


class _quiet_nan_warnings:
    def __enter__(self):
        import warnings
        self._cm = warnings.catch_warnings()
        self._cm.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._cm.__exit__(*exc)


# --- .npz ---------------------------------------------------------------------------------

def write_npz(dataset: Dataset, path: str | Path) -> Path:
    """Write a compressed .npz atomically (arrays plus JSON strings ``meta`` and
    ``keypoint_set``)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(
                fh, images=dataset.images, keypoints=dataset.keypoints,
                names=dataset.names.astype(str), persons=dataset.persons.astype(str),
                splits=dataset.splits.astype(str), checked=dataset.checked.astype(bool),
                sources=dataset.sources.astype(str), hidden=dataset.hidden.astype(bool),
                meta=np.array(json.dumps(dataset.meta, sort_keys=True)),
                keypoint_set=np.array(json.dumps(dataset.keypoint_set.to_dict())))
    return path


def _npz_images(path: Path, images: np.ndarray) -> np.ndarray:
    """An .npz file's images checked (N x 96 x 96 numbers 0-255, or 0-1 floats) -> uint8."""
    if not (np.issubdtype(images.dtype, np.number) or images.dtype == bool):
        raise DataError(path, f"images hold {images.dtype} values, expected numbers 0-255",
                        column="images")
    if images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise DataError(path, f"images have shape {images.shape}, expected N x 96 x 96",
                        column="images")
    if images.dtype != np.uint8:
        if np.issubdtype(images.dtype, np.floating) and not np.isfinite(images).all():
            raise DataError(path, "images hold NaN or infinite values", column="images")
        if np.issubdtype(images.dtype, np.floating) and np.nanmax(images, initial=0) <= 1.0:
            images = np.round(images * 255)
        if np.nanmin(images, initial=0) < 0 or np.nanmax(images, initial=0) > 255:
            raise DataError(path, "image values outside 0-255", column="images")
        images = images.astype(np.uint8)
    return images


def read_npz(path: str | Path) -> Dataset:
    """A dataset saved by :func:`write_npz`, every array checked (DataError naming the file
    and the array otherwise)."""
    path = check_input_file(path, ".npz dataset file")
    if not zipfile.is_zipfile(path):  # else np.load tries .npy or pickle and says so
        raise DataError(path, "not a .npz file (a .npz is a zip archive of numpy arrays)")
    try:
        npz = np.load(path, allow_pickle=False)
    except Exception as exc:  # zipfile.BadZipFile, ValueError, OSError ...
        raise DataError(path, f"not a readable .npz file ({exc})") from None
    with npz:
        keys = set(npz.files)
        if "images" not in keys:
            raise DataError(path, "no 'images' array; expected images (N x 96 x 96 uint8)",
                            column="images")
        images = _npz_images(path, _npz_array(npz, path, "images"))
        n = len(images)
        kset = _npz_keypoint_set(npz, path) if "keypoint_set" in keys else KAGGLE15
        k2 = 2 * kset.size
        keypoints = (_npz_array(npz, path, "keypoints") if "keypoints" in keys
                     else np.full((n, k2), np.nan))
        if not np.issubdtype(keypoints.dtype, np.number):
            raise DataError(path, f"keypoints hold {keypoints.dtype} values, expected numbers",
                            column="keypoints")
        if keypoints.shape != (n, k2):
            raise DataError(path, f"keypoints have shape {keypoints.shape}, expected {n} x {k2} "
                                  f"(keypoint set {kset.name})", column="keypoints")
        fields = {}
        for name in ("names", "persons", "splits", "sources", "checked"):
            if name in keys:
                arr = _npz_array(npz, path, name)
                if arr.shape != (n,):
                    raise DataError(path, f"{name} has shape {arr.shape}, expected ({n},)",
                                    column=name)
                if name == "checked" and arr.dtype != bool:
                    raise DataError(path, f"checked holds {arr.dtype} values, expected "
                                          "true/false per face", column=name)
                fields[name] = arr if name == "checked" else arr.astype(str)
        _check_split_names(path, fields.get("splits"))
        hidden = None
        if "hidden" in keys:
            hidden = _npz_array(npz, path, "hidden")
            if hidden.dtype != bool or hidden.shape != (n, kset.size):
                raise DataError(path, f"hidden has {hidden.dtype} {hidden.shape}, expected true/"
                                      f"false for {n} x {kset.size} keypoints", column="hidden")
        meta = {}
        if "meta" in keys:
            try:
                meta = json.loads(str(_npz_array(npz, path, "meta")))
            except ValueError:
                raise DataError(path, "meta is not valid JSON", column="meta") from None
            if not isinstance(meta, dict):
                raise DataError(path, "meta is not a JSON object", column="meta")
    bad = ~np.isnan(keypoints) & ((keypoints < 0) | (keypoints > IMAGE_SIZE))
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise DataError(path, f"keypoint {keypoints[r, c]:g} outside 0-96 (face {r + 1})",
                        column=kset.columns[c])
    return Dataset.from_arrays(images, keypoints, fields.get("names"), fields.get("persons"),
                               fields.get("splits"), meta, fields.get("checked"),
                               fields.get("sources"), keypoint_set=kset, hidden=hidden)


def _npz_keypoint_set(npz, path: Path) -> KeypointSet:
    """The keypoint set an .npz names (files written before sets travelled hold none: kaggle15)."""
    try:
        d = json.loads(str(_npz_array(npz, path, "keypoint_set")))
    except ValueError:
        raise DataError(path, "keypoint_set is not valid JSON", column="keypoint_set") from None
    return from_dict(d, path)


def _check_split_names(path: Path, splits: np.ndarray | None) -> None:
    """Every split name is train, val, test or empty (unassigned); else DataError naming them."""
    if splits is None:
        return
    unknown = sorted(set(map(str, np.unique(splits))) - set(SPLITS) - {""})
    if unknown:
        rows = int(np.isin(splits, unknown).sum())
        raise DataError(path, f"unknown split name(s) {', '.join(map(repr, unknown))} on {rows} "
                              f"faces; expected {', '.join(SPLITS)} or empty (unassigned)",
                        column="splits")


def _npz_array(npz, path: Path, name: str) -> np.ndarray:
    """One array of an open .npz; a damaged or pickled member is a DataError, not a crash."""
    try:
        return npz[name]
    except Exception as exc:  # zipfile.BadZipFile (CRC), ValueError (pickled objects), EOF ...
        raise DataError(path, f"array {name!r} cannot be read ({exc})", column=name) from None
