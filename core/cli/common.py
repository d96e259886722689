"""What the ``facekp`` subcommands share: progress lines, the model and dataset an option
names (or the shipped ones), JSON output that stays valid for a model's NaN, and small option
checks."""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from facekp.core.errors import FacekpError
from facekp.core import resources


def progress_line(label: str):
    from facekp.core.progress import ProgressLine

    line = ProgressLine(label)
    return line.update


def positive(args: argparse.Namespace, *names: str) -> None:
    """Each named integer option must be 1 or more."""
    for name in names:
        value = getattr(args, name)
        if value < 1:
            raise FacekpError(f"--{name} must be 1 or more, got {value}")


def model_path(args: argparse.Namespace) -> Path:
    """--model (a file, or a shipped model by its set's name: kaggle15, ibug68), or the
    shipped default model, or a clear error."""
    if args.model:
        return resources.resolve_model(args.model)
    path = resources.default_model()   # (looked up at call time: tests replace it)
    if path is None:
        raise FacekpError("no --model given and no default model is installed; train one "
                          "with 'facekp train --out model.keras' and pass --model model.keras")
    return path


def dataset_path(args: argparse.Namespace) -> Path:
    if args.data:
        return Path(args.data)
    return resources.DEFAULT_DATASET


def print_json(value, command: str) -> None:
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
    warn_non_finite(command, len(bad))
    print(text)


def warn_non_finite(command: str, count: int) -> None:
    """One warning line on stderr when ``count`` values of a model's output were not finite."""
    if count:
        print(f"facekp {command}: warning: the model gives non-finite output (NaN or infinity); "
              f"{count} values are null in the JSON", file=sys.stderr)


def add_shard_options(p) -> None:
    p.add_argument("--shards", type=int, metavar="N",
                   help="write --out as a folder of TFRecord shards, N files per split, and "
                        "an index.json")
    p.add_argument("--overwrite", action="store_true",
                   help="replace --out if it exists (a shard folder is replaced only by "
                        "shards)")
