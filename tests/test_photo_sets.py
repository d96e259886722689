"""Photo records, ground truth, JSON Lines, video records and the text of `facekp predict` for a
model of any keypoint set: keypoints and confidences named by the model's set (K points); truth
beside a photo (kaggle15) scored through ibug68's derivation, and for a set that cannot give
kaggle15's points skipped with a reason instead of a crash. Real ytf68 photos and labels."""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from facekp.core.data.keypoint_sets import IBUG68, KAGGLE15, KeypointSet, derive_keypoints
from facekp.core.data.keypoints import NAMES, from_68
from facekp.core.faces.framing import Box, Crop
from facekp.core.model.predict import FaceResult, PhotoResult
from facekp.core.photos import batch
from facekp.core.photos.photo_json import add_truth, keypoints_record, photo_record
from facekp.core.photos.photo_truth import nme
from facekp.core.photos.video import KeypointSmoother, Track, frame_record

PHOTO = "Takeo_Hiranuma_10.jpg"          # a ytf68 test photo, 450 x 360, one face
HAND = KeypointSet(name="hand", names=("thumb", "index", "palm"), flip_pairs=(("thumb", "index"),))


@pytest.fixture
def photo(shared_data, tmp_path) -> tuple[Path, np.ndarray]:
    """A copy of a real ytf68 photo with its 68 labelled points in a .pts beside it."""
    with open(shared_data / "ytf68" / "test_frames_keypoints.csv", newline="") as fh:
        row = next(r for r in csv.reader(fh) if r[0] == PHOTO)
    points = np.asarray(row[1:], np.float64).reshape(68, 2)
    out = tmp_path / PHOTO
    shutil.copy(shared_data / "ytf68" / "test" / PHOTO, out)
    body = "\n".join(f"{x + 1:g} {y + 1:g}" for x, y in points)
    out.with_suffix(".pts").write_text(f"version: 1\nn_points: 68\n{{\n{body}\n}}\n")
    return out, points


def test_a_photo_record_names_the_points_of_the_models_set():
    rng = np.random.default_rng(0)
    kp = rng.uniform(0, 300, (68, 2))
    kp[5] = np.nan
    conf = rng.uniform(0, 1, 68)
    face = ([10, 20, 110, 140], kp, None, None, conf)
    record = photo_record("p.jpg", [face], "1 face found", IBUG68)
    got = record["faces"][0]
    assert list(got["keypoints"]) == list(IBUG68.names) and got["keypoints"]["jaw_5"] is None
    assert got["keypoints"]["left_eye_0"] == [round(kp[42, 0], 2), round(kp[42, 1], 2)]
    assert list(got["keypoint_confidence"]) == list(IBUG68.names)
    assert got["mean_keypoint_confidence"] == round(conf.mean(), 4)
    # the app's calls without a set: 68 points are ibug68's, 15 are kaggle15's
    assert photo_record("p.jpg", [face], "1 face found") == record
    assert list(keypoints_record(kp[:15])) == list(NAMES)
    # a set of one's own names its own points; without the set, its count is refused
    own = photo_record("p.jpg", [([0, 0, 9, 9], kp[:3], None, None, conf[:3])], "", HAND)
    assert list(own["faces"][0]["keypoints"]) == ["thumb", "index", "palm"]
    with pytest.raises(ValueError, match="3 values fit no built-in keypoint set"):
        keypoints_record(kp[:3].reshape(-1)[:3])
    with pytest.raises(ValueError, match="68 confidences for 3 keypoints"):
        photo_record("p.jpg", [([0, 0, 9, 9], kp[:3], None, None, conf)], "", HAND)


