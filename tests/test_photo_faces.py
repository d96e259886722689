"""A photo's faces into a dataset: crops by the photo path's framing, a model's points as
unchecked labels, the photo's name kept; the flags survive .npz, subsets and concatenation."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from facekp.core.data import dataset as data
from facekp.core.faces.framing import Crop, crop_image, to_gray
from facekp.core.photos.photo_faces import add_faces, photo_dataset

ROOT = Path(__file__).resolve().parent.parent


def test_checked_and_sources_survive_npz_subset_concat_and_split(faces, tmp_path):
    ds = faces.subset(np.arange(6))
    assert ds.checked.all() and (ds.sources == "").all()
    ds = data.Dataset.from_arrays(ds.images, ds.keypoints, checked=[1, 0, 1, 0, 0, 1],
                                  sources=["a.jpg", "", "b.jpg", "", "", "c.jpg"])
    back = data.read_npz(data.write_npz(ds, tmp_path / "f.npz"))
    assert back.checked.tolist() == [True, False, True, False, False, True]
    assert back.sources.tolist() == ["a.jpg", "", "b.jpg", "", "", "c.jpg"]
    assert back.unchecked.tolist() == [1, 3, 4]
    assert back.subset([1, 2]).checked.tolist() == [False, True]
    both = back.concat(back.subset([0]))
    assert both.checked.tolist()[-1] and both.sources[-1] == "a.jpg"
    assert data.split_by_person(back).checked.tolist() == back.checked.tolist()
    # older files without the arrays read as checked, without a source
    np.savez(tmp_path / "old.npz", images=ds.images, keypoints=ds.keypoints)
    old = data.read_npz(tmp_path / "old.npz")
    assert old.checked.all() and (old.sources == "").all()


def test_a_bad_checked_array_is_a_clear_error(faces, tmp_path):
    ds = faces.subset(np.arange(3))
    np.savez(tmp_path / "bad.npz", images=ds.images, keypoints=ds.keypoints,
             checked=np.array([1.5, 0, 1]))
    with pytest.raises(data.DataError, match="checked holds float64"):
        data.read_npz(tmp_path / "bad.npz")


def test_photo_dataset_crops_by_the_given_crop_and_maps_points_into_it():
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    crop = Crop(50, 30, 192)
    in_crop = rng.uniform(5, 90, (15, 2))
    in_crop[14] = (50, 120)                     # the bottom lip below the crop
    ds = photo_dataset(photo, [(crop, crop.to_photo(in_crop))], "/photos/party.jpg")
    assert len(ds) == 1 and ds.names[0] == "party.jpg#1"
    assert ds.sources[0] == "/photos/party.jpg" and not ds.checked[0]
    np.testing.assert_array_equal(ds.images[0], crop_image(to_gray(photo), crop))
    kp = ds.keypoints[0].reshape(15, 2)
    np.testing.assert_allclose(kp[:14], in_crop[:14], atol=1e-4)
    assert np.isnan(kp[14]).all()


def test_added_faces_train_when_the_dataset_has_splits(faces):
    base = faces.subset(np.arange(4))
    new = photo_dataset(np.zeros((200, 200), np.uint8), [(Crop(0, 0, 96),
                                                         np.full((15, 2), 40.0))], "p.png")
    both = add_faces(base, new)
    assert len(both) == 5 and both.splits[-1] == "train" and not both.checked[-1]
    assert add_faces(None, new) is new
    plain = data.Dataset.from_arrays(base.images, base.keypoints)
    assert add_faces(plain, new).splits[-1] == ""


def test_cli_import_predict_adds_a_photos_faces_to_a_dataset(faces, shared_data, tmp_path):
    base = tmp_path / "base.npz"
    data.write_npz(faces.subset(np.arange(5)), base)
    photo = shared_data / "photos" / "Tom_Cruise_avp_2014_4.jpg"
    out = tmp_path / "more.npz"
    run = subprocess.run([sys.executable, "-m", "facekp.core.cli.main", "import", "--predict", str(photo),
                          "--add-to", str(base), "--out", str(out), "--detector", "haar"],
                         cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "1 predicted faces (not yet checked) after the 5 of" in run.stdout
    ds = data.read_npz(out)
    assert len(ds) == 6 and ds.checked.tolist() == [True] * 5 + [False]
    assert ds.sources[-1] == str(photo) and ds.names[-1] == f"{photo.name}#1"
    kp = ds.keypoints[-1].reshape(15, 2)
    assert np.isfinite(kp).sum() >= 13
    # a face framed like the training faces: eyes about where the dataset has them
    assert abs(np.nanmean(kp[:2, 1]) - np.nanmean(faces.keypoints[:, [1, 3]])) < 8
    # the output may not be an input; the detector is needed
    again = subprocess.run([sys.executable, "-m", "facekp.core.cli.main", "import", "--predict",
                            str(photo), "--add-to", str(base), "--out", str(base)],
                           cwd=ROOT, capture_output=True, text=True)
    assert again.returncode == 2 and "--add-to" in again.stderr


def test_model_info_reads_records_and_the_shipped_description(tmp_path):
    from facekp.core.quality.model_info import describe_model, known_models
    from facekp.core.resources import DEFAULT_MODEL

    shipped = describe_model(DEFAULT_MODEL, "shipped")
    doc = __import__("json").loads(DEFAULT_MODEL.with_suffix(".json").read_text())
    assert shipped.arch == doc["arch"]
    # the training's own figure, as every trained model's record has it (the app names it so)
    assert shipped.val_rmse_px == doc["training"]["best_val_rmse_px"]
    assert shipped.date == doc["date"]
    # a model file with its record inside (as facekp.core.model.train writes it)
    import zipfile

    trained = tmp_path / "m.keras"
    with zipfile.ZipFile(trained, "w") as z:
        z.writestr("facekp.train.json", '{"arch": "seed", "best_val_rmse_px": 2.5, '
                                        '"fine_tuned_from": "a.keras"}')
    info = describe_model(trained)
    assert (info.arch, info.val_rmse_px, info.fine_tuned_from) == ("seed", 2.5, "a.keras")
    assert info.date                                # the file's own date
    listed = known_models([DEFAULT_MODEL], tmp_path, [trained, tmp_path / "gone.keras"])
    assert [(i.name, i.origin) for i in listed] == [("default.keras", "shipped"),
                                                    ("m.keras", "trained")]


def test_cli_train_fine_tune_and_resume_exclude_each_other(tmp_path):
    from facekp.core.resources import DEFAULT_MODEL

    run = subprocess.run([sys.executable, "-m", "facekp.core.cli.main", "train", "--fine-tune",
                          str(DEFAULT_MODEL), "--resume", str(DEFAULT_MODEL), "--out",
                          str(tmp_path / "x.keras")], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 2 and "not both" in run.stderr


# --- labelling from zero: the faces of photos in any keypoint set ---------------------------

from facekp.core.data import keypoint_sets as ks  # noqa: E402
from facekp.core.errors import DataError  # noqa: E402
from facekp.core.faces.detect import Detection  # noqa: E402
from facekp.core.faces.framing import Box, crop_for_landmarks, load_photo  # noqa: E402
from facekp.core.photos.photo_faces import find_photo_faces  # noqa: E402
from cli_run import assert_one_line_error, run as cli  # noqa: E402

PHOTOS = ("Tom_Cruise_avp_2014_4.jpg", "bald_guys.jpg")


@pytest.fixture(scope="module")
def two_photos(tmp_path_factory, shared_data) -> Path:
    """A folder with two real photos (one face; a group) and a 3-point set of one's own."""
    folder = tmp_path_factory.mktemp("new")
    (folder / "photos").mkdir()
    for name in PHOTOS:
        (folder / "photos" / name).write_bytes((shared_data / "photos" / name).read_bytes())
    from facekp.core.cli import main as facekp

    assert facekp.main(["keypoints", "init", "face3", "--names", "leye,reye,chin", "--flip",
                        "leye:reye", "--out", str(folder / "face3.json")]) == 0
    return folder


