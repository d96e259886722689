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


def _embedded():
    """The embedded dataset as it opens by default: kaggle15, derived from its 68 points."""
    from facekp.core.data import opener

    return opener.load(DEFAULT_DATASET)


def test_kaggle15_is_todays_names_order_columns_and_flip():
    s = ks.load_set("kaggle15")
    assert s is ks.DEFAULT and s.names == K.NAMES and s.columns == K.COLUMNS
    np.testing.assert_array_equal(s.flip_order(), K.FLIP_KEYPOINT_ORDER)
    kp = _embedded().keypoints[:50]
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


# --- the set travels with a dataset ----------------------------------------------------------

def _ibug68_faces(n: int = 6):
    """n real face crops of the embedded dataset with made-up 68-point labels."""
    from facekp.core.data.dataset import Dataset

    base = _embedded().subset(np.arange(n))
    kp = np.random.default_rng(2).uniform(5, 90, (n, 136)).astype(np.float32)
    kp[0, 10:12] = np.nan  # a missing point
    return Dataset.from_arrays(base.images, kp, names=base.names, persons=base.persons,
                               splits=base.splits, keypoint_set=ks.IBUG68)


def test_an_npz_keeps_its_keypoint_set(tmp_path):
    from facekp.core.data import dataset as data

    faces = _ibug68_faces()
    back = read_npz(data.write_npz(faces, tmp_path / "f.npz"))
    assert back.keypoint_set == ks.IBUG68 and back.keypoints.shape == (6, 136)
    np.testing.assert_array_equal(back.keypoints, faces.keypoints)
    assert back.present.shape == (6, 68) and not back.present[0, 5]
    assert back.subset([1, 2]).keypoint_set == ks.IBUG68
    assert back.split("all").concat(back).keypoint_set == ks.IBUG68


def test_files_written_before_sets_travelled_read_as_kaggle15(tmp_path):
    from facekp.core.data import dataset as data

    path = data.write_npz(_embedded().subset(np.arange(4)), tmp_path / "old.npz")
    with np.load(path) as npz:
        arrays = {k: v for k, v in npz.items() if k != "keypoint_set"}  # as files were
    np.savez(path, **arrays)
    old = read_npz(path)
    assert old.keypoint_set == ks.KAGGLE15 and old.keypoints.shape == (4, 30)


def test_the_embedded_dataset_holds_68_points_and_opens_as_kaggle15():
    """The shipped file stores the 68 iBUG points once; kaggle15 (the default) is derived from
    them, and a set asked for opens as that set."""
    from facekp.core.data import opener

    stored = read_npz(DEFAULT_DATASET)
    assert stored.keypoint_set == ks.IBUG68 and stored.keypoints.shape == (len(stored), 136)
    default = opener.load(DEFAULT_DATASET)
    assert default.keypoint_set == ks.KAGGLE15
    np.testing.assert_array_equal(default.images, stored.images)
    np.testing.assert_allclose(default.keypoints, stored.in_set(ks.KAGGLE15).keypoints)
    assert opener.load(DEFAULT_DATASET, keypoint_set=ks.IBUG68).keypoint_set == ks.IBUG68
    assert opener.load(DEFAULT_DATASET, prefer=ks.IBUG68).keypoint_set == ks.IBUG68
    hand = ks.KeypointSet("hand", ("thumb", "index"))
    assert opener.load(DEFAULT_DATASET, prefer=hand).keypoint_set == ks.KAGGLE15
    with pytest.raises(DataError, match="cannot be turned into 'hand'"):
        opener.load(DEFAULT_DATASET, keypoint_set=hand)


def test_an_npz_whose_keypoints_do_not_fit_its_set_is_refused(tmp_path):
    from facekp.core.data import dataset as data

    path = data.write_npz(_ibug68_faces(), tmp_path / "f.npz")
    with np.load(path) as npz:
        arrays = dict(npz)
    arrays["keypoint_set"] = np.array(json.dumps(ks.KAGGLE15.to_dict()))
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=r"expected 6 x 30 \(keypoint set kaggle15\)"):
        read_npz(path)


def test_faces_of_two_sets_are_not_joined():
    kaggle = _embedded().subset([0])
    with pytest.raises(DataError, match="'ibug68' to faces of 'kaggle15'"):
        kaggle.concat(_ibug68_faces(1))


def test_kaggle_csv_is_refused_for_another_set_naming_the_formats_that_fit(tmp_path):
    from facekp.core.data import kaggle_csv

    with pytest.raises(DataError, match="write .npz, or export COCO, dlib XML or .pts"):
        kaggle_csv.write_kaggle_csv(_ibug68_faces(), tmp_path / "f.csv")
    assert not (tmp_path / "f.csv").exists()