def test_truth_beside_a_photo_scores_an_ibug68_model_through_kaggle15(photo):
    path, points = photo
    moved = points + np.array([2.0, -1.0])
    box = [points[:, 0].min(), points[:, 1].min(), points[:, 0].max(), points[:, 1].max()]
    faces = [(box, moved)]
    record = photo_record(path, faces, "1 face found", IBUG68)
    assert add_truth(record, faces, IBUG68) is None
    face = record["faces"][0]
    assert record["truth_file"] == str(path.with_suffix(".pts"))
    assert list(face["truth"]) == list(NAMES)
    derived = derive_keypoints(moved.reshape(1, -1), IBUG68, KAGGLE15).reshape(15, 2)
    want = nme(derived, from_68(points))
    assert 0 < want < 0.2 and face["nme"] == round(want, 4)


def test_truth_beside_a_photo_is_skipped_with_a_reason_for_a_set_without_kaggle15(photo):
    path, points = photo
    faces = [([0, 0, 450, 360], points[:3])]
    record = photo_record(path, faces, "1 face found", HAND)
    error = add_truth(record, faces, HAND)
    assert error is not None and "'hand'" in error and "kaggle15" in error
    assert record["truth_error"] == error
    assert "nme" not in record["faces"][0] and "truth_file" not in record
    # no truth beside it: nothing to say, whatever the set
    path.with_suffix(".pts").unlink()
    record = photo_record(path, faces, "1 face found", HAND)
    assert add_truth(record, faces, HAND) is None and "truth_error" not in record


class Ibug68Predictor:
    """Stands in for a Predictor of an ibug68 model: one face, 68 points in photo pixels."""
    keypoint_set = IBUG68
    confidence_head = None

    def __init__(self, points):
        self.points = points

    def predict_photo(self, photo, passes=None, confidence=False):
        face = FaceResult(Box(50, 60, 250, 300), Crop(40, 50, 220), self.points)
        return PhotoResult([face], "1 face found", (450, 360))


def test_a_jsonl_record_names_the_predictors_points(photo, monkeypatch):
    path, points = photo
    monkeypatch.setitem(batch._worker_state, "config", ("m.keras", "mtcnn", {}, 0.0, None))
    monkeypatch.setitem(batch._worker_state, "predictor", Ibug68Predictor(points))
    record = batch.predict_one(str(path))
    assert list(record["faces"][0]["keypoints"]) == list(IBUG68.names)
    assert record["faces"][0]["keypoints"]["jaw_0"] == [round(points[0, 0], 2),
                                                        round(points[0, 1], 2)]
    assert record["faces"][0]["nme"] is not None        # scored against the .pts beside it


def test_the_text_output_shows_points_the_models_set_has(photo, capsys):
    from facekp.core.cli.photos import SHOWN, _print_faces

    path, points = photo
    res = Ibug68Predictor(points).predict_photo(path)
    _print_faces(path, res, None, IBUG68)
    out = capsys.readouterr().out
    a, b = IBUG68.normalise_by
    x, y = points[IBUG68.index(a)]
    assert f"{a} ({x:.1f}, {y:.1f})" in out and b in out and "left_eye_center" not in out
    res.faces[0].keypoints = from_68(points)
    _print_faces(path, res, None, KAGGLE15)
    out = capsys.readouterr().out
    assert all(n in out for n in SHOWN)


def test_video_records_and_smoothing_follow_the_sets_points(photo):
    _, points = photo
    smoother = KeypointSmoother("ema", fps=25.0, scale=200.0)
    first = smoother(points, 0.0)
    second = smoother(points + 2.0, 0.04)
    np.testing.assert_allclose(first, points)
    np.testing.assert_allclose(second, points + 1.0)            # alpha 0.5
    track = Track(3, Crop(40, 50, 220), points, second, (0.1, 0.1, 0.9, 0.9))
    record = frame_record("v.mp4", 7, 0.28, [track], IBUG68)
    face = record["faces"][0]
    assert face["track"] == 3 and list(face["keypoints"]) == list(IBUG68.names)
    assert face["keypoints"]["jaw_0"] == [round(points[0, 0] + 1, 2), round(points[0, 1] + 1, 2)]
