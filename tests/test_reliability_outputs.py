"""Issue 20: nothing a person owns is replaced without being asked, and a killed run leaves
nothing behind. An existing output is replaced only with --overwrite; two outputs of one run
never share a path; a device or named pipe is never renamed over; the temporaries of a killed
export go on the next run; export folders get the person's umask."""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facekp.core.data import dataset as data
from facekp.core.data import formats, kaggle_csv, opener
from facekp.core.photos import importers
from facekp.core.fileio import remove_stale_partials
from cli_run import assert_one_line_error, run

ROOT = Path(__file__).resolve().parent.parent
FACES = ROOT / "resources" / "faces.npz"
OUT = {"coco": "faces.json", "dlib": "faces.xml", "pts": "faces_pts", "csv": "faces.csv"}


def snapshot(path: Path) -> dict:
    """Every file under ``path`` (or the file itself) with its bytes."""
    if path.is_file():
        return {path.name: path.read_bytes()}
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*"))
            if p.is_file()}


def read_export(fmt: str, out: Path) -> data.Dataset:
    if fmt == "csv":
        return opener.load(out)
    images = {"coco": formats.images_folder(out), "dlib": out.parent, "pts": out}[fmt]
    return importers.import_labels(images, None if fmt == "pts" else out)[0]


@pytest.fixture(scope="module")
def six_npz(faces, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("six") / "six.npz"
    return data.write_npz(faces.subset(np.arange(6)), path)


@pytest.fixture(scope="module")
def model(constant_model, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "constant.keras"
    constant_model(np.linspace(30, 66, 30)).save(path)
    return path


# --- export: an existing output only with --overwrite ----------------------------------------

@pytest.mark.parametrize("fmt", ["coco", "dlib", "pts", "csv"])
def test_export_replaces_an_existing_output_only_with_overwrite(capsys, six_npz, faces,
                                                                 tmp_path, fmt):
    out = tmp_path / OUT[fmt]
    code, _, err = run(capsys, "export", six_npz, "--format", fmt, "--out", out)
    assert code == 0, err
    before = {p.name: snapshot(p) for p in tmp_path.iterdir()}
    other = tmp_path / "other.npz"
    data.write_npz(faces.subset(np.arange(6, 10)), other)
    code, _, err = run(capsys, "export", other, "--format", fmt, "--out", out)
    assert_one_line_error(code, err, out.name, "already exists", "--overwrite")
    assert {p.name: snapshot(p) for p in tmp_path.iterdir() if p != other} == before
    code, stdout, err = run(capsys, "export", other, "--format", fmt, "--out", out,
                            "--overwrite")
    assert code == 0 and stdout.startswith("wrote 4 faces"), err
    assert len(read_export(fmt, out)) == 4  # the new export whole, no old image left
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_export_overwrite_never_replaces_a_folder_it_did_not_write(capsys, six_npz, tmp_path):
    out = tmp_path / "faces.json"
    folder = formats.images_folder(out)
    folder.mkdir()
    (folder / "holiday.jpg").write_bytes(b"mine")
    code, _, err = run(capsys, "export", six_npz, "--format", "coco", "--out", out,
                       "--overwrite")
    assert_one_line_error(code, err, folder, "not an empty folder")
    assert [p.name for p in folder.iterdir()] == ["holiday.jpg"] and not out.exists()


# --- never rename over a device or a named pipe --------------------------------------------

@pytest.mark.parametrize("command", [
    ["export", "{data}", "--format", "csv", "--out", "{out}", "--overwrite"],
    ["export", "{data}", "--format", "coco", "--out", "{out}", "--overwrite"],
    ["montage", "{data}", "--out", "{out}", "--count", "2", "--overwrite"],
    ["convert", "{data}", "--out", "{out}", "--overwrite"],
], ids=["export-csv", "export-coco", "montage", "convert"])
def test_a_named_pipe_is_never_replaced(capsys, six_npz, tmp_path, command):
    pipe = tmp_path / ("pipe.json" if "coco" in command else "pipe.npz")
    os.mkfifo(pipe)
    argv = [a.format(data=six_npz, out=pipe) for a in command]
    code, _, err = run(capsys, *argv)
    assert_one_line_error(code, err, pipe, "is a named pipe", "never writes there")
    assert stat.S_ISFIFO(os.lstat(pipe).st_mode)
    assert [p.name for p in tmp_path.iterdir()] == [pipe.name]


def _device_like_dev_full(path: Path) -> Path:
    """A character device node with /dev/full's numbers, where a test may lose it: only as
    root (checked, not assumed); the machine's own /dev/full is never put at risk."""
    full = os.stat("/dev/full")
    if os.geteuid() != 0 or not os.access("/dev/full", os.W_OK):
        pytest.skip("making a device node needs root")
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, full.st_rdev)
    except OSError as exc:
        pytest.skip(f"cannot make a device node here: {exc}")
    return path


@pytest.mark.parametrize("fmt", ["csv", "dlib"])
def test_a_device_is_never_replaced(capsys, six_npz, tmp_path, fmt):
    node = _device_like_dev_full(tmp_path / f"full.{'xml' if fmt == 'dlib' else 'csv'}")
    code, _, err = run(capsys, "export", six_npz, "--format", fmt, "--out", node,
                       "--overwrite")
    assert_one_line_error(code, err, node, "is a device", "never writes there")
    assert stat.S_ISCHR(os.lstat(node).st_mode)
    assert [p.name for p in tmp_path.iterdir()] == [node.name]


# --- predict --draw: no unrelated drawing replaced, no two photos to one file ---------------

def _photo(shared_data, path: Path) -> Path:
    Image.open(shared_data / "photos" / "Tom_Cruise_avp_2014_4.jpg").save(path)
    return path


def test_predict_draw_replaces_an_existing_drawing_only_with_overwrite(capsys, model, tmp_path,
                                                                      shared_data):
    photo = _photo(shared_data, tmp_path / "tom.jpg")
    drawings = tmp_path / "drawn"
    drawings.mkdir()
    (drawings / "tom.png").write_bytes(b"a drawing of my own")
    argv = ["predict", photo, "--model", model, "--detector", "haar", "--draw", drawings]
    code, _, err = run(capsys, *argv)
    assert_one_line_error(code, err, drawings / "tom.png", "already exists", "--overwrite")
    assert (drawings / "tom.png").read_bytes() == b"a drawing of my own"
    code, stdout, err = run(capsys, *argv, "--overwrite")
    assert code == 0 and f"-> {drawings / 'tom.png'}" in stdout, err
    with Image.open(drawings / "tom.png") as im:
        assert im.size == Image.open(photo).size


def test_two_photos_are_never_drawn_to_one_file(capsys, model, tmp_path, shared_data):
    photos = [_photo(shared_data, tmp_path / "tom.jpg"), _photo(shared_data, tmp_path / "tom.png")]
    drawings = tmp_path / "drawn"
    code, _, err = run(capsys, "predict", *photos, "--model", model, "--draw", drawings,
                       "--overwrite")
    assert_one_line_error(code, err, drawings / "tom.png", "tom.jpg", "tom.png", "both")
    assert not drawings.exists() or not list(drawings.iterdir())


# --- every command: an existing output only with --overwrite ----------------------------------

def test_montage_import_and_submit_replace_an_existing_output_only_with_overwrite(
        capsys, six_npz, faces, tmp_path, tmp_path_factory, shared_data):
    kaggle_test = tmp_path_factory.mktemp("kaggle") / "test.csv"
    kaggle_csv.write_kaggle_csv(faces.subset(np.arange(3)), kaggle_test, layout="test")
    out = tmp_path / "mine.png"
    out.write_bytes(b"mine")
    code, _, err = run(capsys, "montage", six_npz, "--out", out, "--count", "2")
    assert_one_line_error(code, err, out, "already exists", "--overwrite")
    out.with_suffix(".npz").write_bytes(b"mine")
    code, _, err = run(capsys, "import", "--labels", shared_data / "ytf68" /
                       "test_frames_keypoints.csv", "--images", shared_data / "ytf68" / "test",
                       "--out", out.with_suffix(".npz"))
    assert_one_line_error(code, err, "mine.npz", "already exists", "--overwrite")
    out.with_suffix(".csv").write_bytes(b"mine")
    code, _, err = run(capsys, "submit", "--test", kaggle_test,
                       "--lookup", shared_data / "kaggle" / "IdLookupTable.csv",
                       "--out", out.with_suffix(".csv"))
    assert_one_line_error(code, err, "mine.csv", "already exists", "--overwrite")
    assert all(p.read_bytes() == b"mine" for p in tmp_path.iterdir())
    code, _, err = run(capsys, "montage", six_npz, "--out", out, "--count", "2", "--overwrite")
    assert code == 0, err
    with Image.open(out) as im:
        assert im.format == "PNG"


# --- the app's --screenshot ---------------------------------------------------------------

def test_screenshot_never_replaces_the_dataset_it_opens_or_an_existing_file(capsys, six_npz,
                                                                             tmp_path):
    from facekp.gui import app

    dataset = tmp_path / "s.npz"
    shutil.copy(six_npz, dataset)
    before = dataset.read_bytes()
    for argv, words in (
            (["--screenshot", dataset, "--data", dataset, "--overwrite"], ["s.npz", "input"]),
            (["--screenshot", tmp_path / "." / "s.npz", dataset], ["s.npz", "input"]),
            (["--screenshot", FACES, "--overwrite"], ["faces.npz", "input"]),
            (["--screenshot", dataset, "--data", six_npz], ["s.npz", "already exists",
                                                            "--overwrite"])):
        with pytest.raises(SystemExit) as exit_:
            app.main([str(a) for a in argv])
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and len(err.strip().splitlines()) == 1, err
        assert all(w in err for w in words), err
    assert dataset.read_bytes() == before


# --- 5. leftovers -----------------------------------------------------------------------------

def test_a_killed_export_leaves_nothing_after_the_next_run(tmp_path):
    out = tmp_path / "faces.json"
    argv = [sys.executable, "-m", "facekp.core.cli.main", "export", str(FACES), "--format",
            "coco", "--out", str(out)]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            folders = list(tmp_path.glob(".faces_images.*.partial"))
            if folders and len(list(folders[0].iterdir())) >= 50:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the export ended before it could be killed"
    finally:
        proc.kill()
        proc.wait()
    left = sorted(p.name for p in tmp_path.iterdir())
    assert any(n.endswith(".partial.json") for n in left), left   # the JSON's temporary
    assert any(n.startswith(".faces_images.") for n in left), left  # and the image folder's
    code = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    assert code.returncode == 0, code.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["faces.json", "faces_images"]


@pytest.mark.parametrize("fmt", ["coco", "pts"])
def test_export_folders_get_the_persons_umask(six_npz, tmp_path, fmt):
    old = os.umask(0o022)
    try:
        written = formats.export(opener.load(six_npz), fmt, tmp_path / OUT[fmt])
    finally:
        os.umask(old)
    folder = written[-1]
    assert folder.is_dir() and stat.S_IMODE(folder.stat().st_mode) == 0o755


def test_stale_temporaries_of_one_output_are_told_from_another_outputs(tmp_path):
    mine = [tmp_path / ".a.k3j9x0_q.partial.json", tmp_path / ".a.8charsxx.partial"]
    others = [tmp_path / ".a.b.k3j9x0_q.partial.json", tmp_path / ".a.k3j9x0_q.partial.xml"]
    for p in mine[:1] + others:
        p.write_text("x")
    mine[1].mkdir()
    (mine[1] / "000001.png").write_bytes(b"x")
    assert sorted(remove_stale_partials(tmp_path / "a.json")) == [mine[0]]
    assert remove_stale_partials(tmp_path / "a") == [mine[1]]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in others)
