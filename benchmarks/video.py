"""Video: frames/s and keypoint jitter of ``facekp predict VIDEO`` (facekp.core.photos.video.FaceTracker).

The clip (tests/clips.py): the ytf68 frames of one person of the embedded dataset's test
split (the default model never trained on them), each held for ``--hold`` frames while the
picture pans and zooms smoothly over a 640x480 frame (MPEG-4, 25 fps), so every frame's
labels are known (the photo's labels carried by the same motion). In one run, on the same
decoded frames, it prints for each way of processing them:

- frames/s: frames / wall time of decoding, colour conversion, detection, prediction and
  smoothing (model loading and the first call's tracing done before timing), and the ratio to
  the baseline "detect every frame": the photo path (Predictor.predict_photo: MTCNN, frame
  from its points, predict) on each frame, without tracking;
- detector runs;
- error: RMS distance (px) between predicted and labelled keypoints, all frames with a face;
- jitter: RMS over consecutive frame pairs showing the same photo (and over the 15 keypoints)
  of the length of (predicted motion - labelled motion) between the two frames, in px of the
  frame. The labelled motion is the known pan and zoom, so jitter is the frame-to-frame
  keypoint motion that the face did not make. Frame pairs across a change of photo (a cut)
  are left out of jitter but not of error, so lag after a cut shows in error.

``--sweep`` also runs the tracker with other One Euro and EMA settings (facekp.core.photos.video's
defaults are compared with them).

    python benchmarks/video.py [--model M.keras] [--hold 12] [--photos 12] [--sweep]
    python benchmarks/video.py --smoke       # seconds: 2 photos x 3 frames (still runs?)
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from common import ROOT, add_smoke, parse_args, temporary_folder  # noqa: E402

if str(ROOT / "tests") not in sys.path:
    sys.path.insert(1, str(ROOT / "tests"))
from clips import PERSON, make_clip  # noqa: E402


def read_frames(path: Path) -> tuple[list[np.ndarray], float]:
    from facekp.core.photos.video import VideoReader

    reader = VideoReader(path)
    frames = [f for _, f in reader.frames()]
    reader.close()
    return frames, reader.fps


def run_tracker(predictor, frames, fps, detect_every, smoothing, **settings):
    """(keypoints per frame (15, 2) of the first track or NaN, seconds, detector runs)."""
    import cv2

    from facekp.core.photos.video import FaceTracker

    tracker = FaceTracker(predictor, detect_every, smoothing, fps, **settings)
    out = np.full((len(frames), 15, 2), np.nan)
    start = time.perf_counter()
    for i, bgr in enumerate(frames):
        tracks = tracker.step(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), i / fps,
                              gray=cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
        if tracks:
            out[i] = tracks[0].keypoints
    return out, time.perf_counter() - start, tracker.detections


def run_photo_path(predictor, frames):
    """Detection on every frame: the photo path, no tracking."""
    import cv2

    out = np.full((len(frames), 15, 2), np.nan)
    start = time.perf_counter()
    for i, bgr in enumerate(frames):
        res = predictor.predict_photo(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        if res.faces:
            out[i] = res.faces[0].keypoints
    return out, time.perf_counter() - start, len(frames)


def error_and_jitter(pred: np.ndarray, labels: np.ndarray, source: np.ndarray):
    """(RMS error px, RMS jitter px, frames with a face) as the module text defines them."""
    found = np.isfinite(pred).all(axis=(1, 2))
    err = np.sqrt(np.mean(np.sum((pred[found] - labels[found]) ** 2, axis=-1)))
    pairs = found[1:] & found[:-1] & (source[1:] == source[:-1])
    motion = (pred[1:] - pred[:-1]) - (labels[1:] - labels[:-1])
    jitter = np.sqrt(np.mean(np.sum(motion[pairs] ** 2, axis=-1)))
    return err, jitter, int(found.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "resources" / "models" / "default.keras"))
    parser.add_argument("--hold", type=int, default=12, help="frames per photo")
    parser.add_argument("--photos", type=int, default=12, help="photos of the person")
    parser.add_argument("--sweep", action="store_true", help="also other smoothing settings")
    add_smoke(parser, photos=2, hold=3)
    args = parse_args(parser)
    from facekp.core.model.predict import Predictor

    with temporary_folder("video") as tmp:
        clip = make_clip(Path(tmp) / "clip.mp4", frames=args.photos * args.hold, hold=args.hold)
        frames, fps = read_frames(Path(tmp) / "clip.mp4")
    labels, source = clip["labels"], clip["source"]
    print(f"clip: {len(frames)} frames 640x480 at {fps:g} fps, {args.photos} ytf68 photos of "
          f"{PERSON} x {args.hold} frames; labelled eye distance median "
          f"{np.median(np.linalg.norm(labels[:, 0] - labels[:, 1], axis=-1)):.1f} px")
    predictor = Predictor(args.model)
    predictor.predict_photo(frames[0][..., ::-1])          # build MTCNN, trace both models
    runs = [("detect every frame (photo path)", lambda: run_photo_path(predictor, frames)),
            ("tracking, detect every 10 (default)",
             lambda: run_tracker(predictor, frames, fps, 10, "off")),
            ("tracking + One Euro",
             lambda: run_tracker(predictor, frames, fps, 10, "one-euro")),
            ("tracking + EMA", lambda: run_tracker(predictor, frames, fps, 10, "ema"))]
    if args.sweep:
        for mc, beta in ((0.5, 4.0), (2.0, 4.0), (1.0, 1.0), (1.0, 16.0), (0.5, 16.0)):
            runs.append((f"tracking + One Euro mincutoff {mc} beta {beta}",
                         lambda mc=mc, beta=beta: run_tracker(predictor, frames, fps, 10,
                                                              "one-euro", mincutoff=mc,
                                                              beta=beta)))
        for alpha in (0.3, 0.7):
            runs.append((f"tracking + EMA alpha {alpha}",
                         lambda alpha=alpha: run_tracker(predictor, frames, fps, 10, "ema",
                                                         alpha=alpha)))
    print(f"{'':46s} {'frames/s':>8s} {'x base':>7s} {'detector':>8s} {'faces':>6s} "
          f"{'error px':>8s} {'jitter px':>9s}")
    base = None
    for name, fn in runs:
        pred, seconds, detections = fn()
        rate = len(frames) / seconds
        base = base or rate
        err, jitter, found = error_and_jitter(pred, labels, source)
        print(f"{name:46s} {rate:8.1f} {rate / base:7.2f} {detections:8d} {found:6d} "
              f"{err:8.2f} {jitter:9.2f}", flush=True)


if __name__ == "__main__":
    main()
