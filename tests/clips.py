"""Short test clips made from real faces: ytf68 frames of one person, moved smoothly over a
640x480 frame, written with OpenCV. Used by tests/test_video.py and benchmarks/video.py.

Each source photo is held for ``hold`` frames while the whole picture pans and zooms along a
slow, known path (a sine in x, y and scale), so the labels of every frame are known exactly:
the photo's 68 labelled points (mapped to the 15 keypoints) carried by the same transform.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
YTF68 = ROOT.parent / "shared" / "data" / "ytf68"
#: A person of the embedded dataset's test split (the default model never trained on them).
PERSON = "Wesley_Clark"
SIZE = (640, 480)
FACE_HEIGHT = 300          # the source photo is scaled to this many pixels tall
BACKGROUND = (110, 100, 90)


def person_frames(person: str = PERSON, folder: str = "training") -> list[tuple[Path, np.ndarray]]:
    """(photo path, 68 labelled points) of ``person`` in a ytf68 folder, sorted by name."""
    out = []
    with open(YTF68 / f"{folder}_frames_keypoints.csv", newline="") as fh:
        rows = csv.reader(fh)
        next(rows)
        for row in rows:
            if row[0].rsplit("_", 1)[0] == person:
                out.append((YTF68 / folder / row[0],
                            np.array(row[1:], dtype=np.float64).reshape(68, 2)))
    if not out:
        raise ValueError(f"no ytf68 frames of {person} in {folder}/")
    return sorted(out, key=lambda item: item[0].name)


def transform(t: int, height: int) -> np.ndarray:
    """The 2 x 3 affine that places a photo ``height`` px tall in frame ``t``."""
    s = FACE_HEIGHT / height * (1 + 0.05 * math.sin(2 * math.pi * t / 70))
    cx = SIZE[0] / 2 + 60 * math.sin(2 * math.pi * t / 90)
    cy = SIZE[1] / 2 + 20 * math.sin(2 * math.pi * t / 55)
    return np.array([[s, 0, cx - s * height / 2], [0, s, cy - s * height / 2]])


def make_clip(path: str | Path, frames: int = 36, hold: int = 6, person: str = PERSON,
              fps: float = 25.0, fourcc: str = "mp4v") -> dict:
    """Write a ``frames``-frame clip to ``path``; returns {"labels": (frames, 15, 2) frame px,
    "source": (frames,) index of the photo shown, "photos": their paths}."""
    import cv2

    from facekp.core.data.keypoints import from_68

    photos = person_frames(person)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, SIZE)
    assert writer.isOpened(), f"OpenCV cannot write {path}"
    labels, source = [], []
    images = {}
    for t in range(frames):
        k = (t // hold) % len(photos)
        if k not in images:
            images[k] = cv2.imread(str(photos[k][0]))
        img = images[k]
        m = transform(t, img.shape[0])
        frame = cv2.warpAffine(img, m, SIZE, flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=BACKGROUND)
        writer.write(frame)
        pts = from_68(photos[k][1])
        labels.append(pts @ m[:, :2].T + m[:, 2])
        source.append(k)
    writer.release()
    return {"labels": np.array(labels), "source": np.array(source),
            "photos": [p for p, _ in photos]}
