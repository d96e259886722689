"""facekp.core.data.dataset: Kaggle CSV and .npz round trips, every bad input, splits by person, atomic writes."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from facekp.core.data import dataset as data
from facekp.core.data import kaggle_csv
from facekp.core.data import opener
from facekp.core.errors import DataError
from facekp.core.data.keypoints import COLUMNS

# --- helpers -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def few(faces) -> data.Dataset:
    """Five real faces, one with only Kaggle's four usual keypoints, one with none missing."""
    idx = np.flatnonzero(faces.present.all(axis=1))[:5]
    ds = faces.subset(idx)
    kp = ds.keypoints.copy()
    keep = [COLUMNS.index(f"{n}_{a}") for n in ("left_eye_center", "right_eye_center",
                                                  "nose_tip", "mouth_center_bottom_lip")
            for a in "xy"]
    drop = np.setdiff1d(np.arange(30), keep)
    kp[1, drop] = np.nan
    return data.Dataset.from_arrays(ds.images, kp)


def table(path: Path) -> tuple[list[str], list[list[str]]]:
    lines = path.read_text().splitlines()
    return lines[0].split(","), [line.split(",") for line in lines[1:]]


def write_table(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.write_text("\n".join(",".join(r) for r in [header] + rows) + "\n")
    return path


@pytest.fixture
def csv_parts(few, tmp_path):
    """(header, rows) of a valid training.csv of five real faces, ready to be spoiled."""
    return table(kaggle_csv.write_kaggle_csv(few, tmp_path / "base.csv"))


def set_pixel(rows: list[list[str]], data_row: int, pixel: int, value: str) -> None:
    """Replace pixel ``pixel`` (1-based) of data row ``data_row`` (0-based) with ``value``."""
    values = rows[data_row][-1].split(" ")
    values[pixel - 1] = value
    rows[data_row][-1] = " ".join(values)


def expect_error(path: Path, row: int | None, column: str | None, *words: str,
                 reader=kaggle_csv.read_kaggle_csv) -> DataError:
    """The read fails with a DataError naming the file, the row and the column."""
    with pytest.raises(DataError) as info:
        reader(path)
    err = info.value
    msg = str(err)
    assert str(path) in msg
    assert err.row == row
    if row is not None:
        assert f"row {row}" in msg
    assert err.column == column
    if column is not None:
        assert repr(column) in msg
    for w in words:
        assert w in msg, msg
    return err


# --- round trips ---------------------------------------------------------------------------


def test_training_csv_round_trip_keeps_pixels_and_missing_values(few, tmp_path):
    path = kaggle_csv.write_kaggle_csv(few, tmp_path / "training.csv")
    header, rows = table(path)
    assert header == list(COLUMNS) + ["Image"]
    assert len(rows) == len(few)
    assert rows[1].count("") == 22  # 11 missing keypoints are empty fields, as in Kaggle's file
    back = kaggle_csv.read_kaggle_csv(path)
    np.testing.assert_array_equal(back.images, few.images)
    np.testing.assert_array_equal(back.keypoints, few.keypoints)  # NaN where NaN
    assert np.isnan(back.keypoints[1]).sum() == 22
    assert back.meta["layout"] == "training"
    assert list(back.names) == ["1", "2", "3", "4", "5"]


def test_test_csv_layout_round_trip(few, tmp_path):
    unlabeled = data.Dataset.from_arrays(few.images)
    path = kaggle_csv.write_kaggle_csv(unlabeled, tmp_path / "test.csv")
    assert path.read_text().splitlines()[0] == "ImageId,Image"
    back = opener.load(path)
    assert back.meta["layout"] == "test"
    np.testing.assert_array_equal(back.images, few.images)
    assert np.isnan(back.keypoints).all()
    assert list(back.names) == [str(i) for i in range(1, len(few) + 1)]


def test_csv_variants_read_alike(few, tmp_path):
    """Windows line ends, a byte-order mark, a quoted Image, shuffled columns, blank lines."""
    path = kaggle_csv.write_kaggle_csv(few, tmp_path / "a.csv")
    header, rows = table(path)
    order = list(np.random.default_rng(0).permutation(30)) + [30]
    text = "\ufeff" + ",".join(header[i] for i in order) + "\r\n"
    for r in rows:
        fields = [r[i] for i in order]
        fields[-1] = f'"{fields[-1]}"'
        text += ",".join(fields) + "\r\n\r\n"
    other = tmp_path / "b.csv"
    other.write_bytes(text.encode("utf-8"))
    a, b = kaggle_csv.read_kaggle_csv(path), kaggle_csv.read_kaggle_csv(other)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.keypoints, b.keypoints)


