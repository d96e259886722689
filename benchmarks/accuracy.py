"""Accuracy: the reference recipe against the new one, trained and scored in one run
(``--keypoints ibug68``: the new recipe in another keypoint set against dlib's 68-point
predictor, benchmarks/accuracy_sets.py).

Both are trained with facekp.core.model.train.Trainer on the embedded dataset's training people
(validation: its 'val' people, which pick the kept epoch) and scored on its 'test' people, whom
neither saw:

- reference: architecture "seed" with its registered defaults (faces with all 15 keypoints
  only, no augmentation, constant learning rate 1e-3, at most 100 epochs, early stop after 10
  without improvement);
- new: architecture "heatmap" (default; --arch-new) with its registered defaults (every
  labelled keypoint, augmentation, cosine schedule); for inference its batch norm is folded into
  the convolutions (facekp.core.model.architectures.fold_batch_norm), and that folded file is the
  one scored, timed and shipped.

Printed: test RMSE in pixels, overall and per keypoint, and the ratio new/reference; model
file sizes and parameter counts; training wall time and epochs; single-crop latency (one crop
through facekp.core.model.predict.Predictor.predict, median after warm-up, both models timed in
alternating rounds); and the photo path's NME on the test people's original ytf68 photos: detect,
crop, predict, map back (facekp.core.model.predict.Predictor.predict_photo) with one pass and with
two, the mean keypoint error divided by the distance between the labelled eye centres.

Keypoint confidence: a confidence head (facekp.core.model.confidence) is fitted for the new model on
the training people's errors, recalibrated on the validation people, and scored on the test people:
Spearman of 1 - confidence with each point's error, AUROC for the points more than 3 px off,
and calibration; --save-default ships the head beside the model. --confidence-only scores the
shipped model's head without training (--refit-confidence fits it again first), with two
checks of how far any confidence can go on these labels: how much of a point's error two
frames of one video share (the rest is mostly the labels' frame-to-frame jitter), and with
--second-model, the disagreement with a second, independently trained model.

The training summaries go to <out-dir>/trained.json; --score-only scores the models a previous
run left in --out-dir again (after a change to the scoring or the photo path) without training,
its training figures read from that file.

By default the two trainings run at the same time in two processes (on a 2-core machine this
finishes sooner than one after the other; both then share the CPU, so their wall times are
comparable with each other); --sequential trains one after the other.

    python benchmarks/accuracy.py                       # everything, models under /tmp
    python benchmarks/accuracy.py --sequential --save-default   # ... and ship the new model
    python benchmarks/accuracy.py --score-only          # score /tmp/facekp-accuracy again
    python benchmarks/accuracy.py --confidence-only     # the shipped keypoint confidence
    python benchmarks/accuracy.py --confidence-only --second-model M.keras   # ... + ensemble
    python benchmarks/accuracy.py --smoke               # seconds: does it still run?

--smoke trains the new recipe alone (as --only-new) for one epoch on a few faces of each split
(written to a temporary folder, as is the model) and scores it on a few test people, with one
latency round. A one-epoch model misses every point by more than 3 px, too few to fit a
confidence head on, so there the head is fitted and scored for the shipped model instead.
"""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from common import SHARED_DATA, add_smoke, parse_args, temporary_folder  # noqa: E402

YTF68 = SHARED_DATA / "ytf68"


def log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", flush=True)


# --- training (each in its own process) -----------------------------------------------------

