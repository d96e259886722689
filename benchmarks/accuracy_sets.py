"""Accuracy in another keypoint set (``python benchmarks/accuracy.py --keypoints ibug68``): the
heatmap recipe trained on the embedded dataset's 68 points, scored on its test people, and
dlib's 68-point shape predictor on the same faces in the same run.

Trained as the kaggle15 model is (facekp.core.model.train.Trainer, architecture "heatmap" with
its registered defaults) on the training people in the set asked for, validated on the 'val'
people; batch norm folded for inference, and the folded file is the one scored and shipped;
its keypoint confidence head is the one the Trainer fits beside the model.

Scored on the test people, whom training never saw:

- crops: RMSE in px of the 96x96 crop over the labelled points and NME by the set's normaliser
  (outer eye corners for ibug68), as ``facekp evaluate --json`` reports them;
- photos, both tools on the same original ytf68 photos against the same 68 labels (all 68 are
  labelled in the photo; in a crop the jaw often falls outside): facekp's photo path (MTCNN,
  the framing rule, the model, mapped back) and dlib (its HOG frontal face detector, upsampled
  once, the detection holding the labels' centre; the labels' bounding box when it finds none)
  with ``shape_predictor_68_face_landmarks.dat`` from the ``face_recognition_models`` package
  (the ``bench`` extra). NME = mean point distance / distance of the labelled outer eye
  corners (36, 45), per face, averaged. Printed against the labels as they are and against the
  labels moved as the importer moved the dataset's (``--recentre``), since the model learned
  the moved ones. Where the bench extra is not installed (CI's ``--smoke``), the dlib column
  is left out and the run says so.

``--save-default`` ships the folded model as ``resources/models/<set>.keras`` with its
confidence head and its card (``<set>.json``).
"""
from __future__ import annotations

import json
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from common import SHARED_DATA

YTF68 = SHARED_DATA / "ytf68"
#: Eye distance (px) of the embedded dataset's crops, to turn its label offset into photo px.
CROP_EYE_DISTANCE = 36.0
OUTER_CORNERS = (36, 45)


def log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", flush=True)


def photo_labels(test) -> list[tuple[str, Path, np.ndarray]]:
    """(name, photo path, 68 labels (68, 2) in photo pixels) of each test face."""
    from facekp.core.photos.importers import read_labels_csv

    labels = {}
    for folder in ("training", "test"):
        for p in read_labels_csv(YTF68 / f"{folder}_frames_keypoints.csv", YTF68 / folder):
            labels[f"{folder}/{p.name}"] = (p.path, np.asarray(p.points68, np.float64))
    return [(name, *labels[name]) for name in test.names if name in labels]


def nme68(points: np.ndarray, truth: np.ndarray) -> float:
    """Mean distance of the 68 points / labelled outer-eye-corner distance."""
    norm = float(np.hypot(*(truth[OUTER_CORNERS[0]] - truth[OUTER_CORNERS[1]])))
    return float(np.hypot(*(points - truth).T).mean() / norm)


def recentred(truth: np.ndarray, x_moved_crop_px: float) -> np.ndarray:
    """Photo labels moved in x as the importer moved the dataset's (``label_recentre``, crop
    px, scaled to the photo by the face's eye-centre distance)."""
    iod = float(np.linalg.norm(truth[42:48].mean(0) - truth[36:42].mean(0)))
    out = truth.copy()
    out[:, 0] += x_moved_crop_px * iod / CROP_EYE_DISTANCE
    return out


def facekp_photo_points(predictor, path: Path, truth: np.ndarray) -> np.ndarray | None:
    """facekp's 68 points of the face holding the labels, or None when MTCNN misses it."""
    from facekp.core.photos.photo_truth import match_faces

    result = predictor.predict_photo(path)
    matched = match_faces([truth], [f.box.as_list() for f in result.faces])
    return None if 0 not in matched else np.asarray(result.faces[matched.index(0)].keypoints)