def test_npz_round_trip_keeps_splits_persons_and_meta(few, tmp_path):
    ds = data.Dataset(few.images, few.keypoints, [f"f{i}.jpg" for i in range(5)],
                      ["ann", "ann", "bob", "cy", "cy"], ["train", "train", "val", "test", "test"],
                      {"source": "test", "split": {"seed": 3}})
    path = opener.save(ds, tmp_path / "d.npz")
    back = opener.load(path)
    np.testing.assert_array_equal(back.images, ds.images)
    np.testing.assert_array_equal(back.keypoints, ds.keypoints)
    assert list(back.names) == list(ds.names)
    assert list(back.persons) == list(ds.persons)
    assert list(back.splits) == list(ds.splits)
    assert back.meta == ds.meta
    assert len(back.split("train")) == 2 and len(back.split("test")) == 2


def random_images(n: int, seed: int) -> np.ndarray:
    """Noise over the whole 0-255 range, so 1-, 2- and 3-digit values all occur."""
    return np.random.default_rng(seed).integers(0, 256, (n, 96, 96), dtype=np.uint8)


keypoint_values = st.one_of(st.just(np.nan), st.floats(0, 96, width=32))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 3), seed=st.integers(0, 2**32 - 1), data_=st.data())
def test_random_faces_round_trip_through_kaggle_csv(n, seed, data_):
    images = random_images(n, seed)
    kp = data_.draw(hnp.arrays(np.float32, (n, 30), elements=keypoint_values))
    kp[:, 0] = data_.draw(st.floats(0, 96, width=32))  # at least one keypoint: training layout
    ds = data.Dataset.from_arrays(images, kp)
    with tempfile.TemporaryDirectory() as tmp:
        back = kaggle_csv.read_kaggle_csv(kaggle_csv.write_kaggle_csv(ds, Path(tmp) / "t.csv"))
    np.testing.assert_array_equal(back.images, images)
    np.testing.assert_array_equal(back.keypoints, kp)


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 3), seed=st.integers(0, 2**32 - 1))
def test_random_images_round_trip_through_npz(n, seed):
    images = random_images(n, seed)
    ds = data.Dataset.from_arrays(images, persons=[f"p{i % 2}" for i in range(len(images))])
    with tempfile.TemporaryDirectory() as tmp:
        back = data.read_npz(data.write_npz(ds, Path(tmp) / "t.npz"))
    np.testing.assert_array_equal(back.images, images)
    assert np.isnan(back.keypoints).all()
    assert list(back.persons) == list(ds.persons)


def test_progress_is_reported_up_to_the_last_row(few, tmp_path):
    path = kaggle_csv.write_kaggle_csv(few, tmp_path / "t.csv")
    calls = []
    kaggle_csv.read_kaggle_csv(path, progress=lambda done, total: calls.append((done, total)))
    assert calls and calls[-1] == (len(few), len(few))


# --- bad Kaggle CSV input: each names the file, the row (header = 1) and the column ---------


def test_missing_column(csv_parts, tmp_path):
    header, rows = csv_parts
    i = header.index("nose_tip_y")
    path = write_table(tmp_path / "t.csv", header[:i] + header[i + 1:],
                       [r[:i] + r[i + 1:] for r in rows])
    expect_error(path, 1, "nose_tip_y", "missing column")


