"""Command line: ``facekp import | info | ...``. Errors a user can fix print one line, exit 2."""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Callable

import numpy as np

from facekp.core.cli import keypoints
from facekp.core.errors import FacekpError
from facekp.core.fileio import (check_output, refuse_input_as_output, refuse_special, resolved,
                                same_file)

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}
#: Commands that open photos (and so read $FACEKP_MAX_PHOTO_MEGAPIXELS).
PHOTO_COMMANDS = ("import", "predict")


def _progress(label: str):
    from facekp.core.progress import ProgressLine

    line = ProgressLine(label)
    return line.update


# --- import -------------------------------------------------------------------------------

def cmd_import(args: argparse.Namespace) -> int:
    """``facekp import``: labelled photos (CSV, .pts, COCO, dlib XML) or, with --predict,
    unlabelled photos -> a dataset file or TFRecord shards."""
    from facekp.core.data import dataset as data
    from facekp.core.photos import importers

    if args.predict:
        return _import_predicted(args)
    images = args.images or []
    labels = args.labels or []
    if labels and len(labels) != len(images):
        raise FacekpError("give one --images folder for each --labels CSV (in the same order)")
    if not images:
        raise FacekpError("give at least one --images folder")
    fractions = _split_fractions(args.split) if args.split else None
    meta = _meta_object(args.meta) if args.meta else {}
    refuse_input_as_output(args.out, {"--labels": labels, "--images": images})
    _check_shard_output(args, {"--labels": labels, "--images": images})
    parts, reports = [], []
    for i, folder in enumerate(images):
        lab = labels[i] if labels else None
        prefix = f"{Path(folder).name}/" if len(images) > 1 else ""
        ds, report = importers.import_labels(
            folder, lab, prefix=prefix, progress=_progress(f"import {folder}"),
            detector=None if args.detector == "none" else args.detector)
        parts.append(ds)
        reports.append(report)
    dataset = parts[0]
    for p in parts[1:]:
        dataset = dataset.concat(p)
    dataset = _report_duplicates(dataset, args.dedupe)
    dataset, offset = _mirror_axis(dataset, args.recentre)
    if fractions:
        dataset = data.split_by_person(dataset, fractions, seed=args.seed)
    dataset.meta.update(meta)
    dataset.meta["imported_from"] = [str(Path(f)) for f in images]
    if len(dataset) == 0:
        raise FacekpError("no face could be imported; nothing written")
    _write_dataset(dataset, args)
    for folder, report in zip(images, reports):
        print(f"== {folder}")
        print(report.format())
    if offset is not None and offset["sem_px"] is not None:  # measured on 2 faces or more
        print(_offset_line(offset, moved=args.recentre))
    if len(reports) > 1 or args.split:
        print("== written")
        print(data.format_description(data.describe(dataset)))
    print(f"wrote {len(dataset)} faces to {args.out}")
    return 0


def _mirror_axis(dataset, recentre: bool):
    """(dataset, offset): with --recentre the labels' x moved onto the faces' mirror axis;
    otherwise the labels as the source has them, the offset only measured, to be reported."""
    from facekp.core.photos import importers

    if not len(dataset):
        return dataset, None
    if recentre:
        return importers.recentre_labels(dataset)
    return dataset, importers.label_mirror_offset(dataset.images, dataset.keypoints)


def _offset_line(offset: dict, moved: bool) -> str:
    """The mirror-axis figure of an import: the labels moved onto the axis (--recentre), or
    where they sit and how to move them."""
    if moved:
        return (f"labels moved {-offset['offset_px']:+.2f} px in x onto the faces' mirror axis "
                f"(--recentre; measured on {offset['faces']} faces)")
    side = "right" if offset["offset_px"] >= 0 else "left"
    return (f"labels sit {abs(offset['offset_px']):.2f} px {side} of the faces' mirror axis "
            f"(measured on {offset['faces']} faces; kept as they are: pass --recentre to move "
            "them)")


def _check_shard_output(args: argparse.Namespace, inputs: dict) -> None:
    """Before long work: --shards N is 1 or more, and --out (a folder with --shards, else a
    file) may be written: an existing one only with --overwrite, never one of the inputs or
    a folder holding one of them, never a device or pipe."""
    out = Path(args.out)
    if args.shards is not None and args.shards < 1:
        raise FacekpError(f"--shards must be 1 or more, got {args.shards}")
    if args.shards is None and out.is_dir():
        raise FacekpError(f"{out} is a folder; give --shards N to write shards there, or a "
                          ".npz or .csv file name")
    if args.shards is None:
        check_output(out, args.overwrite)
        return
    refuse_special(out)
    if not out.exists():
        return
    if not out.is_dir():
        raise FacekpError(f"{out} is a file; with --shards, --out is a folder")
    if not args.overwrite:
        raise FacekpError(f"{out} already exists; give --overwrite to replace it")
    for option, paths in inputs.items():
        for given in paths:
            if resolved(out) in (resolved(given), *resolved(given).parents):
                raise FacekpError(f"{out} holds an input ({option} {given}); choose another "
                                  "output folder so the input is not overwritten")


