"""``facekp predict``: the faces and keypoints of photos, folders and videos."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from facekp.core.cli.common import model_path, print_json, warn_non_finite
from facekp.core.errors import FacekpError
from facekp.core.fileio import check_output, refuse_input_as_output, same_file


# --- predict ------------------------------------------------------------------------------

def _draw_photo(res, target: Path) -> str:
    """A predicted photo with its faces' boxes and keypoints drawn, to ``target`` (PNG,
    atomically); returns its path."""
    from facekp.core.fileio import atomic_path
    from facekp.core.faces.render import photo_with_faces

    img = photo_with_faces(res.image, [f.box.as_list() for f in res.faces],
                           [f.keypoints for f in res.faces])
    with atomic_path(target) as tmp:
        img.save(tmp, format="PNG")
    return str(target)


def cmd_predict(args: argparse.Namespace) -> int:
    """``facekp predict``: keypoints of the faces in photos, a folder (--jsonl) or a video."""
    from facekp.core.errors import DataError
    from facekp.core.photos.photo_json import photo_record, result_record
    from facekp.core.model.predict import Predictor

    from facekp.core.photos import batch  # folders, --jsonl, --resume, --shard, --workers
    from facekp.core.photos import video  # a video file: tracked faces per frame
    from facekp.core.faces.detect import make_detector

    if args.detect_side is not None and args.detect_side < 64:
        raise FacekpError(f"--detect-side must be at least 64 px, got {args.detect_side}")

    if any(video.is_video(p) for p in args.photos):
        return video.run(args, model_path(args), _detector_side(args))
    _refuse_video_options(args)
    batch.check_options(args)
    if args.jsonl is None:
        args.photos = batch.expand_folders(args.photos, args.recursive)
    drawn = _drawing_paths(args) if args.draw else {}
    side = _detector_side(args)
    if args.jsonl is not None:
        return batch.run(args, model_path(args), side)
    predictor = Predictor(model_path(args), detector=make_detector(args.detector, **side),
                          min_confidence=args.min_confidence, engine=args.engine)
    results, failed, non_finite = [], 0, 0
    for photo in args.photos:
        try:
            res = predictor.predict_photo(photo, passes=args.passes, confidence=args.json and
                                          predictor.confidence_head is not None)
        except DataError as exc:
            failed += 1
            print(f"facekp predict: error: {exc}", file=sys.stderr)
            results.append({**photo_record(photo, []), "error": exc.reason})
            continue
        # keypoints named by the model's set; a non-finite keypoint is null there
        entry, truth_error = result_record(photo, res, predictor.keypoint_set)
        if truth_error is not None:
            print(f"facekp predict: warning: ground truth not used: {truth_error}",
                  file=sys.stderr)
        non_finite += sum(int((~np.isfinite(f.keypoints)).sum()) for f in res.faces)
        if drawn:
            entry["drawn"] = _draw_photo(res, drawn[photo])
        results.append(entry)
        if not args.json:
            _print_faces(photo, res, entry.get("drawn"), predictor.keypoint_set)
    if args.json:
        warn_non_finite(args.command, non_finite)
        print_json(results, args.command)
    return 2 if failed else 0


def _drawing_paths(args) -> dict[str, Path]:
    """Before any work: each photo's drawing, ``--draw DIR/<stem>.png``. Refused (one line
    naming the file) when it would replace a photo, when two photos would be drawn to one file,
    or when it exists and --overwrite is not given."""
    folder, paths, seen = Path(args.draw), {}, {}
    for photo in args.photos:
        target = folder / f"{Path(photo).stem}.png"
        other = seen.setdefault(os.path.normcase(os.path.abspath(target)), photo)
        if not same_file(other, photo):
            raise FacekpError(f"{target}: {other} and {photo} would both be drawn to this "
                              "file; draw photos with one name to separate --draw folders")
        refuse_input_as_output(target, {"photo": args.photos})
        if photo not in paths:
            paths[photo] = check_output(target, args.overwrite)
    return paths


def _detector_side(args) -> dict:
    """The detector's option for --detect-side (MTCNN's max_side, also behind BlazeFace; Haar's
    detect_side)."""
    if args.detect_side is None:
        return {}
    return {"detect_side" if args.detector == "haar" else "max_side": args.detect_side}


def _refuse_video_options(args) -> None:
    """--step, --detect-every and --smooth given for photos."""
    for option, value in (("--step", args.step), ("--detect-every", args.detect_every),
                          ("--smooth", args.smooth)):
        if value is not None:
            raise FacekpError(f"{option} applies to a video (.mp4, .avi, .mov, .mkv, .webm), "
                              "not to photos")


#: The keypoints the text output shows of each face, where the model's set has them.
SHOWN = ("left_eye_center", "right_eye_center", "nose_tip", "mouth_center_bottom_lip")


def _shown(keypoint_set) -> list[str]:
    """The points printed per face: :data:`SHOWN` (kaggle15), else the set's normalising pair
    (ibug68: the outer eye corners) or its first two points."""
    if all(n in keypoint_set.names for n in SHOWN):
        return list(SHOWN)
    return list(keypoint_set.normalise_by or keypoint_set.names[:2])


def _print_faces(photo, res, drawn: str | None, keypoint_set) -> None:
    """A photo's faces as text: box, the detector's confidence and a few keypoints each."""
    print(f"{photo}: {res.message}" + (f" -> {drawn}" if drawn else ""))
    names = _shown(keypoint_set)
    for i, face in enumerate(res.faces, 1):
        box = ", ".join(f"{v:.0f}" for v in face.box.as_list())
        kp = np.asarray(face.keypoints).reshape(keypoint_set.size, 2)
        pts = "  ".join(f"{n} ({x:.1f}, {y:.1f})" for n, (x, y) in
                        zip(names, kp[[keypoint_set.index(n) for n in names]]))
        conf = "" if face.confidence is None else f"  confidence {face.confidence:.3f}"
        print(f"  face {i}: box [{box}]{conf}  {pts}")


COMMANDS = {"predict": cmd_predict}


def add_parsers(sub) -> None:
    """predict."""
    p = sub.add_parser("predict", help="keypoints of the faces in photos or a video")
    p.add_argument("photos", nargs="+", metavar="PHOTO", help="image files (JPEG, PNG, ...) "
                   "or folders of them, or one video (.mp4, .avi, .mov, .mkv, .webm)")
    p.add_argument("--model", help="model .keras (default: the installed default model)")
    p.add_argument("--json", action="store_true", help="print JSON (photo pixels)")
    p.add_argument("--draw", metavar="DIR|OUT.mp4", help="write each photo with boxes and "
                   "keypoints drawn to DIR/<name>.png; for a video, the video drawn to OUT.mp4")
    p.add_argument("--detector", choices=["blazeface", "mtcnn", "haar"], default="blazeface",
                   help="face detector (default blazeface: BlazeFace, with MTCNN for small "
                        "faces; mtcnn: MTCNN alone; haar: frontal faces only)")
    p.add_argument("--detect-side", type=int, metavar="PX",
                   help="longer side of the copy MTCNN (640) or Haar (512) scans: larger "
                        "finds smaller faces in large photos, more slowly")
    p.add_argument("--engine", choices=["tflite-int8", "tflite", "keras"],
                   default="tflite-int8",  # facekp.core.model.predict.PHOTO_ENGINE
                   help="how the model runs: tflite-int8 (default: TensorFlow Lite with 8-bit "
                        "weights, fastest), tflite (float32) or keras (its own call)")
    p.add_argument("--min-confidence", type=float, default=0.0, metavar="C",
                   help="leave out faces the detector is less sure of (0-1; default 0)")
    p.add_argument("--passes", type=int, default=None, choices=[1, 2],
                   help="2: frame each face again around its first keypoints and average the "
                        "two views (default: only faces framed from a box, as Haar's are)")
    p.add_argument("--jsonl", metavar="OUT", help="write one JSON record per photo to OUT as "
                   "it goes (JSON Lines), with a progress line on stderr")
    p.add_argument("--recursive", action="store_true",
                   help="a folder gives the photos of its sub-folders too")
    p.add_argument("--resume", action="store_true",
                   help="with --jsonl: skip the photos whose records OUT already holds")
    p.add_argument("--shard", metavar="I/N", help="with --jsonl: only photos I, I+N, I+2N, ... "
                   "of the sorted list (0 <= I < N), for N jobs sharing a collection")
    p.add_argument("--workers", type=int, metavar="K", help="with --jsonl: read, detect and "
                   "predict in K processes (default 1; records keep the photos' order)")
    p.add_argument("--step", type=int, metavar="K", help="video: every K-th frame only "
                   "(default 1: every frame)")
    p.add_argument("--detect-every", type=int, metavar="N", help="video: run the detector "
                   "every N processed frames, following faces by their keypoints between "
                   "(default 10; it also runs when a face is lost)")
    p.add_argument("--smooth", choices=["one-euro", "ema", "off"], help="video: smooth the "
                   "keypoints over time (default off)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs: "
                   "drawings in --draw DIR, a video's --jsonl and --draw files, a photos' "
                   "--jsonl file (started again); otherwise they are kept and refused")