def test_missing_image_column(csv_parts, tmp_path):
    header, rows = csv_parts
    path = write_table(tmp_path / "t.csv", header[:-1], [r[:-1] for r in rows])
    expect_error(path, 1, "Image", "missing column 'Image'")


def test_misspelled_keypoint_column(csv_parts, tmp_path):
    header, rows = csv_parts
    header = ["left_eye_centre_x" if h == "left_eye_center_x" else h for h in header]
    path = write_table(tmp_path / "t.csv", header, rows)
    expect_error(path, 1, "left_eye_center_x", "'left_eye_centre_x' misspelled")


def test_misspelled_image_column(csv_parts, tmp_path):
    header, rows = csv_parts
    path = write_table(tmp_path / "t.csv", header[:-1] + ["Imgae"], rows)
    expect_error(path, 1, "Image", "'Imgae' misspelled")


def test_image_with_too_few_values(csv_parts, tmp_path):
    header, rows = csv_parts
    rows[2][-1] = rows[2][-1].rsplit(" ", 1)[0]
    path = write_table(tmp_path / "t.csv", header, rows)
    expect_error(path, 4, "Image", "9215 values", "expected 9216")


def test_image_with_too_many_values(csv_parts, tmp_path):
    header, rows = csv_parts
    rows[4][-1] += " 17"
    path = write_table(tmp_path / "t.csv", header, rows)
    expect_error(path, 6, "Image", "9217 values")


def test_image_value_above_255(csv_parts, tmp_path):
    header, rows = csv_parts
    set_pixel(rows, 1, 10, "256")
    path = write_table(tmp_path / "t.csv", header, rows)
    expect_error(path, 3, "Image", "256", "pixel 10", "outside 0-255")


def test_image_value_with_four_digits(csv_parts, tmp_path):
    header, rows = csv_parts
    set_pixel(rows, 0, 9216, "1000")
    path = write_table(tmp_path / "t.csv", header, rows)
    expect_error(path, 2, "Image", "1000", "pixel 9216", "outside 0-255")


def test_negative_image_value(csv_parts, tmp_path):
    header, rows = csv_parts
    set_pixel(rows, 3, 5, "-4")
    path = write_table(tmp_path / "t.csv", header, rows)
    expect_error(path, 5, "Image", "-4", "pixel 5", "outside 0-255")


@pytest.mark.parametrize("token", ["abc", "12x", "4.5", "nan"])
def test_image_value_that_is_not_a_whole_number(csv_parts, tmp_path, token):
    header, rows = csv_parts
    set_pixel(rows, 2, 77, token)
    path = write_table(tmp_path / "t.csv", header, rows)
    expect_error(path, 4, "Image", repr(token), "pixel 77", "not a whole number")


def test_bad_image_value_far_down_a_long_file(few, tmp_path):
    """Rows are parsed in blocks: the row number must still be the spreadsheet's."""
    big = few.subset(np.arange(300) % len(few))
    header, rows = table(kaggle_csv.write_kaggle_csv(big, tmp_path / "big.csv"))
    set_pixel(rows, 287, 1, "300")
    expect_error(write_table(tmp_path / "t.csv", header, rows), 289, "Image", "pixel 1")
    header, rows = table(tmp_path / "big.csv")
    set_pixel(rows, 270, 3, "x")
    expect_error(write_table(tmp_path / "t.csv", header, rows), 272, "Image", "pixel 3")
    header, rows = table(tmp_path / "big.csv")
    rows[299][-1] += " 1"
    expect_error(write_table(tmp_path / "t.csv", header, rows), 301, "Image", "9217")


def test_keypoint_that_is_not_a_number(csv_parts, tmp_path):
    header, rows = csv_parts
    rows[3][header.index("mouth_left_corner_y")] = "sixty"
    path = write_table(tmp_path / "t.csv", header, rows)
    expect_error(path, 5, "mouth_left_corner_y", "'sixty' is not a number")


