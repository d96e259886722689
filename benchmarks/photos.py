"""Faces in the wild: the photo path (find faces, frame, predict, map back) on real photos.

On the original ytf68 photos of the embedded dataset's test people (whom no model trained on),
at their own size and shrunk so that the labelled eye distance is 12, 18, 24 and 36 px and
pasted into a larger photo without people (../shared/data/photos/dogs.jpg), it prints, for the
old path (Haar + --old-model) and the new one (MTCNN + --new-model) side by side:

- recall: labelled faces with a detection whose box holds the face's centre (mean keypoint);
- false faces: detections holding no labelled face;
- NME: mean keypoint error / labelled eye-centre distance, over the faces found (2 passes).

NME is measured against the labels as the embedded dataset has them: ytf68's x labels moved
onto the faces' mirror axis by the offset the importer measured (the dataset's
``label_recentre``; scaled from crop pixels to the photo by the face's eye distance); the
NME against ytf68's labels as they are is printed too. Then the faces found in each photo of
../shared/data/photos (dogs.jpg should have none). A PNG of NME and recall against eye
distance is written (--plot, default benchmarks/out/photos.png).

    python benchmarks/photos.py --old-model OLD.keras            # new model: the shipped one
    python benchmarks/photos.py --smoke     # seconds: 2 photos, the shipped model as both paths
                                            # (still runs?); the plot to a temporary folder
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
from common import ROOT, SHARED_DATA, add_smoke, parse_args, temporary_folder  # noqa: E402

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


def run_condition(predictor, photos, size, background, seed: int, moved: float) -> dict:
    """Recall, false faces and NME (recentred and raw labels) for one size (None: native)."""
    from PIL import Image

    from facekp.core.faces.framing import load_photo

    rng = np.random.default_rng(seed)
    found_n, false_n, errs, errs_raw, times = 0, 0, [], [], []
    for path, truth in photos:
        image = load_photo(path)
        if size is not None:
            image, truth = pasted(image, truth, size, background, rng)
        t = time.perf_counter()
        result = predictor.predict_photo(image if isinstance(image, Image.Image) else image)
        times.append(time.perf_counter() - t)
        found, false = score(result, [truth])
        found_n += len(found)
        false_n += false
        for face, raw in found:
            errs.append(nme(face, recentred(raw, moved)))
            errs_raw.append(nme(face, raw))
    return {"recall": found_n / len(photos), "false": false_n, "found": found_n,
            "nme": float(np.mean(errs)) if errs else math.nan,
            "nme_raw": float(np.mean(errs_raw)) if errs_raw else math.nan,
            "ms": 1000 * float(np.median(times))}


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
    for name, style in (("old", "o--"), ("new", "s-")):
        axes[0].plot(xs, [results[(name, s)]["nme"] for s in xs], style, label=f"{name} path")
        axes[1].plot(xs, [results[(name, s)]["recall"] for s in xs], style, label=f"{name} path")
    axes[0].set(xlabel="eye distance in the photo (px)", ylabel="NME (error / eye distance)",
                title="keypoint error on faces found")
    axes[1].set(xlabel="eye distance in the photo (px)", ylabel="recall", ylim=(0, 1.02),
                title="faces found")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old-model", help="the old path's model (.keras); required "
                        "except with --smoke (the shipped model)")
    parser.add_argument("--new-model", default=None, help="default: the shipped model")
    parser.add_argument("--limit", type=int, default=None, help="at most this many photos")
    parser.add_argument("--plot", default=str(ROOT / "benchmarks" / "out" / "photos.png"))
    add_smoke(parser, limit=2)
    args = parse_args(parser, argv)
    if args.smoke:
        with temporary_folder("photos") as tmp:
            args.plot = str(Path(tmp) / "photos.png")
            return run(args)
    if not args.old_model:
        parser.error("--old-model is required (except with --smoke)")
    return run(args)


def run(args) -> int:
    """Every condition on the old and the new path; the table, the photos, the targets."""
    from PIL import Image

    from facekp.core.data import opener
    from facekp.core.model.predict import Predictor
    from facekp.core.resources import DEFAULT_DATASET, DEFAULT_MODEL

    dataset = opener.load(DEFAULT_DATASET)
    moved = float(dataset.meta.get("label_recentre", {}).get("x_moved_px", 0.0))
    photos = test_photos(dataset.split("test"))[:args.limit]
    background = Image.open(PHOTOS / "dogs.jpg").convert("RGB")
    paths = {"old": Predictor(args.old_model or DEFAULT_MODEL, detector="haar"),
             "new": Predictor(args.new_model or DEFAULT_MODEL, detector="mtcnn")}
    sizes = [None, *EYE_DISTANCES]
    results = {}
    for s in sizes:
        for name, predictor in paths.items():
            results[(name, s)] = r = run_condition(predictor, photos, s, background, 0, moved)
            print(f"{time.strftime('%H:%M:%S')} {name} path, "
                  f"{'native size' if s is None else f'eye distance {s} px'}: recall "
                  f"{r['recall']:.3f}, false {r['false']}, NME {r['nme']:.4f}", flush=True)
    print(f"\n{len(photos)} photos of the {len(set(dataset.split('test').persons))} test people; "
          f"labels recentred by {moved:+.2f} crop px in x (the dataset's label_recentre)")
    header = f"{'faces':<20}{'path':<6}{'recall':>8}{'false':>7}{'NME':>9}{'NME raw':>9}{'ms':>8}"
    print(header + "\n" + "-" * len(header))
    for s in sizes:
        for name in paths:
            r = results[(name, s)]
            label = "native size" if s is None else f"eye distance {s} px"
            print(f"{label:<20}{name:<6}{r['recall']:>8.3f}{r['false']:>7d}{r['nme']:>9.4f}"
                  f"{r['nme_raw']:>9.4f}{r['ms']:>8.1f}")
    print("\nphotos in ../shared/data/photos (new path / old path):")
    for photo in sorted(PHOTOS.glob("*.jpg")):
        counts = [len(paths[n].predict_photo(photo).faces) for n in ("new", "old")]
        print(f"  {photo.name}: {counts[0]} / {counts[1]} faces")
    small = [results[("new", s)] for s in (12, 18)]
    targets = {"recall >= 0.95 at 12 and 18 px": all(r["recall"] >= 0.95 for r in small),
               "NME <= 0.07 at 12 and 18 px": all(r["nme"] <= 0.07 for r in small),
               "NME <= 0.05 at native size": results[("new", None)]["nme"] <= 0.05,
               "no face on dogs.jpg": len(paths["new"].predict_photo(PHOTOS / "dogs.jpg").faces) == 0}
    print("targets: " + ", ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in targets.items()))
    if plot(results, sizes, Path(args.plot)):
        print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