def test_shards_keep_the_keypoint_set(tmp_path):
    from facekp.core.data.shards import open_shards, write_shards

    faces = _ibug68_faces()
    faces.hidden[2, 40] = True                 # and every other field of the .npz
    faces.checked[1] = False
    faces.sources = np.array(["photo.jpg"] * len(faces))
    write_shards(faces, tmp_path / "s", 2)
    shards = open_shards(tmp_path / "s")
    assert shards.keypoint_set == ks.IBUG68
    back = shards.read()
    assert back.keypoint_set == ks.IBUG68
    np.testing.assert_array_equal(back.keypoints, faces.keypoints)
    np.testing.assert_array_equal(back.hidden, faces.hidden)
    np.testing.assert_array_equal(back.checked, faces.checked)
    assert list(back.sources) == ["photo.jpg"] * len(faces)
    assert shards.describe()["keypoints_per_face"] == 68


def test_info_names_the_set(tmp_path, capsys):
    from facekp.core.data import dataset as data

    path = data.write_npz(_ibug68_faces(), tmp_path / "f.npz")
    assert cli.main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "keypoint set: ibug68 (68 keypoints)" in out and "jaw_0" in out


# --- datasets and models of different sets ----------------------------------------------------

def _as_68(kaggle_faces):
    """The faces' kaggle15 labels written into 68-point labels: each kaggle15 point's source
    points at its place (the eye centres' six each, then the eye corners, which are two of
    those six), the rest of the 68 at the crop's centre."""
    from facekp.core.data.dataset import Dataset

    n = len(kaggle_faces)
    pts15 = kaggle_faces.keypoints.reshape(n, 15, 2)
    pts68 = np.full((n, 68, 2), 48.0, np.float32)
    for i, sources in enumerate(ks.KAGGLE15.from_68):
        pts68[:, list(sources)] = pts15[:, i:i + 1]
    return Dataset.from_arrays(kaggle_faces.images, pts68.reshape(n, 136),
                               names=kaggle_faces.names, keypoint_set=ks.IBUG68)


def test_derived_keypoints_take_the_mean_and_keep_missing_points():
    pts = np.random.default_rng(3).uniform(0, 96, (2, 68, 2))
    pts[1, 37] = np.nan  # one point of the right eye missing on the second face
    out = ks.derive_keypoints(pts.reshape(2, 136), ks.IBUG68, ks.KAGGLE15).reshape(2, 15, 2)
    np.testing.assert_allclose(out[0], K.from_68(pts[0]), rtol=1e-5)
    right_eye = K.NAMES.index("right_eye_center")
    assert np.isnan(out[1, right_eye]).all() and not np.isnan(np.delete(out[1], right_eye, 0)).any()
    assert not ks.derivable(ks.KAGGLE15, ks.IBUG68)


def test_a_kaggle15_model_scores_an_ibug68_dataset_through_the_derivation():
    from facekp.core.model.predict import Predictor
    from facekp.core.quality.evaluate import evaluate
    from facekp.core.resources import default_model

    test = _embedded().split("test")
    test = test.subset(np.flatnonzero(test.present.all(axis=1))[:24])
    faces68 = _as_68(test)
    by_hand = test.subset(np.arange(24))  # the same faces, labels mapped by keypoints.from_68
    by_hand.keypoints = K.as_columns(K.from_68(faces68.keypoints.reshape(24, 68, 2))).astype(
        np.float32)
    predictor = Predictor(default_model(), confidence=None)
    direct, derived = evaluate(predictor, by_hand), evaluate(predictor, faces68)
    assert derived["rmse_px"] == pytest.approx(direct["rmse_px"], rel=1e-6)
    assert derived["per_keypoint"] == pytest.approx(direct["per_keypoint"], rel=1e-6)
    assert derived["rmse_px"] < 3  # the model's real error on these faces, not noise


def test_a_custom_set_dataset_and_a_kaggle15_model_are_refused_naming_both():
    from facekp.core.data.dataset import Dataset
    from facekp.core.model.predict import Predictor
    from facekp.core.quality.evaluate import evaluate
    from facekp.core.resources import default_model

    hand = ks.KeypointSet("hand", ("thumb", "index", "palm", "wrist"))
    faces = _embedded().subset(np.arange(3))
    custom = Dataset.from_arrays(faces.images, np.full((3, 8), 40.0), keypoint_set=hand)
    with pytest.raises(DataError) as err:
        evaluate(Predictor(default_model(), confidence=None), custom)
    assert "'hand' (4 points)" in str(err.value) and "'kaggle15' (15 points)" in str(err.value)