@pytest.mark.parametrize("value", ["96.5", "-0.25", "1e3"])
def test_keypoint_outside_the_image(csv_parts, tmp_path, value):
    header, rows = csv_parts
    rows[0][header.index("nose_tip_x")] = value
    path = write_table(tmp_path / "t.csv", header, rows)
    expect_error(path, 2, "nose_tip_x", "outside 0-96")


def test_keypoints_on_the_edges_are_accepted(csv_parts, tmp_path):
    header, rows = csv_parts
    rows[0][header.index("nose_tip_x")] = "0"
    rows[0][header.index("nose_tip_y")] = "96"
    ds = kaggle_csv.read_kaggle_csv(write_table(tmp_path / "t.csv", header, rows))
    assert ds.keypoints[0, COLUMNS.index("nose_tip_x")] == 0
    assert ds.keypoints[0, COLUMNS.index("nose_tip_y")] == 96


def test_row_with_a_missing_field(csv_parts, tmp_path):
    header, rows = csv_parts
    rows[1] = rows[1][:5] + rows[1][6:]
    path = write_table(tmp_path / "t.csv", header, rows)
    expect_error(path, 3, None, "30 fields", "expected 31")


def test_empty_file(tmp_path):
    path = tmp_path / "training.csv"
    path.write_bytes(b"")
    expect_error(path, None, None, "empty")


def test_blank_header(tmp_path):
    path = tmp_path / "training.csv"
    path.write_text("   \n\n")
    expect_error(path, 1, None, "no header")


def test_header_without_rows(csv_parts, tmp_path):
    header, _ = csv_parts
    path = write_table(tmp_path / "t.csv", header, [])
    expect_error(path, None, None, "no data rows")


def test_png_is_not_csv(tmp_path, shared_data):
    path = tmp_path / "faces.csv"
    from PIL import Image

    Image.open(shared_data / "photos" / "dogs.jpg").convert("L").resize((64, 48)).save(
        path, format="PNG")
    expect_error(path, None, None, "not a CSV")


def test_random_binary_is_not_csv(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "noise.csv"
    path.write_bytes(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())
    expect_error(path, None, None, "not a CSV")
    # ... and binary without any zero byte: its header is not text
    path.write_bytes(rng.integers(128, 256, 5000, dtype=np.uint8).tobytes())
    expect_error(path, 1, None, "not a CSV")


def test_directory_instead_of_file(tmp_path):
    folder = tmp_path / "training.csv"
    folder.mkdir()
    expect_error(folder, None, None, "is a directory")
    expect_error(folder, None, None, "is a directory", reader=opener.load)


def test_misspelled_file_name(tmp_path):
    expect_error(tmp_path / "trainnig.csv", None, None, "no such")


def test_unknown_extension(tmp_path, few):
    path = tmp_path / "faces.txt"
    path.write_text("hello\n")
    expect_error(path, None, None, "unknown dataset format", reader=opener.load)
    with pytest.raises(DataError, match="unknown dataset format"):
        opener.save(few, tmp_path / "out.txt")


# --- bad .npz input ------------------------------------------------------------------------


def test_npz_that_is_not_a_zip(tmp_path):
    path = tmp_path / "faces.npz"
    path.write_text("left_eye_center_x,Image\n")
    expect_error(path, None, None, "not a .npz file", reader=opener.load)
    with open(path, "wb") as fh:
        np.save(fh, np.zeros((2, 96, 96), np.uint8))  # a lone .npy array
    expect_error(path, None, None, "not a .npz file", reader=opener.load)


def test_empty_dataset_can_be_described(tmp_path):
    empty = data.Dataset.from_arrays(np.zeros((0, 96, 96), np.uint8))
    assert empty.present.shape == (0, 15)
    desc = data.describe(empty)
    assert desc["faces"] == 0 and desc["keypoints"]["nose_tip"]["mean_x"] is None


def test_npz_without_images(tmp_path):
    path = tmp_path / "faces.npz"
    np.savez(path, keypoints=np.zeros((2, 30), np.float32))
    expect_error(path, None, "images", "no 'images' array", reader=opener.load)


def test_npz_with_wrong_image_shape(tmp_path):
    path = tmp_path / "faces.npz"
    np.savez(path, images=np.zeros((2, 64, 64), np.uint8))
    expect_error(path, None, "images", "expected N x 96 x 96", reader=opener.load)


def test_npz_with_keypoints_of_other_length(tmp_path):
    path = tmp_path / "faces.npz"
    np.savez(path, images=np.zeros((2, 96, 96), np.uint8),
             keypoints=np.zeros((3, 30), np.float32))
    expect_error(path, None, "keypoints", "expected 2 x 30", reader=opener.load)


def test_npz_with_keypoint_outside_the_image(tmp_path):
    path = tmp_path / "faces.npz"
    kp = np.full((2, 30), 40, np.float32)
    kp[1, 5] = 120
    np.savez(path, images=np.zeros((2, 96, 96), np.uint8), keypoints=kp)
    expect_error(path, None, COLUMNS[5], "outside 0-96", "face 2", reader=opener.load)


def test_npz_with_pickled_objects_is_refused(tmp_path):
    path = tmp_path / "faces.npz"
    np.savez(path, images=np.array([1, "a", None], dtype=object))
    expect_error(path, None, "images", "cannot be read", reader=opener.load)


def test_npz_with_a_damaged_member(tmp_path, few):
    path = data.write_npz(few, tmp_path / "faces.npz")
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 3] ^= 0xFF  # inside the compressed images, the zip directory intact
    path.write_bytes(bytes(raw))
    expect_error(path, None, "images", "cannot be read", reader=opener.load)


