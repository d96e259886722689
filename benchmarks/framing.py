"""BlazeFace's framing against the framing the shipped model was trained on (MTCNN's five points).

For every face of the embedded dataset (its original ytf68 photo, the detection holding the
labelled nose tip): the crop MTCNN's five points give (:func:`crop_for_landmarks`, as
``facekp import`` frames it; the 68 labels' five points where MTCNN misses the face) and
BlazeFace's six points. The coefficients of :func:`crop_for_six` (``SIX_FRAMING``: the crop's
centre offset and side from the six points, in units of their reference length) are fitted
by least squares on the training people's faces and their mirror images; then, on the validation and test people, the median difference between the two framings:
crop centre (x, y) and side, in crop pixels of the 96 x 96 face (and as a share of the side).

    python benchmarks/framing.py             # all 3,869 faces (about 2 minutes)
    python benchmarks/framing.py --smoke     # 30 faces a split: does it still run?
"""
from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from common import add_smoke, machine, parse_args  # noqa: E402


def framings(dataset, split: str, limit: int | None, mtcnn, blaze) -> dict:
    """Per face of the split: the five-point crop (x0, y0, side) and BlazeFace's six points."""
    from accuracy import YTF68
    from facekp.core.data.keypoints import from_68
    from facekp.core.faces import framing as faces
    from facekp.core.photos.importers import NOSE_TIP_68, read_labels_csv

    labels = {}
    for folder in ("training", "test"):
        for p in read_labels_csv(YTF68 / f"{folder}_frames_keypoints.csv", YTF68 / folder):
            labels[f"{folder}/{p.name}"] = p
    crops, six, sizes = [], [], []
    names = [n for n in dataset.split(split).names if n in labels][:limit]
    for name in names:
        photo = labels[name]
        rgb = np.asarray(faces.load_photo(photo.path))
        nose = photo.points68[NOSE_TIP_68]
        hits = [d for d in mtcnn.detect(rgb) if d.box.contains(*nose)]
        crop = (faces.crop_for_landmarks(hits[0].points) if hits
                else faces.crop_for_points(from_68(photo.points68)))
        found = [d for d in blaze.detect(rgb) if d.box.contains(*nose) and len(d.points) == 6]
        crops.append((crop.x0, crop.y0, crop.side))
        six.append(found[0].points if found else np.full((6, 2), np.nan))
        sizes.append(rgb.shape[:2])
    return {"crop": np.array(crops, float), "six": np.array(six), "size": np.array(sizes)}


def fit(data: dict) -> np.ndarray:
    """The six-point rule's coefficients (3 x 13, :data:`SIX_FRAMING`) by least squares over
    the faces and their mirror images (so a mirrored face gets the mirrored crop): the crop's
    centre offset (x, y) and side, in reference lengths, from the six points relative to their
    weighted mean, in reference lengths, and a constant."""
    from facekp.core.faces.framing import six_features

    six = data["six"][np.isfinite(data["six"]).all(axis=(1, 2))]
    crop = data["crop"][np.isfinite(data["six"]).all(axis=(1, 2))]
    target = crop[:, :2] + (crop[:, 2:3] - 1) / 2  # the crop's centre (pixel centres)
    rows, goals = [], []
    for sign in (1, -1):
        pts = six.copy()
        if sign < 0:  # mirror: x -> -x, image-left and image-right swapped
            pts[..., 0] *= -1
            pts = pts[:, [1, 0, 2, 3, 5, 4]]
        feats, centre, ref = zip(*map(six_features, pts))
        feats, centre, ref = np.array(feats), np.array(centre), np.array(ref)
        goal_x = (sign * target[:, 0] - centre[:, 0]) / ref
        goal_y = (target[:, 1] - centre[:, 1]) / ref
        rows.append(feats)
        goals.append(np.stack([goal_x, goal_y, crop[:, 2] / ref], 1))
    return np.linalg.lstsq(np.concatenate(rows), np.concatenate(goals), rcond=None)[0].T


def compare(data: dict) -> dict:
    """Median |difference| of centre x, y and side between the rule's crops and the
    five-point crops, in pixels of the 96 x 96 crop; faces BlazeFace found."""
    from facekp.core.faces.framing import crop_for_six

    ok = np.isfinite(data["six"]).all(axis=(1, 2))
    ref_c = data["crop"][ok]
    new = np.array([[c.x0, c.y0, c.side] for c in map(crop_for_six, data["six"][ok])], float)
    per_px = 96.0 / ref_c[:, 2]
    centre = lambda c: c[:, :2] + (c[:, 2:3] - 1) / 2  # noqa: E731
    d = (centre(new) - centre(ref_c)) * per_px[:, None]
    side = (new[:, 2] - ref_c[:, 2]) * per_px
    return {"faces": int(ok.sum()), "of": len(ok), "dx": np.median(np.abs(d[:, 0])),
            "dy": np.median(np.abs(d[:, 1])), "dside": np.median(np.abs(side)),
            "bias_x": np.median(d[:, 0]), "bias_y": np.median(d[:, 1]),
            "bias_side": np.median(side)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="at most this many faces a split")
    add_smoke(parser, limit=30)
    args = parse_args(parser, argv)

    from facekp.core.data import opener
    from facekp.core.faces import framing
    from facekp.core.faces.detect import BlazeFaceDetector, MtcnnDetector
    from facekp.core.resources import DEFAULT_DATASET

    print(machine())
    dataset = opener.load(DEFAULT_DATASET)
    mtcnn, blaze = MtcnnDetector(), BlazeFaceDetector(mtcnn="never")
    data = {s: framings(dataset, s, args.limit, mtcnn, blaze)
            for s in ("train", "val", "test")}
    coef = fit(data["train"])
    shown = np.array2string(np.round(coef, 4), separator=", ", max_line_width=96)
    print(f"fitted on the training people "
          f"({np.isfinite(data['train']['six']).all(axis=(1, 2)).sum()} faces and their mirror "
          f"images): SIX_FRAMING =\n{shown}\n(in the code, the same to 4 decimals: "
          f"{'yes' if np.allclose(np.round(coef, 4), framing.SIX_FRAMING) else 'NO'})")
    print(f"{'split':<12}{'faces':>11}{'|dx| px':>9}{'|dy| px':>9}{'|dside| px':>11}"
          f"{'dx':>8}{'dy':>8}{'dside':>8}")
    for split in ("train", "val", "test"):
        r = compare(data[split])
        print(f"{split:<12}{r['faces']:>5} / {r['of']:<4}{r['dx']:>9.2f}{r['dy']:>9.2f}"
              f"{r['dside']:>11.2f}{r['bias_x']:>+8.2f}{r['bias_y']:>+8.2f}{r['bias_side']:>+8.2f}")
    print("(median absolute differences, then median signed ones, BlazeFace's crop minus the "
          "five-point crop, in pixels of the 96 x 96 crop)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
