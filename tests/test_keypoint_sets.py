"""Keypoint sets as values (facekp.core.data.keypoint_sets): the built-in kaggle15 and ibug68,
a person's own set as a JSON file, one clear line for each mistake in one, and
``facekp keypoints init | show``."""
from __future__ import annotations

import json

import numpy as np
import pytest

from facekp.core.cli import main as cli
from facekp.core.data import keypoint_sets as ks
from facekp.core.data import keypoints as K
from facekp.core.data.dataset import read_npz
from facekp.core.errors import DataError
from facekp.core.resources import DEFAULT_DATASET


def test_kaggle15_is_todays_names_order_columns_and_flip():
    s = ks.load_set("kaggle15")
    assert s is ks.DEFAULT and s.names == K.NAMES and s.columns == K.COLUMNS
    np.testing.assert_array_equal(s.flip_order(), K.FLIP_KEYPOINT_ORDER)
    kp = read_npz(DEFAULT_DATASET).keypoints[:50]
    np.testing.assert_array_equal(s.flip(kp), K.flip_keypoints(kp))


def test_kaggle15_from_the_68_points_is_the_existing_mapping():
    pts68 = np.random.default_rng(0).uniform(0, 96, (68, 2))
    np.testing.assert_allclose(ks.KAGGLE15.from_68_matrix() @ pts68, K.from_68(pts68))


def test_ibug68_order_flips_and_skeleton():
    s = ks.IBUG68
    assert s.size == 68 and len(s.flip_pairs) == 29  # 68 points, 10 on the midline
    assert s.names[0] == "jaw_0" and s.names[36] == "right_eye_0" and s.names[67] == "inner_lip_7"
    order = s.flip_order()
    assert (order[order] == np.arange(68)).all()  # flipping twice gives the face back
    assert order[36] == 45 and order[30] == 30 and order[48] == 54 and order[0] == 16
    # every point lies on the skeleton; the eyes and lips are closed loops
    on_edges = {n for e in s.edges for n in e}
    assert on_edges == set(s.names)
    assert ("right_eye_5", "right_eye_0") in s.edges
    assert s.normalise_by == ("left_eye_3", "right_eye_0")  # outer corners, 45 and 36


def test_ibug68_flip_mirrors_a_real_68_point_face():
    """A real face's 68 labels, mirrored point by point, keep left and right the subject's:
    after the flip the subject's left eye (42-47) is again at the image's right."""
    rng = np.random.default_rng(1)
    pts = rng.uniform(20, 76, (68, 2))
    pts[42:48, 0] = rng.uniform(60, 70, 6)   # subject's left eye at image right
    pts[36:42, 0] = rng.uniform(26, 36, 6)
    flipped = ks.IBUG68.flip(pts.reshape(1, -1)).reshape(68, 2)
    assert flipped[42:48, 0].min() > 55 and flipped[36:42, 0].max() < 41
    np.testing.assert_allclose(ks.IBUG68.flip(ks.IBUG68.flip(pts.reshape(1, -1))),
                               pts.reshape(1, -1), atol=1e-4)


def test_a_set_file_round_trips(tmp_path):
    for s in (ks.KAGGLE15, ks.IBUG68):
        path = ks.save_set(s, tmp_path / f"{s.name}.json")
        assert ks.load_set(path) == s


@pytest.mark.parametrize("doc, words", [
    ({"name": "x", "keypoints": ["a", "b", "a"]}, "'a' is named twice"),
    ({"name": "x", "keypoints": ["a", "b"], "flip": [["a", "z"]]}, "'z' is not a keypoint"),
    ({"name": "x", "keypoints": ["a", "b"], "edges": [["a", "a"]]}, "joins a point to itself"),
    ({"name": "x", "keypoints": ["a", "b", "c"], "flip": [["a", "b"], ["a", "c"]]},
     "one other point only"),
    ({"name": "x", "keypoints": []}, "at least one keypoint"),
    ({"name": "x", "keypoints": "a,b"}, "field 'keypoints' must be a list"),
    ({"name": "x", "keypoints": ["a"], "colour": "red"}, "unknown field 'colour'"),
    ({"name": "x", "keypoints": ["a", "b"], "from_68": [[1], [99]]}, "indices 0-67"),
    ({"name": "x", "keypoints": ["a", "b"], "from_68": [[1]]}, "one per keypoint"),
    (["a", "b"], "expected a JSON object"),
])
def test_a_bad_set_file_is_one_line_naming_it(tmp_path, doc, words):
    path = tmp_path / "set.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(DataError) as err:
        ks.load_set(path)
    assert words in str(err.value) and str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_an_unknown_set_name_says_which_exist():
    with pytest.raises(DataError, match="kaggle15 or ibug68"):
        ks.load_set("wflw98")


def test_keypoints_init_then_show(tmp_path, capsys):
    out = tmp_path / "hand.json"
    assert cli.main(["keypoints", "init", "hand", "--names", "thumb,index,palm,wrist",
                     "--flip", "thumb:index", "--edge", "palm-wrist", "--out", str(out)]) == 0
    s = ks.load_set(out)
    assert s.names == ("thumb", "index", "palm", "wrist")
    assert s.flip_pairs == (("thumb", "index"),) and s.edges == (("palm", "wrist"),)
    capsys.readouterr()
    assert cli.main(["keypoints", "show", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "hand: 4 keypoints" in shown and "thumb:index" in shown
    assert cli.main(["keypoints", "show", "ibug68", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["keypoints"][30] == "nose_bridge_3"


def test_keypoints_init_mistakes_are_one_line_and_exit_2(tmp_path, capsys):
    out = tmp_path / "s.json"
    assert cli.main(["keypoints", "init", "s", "--names", "a,b", "--edge", "a-c",
                     "--out", str(out)]) == 2
    assert "'c' is not a keypoint" in capsys.readouterr().err and not out.exists()
    assert cli.main(["keypoints", "init", "s", "--names", "a,b", "--flip", "ab",
                     "--out", str(out)]) == 2
    assert "expected two keypoint names as A:B" in capsys.readouterr().err
    out.write_text("mine\n")
    assert cli.main(["keypoints", "init", "s", "--names", "a,b", "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err and out.read_text() == "mine\n"