def _write_dataset(dataset, args: argparse.Namespace) -> None:
    """``dataset`` to --out: shards with --shards N, else a file by its ending."""
    from facekp.core.data import opener

    if args.shards is None:
        opener.save(dataset, args.out)
        return
    from facekp.core.data.shards import write_shards

    write_shards(dataset, args.out, args.shards, overwrite=args.overwrite,
                 progress=_progress(f"write {args.out}"))


def _import_predicted(args: argparse.Namespace) -> int:
    """``facekp import --predict PHOTO...``: the photos' faces as a dataset whose labels are a
    model's keypoints, marked as not yet checked; ``--add-to`` puts them after a dataset's."""
    from facekp.core.data import dataset as data
    from facekp.core.data import opener
    from facekp.core.photos.photo_faces import add_faces, predict_photos
    from facekp.core.model.predict import Predictor

    if args.images or args.labels:
        raise FacekpError("--predict takes photos, not --images or --labels")
    if args.detector == "none":
        raise FacekpError("--predict finds faces with a detector: use --detector mtcnn or haar")
    refuse_input_as_output(args.out, {"--predict": args.predict,
                                      "--add-to": [args.add_to] if args.add_to else []})
    check_output(args.out, args.overwrite)
    base = opener.load(args.add_to) if args.add_to else None
    predictor = Predictor(_model_path(args), detector=args.detector)
    new, lines = predict_photos(predictor, args.predict, progress=_progress("predict"))
    if len(new) == 0:
        raise FacekpError("no face found in " + ", ".join(map(str, args.predict))
                          + "; nothing written")
    dataset = add_faces(base, new)
    if base is None and args.split:
        dataset = data.split_by_person(dataset, _split_fractions(args.split), seed=args.seed)
    opener.save(dataset, args.out)
    print("\n".join(lines))
    where = f" after the {len(base)} of {args.add_to}" if base is not None else ""
    print(f"wrote {len(dataset)} faces to {args.out}: {len(new)} predicted faces (not yet "
          f"checked){where}")
    return 0


def _split_fractions(text: str) -> tuple[float, float, float]:
    """--split TRAIN,VAL,TEST: three fractions, each 0-1, summing to 1; else a clear error."""
    try:
        fractions = tuple(float(v) for v in text.split(","))
    except ValueError:
        fractions = ()
    if (len(fractions) != 3 or not all(0 <= f <= 1 for f in fractions)
            or abs(sum(fractions) - 1) > 1e-6):
        raise FacekpError(f"--split {text}: expected three fractions TRAIN,VAL,TEST between 0 "
                          "and 1 that sum to 1, e.g. 0.8,0.1,0.1")
    return fractions  # type: ignore[return-value]


