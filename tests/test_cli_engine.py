"""facekp train | evaluate | predict | submit: real runs, exit codes 0/2/130, clean errors."""
from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from facekp.core.data import dataset as data
from facekp.core.data import kaggle_csv
from facekp.core.data import opener
from facekp.core.cli.main import main
from facekp.core.faces.detect import BLAZE_POINT_NAMES
from facekp.core.data.keypoints import NAMES

ROOT = Path(__file__).resolve().parent.parent


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def small_npz(faces, tmp_path_factory):
    """64 training, 16 validation and 16 test faces (real, split by person)."""
    rng = np.random.default_rng(1)
    parts = [rng.choice(np.flatnonzero(faces.splits == s), n, replace=False)
             for s, n in (("train", 64), ("val", 16), ("test", 16))]
    path = tmp_path_factory.mktemp("data") / "small.npz"
    data.write_npz(faces.subset(np.sort(np.concatenate(parts))), path)
    return path


@pytest.fixture(scope="module")
def trained(small_npz, tmp_path_factory):
    """`facekp train` for one epoch: (exit code, stdout, stderr, model path)."""
    out = tmp_path_factory.mktemp("model") / "m.keras"
    rc, stdout, stderr = run(["train", "--data", small_npz, "--epochs", 1, "--batch-size", 32,
                              "--out", out, "--no-confidence-head"])
    return rc, stdout, stderr, out


def test_train_prints_a_line_per_epoch_and_saves(trained):
    rc, stdout, stderr, out = trained
    assert rc == 0, stderr
    assert "training seed on" in stdout
    epoch_lines = [l for l in stdout.splitlines() if l.startswith("epoch ")]
    assert len(epoch_lines) == 1
    line = epoch_lines[0]
    assert "1/1" in line and "train" in line and "val" in line and "px" in line
    assert "ETA" in line and "s/epoch" in line
    assert f"saved to {out}" in stdout
    assert out.exists() and out.with_name("m.train.json").exists()
    assert not out.with_name("m.confidence.json").exists()  # --no-confidence-head


def test_evaluate_json_and_text(trained, small_npz):
    from facekp.core.quality.evaluate import evaluate

    model = trained[3]
    rc, stdout, _ = run(["evaluate", "--model", model, "--data", small_npz, "--json"])
    assert rc == 0
    result = json.loads(stdout)
    assert set(result) == {"keypoint_set", "rmse_px", "nme", "nme_by", "per_keypoint", "faces",
                           "confidence"}
    assert result["keypoint_set"] == "kaggle15" and result["nme"] > 0   # a one-epoch model
    assert result["confidence"] is None  # trained here without a confidence head
    assert result["faces"] == 16  # the default split is test
    assert list(result["per_keypoint"]) == list(NAMES)
    direct = evaluate(model, opener.load(small_npz).split("test"))
    assert result["rmse_px"] == pytest.approx(direct["rmse_px"], rel=1e-6)

    rc, stdout, _ = run(["evaluate", "--model", model, "--data", small_npz, "--split", "val"])
    assert rc == 0 and "RMSE" in stdout and "over 16 faces" in stdout
    assert all(name in stdout for name in NAMES)


