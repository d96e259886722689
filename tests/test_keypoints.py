"""facekp.core.data.keypoints: Kaggle column order, horizontal flips, the 68 -> 15 mapping."""
from __future__ import annotations

import csv

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from facekp.core.data import keypoints as K
from facekp.core.data.keypoints import COLUMNS, NAMES, flip_images, flip_keypoints, from_68


def test_columns_are_kaggles_in_kaggles_order(shared_data):
    with open(shared_data / "kaggle" / "IdLookupTable.csv", newline="") as fh:
        first_image = [r["FeatureName"] for r in csv.DictReader(fh) if r["ImageId"] == "1"]
    assert list(COLUMNS) == first_image
    assert len(NAMES) == 15 and len(COLUMNS) == 30


coords = st.one_of(st.just(np.nan), st.floats(-0.5, 95.5, width=32))


@settings(max_examples=50, deadline=None)
@given(kp=hnp.arrays(np.float32, st.tuples(st.integers(1, 4), st.just(30)), elements=coords))
def test_flip_keypoints_is_an_involution(kp):
    twice = flip_keypoints(flip_keypoints(kp))
    np.testing.assert_allclose(twice, kp, atol=1e-4)  # NaN stays NaN in place
    np.testing.assert_array_equal(np.isnan(twice), np.isnan(kp))


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 3), seed=st.integers(0, 2**32 - 1))
def test_flip_images_is_an_involution(n, seed):
    images = np.random.default_rng(seed).integers(0, 256, (n, 96, 96), dtype=np.uint8)
    np.testing.assert_array_equal(flip_images(flip_images(images)), images)
    np.testing.assert_array_equal(flip_images(images)[:, :, 0], images[:, :, 95])


def test_flip_swaps_left_and_right_and_mirrors_x(faces):
    kp = faces.keypoints[:50]
    flipped = flip_keypoints(kp)
    col = {c: i for i, c in enumerate(COLUMNS)}
    swapped = 0
    for name in NAMES:
        partner = name.replace("left", "@").replace("right", "left").replace("@", "right")
        np.testing.assert_allclose(flipped[:, col[f"{partner}_x"]], 95 - kp[:, col[f"{name}_x"]],
                                   atol=1e-4)
        np.testing.assert_array_equal(flipped[:, col[f"{partner}_y"]], kp[:, col[f"{name}_y"]])
        swapped += partner != name
    assert swapped == 12  # six left/right pairs; eye centres, corners, brows, mouth corners
    # After the flip, the subject's left eye is again on the image's right, as in Kaggle.
    assert (flipped[:, col["left_eye_center_x"]] > flipped[:, col["right_eye_center_x"]]).all()


def test_flip_keeps_which_keypoints_are_missing():
    kp = np.full((1, 30), 40.0, np.float32)
    kp[0, COLUMNS.index("left_eye_outer_corner_x")] = np.nan
    kp[0, COLUMNS.index("left_eye_outer_corner_y")] = np.nan
    flipped = flip_keypoints(kp)
    missing = [c for c, v in zip(COLUMNS, flipped[0]) if np.isnan(v)]
    assert missing == ["right_eye_outer_corner_x", "right_eye_outer_corner_y"]


def test_painted_dots_flip_like_their_keypoints(faces):
    """Paint each keypoint as a dot of its own grey level; flip the image; find the dots."""
    kp = np.round(faces.complete().keypoints[0]).astype(np.float32)
    pts = kp.reshape(15, 2)
    assert len({tuple(p) for p in pts}) == 15  # 15 distinct pixels
    image = np.zeros((96, 96), np.uint8)
    for i, (x, y) in enumerate(pts.astype(int)):
        image[y, x] = 10 + 16 * i
    flipped_image = flip_images(image)
    found = np.full(30, np.nan, np.float32)
    for i in range(15):
        ys, xs = np.nonzero(flipped_image == 10 + 16 * i)
        assert len(xs) == 1
        # the dot painted for keypoint i now marks the keypoint flipped into i's partner slot
        j = int(K.FLIP_KEYPOINT_ORDER[i])
        found[2 * j], found[2 * j + 1] = xs[0], ys[0]
    np.testing.assert_array_equal(found, flip_keypoints(kp))


# --- 68 -> 15 ------------------------------------------------------------------------------

def test_from_68_matches_the_documented_mapping():
    """Point i sits at (i, 1000 + i): each output reveals which points made it (data README)."""
    p68 = np.stack([np.arange(68.0), 1000 + np.arange(68.0)], axis=1)
    out = dict(zip(NAMES, from_68(p68)))
    expected_x = {
        "left_eye_center": np.mean([42, 43, 44, 45, 46, 47]),   # 44.5
        "right_eye_center": np.mean([36, 37, 38, 39, 40, 41]),  # 38.5
        "left_eye_inner_corner": 42, "left_eye_outer_corner": 45,
        "right_eye_inner_corner": 39, "right_eye_outer_corner": 36,
        "left_eyebrow_inner_end": 22, "left_eyebrow_outer_end": 26,
        "right_eyebrow_inner_end": 21, "right_eyebrow_outer_end": 17,
        "nose_tip": 30,
        "mouth_left_corner": 54, "mouth_right_corner": 48,
        "mouth_center_top_lip": 51, "mouth_center_bottom_lip": 57,
    }
    for name, x in expected_x.items():
        np.testing.assert_allclose(out[name], [x, 1000 + x], err_msg=name)


def test_from_68_on_a_real_face_puts_the_subjects_left_on_the_image_right(shared_data):
    with open(shared_data / "ytf68" / "training_frames_keypoints.csv", newline="") as fh:
        rows = list(csv.reader(fh))[1:6]
    p68 = np.array([[float(v) for v in r[1:]] for r in rows]).reshape(-1, 68, 2)
    kp = dict(zip(NAMES, np.moveaxis(from_68(p68), 1, 0)))
    assert (kp["left_eye_center"][:, 0] > kp["right_eye_center"][:, 0]).all()
    assert (kp["mouth_left_corner"][:, 0] > kp["mouth_right_corner"][:, 0]).all()
    eyes_y = (kp["left_eye_center"][:, 1] + kp["right_eye_center"][:, 1]) / 2
    assert (eyes_y < kp["nose_tip"][:, 1]).all()
    assert (kp["nose_tip"][:, 1] < kp["mouth_center_top_lip"][:, 1]).all()
    assert (kp["mouth_center_top_lip"][:, 1] < kp["mouth_center_bottom_lip"][:, 1]).all()


def test_from_68_handles_batches_and_rejects_other_shapes():
    p = np.random.default_rng(0).uniform(0, 200, (2, 3, 68, 2))
    assert from_68(p).shape == (2, 3, 15, 2)
    np.testing.assert_allclose(from_68(p)[1, 2], from_68(p[1, 2]))
    with pytest.raises(ValueError):
        from_68(np.zeros((5, 2)))


def test_points_and_columns_convert_both_ways():
    cols = np.arange(60, dtype=np.float32).reshape(2, 30)
    pts = K.as_points(cols)
    assert pts.shape == (2, 15, 2)
    assert pts[0, 10].tolist() == [20, 21]  # nose_tip_x, nose_tip_y
    np.testing.assert_array_equal(K.as_columns(pts), cols)
