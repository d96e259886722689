"""facekp.core.photos.importers on real ytf68 photos: framing, keypoints in the crop, drops, .pts, bad labels."""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from facekp.core.faces import framing as F
from facekp.core.data import formats
from facekp.core.photos import importers
from facekp.core.errors import DataError
from facekp.core.data.keypoints import COLUMNS, NOSE_TIP_68, from_68

#: Two or three frames of each of five people from the ytf68 training folder.
PEOPLE = 5
PER_PERSON = 3


@pytest.fixture(scope="module")
def ytf_rows(shared_data) -> tuple[list[str], list[list[str]]]:
    with open(shared_data / "ytf68" / "training_frames_keypoints.csv", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        rows = list(reader)
    picked, count = [], {}
    for row in rows:  # the first frames of the first PEOPLE people, in file order
        person = importers.person_of(row[0])
        if person not in count and len(count) == PEOPLE:
            continue
        if count.get(person, 0) < PER_PERSON:
            count[person] = count.get(person, 0) + 1
            picked.append(row)
    assert len(picked) == PEOPLE * PER_PERSON
    return header, picked


def make_folder(root: Path, shared_data: Path, header, rows) -> tuple[Path, Path]:
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    for row in rows:
        src = shared_data / "ytf68" / "training" / row[0]
        if src.exists():
            shutil.copy(src, images / row[0])
    labels = root / "labels.csv"
    with open(labels, "w", newline="") as fh:
        csv.writer(fh).writerows([header] + rows)
    return labels, images


@pytest.fixture(scope="module")
def imported(tmp_path_factory, shared_data, ytf_rows):
    root = tmp_path_factory.mktemp("ytf")
    labels, images = make_folder(root, shared_data, *ytf_rows)
    ds, report = importers.import_folder(images, labels)
    return ds, report, labels, images


def column(ds, name):
    return ds.keypoints[:, COLUMNS.index(name)]


def test_import_gives_96px_crops_with_kaggle_like_eyes(imported):
    ds, report, _, _ = imported
    assert report.faces_in == report.faces_out == len(ds) == PEOPLE * PER_PERSON
    assert ds.images.shape == (len(ds), 96, 96) and ds.images.dtype == np.uint8
    assert len(set(ds.persons)) == PEOPLE
    lx, ly = column(ds, "left_eye_center_x"), column(ds, "left_eye_center_y")
    rx, ry = column(ds, "right_eye_center_x"), column(ds, "right_eye_center_y")
    # Kaggle's eye centres sit near x = 66 and 30, y = 37 (subject's left on the image right).
    assert 56 < np.median(lx) < 76 and 20 < np.median(rx) < 40
    assert 28 < np.median(ly) < 46 and 28 < np.median(ry) < 46
    assert 25 < np.median(lx - rx) < 48  # eye distance
    # Not pinned: the crop is framed from the face box, never aligned to the labelled eyes.
    for v in (lx, ly, rx, ry):
        assert np.std(v) > 1.0
    # Mouth below nose below eyes, inside the crop.
    assert (column(ds, "nose_tip_y") > ly).all()
    assert (column(ds, "mouth_center_bottom_lip_y") > column(ds, "nose_tip_y")).all()


def test_import_report_has_counts_and_keypoint_statistics(imported):
    ds, report, _, _ = imported
    d = report.as_dict()
    assert d["faces_in"] == d["faces_out"] == len(ds) and d["faces_dropped"] == 0
    assert sum(d["framing"].values()) == len(ds)
    eye = d["summary"]["keypoints"]["left_eye_center"]
    assert eye["mean_x"] == pytest.approx(float(np.nanmean(column(ds, "left_eye_center_x"))),
                                          abs=1e-3)
    assert eye["std_x"] > 1
    text = report.format()
    assert f"faces in: {len(ds)}, faces out: {len(ds)}, dropped: 0" in text
    assert "left_eye_center" in text and "std x" in text


def test_crops_are_the_apps_framing_of_the_photo(imported, ytf_rows, constant_model, tmp_path):
    """Import and photo prediction with the same detector frame a face identically: the photo
    path's first crop of the labelled face (MTCNN's five points -> crop_for_landmarks) is the
    imported crop. (The default detector, BlazeFace, frames it by its own rule, fitted to
    these crops: tests/test_detect.py and benchmarks/framing.py measure how closely.)"""
    from facekp.core.model.predict import Predictor

    ds, report, _, images = imported
    header, rows = ytf_rows
    path = tmp_path / "mean.keras"
    constant_model(np.nanmean(ds.keypoints, axis=0)).save(path)
    predictor = Predictor(path, detector="mtcnn")
    checked = 0
    for i, row in enumerate(rows):
        p68 = np.array([float(v) for v in row[1:]]).reshape(68, 2)
        photo = F.load_photo(images / row[0])
        found = [f for f in predictor.predict_photo(photo, passes=1).faces
                 if f.box.contains(*p68[NOSE_TIP_68])]
        crop = found[0].crop if found else F.crop_for_points(from_68(p68))
        np.testing.assert_array_equal(ds.images[i], F.crop_image(F.to_gray(photo), crop))
        np.testing.assert_allclose(ds.keypoints[i], crop.to_crop(from_68(p68)).ravel(),
                                   atol=1e-4)
        checked += bool(found)
    assert checked == report.framing["detector"] > 0


def test_haar_import_frames_with_the_box_rule(imported, ytf_rows):
    ds, _, labels, images = imported
    header, rows = ytf_rows
    out, report = importers.import_folder(images, labels, detector="haar")
    assert out.meta["framing"]["detector"] == "haar"
    p68 = np.array([float(v) for v in rows[0][1:]]).reshape(68, 2)
    gray = F.to_gray(F.load_photo(images / rows[0][0]))
    hits = [b for b in F.find_faces(gray) if b.contains(*p68[NOSE_TIP_68])]  # as photos are
    crop = F.crop_for_box(hits[0] if hits else F.box_from_points(p68))
    np.testing.assert_array_equal(out.images[0], F.crop_image(gray, crop))


def test_faces_the_detector_misses_are_framed_alike_from_their_points(imported):
    """The fallback (the five framing points of the 68 labelled points) frames faces like the
    detector does."""
    ds, _, labels, images = imported
    out, report = importers.import_folder(images, labels, detector=None)
    assert dict(report.framing) == {"labelled points": len(ds)}
    eyes = [COLUMNS.index(f"{n}_{a}") for n in ("left_eye_center", "right_eye_center")
            for a in "xy"]
    np.testing.assert_allclose(np.median(out.keypoints[:, eyes], axis=0),
                               np.median(ds.keypoints[:, eyes], axis=0), atol=4)
    assert (np.std(out.keypoints[:, eyes], axis=0) > 1).all()


def test_keypoint_outside_the_crop_becomes_missing_not_clipped(tmp_path, shared_data,
                                                               ytf_rows, imported):
    ds, report, _, _ = imported
    header, rows = ytf_rows
    i = int(np.flatnonzero(~np.isnan(ds.keypoints).any(axis=1))[0])  # a face with all 15
    row = list(rows[i])
    # Move the bottom-lip landmark (57) far below the face; the detector still frames the face.
    y57 = 1 + 2 * 57 + 1
    row[y57] = str(float(row[y57]) + 400)
    labels, images = make_folder(tmp_path, shared_data, header, [row])
    out, rep = importers.import_folder(images, labels)
    assert rep.framing.get("detector") == 1
    assert rep.keypoints_outside == 1 and rep.faces_with_keypoint_outside == 1
    kp = out.keypoints[0]
    lip = [COLUMNS.index("mouth_center_bottom_lip_x"), COLUMNS.index("mouth_center_bottom_lip_y")]
    assert np.isnan(kp[lip]).all()
    others = np.setdiff1d(np.arange(30), lip)
    np.testing.assert_allclose(kp[others], ds.keypoints[i][others], atol=1e-4)
    assert not out.present[0, 14] and out.present[0, :14].all()


def test_faces_are_dropped_with_reasons(tmp_path, shared_data, ytf_rows):
    header, rows = ytf_rows
    rows = [list(r) for r in rows[:4]]
    labels, images = make_folder(tmp_path, shared_data, header, rows)
    (images / rows[0][0]).unlink()  # a label without its image
    (images / rows[1][0]).write_text("not a jpeg")  # an image that is not one
    rows[2][1 + 2 * 45] = "nan"  # an unlabelled landmark
    with open(labels, "w", newline="") as fh:
        csv.writer(fh).writerows([header] + rows)
    ds, report = importers.import_folder(images, labels)
    assert report.faces_in == 4 and report.faces_out == len(ds) == 1
    assert dict(report.dropped) == {"image file not found": 1, "image unreadable": 1,
                                    "labels not finite": 1}
    text = report.format()
    assert "dropped: 3" in text and "dropped 1: image file not found" in text


def test_ibug_pts_files_give_the_same_faces(tmp_path, shared_data, ytf_rows, imported):
    """.pts beside the images, 1-based coordinates as iBUG writes them."""
    ds, _, _, _ = imported
    header, rows = ytf_rows
    folder = tmp_path / "pts"
    folder.mkdir()
    for row in rows:
        shutil.copy(shared_data / "ytf68" / "training" / row[0], folder / row[0])
        p = np.array([float(v) for v in row[1:]]).reshape(68, 2) + 1.0
        body = "\n".join(f"{x:.3f} {y:.3f}" for x, y in p)
        (folder / row[0]).with_suffix(".pts").write_text(
            f"version: 1\nn_points:  68\n{{\n{body}\n}}\n")
    (folder / "lonely.pts").write_text("version: 1\nn_points: 68\n{\n}\n")  # no image: ignored
    out, report = importers.import_folder(folder)
    assert report.faces_out == len(rows)
    by_name = {n: k for n, k in zip(out.names, out.keypoints)}
    for name, kp in zip(ds.names, ds.keypoints):
        np.testing.assert_allclose(by_name[name], kp, atol=1e-3)
    np.testing.assert_array_equal(sorted(out.persons), sorted(ds.persons))


def test_bad_pts_files(tmp_path):
    path = tmp_path / "a.pts"
    path.write_text("version: 1\nn_points: 3\n{\n1 2\n3 4\n5 6\n}\n")
    with pytest.raises(DataError, match="expected 68") as info:
        formats.read_pts(path)
    assert str(path) in str(info.value)
    path.write_text("1 2 3 4")
    with pytest.raises(DataError, match="not an iBUG .pts file"):
        formats.read_pts(path)
    with pytest.raises(DataError, match="no images with iBUG .pts"):
        importers.find_pts_photos(tmp_path)


# --- bad label CSVs name the file, row and column ------------------------------------------


def bad_labels(tmp_path, shared_data, ytf_rows, edit) -> tuple[Path, Path]:
    header, rows = ytf_rows
    header, rows = list(header), [list(r) for r in rows[:3]]
    labels, images = make_folder(tmp_path, shared_data, header, rows)
    header, rows = edit(header, rows)
    with open(labels, "w", newline="") as fh:
        csv.writer(fh).writerows([header] + rows)
    return labels, images


def test_label_that_is_not_a_number(tmp_path, shared_data, ytf_rows):
    def edit(header, rows):
        rows[1][1 + 2 * 30 + 1] = "12,5"  # y of the nose tip, with a decimal comma
        return header, rows

    labels, images = bad_labels(tmp_path, shared_data, ytf_rows, edit)
    with pytest.raises(DataError) as info:
        importers.import_folder(images, labels)
    err = info.value
    assert err.row == 3 and err.column == "61"  # ytf68's header names the values 0..135
    assert str(labels) in str(err) and "row 3" in str(err) and "'12,5' is not a number" in str(err)


def test_label_row_with_missing_values(tmp_path, shared_data, ytf_rows):
    labels, images = bad_labels(tmp_path, shared_data, ytf_rows,
                                lambda h, r: (h, r[:2] + [r[2][:100]]))
    with pytest.raises(DataError, match="has 100 fields, expected 137") as info:
        importers.import_folder(images, labels)
    assert info.value.row == 4 and str(labels) in str(info.value)


def test_label_header_of_another_layout(tmp_path, shared_data, ytf_rows):
    labels, images = bad_labels(tmp_path, shared_data, ytf_rows,
                                lambda h, r: (list(COLUMNS) + ["Image"], r))
    with pytest.raises(DataError, match="expected 137") as info:
        importers.import_folder(images, labels)
    assert info.value.row == 1


def test_missing_label_file_or_image_folder(tmp_path, shared_data, ytf_rows):
    labels, images = make_folder(tmp_path, shared_data, *ytf_rows)
    with pytest.raises(DataError, match="no such label CSV"):
        importers.import_folder(images, tmp_path / "lables.csv")
    with pytest.raises(DataError, match="is not a directory"):
        importers.import_folder(tmp_path / "imgaes", labels)


def test_embedded_dataset_has_a_realistic_spread_of_eye_positions(faces):
    """The shipped faces were imported with this framing: Kaggle-like, never pinned."""
    for name, x in (("left_eye_center", 66), ("right_eye_center", 30)):
        xs, ys = column(faces, f"{name}_x"), column(faces, f"{name}_y")
        assert abs(np.nanmean(xs) - x) < 3 and abs(np.nanmean(ys) - 37) < 3
        assert 2 < np.nanstd(xs) < 8 and 2 < np.nanstd(ys) < 8