def train_one(role: str, arch: str, overrides: dict, data_path: str, out: str, queue,
              keypoints: str | None = None) -> None:
    """Train one recipe (in keypoint set ``keypoints``; None: kaggle15) and put its summary
    on ``queue`` (runs in a child process)."""
    from facekp.core.data import opener
    from facekp.core.model.train import Trainer
    from facekp.core.model.train_types import TrainConfig, TrainingListener

    class Progress(TrainingListener):
        def on_started(self, info):
            self.epochs = info["epochs"]
            log(f"[{role}] start: {info['arch']}, {info['train_faces']} training faces, "
                f"{info['val_faces']} validation faces, {info['epochs']} epochs x "
                f"{info['steps_per_epoch']} steps; config {info['config']}")

        def on_epoch(self, epoch, train_rmse_px, val_rmse_px, best, elapsed_s):
            eta = elapsed_s / epoch * (self.epochs - epoch)
            log(f"[{role}] epoch {epoch}/{self.epochs} train {train_rmse_px:.3f} px, "
                f"val {val_rmse_px:.3f} px{' (best)' if best else ''}, "
                f"{elapsed_s:.0f} s elapsed, at most {eta:.0f} s to go")

    from facekp.core.data.keypoint_sets import load_set

    dataset = opener.load(data_path, keypoint_set=load_set(keypoints) if keypoints else None)
    config = TrainConfig.for_arch(arch, **overrides)
    t0 = time.perf_counter()
    result = Trainer(config, dataset.split("train"), dataset.split("val"), out,
                     listener=Progress()).run()
    wall = time.perf_counter() - t0
    log(f"[{role}] finished: {result.reason} ({result.message}); best epoch "
        f"{result.best_epoch}, val {result.best_val_rmse_px:.3f} px, {wall:.0f} s")
    queue.put((role, {"reason": result.reason, "message": result.message,
                      "best_epoch": result.best_epoch,
                      "best_val_rmse_px": result.best_val_rmse_px,
                      "epochs_run": result.epochs_run, "wall_s": wall,
                      "config": config.resolved().as_dict(),
                      "model_path": None if result.model_path is None
                      else str(result.model_path)}))


def train_all(jobs: list[tuple], parallel: bool) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    results: dict = {}
    if parallel:
        procs = [ctx.Process(target=train_one, args=job[:5] + (queue,) + job[5:])
                 for job in jobs]
        for p in procs:
            p.start()
        while len(results) < len(jobs):
            try:
                role, res = queue.get(timeout=5)
                results[role] = res
            except Exception:
                if not any(p.is_alive() for p in procs) and queue.empty():
                    break
        for p in procs:
            p.join()
    else:
        for job in jobs:
            p = ctx.Process(target=train_one, args=job[:5] + (queue,) + job[5:])
            p.start()
            role, res = queue.get()
            results[role] = res
            p.join()
    missing = [job[0] for job in jobs if job[0] not in results]
    if missing:
        raise SystemExit(f"training failed for: {', '.join(missing)} (see the log above)")
    return results


# --- measurements ---------------------------------------------------------------------------

def latencies_ms(models: dict, rounds: int = 7, calls: int = 30) -> dict:
    """Median time to predict one crop the way the app and the CLI do
    (``facekp.core.model.predict.Predictor.predict``: one compiled call of the model), after
    warm-up; models timed in alternating rounds."""
    from facekp.core.model.predict import Predictor

    x = np.random.default_rng(0).integers(0, 256, (1, 96, 96), dtype=np.uint8)
    predictors = {name: Predictor(m) for name, m in models.items()}
    for p in predictors.values():
        for _ in range(10):
            p.predict(x)
    times = {name: [] for name in models}
    for _ in range(rounds):
        for name, p in predictors.items():
            for _ in range(calls):
                t = time.perf_counter()
                p.predict(x)
                times[name].append(time.perf_counter() - t)
    return {name: 1000 * float(np.median(t)) for name, t in times.items()}


def test_photos(test) -> list[tuple[Path, np.ndarray]]:
    """(photo path, 15 labelled keypoints in photo pixels) for every face of the test people."""
    from facekp.core.photos.importers import read_labels_csv
    from facekp.core.data.keypoints import from_68

    labels = {}
    for folder in ("training", "test"):
        for p in read_labels_csv(YTF68 / f"{folder}_frames_keypoints.csv", YTF68 / folder):
            labels[f"{folder}/{p.name}"] = (p.path, from_68(p.points68))
    return [labels[name] for name in test.names if name in labels]


#: Eye distance (px) of the embedded dataset's crops, to turn its label offset into photo px.
CROP_EYE_DISTANCE = 36.0


def recentred(truth: np.ndarray, x_moved_crop_px: float) -> np.ndarray:
    """Photo labels (15, 2) moved in x as the importer moved the dataset's labels
    (``label_recentre`` in crop pixels, scaled to the photo by the face's eye distance)."""
    iod = float(np.linalg.norm(truth[0] - truth[1]))
    out = truth.copy()
    out[:, 0] += x_moved_crop_px * iod / CROP_EYE_DISTANCE
    return out


