"""TFRecord shards (facekp.core.data.shards): written and read back exactly, streamed for training and
evaluation with the same results as the .npz, clear errors for bad folders and files."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from facekp.core.data import dataset as data
from facekp.core.data import opener

from facekp.core.data import shards
from facekp.core.errors import DataError
from cli_run import run


@pytest.fixture(scope="module")
def mixed(faces):
    """Real faces of every split, all the embedded faces with missing keypoints among them,
    and a few faces without a split."""
    rng = np.random.default_rng(1)
    incomplete = np.flatnonzero(~faces.present.all(axis=1))
    picks = [rng.choice(np.flatnonzero(faces.splits == s), n, replace=False)
             for s, n in (("train", 120), ("val", 40), ("test", 40))]
    ds = faces.subset(np.unique(np.concatenate([incomplete, *picks])))
    ds.splits[:5] = ""
    return ds


@pytest.fixture(scope="module")
def written(mixed, tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    data.write_npz(mixed, root / "mixed.npz")
    index = shards.write_shards(mixed, root / "mixed", 3)
    return root, index


def test_shards_read_back_the_same_faces_in_the_same_order(mixed, written):
    root, index = written
    back = shards.open_shards(root / "mixed").read()
    assert np.array_equal(back.images, mixed.images)
    assert np.array_equal(back.keypoints, mixed.keypoints, equal_nan=True)
    assert np.isnan(back.keypoints).sum() == np.isnan(mixed.keypoints).sum() > 0
    for field in ("names", "persons", "splits"):
        assert np.array_equal(getattr(back, field), getattr(mixed, field)), field
    assert back.meta == mixed.meta  # the dataset's meta travels too
    assert opener.load(root / "mixed").names.tolist() == mixed.names.tolist()


def test_the_index_counts_faces_per_file_and_split(mixed, written):
    root, index = written
    assert index["format"] == shards.FORMAT and index["version"] == shards.VERSION
    assert index["faces"] == len(mixed) and len(index["keypoint_names"]) == 15
    on_disk = json.loads((root / "mixed" / shards.INDEX).read_text())
    assert on_disk == index
    for split, label in (("train", "train"), ("val", "val"), ("test", "test"),
                         ("", "unassigned")):
        part = mixed.subset(np.flatnonzero(mixed.splits == split))
        entry = index["splits"][label]
        assert entry["faces"] == len(part)
        assert entry["complete"] == int(part.present.all(axis=1).sum())
        assert entry["people"] == len(set(part.persons))
        files = [f for f in index["files"] if f["split"] == split]
        assert len(files) == entry["files"] == min(3, len(part))
        assert sum(f["faces"] for f in files) == len(part)
        assert all((root / "mixed" / f["file"]).stat().st_size == f["bytes"] for f in files)
    assert index["people"] == sorted(set(mixed.persons))


def test_a_split_streams_its_faces_and_complete_ones_by_the_index(mixed, written):
    import tensorflow as tf

    root, _ = written
    train = shards.open_shards(root / "mixed").split("train")
    expect = mixed.split("train")
    assert len(train) == len(expect)
    assert len(train.complete()) == len(expect.complete()) < len(expect)
    got = list(train.complete().elements(shuffle=True, seed=3).as_numpy_iterator())
    assert len(got) == len(expect.complete())
    assert not any(np.isnan(y).any() for _, y in got)
    want = {img.tobytes() for img in expect.complete().images}
    assert {x[..., 0].tobytes() for x, _ in got} == want
    policy = tf.data.experimental.AutoShardPolicy
    assert train.auto_shard_policy(3) == policy.FILE  # whole files for each worker
    assert train.auto_shard_policy(4) == policy.DATA  # more workers than files


def test_info_from_shards_matches_info_from_the_npz(capsys, written):
    root, _ = written
    code, from_npz, _ = run(capsys, "info", root / "mixed.npz", "--json")
    assert code == 0
    code, from_shards, _ = run(capsys, "info", root / "mixed", "--json")
    assert code == 0
    a, b = json.loads(from_npz), json.loads(from_shards)
    assert b.pop("shards") == 12  # 3 each for train, val, test and the 5 unassigned
    a.pop("file"), b.pop("file")
    assert a == b


def test_evaluate_from_shards_gives_the_npz_rmse(capsys, written):
    root, _ = written
    results = []
    for source in (root / "mixed.npz", root / "mixed"):
        code, out, _ = run(capsys, "evaluate", "--data", source, "--split", "test", "--json")
        assert code == 0
        results.append(json.loads(out))
    assert results[0]["faces"] == results[1]["faces"] >= 35
    assert results[1]["rmse_px"] == pytest.approx(results[0]["rmse_px"], abs=1e-5)
    assert results[1]["per_keypoint"] == pytest.approx(results[0]["per_keypoint"], abs=1e-5)


def test_train_one_epoch_from_shards(capsys, written, tmp_path):
    from facekp.core.model.predict import load_model
    from facekp.core.model.checkpoints import read_record

    root, index = written
    out = tmp_path / "m.keras"
    code, stdout, stderr = run(capsys, "train", "--data", root / "mixed", "--arch", "seed",
                               "--epochs", "1", "--out", out)
    assert code == 0, stderr
    record = read_record(out)
    assert record["train_faces"] == index["splits"]["train"]["complete"]  # seed: complete only
    assert record["val_faces"] == index["splits"]["val"]["faces"]
    assert record["data"] == str(root / "mixed")
    assert np.isfinite(record["best_val_rmse_px"])
    assert load_model(out) is not None
    assert "ran out of data" not in stderr  # Keras knows each pass's length


def test_convert_round_trip_and_outputs_never_overwritten(capsys, written, tmp_path):
    root, _ = written
    out = tmp_path / "sh"
    code, stdout, _ = run(capsys, "convert", root / "mixed.npz", "--out", out, "--shards", "2")
    assert code == 0 and "wrote" in stdout and (out / shards.INDEX).is_file()
    code, _, err = run(capsys, "convert", root / "mixed.npz", "--out", out, "--shards", "2")
    assert code == 2 and "already exists" in err and "--overwrite" in err
    code, _, err = run(capsys, "convert", root / "mixed.npz", "--out", out, "--shards", "1",
                       "--overwrite")
    assert code == 0
    assert len(json.loads((out / shards.INDEX).read_text())["files"]) == 4  # one per split
    assert not list(tmp_path.glob(".sh.*"))  # no temporary or old folder left
    back = tmp_path / "back.npz"
    assert run(capsys, "convert", out, "--out", back)[0] == 0
    a, b = opener.load(root / "mixed.npz"), opener.load(back)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.splits, b.splits)
    code, _, err = run(capsys, "convert", out, "--out", out, "--shards", "2", "--overwrite")
    assert code == 2 and "input" in err  # the input folder itself
    inside = tmp_path / "holder"
    shutil.copytree(out, inside)
    shutil.copy(back, inside / "back.npz")
    code, _, err = run(capsys, "convert", inside / "back.npz", "--out", inside, "--shards", "2",
                       "--overwrite")
    assert code == 2 and "holds an input" in err
    assert (inside / "back.npz").is_file()


def test_a_folder_that_is_not_shards_is_never_replaced(capsys, written, tmp_path):
    root, _ = written
    keep = tmp_path / "mine"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    code, _, err = run(capsys, "convert", root / "mixed.npz", "--out", keep, "--shards", "2",
                       "--overwrite")
    assert code == 2 and "not a shard folder" in err
    assert (keep / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("shards_arg", ["0", "-2"])
def test_fewer_than_one_shard_is_refused(capsys, written, tmp_path, shards_arg):
    root, _ = written
    code, _, err = run(capsys, "convert", root / "mixed.npz", "--out", tmp_path / "x",
                       "--shards", shards_arg)
    assert code == 2 and "--shards must be 1 or more" in err
    assert not (tmp_path / "x").exists()
    with pytest.raises(DataError, match="1 or more"):
        shards.write_shards(opener.load(root / "mixed.npz"), tmp_path / "y", 0)


def test_a_folder_without_an_index_is_a_clear_error(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    for argv in (("info", tmp_path / "empty"), ("evaluate", "--data", tmp_path / "empty"),
                 ("train", "--data", tmp_path / "empty", "--out", tmp_path / "m.keras")):
        code, _, err = run(capsys, *argv)
        assert code == 2 and "no index.json" in err and "Traceback" not in err


def _copy(root: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(root / "mixed", target)
    return target


def _fix_sizes(folder: Path) -> None:
    """The index's sizes made to match the files (so that only reading finds damage)."""
    index = json.loads((folder / shards.INDEX).read_text())
    for f in index["files"]:
        f["bytes"] = (folder / f["file"]).stat().st_size
    (folder / shards.INDEX).write_text(json.dumps(index))


