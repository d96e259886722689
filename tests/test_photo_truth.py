"""Ground truth beside a photo (facekp.core.photos.photo_truth): found, not found, broken; NME by hand; the
fields `facekp predict --json` adds. Real ytf68 photos and their 68-point labels."""
from __future__ import annotations

import contextlib
import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from facekp.core.errors import DataError
from facekp.core.data.formats import pts_text
from facekp.core.data.keypoints import NAMES, from_68
from facekp.core.photos.photo_truth import PhotoTruth, find_truth, match_faces, nme, score_faces

PHOTO = "Takeo_Hiranuma_10.jpg"          # a ytf68 test photo, 450 x 360, one face


def ytf68_points(shared_data: Path, name: str = PHOTO) -> np.ndarray:
    """The 68 labelled points of a ytf68 test photo (0-based photo pixels)."""
    with open(shared_data / "ytf68" / "test_frames_keypoints.csv", newline="") as fh:
        row = next(r for r in csv.reader(fh) if r[0] == name)
    return np.asarray(row[1:], np.float64).reshape(68, 2)


def pts_68(points: np.ndarray) -> str:
    """An iBUG .pts of 68 points (1-based, as iBUG writes them)."""
    body = "\n".join(f"{x + 1:g} {y + 1:g}" for x, y in points)
    return f"version: 1\nn_points: 68\n{{\n{body}\n}}\n"


@pytest.fixture
def photo(shared_data, tmp_path) -> Path:
    """A copy of a real ytf68 photo in an empty folder."""
    out = tmp_path / PHOTO
    shutil.copy(shared_data / "ytf68" / "test" / PHOTO, out)
    return out


def dlib_xml(files_and_points: list[tuple[str, np.ndarray]]) -> str:
    images = "".join(
        f"<image file='{f}'><box top='0' left='0' width='10' height='10'>"
        + "".join(f"<part name='{i:02d}' x='{x:g}' y='{y:g}'/>" for i, (x, y) in enumerate(p))
        + "</box></image>" for f, p in files_and_points)
    return f"<?xml version='1.0'?><dataset><images>{images}</images></dataset>"


def test_pts_beside_the_photo_68_and_15_points(photo, shared_data):
    assert find_truth(photo) is None                               # nothing beside it yet
    points = ytf68_points(shared_data)
    photo.with_suffix(".pts").write_text(pts_68(points))
    truth = find_truth(photo)
    assert truth.source == photo.with_suffix(".pts") and len(truth.faces) == 1
    np.testing.assert_allclose(truth.faces[0], from_68(points))   # the one 68 -> 15 mapping
    fifteen = from_68(points)
    fifteen[3] = np.nan                                           # a missing point stays missing
    photo.with_suffix(".pts").write_text(pts_text(fifteen.reshape(-1)))
    got = find_truth(photo).faces[0]
    assert np.isnan(got[3]).all()
    np.testing.assert_allclose(got[~np.isnan(fifteen).any(1)],
                               fifteen[~np.isnan(fifteen).any(1)], atol=1e-4)


def test_dlib_xml_in_the_folder_that_names_the_photo(photo, shared_data, tmp_path):
    points = ytf68_points(shared_data)
    # another kind of XML naming the photo (Pascal VOC) and a dlib XML of another photo
    (tmp_path / "a_voc.xml").write_text(f"<annotation><filename>{PHOTO}</filename></annotation>")
    (tmp_path / "b_other.xml").write_text(dlib_xml([("other.jpg", points)]))
    assert find_truth(photo) is None
    (tmp_path / "c_labels.xml").write_text(dlib_xml([("other.jpg", points + 5),
                                                     (PHOTO, points)]))
    truth = find_truth(photo)
    assert truth.source == tmp_path / "c_labels.xml" and len(truth.faces) == 1
    np.testing.assert_allclose(truth.faces[0], from_68(points))


def test_a_broken_truth_file_is_an_error_naming_it(photo, tmp_path):
    pts = photo.with_suffix(".pts")
    pts.write_text("version: 1\nn_points: 68\n{\n1 2\n3 4\n}\n")
    with pytest.raises(DataError, match="holds 2 points, expected 15 or 68") as exc:
        find_truth(photo)
    assert str(pts) in str(exc.value)
    pts.unlink()
    xml = tmp_path / "labels.xml"
    xml.write_text(f"<dataset><images><image file='{PHOTO}'>")           # cut short
    with pytest.raises(DataError, match="not a readable XML") as exc:
        find_truth(photo)
    assert str(xml) in str(exc.value)


