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
                 ["keypoints", "show", "kaggle15", "--verbose"], ["keypoints", "show", "kaggle15"]):
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