def _meta_object(text: str) -> dict:
    try:
        meta = json.loads(text)
    except ValueError as exc:
        raise FacekpError(f"--meta is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise FacekpError("--meta must be a JSON object, e.g. '{\"source\": \"lab\"}'")
    return meta


def _report_duplicates(dataset, dedupe: bool):
    """Warn about faces whose pixels repeat an earlier face's; with ``dedupe`` drop them."""
    import numpy as np

    from facekp.core.data import dataset as data

    dupes = data.duplicate_rows(dataset)
    if not len(dupes):
        return dataset
    if dedupe:
        print(f"removed {len(dupes)} duplicate faces (same pixels as an earlier face)")
        return dataset.subset(np.setdiff1d(np.arange(len(dataset)), dupes))
    print(f"warning: {len(dupes)} duplicate faces (same pixels as an earlier face, e.g. "
          f"{dataset.names[dupes[0]]}); --dedupe removes them", file=sys.stderr)
    return dataset


def _positive(args: argparse.Namespace, *names: str) -> None:
    """Each named integer option must be 1 or more."""
    for name in names:
        value = getattr(args, name)
        if value < 1:
            raise FacekpError(f"--{name} must be 1 or more, got {value}")


# --- info ---------------------------------------------------------------------------------

def cmd_info(args: argparse.Namespace) -> int:
    """``facekp info``: faces, splits, missing values and keypoint statistics (--json)."""
    from facekp.core.data import dataset as data
    from facekp.core.data import opener

    from facekp.core.data.shards import is_shards, open_shards

    source = Path(args.file)
    if is_shards(source):  # the index, then one streaming pass without keeping pixels
        shards = open_shards(source)
        desc = shards.describe()
        desc["shards"] = len(shards.index["files"])
    else:
        desc = data.describe(opener.load(source))
    desc["file"] = str(args.file)
    if args.json:
        print(json.dumps(desc, indent=2))
    else:
        print(f"{args.file}")
        print(data.format_description(desc))
    return 0


# --- montage ------------------------------------------------------------------------------

def cmd_montage(args: argparse.Namespace) -> int:
    """``facekp montage``: a PNG grid of sampled faces with their keypoints drawn."""
    import numpy as np

    from facekp.core.data import opener

    from facekp.core.faces import render
    from facekp.core.fileio import atomic_path

    _positive(args, "count", "columns", "scale")
    refuse_input_as_output(args.out, {"dataset": [args.file]})
    check_output(args.out, args.overwrite)
    dataset = opener.load(args.file)
    if args.split != "all":
        dataset = dataset.split(args.split)
    if len(dataset) == 0:
        raise FacekpError(f"{args.file}: no faces in split {args.split!r}")
    rng = np.random.default_rng(args.seed)
    idx = np.sort(rng.choice(len(dataset), size=min(args.count, len(dataset)), replace=False))
    sheet = render.montage(dataset.images[idx], dataset.keypoints[idx], columns=args.columns,
                           scale=args.scale)
    with atomic_path(args.out) as tmp:
        sheet.save(tmp, format="PNG")
    print(f"wrote {len(idx)} faces to {args.out}")
    return 0


# --- export -------------------------------------------------------------------------------

def cmd_export(args: argparse.Namespace) -> int:
    from facekp.core.data import opener
    from facekp.core.data import formats

    refuse_input_as_output(args.out, {"dataset": [args.file]})
    formats.check_outputs(args.format, Path(args.out), args.overwrite)
    dataset = opener.load(args.file)
    if len(dataset) == 0:
        raise FacekpError(f"{args.file}: no faces to export")
    written = formats.export(dataset, args.format, args.out, overwrite=args.overwrite)
    print(f"wrote {len(dataset)} faces ({args.format}) to {', '.join(map(str, written))}")
    return 0


COMMANDS["export"] = cmd_export


# --- convert ------------------------------------------------------------------------------

def cmd_convert(args: argparse.Namespace) -> int:
    from facekp.core.data import opener

    source = Path(args.file)
    refuse_input_as_output(args.out, {"dataset": [source]})
    _check_shard_output(args, {"dataset": [source]})
    dataset = opener.load(source)
    if len(dataset) == 0:
        raise FacekpError(f"{source}: no faces to convert")
    _write_dataset(dataset, args)
    what = f"{args.shards} shards per split" if args.shards is not None else "one file"
    print(f"wrote {len(dataset)} faces ({what}) to {args.out}")
    return 0


COMMANDS["convert"] = cmd_convert

COMMANDS.update({"import": cmd_import, "info": cmd_info, "montage": cmd_montage})

# --- model helpers ------------------------------------------------------------------------

def _model_path(args: argparse.Namespace) -> Path:
    """--model, or the shipped default model, or a clear error."""
    if args.model:
        return Path(args.model)
    from facekp.core.resources import default_model

    path = default_model()
    if path is None:
        raise FacekpError("no --model given and no default model is installed; train one "
                          "with 'facekp train --out model.keras' and pass --model model.keras")
    return path


def _dataset_path(args: argparse.Namespace) -> Path:
    if args.data:
        return Path(args.data)
    from facekp.core.resources import DEFAULT_DATASET

    return DEFAULT_DATASET


def _print_json(value, command: str) -> None:
    """Print ``value`` as valid JSON: a NaN or infinity (a model's non-finite output) becomes
    null, and one warning line on stderr says so."""
    bad = []

    def clean(v):
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if isinstance(v, float) and not math.isfinite(v):
            bad.append(v)
            return None
        return v

    text = json.dumps(clean(value), indent=2, allow_nan=False)
    _warn_non_finite(command, len(bad))
    print(text)


def _warn_non_finite(command: str, count: int) -> None:
    """One warning line on stderr when ``count`` values of a model's output were not finite."""
    if count:
        print(f"facekp {command}: warning: the model gives non-finite output (NaN or infinity); "
              f"{count} values are null in the JSON", file=sys.stderr)


def _fmt_px(v: float | None) -> str:
    return "   n/a" if v is None or v != v else f"{v:6.3f}"


# --- train --------------------------------------------------------------------------------

def _check_model_out(args: argparse.Namespace, out: Path) -> None:
    """``facekp train``'s --out may be written: a .keras name, not an existing model unless
    --overwrite or --resume of it, never the --fine-tune model; --resume or --fine-tune."""
    if out.suffix != ".keras":
        raise FacekpError(f"{out}: the model file name must end in .keras")
    if args.fine_tune and args.resume:
        raise FacekpError("give --resume (go on with a model's own run) or --fine-tune (start "
                          "from its weights), not both")
    if args.fine_tune and same_file(out, args.fine_tune):
        raise FacekpError(f"{out} is the --fine-tune model; choose a new --out")
    if out.exists() and not args.overwrite and not (args.resume and same_file(out, args.resume)):
        raise FacekpError(f"{out} already exists; give --overwrite to replace it (or --resume "
                          f"{out} to go on training it)")


def cmd_train(args: argparse.Namespace) -> int:
    """``facekp train``: train (or resume, or fine-tune) a model; the best epoch is saved."""
    import signal

    from facekp.core.data import dataset as data
    from facekp.core.data import opener
    from facekp.core.model.cluster import check_strategy, make_strategy
    from facekp.core.errors import DataError
    from facekp.core.model.train import Trainer
    from facekp.core.model.train_types import TrainConfig

    check_strategy(args.strategy, connect_timeout=args.connect_timeout)
    try:
        config = TrainConfig.for_arch(
            args.arch, epochs=args.epochs, batch_size=args.batch_size,
            learning_rate=args.lr, patience=args.patience, augment=args.augment,
            complete_only=args.complete_only, seed=args.seed, lr_schedule=args.lr_schedule,
            augment_strength=args.augment_strength, augment_preset=args.augment_preset)
        config = config.resolved()
    except ValueError as exc:
        raise FacekpError(str(exc)) from None
    out = Path(args.out)
    _check_model_out(args, out)
    source = _dataset_path(args)
    dataset = opener.open_dataset(source)  # a bad file or folder names itself
    try:
        train, val, note = data.training_splits(dataset, seed=args.seed)
    except DataError as exc:
        raise FacekpError(f"{source}: {exc}") from None
    if note:
        print(f"{source}: {note}", flush=True)
    train.meta["source"] = str(source)
    # Before any TensorFlow operation (it sets up collective operations), after the input
    # checks (the multi-worker strategy waits for the other workers to start).
    strategy = make_strategy(args.strategy, connect_timeout=args.connect_timeout)
    listener = _CliListener(sys.stdout, sys.stderr)
    trainer = Trainer(config, train, val, out, listener, resume=args.resume, strategy=strategy,
                      fine_tune=args.fine_tune, fit_confidence=args.confidence_head)
    listener.trainer = trainer

    def on_sigint(signum, frame):
        if trainer.stop_requested and trainer.writing:  # a write is never cut in half
            listener.note("finishing the model file being written, then quitting")
            return
        if trainer.stop_requested:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt
        trainer.stop()
        listener.note("stopping after this batch; the best model is kept "
                      "(Ctrl+C again to abort at once)")

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        result = trainer.run()
    finally:
        signal.signal(signal.SIGINT, previous)
    if result.reason == "error":
        raise FacekpError(result.message)
    return 130 if result.reason == "stopped" else 0


class _CliListener:
    """Progress for the terminal: one line per epoch (stdout), a batch bar on a terminal."""

    def __init__(self, out, err):
        from facekp.core.progress import format_seconds

        self.out, self.err = out, err
        self.tty = getattr(err, "isatty", lambda: False)()
        self.fmt = format_seconds
        self.info: dict = {}
        self.trainer = None
        self._bar = False

    def note(self, text: str) -> None:
        self._clear()
        print(text, file=self.err, flush=True)

    on_note = note

    def _clear(self) -> None:
        if self._bar:
            self.err.write("\r\x1b[K")
            self._bar = False

    def on_started(self, info: dict) -> None:
        """The run's first line: architecture, faces, epochs, steps and settings."""
        self.info = info
        c = info["config"]
        extra = []
        if c["augment"]:
            strength = c.get("augment_strength", 1.0)
            extra.append("augmented" + (f" x{strength:g}" if strength != 1.0 else ""))
        if c["complete_only"]:
            extra.append("faces with all 15 keypoints")
        if c["lr_schedule"] != "constant":
            extra.append(f"{c['lr_schedule']} learning rate")
        resumed = (f", resuming after epoch {info['initial_epoch']}"
                   if info.get("initial_epoch") else "")
        workers = info.get("workers", 1)
        each = f" on each of {workers} workers" if workers > 1 else ""
        print(f"training {info['arch']} on {info['train_faces']} faces "
              f"({', '.join(extra) or 'all faces'}), validating on {info['val_faces']}: "
              f"{info['steps_per_epoch']} batches of {c['batch_size']}{each} per epoch, up to "
              f"{info['epochs']} epochs (early stop after {c['patience']} without improvement)"
              f"{resumed}. Ctrl+C stops and keeps the best model.", file=self.out, flush=True)

    def on_batch(self, epoch: int, batch: int, loss_px: float) -> None:
        if not self.tty:
            return
        steps = self.info.get("steps_per_epoch", 1)
        width = 20
        filled = int(width * batch / steps)
        self.err.write(f"\repoch {epoch} [{'#' * filled}{'.' * (width - filled)}] "
                       f"{batch}/{steps} loss {loss_px:.2f} px\x1b[K")
        self.err.flush()
        self._bar = True

    def on_epoch(self, epoch: int, train_px: float, val_px: float, best: bool,
                 elapsed_s: float) -> None:
        self._clear()
        total = self.info.get("epochs", epoch)
        done = epoch - self.info.get("initial_epoch", 0)
        per = elapsed_s / max(done, 1)
        eta = per * (total - epoch)
        print(f"epoch {epoch:3d}/{total}  train {train_px:7.3f} px  val {val_px:7.3f} px"
              f"{'  *best' if best else '       '}  {per:5.1f} s/epoch  elapsed "
              f"{self.fmt(elapsed_s)}  ETA {self.fmt(eta)}", file=self.out, flush=True)

    def on_finished(self, result) -> None:
        self._clear()
        reasons = {"completed": "finished", "early_stop": "stopped early",
                   "stopped": "stopped by the user", "error": "failed"}
        if result.reason == "error":
            return  # the caller prints the message as an error
        text = f"{reasons.get(result.reason, result.reason)}: {result.message}"
        if result.model_path is not None:
            by = "" if getattr(self.trainer, "writes_model", True) else " by the chief worker"
            text += (f"\nbest model: epoch {result.best_epoch}, validation RMSE "
                     f"{result.best_val_rmse_px:.3f} px, saved{by} to {result.model_path}")
        else:
            text += "\nno model saved (no epoch finished)"
        print(text, file=self.out, flush=True)


# --- evaluate -----------------------------------------------------------------------------

def cmd_evaluate(args: argparse.Namespace) -> int:
    """``facekp evaluate``: RMSE in pixels, overall and per keypoint, on a split."""
    from facekp.core.data import dataset as data
    from facekp.core.data import opener
    from facekp.core.quality.evaluate import evaluate, format_report
    from facekp.core.model.predict import Predictor

    model = _model_path(args)
    source = _dataset_path(args)
    part, note = data.evaluation_faces(opener.open_dataset(source), args.split)
    if note:  # with --json stdout holds the JSON alone
        print(f"{source}: {note}", file=sys.stderr if args.json else sys.stdout)
    if len(part) == 0:
        raise FacekpError(f"{source}: no faces in split {args.split!r} (use --split all for "
                          "every face)")
    result = evaluate(Predictor(model), part)
    if args.json:
        _print_json(result, args.command)
    else:
        print(format_report(result, f"{model} on {source} (split {args.split})"))
    return 0


# --- compare ------------------------------------------------------------------------------

def cmd_compare(args: argparse.Namespace) -> int:
    """``facekp compare``: two models' RMSE, overall and per keypoint, and their ratio."""
    from facekp.core.data import dataset as data
    from facekp.core.data import opener
    from facekp.core.quality.compare import compare, format_comparison

    source = _dataset_path(args)
    part, note = data.evaluation_faces(opener.open_dataset(source), args.split)
    if note:
        print(f"{source}: {note}", file=sys.stderr if args.json else sys.stdout)
    if len(part) == 0:
        raise FacekpError(f"{source}: no faces in split {args.split!r} (use --split all)")
    result = compare(Path(args.model_a), Path(args.model_b), part)
    if args.json:
        _print_json({"model_a": args.model_a, "model_b": args.model_b, **result}, args.command)
    else:
        print(format_comparison(result, args.model_a, args.model_b,
                                f"RMSE on {source} (split {args.split})"))
    return 0


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
        return video.run(args, _model_path(args), _detector_side(args))
    _refuse_video_options(args)
    batch.check_options(args)
    if args.jsonl is None:
        args.photos = batch.expand_folders(args.photos, args.recursive)
    drawn = _drawing_paths(args) if args.draw else {}
    side = _detector_side(args)
    if args.jsonl is not None:
        return batch.run(args, _model_path(args), side)
    predictor = Predictor(_model_path(args), detector=make_detector(args.detector, **side),
                          min_confidence=args.min_confidence)
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
        entry, truth_error = result_record(photo, res)  # a non-finite keypoint is null there
        if truth_error is not None:
            print(f"facekp predict: warning: ground truth not used: {truth_error}",
                  file=sys.stderr)
        non_finite += sum(int((~np.isfinite(f.keypoints)).sum()) for f in res.faces)
        if drawn:
            entry["drawn"] = _draw_photo(res, drawn[photo])
        results.append(entry)
        if not args.json:
            _print_faces(photo, res, entry.get("drawn"))
    if args.json:
        _warn_non_finite(args.command, non_finite)
        _print_json(results, args.command)
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
    """The detector's option for --detect-side (MTCNN's max_side, Haar's detect_side)."""
    if args.detect_side is None:
        return {}
    return {"max_side" if args.detector == "mtcnn" else "detect_side": args.detect_side}


def _refuse_video_options(args) -> None:
    """--step, --detect-every and --smooth given for photos."""
    for option, value in (("--step", args.step), ("--detect-every", args.detect_every),
                          ("--smooth", args.smooth)):
        if value is not None:
            raise FacekpError(f"{option} applies to a video (.mp4, .avi, .mov, .mkv, .webm), "
                              "not to photos")


def _print_faces(photo, res, drawn: str | None) -> None:
    """A photo's faces as text: box, the detector's confidence and four keypoints each."""
    print(f"{photo}: {res.message}" + (f" -> {drawn}" if drawn else ""))
    for i, face in enumerate(res.faces, 1):
        box = ", ".join(f"{v:.0f}" for v in face.box.as_list())
        pts = "  ".join(f"{n} ({x:.1f}, {y:.1f})" for n, (x, y) in
                        zip(("left_eye_center", "right_eye_center", "nose_tip",
                             "mouth_center_bottom_lip"), face.keypoints[[0, 1, 10, 14]]))
        conf = "" if face.confidence is None else f"  confidence {face.confidence:.3f}"
        print(f"  face {i}: box [{box}]{conf}  {pts}")


# --- submit -------------------------------------------------------------------------------

def cmd_submit(args: argparse.Namespace) -> int:
    from facekp.core.quality.kaggle import make_submission
    from facekp.core.model.predict import Predictor

    refuse_input_as_output(args.out, {"--test": [args.test], "--lookup": [args.lookup],
                                      "--model": [args.model]})
    check_output(args.out, args.overwrite)
    predictor = Predictor(_model_path(args))
    summary = make_submission(predictor, args.test, args.lookup, args.out,
                              progress=_progress(f"read {args.test}"))
    clipped = f" ({summary['clipped']} values clipped to 0-96)" if summary["clipped"] else ""
    print(f"wrote {summary['rows']} rows for {summary['images']} images to {args.out}{clipped}")
    return 0


def _add_engine_parsers(sub) -> None:
    _add_train_parser(sub)
    _add_evaluation_parsers(sub)
    _add_predict_parser(sub)
    p = sub.add_parser("submit", help="Kaggle submission.csv from test.csv and IdLookupTable.csv")
    p.add_argument("--model", help="model .keras (default: the installed default model)")
    p.add_argument("--test", required=True, help="Kaggle test.csv (ImageId,Image)")
    p.add_argument("--lookup", required=True, help="Kaggle IdLookupTable.csv")
    p.add_argument("--out", required=True, help="output submission .csv")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")


def _add_train_parser(sub) -> None:
    p = sub.add_parser("train", help="train a model; the best (validation RMSE) is saved",
                       description="Train an architecture on the 'train' split of a dataset, "
                                   "validating on its 'val' split after every epoch. The best "
                                   "model is saved to --out whenever validation improves; "
                                   "Ctrl+C stops after the current batch and keeps it.")
    p.add_argument("--data", help=".npz dataset with splits, Kaggle training .csv, or a shard "
                                  "folder (streamed; default: the embedded dataset)")
    p.add_argument("--arch", default="seed", help="architecture (default: seed)")
    p.add_argument("--out", required=True, help="output model, .keras")
    p.add_argument("--epochs", type=int, help="most epochs (default: the architecture's)")
    p.add_argument("--batch-size", type=int, help="faces per batch")
    p.add_argument("--lr", type=float, help="learning rate")
    p.add_argument("--patience", type=int,
                   help="epochs without improvement before stopping early (0: never)")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help="augment training batches (default: the architecture's)")
    p.add_argument("--augment-preset", choices=["basic", "wild"],
                   help="basic: flip, rotation, scale, shift, light; wild: also low resolution, "
                        "blur, JPEG, gamma, noise, occlusion, larger rotations (default: the "
                        "architecture's; heatmap: wild)")
    p.add_argument("--augment-strength", type=float, metavar="S",
                   help="augmentation S times as strong as facekp.core.model.augment's defaults (rotation "
                        "10 deg, scale 10%%, shift 4 px, brightness 10%%, contrast 20%%; "
                        "default: the architecture's)")
    p.add_argument("--complete-only", action=argparse.BooleanOptionalAction, default=None,
                   help="train on faces with all 15 keypoints only (default: the "
                        "architecture's)")
    p.add_argument("--lr-schedule", choices=["constant", "cosine"],
                   help="learning-rate schedule (default: the architecture's)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--strategy", choices=["auto", "mirrored", "multiworker"], default="auto",
                   help="auto: all GPUs of this machine (default); mirrored: "
                        "tf.distribute.MirroredStrategy; multiworker: several machines, one "
                        "process each, from the TF_CONFIG environment variable (--batch-size "
                        "is then per machine)")
    p.add_argument("--connect-timeout", type=float, metavar="S",
                   help="with --strategy multiworker: give up (exit 2) when the other workers "
                        "have not all started after S seconds (default: wait as long as it "
                        "takes)")
    p.add_argument("--resume", metavar="MODEL", help="go on training from a saved .keras model")
    p.add_argument("--fine-tune", metavar="MODEL",
                   help="start from a .keras model's weights with a fresh optimizer (these "
                        "options) for --epochs more epochs, e.g. on a dataset with new faces")
    p.add_argument("--overwrite", action="store_true",
                   help="replace --out if it exists (otherwise an existing model is kept and "
                        "training refused)")
    p.add_argument("--confidence-head", action=argparse.BooleanOptionalAction, default=True,
                   help="after training, fit the model's keypoint confidence head "
                        "(OUT.confidence.json; a minute or two on the embedded dataset; "
                        "default: yes)")


