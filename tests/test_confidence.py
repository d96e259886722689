"""Keypoint confidence (facekp.core.model.confidence): the head's maths and file, the shipped head on real
faces (in range, same keypoints, an occluded face less sure), and the JSON outputs."""
from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest

from facekp.core.model import confidence as C
from facekp.core.errors import DataError, FacekpError
from facekp.core.data.keypoints import NAMES, NUM_KEYPOINTS


@pytest.fixture(scope="module")
def predictor():
    from facekp.core.model.predict import Predictor
    from facekp.core.resources import DEFAULT_MODEL

    return Predictor(DEFAULT_MODEL)


@pytest.fixture(scope="module")
def test_faces(faces):
    """12 real faces of the test people with all 15 keypoints labelled."""
    test = faces.split("test")
    return test.subset(np.flatnonzero(test.present.all(axis=1))[:12])


def test_ranking_scores_on_known_values():
    err = np.array([[0.5, 1.0, 4.0, 5.0]])
    perfect = C.ranking_scores(np.array([[0.9, 0.8, 0.3, 0.1]]), err)
    assert perfect["spearman"] == pytest.approx(1.0) and perfect["auroc"] == pytest.approx(1.0)
    reversed_ = C.ranking_scores(np.array([[0.1, 0.3, 0.8, 0.9]]), err)
    assert reversed_["spearman"] == pytest.approx(-1.0) and reversed_["auroc"] == 0.0
    assert perfect["off_fraction"] == 0.5 and perfect["points"] == 4
    with_missing = C.ranking_scores(np.array([[0.9, 0.8, 0.3, 0.1]]),
                                    np.array([[0.5, np.nan, 4.0, 5.0]]))
    assert with_missing["points"] == 3


def test_rank_statistics_with_ties_match_their_definitions():
    # numpy alone (no scipy): ties share their average rank, as scipy.stats.rankdata gives them
    assert C.average_ranks(np.array([10, 20, 20, 5])).tolist() == [2, 3.5, 3.5, 1]
    a, b = [3, 1, 4, 1, 5, 9, 2, 6], [2, 7, 1, 8, 2, 8, 1, 8]
    assert C.spearman(np.array(a), np.array(b)) == pytest.approx(0.19885, abs=1e-5)  # scipy's spearmanr
    assert C.spearman(np.array(a), -np.array(a)) == pytest.approx(-1.0)
    assert np.isnan(C.spearman(np.ones(5), np.arange(5)))
    # a tie between a positive and a negative counts half
    assert C.auroc(np.array([True, False]), np.array([0.5, 0.5])) == 0.5
    assert C.auroc(np.array([True, False, False]), np.array([0.9, 0.1, 0.2])) == 1.0
    assert np.isnan(C.auroc(np.array([True, True]), np.array([0.1, 0.2])))


def test_fit_head_learns_which_signal_predicts_the_error():
    rng = np.random.default_rng(0)
    n = 400
    spread = rng.uniform(-2, 1, (n, NUM_KEYPOINTS))        # the "tta" signal
    noise = rng.uniform(-3, 3, (n, NUM_KEYPOINTS))         # a useless one
    errors = np.exp(spread + rng.normal(0, 0.3, spread.shape)) * 2
    head = C.fit_head({"tta": spread, "sharpness": noise}, errors, ("tta", "sharpness"))
    assert head.weights[0] < -1 and abs(head.weights[1]) < 0.3 * abs(head.weights[0])
    conf = head.confidence({"tta": spread, "sharpness": noise})
    assert conf.shape == (n, NUM_KEYPOINTS) and ((conf >= 0) & (conf <= 1)).all()
    scores = C.ranking_scores(conf, errors)
    assert scores["spearman"] > 0.8 and scores["auroc"] > 0.9
    # probabilities match the fitted faces: mean confidence near the share within 3 px
    assert conf.mean() == pytest.approx((errors <= 3).mean(), abs=0.03)


def test_head_file_round_trip_and_bad_files(tmp_path):
    head = C.ConfidenceHead(("tta", "face_peak"), np.array([-1.5, 2.0]),
                            np.linspace(3, 5, NUM_KEYPOINTS), 0.9, 0.1)
    path = head.save(tmp_path / "m.confidence.json")
    back = C.load_head(path)
    sig = {"tta": np.full((2, 15), -1.0), "face_peak": np.full((2, 15), -2.0)}
    assert np.allclose(back.confidence(sig), head.confidence(sig))
    assert "within 3 px" in json.loads(path.read_text())["meaning"]
    assert C.head_path(tmp_path / "m.keras") == path

    bad = tmp_path / "bad.confidence.json"
    bad.write_text(json.dumps({**head.to_dict(), "features": ["tta", "moon_phase"]}))
    with pytest.raises(DataError, match="bad.confidence.json.*moon_phase"):
        C.load_head(bad)
    bad.write_text("{not json")
    with pytest.raises(DataError, match="bad.confidence.json"):
        C.load_head(bad)


