"""``facekp keypoints init | show | migrate``: a person's own keypoint set as a small JSON file,
any set (built in or a file) shown point by point, and a dataset moved to a new version of its
set (points added or renamed)."""
from __future__ import annotations

import argparse
import json

from facekp.core.errors import FacekpError


def _pairs(values: list[str] | None, sep: str, option: str) -> tuple[tuple[str, str], ...]:
    out = []
    for v in values or []:
        a, found, b = v.partition(sep)
        if not found or not a or not b:
            raise FacekpError(f"{option} {v!r}: expected two keypoint names as A{sep}B")
        out.append((a.strip(), b.strip()))
    return tuple(out)


def cmd_keypoints(args: argparse.Namespace) -> int:
    """``facekp keypoints init NAME --names a,b,c ... --out SET.json`` or ``show SET|NAME``."""
    from facekp.core.data import keypoint_sets as ks
    from facekp.core.fileio import check_output

    if args.action == "show":
        s = ks.load_set(args.set)
        print(json.dumps(s.to_dict(), indent=1) if args.json else ks.describe_set(s))
        return 0
    if args.action == "migrate":
        return _migrate(args)
    names = tuple(n.strip() for n in (args.names or "").split(",") if n.strip())
    try:
        s = ks.KeypointSet(name=args.name, names=names,
                           flip_pairs=_pairs(args.flip, ":", "--flip"),
                           edges=_pairs(args.edge, "-", "--edge"))
    except ValueError as exc:
        raise FacekpError(str(exc)) from None
    check_output(args.out, args.overwrite)
    ks.save_set(s, args.out)
    print(f"wrote keypoint set {s.name!r} ({s.size} keypoints) to {args.out}")
    return 0


def _migrate(args: argparse.Namespace) -> int:
    """``facekp keypoints migrate DATA --to SET.json [--rename OLD:NEW] [--drop] --out D.npz``."""
    from facekp.core.data import keypoint_sets as ks
    from facekp.core.data import opener
    from facekp.core.fileio import check_output, refuse_input_as_output

    refuse_input_as_output(args.out, {"DATA": [args.data]})
    check_output(args.out, args.overwrite)
    dataset = opener.load(args.data)
    target = ks.load_set(args.to)
    moved = dataset.migrate(target, dict(_pairs(args.rename, ":", "--rename")), args.drop)
    opener.save(moved, args.out)
    old, new = dataset.keypoint_set, target
    added = [n for n in new.names if n not in old.names
             and n not in dict(_pairs(args.rename, ":", "--rename")).values()]
    print(f"wrote {len(moved)} faces in keypoint set {new.name!r} ({new.size} points) to "
          f"{args.out}" + (f"; new points start missing: {', '.join(added)}" if added else ""))
    return 0


def add_parser(sub) -> None:
    """``keypoints`` and its actions."""
    p = sub.add_parser("keypoints", help="define a keypoint set (init), show one (show) or "
                                         "move a dataset to a new version of its set (migrate)")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    init = actions.add_parser("init", help="write a new keypoint set's JSON file")
    init.add_argument("name", help="the set's name")
    init.add_argument("--names", required=True, metavar="A,B,C",
                      help="the keypoints' names in order, comma-separated")
    init.add_argument("--flip", action="append", metavar="LEFT:RIGHT",
                      help="two points that trade places when the face is mirrored (repeat)")
    init.add_argument("--edge", action="append", metavar="A-B",
                      help="two points joined by a skeleton line (repeat)")
    init.add_argument("--out", required=True, help="the set's .json file")
    init.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    show = actions.add_parser("show", help="a set's points, flips and edges")
    show.add_argument("set", metavar="SET", help="kaggle15, ibug68 or a set's .json file")
    show.add_argument("--json", action="store_true", help="print the set's JSON")
    mig = actions.add_parser("migrate", help="a dataset in a new version of its keypoint set: "
                                             "points matched by name, new points missing")
    mig.add_argument("data", metavar="DATA", help="the dataset (.npz)")
    mig.add_argument("--to", required=True, metavar="SET",
                     help="the new version of the set (a set's .json, or a built-in name)")
    mig.add_argument("--rename", action="append", metavar="OLD:NEW",
                     help="a point that changed its name (repeat)")
    mig.add_argument("--drop", action="store_true",
                     help="let points the new set lacks lose their labels")
    mig.add_argument("--out", required=True, help="the migrated dataset (.npz)")
    mig.add_argument("--overwrite", action="store_true", help="replace an existing --out")
