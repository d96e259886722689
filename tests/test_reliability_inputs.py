"""Issue 13: inputs are never overwritten, bad values and odd files give one clear line (exit 2),
and odd photos or datasets are read correctly or refused naming what is wrong."""
from __future__ import annotations

import json
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facekp.core.data import dataset as data
from facekp.core.data import kaggle_csv
from facekp.core.data import opener
from facekp.core.errors import DataError
from cli_run import assert_one_line_error, run

ROOT = Path(__file__).resolve().parent.parent
FACES = ROOT / "resources" / "faces.npz"


@pytest.fixture
def small_npz(faces, tmp_path):
    path = tmp_path / "small.npz"
    data.write_npz(faces.subset(np.arange(40)), path)
    return path


# --- 1. an output that is one of the inputs is refused --------------------------------------

def test_montage_refuses_to_write_over_its_dataset(capsys, small_npz, tmp_path):
    before = small_npz.read_bytes()
    code, _, err = run(capsys, "montage", small_npz, "--out", small_npz, "--count", "2")
    assert_one_line_error(code, err, str(small_npz), "input")
    # The same file under another name (a hard link) is the same file too.
    link = tmp_path / "link.npz"
    link.hardlink_to(small_npz)
    code, _, err = run(capsys, "montage", small_npz, "--out", link, "--count", "2")
    assert_one_line_error(code, err, "link.npz", "input")
    assert small_npz.read_bytes() == before


def test_import_refuses_to_write_over_its_labels(capsys, tmp_path, shared_data):
    labels = tmp_path / "labels.csv"
    shutil.copy(shared_data / "ytf68" / "test_frames_keypoints.csv", labels)
    before = labels.read_bytes()
    code, _, err = run(capsys, "import", "--labels", labels, "--images",
                       shared_data / "ytf68" / "test", "--out", tmp_path / "." / "labels.csv")
    assert_one_line_error(code, err, "labels.csv", "input")
    assert labels.read_bytes() == before


def test_submit_refuses_to_write_over_test_or_lookup(capsys, faces, tmp_path, shared_data):
    kaggle_csv.write_kaggle_csv(faces.subset(np.arange(5)), tmp_path / "test.csv", layout="test")
    shutil.copy(shared_data / "kaggle" / "IdLookupTable.csv", tmp_path / "IdLookupTable.csv")
    for target in ("test.csv", "IdLookupTable.csv"):
        before = (tmp_path / target).read_bytes()
        code, _, err = run(capsys, "submit", "--test", tmp_path / "test.csv", "--lookup",
                           tmp_path / "IdLookupTable.csv", "--out", tmp_path / target)
        assert_one_line_error(code, err, target, "input")
        assert (tmp_path / target).read_bytes() == before


def test_predict_draw_never_writes_over_a_photo(capsys, tmp_path, shared_data):
    photo = tmp_path / "face.png"
    Image.open(next((shared_data / "photos").glob("*.jpg"))).save(photo)
    before = photo.read_bytes()
    code, _, err = run(capsys, "predict", photo, "--draw", tmp_path, "--passes", "1")
    assert code == 2 and "face.png" in err and "photo" in err and "Traceback" not in err
    assert photo.read_bytes() == before


# --- 5. bad option values and huge photos: one line, exit 2 ----------------------------------

@pytest.mark.parametrize("split", ["0.5,0.5", "a,b,c", "1,1,0", "-0.5,1,0.5"])
def test_import_bad_split_is_one_line(capsys, tmp_path, shared_data, split):
    code, _, err = run(capsys, "import", "--labels", tmp_path / "none.csv", "--images", tmp_path,
                       "--out", tmp_path / "o.npz", f"--split={split}")
    assert_one_line_error(code, err, "--split", split)


@pytest.mark.parametrize("meta", ["{bad", "[1, 2]"])
def test_import_bad_meta_is_one_line(capsys, tmp_path, meta):
    code, _, err = run(capsys, "import", "--labels", tmp_path / "none.csv", "--images", tmp_path,
                       "--out", tmp_path / "o.npz", "--meta", meta)
    assert_one_line_error(code, err, "--meta")


@pytest.mark.parametrize("option", [("--count", "0"), ("--count", "-1"), ("--scale", "-1"),
                                    ("--scale", "0"), ("--columns", "0")])