def photo_nme(predictor, photos, passes: int, moved: float = 0.0) -> dict:
    """Mean over found faces of (mean keypoint error / labelled eye-centre distance), the
    labels recentred by ``moved`` crop px as the embedded dataset's are. Faces are matched
    and scored by facekp.core.photos.photo_truth, as the app and ``facekp predict`` do."""
    from facekp.core.photos.photo_truth import match_faces, nme as face_nme

    nme, missed = [], 0
    for path, truth in photos:
        result = predictor.predict_photo(path, passes=passes)
        matched = match_faces([truth], [face.box.as_list() for face in result.faces])
        if 0 not in matched:
            missed += 1
            continue
        best = result.faces[matched.index(0)]
        nme.append(face_nme(best.keypoints, recentred(truth, moved)))
    return {"nme": float(np.mean(nme)) if nme else math.nan, "found": len(nme),
            "not_found": missed}


# --- keypoint confidence ------------------------------------------------------------------------

def fit_confidence(model, dataset):
    """A confidence head for ``model``: fitted on the training people's errors, its
    probabilities recalibrated on the validation people
    (facekp.core.model.confidence.fit_for_predictor)."""
    from facekp.core.model.confidence import fit_for_predictor
    from facekp.core.model.predict import Predictor

    train, val = dataset.split("train"), dataset.split("val")
    log(f"fitting a confidence head on {len(train)} training faces, calibrated on {len(val)} "
        "validation faces")
    return fit_for_predictor(Predictor(model, confidence=None), train, val, info={
        "fitted_on": f"training people ({len(train)} faces)",
        "calibrated_on": f"validation people ({len(val)} faces)",
        "fitted_by": "python benchmarks/accuracy.py " + " ".join(sys.argv[1:])})


def confidence_figures(model, head, test) -> dict:
    """How the head's confidence ranks the test people's point errors, next to each of its
    signals alone, the per-keypoint term alone, and a ceiling check that knows the truth."""
    from facekp.core.model.confidence import point_errors, ranking_scores
    from facekp.core.data.keypoints import NAMES
    from facekp.core.model.predict import Predictor

    predictor = Predictor(model, confidence=head)
    kp, sig = predictor.confidence_signals(test.images, head.views,
                                           "face_peak" in head.features)
    err = point_errors(kp, test.keypoints)
    conf = head.confidence(sig)
    rows = {"confidence (the head)": ranking_scores(conf, err)}
    for name, w in zip(head.features, head.weights):
        rows[f"  {name} alone"] = ranking_scores(w * sig[name], err)
    rows["  per-keypoint term alone"] = ranking_scores(
        np.broadcast_to(head.keypoint_bias, err.shape), err)
    # ceiling check (not a usable confidence: it reads the labels): each point ranked by the
    # true mean error of the face's other points times its keypoint's test RMSE
    n = np.isfinite(err).sum(axis=1, keepdims=True)
    others = (np.nansum(err, axis=1, keepdims=True) - np.nan_to_num(err)) / np.maximum(n - 1, 1)
    kp_rmse = np.sqrt(np.nanmean(err ** 2, axis=0))
    rows["  ceiling check: other points' true errors"] = ranking_scores(-others * kp_rmse, err)
    bins = [0.0, 0.5, 0.7, 0.8, 0.9, 1.0001]
    ok = np.isfinite(err)
    calib = []
    for lo, hi in zip(bins[:-1], bins[1:]):
        m = ok & (conf >= lo) & (conf < hi)
        calib.append((lo, min(hi, 1.0), int(m.sum()),
                      float(conf[m].mean()) if m.any() else math.nan,
                      float((err[m] <= head.threshold_px).mean()) if m.any() else math.nan))
    per_kp = {name: float(conf[:, i].mean()) for i, name in enumerate(NAMES)}
    return {"rows": rows, "calibration": calib, "per_keypoint": per_kp,
            "keypoints": kp, "signals": sig}


def second_model_rows(model, second, head, dataset, test_kp, test_sig) -> dict:
    """With a second, independently trained model: how far the two models' points lie apart
    (a deep-ensemble uncertainty) ranks the shipped model's errors on the test people, alone
    and added to the head's signals (a head fitted with it on the validation people, as the
    other rows' head is recalibrated there). ``test_kp``, ``test_sig``: the shipped model's
    keypoints and signals on the test people (:func:`confidence_figures`)."""
    from facekp.core.model.confidence import fit_head, point_errors, ranking_scores
    from facekp.core.model.predict import Predictor

    other = Predictor(second, confidence=None)
    val = dataset.split("val")
    val_kp, val_sig = Predictor(model, confidence=head).confidence_signals(
        val.images, head.views, "face_peak" in head.features)
    parts = {}
    for name, faces, kp, sig in (("val", val, val_kp, dict(val_sig)),
                                 ("test", dataset.split("test"), test_kp, dict(test_sig))):
        apart = np.linalg.norm((kp - other.predict(faces.images)).reshape(len(kp), -1, 2),
                               axis=-1)
        sig["second_model"] = np.log(apart + 0.05)
        parts[name] = (sig, point_errors(kp, faces.keypoints))
    (val_sig, val_err), (test_sig, test_err) = parts["val"], parts["test"]
    both = fit_head(val_sig, val_err, head.features + ("second_model",))
    return {"  second model's disagreement alone": ranking_scores(-test_sig["second_model"],
                                                                  test_err),
            "  head + second model (fitted on validation)": ranking_scores(
                both.confidence(test_sig), test_err)}


