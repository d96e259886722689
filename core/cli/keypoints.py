"""``facekp keypoints init | show``: a person's own keypoint set as a small JSON file, and any
set (built in or a file) shown point by point."""
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


def add_parser(sub) -> None:
    """``keypoints`` and its two actions."""
    p = sub.add_parser("keypoints", help="define a keypoint set (init) or show one (show)")
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