def test_npz_with_text_keypoints_or_nan_images(tmp_path):
    path = tmp_path / "faces.npz"
    np.savez(path, images=np.zeros((2, 96, 96), np.uint8), keypoints=np.full((2, 30), "a"))
    expect_error(path, None, "keypoints", "expected numbers", reader=opener.load)
    np.savez(path, images=np.full((2, 96, 96), np.nan))
    expect_error(path, None, "images", "NaN", reader=opener.load)


def test_npz_with_float_images_in_0_1_is_scaled(tmp_path, few):
    path = tmp_path / "faces.npz"
    np.savez(path, images=few.images / 255.0)
    np.testing.assert_array_equal(data.read_npz(path).images, few.images)


# --- splits --------------------------------------------------------------------------------


def test_split_by_person_is_reproducible_and_person_disjoint(faces):
    a = data.split_by_person(faces, (0.8, 0.1, 0.1), seed=7)
    b = data.split_by_person(faces, (0.8, 0.1, 0.1), seed=7)
    np.testing.assert_array_equal(a.splits, b.splits)
    assert not np.array_equal(a.splits, data.split_by_person(faces, seed=8).splits)
    people = {s: set(a.persons[a.splits == s]) for s in data.SPLITS}
    assert not people["train"] & people["val"]
    assert not people["train"] & people["test"]
    assert not people["val"] & people["test"]
    n_people = len(set(faces.persons))
    assert sum(len(p) for p in people.values()) == n_people
    assert abs(len(people["val"]) - 0.1 * n_people) <= 1
    assert abs(len(people["test"]) - 0.1 * n_people) <= 1
    assert a.meta["split"] == {"by": "person", "fractions": [0.8, 0.1, 0.1], "seed": 7}


def test_split_by_person_does_not_depend_on_row_order(faces):
    order = np.random.default_rng(1).permutation(len(faces))
    a = data.split_by_person(faces, seed=3)
    b = data.split_by_person(faces.subset(order), seed=3)
    np.testing.assert_array_equal(a.splits[order], b.splits)


def test_split_rejects_bad_fractions(few):
    with pytest.raises(ValueError):
        data.split_by_person(few, (0.5, 0.2, 0.2))