def sibling_frames(test, kp) -> str | None:
    """How much of a point's error two frames of one video share (ytf68 names each frame
    PERSON_VF.jpg: video V, frame F). The frames are nearly the same picture, so what the model
    gets wrong there is nearly the same; what the two do not share is mostly the labels'
    jitter from frame to frame, which no signal from the image can foresee. ``test``: the
    test people's faces; ``kp``: the model's keypoints for them."""
    import re

    videos: dict = {}
    for i, name in enumerate(test.names):
        m = re.match(r"(.+)_(\d)(\d)\.\w+$", str(name).split("/")[-1])
        if m:
            videos.setdefault(m.groups()[:2], []).append(i)
    pairs = np.array([rows[:2] for rows in videos.values() if len(rows) >= 2])
    if not len(pairs):
        return None
    err = (kp - test.keypoints).reshape(len(kp), -1, 2)
    a, b = err[pairs[:, 0]].ravel(), err[pairs[:, 1]].ravel()
    ok = np.isfinite(a) & np.isfinite(b)
    moved = np.linalg.norm((test.keypoints[pairs[:, 0]] - test.keypoints[pairs[:, 1]])
                           .reshape(len(pairs), -1, 2), axis=-1)
    return (f"label noise check: {len(pairs)} pairs of frames of one video on the test people "
            f"(labels a median {np.nanmedian(moved):.1f} px apart): their signed x/y errors "
            f"correlate {np.corrcoef(a[ok], b[ok])[0, 1]:.2f}, so about "
            f"{1 - np.corrcoef(a[ok], b[ok])[0, 1]:.0%} of the error variance is the frame's own")


def print_confidence(figures: dict, faces: int) -> None:
    rows = [["keypoint confidence on the test people", "Spearman", "AUROC > 3 px",
             "mean confidence", "share within 3 px", "points"]]
    for label, r in figures["rows"].items():
        rows.append([label, f"{r['spearman']:.3f}", f"{r['auroc']:.3f}",
                     f"{r['mean_confidence']:.3f}" if label.startswith("confidence") else "",
                     f"{1 - r['off_fraction']:.3f}", f"{r['points']}"])
    print(fmt_table(rows))
    print(f"({faces} faces; Spearman of 1 - confidence with the point's error in px, AUROC of "
          "1 - confidence for the points more than 3 px from their labels)")
    rows = [["confidence", "points", "mean confidence", "share within 3 px"]]
    for lo, hi, count, mean, share in figures["calibration"]:
        rows.append([f"{lo:.1f}-{hi:.1f}", str(count), f"{mean:.3f}", f"{share:.3f}"])
    print(fmt_table(rows))


def confidence_only(args) -> int:
    """--confidence-only: the shipped model's confidence head (or a new one with
    --refit-confidence) scored on the test people; --save-default ships a refitted head."""
    from facekp.core.data import opener
    from facekp.core.model.confidence import head_path, load_head
    from facekp.core.model.predict import load_model
    from facekp.core.resources import DEFAULT_DATASET, DEFAULT_MODEL

    started = time.perf_counter()
    dataset = opener.load(str(args.data or DEFAULT_DATASET))
    model = load_model(DEFAULT_MODEL)
    if args.refit_confidence:
        head = fit_confidence(model, dataset)
    else:
        head = load_head(head_path(DEFAULT_MODEL))
    test = dataset.split("test")
    figures = confidence_figures(model, head, test)
    if args.second_model:
        log(f"scoring a second model's disagreement ({args.second_model})")
        figures["rows"].update(second_model_rows(model, load_model(args.second_model), head,
                                                 dataset, figures["keypoints"],
                                                 figures["signals"]))
    siblings = sibling_frames(test, figures["keypoints"])
    print()
    source = "refitted now" if args.refit_confidence else head_path(DEFAULT_MODEL).name
    print(f"model {DEFAULT_MODEL.name}; head {source} ({', '.join(head.features)} + a term "
          "per keypoint)")
    print_confidence(figures, len(test))
    if siblings:
        print(siblings)
    r = figures["rows"]["confidence (the head)"]
    print(f"targets: Spearman >= 0.4: {'yes' if r['spearman'] >= 0.4 else 'NO'}, "
          f"AUROC >= 0.8: {'yes' if r['auroc'] >= 0.8 else 'NO'}")
    if args.refit_confidence and args.save_default:
        head.info["test"] = {k: round(v, 4) for k, v in r.items() if isinstance(v, float)}
        head.save(head_path(DEFAULT_MODEL))
        log(f"saved {head_path(DEFAULT_MODEL)}")
    print(f"wall time {time.perf_counter() - started:.0f} s")
    return 0