def test_unwarp_undoes_each_view():
    pts = np.random.default_rng(1).uniform(20, 75, (3, 30))
    for view in C.VIEWS:
        m = C.view_matrix(*view)
        p = pts.reshape(3, 15, 2)
        moved = (p @ m[:, :2].T + m[:, 2]).reshape(3, 30)
        assert np.allclose(C.unwarp(moved, view), pts, atol=1e-9)


def test_shipped_head_gives_confidences_and_keeps_the_keypoints(predictor, test_faces):
    assert predictor.confidence_head is not None  # resources/models/default.confidence.json
    kp, conf = predictor.predict_with_confidence(test_faces.images)
    assert conf.shape == (len(test_faces), NUM_KEYPOINTS) and conf.dtype == np.float32
    assert ((conf > 0) & (conf < 1)).all()
    assert np.allclose(kp, predictor.predict(test_faces.images), atol=1e-3)
    # batches of any size give the same figures
    kp2, conf2 = predictor.predict_with_confidence(test_faces.images, batch_size=7)
    assert np.allclose(conf, conf2, atol=1e-5) and np.allclose(kp, kp2, atol=1e-4)


def test_an_occluded_face_is_less_sure_than_the_clean_face(predictor, test_faces):
    """A grey block over the eyes and eyebrows: those points (and the face as a whole) are
    less sure than on the clean faces."""
    clean = test_faces.images
    occluded = clean.copy()
    kp = test_faces.keypoints.reshape(-1, NUM_KEYPOINTS, 2)
    eyes = [i for i, n in enumerate(NAMES) if "eye" in n]
    for face, points in zip(occluded, kp):
        y = int(np.nanmean(points[eyes, 1]))
        face[max(0, y - 14):y + 10, :] = 128
    _, sure = predictor.predict_with_confidence(clean)
    _, unsure = predictor.predict_with_confidence(occluded)
    assert (unsure[:, eyes].mean(axis=1) < sure[:, eyes].mean(axis=1)).mean() >= 0.9
    assert unsure.mean() < sure.mean() - 0.1


def test_no_head_means_no_confidence(predictor, test_faces):
    from facekp.core.model.predict import Predictor

    bare = Predictor(predictor.model, confidence=None)
    assert bare.confidence_head is None
    with pytest.raises(FacekpError, match="no confidence head"):
        bare.predict_with_confidence(test_faces.images)


def test_photo_faces_and_predict_json_carry_confidence(predictor, shared_data):
    from facekp.core.cli.main import main

    photo = shared_data / "photos" / "Tom_Cruise_avp_2014_4.jpg"
    # the command line's photo path runs the model with 8-bit weights (Predictor.for_photos)
    face = predictor.for_photos().predict_photo(photo, passes=1, confidence=True).faces[0]
    assert face.keypoint_confidence.shape == (NUM_KEYPOINTS,)
    assert predictor.predict_photo(photo, passes=1).faces[0].keypoint_confidence is None
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["predict", str(photo), "--json", "--passes", "1"]) == 0  # default model
    record = json.loads(out.getvalue())[0]["faces"][0]
    assert list(record["keypoint_confidence"]) == list(NAMES)
    values = list(record["keypoint_confidence"].values())
    assert all(0 <= v <= 1 for v in values)
    assert np.allclose(values, face.keypoint_confidence, atol=1e-4)
    assert record["mean_keypoint_confidence"] == pytest.approx(np.mean(values), abs=1e-3)


def test_evaluate_json_reports_how_confidence_ranks_errors(faces, tmp_path):
    from facekp.core.data import dataset as data
    from facekp.core.cli.main import main

    test = faces.split("test")
    path = tmp_path / "some.npz"
    data.write_npz(test.subset(np.arange(60)), path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["evaluate", "--data", str(path), "--split", "all", "--json"]) == 0
    conf = json.loads(out.getvalue())["confidence"]
    assert set(conf) >= {"spearman", "auroc", "off_fraction", "mean_confidence", "points",
                         "per_keypoint"}
    assert list(conf["per_keypoint"]) == list(NAMES)
    assert all(0 <= v <= 1 for v in conf["per_keypoint"].values())
    assert conf["spearman"] > 0.1 and conf["auroc"] > 0.6  # it ranks real errors