def test_predict_json_and_drawings(trained, shared_data, tmp_path):
    photos = shared_data / "photos"
    tom, dogs = photos / "Tom_Cruise_avp_2014_4.jpg", photos / "dogs.jpg"
    rc, stdout, stderr = run(["predict", "--model", trained[3], tom, dogs, "--json",
                              "--draw", tmp_path / "drawn"])
    assert rc == 0, stderr
    result = json.loads(stdout)
    assert [r["photo"] for r in result] == [str(tom), str(dogs)]
    face = result[0]["faces"][0]
    # one schema with the app's export (facekp.core.photos.photo_json; README "Photo predictions as
    # JSON")
    assert set(result[0]) == {"photo", "units", "message", "faces", "drawn"}   # --draw
    assert set(face) == {"face", "box", "detector_confidence", "detector_points",
                         "keypoints", "keypoint_confidence", "mean_keypoint_confidence"}
    assert face["face"] == 1
    assert face["keypoint_confidence"] is None  # a model trained here has no confidence head
    assert all(v == round(v, 2) for v in face["box"])
    assert len(face["box"]) == 4
    assert list(face["keypoints"]) == list(NAMES)
    assert all(len(v) == 2 for v in face["keypoints"].values())
    # the detector's confidence and its six points (BlazeFace, the default detector)
    assert 0.8 <= face["detector_confidence"] <= 1.0
    assert list(face["detector_points"]) == list(BLAZE_POINT_NAMES)
    x0, y0, x1, y1 = face["box"]
    assert all(x0 <= x <= x1 and y0 <= y <= y1
               for x, y in list(face["detector_points"].values())[:4])  # the ears may lie outside
    assert result[1]["faces"] == []
    for photo in (tom, dogs):
        drawn = tmp_path / "drawn" / f"{photo.stem}.png"
        with Image.open(drawn) as img, Image.open(photo) as original:
            assert img.format == "PNG" and img.size == original.size


def test_predict_with_haar_and_a_confidence_floor(trained, shared_data):
    group = shared_data / "photos" / "bald_guys.jpg"
    rc, stdout, stderr = run(["predict", "--model", trained[3], group, "--json",
                              "--detector", "haar", "--passes", "1"])
    assert rc == 0, stderr
    haar = json.loads(stdout)[0]["faces"]
    assert len(haar) >= 10 and all(f["detector_confidence"] is None for f in haar)
    rc, stdout, stderr = run(["predict", "--model", trained[3], group, "--json",
                              "--min-confidence", "0.999", "--passes", "1", "--detector", "mtcnn"])
    assert rc == 0, stderr
    sure = json.loads(stdout)[0]["faces"]
    assert sure and all(f["detector_confidence"] >= 0.999 for f in sure)
    # BlazeFace's confidences are on its own scale (its real faces 0.6-0.95)
    rc, stdout, stderr = run(["predict", "--model", trained[3], group, "--json",
                              "--min-confidence", "0.85", "--passes", "1"])
    assert rc == 0, stderr
    sure = json.loads(stdout)[0]["faces"]
    assert 0 < len(sure) < 24 and all(f["detector_confidence"] >= 0.85 for f in sure)


def test_predict_detect_side_too_small_is_a_clean_error(trained, shared_data):
    rc, _, stderr = run(["predict", "--model", trained[3], "--detect-side", "10",
                         shared_data / "photos" / "dogs.jpg"])
    assert rc == 2 and "--detect-side must be at least 64 px" in stderr


def test_predict_a_text_file_is_a_clean_error(trained, tmp_path, shared_data):
    text = tmp_path / "readme.jpg"
    text.write_text("this is text")
    rc, stdout, stderr = run(["predict", "--model", trained[3], text,
                              shared_data / "photos" / "Tom_Cruise_avp_2014_4.jpg"])
    assert rc == 2
    assert "readme.jpg" in stderr and "Traceback" not in stderr
    assert "1 face" in stdout  # the good photo was still done


def test_submit(trained, faces, shared_data, tmp_path):
    test_csv = tmp_path / "test.csv"
    kaggle_csv.write_kaggle_csv(faces.subset(np.arange(20)), test_csv, layout="test")
    lookup = pd.read_csv(shared_data / "kaggle" / "IdLookupTable.csv")
    lookup = lookup[lookup.ImageId <= 20]
    lookup.to_csv(tmp_path / "lookup.csv", index=False)
    out = tmp_path / "submission.csv"
    rc, stdout, stderr = run(["submit", "--model", trained[3], "--test", test_csv,
                              "--lookup", tmp_path / "lookup.csv", "--out", out])
    assert rc == 0, stderr
    sub = pd.read_csv(out)
    assert sub["RowId"].tolist() == lookup["RowId"].tolist()
    assert sub["Location"].between(0, 96).all()
    assert f"wrote {len(lookup)} rows for 20 images" in stdout