# --- report ---------------------------------------------------------------------------------

def report_rows(arch_new: str, scores, val_scores, models, paths, trained, lat, photo):
    """The comparison table: one column per recipe scored, and new/reference where both are."""
    from facekp.core.data.keypoints import NAMES

    roles = [r for r in ("reference", "new") if r in models]

    def row(label, values: dict, fmt: str, ratio: bool = True):
        cells = [format(values[r], fmt) if r in values else "-" for r in ("reference", "new")]
        both = ratio and all(r in values for r in ("reference", "new"))
        return [label] + cells + [f"{values['new'] / values['reference']:.3f}" if both else ""]

    rows = [["", "reference (seed)", f"new ({arch_new})", "new/reference"]]
    rows.append(row("test RMSE px (all keypoints)", {r: scores[r]["rmse_px"] for r in roles}, ".3f"))
    rows.append(row("validation RMSE px", val_scores, ".3f"))
    for name in NAMES:
        rows.append(row(f"  {name}", {r: scores[r]["per_keypoint"][name] for r in roles}, ".3f"))
    rows.append(row("model file MB", {r: paths[r].stat().st_size / 2 ** 20 for r in roles}, ".2f"))
    rows.append(row("parameters", {r: models[r].count_params() for r in roles}, ","))
    rows.append(row("training wall s", {r: trained[r]["wall_s"] for r in roles}, ".0f"))
    rows.append(["epochs run (best)"] + [
        f"{trained[r]['epochs_run']} ({trained[r]['best_epoch']})" if r in roles else "-"
        for r in ("reference", "new")] + [""])
    rows.append(row("single-crop latency ms", lat, ".2f"))
    if photo:
        for passes in (1, 2):
            rows.append(row(f"photo NME, {passes} pass{'es' if passes == 2 else ''}",
                            {r: photo[(r, passes)]["nme"] for r in roles}, ".4f"))
        rows.append(["photos: faces found / not found"] + [
            f"{photo[(r, 1)]['found']} / {photo[(r, 1)]['not_found']}" if r in roles else "-"
            for r in ("reference", "new")] + [""])
        rows.append(row("photo NME 2 passes / 1 pass",
                        {r: photo[(r, 2)]["nme"] / photo[(r, 1)]["nme"] for r in roles}, ".3f",
                        ratio=False))
    return rows


def diagnostic_rows(diagnostics: dict) -> list[list[str]]:
    """One row per (model, split) of :func:`facekp.core.quality.evaluate.flip_diagnostics`."""
    rows = [["model, split", "mean dx", "mean dy", "flip dx mean", "flip dx RMS", "RMSE",
             "mirrored", "averaged"]]
    for (role, split), d in diagnostics.items():
        rows.append([f"{role}, {split}"] + [f"{d[k]:+.3f}" for k in (
            "mean_dx", "mean_dy", "flip_dx_mean")] + [f"{d[k]:.3f}" for k in (
            "flip_dx_rms", "rmse", "rmse_flipped", "rmse_averaged")])
    return rows