def test_new_gives_every_face_found_with_all_points_missing(capsys, two_photos):
    """`facekp new --keypoints SET.json --images DIR`: each face the detector finds, framed by
    the photo path's crop rule, named after its photo, unchecked, every point missing, the set
    stored; `facekp import --predict PHOTO... --keypoints SET` is the same."""
    out = two_photos / "new.npz"
    code, stdout, err = cli(capsys, "new", "--keypoints", two_photos / "face3.json",
                            "--images", two_photos / "photos", "--out", out)
    assert code == 0, err
    assert "all 3 points of face3 missing" in stdout
    ds = data.read_npz(out)
    assert ds.keypoint_set == ks.load_set(two_photos / "face3.json")
    tom, group = (str(two_photos / "photos" / n) for n in PHOTOS)
    assert list(ds.sources).count(tom) == 1 and list(ds.sources).count(group) >= 5
    assert ds.keypoints.shape == (len(ds), 6) and np.isnan(ds.keypoints).all()
    assert not ds.checked.any()
    first = list(ds.sources).index(tom)
    assert ds.names[first] == f"{PHOTOS[0]}#1"
    assert sorted(ds.names[ds.sources == group]) == sorted(
        f"{PHOTOS[1]}#{i + 1}" for i in range((ds.sources == group).sum()))
    # the crop is the one the photo path frames from MTCNN's five points
    from facekp.core.faces.detect import make_detector

    image = load_photo(tom)
    (face,) = make_detector("mtcnn").detect(image)
    np.testing.assert_array_equal(ds.images[first],
                                  crop_image(to_gray(image), crop_for_landmarks(face.points)))
    # the same code under `import --predict`
    again = two_photos / "again.npz"
    code, _, err = cli(capsys, "import", "--predict", group, "--keypoints",
                       two_photos / "face3.json", "--out", again)
    assert code == 0, err
    got = data.read_npz(again)
    np.testing.assert_array_equal(got.images, ds.images[ds.sources == group])
    assert list(got.names) == list(ds.names[ds.sources == group])
    assert got.keypoint_set == ds.keypoint_set and np.isnan(got.keypoints).all()


