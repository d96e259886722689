"""``facekp import | info | montage | export | convert``: datasets in, looked at, written out."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from facekp.core.cli.common import add_shard_options, model_path, positive, progress_line
from facekp.core.errors import FacekpError
from facekp.core.fileio import check_output, refuse_input_as_output, refuse_special, resolved


# --- import -------------------------------------------------------------------------------

def cmd_import(args: argparse.Namespace) -> int:
    """``facekp import``: labelled photos (CSV, .pts, COCO, dlib XML) or, with --predict,
    unlabelled photos -> a dataset file or TFRecord shards."""
    from facekp.core.data import dataset as data
    from facekp.core.data.keypoint_sets import load_set
    from facekp.core.photos import importers

    if args.predict:
        return _import_predicted(args)
    images = args.images or []
    labels = args.labels or []
    if labels and len(labels) != len(images):
        raise FacekpError("give one --images folder for each --labels CSV (in the same order)")
    if not images:
        raise FacekpError("give at least one --images folder")
    keypoint_set = load_set(args.keypoints) if args.keypoints else None
    fractions = _split_fractions(args.split) if args.split else None
    meta = _meta_object(args.meta) if args.meta else {}
    refuse_input_as_output(args.out, {"--labels": labels, "--images": images})
    _check_shard_output(args, {"--labels": labels, "--images": images})
    parts, reports = [], []
    for i, folder in enumerate(images):
        lab = labels[i] if labels else None
        prefix = f"{Path(folder).name}/" if len(images) > 1 else ""
        ds, report = importers.import_labels(
            folder, lab, prefix=prefix, progress=progress_line(f"import {folder}"),
            detector=None if args.detector == "none" else args.detector,
            keypoint_set=keypoint_set)
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
    from facekp.core.data.keypoint_sets import KAGGLE15, derivable
    from facekp.core.photos import importers

    if not len(dataset):
        return dataset, None
    if recentre:
        return importers.recentre_labels(dataset)
    if not derivable(dataset.keypoint_set, KAGGLE15):  # measured on kaggle15's points only
        return dataset, None
    return dataset, importers.dataset_mirror_offset(dataset)


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
                 progress=progress_line(f"write {args.out}"))


def _import_predicted(args: argparse.Namespace) -> int:
    """``facekp import --predict PHOTO...``: the photos' faces as a dataset whose labels are a
    model's keypoints, marked as not yet checked; ``--add-to`` puts them after a dataset's.
    With ``--keypoints SET`` and no model of that set, every point is missing (label from
    zero)."""
    if args.images or args.labels:
        raise FacekpError("--predict takes photos, not --images or --labels")
    return _photo_faces(args, args.predict, "--predict")


def _photo_faces(args: argparse.Namespace, photos: list, option: str) -> int:
    """``facekp import --predict`` and ``facekp new``: the faces the detector finds in
    ``photos`` (given by ``option``) as unchecked faces, labelled by a model of the set
    (:func:`_predictor_for`) or with every point missing, written to --out."""
    from facekp.core.data import dataset as data
    from facekp.core.data import opener
    from facekp.core.data.keypoint_sets import load_set
    from facekp.core.photos.photo_faces import add_faces, find_photo_faces

    if args.detector == "none":
        raise FacekpError(f"{option} finds faces with a detector: use --detector mtcnn or haar")
    add_to = getattr(args, "add_to", None)
    refuse_input_as_output(args.out, {option: photos, "--add-to": [add_to] if add_to else []})
    check_output(args.out, args.overwrite)
    keypoint_set = load_set(args.keypoints) if args.keypoints else None
    base = opener.load(add_to) if add_to else None
    predictor = _predictor_for(args, keypoint_set)
    new, lines = find_photo_faces(photos, keypoint_set or predictor.keypoint_set,
                                  detector=args.detector, predictor=predictor,
                                  progress=progress_line("predict" if predictor else "find"))
    if len(new) == 0:
        raise FacekpError("no face found in " + ", ".join(map(str, photos)) + "; nothing written")
    dataset = add_faces(base, new)
    if base is None and getattr(args, "split", None):
        dataset = data.split_by_person(dataset, _split_fractions(args.split), seed=args.seed)
    opener.save(dataset, args.out)
    print("\n".join(lines))
    where = f" after the {len(base)} of {add_to}" if base is not None else ""
    what = ("predicted faces (not yet checked)" if predictor else
            f"faces with all {new.keypoint_set.size} points of {new.keypoint_set.name} missing "
            "(no model of that set), to label")
    print(f"wrote {len(dataset)} faces to {args.out}: {len(new)} {what}{where}")
    return 0


def _predictor_for(args: argparse.Namespace, keypoint_set):
    """The model that labels new photo faces: --model (whatever its set: a set it does not
    predict is refused later, naming both), else the installed model when it predicts
    ``keypoint_set`` (or no set is asked); None when no model of the set is there."""
    from facekp.core.model.predict import Predictor
    from facekp.core.resources import default_model

    if args.model or keypoint_set is None:
        return Predictor(model_path(args), detector=args.detector)
    installed = default_model()
    if installed is None or _model_set(installed) != keypoint_set:
        return None
    return Predictor(installed, detector=args.detector)


def _model_set(path):
    """The keypoint set a model file's record names (kaggle15 for models from before sets
    travelled), read without loading the model (as Predictor.keypoint_set reads it)."""
    from facekp.core.data.keypoint_sets import KAGGLE15, from_dict
    from facekp.core.model.checkpoints import read_record

    record = read_record(path)
    if record and isinstance(record.get("keypoint_set"), dict):
        return from_dict(record["keypoint_set"], path)
    return KAGGLE15


def cmd_new(args: argparse.Namespace) -> int:
    """``facekp new --keypoints SET --images DIR... --out D.npz``: a dataset to label from
    zero, every face the detector finds in the photos (files, or folders of them), named after
    its photo; ``facekp import --predict`` on those photos (a model of the set labels them)."""
    from facekp.core.photos.batch import photo_paths

    return _photo_faces(args, photo_paths(args.images), "--images")


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

    positive(args, "count", "columns", "scale")
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
    hidden = int(dataset.hidden.sum())
    if hidden and args.format in ("dlib", "pts"):
        print(f"note: {hidden} points marked hidden are written as labelled ones ({args.format} "
              "has no place for hidden points; COCO keeps them, as visibility 1)")
    return 0




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


COMMANDS = {"import": cmd_import, "new": cmd_new, "info": cmd_info, "montage": cmd_montage,
            "export": cmd_export, "convert": cmd_convert}


def add_parsers(sub) -> None:
    """import, new, info, montage, export and convert."""
    _add_import_parser(sub)
    _add_new_parser(sub)
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
    add_shard_options(p)


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
    add_shard_options(p)
    p.add_argument("--split", metavar="TRAIN,VAL,TEST",
                   help="assign splits by person, e.g. 0.8,0.1,0.1")
    p.add_argument("--seed", type=int, default=0, help="seed of the split by person")
    p.add_argument("--detector", choices=["mtcnn", "haar", "none"], default="mtcnn",
                   help="frame faces as this detector frames photos (default mtcnn; none: "
                        "from the labelled points)")
    p.add_argument("--keypoints", metavar="SET",
                   help="the keypoint set to import into: kaggle15, ibug68, or a set's .json "
                        "file (68-point labels map to it by its from_68). Default: kaggle15 "
                        "for photos, a 96x96 export's own set (the set a COCO file carries or "
                        "names; dlib parts 00-67 and 68-point .pts: ibug68). With --predict: "
                        "the faces' set; without a model of it every point is missing")
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


def _add_new_parser(sub) -> None:
    p = sub.add_parser("new", help="a dataset to label from zero: the faces in photos",
                       description="Every face the detector finds in the photos, cropped as "
                                   "photos are, named after its photo and marked not yet "
                                   "checked, with all points of --keypoints missing (or, where "
                                   "a model of that set is given or installed, its points). "
                                   "The same as 'facekp import --predict PHOTO... --keypoints "
                                   "SET'.")
    p.add_argument("--keypoints", required=True, metavar="SET",
                   help="kaggle15, ibug68 or a set's .json file (facekp keypoints init)")
    p.add_argument("--images", required=True, nargs="+", metavar="DIR|PHOTO",
                   help="folders of photos (JPEG, PNG, ...) and/or photo files")
    p.add_argument("--out", required=True, help="output .npz")
    p.add_argument("--detector", choices=["mtcnn", "haar"], default="mtcnn",
                   help="face detector (default mtcnn)")
    p.add_argument("--model", help="a model .keras of the set, whose points label the faces "
                                   "(default: the installed model when it predicts the set)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
