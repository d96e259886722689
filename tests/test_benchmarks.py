"""Every benchmark still runs: each script in benchmarks/ in its ``--smoke`` size (seconds, tiny
data), as a subprocess, exits 0 and prints its figures.

A benchmark is run by hand now and then, so one that no longer runs (a moved import, a changed
signature, a modal dialog it waits on for ever) went unnoticed until someone needed its
figures. Here it fails the tests instead. The figures of a smoke run mean nothing; what is
checked is that the lines carrying them are printed.

Each run gets its own HOME and TMPDIR: a benchmark must not write the person's settings (the
app's QSettings) or leave files behind, and no benchmark may add a file to the checkout.

The runs take turns two at a time (most of their time is importing TensorFlow in fresh
processes, one core each), longest first; each test waits for its own run, with a time limit,
so a benchmark that hangs fails instead of blocking the tests.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TIME_LIMIT_S = 300          # one smoke run; each takes 5-40 s on 2 busy cores
AT_ONCE = 2                 # runs at a time

NUMBER = r"[-+]?\d[\d,]*(?:\.\d+)?"

#: name -> (the script in benchmarks/ and its arguments, regular expressions for lines its
#: output must hold). Listed longest first: that is the order the runs start in.
BENCHMARKS: dict[str, tuple[list[str], list[str]]] = {
    "accuracy": (["accuracy.py", "--smoke"], [
        rf"^test RMSE px \(all keypoints\)\s+-\s+{NUMBER}\s*$",
        rf"^photo NME, 2 passes\s+-\s+{NUMBER}",
        rf"^new, test\s+{NUMBER}",
        rf"^confidence \(the head\)\s+{NUMBER}\s+{NUMBER}",
        r"^targets: test rmse <= 1\.55 px: (yes|NO)"]),
    "accuracy_ibug68": (["accuracy.py", "--smoke", "--keypoints", "ibug68"], [
        rf"^crops \(96x96, labelled points\): test RMSE {NUMBER} px, NME {NUMBER} by "
        r"left_eye_3 - right_eye_0",
        rf"^  facekp\s+\d+\s+{NUMBER}\s+{NUMBER}",
        r"^  (dlib\s+\d+|dlib: not installed here)",
        r"^targets: file <= 10 MB: (yes|NO)"]),
    "folder": (["folder.py", "--smoke"], [
        rf"^new, --workers 1: 3 photos in {NUMBER} s = {NUMBER} photos/s",
        rf"^mtcnn, --workers 1: 3 photos in {NUMBER} s = {NUMBER} photos/s",
        rf"^new, --workers 2: 3 photos in {NUMBER} s = {NUMBER} photos/s",
        rf"^once per photo \(new path\): 1 photos in {NUMBER} s",
        rf"^ratios: new / mtcnn, --workers 1 = {NUMBER} x"]),
    "loader_shards": (["loader.py", "shards", "--smoke"], [
        rf"^run 1 npz\s*:\s+{NUMBER} images/s, peak RSS\s+{NUMBER} MB",
        rf"^run 1 shards:\s+{NUMBER} images/s, peak RSS\s+{NUMBER} MB",
        rf"training images/s\s+npz\s+{NUMBER}\s+shards\s+{NUMBER}\s+ratio shards/npz {NUMBER}",
        rf"peak RSS\s+npz\s+{NUMBER} MB\s+shards\s+{NUMBER} MB"]),
    "gui_responsiveness": (["gui_responsiveness.py", "--smoke"], [
        rf"^\s+facekp-gui\s+{NUMBER} s",
        rf"^\s+bare PySide6 window\s+{NUMBER} s",
        rf"^\s+idle window\s+\d+\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}$",
        rf"^\s+training, all runs\s+\d+\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}$",
        r"^\s+run 2: completed, 1 epochs",
        r"asked to switch to the new model: 2 question\(s\), answered yes",
        r"targets \(all runs\): p99 <= 50 ms: (PASS|FAIL); worst <= 150 ms: (PASS|FAIL)",
        rf"^\s+400\s+{NUMBER}\s+\d+\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+\(2 x 200\)$",
        r"^  target \(the largest\): worst gap <= 150 ms: (PASS|FAIL)"]),
    "soak_app": (["soak.py", "--smoke", "--app"], [
        rf"^app cycle\s+2: RSS\s+{NUMBER} MB\s+threads\s+\d+ .*TrainingThread objects \d+",
        rf"^RSS growth from cycle 1 to 2: {NUMBER} MB"]),
    "training": (["training.py", "--smoke"], [
        rf"^images/s, whole epochs\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}$",
        rf"^images/s, training batches\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}$",
        rf"^val RMSE px at end, mean\s+{NUMBER}\s+{NUMBER}$"]),
    "soak": (["soak.py", "--smoke"], [
        rf"^cycle\s+2: RSS\s+{NUMBER} MB\s+threads\s+\d+",
        rf"^RSS growth from cycle 1 to 2: {NUMBER} MB"]),
    "latency": (["latency.py", "--smoke"], [
        rf"^one face 0\.1 MP\s+1/1/\d+\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}",
        rf"^one face 1 MP\s+1/1/\d+\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}",
        rf"^close-up 0\.25 MP\s+1/\d+/\d+\s+{NUMBER}",
        rf"^bald_guys\.jpg 3\.1 MP\s+\d+/\d+/\d+\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}",
        rf"^group photo, parts \(median ms\): new: find faces {NUMBER}, model on \d+ faces",
        rf"^new path with keypoint confidence / without, one face 0\.3 MP: {NUMBER}",
        r"^targets: new/mtcnn <= 0\.3 on every photo: (met|NOT met)"]),
    "photos": (["photos.py", "--smoke"], [
        rf"^native size\s+new\s+{NUMBER}\s+\d+\s+({NUMBER}|nan)",
        rf"^eye distance 12 px\s+new\s+{NUMBER}\s+\d+\s+({NUMBER}|nan)",
        rf"^eye distance 12 px\s+mtcnn\s+{NUMBER}\s+\d+\s+({NUMBER}|nan)",
        rf"^close-ups \(2\)\s+new\s+{NUMBER}\s+\d+\s+({NUMBER}|nan)",
        rf"^close-ups \(2\)\s+anchor\s+{NUMBER}\s+\d+",
        r"^\s+dogs\.jpg: \d+ / \d+ / \d+ faces",
        r"^targets: close-up recall >= 0\.98: (yes|NO)"]),
    "framing": (["framing.py", "--smoke"], [
        r"^fitted on the training people \(\d+ faces",
        rf"^val\s+\d+ / \d+\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}",
        rf"^test\s+\d+ / \d+\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}"]),
    "video": (["video.py", "--smoke"], [
        r"^clip: 6 frames 640x480",
        rf"^detect every frame \(photo path\)\s+{NUMBER}\s+{NUMBER}\s+\d+\s+\d+\s+{NUMBER}\s+"
        rf"{NUMBER}$",
        rf"^tracking \+ EMA\s+{NUMBER}\s+{NUMBER}\s+\d+\s+\d+\s+{NUMBER}\s+{NUMBER}$"]),
    "review_confidence": (["review_confidence.py", "--smoke"], [
        r"^test faces 24, labelled points \d+",
        rf"^point: Spearman\(-confidence, error\) {NUMBER}",
        rf"^point: AUROC for > 3 px off {NUMBER}",
        rf"^face \(least sure\): Spearman\(-confidence, RMSE\) {NUMBER}"]),
    "loader": (["loader.py", "--smoke"], [
        r"^both loaders read 300 rows, the same pixels",
        rf"wall time\s+reference\s+{NUMBER} s\s+ours\s+{NUMBER} s\s+ratio ours/reference {NUMBER}",
        rf"peak RSS\s+reference\s+{NUMBER} MB\s+ours\s+{NUMBER} MB"]),
}


def test_every_benchmark_is_listed():
    """A new script in benchmarks/ needs a smoke run here (common.py is no benchmark; a mode of
    a script, like ``loader.py shards``, runs as its own entry)."""
    scripts = {p.name for p in (ROOT / "benchmarks").glob("*.py")} - {"common.py",
                                                                     "accuracy_sets.py"}
    # loader_shards.py runs as ``loader.py shards``
    listed = {argv[0] for argv, _ in BENCHMARKS.values()} | {"loader_shards.py"}
    assert scripts == listed


def _checkout_files() -> set[str]:
    """The checkout's files, less hidden folders and Python's caches."""
    out = set()
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d != "__pycache__"
                   and not d.endswith(".egg-info")]
        out.update(str(Path(folder, f).relative_to(ROOT)) for f in files)
    return out


class SmokeRuns:
    """Runs the selected benchmarks, ``AT_ONCE`` at a time, each in a fresh environment."""

    def __init__(self, names: list[str], base: Path):
        self.base = base
        self.checkout_before = _checkout_files()
        self.pool = ThreadPoolExecutor(AT_ONCE)
        self.runs: dict[str, Future] = {name: self.pool.submit(self._run, name)
                                        for name in BENCHMARKS if name in names}

    def env(self, name: str) -> dict[str, str]:
        home, tmp = self.base / name / "home", self.base / name / "tmp"
        home.mkdir(parents=True)
        tmp.mkdir()
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("FACEKP_", "XDG_")) and k not in ("PYTHONPATH",)}
        return dict(env, HOME=str(home), TMPDIR=str(tmp), PYTHONPATH=str(ROOT),
                    QT_QPA_PLATFORM="offscreen", TF_CPP_MIN_LOG_LEVEL="2",
                    PYTHONUNBUFFERED="1")

    def _run(self, name: str) -> dict:
        argv, _ = BENCHMARKS[name]
        cmd = [sys.executable, str(ROOT / "benchmarks" / argv[0]), *argv[1:]]
        start = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env(name), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=TIME_LIMIT_S)
            timed_out = False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)       # the benchmark and its children
            out, err = proc.communicate()
            timed_out = True
        return {"cmd": cmd, "rc": proc.returncode, "out": out, "err": err,
                "timed_out": timed_out, "seconds": time.monotonic() - start}

    def result(self, name: str) -> dict:
        return self.runs[name].result()

    def wait_all(self) -> None:
        for future in self.runs.values():
            future.result()


@pytest.fixture(scope="module")
def smoke_runs(request, tmp_path_factory):
    """Starts the smoke runs of every benchmark this session selected, at once."""
    names = [item.callspec.params["name"] for item in request.session.items
             if getattr(item, "originalname", None) == "test_benchmark_smoke"]
    runs = SmokeRuns(names, tmp_path_factory.mktemp("bench-smoke"))
    yield runs
    runs.pool.shutdown(wait=True)


def _leftovers(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("name", list(BENCHMARKS))
def test_benchmark_smoke(name, smoke_runs):
    _, expected = BENCHMARKS[name]
    run = smoke_runs.result(name)
    command = " ".join(Path(c).name if i < 2 else c for i, c in enumerate(run["cmd"]))
    tail = f"\n--- stdout ---\n{run['out'][-4000:]}\n--- stderr ---\n{run['err'][-4000:]}"
    assert not run["timed_out"], f"{command} ran past {TIME_LIMIT_S} s{tail}"
    assert run["rc"] == 0, f"{command} exited {run['rc']}{tail}"
    assert "smoke run: tiny sizes" in run["out"], tail
    missing = [p for p in expected if not re.search(p, run["out"], re.MULTILINE)]
    assert not missing, f"{command} did not print lines matching {missing}{tail}"

    home = smoke_runs.base / name / "home"
    written = [p for p in _leftovers(home) if "facekp" in p.lower()]
    assert not written, f"{command} wrote the person's settings or files: {written}"
    left = _leftovers(smoke_runs.base / name / "tmp")
    assert not left, f"{command} left files in the temporary folder: {left}"


def test_smoke_runs_add_nothing_to_the_checkout(smoke_runs):
    smoke_runs.wait_all()
    added = sorted(_checkout_files() - smoke_runs.checkout_before)
    assert not added, f"benchmarks wrote into the checkout: {added}"