def test_new_refuses_bad_inputs_with_one_line(capsys, two_photos, tmp_path):
    from facekp.core.resources import DEFAULT_MODEL

    out = tmp_path / "mine.npz"
    out.write_bytes(b"mine")
    photos = two_photos / "photos"
    code, _, err = cli(capsys, "new", "--keypoints", "ibug68", "--images", photos, "--out", out)
    assert_one_line_error(code, err, out, "already exists", "--overwrite")
    assert out.read_bytes() == b"mine"
    new = tmp_path / "new.npz"
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = cli(capsys, "new", "--keypoints", "ibug68", "--images", empty, "--out", new)
    assert_one_line_error(code, err, empty, "no photos in this folder")
    code, _, err = cli(capsys, "new", "--keypoints", "ibug69", "--images", photos, "--out", new)
    assert_one_line_error(code, err, "unknown keypoint set 'ibug69'", "kaggle15", "ibug68")
    code, _, err = cli(capsys, "new", "--keypoints", "ibug68", "--images", photos,
                       "--model", DEFAULT_MODEL, "--out", new)
    assert_one_line_error(code, err, "'kaggle15' (15 points)", "'ibug68' (68 points)")
    assert not new.exists()


class Ibug68Model:
    """Stands in for a Predictor of an ibug68 model: it puts a face's 68 points where
    ``points`` (96x96 crop pixels) say, in photo pixels."""
    keypoint_set = ks.IBUG68
    min_confidence = 0.5

    def __init__(self, points):
        self.points = points

    def predict_detections(self, gray, found):
        from types import SimpleNamespace

        crops = [crop_for_landmarks(d.points) for d in found]
        return [SimpleNamespace(crop=c, keypoints=c.to_photo(self.points)) for c in crops]


class TwoFaces:
    """A detector that finds the same two faces in any photo, one of them unsure."""
    name = "two"

    def detect(self, image):
        five = np.array([[120, 130], [170, 130], [145, 160], [125, 185], [165, 185]], float)
        return [Detection(Box(100, 100, 190, 210), 0.99, five),
                Detection(Box(300, 100, 390, 210), 0.3, five + [200, 0])]


def test_find_photo_faces_labels_with_a_model_of_the_set_and_refuses_another(shared_data):
    photo = shared_data / "photos" / PHOTOS[0]
    rng = np.random.default_rng(1)
    points = rng.uniform(5, 90, (68, 2))
    points[0] = (-20, 40)                                    # left of the crop: missing
    ds, lines = find_photo_faces([photo], ks.IBUG68, detector=TwoFaces(),
                                 predictor=Ibug68Model(points))
    assert lines == [f"{photo}: 1 face found"]              # the unsure face is left out
    assert len(ds) == 1 and ds.keypoint_set == ks.IBUG68 and not ds.checked.any()
    kp = ds.keypoints[0].reshape(68, 2)
    assert np.isnan(kp[0]).all()
    np.testing.assert_allclose(kp[1:], points[1:], atol=1e-4)
    # with no model every point is missing, and both faces are kept
    bare, lines = find_photo_faces([photo], ks.IBUG68, detector=TwoFaces())
    assert len(bare) == 2 and np.isnan(bare.keypoints).all() and lines[0].endswith("2 faces found")
    np.testing.assert_array_equal(bare.images[0], ds.images[0])
    with pytest.raises(DataError, match="predicts keypoint set 'ibug68' .68 points., not "
                                        "'kaggle15' .15 points."):
        find_photo_faces([photo], ks.KAGGLE15, detector=TwoFaces(),
                         predictor=Ibug68Model(points))
