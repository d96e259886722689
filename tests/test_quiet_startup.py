"""TensorFlow's start-up lines (oneDNN, CUDA drivers, CPU instructions, "failed call to
cuInit", absl's note) stay off stderr unless asked for with --verbose or FACEKP_DEBUG=1.
Real subprocesses: the lines are written by TensorFlow's C++ libraries as they load."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TF_LINE = re.compile(r"absl::InitializeLog|^[IWE]\d{4} .*\.cc:\d+\]|cuInit|oneDNN", re.M)


@pytest.fixture(scope="module")
def four_faces(real_subset_npz):
    return real_subset_npz("quiet", train=0, val=0, test=4, seed=1)


def _facekp(*args, **env) -> subprocess.CompletedProcess:
    # the `facekp` command as -m runs it: the code of this checkout (ROOT), as the tests' own
    command = [sys.executable, "-m", "facekp.core.cli.main"]
    clean = {k: v for k, v in os.environ.items()
             if k not in ("TF_CPP_MIN_LOG_LEVEL", "FACEKP_DEBUG")}
    return subprocess.run(command + [str(a) for a in args], capture_output=True, text=True,
                          env={**clean, **env}, timeout=600, cwd=ROOT)


def test_a_command_that_loads_tensorflow_prints_none_of_its_start_up_lines(four_faces):
    quiet = _facekp("evaluate", "--data", four_faces, "--split", "test")
    assert quiet.returncode == 0, quiet.stderr
    assert "RMSE" in quiet.stdout
    assert not TF_LINE.search(quiet.stderr), quiet.stderr

    loud = _facekp("evaluate", "--data", four_faces, "--split", "test", FACEKP_DEBUG="1")
    assert loud.returncode == 0 and TF_LINE.search(loud.stderr), loud.stderr


def test_verbose_is_an_option_before_or_after_the_command(capsys, monkeypatch):
    from facekp.core import logs
    from facekp.core.cli import main as cli

    monkeypatch.delenv(logs.DEBUG_ENV, raising=False)
    seen = []
    monkeypatch.setattr(cli, "quiet_tensorflow", lambda verbose: seen.append(verbose))
    for argv in (["--verbose", "keypoints", "show", "kaggle15"],
                 ["keypoints", "show", "kaggle15", "--verbose"],
                 ["keypoints", "show", "kaggle15"]):
        assert cli.main(argv) == 0
    assert seen == [True, True, False]
    monkeypatch.setenv(logs.DEBUG_ENV, "1")
    assert "nose tip" in capsys.readouterr().out.replace("_", " ")
    assert logs.verbose_wanted([])


def test_the_start_up_lines_are_recognised_and_nothing_else():
    from facekp.core.logs import STARTUP_LINE

    for line in ("WARNING: All log messages before absl::InitializeLog() is called are "
                 "written to STDERR",
                 "I0000 00:00:1796364484.939574   26909 port.cc:153] oneDNN custom operations",
                 "E0000 00:00:1796364488.578581   26909 cuda_platform.cc:52] failed call to "
                 "cuInit: INTERNAL",
                 "To enable the following instructions: AVX2 FMA, in other operations, rebuild "
                 "TensorFlow with the appropriate compiler flags."):
        assert STARTUP_LINE.match(line), line
    for line in ("facekp evaluate: error: no such file", "Traceback (most recent call last):",
                 "I like this"):
        assert not STARTUP_LINE.match(line), line


# --- Qt's X11 plugin: what to install, not an abort -------------------------------------------

APT = ("libxcb-cursor0", "libxcb-icccm4", "libxcb-keysyms1")


def _broken_xcb(tmp_path) -> dict:
    """An environment whose X11 platform plugin cannot load (as when its libraries are not
    installed: the dynamic linker refuses it)."""
    (tmp_path / "libqxcb.so").write_bytes(b"not a shared library")
    return {"QT_QPA_PLATFORM": "xcb", "QT_QPA_PLATFORM_PLUGIN_PATH": str(tmp_path),
            "DISPLAY": ":99"}


def test_an_x11_plugin_that_cannot_load_is_one_paragraph_naming_the_packages(tmp_path):
    from facekp.gui.app import platform_problem

    text = platform_problem(_broken_xcb(tmp_path))
    assert text and "xcb" in text and "sudo apt-get install" in text and "\n" not in text
    assert all(package in text for package in APT), text
    assert platform_problem({"QT_QPA_PLATFORM": "offscreen"}) is None

    env = {k: v for k, v in os.environ.items() if not k.startswith("QT_")}
    app = subprocess.run([sys.executable, "-m", "facekp.gui.app"], capture_output=True,
                         text=True, env={**env, **_broken_xcb(tmp_path)}, timeout=120, cwd=ROOT)
    assert app.returncode == 1, app.stderr
    lines = app.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("facekp-gui: Qt cannot load"), app.stderr
    assert "Aborted" not in app.stderr and "could not be initialized" not in app.stderr


def test_readme_names_the_x11_packages():
    readme = (ROOT / "README.md").read_text()
    assert all(package in readme for package in APT)