def test_a_model_trained_on_another_set_predicts_it_and_says_so(tmp_path):
    """Training sizes the model from the faces' set (68 heatmaps, 136 outputs), flips by its
    pairs, records it; the Predictor reads it back; kaggle15 faces are refused naming both."""
    from facekp.core.model.predict import Predictor
    from facekp.core.model.train import Trainer
    from facekp.core.model.train_types import TrainConfig
    from facekp.core.quality.evaluate import evaluate

    faces = _ibug68_faces(16)
    result = Trainer(TrainConfig.for_arch("heatmap", epochs=1, batch_size=8), faces, faces,
                     tmp_path / "m.keras", fit_confidence=False).run()
    assert result.reason == "completed", result.message
    predictor = Predictor(tmp_path / "m.keras")
    assert predictor.keypoint_set == ks.IBUG68
    assert predictor.model.get_layer("heatmaps").output.shape[-1] == 68
    assert predictor.predict(faces.images[:3]).shape == (3, 136)
    scored = evaluate(predictor, faces)
    assert scored["keypoint_set"] == "ibug68" and len(scored["per_keypoint"]) == 68
    assert scored["nme_by"] == ["left_eye_3", "right_eye_0"] and scored["nme"] > 0
    with pytest.raises(DataError, match="'kaggle15' .15 points. and the model predicts 'ibug68'"):
        evaluate(predictor, _embedded().subset(np.arange(4)))
    # going on training it on faces of another set is one line naming both
    again = Trainer(TrainConfig.for_arch("heatmap", epochs=1, batch_size=8),
                    _embedded().subset(np.arange(8)), _embedded().subset(np.arange(8)),
                    tmp_path / "k.keras", fine_tune=tmp_path / "m.keras").run()
    assert again.reason == "error" and "'ibug68' (68 points)" in again.message \
        and "'kaggle15' (15 points)" in again.message


def test_the_app_opens_a_dataset_of_any_set(tmp_path):
    """The app follows the dataset's set: an ibug68 dataset is read for the window as it is
    (the window itself: tests/test_gui_sets.py)."""
    from facekp.core.data import dataset as data
    from facekp.gui.recovery import load_with_recovery

    path = data.write_npz(_ibug68_faces(), tmp_path / "f.npz")
    opened = load_with_recovery(path)[0]
    assert opened.keypoint_set == ks.IBUG68 and opened.keypoints.shape == (6, 136)
    kaggle = data.write_npz(_embedded().subset([0, 1]), tmp_path / "k.npz")
    assert len(load_with_recovery(kaggle)[0]) == 2


def test_a_trained_model_records_its_set_and_a_predictor_reads_it(one_epoch_model,
                                                                   real_subset_npz, tmp_path):
    """The set travels in the model's training record; a model of another set (its record
    says ibug68) is refused on kaggle15 faces with one line naming both."""
    from facekp.core.model.checkpoints import read_record, write_model
    from facekp.core.model.predict import Predictor, load_model
    from facekp.core.quality.evaluate import evaluate

    npz = real_subset_npz("sets", 64, 16, test=8)
    path = one_epoch_model(npz, "sets", 32)
    assert read_record(path)["keypoint_set"] == ks.KAGGLE15.to_dict()
    assert Predictor(path, confidence=None).keypoint_set == ks.KAGGLE15
    other = tmp_path / "other.keras"
    write_model(load_model(path), other, dict(read_record(path),
                                              keypoint_set=ks.IBUG68.to_dict()))
    with pytest.raises(DataError, match="gives 30 values per face and its keypoint set "
                                        "'ibug68' has 68 points"):
        Predictor(other, confidence=None)  # a record that does not fit the model's outputs


# --- hidden points and a set that changes ----------------------------------------------------

def test_a_hidden_point_travels_through_the_npz_subsets_and_the_derivation(tmp_path):
    """A labelled point marked hidden (occluded) stays hidden on disk, in a subset, joined to
    other faces, and in the points derived from it; a missing point is never hidden."""
    from facekp.core.data import dataset as data

    faces = _ibug68_faces(3)
    faces.hidden[1, 42] = True          # the subject's left eye, one of its six points
    faces.hidden[0, 5] = True           # point 5 is missing on face 0: not hidden
    back = read_npz(data.write_npz(faces, tmp_path / "h.npz"))
    assert back.hidden[1, 42] and not back.hidden[0, 5] and back.hidden.sum() == 1
    assert back.subset([1]).hidden[0, 42] and back.concat(back).hidden.sum() == 2
    k15 = back.in_set(ks.KAGGLE15)
    hidden = {ks.KAGGLE15.names[i] for i in np.flatnonzero(k15.hidden[1])}
    assert hidden == {"left_eye_center", "left_eye_inner_corner"}  # 42: centre and corner


