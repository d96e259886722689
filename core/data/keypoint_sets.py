"""Keypoint sets as values: which points a face has, in which order, and how they relate.

A :class:`KeypointSet` names its points in order and says which trade places under a
horizontal flip (the subject's left and right), which are joined by skeleton lines, which
groups they fall into (for colours), which two points normalise errors (NME) and, for each
point, which iBUG 68 points it comes from (so that 68-point sources import into it).

Built in: ``kaggle15`` (Kaggle's 15 points, exactly :mod:`facekp.core.data.keypoints`' names
and order, the default everywhere) and ``ibug68`` (the iBUG 68-point layout that 300-W, dlib
and most face datasets use, 0-based, in its own order). A person's own set is a small JSON
file (:func:`load_set`, :func:`save_set`; ``facekp keypoints init``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facekp.core.data import keypoints as kaggle
from facekp.core.errors import DataError
from facekp.core.fileio import atomic_path, check_input_file

#: The fields a set's JSON file may hold.
FIELDS = ("name", "keypoints", "flip", "edges", "groups", "normalise_by", "from_68")


@dataclass(frozen=True)
class KeypointSet:
    """An ordered set of named keypoints (see the module's docstring).

    ``flip_pairs``: (left, right) names that swap under a horizontal flip; ``edges``: (a, b)
    names joined by a skeleton line; ``groups``: (group name, point names) pairs;
    ``normalise_by``: the two points whose distance normalises errors (NME), or None;
    ``from_68``: for each point, the 0-based iBUG 68 indices whose mean gives it, or None.
    """

    name: str
    names: tuple[str, ...]
    flip_pairs: tuple[tuple[str, str], ...] = ()
    edges: tuple[tuple[str, str], ...] = ()
    groups: tuple[tuple[str, tuple[str, ...]], ...] = ()
    normalise_by: tuple[str, str] | None = None
    from_68: tuple[tuple[int, ...], ...] | None = None

    def __post_init__(self):
        problem = _problem(self)
        if problem:
            raise ValueError(f"keypoint set {self.name!r}: {problem}")

    @property
    def size(self) -> int:
        """K, the number of keypoints."""
        return len(self.names)

    @property
    def columns(self) -> tuple[str, ...]:
        """The 2K coordinate columns ``<name>_x, <name>_y`` in order (Kaggle's for kaggle15)."""
        return tuple(f"{n}_{a}" for n in self.names for a in ("x", "y"))

    def index(self, name: str) -> int:
        return self.names.index(name)

    def flip_order(self) -> np.ndarray:
        """(K,) index giving the keypoints of a horizontally flipped face."""
        return kaggle.flip_order(self.names, self.flip_pairs)

    def flip(self, keypoints: np.ndarray) -> np.ndarray:
        """Keypoints (..., 2K) of a crop whose columns were reversed: x -> 95 - x (pixel
        centres) and left/right swapped with their missing values (NaN stays NaN)."""
        return kaggle.flip_columns(keypoints, self.flip_order())

    def from_68_matrix(self) -> np.ndarray:
        """(K, 68) weights: points68 (68, 2) -> this set's (K, 2) by ``matrix @ points68``."""
        if self.from_68 is None:
            raise ValueError(f"keypoint set {self.name!r} says nothing of the 68 iBUG points")
        return kaggle.mapping_from_68(self.from_68)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (:func:`load_set` reads it back to an equal set)."""
        out: dict[str, Any] = {"name": self.name, "keypoints": list(self.names),
                               "flip": [list(p) for p in self.flip_pairs],
                               "edges": [list(e) for e in self.edges],
                               "groups": {g: list(n) for g, n in self.groups}}
        if self.normalise_by is not None:
            out["normalise_by"] = list(self.normalise_by)
        if self.from_68 is not None:
            out["from_68"] = [list(i) for i in self.from_68]
        return out


def _problem(s: KeypointSet) -> str | None:
    """What is wrong with a set, in words, or None."""
    if not s.name or not isinstance(s.name, str):
        return "a set needs a name"
    if not s.names:
        return "a set needs at least one keypoint"
    seen: set[str] = set()
    for n in s.names:
        if not isinstance(n, str) or not n.strip():
            return f"keypoint names must be non-empty text, got {n!r}"
        if n in seen:
            return f"keypoint {n!r} is named twice"
        seen.add(n)
    return (_pairs_problem("flip", s.flip_pairs, seen, flips=True)
            or _pairs_problem("edge", s.edges, seen)
            or _groups_problem(s.groups, seen)
            or _pairs_problem("normalise_by", (s.normalise_by,) if s.normalise_by else (), seen)
            or _from_68_problem(s.from_68, len(s.names)))


def _pairs_problem(what: str, pairs, names: set[str], flips: bool = False) -> str | None:
    flipped: set[str] = set()
    for pair in pairs:
        if len(pair) != 2:
            return f"{what} {list(pair)!r}: expected two keypoint names"
        a, b = pair
        for n in (a, b):
            if n not in names:
                return f"{what} {a}-{b}: {n!r} is not a keypoint of the set"
        if a == b:
            return f"{what} {a}-{b} joins a point to itself"
        if flips:
            if a in flipped or b in flipped:
                return f"flip {a}:{b}: a point can trade places with one other point only"
            flipped.update((a, b))
    return None


def _groups_problem(groups, names: set[str]) -> str | None:
    for group, members in groups:
        for n in members:
            if n not in names:
                return f"group {group!r}: {n!r} is not a keypoint of the set"
    return None


def _from_68_problem(from_68, k: int) -> str | None:
    if from_68 is None:
        return None
    if len(from_68) != k:
        return f"from_68 has {len(from_68)} entries, expected one per keypoint ({k})"
    for i, idx in enumerate(from_68):
        if not idx or any(not isinstance(j, int) or not 0 <= j < 68 for j in idx):
            return f"from_68 entry {i + 1}: expected 68-point indices 0-67, got {list(idx)!r}"
    return None


# --- the built-in sets --------------------------------------------------------------------

KAGGLE15 = KeypointSet(
    name="kaggle15", names=kaggle.NAMES, flip_pairs=kaggle.FLIP_PAIRS,
    edges=(("left_eye_inner_corner", "left_eye_center"),
           ("left_eye_center", "left_eye_outer_corner"),
           ("right_eye_inner_corner", "right_eye_center"),
           ("right_eye_center", "right_eye_outer_corner"),
           ("left_eyebrow_inner_end", "left_eyebrow_outer_end"),
           ("right_eyebrow_inner_end", "right_eyebrow_outer_end"),
           ("nose_tip", "mouth_center_top_lip"),
           ("mouth_left_corner", "mouth_center_top_lip"),
           ("mouth_center_top_lip", "mouth_right_corner"),
           ("mouth_right_corner", "mouth_center_bottom_lip"),
           ("mouth_center_bottom_lip", "mouth_left_corner")),
    groups=(("left eye", tuple(n for n in kaggle.NAMES if n.startswith("left_eye_"))),
            ("right eye", tuple(n for n in kaggle.NAMES if n.startswith("right_eye_"))),
            ("left eyebrow", tuple(n for n in kaggle.NAMES if n.startswith("left_eyebrow"))),
            ("right eyebrow", tuple(n for n in kaggle.NAMES if n.startswith("right_eyebrow"))),
            ("nose", ("nose_tip",)),
            ("mouth", tuple(n for n in kaggle.NAMES if n.startswith("mouth")))),
    normalise_by=("left_eye_center", "right_eye_center"),
    from_68=tuple(kaggle.FROM_68[n] for n in kaggle.NAMES))


def _ibug68() -> KeypointSet:
    """iBUG's 68 points, 0-based in iBUG order; left and right are the subject's (point 0 is
    the jaw at the subject's right ear, 36-41 the subject's right eye)."""
    parts = (("jaw", 17), ("right_eyebrow", 5), ("left_eyebrow", 5), ("nose_bridge", 4),
             ("nose_base", 5), ("right_eye", 6), ("left_eye", 6), ("outer_lip", 12),
             ("inner_lip", 8))
    names, groups, start = [], [], 0
    for part, n in parts:
        members = tuple(f"{part}_{i}" for i in range(n))
        names += members
        groups.append((part.replace("_", " "), members))
        start += n
    mirror = ([(i, 16 - i) for i in range(8)] + [(17 + i, 26 - i) for i in range(5)]
              + [(31, 35), (32, 34)] + [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47),
                                          (41, 46)]
              + [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58), (60, 64), (61, 63),
                 (65, 67)])
    chains = [(0, 16, False), (17, 21, False), (22, 26, False), (27, 30, False),
              (31, 35, False), (36, 41, True), (42, 47, True), (48, 59, True), (60, 67, True)]
    edges = []
    for a, b, closed in chains:
        edges += [(i, i + 1) for i in range(a, b)] + ([(b, a)] if closed else [])
    edges += [(30, 33)]  # the nose tip down to the middle of its base
    return KeypointSet(
        name="ibug68", names=tuple(names),
        flip_pairs=tuple((names[b], names[a]) for a, b in mirror),  # (subject's left, right)
        edges=tuple((names[a], names[b]) for a, b in edges), groups=tuple(groups),
        normalise_by=(names[45], names[36]),  # outer eye corners, the 300-W convention
        from_68=tuple((i,) for i in range(68)))


IBUG68 = _ibug68()
BUILTIN: dict[str, KeypointSet] = {s.name: s for s in (KAGGLE15, IBUG68)}
DEFAULT = KAGGLE15


# --- files ---------------------------------------------------------------------------------

def from_dict(d: Any, source: str | Path | None = None) -> KeypointSet:
    """A set from its JSON form; :class:`DataError` naming ``source`` and the field when it
    is not one."""
    if not isinstance(d, dict):
        raise DataError(source, "not a keypoint set: expected a JSON object with 'name' and "
                                "'keypoints'")
    unknown = sorted(set(d) - set(FIELDS))
    if unknown:
        raise DataError(source, f"unknown field {unknown[0]!r}; a keypoint set has "
                                f"{', '.join(FIELDS)}")
    for key, kind in (("name", str), ("keypoints", list)):
        if not isinstance(d.get(key), kind):
            raise DataError(source, f"field '{key}' must be "
                                    f"{'text' if kind is str else 'a list of names'}")
    try:
        groups = d.get("groups") or {}
        return KeypointSet(
            name=d["name"], names=tuple(d["keypoints"]),
            flip_pairs=tuple(tuple(p) for p in d.get("flip") or ()),
            edges=tuple(tuple(e) for e in d.get("edges") or ()),
            groups=tuple((str(g), tuple(m)) for g, m in groups.items()),
            normalise_by=tuple(d["normalise_by"]) if d.get("normalise_by") else None,
            from_68=(tuple(tuple(i) if isinstance(i, list) else (i,) for i in d["from_68"])
                     if d.get("from_68") is not None else None))
    except (TypeError, ValueError, AttributeError) as exc:
        raise DataError(source, str(exc).replace(f"keypoint set {d['name']!r}: ", "")) from None


def load_set(spec: str | Path) -> KeypointSet:
    """A built-in set by name (``kaggle15``, ``ibug68``) or a set's JSON file."""
    if isinstance(spec, str) and spec in BUILTIN:
        return BUILTIN[spec]
    path = Path(spec)
    if path.suffix.lower() != ".json" and not path.exists():
        raise DataError(None, f"unknown keypoint set {str(spec)!r}: expected "
                              f"{' or '.join(BUILTIN)}, or a set's .json file")
    path = check_input_file(path, "keypoint set file")
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(path, f"not a JSON file ({exc})") from None
    return from_dict(d, path)


def save_set(keypoint_set: KeypointSet, path: str | Path) -> Path:
    """Write a set's JSON file atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(keypoint_set.to_dict(), indent=1) + "\n", encoding="utf-8")
    return path


def describe_set(s: KeypointSet) -> str:
    """A few lines for people: the points by number, flips, edges and the NME normaliser."""
    lines = [f"{s.name}: {s.size} keypoints"]
    lines += [f"  {i + 1:>3} {n}" for i, n in enumerate(s.names)]
    if s.flip_pairs:
        lines.append("flip: " + ", ".join(f"{a}:{b}" for a, b in s.flip_pairs))
    if s.edges:
        lines.append(f"edges: {len(s.edges)}")
    lines.append("NME normalised by: " + (" - ".join(s.normalise_by) if s.normalise_by
                                          else "nothing (the set has no such pair)"))
    if s.from_68 is not None:
        lines.append("imports from 68-point labels: yes")
    return "\n".join(lines)


# --- between sets --------------------------------------------------------------------------

def _is_68_points(s: KeypointSet) -> bool:
    return s.size == 68 and s.from_68 == tuple((i,) for i in range(68))


def derivable(source: KeypointSet, target: KeypointSet) -> bool:
    """Keypoints of ``source`` can be turned into ``target``'s: the same set, or 68 iBUG-ordered
    points and a target that says which of them each of its points comes from."""
    return source == target or (_is_68_points(source) and target.from_68 is not None)


def derive_keypoints(keypoints: np.ndarray, source: KeypointSet,
                     target: KeypointSet) -> np.ndarray:
    """(N, 2K source) -> (N, 2K target): each target point the mean of the 68 points it comes
    from; missing (NaN) when any of them is missing."""
    if source == target:
        return np.asarray(keypoints, np.float32)
    if not derivable(source, target):
        raise ValueError(f"keypoint set {source.name!r} cannot be turned into {target.name!r}")
    pts = np.asarray(keypoints, np.float64).reshape(len(keypoints), 68, 2)
    used = target.from_68_matrix()
    valid = ~np.isnan(pts).any(axis=2)
    out = np.einsum("kj,njc->nkc", used, np.nan_to_num(pts))
    complete = np.einsum("kj,nj->nk", (used > 0).astype(float), valid) == (used > 0).sum(1)
    out[~complete] = np.nan
    return out.reshape(len(keypoints), -1).astype(np.float32)


def check_compatible(data_set: KeypointSet, model_set: KeypointSet, data: str,
                     model: str) -> None:
    """Faces labelled in ``data_set`` can be scored by a model predicting ``model_set``; a
    DataError naming both sets otherwise."""
    if not derivable(data_set, model_set):
        raise DataError(None, f"{data} holds keypoint set {data_set.name!r} "
                              f"({data_set.size} points) and {model} predicts "
                              f"{model_set.name!r} ({model_set.size} points); neither can be "
                              "turned into the other")