def test_a_corrupt_shard_is_named(capsys, written, tmp_path):
    root, index = written
    folder = _copy(root, tmp_path)
    victim = folder / next(f["file"] for f in index["files"] if f["split"] == "test")
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 2: len(raw) // 2 + 64] = bytes(64)  # same size, bad checksum
    victim.write_bytes(bytes(raw))
    code, _, err = run(capsys, "evaluate", "--data", folder, "--split", "test")
    assert code == 2 and victim.name in err and "corrupt shard" in err
    assert len(err.strip().splitlines()) == 1
    assert "{{" not in err and "function_node" not in err and "Op:" not in err  # no internals
    code, _, err = run(capsys, "info", folder)
    assert code == 2 and victim.name in err
    train = folder / next(f["file"] for f in index["files"] if f["split"] == "train")
    shutil.copy(victim, train)
    _fix_sizes(folder)
    code, _, err = run(capsys, "train", "--data", folder, "--epochs", "1", "--out",
                       tmp_path / "m.keras")
    assert code == 2 and train.name in err and "corrupt shard" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "{{" not in err and "function_node" not in err
    victim.write_bytes(bytes(raw[:-100]))  # cut short
    code, _, err = run(capsys, "info", folder)
    assert code == 2 and victim.name in err and "bytes" in err
    victim.unlink()
    code, _, err = run(capsys, "info", folder)
    assert code == 2 and victim.name in err and "missing" in err