class Dlib:
    """dlib's HOG face detector and 68-point shape predictor (None when not installed)."""

    def __init__(self):
        import dlib
        import face_recognition_models

        self.dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(
            face_recognition_models.pose_predictor_model_location())

    @classmethod
    def load(cls):
        try:
            return cls()
        except ImportError as exc:
            log(f"dlib's column left out: {exc.name} is not installed (pip install -e "
                "\".[bench]\")")
            return None

    def crop_points(self, crop: np.ndarray, truth: np.ndarray, upsample: int = 2
                    ) -> tuple[np.ndarray, bool]:
        """dlib's 68 points on a 96x96 grayscale crop (its detector upsampling it
        ``upsample`` times; the labelled points' box when it finds none) and whether its own
        detector found the face."""
        rgb = np.repeat(np.asarray(crop, np.uint8)[..., None], 3, axis=2)
        return self._predict(rgb, truth, upsample)

    def _predict(self, rgb: np.ndarray, truth: np.ndarray, upsample: int):
        labelled = truth[np.isfinite(truth).all(axis=1)]
        cx, cy = labelled.mean(axis=0)
        found = [r for r in self.detector(rgb, upsample)
                 if r.left() <= cx <= r.right() and r.top() <= cy <= r.bottom()]
        if found:
            box = min(found, key=lambda r: math.hypot(cx - r.center().x, cy - r.center().y))
        else:
            (x0, y0), (x1, y1) = labelled.min(axis=0), labelled.max(axis=0)
            box = self.dlib.rectangle(int(round(x0)), int(round(y0)), int(round(x1)),
                                      int(round(y1)))
        shape = self.predictor(rgb, box)
        return np.array([[p.x, p.y] for p in shape.parts()], np.float64), bool(found)

    def points(self, path: Path, truth: np.ndarray) -> tuple[np.ndarray, bool]:
        """dlib's 68 points of the labelled face and whether its own detector found it."""
        from PIL import Image

        return self._predict(np.asarray(Image.open(path).convert("RGB")), truth, 1)


#: iBUG regions, for the per-region NME lines.
REGIONS = {"jaw (0-16)": range(0, 17), "inner face (17-67)": range(17, 68)}


def nme_labelled(points: np.ndarray, truth: np.ndarray, which=range(68)) -> float:
    """Mean distance over the labelled points among ``which`` / labelled outer-eye-corner
    distance (NaN when a corner or every point is missing)."""
    norm = float(np.hypot(*(truth[OUTER_CORNERS[0]] - truth[OUTER_CORNERS[1]])))
    idx = [i for i in which if np.isfinite(truth[i]).all()]
    if not idx or not np.isfinite(norm) or norm <= 0:
        return math.nan
    return float(np.hypot(*(points[idx] - truth[idx]).T).mean() / norm)


def score_crops(predictor, dlib, test) -> dict:
    """Both tools on the embedded test crops (96x96, the labelled points of each): facekp's
    model as ``facekp evaluate`` predicts (mirror-averaged), dlib with its own detector on the
    crop upsampled twice (the labelled points' box when it finds none)."""
    ours = predictor.predict(test.images).reshape(len(test), -1, 2).astype(np.float64)
    truth = test.keypoints.reshape(len(test), -1, 2).astype(np.float64)
    rows = {"facekp": {r: [] for r in ("all", *REGIONS)}, "dlib": {r: [] for r in ("all", *REGIONS)}}
    found = 0
    for i in range(len(test)):
        if not np.isfinite(truth[i, list(OUTER_CORNERS)]).all():
            continue
        tools = {"facekp": ours[i]}
        if dlib is not None:
            theirs, hit = dlib.crop_points(test.images[i], truth[i])
            tools["dlib"], found = theirs, found + hit
        for tool, pts in tools.items():
            rows[tool]["all"].append(nme_labelled(pts, truth[i]))
            for region, idx in REGIONS.items():
                rows[tool][region].append(nme_labelled(pts, truth[i], idx))
    out = {tool: {r: float(np.nanmean(v)) if v else math.nan for r, v in regions.items()}
           for tool, regions in rows.items()}
    out["faces"] = len(rows["facekp"]["all"])
    out["dlib_found"] = found
    return out


def score_photos(predictor, dlib, labels, moved: float) -> dict:
    """Both tools' NME on the test photos: the faces each found, and the faces both found."""
    rows = {"facekp": [], "dlib": []}
    for name, path, truth in labels:
        ours = facekp_photo_points(predictor, path, truth)
        theirs, found = dlib.points(path, truth) if dlib is not None else (None, False)
        rows["facekp"].append(None if ours is None else
                              (nme68(ours, truth), nme68(ours, recentred(truth, moved)),
                               None, *(nme_labelled(ours, truth, idx)
                                       for idx in REGIONS.values())))
        rows["dlib"].append(None if theirs is None else
                            (nme68(theirs, truth), nme68(theirs, recentred(truth, moved)),
                             found, *(nme_labelled(theirs, truth, idx)
                                      for idx in REGIONS.values())))
    return rows