def fmt_table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for j, r in enumerate(rows):
        out.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                             for i, (c, w) in enumerate(zip(r, widths))))
        if j == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def smoke_data(folder: Path, keypoints: str = "kaggle15", train: int = 48, val: int = 16,
               test: int = 4) -> Path:
    """A few faces of each split of the embedded dataset (training faces complete in
    kaggle15), in keypoint set ``keypoints``, as an .npz in ``folder``."""
    from facekp.core.data import dataset as data
    from facekp.core.resources import DEFAULT_DATASET

    from facekp.core.data import opener as _opener  # the embedded dataset as kaggle15
    faces = _opener.load(DEFAULT_DATASET)
    rng = np.random.default_rng(0)
    if keypoints != "kaggle15":
        from facekp.core.data.keypoint_sets import load_set
        faces = _opener.load(DEFAULT_DATASET, keypoint_set=load_set(keypoints))
    pools = [(faces.splits == "train") & _opener.load(DEFAULT_DATASET).present.all(1),
             faces.splits == "val",
             faces.splits == "test"]
    idx = np.concatenate([rng.choice(np.flatnonzero(pool), n, replace=False)
                          for pool, n in zip(pools, (train, val, test))])
    path = folder / "smoke.npz"
    data.write_npz(faces.subset(np.sort(idx)), path)
    return path


def main(argv=None) -> int:
    args = parse(argv)
    if args.smoke:
        if args.save_default or args.score_only:
            raise SystemExit("--smoke trains throw-away models: not with --save-default or "
                             "--score-only")
        with temporary_folder("accuracy") as tmp:
            args.data, args.out_dir = str(smoke_data(Path(tmp), args.keypoints)), \
                str(Path(tmp) / "models")
            if args.keypoints != "kaggle15":
                from accuracy_sets import run_set
                return run_set(args, train_one, train_all)
            return confidence_only(args) if args.confidence_only else run(args, argv)
    if args.keypoints != "kaggle15":
        from accuracy_sets import run_set
        return run_set(args, train_one, train_all)
    if args.confidence_only:
        return confidence_only(args)
    return run(args, argv)


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keypoints", default="kaggle15", metavar="SET",
                        help="the keypoint set: kaggle15 (the reference against the new "
                             "recipe), or ibug68 / a set's .json: the new recipe in that set, "
                             "scored with dlib's 68-point predictor beside it for ibug68 "
                             "(benchmarks/accuracy_sets.py)")
    parser.add_argument("--arch-new", default="heatmap",
                        help="new architecture (default heatmap)")
    parser.add_argument("--epochs-new", type=int, default=None,
                        help="epochs for the new recipe (default: its registered default)")
    parser.add_argument("--epochs-ref", type=int, default=None,
                        help="at most this many epochs for the reference (default: its 100)")
    parser.add_argument("--data", default=None, help="dataset with train/val/test splits "
                        "(default: the embedded resources/faces.npz)")
    parser.add_argument("--out-dir", default="/tmp/facekp-accuracy",
                        help="where the trained models go (default /tmp/facekp-accuracy)")
    parser.add_argument("--sequential", action="store_true",
                        help="train one recipe after the other instead of both at once")
    parser.add_argument("--save-default", action="store_true",
                        help="copy the new model to resources/models/default.keras (+ .json)")
    parser.add_argument("--no-photos", action="store_true", help="skip the photo-path NME")
    parser.add_argument("--only-new", action="store_true",
                        help="train and score the new recipe alone (the reference's 100 epochs "
                             "take about an hour on 2 cores); its column then shows '-'")
    parser.add_argument("--score-only", action="store_true",
                        help="do not train: score the models of an earlier run in --out-dir "
                             "(training figures from its trained.json)")
    parser.add_argument("--confidence-only", action="store_true",
                        help="do not train: score the shipped model's keypoint confidence on "
                             "the test people")
    parser.add_argument("--refit-confidence", action="store_true",
                        help="with --confidence-only: fit the confidence head again (training "
                             "people, calibrated on validation) first; with --save-default "
                             "ship it")
    parser.add_argument("--second-model", metavar="M.keras",
                        help="with --confidence-only: also rank the errors by how far a second, "
                             "independently trained model's points lie from the shipped one's")
    parser.add_argument("--latency-rounds", type=int, default=7,
                        help="rounds of single-crop latency, the models taking turns (7)")
    add_smoke(parser, epochs_new=1, only_new=True, latency_rounds=1)
    return parse_args(parser, argv)


