"""facekp predict DIR --jsonl OUT: streamed records, --resume, --shard, --workers, clear errors.

Real ytf68 face frames copied into a temporary folder; a tiny constant model keeps it fast."""
from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from facekp.core.cli.main import main
from facekp.core.data.keypoints import NAMES

RECORD_KEYS = {"photo", "units", "message", "faces"}


def run(argv: list) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


def records(path: Path) -> list[dict]:
    """Every line of a JSON Lines file, parsed; each line must be complete JSON."""
    text = path.read_text()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


@pytest.fixture(scope="module")
def model(constant_model, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "constant.keras"
    constant_model(np.linspace(30, 66, 30)).save(path)
    return path


@pytest.fixture(scope="module")
def frames(shared_data, tmp_path_factory) -> Path:
    """A folder of 24 real face frames, a sub-folder with 2 more, and a text file."""
    folder = tmp_path_factory.mktemp("frames") / "frames"
    (folder / "more").mkdir(parents=True)
    source = sorted((shared_data / "ytf68" / "test").glob("*.jpg"))
    for photo in source[:24]:
        shutil.copy(photo, folder / photo.name)
    for photo in source[24:26]:
        shutil.copy(photo, folder / "more" / photo.name)
    (folder / "notes.txt").write_text("not a photo")
    return folder


def predict(model, *args) -> tuple[int, str, str]:
    return run(["predict", "--model", model, *args])


def test_jsonl_has_one_complete_record_per_photo_in_sorted_order(model, frames, tmp_path):
    out = tmp_path / "out.jsonl"
    rc, stdout, stderr = predict(model, frames, "--jsonl", out)
    assert rc == 0, stderr
    lines = records(out)
    expected = sorted(str(p) for p in frames.glob("*.jpg"))
    assert [r["photo"] for r in lines] == expected  # the sub-folder and notes.txt left out
    for r in lines:
        assert set(r) == RECORD_KEYS and r["units"] == "pixels of the photo"
        assert len(r["faces"]) >= 1, r["photo"]
        assert list(r["faces"][0]["keypoints"]) == list(NAMES)
        assert all(v is not None for v in r["faces"][0]["keypoints"].values())
    assert "photos/s" in stderr and "ETA" in stderr and "24/24" in stderr
    assert f"wrote 24 records to {out}" in stdout

    deep = tmp_path / "deep.jsonl"
    rc, _, stderr = predict(model, frames, "--recursive", "--jsonl", deep)
    assert rc == 0, stderr
    assert len(records(deep)) == 26
    assert {r["photo"] for r in records(deep)} >= {str(p) for p in (frames / "more").iterdir()}


def test_jsonl_records_equal_the_json_of_plain_predict(model, frames, tmp_path):
    photos = sorted(frames.glob("*.jpg"))[:3]
    out = tmp_path / "out.jsonl"
    rc, _, stderr = predict(model, *photos, "--jsonl", out)
    assert rc == 0, stderr
    rc, stdout, stderr = predict(model, *photos, "--json")
    assert rc == 0, stderr
    assert records(out) == json.loads(stdout)


def test_plain_predict_takes_a_folder(model, frames):
    rc, stdout, stderr = predict(model, frames, "--json")
    assert rc == 0, stderr
    assert [r["photo"] for r in json.loads(stdout)] == sorted(str(p) for p in
                                                              frames.glob("*.jpg"))


def test_resume_skips_exactly_the_done_photos(model, frames, tmp_path):
    photos = sorted(frames.glob("*.jpg"))[:12]
    part = tmp_path / "part"
    part.mkdir()
    for p in photos:
        shutil.copy(p, part / p.name)
    out = tmp_path / "out.jsonl"
    rc, _, stderr = predict(model, *sorted(part.iterdir())[:5], "--jsonl", out)
    assert rc == 0, stderr
    first = out.read_bytes()
    # without --resume an output that holds records is not touched
    rc, _, stderr = predict(model, part, "--jsonl", out)
    assert rc == 2 and "--resume" in stderr and out.read_bytes() == first
    rc, stdout, stderr = predict(model, part, "--jsonl", out, "--resume")
    assert rc == 0, stderr
    assert "5 of these 12 photos are done already" in stderr
    assert f"wrote 7 records to {out}" in stdout
    assert out.read_bytes().startswith(first)  # the done lines kept as they were
    done = [r["photo"] for r in records(out)]
    assert sorted(done) == sorted(str(p) for p in part.iterdir()) and len(done) == 12
    # all done: nothing more is written
    rc, stdout, _ = predict(model, part, "--jsonl", out, "--resume")
    assert rc == 0 and "wrote 0 records" in stdout and len(records(out)) == 12


def test_resume_drops_a_truncated_last_line(model, frames, tmp_path):
    photos = sorted(frames.glob("*.jpg"))[:6]
    full = tmp_path / "full.jsonl"
    rc, _, stderr = predict(model, *photos, "--jsonl", full)
    assert rc == 0, stderr
    lines = full.read_text().splitlines(keepends=True)
    out = tmp_path / "killed.jsonl"
    out.write_text("".join(lines[:4]) + lines[4][:57])  # killed while writing photo 5
    rc, stdout, stderr = predict(model, *photos, "--jsonl", out, "--resume")
    assert rc == 0, stderr
    assert "wrote 2 records" in stdout
    assert out.read_text() == full.read_text()  # every line whole, each photo once


def test_resume_refuses_a_file_that_is_not_records(model, frames, tmp_path):
    out = tmp_path / "other.jsonl"
    text = '{"photo": "a.jpg"}\nhello\n{"photo": "b.j'
    out.write_text(text)
    rc, _, stderr = predict(model, frames, "--jsonl", out, "--resume")
    assert rc == 2 and "line 2" in stderr and "Traceback" not in stderr
    assert out.read_text() == text  # not ours: not even its cut-off last line is removed


@pytest.mark.parametrize("content", [
    bytes(range(0x80, 0x90)),                       # 16 binary bytes
    b"a line of text without its newline",
    b'{"photo": "a.jpg", "faces": []}\nnot a record and no newline',
], ids=["binary", "text", "records-then-text"])
def test_resume_never_drops_a_last_line_that_is_not_the_start_of_a_record(model, frames,
                                                                          tmp_path, content):
    out = tmp_path / "other.jsonl"
    out.write_bytes(content)
    rc, _, stderr = predict(model, frames, "--jsonl", out, "--resume")
    assert rc == 2 and str(out) in stderr and "not a photo record" in stderr, stderr
    assert stderr.count("\n") == 1 and "Traceback" not in stderr
    assert out.read_bytes() == content


def test_overwrite_starts_a_jsonl_file_again(model, frames, tmp_path):
    photos = sorted(frames.glob("*.jpg"))[:3]
    out = tmp_path / "out.jsonl"
    out.write_text('{"photo": "elsewhere.jpg", "faces": []}\n')
    rc, _, stderr = predict(model, *photos, "--jsonl", out, "--resume", "--overwrite")
    assert rc == 2 and "--resume and --overwrite: choose one" in stderr
    rc, _, stderr = predict(model, *photos, "--jsonl", out, "--overwrite")
    assert rc == 0, stderr
    assert [r["photo"] for r in records(out)] == [str(p) for p in photos]


def test_shards_partition_the_photos(model, frames, tmp_path):
    everything = sorted(str(p) for p in frames.glob("*.jpg"))
    shards = []
    for i in (0, 1):
        out = tmp_path / f"shard{i}.jsonl"
        rc, _, stderr = predict(model, frames, "--jsonl", out, "--shard", f"{i}/2")
        assert rc == 0, stderr
        shards.append([r["photo"] for r in records(out)])
    assert shards[0] == everything[0::2] and shards[1] == everything[1::2]
    assert not set(shards[0]) & set(shards[1])
    assert sorted(shards[0] + shards[1]) == everything


def test_two_workers_give_the_same_records_as_one(model, frames, tmp_path):
    photos = sorted(frames.glob("*.jpg"))[:8]
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    rc, _, stderr = predict(model, *photos, "--jsonl", one, "--workers", 1)
    assert rc == 0, stderr
    rc, _, stderr = predict(model, *photos, "--jsonl", two, "--workers", 2)
    assert rc == 0, stderr
    assert records(two) == records(one)
    assert [r["photo"] for r in records(two)] == [str(p) for p in photos]


def test_an_unreadable_photo_gets_an_error_record_and_the_rest_are_done(model, frames, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_text("this is text")
    good = sorted(frames.glob("*.jpg"))[0]
    out = tmp_path / "out.jsonl"
    rc, stdout, stderr = predict(model, bad, good, "--jsonl", out)
    assert rc == 2 and "broken.jpg" in stderr and "Traceback" not in stderr
    first, second = records(out)
    assert first["photo"] == str(bad) and first["faces"] == [] and first["error"]
    assert second["photo"] == str(good) and second["faces"] and "error" not in second
    assert "1 unreadable" in stdout


@pytest.mark.parametrize("extra, message", [
    (["--shard", "3/2"], "--shard 3/2: expected I/N"),
    (["--shard", "0/0"], "--shard 0/0: expected I/N"),
    (["--shard", "a/b"], "--shard a/b: expected I/N"),
    (["--shard", "1"], "--shard 1: expected I/N"),
    (["--workers", "0"], "--workers must be 1 or more"),
    (["--json"], "--json and --jsonl: choose one"),
])
def test_bad_options_are_one_line_errors(model, frames, tmp_path, extra, message):
    out = tmp_path / "out.jsonl"
    rc, _, stderr = predict(model, frames, "--jsonl", out, *extra)
    assert rc == 2 and message in stderr
    assert stderr.count("\n") == 1 and "Traceback" not in stderr
    assert not out.exists()


def test_resume_shard_and_workers_need_jsonl(model, frames):
    for extra in (["--resume"], ["--shard", "0/2"], ["--workers", "2"]):
        rc, _, stderr = predict(model, frames, *extra)
        assert rc == 2 and f"{extra[0]} needs --jsonl" in stderr, extra


def test_a_folder_without_photos_is_a_clear_error(model, tmp_path):
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "readme.txt").write_text("no photos here")
    for extra in (["--jsonl", tmp_path / "out.jsonl"], []):
        rc, _, stderr = predict(model, empty, *extra)
        assert rc == 2 and f"{empty}: no photos in this folder" in stderr
        assert "--recursive" in stderr and stderr.count("\n") == 1
    assert not (tmp_path / "out.jsonl").exists()


def test_an_output_that_is_an_input_is_refused(model, frames, tmp_path):
    photo = tmp_path / "face.jpg"
    shutil.copy(sorted(frames.glob("*.jpg"))[0], photo)
    before = photo.read_bytes()
    rc, _, stderr = predict(model, photo, "--jsonl", photo, "--resume")
    assert rc == 2 and "is also an input" in stderr
    assert photo.read_bytes() == before