def _add_evaluation_parsers(sub) -> None:
    p = sub.add_parser("evaluate", help="RMSE in pixels, overall and per keypoint")
    p.add_argument("--model", help="model .keras (default: the installed default model)")
    _add_scored_faces_options(p)

    p = sub.add_parser("compare", help="two models' RMSE, overall and per keypoint, and B / A")
    p.add_argument("model_a", help="model A, .keras")
    p.add_argument("model_b", help="model B, .keras")
    _add_scored_faces_options(p)


def _add_scored_faces_options(p) -> None:
    """--data, --split and --json of the commands that score models on a dataset's faces."""
    p.add_argument("--data", help=".npz, Kaggle .csv or shard folder (default: the embedded "
                                  "dataset)")
    p.add_argument("--split", default="test", choices=["train", "val", "test", "all"],
                   help="which faces (default: test)")
    p.add_argument("--json", action="store_true", help="print JSON")


def _add_predict_parser(sub) -> None:
    p = sub.add_parser("predict", help="keypoints of the faces in photos or a video")
    p.add_argument("photos", nargs="+", metavar="PHOTO", help="image files (JPEG, PNG, ...) "
                   "or folders of them, or one video (.mp4, .avi, .mov, .mkv, .webm)")
    p.add_argument("--model", help="model .keras (default: the installed default model)")
    p.add_argument("--json", action="store_true", help="print JSON (photo pixels)")
    p.add_argument("--draw", metavar="DIR|OUT.mp4", help="write each photo with boxes and "
                   "keypoints drawn to DIR/<name>.png; for a video, the video drawn to OUT.mp4")
    p.add_argument("--detector", choices=["mtcnn", "haar"], default="mtcnn",
                   help="face detector (default mtcnn; haar: faster, frontal faces only)")
    p.add_argument("--detect-side", type=int, metavar="PX",
                   help="longer side of the copy the detector scans (mtcnn 640, haar 512): "
                        "larger finds smaller faces in large photos, more slowly")
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