def test_montage_bad_numbers_are_one_line(capsys, small_npz, tmp_path, option):
    code, _, err = run(capsys, "montage", small_npz, "--out", tmp_path / "m.png", *option)
    assert_one_line_error(code, err, option[0], option[1])
    assert not (tmp_path / "m.png").exists()


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG that says it is width x height (its pixel data is that of a 1x1 image)."""
    Image.new("L", (1, 1)).save(path)
    raw = bytearray(path.read_bytes())
    ihdr = raw[12:29]  # chunk type + 13 bytes of data
    ihdr[4:12] = struct.pack(">II", width, height)
    raw[12:29] = ihdr
    raw[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    path.write_bytes(bytes(raw))


def test_a_huge_photo_is_refused_saying_the_limit_and_how_to_raise_it(tmp_path, monkeypatch,
                                                                     capsys):
    from facekp.core.faces.framing import load_photo

    big = tmp_path / "big.png"
    _png_header_only(big, 20000, 20000)
    with pytest.raises(DataError) as info:
        load_photo(big)
    text = str(info.value)
    assert "big.png" in text and "20000 x 20000" in text
    assert "FACEKP_MAX_PHOTO_MEGAPIXELS" in text and "limit" in text
    # Raised limit: the photo is opened (and then found damaged, as it is).
    monkeypatch.setenv("FACEKP_MAX_PHOTO_MEGAPIXELS", "500")
    with pytest.raises(DataError) as info:
        load_photo(big)
    assert "limit" not in str(info.value)


# --- 7. 16-bit and float photos are scaled to 8 bits ---------------------------------------

def test_16_bit_and_float_photos_are_scaled_not_clipped(faces, tmp_path):
    from facekp.core.faces.framing import load_photo, to_gray

    face = faces.images[0]
    p16 = tmp_path / "face16.png"
    Image.fromarray(face.astype(np.uint16) * 257).save(p16)
    gray = to_gray(load_photo(p16))
    assert np.abs(gray.astype(int) - face).max() <= 1
    pf = tmp_path / "facef.tif"
    Image.fromarray(face.astype(np.float32) / 255).save(pf)
    gray = to_gray(load_photo(pf))
    assert np.abs(gray.astype(int) - face).max() <= 1


# --- 9. unknown split names in an .npz are refused, naming them -----------------------------

def test_unknown_split_names_are_refused_naming_them(faces, tmp_path):
    ds = faces.subset(np.arange(6))
    ds = data.Dataset(ds.images, ds.keypoints, ds.names, ds.persons,
                      np.array(["train", "training", "val", "dev", "", "test"]))
    path = tmp_path / "odd.npz"
    data.write_npz(ds, path)
    with pytest.raises(DataError) as info:
        opener.load(path)
    text = str(info.value)
    assert "odd.npz" in text and "'training'" in text and "'dev'" in text
    assert "train, val, test" in text


# --- 10. duplicate images: warned about on import and in info; --dedupe removes them ---------

def test_duplicates_are_warned_about_in_info(capsys, faces, tmp_path):
    ds = faces.subset(np.arange(10))
    twice = ds.concat(ds.subset(np.arange(3)))
    path = tmp_path / "twice.npz"
    data.write_npz(twice, path)
    code, out, err = run(capsys, "info", path)
    assert code == 0 and "3 duplicate" in out + err
    code, out, _ = run(capsys, "info", path, "--json")
    assert json.loads(out)["duplicates"] == 3


def test_import_warns_about_duplicates_and_dedupe_removes_them(capsys, tmp_path, shared_data):
    import csv

    src = shared_data / "ytf68"
    with open(src / "test_frames_keypoints.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    labels = tmp_path / "labels.csv"
    with open(labels, "w", newline="") as fh:
        csv.writer(fh).writerows(rows[:5])
    args = ["import", "--labels", labels, "--images", src / "test",
            "--labels", labels, "--images", src / "test"]
    code, out, err = run(capsys, *args, "--out", tmp_path / "both.npz")
    assert code == 0 and "4 duplicate" in out + err and "--dedupe" in out + err
    assert len(opener.load(tmp_path / "both.npz")) == 8
    code, out, err = run(capsys, *args, "--out", tmp_path / "once.npz", "--dedupe")
    assert code == 0 and "removed 4 duplicate" in out + err
    assert len(opener.load(tmp_path / "once.npz")) == 4