def summarise(rows: dict) -> dict:
    both = [i for i, (a, b) in enumerate(zip(rows["facekp"], rows["dlib"]))
            if a is not None and b is not None]
    out = {}
    for tool in ("facekp", "dlib"):
        got = [r for r in rows[tool] if r is not None]
        out[tool] = {
            "faces": len(got),
            "nme_as_labelled": float(np.mean([r[0] for r in got])) if got else math.nan,
            "nme_recentred": float(np.mean([r[1] for r in got])) if got else math.nan,
            "nme_as_labelled_common": (float(np.mean([rows[tool][i][0] for i in both]))
                                       if both else math.nan),
            "nme_recentred_common": (float(np.mean([rows[tool][i][1] for i in both]))
                                     if both else math.nan),
            **{region: (float(np.mean([rows[tool][i][3 + j] for i in both])) if both
                        else math.nan) for j, region in enumerate(REGIONS)}}
    found = [r[2] for r in rows["dlib"] if r is not None]
    out["dlib"]["own_detector_found"] = int(sum(found))
    out["common_faces"] = len(both)
    return out


def run_set(args, train_one, train_all) -> int:
    """Train (unless --score-only), score and report in ``args.keypoints``."""
    from facekp.core.data import opener
    from facekp.core.data.keypoint_sets import load_set
    from facekp.core.fileio import atomic_path
    from facekp.core.model.architectures import fold_batch_norm
    from facekp.core.model.confidence import head_path
    from facekp.core.model.predict import Predictor, load_model
    from facekp.core.quality.evaluate import evaluate
    from facekp.core.resources import DEFAULT_DATASET, RESOURCES

    started = time.perf_counter()
    kset = load_set(args.keypoints)
    data_path = str(args.data or DEFAULT_DATASET)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    trained_path = out_dir / f"{args.arch_new}.keras"
    summary = out_dir / "trained.json"
    if args.score_only:
        trained = json.loads(summary.read_text())
        log(f"scoring {trained_path} again; training figures from {summary}")
    else:
        log(f"training {args.arch_new} in {kset.name}; model under {out_dir}")
        trained = train_all([("new", args.arch_new, {"epochs": args.epochs_new}, data_path,
                              str(trained_path), args.keypoints)], parallel=False)
        trained["command"] = "python benchmarks/accuracy.py " + " ".join(sys.argv[1:])
        trained["training_wall_s"] = round(time.perf_counter() - started)
        with atomic_path(summary) as tmp:
            Path(tmp).write_text(json.dumps(trained, indent=1) + "\n")
    if trained["new"]["model_path"] is None:
        raise SystemExit(f"no model was saved ({trained['new']['message']})")

    folded_path = out_dir / f"{args.arch_new}_folded.keras"
    from facekp.core.model.checkpoints import read_record, write_model
    record = read_record(trained_path) or {}
    write_model(fold_batch_norm(load_model(trained_path)), folded_path, record)
    if head_path(trained_path).exists():
        shutil.copyfile(head_path(trained_path), head_path(folded_path))
    predictor = Predictor(folded_path)
    assert predictor.keypoint_set == kset, predictor.keypoint_set.name

    dataset = opener.load(data_path, keypoint_set=kset)
    test, val = dataset.split("test"), dataset.split("val")
    log(f"scoring on {len(test)} test faces of {len(set(test.persons))} people")
    crops = evaluate(predictor, test)
    val_crops = evaluate(Predictor(folded_path, confidence=None), val)
    dlib = Dlib.load() if kset.size == 68 else None
    crops_vs = score_crops(predictor, dlib, test) if kset.size == 68 else None
    photos = None
    if not args.no_photos and kset.size == 68:
        labels = photo_labels(test)
        moved = dataset.meta.get("label_recentre", {}).get("x_moved_px", 0.0)
        log(f"photo path on {len(labels)} original photos of the test people"
            + (", facekp and dlib taking turns" if dlib else ""))
        photos = summarise(score_photos(predictor, dlib, labels, moved))
    size_mb = folded_path.stat().st_size / 2 ** 20

    print()
    print(f"keypoint set {kset.name} ({kset.size} points); test people: {len(test)} faces of "
          f"{len(set(test.persons))} people; training {len(dataset.split('train'))} faces, "
          f"validation {len(val)}")
    t = trained["new"]
    print(f"model: {args.arch_new}, {t['epochs_run']} epochs (best {t['best_epoch']}), "
          f"{t['wall_s']:.0f} s training; folded file {size_mb:.2f} MB")
    print(f"crops (96x96, labelled points): test RMSE {crops['rmse_px']:.3f} px, NME "
          f"{crops['nme']:.4f} by {' - '.join(crops['nme_by'] or ['nothing'])}; validation "
          f"RMSE {val_crops['rmse_px']:.3f} px")
    c = crops.get("confidence")
    if c:
        print(f"keypoint confidence on the test people: Spearman {c['spearman']:.3f}, AUROC "
              f"{c['auroc']:.3f} (points > {c['threshold_px']:g} px off: "
              f"{c['off_fraction']:.3f}; mean confidence {c['mean_confidence']:.3f})")
    targets = {"file <= 10 MB": size_mb <= 10}
    if crops_vs:
        print(f"the embedded test crops, both tools on the same 96x96 images, NME by the outer "
              f"eye corners over each face's labelled points ({crops_vs['faces']} faces with "
              "both corners labelled):")
        names = ["all", *REGIONS]
        print(f"  {'':<8} " + " ".join(f"{n:>20}" for n in names))
        for tool in ("facekp", "dlib"):
            if tool == "dlib" and dlib is None:
                print("  dlib: not installed here (the bench extra); its column is left out")
                continue
            print(f"  {tool:<8} " + " ".join(f"{crops_vs[tool][n]:>20.4f}" for n in names))
        if dlib is not None:
            ratio = crops_vs["facekp"]["all"] / crops_vs["dlib"]["all"]
            print(f"  facekp / dlib on the crops: {ratio:.3f}; dlib's own detector found "
                  f"{crops_vs['dlib_found']} of {crops_vs['faces']} (the labelled box for the "
                  "rest)")
            targets["crops: NME <= 0.75 x dlib"] = ratio <= 0.75
    if photos:
        f, d = photos["facekp"], photos["dlib"]
        print("photos, NME by the outer eye corners (36-45), all 68 points:")
        print(f"  {'':<8} {'faces':>6} {'as labelled':>12} {'recentred':>10}   on the "
              f"{photos['common_faces']} faces both found: {'as labelled':>12} {'recentred':>10}")
        for name, r in (("facekp", f), ("dlib", d)):
            print(f"  {name:<8} {r['faces']:>6} {r['nme_as_labelled']:>12.4f} "
                  f"{r['nme_recentred']:>10.4f}   {'':>26}{r['nme_as_labelled_common']:>12.4f} "
                  f"{r['nme_recentred_common']:>10.4f}")
        if d["faces"]:
            ratio = f["nme_as_labelled_common"] / d["nme_as_labelled_common"]
            ratio_r = f["nme_recentred_common"] / d["nme_recentred_common"]
            print(f"  facekp / dlib: {ratio:.3f} (labels as they are), {ratio_r:.3f} "
                  f"(recentred); dlib's own detector found {d['own_detector_found']} of "
                  f"{d['faces']} (the labelled box for the rest)")
            print("  by region, as labelled: " + "; ".join(
                f"{region} facekp {f[region]:.4f}, dlib {d[region]:.4f}" for region in REGIONS))
            targets["photos: NME <= 0.75 x dlib (as labelled)"] = ratio <= 0.75
        else:
            print("  dlib: not installed here (the bench extra); its column is left out")
    print("targets: " + ", ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in targets.items()))
    print(f"total wall time {time.perf_counter() - started:.0f} s")

    if args.save_default:
        dest = RESOURCES / "models" / f"{kset.name}.keras"
        shutil.copyfile(folded_path, dest)
        if head_path(folded_path).exists():
            shutil.copyfile(head_path(folded_path), head_path(dest))
        card = {"arch": args.arch_new, "file": dest.name,
                "keypoint_set": kset.to_dict(),
                "inference_form": "batch norm folded into the convolutions "
                                  "(core.model.fold_batch_norm)",
                "parameters": int(predictor.model.count_params()),
                "data": f"embedded dataset resources/faces.npz, its {kset.name} points",
                "split": {"by": "person", "train_faces": len(dataset.split("train")),
                          "val_faces": len(val), "test_faces": len(test),
                          "test_people": len(set(test.persons))},
                "training": {k: t[k] for k in ("reason", "message", "best_epoch",
                                               "best_val_rmse_px", "epochs_run", "wall_s",
                                               "config")},
                "test_rmse_px": round(crops["rmse_px"], 4), "test_nme": round(crops["nme"], 5),
                "nme_by": crops["nme_by"], "val_rmse_px": round(val_crops["rmse_px"], 4),
                "crops_nme_vs_dlib": crops_vs, "photo_nme": photos,
                "command": trained.get("command"),
                "scored_by": "python benchmarks/accuracy.py " + " ".join(sys.argv[1:]),
                "machine": "2 CPU cores, no GPU", "date": time.strftime("%Y-%m-%d"),
                "image_rights": "trained on frames of the YouTube Faces dataset via ytf68; "
                                "image rights not stated by the source"}
        (dest.with_suffix(".json")).write_text(json.dumps(card, indent=1) + "\n")
        log(f"shipped {dest} ({size_mb:.2f} MB), its confidence head and card")
    return 0