@pytest.mark.parametrize("arch, more", [("seed", 1), ("convbn", -1)])
def test_train_checks_each_files_face_count_as_info_does(capsys, written, tmp_path, arch,
                                                         more):
    """A file holding another number of faces than its index entry says: train stops with
    the line info gives (seed streams complete faces only, convbn every face)."""
    root, _ = written
    folder = _copy(root, tmp_path)
    index = json.loads((folder / shards.INDEX).read_text())
    entry = next(f for f in index["files"] if f["split"] == "train")
    entry["faces"] += more
    (folder / shards.INDEX).write_text(json.dumps(index))
    said = f"{entry['file']}: holds {entry['faces'] - more} faces, the index says {entry['faces']}"
    code, _, err = run(capsys, "info", folder)
    assert code == 2 and said in err
    code, _, err = run(capsys, "train", "--data", folder, "--arch", arch, "--epochs", "2",
                       "--batch-size", "64", "--no-confidence-head", "--out", tmp_path / "m.keras")
    assert code == 2 and said in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_bad_index_is_a_clear_error(capsys, written, tmp_path):
    root, _ = written
    folder = _copy(root, tmp_path)
    index = folder / shards.INDEX
    index.write_text("{not json")
    code, _, err = run(capsys, "info", folder)
    assert code == 2 and "index.json" in err and "not a readable shard index" in err
    index.write_text(json.dumps({"format": shards.FORMAT, "version": shards.VERSION + 1}))
    code, _, err = run(capsys, "info", folder)
    assert code == 2 and "update facekp" in err


def test_shards_without_splits_cannot_train(capsys, mixed, tmp_path):
    plain = data.Dataset.from_arrays(mixed.images[:20], mixed.keypoints[:20])
    shards.write_shards(plain, tmp_path / "plain", 2)
    code, _, err = run(capsys, "train", "--data", tmp_path / "plain", "--out",
                       tmp_path / "m.keras")
    assert code == 2 and "no splits assigned" in err and "--split" in err


def test_the_app_opens_a_shard_folder(qtbot, open_window, gui_settings, mixed, written,
                                      monkeypatch):
    from facekp.gui.files import kind_of

    monkeypatch.setattr("facekp.core.resources.default_model", lambda: None)
    root, _ = written
    assert kind_of(root / "mixed") == "dataset" and kind_of(root / "mixed.npz") == "dataset"
    window = open_window(qtbot, data=str(root / "mixed"), image=2)  # no model: ground truth
    dataset = window.session.dataset
    assert len(dataset) == len(mixed) and dataset.names[2] == mixed.names[2]
    assert np.array_equal(dataset.images, mixed.images)


@pytest.mark.parametrize("workers", [2, 5])  # 3 files a split: whole files, then faces
def test_workers_share_a_stream_without_overlap(mixed, written, workers):
    """Each worker of a multi-worker run streams its own share of the training faces: whole
    files when there are enough, else every count-th face; together every face, none twice."""
    from facekp.core.model.pipeline import pipeline

    root, _ = written
    train = shards.open_shards(root / "mixed").split("train")
    shares = []
    for index in range(workers):
        d = pipeline(train, 16, shuffle=True, seed=4, shard=(workers, index))
        shares.append([x[..., 0].astype(np.uint8).tobytes() for b, _ in d.as_numpy_iterator()
                       for x in b])
    seen = [face for share in shares for face in share]
    assert len(seen) == len(set(seen)) == len(train)
    assert sorted(seen) == sorted(img.tobytes() for img in mixed.split("train").images)
    assert all(shares)  # nobody idle
