"""Photos per second of ``facekp predict DIR --jsonl OUT``: the new path (the defaults:
BlazeFace with MTCNN behind it, the model through TensorFlow Lite with 8-bit weights) against the path before
(``--detector mtcnn --engine keras``), one worker each, and the new path with two workers, in
one invocation, the paths taking turns.

Every figure is the wall time of whole commands (start-up, model and detector building
included), on a folder of ``--photos`` ytf68 test frames (default 200). The rate after start-up
comes from a second run on a tenth of the folder: (photos - photos / 10) / (time - time on the
tenth); with fewer than 10 photos it is not measured. ``--single N`` also times N photos with one
``facekp predict PHOTO --json`` each (a new process a photo, as a shell loop would).

    python benchmarks/folder.py [--model M.keras] [--photos 200] [--single 10]
    python benchmarks/folder.py --smoke     # seconds: 3 photos, 1 alone (does it still run?)
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from common import (ROOT, SHARED_DATA, add_smoke, child_env, machine, parse_args,
                    temporary_folder)

FRAMES = SHARED_DATA / "ytf68" / "test"


def facekp(*args: str) -> float:
    """Run ``python -m facekp.core.cli.main ARGS`` with this tree first on the path; its wall
    time (s)."""
    env = child_env(TF_CPP_MIN_LOG_LEVEL="2")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "facekp.core.cli.main", *args], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"facekp {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return elapsed


def run_folder(model: str, folder: Path, workers: int, expected: int, options=()) -> float:
    """Wall time of ``facekp predict FOLDER --jsonl`` with ``workers``; checks the lines."""
    out = folder.parent / f"{folder.name}.{'-'.join(options) or 'new'}.workers{workers}.jsonl"
    seconds = facekp("predict", "--model", model, str(folder), "--jsonl", str(out),
                     "--workers", str(workers), *options)
    lines = len(out.read_text().splitlines())
    assert lines == expected, (lines, expected)
    return seconds


#: name -> (workers, extra options of facekp predict)
PATHS = {"new, --workers 1": (1, ()),
         "mtcnn, --workers 1": (1, ("--detector", "mtcnn", "--engine", "keras")),
         "new, --workers 2": (2, ())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "resources" / "models" / "default.keras"))
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--single", type=int, default=0)
    add_smoke(parser, photos=3, single=1)
    args = parse_args(parser)
    print(machine())
    tenth = args.photos // 10
    frames = sorted(FRAMES.glob("*.jpg"))[:args.photos]
    with temporary_folder("folder") as tmp:
        folder = Path(tmp) / "frames"
        folder.mkdir()
        for f in frames:
            shutil.copy(f, folder / f.name)
        small = Path(tmp) / "small"
        small.mkdir()
        for f in frames[:tenth]:
            shutil.copy(f, small / f.name)
        whole = {name: run_folder(args.model, folder, w, len(frames), o)
                 for name, (w, o) in PATHS.items()}
        few = ({name: run_folder(args.model, small, w, tenth, o) for name, (w, o) in PATHS.items()}
               if tenth else {})
        steady = {}
        for name, seconds in whole.items():
            line = (f"{name}: {len(frames)} photos in {seconds:.1f} s = "
                    f"{len(frames) / seconds:.2f} photos/s")
            if tenth:
                steady[name] = (len(frames) - tenth) / (seconds - few[name])
                line += (f"; {tenth} photos in {few[name]:.1f} s, so after start-up "
                         f"{steady[name]:.2f} photos/s")
            print(line, flush=True)
        if args.single:
            singles = sorted(folder.iterdir())[:args.single]
            seconds = sum(facekp("predict", "--model", args.model, str(p), "--json")
                          for p in singles)
            print(f"once per photo (new path): {len(singles)} photos in {seconds:.1f} s = "
                  f"{len(singles) / seconds:.2f} photos/s ({seconds / len(singles):.2f} s a photo)")
    rate = {name: len(frames) / s for name, s in whole.items()}
    after = (f"{steady['new, --workers 1'] / steady['mtcnn, --workers 1']:.2f} x after start-up"
             if steady else "after start-up not measured")
    print(f"ratios: new / mtcnn, --workers 1 = "
          f"{rate['new, --workers 1'] / rate['mtcnn, --workers 1']:.2f} x whole commands, {after}; "
          f"new --workers 2 / --workers 1 = "
          f"{rate['new, --workers 2'] / rate['new, --workers 1']:.2f} x whole commands "
          f"(os.cpu_count() = {os.cpu_count()})")
    if steady:
        ok = steady["new, --workers 1"] >= 2.5 * steady["mtcnn, --workers 1"]
        print(f"target: new >= 2.5 x mtcnn after start-up, one worker: {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
