"""`facekp import | info | montage`: outputs, reports, and one-line errors with exit status 2."""
from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from facekp.core.data import dataset as data
from facekp.core.data import kaggle_csv
from facekp.core.data import opener
from cli_run import assert_one_line_error, run

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def folder(tmp_path_factory, shared_data) -> tuple[Path, Path]:
    """Eight ytf68 test-folder photos of four people, in the ytf68 layout."""
    with open(shared_data / "ytf68" / "test_frames_keypoints.csv", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        rows = list(reader)
    by_person: dict[str, list] = {}
    for row in rows:
        by_person.setdefault(row[0].rsplit("_", 1)[0], []).append(row)
    picked = [r for person in sorted(by_person)[:4] for r in by_person[person][:2]]
    root = tmp_path_factory.mktemp("cli")
    images = root / "images"
    images.mkdir()
    for row in picked:
        shutil.copy(shared_data / "ytf68" / "test" / row[0], images / row[0])
    labels = root / "labels.csv"
    with open(labels, "w", newline="") as fh:
        csv.writer(fh).writerows([header] + picked)
    return labels, images


def test_import_into_ibug68_keeps_all_68_points_framed_as_kaggle15_faces(capsys, folder,
                                                                         tmp_path):
    """--keypoints ibug68: the same crops as a kaggle15 import, all 68 labelled points in them,
    and their kaggle15 view (the 68 -> 15 derivation) the kaggle15 import's keypoints."""
    from facekp.core.data import keypoint_sets as ks

    labels, images = folder
    for name, keypoints in (("k15.npz", "kaggle15"), ("i68.npz", "ibug68")):
        code, _, err = run(capsys, "import", "--labels", labels, "--images", images,
                           "--detector", "none", "--keypoints", keypoints,
                           "--out", tmp_path / name)
        assert code == 0, err
    k15, i68 = opener.load(tmp_path / "k15.npz"), opener.load(tmp_path / "i68.npz")
    assert k15.keypoint_set == ks.KAGGLE15 and i68.keypoint_set == ks.IBUG68
    # Kaggle-like framing cuts the lower jaw: those points are missing, the rest are there
    assert i68.keypoints.shape == (8, 136) and np.isfinite(i68.keypoints[:, 34:]).all()
    assert np.isfinite(i68.keypoints).mean() > 0.85
    np.testing.assert_array_equal(i68.images, k15.images)
    both = np.isfinite(k15.keypoints) & np.isfinite(i68.in_set(ks.KAGGLE15).keypoints)
    assert both.mean() > 0.95
    np.testing.assert_allclose(i68.in_set(ks.KAGGLE15).keypoints[both], k15.keypoints[both],
                               atol=1e-4)
    code, out, _ = run(capsys, "info", tmp_path / "i68.npz")
    assert "keypoint set: ibug68 (68 keypoints)" in out


def test_import_into_a_set_without_68_point_sources_is_one_line(capsys, folder, tmp_path):
    labels, images = folder
    hand = tmp_path / "hand.json"
    hand.write_text('{"name": "hand", "keypoints": ["thumb", "palm"]}')
    code, _, err = run(capsys, "import", "--labels", labels, "--images", images,
                       "--keypoints", hand, "--out", tmp_path / "h.npz")
    assert_one_line_error(code, err, "'hand'", "from_68")
    assert not (tmp_path / "h.npz").exists()


def test_import_writes_npz_and_reports_faces(capsys, folder, tmp_path):
    labels, images = folder
    out = tmp_path / "faces.npz"
    code, stdout, stderr = run(capsys, "import", "--labels", labels, "--images", images,
                               "--out", out)
    assert code == 0
    assert "faces in: 8, faces out: 8, dropped: 0" in stdout
    assert "left_eye_center" in stdout and "std x" in stdout  # per-keypoint statistics
    assert f"wrote 8 faces to {out}" in stdout
    assert "8/8" in stderr  # the progress line reached the end
    ds = opener.load(out)
    assert len(ds) == 8 and ds.images.shape == (8, 96, 96)
    assert len(set(ds.persons)) == 4
    assert ds.meta["imported_from"] == [str(images)]


def test_import_to_kaggle_csv_with_a_split_by_person(capsys, folder, tmp_path):
    labels, images = folder
    out = tmp_path / "faces.csv"
    code, stdout, _ = run(capsys, "import", "--labels", labels, "--images", images,
                          "--out", out, "--split", "0.5,0.25,0.25", "--seed", "1")
    assert code == 0 and "== written" in stdout
    assert out.read_text().splitlines()[0].endswith(",Image")
    ds = opener.load(out)
    assert len(ds) == 8 and not np.isnan(ds.keypoints[:, :4]).any()


def test_info_json_keys(capsys, faces, tmp_path):
    path = data.write_npz(faces.subset(np.arange(0, len(faces), 97)), tmp_path / "d.npz")
    code, stdout, _ = run(capsys, "info", path, "--json")
    assert code == 0
    info = json.loads(stdout)
    assert set(info) == {"file", "faces", "complete", "people", "duplicates", "splits",
                         "keypoints", "keypoint_set", "keypoints_per_face"}
    assert info["keypoint_set"] == "kaggle15" and info["keypoints_per_face"] == 15
    assert info["duplicates"] == 0
    assert info["faces"] == 40 and info["file"] == str(path)
    assert set(info["splits"]) == {"train", "val", "test"}
    assert sum(info["splits"].values()) == 40
    assert len(info["keypoints"]) == 15
    assert set(info["keypoints"]["nose_tip"]) == {"missing", "mean_x", "mean_y",
                                                  "std_x", "std_y"}


def test_info_reads_a_kaggle_csv_as_text(capsys, faces, tmp_path):
    path = kaggle_csv.write_kaggle_csv(faces.subset(np.arange(6)), tmp_path / "training.csv")
    code, stdout, _ = run(capsys, "info", path)
    assert code == 0
    assert "faces: 6" in stdout and "unassigned 6" in stdout and "mouth_center_bottom_lip" in stdout


def test_montage_writes_a_png(capsys, faces, tmp_path):
    from PIL import Image

    out = tmp_path / "m.png"
    code, stdout, _ = run(capsys, "montage", ROOT / "resources" / "faces.npz", "--out", out,
                          "--count", "6", "--columns", "3", "--scale", "1", "--split", "val")
    assert code == 0 and "wrote 6 faces" in stdout
    with Image.open(out) as im:
        assert im.width >= 3 * 96 and im.height >= 2 * 96


def test_an_output_that_cannot_be_written_exits_2_naming_it(capsys, tmp_path):
    data = ROOT / "resources" / "faces.npz"
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file where a folder would have to be\n")
    code, _, err = run(capsys, "montage", data, "--out", blocker / "m.png", "--count", "2")
    assert_one_line_error(code, err, "notes.txt/m.png", "notes.txt is a file, not a folder")
    code, _, err = run(capsys, "montage", data, "--out", tmp_path, "--count", "2")
    assert_one_line_error(code, err, str(tmp_path), "is a folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # nothing half-written


def test_misspelled_file_exits_2(capsys, tmp_path):
    code, _, err = run(capsys, "info", tmp_path / "facse.npz")
    assert_one_line_error(code, err, "facse.npz", "no such")


def test_bad_csv_exits_2_naming_row_and_column(capsys, faces, tmp_path):
    path = kaggle_csv.write_kaggle_csv(faces.subset(np.arange(3)), tmp_path / "training.csv")
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace(",", ",abc", 1)  # second data row, second column
    path.write_text("\n".join(lines) + "\n")
    code, _, err = run(capsys, "info", path)
    assert_one_line_error(code, err, str(path), "row 3", "'left_eye_center_y'")


def test_import_errors_exit_2(capsys, folder, tmp_path):
    labels, images = folder
    code, _, err = run(capsys, "import", "--labels", tmp_path / "lables.csv", "--images",
                       images, "--out", tmp_path / "x.npz")
    assert_one_line_error(code, err, "lables.csv")
    code, _, err = run(capsys, "import", "--labels", labels, "--images", tmp_path / "nowhere",
                       "--out", tmp_path / "x.npz")
    assert_one_line_error(code, err, "nowhere", "not a directory")
    code, _, err = run(capsys, "import", "--labels", labels, "--images", images,
                       "--out", tmp_path / "x.txt")
    assert code == 2 and "Traceback" not in err and "unknown dataset format" in err
    assert not (tmp_path / "x.npz").exists() and not (tmp_path / "x.txt").exists()


def test_import_of_a_folder_without_faces_writes_nothing(capsys, folder, tmp_path):
    labels, _ = folder
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run(capsys, "import", "--labels", labels, "--images", empty,
                       "--out", tmp_path / "x.npz")
    assert code == 2 and "no face could be imported" in err.strip().splitlines()[-1]
    assert "Traceback" not in err
    assert not (tmp_path / "x.npz").exists()


def test_error_in_a_real_process_has_no_traceback(tmp_path):
    bad = tmp_path / "faces.npz"
    bad.write_text("not a zip")
    proc = subprocess.run([sys.executable, "-m", "facekp.core.cli.main", "info", str(bad)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        f"facekp info: error: {bad}: not a .npz file (a .npz is a zip archive of numpy arrays)"]


def test_import_writes_shards_with_an_index(capsys, folder, tmp_path):
    from facekp.core.data import shards

    labels, images = folder
    out = tmp_path / "faces"
    code, stdout, _ = run(capsys, "import", "--labels", labels, "--images", images,
                          "--detector", "none", "--split", "0.5,0.25,0.25", "--out", out,
                          "--shards", "2")
    assert code == 0 and f"wrote 8 faces to {out}" in stdout
    index = json.loads((out / shards.INDEX).read_text())
    assert index["faces"] == 8 and len(index["people"]) == 4
    assert sum(s["faces"] for s in index["splits"].values()) == 8
    ds = opener.load(out)
    assert len(ds) == 8 and set(ds.splits) <= {"train", "val", "test"}
    assert ds.meta["imported_from"] == [str(images)]
    code, _, err = run(capsys, "import", "--labels", labels, "--images", images, "--out", out,
                       "--shards", "2")
    assert_one_line_error(code, err, "already exists", "--overwrite")
    code, _, err = run(capsys, "import", "--labels", labels, "--images", images, "--out",
                       tmp_path / "x", "--shards", "0")
    assert_one_line_error(code, err, "--shards must be 1 or more")
