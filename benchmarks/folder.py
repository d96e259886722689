"""Photos per second of ``facekp predict DIR --jsonl OUT`` with 1 and 2 workers, against
calling ``facekp predict PHOTO --json`` once per photo (a new process each, as a shell loop
would), all with the same model and detector (MTCNN), in one invocation.

Every figure is the wall time of whole commands (start-up, model and detector building
included), on a folder of ``--photos`` ytf68 test frames (default 200); the once-per-photo
baseline runs on the first ``--single`` of them (default 10) and is scaled per photo. The rate
after start-up comes from a second run on a tenth of the folder: (photos - photos / 10) /
(time - time on the tenth); with fewer than 10 photos it is not measured.

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

from common import ROOT, SHARED_DATA, add_smoke, child_env, parse_args, temporary_folder

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


def run_folder(model: str, folder: Path, workers: int, expected: int) -> float:
    """Wall time of ``facekp predict FOLDER --jsonl`` with ``workers``; checks the lines."""
    out = folder.parent / f"{folder.name}.workers{workers}.jsonl"
    seconds = facekp("predict", "--model", model, str(folder), "--jsonl", str(out),
                     "--workers", str(workers))
    lines = len(out.read_text().splitlines())
    assert lines == expected, (lines, expected)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "resources" / "models" / "default.keras"))
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--single", type=int, default=10)
    add_smoke(parser, photos=3, single=1)
    args = parse_args(parser)
    tenth = args.photos // 10
    frames = sorted(FRAMES.glob("*.jpg"))[:args.photos]
    with temporary_folder("folder") as tmp:
        folder = Path(tmp) / "frames"
        folder.mkdir()
        for f in frames:
            shutil.copy(f, folder / f.name)
        rates, steady = {}, {}
        small = Path(tmp) / "small"
        small.mkdir()
        for f in frames[:tenth]:
            shutil.copy(f, small / f.name)
        for workers in (1, 2):
            seconds = run_folder(args.model, folder, workers, len(frames))
            rates[workers] = len(frames) / seconds
            line = (f"--workers {workers}: {len(frames)} photos in {seconds:.1f} s = "
                    f"{rates[workers]:.2f} photos/s")
            if tenth:
                few = run_folder(args.model, small, workers, tenth)
                steady[workers] = (len(frames) - tenth) / (seconds - few)
                line += (f"; {tenth} photos in {few:.1f} s, so after start-up "
                         f"{steady[workers]:.2f} photos/s")
            print(line, flush=True)
        singles = sorted(folder.iterdir())[:args.single]
        seconds = sum(facekp("predict", "--model", args.model, str(p), "--json")
                      for p in singles)
        rates[0] = len(singles) / seconds
        print(f"once per photo: {len(singles)} photos in {seconds:.1f} s = {rates[0]:.2f} "
              f"photos/s ({seconds / len(singles):.2f} s a photo)")
    after = f"{steady[2] / steady[1]:.2f} x" if steady else "not measured"
    print(f"ratios: --workers 2 / --workers 1 = {rates[2] / rates[1]:.2f} x whole commands, "
          f"{after} after start-up; "
          f"--workers 1 / once per photo = {rates[1] / rates[0]:.1f} x; "
          f"--workers 2 / once per photo = {rates[2] / rates[0]:.1f} x "
          f"(os.cpu_count() = {os.cpu_count()})")


if __name__ == "__main__":
    main()
