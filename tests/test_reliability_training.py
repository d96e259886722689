"""Issue 13, training: a model is never replaced unasked, a record always matches its model,
kills and double Ctrl+C keep the last complete best model, and odd models or outputs give one
clear line. Real training on small real subsets; the kill tests run `facekp train` in a
subprocess and use the checkpoint writer's fault hook (FACEKP_CHECKPOINT_FAULT) to hit the
moment exactly."""
from __future__ import annotations

import contextlib
import io
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from facekp.core.cli.main import main
from facekp.core.model.checkpoints import read_record

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = ROOT / "resources" / "models" / "default.keras"
#: A small, quick training run (333 k parameters, 2 batches an epoch).
QUICK = ["--arch", "convbn", "--no-augment", "--batch-size", "32"]


def run(argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def npz(real_subset_npz):
    return real_subset_npz("r13", train=64, val=16, test=8)


def _partials(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".partial" in p.name)


def _epoch_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("epoch ")]


def _train_process(npz: Path, out: Path, fault: str, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1", FACEKP_CHECKPOINT_FAULT=fault)
    return subprocess.Popen([sys.executable, "-m", "facekp.core.cli.main", "train", "--data", str(npz),
                             *QUICK, "--out", str(out), *extra],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


# --- 2. an existing model is replaced only with --overwrite ---------------------------------

def test_train_refuses_an_existing_model_unless_overwrite(npz, tmp_path):
    out = tmp_path / "m.keras"
    out.write_bytes(DEFAULT_MODEL.read_bytes())
    before = out.read_bytes()
    rc, stdout, err = run(["train", "--data", npz, *QUICK, "--epochs", 1, "--out", out])
    assert rc == 2 and "m.keras" in err and "--overwrite" in err and "Traceback" not in err
    assert not _epoch_lines(stdout) and out.read_bytes() == before
    rc, _, err = run(["train", "--data", npz, *QUICK, "--epochs", 1, "--out", out,
                      "--overwrite"])
    assert rc == 0, err
    assert out.read_bytes() != before and read_record(out)["best_epoch"] == 1


# --- 12. an output that cannot be written is found before training -------------------------

def test_unwritable_out_is_refused_before_training(npz, tmp_path):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file where a folder would have to be\n")
    rc, stdout, err = run(["train", "--data", npz, *QUICK, "--epochs", 1,
                           "--out", blocker / "m.keras"])
    assert rc == 2 and "notes.txt is a file, not a folder" in err
    assert not _epoch_lines(stdout)  # no training happened before the error


# --- 11. resume from a model saved without optimizer state --------------------------------

def test_resume_from_a_model_without_optimizer_state(npz, tmp_path):
    out = tmp_path / "m.keras"
    rc, stdout, err = run(["train", "--data", npz, "--resume", DEFAULT_MODEL, "--epochs", 1,
                           "--batch-size", 32, "--no-augment", "--out", out])
    assert rc == 0, err
    assert len([l for l in err.splitlines() if "optimizer" in l]) == 1
    assert "AttributeError" not in err and "best model: epoch" in stdout
    assert read_record(out)["resumed_from"] == str(DEFAULT_MODEL)


# --- 8. a model that outputs NaN: valid JSON (null) and one warning line -------------------

def test_nan_model_gives_valid_json_and_a_warning(constant_model, npz, tmp_path, shared_data):
    model = tmp_path / "nan.keras"
    constant_model([math.nan] * 30).save(model)

    def strict(text):
        return json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in JSON"))

    rc, stdout, err = run(["evaluate", "--model", model, "--data", npz, "--json"])
    result = strict(stdout)
    assert rc == 0 and result["rmse_px"] is None
    assert len([l for l in err.splitlines() if "non-finite" in l]) == 1
    photo = shared_data / "photos" / "Tom_Cruise_avp_2014_4.jpg"
    rc, stdout, err = run(["predict", photo, "--model", model, "--json"])
    faces = strict(stdout)[0]["faces"]
    assert faces and faces[0]["keypoints"]["nose_tip"] is None  # null, as facekp.core.photos.photo_json says
    assert len([l for l in err.splitlines() if "non-finite" in l]) == 1


# --- 4. kill -9: record and model agree; stale partial files go on the next run ------------

def test_kill_during_checkpoint_keeps_model_and_record_in_agreement(npz, tmp_path):
    import keras

    out = tmp_path / "m.keras"
    # Killed with the first model complete in its temporary file, before the rename.
    proc = _train_process(npz, out, "written:kill", "--epochs", "2")
    proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists() and _partials(tmp_path)
    # Killed right after the model's rename: the record inside the model names its epoch.
    proc = _train_process(npz, out, "renamed:kill", "--epochs", "2")
    proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL
    assert _partials(tmp_path) == []  # the earlier run's leftovers were cleaned up
    record = read_record(out)
    assert record is not None and record["best_epoch"] == 1
    assert [h["epoch"] for h in record["history"]] == [1]
    assert keras.saving.load_model(out, compile=False).count_params() > 0


# --- 3. double Ctrl+C during a checkpoint write --------------------------------------------

def test_double_ctrl_c_during_a_checkpoint_write_keeps_the_model(npz, tmp_path):
    import keras

    out = tmp_path / "m.keras"
    proc = _train_process(npz, out, "written:sleep=4", "--epochs", "50")
    try:
        deadline = time.monotonic() + 240
        while not _partials(tmp_path) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            time.sleep(0.05)
        assert _partials(tmp_path), "the checkpoint write never started"
        proc.send_signal(signal.SIGINT)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        t0 = time.monotonic()
        stdout, stderr = proc.communicate(timeout=60)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode not in (0, None) and proc.returncode > 0, stderr[-2000:]
    assert took < 15 and "Traceback" not in stderr
    assert _partials(tmp_path) == []
    assert read_record(out)["best_epoch"] >= 1
    assert keras.saving.load_model(out, compile=False).count_params() > 0


# --- 14. a finished run leaves nothing of its training graph behind -------------------------

def test_a_finished_training_run_releases_its_graphs(small_faces, tmp_path):
    """TensorFlow's gradient registry kept every run's traced training step, and with it the
    model's variables and optimizer slots (about 120 MB a run for 'seed', ~50 MB for the
    heatmap net), even after clear_session(). After a run, no graph it traced stays alive."""
    import gc
    import weakref

    import keras
    from tensorflow.python.framework.func_graph import FuncGraph

    from facekp.core.model.train import Trainer
    from facekp.core.model.train_types import TrainConfig

    def live_graphs() -> set[int]:
        gc.collect()
        return {id(o) for o in gc.get_objects() if isinstance(o, FuncGraph)}

    before = live_graphs()
    config = TrainConfig.for_arch("convbn", epochs=1, batch_size=64, augment=False)
    trainer = Trainer(config, small_faces.split("train"), small_faces.split("val"),
                      tmp_path / "m.keras")
    assert trainer.run().reason == "completed"
    model = weakref.ref(trainer.model)
    del trainer
    keras.backend.clear_session()
    left = [o for o in gc.get_objects() if isinstance(o, FuncGraph) and id(o) not in before]
    assert model() is None
    assert [g.name for g in left] == []
