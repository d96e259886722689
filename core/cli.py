"""Command line: ``facekp import | info | ...``. Errors a user can fix print one line, exit 2."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable

from .errors import FacekpError

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def _progress(label: str):
    from .progress import ProgressLine

    line = ProgressLine(label)
    return line.update


# --- import -------------------------------------------------------------------------------

def cmd_import(args: argparse.Namespace) -> int:
    from . import data, importers

    images = args.images or []
    labels = args.labels or []
    if labels and len(labels) != len(images):
        raise FacekpError("give one --images folder for each --labels CSV (in the same order)")
    if not images:
        raise FacekpError("give at least one --images folder")
    parts, reports = [], []
    for i, folder in enumerate(images):
        lab = labels[i] if labels else None
        prefix = f"{Path(folder).name}/" if len(images) > 1 else ""
        ds, report = importers.import_folder(folder, lab, prefix=prefix,
                                             progress=_progress(f"import {folder}"))
        parts.append(ds)
        reports.append(report)
    dataset = parts[0]
    for p in parts[1:]:
        dataset = dataset.concat(p)
    if args.split:
        fractions = tuple(float(v) for v in args.split.split(","))
        dataset = data.split_by_person(dataset, fractions, seed=args.seed)
    dataset.meta.update(args.meta and json.loads(args.meta) or {})
    dataset.meta["imported_from"] = [str(Path(f)) for f in images]
    if len(dataset) == 0:
        raise FacekpError("no face could be imported; nothing written")
    data.save(dataset, args.out)
    for folder, report in zip(images, reports):
        print(f"== {folder}")
        print(report.format())
    if len(reports) > 1 or args.split:
        print("== written")
        print(data.format_description(data.describe(dataset)))
    print(f"wrote {len(dataset)} faces to {args.out}")
    return 0


# --- info ---------------------------------------------------------------------------------

def cmd_info(args: argparse.Namespace) -> int:
    from . import data

    dataset = data.load(args.file)
    desc = data.describe(dataset)
    desc["file"] = str(args.file)
    if args.json:
        print(json.dumps(desc, indent=2))
    else:
        print(f"{args.file}")
        print(data.format_description(desc))
    return 0


# --- montage ------------------------------------------------------------------------------

def cmd_montage(args: argparse.Namespace) -> int:
    import numpy as np

    from . import data, render
    from .fileio import atomic_path

    dataset = data.load(args.file)
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


COMMANDS.update({"import": cmd_import, "info": cmd_info, "montage": cmd_montage})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="facekp", description="Facial keypoint detection.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("import", help="labelled photos (68 points) -> 96x96 dataset",
                       description="Crop photos labelled with 68 landmarks (a ytf68-style CSV, "
                                   "or iBUG .pts files beside the images) to 96x96 faces with "
                                   "the 15 Kaggle keypoints.")
    p.add_argument("--labels", action="append", help="label CSV (repeat with --images)")
    p.add_argument("--images", action="append", help="folder of images (repeatable)")
    p.add_argument("--out", required=True, help="output .npz, or Kaggle .csv")
    p.add_argument("--split", metavar="TRAIN,VAL,TEST",
                   help="assign splits by person, e.g. 0.8,0.1,0.1")
    p.add_argument("--seed", type=int, default=0, help="seed of the split by person")
    p.add_argument("--meta", help=argparse.SUPPRESS)

    p = sub.add_parser("info", help="faces, splits, missing values and keypoint statistics")
    p.add_argument("file", help=".npz dataset or Kaggle .csv")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("montage", help="a PNG grid of faces with their keypoints drawn")
    p.add_argument("file", help=".npz dataset or Kaggle .csv")
    p.add_argument("--out", required=True, help="output .png")
    p.add_argument("--count", type=int, default=32, help="faces to show (random sample)")
    p.add_argument("--columns", type=int, default=8)
    p.add_argument("--scale", type=int, default=2, help="pixels per face pixel")
    p.add_argument("--split", default="all", choices=["all", "train", "val", "test"])
    p.add_argument("--seed", type=int, default=0)

    for register in _EXTRA_PARSERS:
        register(sub)
    return parser


#: Other modules' sub-command registrations: callables taking the subparsers object.
_EXTRA_PARSERS: list[Callable] = []


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except FacekpError as exc:
        print(f"facekp {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"facekp {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