COMMANDS.update({"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict,
                 "submit": cmd_submit, "keypoints": keypoints.cmd_keypoints})
COMMANDS["compare"] = cmd_compare


def build_parser() -> argparse.ArgumentParser:
    """The command line: every subcommand and its options."""
    parser = argparse.ArgumentParser(prog="facekp", description="Facial keypoint detection.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_import_parser(sub)
    keypoints.add_parser(sub)

    p = sub.add_parser("info", help="faces, splits, missing values and keypoint statistics")
    p.add_argument("file", help=".npz dataset, Kaggle .csv or shard folder")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("montage", help="a PNG grid of faces with their keypoints drawn")
    p.add_argument("file", help=".npz dataset or Kaggle .csv")
    p.add_argument("--out", required=True, help="output .png")
    p.add_argument("--count", type=int, default=32, help="faces to show (random sample)")
    p.add_argument("--columns", type=int, default=8)
    p.add_argument("--scale", type=int, default=2, help="pixels per face pixel")
    p.add_argument("--split", default="all", choices=["all", "train", "val", "test"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")

    p = sub.add_parser("export", help="write a dataset as COCO JSON, dlib XML, .pts or CSV",
                       description="Write a dataset's faces (96x96 PNG crops) and keypoints in "
                                   "a standard annotation format; see README, Formats.")
    p.add_argument("file", help=".npz dataset or Kaggle .csv")
    p.add_argument("--format", required=True, choices=["coco", "dlib", "pts", "csv"])
    p.add_argument("--out", required=True, help="output .json (coco), .xml (dlib), folder "
                                                "(pts) or .csv; PNGs go to <out stem>_images")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing --out (and the image folder of an earlier "
                        "export); otherwise they are kept and the export refused")

    p = sub.add_parser("convert", help="a dataset to TFRecord shards (or to .npz / .csv)",
                       description="Write a dataset (.npz, Kaggle .csv or shard folder) as "
                                   "TFRecord shards that train, evaluate and info stream "
                                   "(--shards N), or as an .npz or .csv file.")
    p.add_argument("file", help=".npz dataset, Kaggle .csv or shard folder")
    p.add_argument("--out", required=True, help="output folder (with --shards) or .npz / .csv")
    _add_shard_options(p)

    _add_engine_parsers(sub)
    return parser


def _add_import_parser(sub) -> None:
    p = sub.add_parser("import", help="labelled photos (68 points) -> 96x96 dataset",
                       description="Crop photos labelled with 68 landmarks (a ytf68-style CSV, "
                                   "or iBUG .pts files beside the images) to 96x96 faces with "
                                   "the 15 Kaggle keypoints; or, with --predict, unlabelled "
                                   "photos with a model's keypoints as labels to check.")
    p.add_argument("--labels", action="append", help="label CSV, COCO keypoints .json or dlib "
                                                     ".xml (repeat with --images)")
    p.add_argument("--images", action="append", help="folder of images (repeatable)")
    p.add_argument("--out", required=True, help="output .npz, Kaggle .csv, or with --shards a "
                                                "folder")
    _add_shard_options(p)
    p.add_argument("--split", metavar="TRAIN,VAL,TEST",
                   help="assign splits by person, e.g. 0.8,0.1,0.1")
    p.add_argument("--seed", type=int, default=0, help="seed of the split by person")
    p.add_argument("--detector", choices=["mtcnn", "haar", "none"], default="mtcnn",
                   help="frame faces as this detector frames photos (default mtcnn; none: "
                        "from the labelled points)")
    p.add_argument("--recentre", action=argparse.BooleanOptionalAction, default=False,
                   help="move the labels' x onto the faces' mirror axis, measured over the "
                        "import (default: off, the labels are kept as the source has them and "
                        "the offset is only reported; --no-recentre says so explicitly)")
    p.add_argument("--meta", help=argparse.SUPPRESS)
    p.add_argument("--dedupe", action="store_true",
                   help="leave out faces whose pixels repeat an earlier face's")
    p.add_argument("--predict", nargs="+", metavar="PHOTO",
                   help="unlabelled photos: their faces, cropped as photos are, with a model's "
                        "keypoints as labels marked not yet checked")
    p.add_argument("--model", help="with --predict: model .keras (default: the installed one)")
    p.add_argument("--add-to", metavar="DATASET",
                   help="with --predict: write DATASET's faces, then the new ones, to --out")


def _add_shard_options(p) -> None:
    p.add_argument("--shards", type=int, metavar="N",
                   help="write --out as a folder of TFRecord shards, N files per split, and "
                        "an index.json")
    p.add_argument("--overwrite", action="store_true",
                   help="replace --out if it exists (a shard folder is replaced only by "
                        "shards)")


def _dash_values(argv: list[str], options=("--shard",)) -> list[str]:
    """``--shard -1/2`` as ``--shard=-1/2``: argparse takes a value that starts with a dash
    (and is not a plain negative number) for an option and says "expected one argument",
    where the option's own check says what is wrong with the value."""
    out, i = [], 0
    while i < len(argv):
        value = argv[i + 1] if i + 1 < len(argv) else ""
        if argv[i] in options and value[:1] == "-" and value[1:2].isdigit():
            out.append(f"{argv[i]}={value}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def main(argv: list[str] | None = None) -> int:
    """The ``facekp`` command: run one subcommand; bad input is one line and exit status 2."""
    parser = build_parser()
    args = parser.parse_args(_dash_values(sys.argv[1:] if argv is None else list(argv)))
    try:
        if args.command in PHOTO_COMMANDS:  # a bad limit is said before any work
            from facekp.core.faces.framing import max_photo_pixels

            max_photo_pixels()
        return COMMANDS[args.command](args)
    except FacekpError as exc:
        print(f"facekp {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. a disk that fills while writing: one line, not a traceback
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"facekp {args.command}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"facekp {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
