"""facekp.core.quality.review: the review queues' order and reasons on real faces, and the stand-in
confidence (flip agreement) on a real Keras model."""
from __future__ import annotations

import re

import numpy as np
import pytest

from facekp.core.quality import review
from facekp.core.data.keypoints import NUM_KEYPOINTS, flip_keypoints


@pytest.fixture(scope="module")
def labelled(faces):
    """12 real test faces with all 15 points, their labels as float64."""
    rows = np.flatnonzero((faces.splits == "test") & faces.present.all(1))[:12]
    return faces.keypoints[rows].astype(np.float64)


def test_missing_queue_most_missing_first_with_names(labelled):
    truth = labelled.copy()
    truth[3, 0:4] = np.nan                      # two points missing
    truth[7, 20:22] = np.nan                    # one: nose tip
    q = review.build("missing", truth)
    assert list(q.rows) == [3, 7]
    assert q.reasons[0] == "2 points missing: left eye center, right eye center"
    assert q.reasons[1] == "1 point missing: nose tip"


def test_reasons_are_written_when_read_and_follow_a_selection(labelled):
    """A queue of every face of a big dataset is built at once: its reasons are written only
    for the faces a person reaches, and a selection (a split's rows) keeps each face's own."""
    written = []

    def say(row):
        written.append(row)
        return f"face {row}"

    reasons = review.Reasons(say, [9, 4, 7, 1])
    picked = reasons[np.array([True, False, True, False])]
    assert written == [] and len(picked) == 2
    assert list(picked) == ["face 9", "face 7"] and reasons[-1] == "face 1"
    assert written == [9, 7, 1]

    rng = np.random.default_rng(1)
    pred = labelled + rng.normal(0, 1.0, labelled.shape)
    q = review.build("worst", labelled, pred)
    keep = np.isin(q.rows, [0, 3, 5, 8])
    assert [q.reasons[i] for i in np.flatnonzero(keep)] == list(q.reasons[keep])
    assert all(text.startswith("RMSE ") for text in q.reasons[keep])


def test_worst_queue_orders_faces_by_rmse_and_names_the_worst_point(labelled):
    rng = np.random.default_rng(0)
    pred = labelled + rng.normal(0, 0.5, labelled.shape)
    pred[5, 20] += 9.0                          # face 5: the nose tip 9 px off
    pred[2] += 3.0                              # face 2: everything 3 px off
    q = review.build("worst", labelled, pred)
    err = np.sqrt(np.mean((pred - labelled) ** 2, axis=1))
    assert list(q.rows) == list(np.argsort(-err, kind="stable"))
    assert list(q.rows[:2]) == [2, 5] and "nose tip" in q.reasons[1]
    assert len(review.build("worst", labelled, None)) == 0     # not predicted: empty


def test_unsure_queue_takes_a_per_face_score(labelled):
    conf = np.full((12, NUM_KEYPOINTS), 0.9)
    conf[4, 10] = 0.1                           # face 4: nose tip unsure
    conf[9] = 0.5                               # face 9: all middling
    conf[11] = np.nan                           # face 11: no confidence -> not queued
    q = review.build("unsure", labelled, labelled, conf)
    assert list(q.rows[:2]) == [9, 4] and 11 not in q.rows and len(q) == 11
    assert "least sure point: nose tip" in q.reasons[1]
    # any per-face score plugs in: least sure first
    q = review.unsure_queue(np.array([0.3, np.nan, 0.1, 0.2]))
    assert list(q.rows) == [2, 3, 0]


def test_suspects_swapped_labels_first_then_far_from_a_sure_prediction(labelled):
    rng = np.random.default_rng(1)
    pred = labelled + rng.normal(0, 0.3, labelled.shape)
    truth = labelled.copy()
    truth[6] = review.swap_left_right(labelled[6])          # left and right exchanged
    truth[1, 20:22] += (6.0, 5.0)                           # nose tip label 7.8 px off
    truth[8, 20:22] += (6.0, 5.0)                           # the same, but the model is unsure
    conf = np.full((12, NUM_KEYPOINTS), 0.8)
    conf[8, 10] = 0.05
    q = review.build("suspect", truth, pred, conf)
    assert list(q.rows) == [6, 1]
    assert q.reasons[0].startswith("left/right labels look swapped")
    assert re.match(r"nose tip label is 7\.\d px from a sure prediction", q.reasons[1])
    # the swap test itself: RMSE over the paired points as labelled and exchanged
    as_labelled, swapped = review.swapped_gain(truth, pred)
    assert swapped[6] < 1.0 < 5.0 < as_labelled[6]
    assert as_labelled[0] < swapped[0]


def test_confidence_rank_and_unknown_kind():
    rank = review.confidence_rank(np.array([[0.2, np.nan], [0.9, 0.5]]))
    np.testing.assert_allclose(rank, [[0.0, np.nan], [1.0, 0.5]])
    with pytest.raises(ValueError, match="unknown review queue 'best'"):
        review.build("best", np.zeros((1, 30)))


def test_flip_disagreement_of_a_real_model_is_the_distance_to_its_mirror(faces, constant_model):
    """A model that ignores the image predicts the same points for a face and its mirror;
    mapped back, the mirror's points are flip_keypoints of them: the disagreement is exact."""
    values = np.linspace(20, 70, 30).astype(np.float32)
    model = constant_model(values)
    d = review.flip_disagreement(model, faces.images[:3])
    back = flip_keypoints(values[None])[0]
    expected = np.hypot(*(values - back).reshape(NUM_KEYPOINTS, 2).T)
    np.testing.assert_allclose(d, np.tile(expected, (3, 1)), atol=1e-3)
    conf = review.flip_confidence(d)
    assert conf.max() <= 1.0 and (np.diff(np.argsort(d[0])) != 0).all()
    assert np.argmin(conf[0]) == np.argmax(d[0])
