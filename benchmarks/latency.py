"""Single-face latency of the whole photo path, and of the model call alone.

The photo: Tom_Cruise_avp_2014_4.jpg from shared/data/photos, resized to about one megapixel
(843 x 1193) and saved as a JPEG, so that each run reads and decodes a file as a user's photo
would be. The whole path: open the file (EXIF orientation), grayscale, find the faces, crop,
predict, map back, and with two passes crop and predict again. Timed after warm-up; the median
and the 90th percentile of the runs are printed, next to the model call alone on one face (the
Predictor's direct call, and ``model.predict`` for comparison).

    python benchmarks/latency.py [--model M.keras] [--runs 30]

Without --model an untrained seed model is used (same architecture, same cost).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

PHOTO = ROOT.parent / "shared" / "data" / "photos" / "Tom_Cruise_avp_2014_4.jpg"
TARGET_MS = 60.0


def timed(fn, runs: int, warmup: int = 3) -> np.ndarray:
    for _ in range(warmup):
        fn()
    out = np.empty(runs)
    for i in range(runs):
        t = time.perf_counter()
        fn()
        out[i] = (time.perf_counter() - t) * 1000
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help=".keras model (default: an untrained seed model)")
    parser.add_argument("--photo", default=str(PHOTO), help="a photo with one face")
    parser.add_argument("--megapixels", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--detect-side", type=int, default=None,
                        help="longer side the face detector scans (default: the Predictor's)")
    args = parser.parse_args()

    from PIL import Image

    from core import faces
    from core.predict import Predictor

    with tempfile.TemporaryDirectory() as tmp:
        if args.model:
            model_path = Path(args.model)
        else:
            from core.model import build_model

            model_path = Path(tmp) / "seed.keras"
            build_model("seed").save(model_path)
        predictor = Predictor(model_path)
        if args.detect_side:
            predictor.detect_side = args.detect_side
        with Image.open(args.photo) as im:
            im = im.convert("RGB")
            s = (args.megapixels * 1e6 / (im.width * im.height)) ** 0.5
            im = im.resize((round(im.width * s), round(im.height * s)), Image.Resampling.LANCZOS)
        photo = Path(tmp) / "photo.jpg"
        im.save(photo, quality=92)
        found = predictor.predict_photo(photo)
        print(f"photo {im.width} x {im.height} ({im.width * im.height / 1e6:.2f} MP), "
              f"{len(found.faces)} face(s); model {model_path.name}; detector scans "
              f"{predictor.detect_side} px; load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        if len(found.faces) != 1:
            raise SystemExit("expected exactly one face in the benchmark photo")
        if found.faces[0].crop == faces.crop_for_box(found.faces[0].box):
            print("note: the second pass was skipped (the first pass's keypoints are not "
                  "face-like, as with an untrained model): give --model for a trained one")

        crop = faces.crop_image(faces.to_gray(im), found.faces[0].crop)[None]
        x = crop[..., None].astype(np.float32)
        gray = faces.to_gray(faces.load_photo(photo))
        rows = [
            ("whole path, 2 passes", timed(lambda: predictor.predict_photo(photo), args.runs)),
            ("whole path, 1 pass", timed(lambda: predictor.predict_photo(photo, passes=1),
                                         args.runs)),
            ("  open + EXIF + gray", timed(lambda: faces.to_gray(faces.load_photo(photo)),
                                           args.runs)),
            ("  find faces", timed(lambda: faces.find_faces(gray, predictor.detect_side),
                                   args.runs)),
            ("model call, 1 face", timed(lambda: predictor.predict(crop), args.runs)),
            ("model.predict, 1 face", timed(lambda: predictor.model.predict(x, verbose=0),
                                            max(5, args.runs // 3))),
        ]
    print(f"{'':24s}{'median ms':>10s}{'p90 ms':>9s}")
    for label, ms in rows:
        print(f"{label:24s}{np.median(ms):10.1f}{np.percentile(ms, 90):9.1f}")
    whole = np.median(rows[0][1])
    print(f"target <= {TARGET_MS:.0f} ms for the whole path: "
          f"{'met' if whole <= TARGET_MS else 'NOT met'} ({whole:.1f} ms); "
          f"model.predict / direct call = {np.median(rows[5][1]) / np.median(rows[4][1]):.1f}x")


if __name__ == "__main__":
    main()