def test_user_mistakes_exit_2_without_traceback(tmp_path, small_npz, monkeypatch):
    import facekp.core.resources

    rc, _, err = run(["evaluate", "--model", tmp_path / "none.keras", "--data", small_npz])
    assert rc == 2 and "none.keras" in err and "Traceback" not in err
    monkeypatch.setattr(facekp.core.resources, "default_model", lambda: None)
    rc, _, err = run(["predict", str(tmp_path / "x.jpg")])
    assert rc == 2 and "--model" in err
    rc, _, err = run(["train", "--data", small_npz, "--out", tmp_path / "m.h5"])
    assert rc == 2 and ".keras" in err
    rc, _, err = run(["train", "--data", small_npz, "--arch", "nope", "--out",
                      tmp_path / "m.keras"])
    assert rc == 2 and "seed" in err
    no_val = tmp_path / "no_val.npz"
    ds = opener.load(small_npz)
    data.write_npz(ds.subset(np.flatnonzero(ds.splits != "val")), no_val)
    rc, _, err = run(["train", "--data", no_val, "--out", tmp_path / "m.keras"])
    assert rc == 2 and "'val'" in err
    with pytest.raises(SystemExit) as info:
        run(["evaluate", "--split", "bogus"])
    assert info.value.code == 2


def test_ctrl_c_stops_cleanly_and_keeps_the_best_model(small_npz, tmp_path):
    import keras

    out = tmp_path / "m.keras"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "facekp.core.cli.main", "train", "--data", str(small_npz),
                             "--epochs", "200", "--batch-size", "16", "--out", str(out)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("epoch "):
                break
        proc.send_signal(signal.SIGINT)
        rest, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    stdout = "".join(lines) + rest
    assert proc.returncode == 130, stderr[-2000:]
    assert "stopped by the user" in stdout and "best model: epoch" in stdout
    assert "Traceback" not in stderr
    assert keras.saving.load_model(out).count_params() == 8_051_502
    assert not [p for p in tmp_path.iterdir() if ".partial" in p.name]


def test_evaluate_without_splits_uses_every_face_and_says_so(trained, small_npz, tmp_path):
    """Issue 11, rough edge 5: a dataset without splits has no 'test' faces to stop on."""
    ds = opener.load(small_npz)
    plain = data.Dataset(ds.images, ds.keypoints, ds.names, ds.persons,
                         np.full(len(ds), "", dtype=str), {})
    path = tmp_path / "nosplits.npz"
    data.write_npz(plain, path)
    rc, stdout, stderr = run(["evaluate", "--model", trained[3], "--data", path, "--json"])
    assert rc == 0, stderr
    assert json.loads(stdout)["faces"] == len(ds)
    assert "no splits assigned; evaluating every face" in stderr
    rc, stdout, _ = run(["evaluate", "--model", trained[3], "--data", path])
    assert rc == 0 and f"over {len(ds)} faces" in stdout and "every face" in stdout


def test_train_takes_the_augmentation_preset(small_npz, tmp_path):
    from facekp.core.model.checkpoints import read_record

    out = tmp_path / "wild.keras"
    rc, _, stderr = run(["train", "--data", small_npz, "--epochs", 1, "--batch-size", 32,
                         "--augment", "--augment-preset", "wild", "--out", out])
    assert rc == 0, stderr
    assert read_record(out)["config"]["augment_preset"] == "wild"
    with pytest.raises(SystemExit) as exc:  # argparse: one usage line naming the choices
        run(["train", "--data", small_npz, "--augment-preset", "foggy", "--out",
             tmp_path / "x.keras"])
    assert exc.value.code == 2 and not (tmp_path / "x.keras").exists()
