"""Issue 20, part 4: odd inputs that were stored silently wrong or ended in a traceback. Each
case either works as README says or is one clear line naming the file or option and what was
expected, with exit status 2."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facekp.core.cli import main as cli
from facekp.core.data import dataset as data
from facekp.core.data import formats, opener
from facekp.core.data.keypoints import NAMES
from cli_run import assert_one_line_error, run


@pytest.fixture
def two_crops(faces, tmp_path) -> tuple[data.Dataset, Path]:
    """Two real faces saved as 96x96 crops a.png, b.png in tmp_path."""
    ds = faces.subset(np.flatnonzero(faces.present.all(1))[:2])
    for image, name in zip(ds.images, ("a.png", "b.png")):
        Image.fromarray(image).save(tmp_path / name)
    return ds, tmp_path


# --- part 6: import moves no label unless asked ------------------------------------------------

def test_recentre_is_opt_in_and_no_recentre_still_accepted():
    parser = cli.build_parser()
    base = ["import", "--images", "x", "--out", "y.npz"]
    assert parser.parse_args(base).recentre is False
    assert parser.parse_args(base + ["--recentre"]).recentre is True
    assert parser.parse_args(base + ["--no-recentre"]).recentre is False  # the default, said
    # the other switches of that kind keep their defaults
    assert parser.parse_args(["train", "--out", "m.keras"]).confidence_head is True


# --- labels of 96x96 crops: outside the crop is missing, never stored as it is ----------------

#: JSON number literals for the first keypoint's x: below the crop, too large for float32, too
#: large for a float (JSON's 1e999 reads as infinity), 500 digits, an integer of 401 digits.
ODD_NUMBERS = {"below the crop": "-5", "1e308": "1e308", "1e999": "1e999",
               "500 digits": "9" * 500, "10**400": "1" + "0" * 400}


@pytest.mark.parametrize("literal", ODD_NUMBERS.values(), ids=ODD_NUMBERS.keys())
def test_coco_points_outside_the_crop_are_missing(capsys, two_crops, literal):
    ds, folder = two_crops
    doc = formats.coco_document(ds, ["a.png", "b.png"])
    doc["annotations"][0]["keypoints"][0] = 12345.5
    labels = folder / "odd.json"
    labels.write_text(json.dumps(doc).replace("12345.5", literal))
    code, out, err = run(capsys, "import", "--labels", labels, "--images", folder,
                         "--out", folder / "o.npz")
    assert code == 0 and "Traceback" not in err, err
    assert "keypoints outside the crop (set missing): 1 in 1 faces" in out
    back = opener.load(folder / "o.npz")
    assert np.isfinite(back.keypoints[~np.isnan(back.keypoints)]).all()
    assert np.isnan(back.keypoints[0, :2]).all()  # the point, x and y, is missing
    np.testing.assert_array_equal(back.keypoints[0, 2:], ds.keypoints[0, 2:])
    np.testing.assert_array_equal(back.keypoints[1], ds.keypoints[1])
    code, out, err = run(capsys, "info", folder / "o.npz")  # a dataset info reads
    assert code == 0, err


@pytest.mark.parametrize("value", ["-5", "1e308", "1e999", "9" * 500, "97"])
def test_dlib_points_outside_the_crop_are_missing(capsys, two_crops, value):
    ds, folder = two_crops
    (folder / "odd.xml").write_text(
        "<dataset><images><image file='a.png'><box top='0' left='0' width='96' height='96'>"
        f"<part name='nose_tip' x='{value}' y='60'/><part name='left_eye_center' x='60' y='30'/>"
        "</box></image></images></dataset>")
    code, out, err = run(capsys, "import", "--labels", folder / "odd.xml", "--images", folder,
                         "--out", folder / "o.npz")
    assert code == 0 and "Traceback" not in err, err
    assert "keypoints outside the crop (set missing): 1 in 1 faces" in out
    pts = opener.load(folder / "o.npz").keypoints[0].reshape(15, 2)
    assert np.isnan(pts[NAMES.index("nose_tip")]).all()
    np.testing.assert_array_equal(pts[NAMES.index("left_eye_center")], [60, 30])
    code, _, err = run(capsys, "export", folder / "o.npz", "--format", "coco",
                       "--out", folder / "again.json")
    assert code == 0, err


@pytest.mark.parametrize("change, says", [
    (lambda kp: kp + [10.0, 20.0, 2], "got 48 numbers"),     # 16 triples for 15 keypoints
    (lambda kp: kp[:-3], "got 42 numbers"),                  # 14
    (lambda kp: kp[:4] + ["x"] + kp[5:], "got 'x', not a number"),
    (lambda kp: kp[:4] + [True] + kp[5:], "got True, not a number"),
])
def test_a_coco_keypoint_list_of_the_wrong_length_is_one_line(capsys, two_crops, change, says):
    ds, folder = two_crops
    doc = formats.coco_document(ds, ["a.png", "b.png"])
    doc["annotations"][1]["keypoints"] = change(doc["annotations"][1]["keypoints"])
    labels = folder / "odd.json"
    labels.write_text(json.dumps(doc))
    code, _, err = run(capsys, "import", "--labels", labels, "--images", folder,
                       "--out", folder / "o.npz")
    assert_one_line_error(code, err, labels, "annotation 2", "45 numbers", says)
    assert not (folder / "o.npz").exists()


def test_a_dlib_box_mixing_numbered_and_named_parts_says_so(capsys, two_crops):
    _, folder = two_crops
    (folder / "mixed.xml").write_text(
        "<dataset><images><image file='a.png'><box top='0' left='0' width='96' height='96'>"
        "<part name='00' x='40' y='50'/><part name='nose_tip' x='40' y='50'/>"
        "</box></image></images></dataset>")
    code, _, err = run(capsys, "import", "--labels", folder / "mixed.xml", "--images", folder,
                       "--out", folder / "o.npz")
    assert_one_line_error(code, err, "mixed.xml", "'00'", "'nose_tip'", "one kind")
    assert "expected 00-67" not in err and "or 00-67" not in err


# --- photos: a float photo with an infinite pixel; the photo size limit's variable ----------

def test_a_float_photo_with_an_infinite_pixel_keeps_its_picture(faces, tmp_path):
    from facekp.core.faces.framing import load_photo, to_gray

    face = faces.images[0]
    pixels = face.astype(np.float32) / 255
    pixels[0, 0], pixels[0, 1], pixels[0, 2] = np.inf, -np.inf, np.nan
    path = tmp_path / "inf.tif"
    Image.fromarray(pixels).save(path)
    gray = to_gray(load_photo(path)).astype(int)
    assert gray[0, :3].tolist() == [255, 0, 0]  # +inf white, -inf and NaN black
    assert np.abs(gray - face)[1:].max() <= 1  # the rest scaled from the finite pixels


def test_a_face_is_found_in_a_float_photo_with_an_infinite_pixel(tmp_path, shared_data):
    from facekp.core.faces.framing import find_faces, load_photo, to_gray

    photo = to_gray(load_photo(shared_data / "photos" / "Tom_Cruise_avp_2014_4.jpg"))
    pixels = photo.astype(np.float32) / 255
    pixels[0, 0] = np.inf
    path = tmp_path / "tom.tif"
    Image.fromarray(pixels).save(path)
    assert len(find_faces(photo)) == 1
    assert len(find_faces(to_gray(load_photo(path)))) == 1


@pytest.mark.parametrize("value", ["abc", "0", "-1", "nan", "inf", ""])
def test_a_bad_photo_size_limit_is_one_line_naming_the_variable(capsys, monkeypatch, tmp_path,
                                                                 shared_data, value):
    src = shared_data / "ytf68"
    labels = tmp_path / "labels.csv"
    labels.write_text("".join((src / "test_frames_keypoints.csv").read_text()
                              .splitlines(keepends=True)[:3]))
    monkeypatch.setenv("FACEKP_MAX_PHOTO_MEGAPIXELS", value)
    code, _, err = run(capsys, "import", "--labels", labels, "--images", src / "test",
                       "--detector", "none", "--out", tmp_path / "o.npz")
    assert_one_line_error(code, err, f"FACEKP_MAX_PHOTO_MEGAPIXELS={value}:",
                          "expected a positive number of megapixels")
    assert not (tmp_path / "o.npz").exists()


def test_the_photo_size_advice_is_a_limit_that_opens_the_photo(monkeypatch, shared_data):
    from facekp.core.errors import DataError
    from facekp.core.faces.framing import load_photo

    photo = shared_data / "photos" / "bald_guys.jpg"  # 1986 x 1545 = 3.07 megapixels
    monkeypatch.setenv("FACEKP_MAX_PHOTO_MEGAPIXELS", "0.5")
    with pytest.raises(DataError) as info:
        load_photo(photo)
    advice = str(info.value).split("FACEKP_MAX_PHOTO_MEGAPIXELS=")[1].split()[0]
    assert advice == "3.1"
    monkeypatch.setenv("FACEKP_MAX_PHOTO_MEGAPIXELS", advice)
    assert load_photo(photo).size == (1986, 1545)


# --- a model that predicts NaN: the warning counts every null it causes ---------------------

def test_compare_with_a_nan_model_counts_every_null(capsys, faces, constant_model,
                                                    real_subset_npz, tmp_path):
    import math

    npz = real_subset_npz("nan_compare", 8, 4, 40)
    good, bad = tmp_path / "good.keras", tmp_path / "nan.keras"
    constant_model(np.nanmean(faces.keypoints, axis=0)).save(good)
    constant_model([math.nan] * 30).save(bad)
    code, out, err = run(capsys, "compare", good, bad, "--data", npz, "--json")
    assert code == 0, err
    result = json.loads(out)

    def nulls(value) -> int:
        if isinstance(value, dict):
            return sum(map(nulls, value.values()))
        return int(value is None)

    # B's overall RMSE and ratio, and B's RMSE and ratio for each of the 15 keypoints
    assert nulls(result) == 2 + 2 * 15
    assert result["rmse_px"]["a"] is not None
    assert all(row["a"] is not None for row in result["per_keypoint"].values())
    (line,) = [l for l in err.splitlines() if "non-finite" in l]
    assert "32 values are null" in line
    code, out, err = run(capsys, "evaluate", "--model", bad, "--data", npz, "--json")
    assert code == 0 and "17 values are null" in err  # the RMSE, the NME and the 15 keypoints


# --- symbolic link loops: named in one line, never a traceback -------------------------------

@pytest.fixture
def loop(tmp_path) -> Path:
    """tmp_path/loop -> tmp_path/round -> tmp_path/loop."""
    (tmp_path / "loop").symlink_to(tmp_path / "round")
    (tmp_path / "round").symlink_to(tmp_path / "loop")
    return tmp_path / "loop"


@pytest.mark.parametrize("command", [
    ["export", "--format", "coco", "--out"], ["export", "--format", "pts", "--out"],
    ["export", "--format", "csv", "--out"], ["convert", "--out"],
    ["convert", "--shards", "2", "--out"]])
def test_a_link_loop_as_out_is_one_line(capsys, faces, tmp_path, loop, command):
    source = tmp_path / "small.npz"
    data.write_npz(faces.subset(np.arange(4)), source)
    code, _, err = run(capsys, command[0], source, *command[1:], loop)
    assert_one_line_error(code, err, loop, "symbolic link loop")
    assert loop.is_symlink() and sorted(p.name for p in tmp_path.iterdir()) == [
        "loop", "round", "small.npz"]


def test_a_link_loop_as_a_dataset_is_one_line(capsys, tmp_path, loop):
    code, _, err = run(capsys, "convert", loop, "--out", tmp_path / "o.npz")
    assert_one_line_error(code, err, loop, "symbolic link", "loop")


def test_predict_with_link_loops_names_them(capsys, tmp_path, loop, shared_data):
    folder = tmp_path / "photos" / "deeper"
    folder.mkdir(parents=True)
    (folder / "face.jpg").symlink_to(folder / "face.jpg")  # a photo name that loops
    code, _, err = run(capsys, "predict", tmp_path / "photos", "--recursive", "--jsonl", loop)
    assert_one_line_error(code, err, loop, "symbolic link loop")
    out = tmp_path / "o.jsonl"
    code, _, err = run(capsys, "predict", tmp_path / "photos", "--recursive", "--jsonl", out)
    assert code == 2 and "Traceback" not in err, err  # its record says why; exit 2 at the end
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert record["faces"] == [] and "symbolic link" in record["error"]


# --- predict --jsonl: a missing folder, a folder; --shard with a dash -----------------------

@pytest.mark.parametrize("source", ["photos", "video"])
def test_jsonl_in_a_missing_folder_is_refused_and_no_folder_is_made(capsys, tmp_path,
                                                                      shared_data, source):
    given = (shared_data / "photos") if source == "photos" else tmp_path / "clip.mp4"
    out = tmp_path / "nonexistent" / "dir" / "o.jsonl"
    code, _, err = run(capsys, "predict", given, "--jsonl", out)
    assert_one_line_error(code, err, "--jsonl", f"the folder {out.parent} does not exist")
    assert not (tmp_path / "nonexistent").exists()
    if source == "video":  # --draw alike
        code, _, err = run(capsys, "predict", given, "--draw", tmp_path / "nope" / "o.mp4")
        assert_one_line_error(code, err, "--draw", "does not exist")
        assert not (tmp_path / "nope").exists()


def test_jsonl_naming_a_folder_says_so(capsys, tmp_path, shared_data):
    code, _, err = run(capsys, "predict", shared_data / "photos", "--jsonl", tmp_path)
    assert_one_line_error(code, err, str(tmp_path), "is a folder", "--jsonl names a file")
    assert "--resume" not in err


@pytest.mark.parametrize("shard", ["-1/2", "-1/-2", "2/2", "1/-2"])
def test_a_bad_shard_with_a_dash_is_the_shard_error(capsys, tmp_path, shared_data, shard):
    code, _, err = run(capsys, "predict", shared_data / "photos", "--jsonl",
                       tmp_path / "o.jsonl", "--shard", shard)
    assert_one_line_error(code, err, f"--shard {shard}", "expected I/N with 0 <= I < N")
    assert "expected one argument" not in err


# --- the app: a bad --data, --photo or --image with --screenshot ----------------------------

@pytest.mark.parametrize("option", ["--data", "--photo", "--image"])
def test_screenshot_with_a_bad_option_exits_2_and_writes_nothing(faces, tmp_path, option):
    import os
    import subprocess
    import sys

    small = tmp_path / "small.npz"
    data.write_npz(faces.subset(np.arange(5)), small)
    bad = {"--data": ["--data", tmp_path / "bad.npz"],
           "--photo": ["--data", small, "--photo", tmp_path / "bad.jpg"],
           "--image": ["--data", small, "--image", "7"]}[option]
    (tmp_path / "bad.npz").write_text("not a dataset")
    (tmp_path / "bad.jpg").write_text("not a photo")
    shot = tmp_path / "shot.png"
    env = dict(os.environ, FACEKP_GUI_SETTINGS=str(tmp_path / "s.ini"),
               FACEKP_GUI_DATA=str(tmp_path / "d"), QT_QPA_PLATFORM="offscreen")
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-m", "facekp.gui.app", "--screenshot", shot,
                           "--model", root / "resources" / "models" / "default.keras",
                           *map(str, bad)], cwd=root, env=env, capture_output=True,
                          text=True, timeout=300)
    said = [line for line in done.stderr.splitlines() if line.startswith("facekp-gui:")]
    assert done.returncode == 2, done.stderr[-3000:]
    assert len(said) == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert {"--data": "bad.npz", "--photo": "bad.jpg", "--image": "--image 7"}[option] in said[0]
    assert not shot.exists() and not list(tmp_path.glob("*.png"))