def run(args: argparse.Namespace, argv=None) -> int:
    """Train (unless --score-only), score and report; --save-default ships the new model."""
    from facekp.core.resources import DEFAULT_DATASET, DEFAULT_MODEL

    started = time.perf_counter()
    data_path = str(args.data or DEFAULT_DATASET)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ref_path, new_path = out_dir / "reference.keras", out_dir / f"{args.arch_new}.keras"
    ref_over = {"epochs": args.epochs_ref}
    new_over = {"epochs": args.epochs_new}
    jobs = [("new", args.arch_new, new_over, data_path, str(new_path))]
    if not args.only_new:
        jobs.append(("reference", "seed", ref_over, data_path, str(ref_path)))
    summary = out_dir / "trained.json"
    this_command = ("python benchmarks/accuracy.py "
                    + " ".join(argv if argv is not None else sys.argv[1:])).strip()
    if args.score_only:
        if not summary.exists():
            raise SystemExit(f"--score-only: {summary} not found (train first, without "
                             "--score-only)")
        trained = json.loads(summary.read_text())
        log(f"scoring the models in {out_dir} again; training figures from {summary}")
    else:
        what = ("the new recipe" if args.only_new else
                f"both recipes {'one after the other' if args.sequential else 'at once'}")
        log(f"training {what}; models under {out_dir}")
        trained = train_all(jobs, parallel=not args.sequential)
        trained["sequential"] = args.sequential
        trained["command"] = this_command
        trained["training_wall_s"] = round(time.perf_counter() - started)
        from facekp.core.fileio import atomic_path
        with atomic_path(summary) as tmp:
            Path(tmp).write_text(json.dumps(trained, indent=1) + "\n")
    sequential = trained.get("sequential", args.sequential)
    roles = [r for r in ("reference", "new") if r in trained]
    for role in roles:
        if trained[role]["model_path"] is None:
            raise SystemExit(f"{role}: no model was saved ({trained[role]['message']})")

    from facekp.core.data import opener

    from facekp.core.quality import evaluate
    from facekp.core.model.confidence import head_path
    from facekp.core.fileio import atomic_path
    from facekp.core.model.architectures import fold_batch_norm
    from facekp.core.model.predict import Predictor, load_model

    # the new model as shipped: batch norm folded into the convolutions where the network is
    # a single chain of layers (fold_batch_norm's condition); otherwise the trained file itself
    trained_new = load_model(new_path)
    try:
        folded = fold_batch_norm(trained_new)
    except ValueError as exc:
        log(f"new model shipped as trained ({exc})")
        folded_path, inference_form = new_path, "as trained (batch norm kept)"
    else:
        folded_path = out_dir / f"{args.arch_new}_folded.keras"
        inference_form = "batch norm folded into the convolutions (facekp.core.model.architectures.fold_batch_norm)"
        with atomic_path(folded_path) as tmp:
            folded.save(tmp)
    paths = {"reference": ref_path, "new": folded_path}
    paths = {k: v for k, v in paths.items() if k in roles}
    models = {k: load_model(v) for k, v in paths.items()}

    dataset = opener.load(data_path)
    test = dataset.split("test")
    log(f"scoring on {len(test)} test faces of {len(set(test.persons))} people")
    scores = {k: evaluate.evaluate(Predictor(m), test) for k, m in models.items()}
    val = dataset.split("val")
    val_scores = {k: evaluate.evaluate(Predictor(m), val)["rmse_px"] for k, m in models.items()}
    trained_scores = {
        "new": evaluate.evaluate(Predictor(trained_new), test)["rmse_px"]}
    lat = latencies_ms(models, rounds=args.latency_rounds)

    photo = {}
    if not args.no_photos:
        photos = test_photos(test)
        log(f"photo path on {len(photos)} original photos of the test people")
        for k, m in models.items():
            pred = Predictor(m)
            for passes in (1, 2):
                photo[(k, passes)] = photo_nme(
                    pred, photos, passes, dataset.meta.get("label_recentre", {}).get("x_moved_px", 0.0))
                log(f"  {k}, {passes} pass(es): NME {photo[(k, passes)]['nme']:.4f}")

    diagnostics = {(k, split): evaluate.flip_diagnostics(m, dataset.split(split))
                   for k, m in models.items() for split in ("val", "test")}
    confident = models["new"]
    if args.smoke:
        log("smoke: the confidence head is fitted for the shipped model (a one-epoch model "
            "misses every point by more than 3 px)")
        confident = load_model(DEFAULT_MODEL)
    head = fit_confidence(confident, dataset)
    conf_figures = confidence_figures(confident, head, test)
    new = scores["new"]
    ref = scores.get("reference")
    ratio = new["rmse_px"] / ref["rmse_px"] if ref else math.nan
    rows = report_rows(args.arch_new, scores, val_scores, models, paths, trained, lat, photo)
    total = time.perf_counter() - started
    print()
    print(f"Test people: {len(test)} faces of {len(set(test.persons))} people; training "
          f"{len(dataset.split('train'))} faces, validation {len(val)} "
          f"({'trained at once, sharing the CPU' if not sequential else 'trained in turn'}; "
          f"{os.cpu_count()} CPU cores)")
    print(fmt_table(rows))
    print()
    print("left/right diagnostics (px): mean error x, y; mirrored face predicted and mapped back "
          "minus direct, x mean and RMS; RMSE direct / mirrored / both averaged")
    print(fmt_table(diagnostic_rows(diagnostics)))
    print(f"new model before folding batch norm: test RMSE {trained_scores['new']:.3f} px")
    print()
    print_confidence(conf_figures, len(test))
    conf_row = conf_figures["rows"]["confidence (the head)"]
    val_diag = diagnostics[("new", "val")]
    targets = {"test rmse <= 1.55 px": new["rmse_px"] <= 1.55,
               "file <= 10 MB": paths["new"].stat().st_size <= 10 * 2 ** 20,
               "val |mean dx|, |mean dy| <= 0.15": max(abs(val_diag["mean_dx"]),
                                                       abs(val_diag["mean_dy"])) <= 0.15,
               "val |flip dx mean| <= 0.2": abs(val_diag["flip_dx_mean"]) <= 0.2,
               "confidence Spearman >= 0.4": conf_row["spearman"] >= 0.4,
               "confidence AUROC >= 0.8": conf_row["auroc"] >= 0.8}
    if ref:
        targets["rmse <= 0.6 x reference"] = ratio <= 0.6
        targets["latency <= reference"] = lat["new"] <= lat["reference"]
    if photo:
        targets["2 passes no worse than 1"] = photo[("new", 2)]["nme"] <= photo[("new", 1)]["nme"]
    print("targets: " + ", ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in targets.items()))
    if args.score_only:
        print(f"scoring wall time {total:.0f} s; training ({trained.get('command', '?')}) took "
              f"{trained.get('training_wall_s', '?')} s")
    else:
        print(f"total wall time {total:.0f} s")

    if args.save_default:
        params = {k: m.count_params() for k, m in models.items()}
        tr = trained
        card = {
            "arch": args.arch_new,
            "file": "default.keras",
            "inference_form": inference_form,
            "parameters": params["new"],
            "data": f"embedded dataset resources/faces.npz ({len(dataset)} faces of "
                    f"{len(set(dataset.persons))} people from ytf68, 68 landmarks mapped to "
                    "the 15 Kaggle keypoints)",
            "split": {"by": "person", "train_faces": len(dataset.split("train")),
                      "val_faces": len(val), "test_faces": len(test),
                      "test_people": len(set(test.persons))},
            "training": {k: v for k, v in tr["new"].items() if k != "model_path"},
            "test_rmse_px": round(new["rmse_px"], 4),
            "test_rmse_per_keypoint_px": {k: round(v, 4) for k, v in new["per_keypoint"].items()},
            "val_rmse_px": round(val_scores["new"], 4),
            "reference_test_rmse_px": round(ref["rmse_px"], 4) if ref else None,
            "ratio_to_reference": round(ratio, 4) if ref else None,
            "left_right": {split: {k: round(v, 4) for k, v in diagnostics[("new", split)].items()}
                           for split in ("val", "test")},
            "photo_nme": {f"{p}_pass": round(photo[("new", p)]["nme"], 5) for p in (1, 2)}
            if photo else None,
            "single_crop_latency_ms": round(lat["new"], 2),
            "command": trained.get("command", this_command) if args.score_only
            else this_command,
            "scored_by": this_command if args.score_only else None,
            "benchmark_wall_s": round(total) if not args.score_only
            else trained.get("training_wall_s", 0) + round(total),
            "machine": f"{os.cpu_count()} CPU cores, no GPU",
            "date": time.strftime("%Y-%m-%d"),
            "image_rights": "trained on frames of the YouTube Faces dataset via ytf68; image "
                            "rights not stated by the source",
        }
        with atomic_path(DEFAULT_MODEL) as tmp:
            shutil.copyfile(folded_path, tmp)
        with atomic_path(DEFAULT_MODEL.with_suffix(".json")) as tmp:
            Path(tmp).write_text(json.dumps(card, indent=1) + "\n")
        head.info["test"] = {k: round(v, 4) for k, v in conf_row.items() if isinstance(v, float)}
        head.save(head_path(DEFAULT_MODEL))
        log(f"saved {DEFAULT_MODEL}, its card {DEFAULT_MODEL.with_suffix('.json')} and its "
            f"confidence head {head_path(DEFAULT_MODEL)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
