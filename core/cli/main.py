"""The ``facekp`` command: its subcommands by group (:mod:`datasets <facekp.core.cli.datasets>`,
:mod:`models <facekp.core.cli.models>`, :mod:`photos <facekp.core.cli.photos>`,
:mod:`keypoints <facekp.core.cli.keypoints>`). Errors a user can fix print one line, exit 2."""
from __future__ import annotations

import argparse
import sys
from typing import Callable

from facekp.core.cli import datasets, keypoints, models, photos
from facekp.core.errors import FacekpError
from facekp.core.logs import quiet_tensorflow, verbose_wanted

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    **datasets.COMMANDS, **models.COMMANDS, **photos.COMMANDS,
    "keypoints": keypoints.cmd_keypoints}
#: Commands that open photos (and so read $FACEKP_MAX_PHOTO_MEGAPIXELS).
PHOTO_COMMANDS = ("import", "new", "predict")


def build_parser() -> argparse.ArgumentParser:
    """The command line: every subcommand and its options."""
    parser = argparse.ArgumentParser(prog="facekp", description="Facial keypoint detection.")
    parser.add_argument("--verbose", action="store_true", help="TensorFlow's own start-up "
                        "and log lines too (also FACEKP_DEBUG=1); before or after the command")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    datasets.add_parsers(sub)
    models.add_parsers(sub)
    photos.add_parsers(sub)
    keypoints.add_parser(sub)
    return parser


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
    argv = list(sys.argv[1:] if argv is None else argv)
    quiet_tensorflow(verbose_wanted(argv))    # before any command imports TensorFlow
    parser = build_parser()
    args = parser.parse_args(_dash_values([a for a in argv if a != "--verbose"]))
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