def test_embedded_dataset_is_split_by_person(faces):
    from facekp.core.resources import DEFAULT_DATASET

    assert DEFAULT_DATASET.stat().st_size <= 40e6
    assert len(faces) == 3869
    assert set(np.unique(faces.splits)) == set(data.SPLITS)
    people = [set(faces.persons[faces.splits == s]) for s in data.SPLITS]
    assert not (people[0] & people[1]) and not (people[0] & people[2]) \
        and not (people[1] & people[2])
    assert faces.meta["split"]["by"] == "person"


def test_describe_counts_missing_values_and_spread(few):
    desc = data.describe(few)
    assert desc["faces"] == 5 and desc["complete"] == 4
    assert desc["keypoints"]["nose_tip"]["missing"] == 0
    assert desc["keypoints"]["mouth_left_corner"]["missing"] == 1
    kp = few.keypoints[:, COLUMNS.index("left_eye_center_x")]
    assert desc["keypoints"]["left_eye_center"]["mean_x"] == pytest.approx(kp.mean(), abs=1e-3)
    assert desc["keypoints"]["left_eye_center"]["std_x"] == pytest.approx(kp.std(), abs=1e-3)


# --- atomic writes -------------------------------------------------------------------------


def leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p for p in os.listdir(folder) if p not in keep)


def test_writes_leave_no_temporary_files(few, tmp_path):
    kaggle_csv.write_kaggle_csv(few, tmp_path / "t.csv")
    data.write_npz(few, tmp_path / "t.npz")
    kaggle_csv.write_kaggle_csv(few, tmp_path / "t.csv")  # over an existing file
    assert leftovers(tmp_path, {"t.csv", "t.npz"}) == []


def test_failed_csv_write_keeps_the_old_file(few, tmp_path, monkeypatch):
    target = tmp_path / "t.csv"
    target.write_text("precious\n")

    def broken(block):
        raise OSError("disk full")

    monkeypatch.setattr(kaggle_csv, "_format_pixels", broken)
    with pytest.raises(OSError, match="disk full"):
        kaggle_csv.write_kaggle_csv(few, target)
    assert target.read_text() == "precious\n"
    assert leftovers(tmp_path, {"t.csv"}) == []


def test_failed_npz_write_keeps_the_old_file(few, tmp_path, monkeypatch):
    target = tmp_path / "t.npz"
    data.write_npz(few.subset([0]), target)
    before = target.read_bytes()

    def broken(fh, **arrays):
        fh.write(b"PK half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", broken)
    with pytest.raises(OSError, match="disk full"):
        data.write_npz(few, target)
    assert target.read_bytes() == before
    assert leftovers(tmp_path, {"t.npz"}) == []


def test_one_rule_decides_training_faces_for_cli_and_app(faces):
    """Issue 11: a dataset's own splits are kept (its test faces never train or validate);
    only a dataset without any splits is divided by person, 90/10, with a note."""
    sub = faces.subset(np.arange(300))
    train, val, note = data.training_splits(sub)
    assert note == "" and len(train) == (sub.splits == "train").sum()
    assert len(val) == (sub.splits == "val").sum()

    plain = data.Dataset(sub.images, sub.keypoints, sub.names, sub.persons,
                         np.full(len(sub), "", dtype=str), {})
    train, val, note = data.training_splits(plain)
    assert "90%" in note and len(train) + len(val) == len(plain)
    assert not set(train.persons) & set(val.persons)

    only_test = data.Dataset(sub.images, sub.keypoints, sub.names, sub.persons,
                             np.full(len(sub), "test", dtype=str), {})
    with pytest.raises(DataError, match="no faces in split 'train'"):
        data.training_splits(only_test)

    part, note = data.evaluation_faces(plain, "test")
    assert len(part) == len(plain) and "every face" in note
    part, note = data.evaluation_faces(sub, "test")
    assert len(part) == (sub.splits == "test").sum() and note == ""