def test_a_set_that_gains_and_renames_points_migrates_its_dataset(tmp_path):
    from facekp.core.data.dataset import Dataset

    hand = ks.KeypointSet("hand", ("thumb", "index", "palm"))
    faces = _embedded().subset(np.arange(2))
    d = Dataset.from_arrays(faces.images, np.array([[1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12]],
                                                   np.float32), keypoint_set=hand)
    d.hidden[0, 2] = True
    v2 = ks.KeypointSet("hand", ("thumb", "pointer", "palm", "wrist"))
    moved = d.migrate(v2, {"index": "pointer"})
    assert moved.keypoint_set == v2
    np.testing.assert_array_equal(moved.keypoints[0, :6], [1, 2, 3, 4, 5, 6])
    assert np.isnan(moved.keypoints[:, 6:]).all()          # the new point starts missing
    assert moved.hidden[0, 2] and moved.hidden.sum() == 1
    with pytest.raises(DataError, match="no keypoint 'index'.*--rename OLD:NEW.*--drop"):
        d.migrate(v2)
    dropped = d.migrate(v2, drop=True)
    assert np.isnan(dropped.keypoints[:, 2:4]).all()
    assert cli.main(["keypoints", "init", "hand", "--names", "thumb,pointer,palm,wrist",
                     "--out", str(tmp_path / "v2.json")]) == 0
    from facekp.core.data import dataset as data
    data.write_npz(d, tmp_path / "d.npz")
    assert cli.main(["keypoints", "migrate", str(tmp_path / "d.npz"), "--to",
                     str(tmp_path / "v2.json"), "--rename", "index:pointer",
                     "--out", str(tmp_path / "d2.npz")]) == 0
    again = read_npz(tmp_path / "d2.npz")
    assert again.keypoint_set.names == v2.names
    np.testing.assert_array_equal(again.keypoints, moved.keypoints)


def test_a_hidden_point_round_trips_through_coco_as_visibility_1(tmp_path, capsys):
    """COCO keeps a hidden (occluded) point as visibility 1 and reads it back hidden; dlib
    XML, which has no place for it, writes it as a labelled point and says so."""
    from pycocotools.coco import COCO

    from facekp.core.data import dataset as data
    from facekp.core.data.formats import images_folder

    faces = _ibug68_faces(3)
    faces.hidden[1, 42] = faces.hidden[2, 0] = True
    path = data.write_npz(faces, tmp_path / "h.npz")
    coco = tmp_path / "h.json"
    assert cli.main(["export", str(path), "--format", "coco", "--out", str(coco)]) == 0
    ann = COCO(str(coco)).loadAnns([2])[0]
    assert ann["keypoints"][3 * 42 + 2] == 1 and ann["keypoints"][3 * 43 + 2] == 2
    assert cli.main(["import", "--labels", str(coco), "--images", str(images_folder(coco)),
                     "--out", str(tmp_path / "back.npz")]) == 0
    back = read_npz(tmp_path / "back.npz")
    np.testing.assert_array_equal(back.hidden, faces.hidden)
    capsys.readouterr()
    assert cli.main(["export", str(path), "--format", "dlib", "--out",
                     str(tmp_path / "d.xml")]) == 0
    assert "note: 2 points marked hidden are written as labelled ones" in \
        capsys.readouterr().out


def test_evaluate_the_shipped_68_point_model_by_name_and_refuse_a_custom_one(tmp_path,
                                                                             capsys):
    """``facekp evaluate --model ibug68 --json`` scores the shipped 68-point model on the
    embedded test people (opened in its set) with NME by the outer eye corners; a model of a
    person's own set on kaggle15 faces is one line naming both sets."""
    import keras

    from cli_run import assert_one_line_error, run
    from facekp.core.model.checkpoints import write_model

    code, out, err = run(capsys, "evaluate", "--model", "ibug68", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["keypoint_set"] == "ibug68" and result["faces"] == 389
    assert result["nme_by"] == ["left_eye_3", "right_eye_0"]
    assert 0.02 < result["nme"] < 0.06 and result["rmse_px"] < 2.5   # a trained model
    assert len(result["per_keypoint"]) == 68 and result["confidence"]["auroc"] > 0.6

    hand = ks.KeypointSet("hand", ("thumb", "index", "palm", "wrist"))
    inputs = keras.Input((96, 96, 1))
    model = keras.Model(inputs, keras.layers.Dense(8)(keras.layers.Flatten()(inputs)))
    path = tmp_path / "hand.keras"
    write_model(model, path, {"arch": "test", "keypoint_set": hand.to_dict()})
    code, out, err = run(capsys, "evaluate", "--model", path)
    assert_one_line_error(code, err, "'kaggle15' (15 points)", "'hand' (4 points)")
