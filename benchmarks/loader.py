"""Kaggle training.csv loading: facekp.core.data.kaggle_csv.read_kaggle_csv against the tutorial's loader.

Generates a Kaggle-sized training.csv (7,049 rows, about 230 MB) from the real embedded faces
with Kaggle's missing-value pattern (2,140 rows complete, about 30%; the rest hold only the two
eye centres, the nose tip and the bottom lip), then runs each loader in its own fresh Python
process, ``--repeat`` times, alternating which goes first. Each child reports the wall time of
the load alone (after its imports), its CPU time, and its peak resident memory (``ru_maxrss``,
read before anything else is computed), plus the resident memory before loading (interpreter +
numpy + pandas, the same for both). Medians over the repetitions are printed as ratios
ours/reference.

The reference is the original tutorial's loader, as the issue states it: ``pd.read_csv``, then
``df['Image'].apply(lambda s: np.fromstring(s, sep=' ') / 255.0)``, ``np.vstack``, keypoints
``/ 96``, without ``dropna`` (so both read every row).

    python benchmarks/loader.py                 # generate into a temp dir, 3 repetitions
    python benchmarks/loader.py --csv training.csv --repeat 5   # reuse (or create) a file
    python benchmarks/loader.py --smoke         # seconds: 300 rows, once (does it still run?)

Training from TFRecord shards against the .npz (images/s and peak memory, a dataset 10x the
embedded one) is the ``shards`` mode, in ``benchmarks/loader_shards.py``:

    python benchmarks/loader.py shards [--times 10] [--steps 40] [--repeat 1] [--smoke]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import (ROOT, add_smoke, exit_status, parse_args, peak_rss_mb,  # beside this script
                    rss_mb, temporary_folder)

KAGGLE_ROWS = 7049
KAGGLE_COMPLETE = 2140
PARTIAL_KEYPOINTS = ("left_eye_center", "right_eye_center", "nose_tip",
                     "mouth_center_bottom_lip")


# --- the file ------------------------------------------------------------------------------

def generate(path: Path, rows: int = KAGGLE_ROWS, seed: int = 0) -> None:
    """Write a Kaggle-layout training.csv by repeating the embedded real faces."""
    import numpy as np

    from facekp.core.data import dataset as data
    from facekp.core.data import kaggle_csv
    from facekp.core.data.keypoints import NAMES
    from facekp.core.resources import DEFAULT_DATASET

    from facekp.core.data import opener as _opener  # the embedded dataset as kaggle15
    faces = _opener.load(DEFAULT_DATASET)
    rng = np.random.default_rng(seed)
    idx = np.arange(rows) % len(faces)
    images = faces.images[idx]
    keypoints = faces.keypoints[idx].copy()
    complete = np.zeros(rows, bool)
    complete[rng.choice(rows, size=round(rows * KAGGLE_COMPLETE / KAGGLE_ROWS),
                        replace=False)] = True
    keep = np.zeros(len(NAMES) * 2, bool)
    for name in PARTIAL_KEYPOINTS:
        k = NAMES.index(name)
        keep[2 * k: 2 * k + 2] = True
    keypoints[np.ix_(~complete, ~keep)] = np.nan
    # Kaggle's coordinates carry many decimals; give ours a realistic number of digits.
    keypoints = keypoints + rng.uniform(-0.005, 0.005, keypoints.shape).astype(np.float32)
    keypoints = np.clip(keypoints, 0, 96)
    dataset = data.Dataset.from_arrays(images, keypoints)
    kaggle_csv.write_kaggle_csv(dataset, path, layout="training")


# --- the two loaders (run in children) -----------------------------------------------------

def load_reference(path: str):
    import numpy as np
    import pandas as pd

    df = pd.read_csv(path)
    df["Image"] = df["Image"].apply(lambda s: np.fromstring(s, sep=" ") / 255.0)
    X = np.vstack(df["Image"].values)
    y = df[df.columns[:-1]].values / 96
    return X, y


def load_ours(path: str):
    from facekp.core.data import kaggle_csv

    return kaggle_csv.read_kaggle_csv(path)


def child(which: str, path: str) -> None:
    import warnings

    import numpy as np
    import pandas as pd  # noqa: F401  (imported before timing, as by any caller)

    if which == "ours":
        from facekp.core.data import kaggle_csv  # noqa: F401
    before = rss_mb()
    with warnings.catch_warnings():
        # Kept faithful to the tutorial even if numpy deprecates text-mode fromstring.
        warnings.simplefilter("ignore", DeprecationWarning)
        t0, c0 = time.perf_counter(), time.process_time()
        result = load_reference(path) if which == "reference" else load_ours(path)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = peak_rss_mb()
    # A check that both read the same thing (after the peak was taken).
    if which == "reference":
        X, y = result
        rows = len(X)
        pixel_sum = int(np.rint(X * 255).sum())
        present = int((~np.isnan(y)).sum())
    else:
        rows = len(result)
        pixel_sum = int(result.images.sum(dtype=np.int64))
        present = int((~np.isnan(result.keypoints)).sum())
    print(json.dumps({"wall_s": wall, "cpu_s": cpu, "peak_mb": peak, "before_mb": before,
                      "rows": rows, "pixel_sum": pixel_sum, "present": present}))


def run_child(which: str, path: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", which, str(path)],
                         capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        sys.exit(f"{which} loader failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- main ----------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["shards"]:
        import loader_shards

        return loader_shards.main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--csv", type=Path,
                        help="training.csv to read (generated there if it does not exist)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each loader (medians)")
    parser.add_argument("--rows", type=int, default=KAGGLE_ROWS,
                        help=f"rows of a generated file (default {KAGGLE_ROWS}, Kaggle's)")
    parser.add_argument("--child", nargs=2, metavar=("LOADER", "CSV"), help=argparse.SUPPRESS)
    add_smoke(parser, rows=300, repeat=1)
    args = parse_args(parser, argv)
    if args.child:
        child(*args.child)
        return 0

    with temporary_folder("loader") as tmp:
        path = args.csv or Path(tmp) / "training.csv"
        if not path.exists():
            t0 = time.perf_counter()
            generate(path, args.rows)
            print(f"generated {path} in {time.perf_counter() - t0:.1f} s")
        print(f"file: {path}, {path.stat().st_size / 1e6:.1f} MB")
        runs: dict[str, list[dict]] = {"reference": [], "ours": []}
        for r in range(args.repeat):
            order = ("reference", "ours") if r % 2 == 0 else ("ours", "reference")
            for which in order:
                res = run_child(which, path)
                runs[which].append(res)
                print(f"run {r + 1} {which:9s}: {res['wall_s']:6.2f} s "
                      f"(cpu {res['cpu_s']:6.2f} s), peak RSS {res['peak_mb']:7.1f} MB "
                      f"(before loading {res['before_mb']:.1f} MB), {res['rows']} rows",
                      flush=True)
    ref, ours = runs["reference"], runs["ours"]
    same = {(r["rows"], r["pixel_sum"], r["present"]) for r in ref + ours}
    if len(same) != 1:
        print(f"WARNING: the loaders disagree on the content: {sorted(same)}")
    else:
        rows, _, present = same.pop()
        print(f"both loaders read {rows} rows, the same pixels and {present} keypoint values")

    def med(rs, key):
        return statistics.median(x[key] for x in rs)

    t_ref, t_ours = med(ref, "wall_s"), med(ours, "wall_s")
    c_ref, c_ours = med(ref, "cpu_s"), med(ours, "cpu_s")
    m_ref, m_ours = med(ref, "peak_mb"), med(ours, "peak_mb")
    b_ref, b_ours = med(ref, "before_mb"), med(ours, "before_mb")
    print(f"medians over {args.repeat} runs each:")
    print(f"  wall time  reference {t_ref:6.2f} s   ours {t_ours:6.2f} s   "
          f"ratio ours/reference {t_ours / t_ref:.3f}  (target <= 0.2)")
    print(f"  CPU time   reference {c_ref:6.2f} s   ours {c_ours:6.2f} s   "
          f"ratio ours/reference {c_ours / c_ref:.3f}  (less sensitive to a busy machine)")
    print(f"  peak RSS   reference {m_ref:7.1f} MB  ours {m_ours:7.1f} MB  "
          f"ratio ours/reference {m_ours / m_ref:.3f}  (target < 1)")
    print(f"  peak RSS above the pre-load baseline: reference {m_ref - b_ref:7.1f} MB  "
          f"ours {m_ours - b_ours:7.1f} MB  ratio {(m_ours - b_ours) / (m_ref - b_ref):.3f}")
    ok = t_ours / t_ref <= 0.2 and m_ours < m_ref
    print("target met" if ok else "TARGET MISSED")
    return exit_status(ok, args)


if __name__ == "__main__":
    sys.exit(main())