def test_nme_and_matching_by_hand():
    truth = np.zeros((15, 2))
    truth[:, 0] = np.arange(15) * 2.0 + 100                     # x 100, 102, ... 128
    truth[:, 1] = 50.0
    truth[NAMES.index("left_eye_center")] = (110.0, 40.0)
    truth[NAMES.index("right_eye_center")] = (90.0, 40.0)       # eye centres 20 px apart
    pred = truth + (3.0, 4.0)                                   # every point 5 px off...
    pred[NAMES.index("nose_tip")] += (6.0, 8.0)                 # ...but the nose 15 px
    truth[NAMES.index("mouth_left_corner")] = np.nan            # left out: unlabelled
    # 13 points 5 px off and the nose 15 px off: mean 80 / 14 px over 20 px
    assert nme(pred, truth) == pytest.approx((13 * 5 + 15) / 14 / 20)
    no_eye = truth.copy()
    no_eye[NAMES.index("right_eye_center")] = np.nan
    assert np.isnan(nme(pred, no_eye))

    far = truth + 300                                           # a second labelled face
    boxes = [[250, 250, 450, 450], [60, 0, 160, 100], [600, 600, 700, 700]]
    assert match_faces([truth, far], boxes) == [1, 0, None]
    # two boxes round one truth face: the nearer centre takes it
    assert match_faces([truth], [[0, 0, 300, 300], [60, 0, 160, 100]]) == [None, 0]
    scores = score_faces(PhotoTruth(Path("x.pts"), [truth, far]),
                         [(boxes[1], pred), (boxes[2], pred), (boxes[0], None)])
    assert scores[0].truth_index == 0 and scores[0].errors[0] == pytest.approx(5.0)
    assert scores[0].nme == pytest.approx(nme(pred, truth))
    assert scores[1].truth is None and np.isnan(scores[1].nme)
    assert scores[2].truth_index == 1 and np.isnan(scores[2].nme)   # no prediction


def run(argv) -> tuple[int, str, str]:
    from facekp.core.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


def test_predict_json_adds_truth_and_nme(photo, shared_data, tmp_path):
    from facekp.core.resources import DEFAULT_MODEL

    points = ytf68_points(shared_data)
    photo.with_suffix(".pts").write_text(pts_68(points))
    bare = tmp_path / "bare" / PHOTO                            # the same photo without truth
    bare.parent.mkdir()
    shutil.copy(photo, bare)
    rc, stdout, stderr = run(["predict", "--model", DEFAULT_MODEL, photo, bare, "--json"])
    assert rc == 0, stderr
    with_truth, without = json.loads(stdout)
    assert with_truth["truth_file"] == str(photo.with_suffix(".pts"))
    assert with_truth["nme_by"] == ["left_eye_center", "right_eye_center"]  # says which NME
    face = with_truth["faces"][0]
    truth = np.array([face["truth"][n] for n in NAMES], float)
    np.testing.assert_allclose(truth, from_68(points), atol=0.006)      # rounded to 2 decimals
    pred = np.array([face["keypoints"][n] for n in NAMES], float)
    # NME by hand from the printed points (both rounded to 2 decimals)
    eyes = np.hypot(*(truth[0] - truth[1]))
    assert face["nme"] == pytest.approx(np.hypot(*(pred - truth).T).mean() / eyes, abs=2e-4)
    assert 0 < face["nme"] < 0.15                  # the shipped model is close on a real face
    assert "truth_file" not in without and "nme" not in without["faces"][0]
    assert "nme_by" not in without

    photo.with_suffix(".pts").write_text("not a pts file")
    rc, stdout, stderr = run(["predict", "--model", DEFAULT_MODEL, photo, "--json"])
    assert rc == 0 and f"ground truth not used: {photo.with_suffix('.pts')}" in stderr
    record = json.loads(stdout)[0]
    assert str(photo.with_suffix(".pts")) in record["truth_error"] and record["faces"]
