"""Training on several machines: TF_CONFIG checks, and two real workers on 127.0.0.1."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from facekp.core.cli import main as cli
from facekp.core.model.cluster import ClusterError, parse_tf_config

ROOT = Path(__file__).resolve().parent.parent
PROBE = Path(__file__).resolve().parent / "multiworker_probe.py"


def _config(workers, task_type="worker", index=0, chief=None) -> str:
    cluster = {"worker": workers}
    if chief is not None:
        cluster["chief"] = chief
    return json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})


def test_a_good_tf_config_says_who_writes_the_model():
    two = ["10.0.0.1:2222", "10.0.0.2:2222"]
    spec = parse_tf_config(_config(two, index=1))
    assert (spec.task_type, spec.task_index, spec.num_workers) == ("worker", 1, 2)
    assert not spec.is_chief
    assert parse_tf_config(_config(two, index=0)).is_chief
    with_chief = parse_tf_config(_config(two, "chief", 0, chief=["10.0.0.3:2222"]))
    assert with_chief.is_chief and with_chief.num_workers == 3
    assert not parse_tf_config(_config(two, "worker", 0, chief=["10.0.0.3:2222"])).is_chief


@pytest.mark.parametrize("value, says", [
    (None, "not set"),
    ("{'cluster': {}}", "not valid JSON"),
    ('["worker"]', "not an object"),
    ('{"task": {"type": "worker", "index": 0}}', 'no "cluster"'),
    ('{"cluster": {"worker": ["a:1"]}}', 'no "task"'),
    ('{"cluster": {"worker": []}, "task": {"type": "worker", "index": 0}}', "non-empty list"),
    ('{"cluster": {"ps": ["a:1"]}, "task": {"type": "ps", "index": 0}}', "job 'ps'"),
    ('{"cluster": {"worker": ["a"]}, "task": {"type": "worker", "index": 0}}', "host:port"),
    ('{"cluster": {"worker": ["a:99999"]}, "task": {"type": "worker", "index": 0}}',
     "host:port"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}',
     "task type 'chief' is not one of"),
    ('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 2}}',
     "task index 2 is outside the cluster's 'worker' list (2 addresses: index 0 to 1)"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": "0"}}',
     "not a whole number"),
    ('{"cluster": {"worker": ["a:1"], "chief": ["b:1", "c:1"]}, '
     '"task": {"type": "worker", "index": 0}}', "at most one chief"),
])
def test_a_bad_tf_config_is_one_clear_error(value, says):
    with pytest.raises(ClusterError) as error:
        parse_tf_config(value)
    message = str(error.value)
    assert message.startswith("TF_CONFIG: ") and says in message
    assert '"cluster": {"worker": ["host1:12345"' in message  # what was expected


def test_train_with_a_bad_tf_config_exits_2_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["127.0.0.1:1"]}, '
                                    '"task": {"type": "worker", "index": 3}}')
    out = tmp_path / "m.keras"
    code = cli.main(["train", "--strategy", "multiworker", "--epochs", "1", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("facekp train: error: TF_CONFIG: task index 3 is outside")
    assert "Traceback" not in err
    assert not out.exists()


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def test_two_workers_train_on_different_faces_and_the_chief_alone_writes_the_model(
        real_subset_npz, tmp_path):
    """Two real workers on this machine; worker 1 (not the chief) asks to stop in epoch 2, as
    Ctrl+C on its machine would, and both stop there."""
    data_path = real_subset_npz("multiworker", train=64, val=16)
    out_dir = tmp_path / "out"
    out = out_dir / "m.keras"
    addresses = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    procs = []
    for index in range(2):
        temp = tmp_path / f"tmp{index}"
        temp.mkdir()
        env = dict(os.environ, TF_CONFIG=_config(addresses, index=index), TMPDIR=str(temp),
                   FACEKP_TEST_PROBE=str(tmp_path / f"probe{index}.json"),
                   FACEKP_TEST_STOP_AT="2:1" if index == 1 else "",
                   PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
        procs.append(subprocess.Popen(
            [sys.executable, str(PROBE), "train", "--data", str(data_path), "--arch",
             "test-probe", "--epochs", "3", "--batch-size", "16", "--strategy", "multiworker",
             "--out", str(out)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True))
    try:
        outputs = [p.communicate(timeout=240) for p in procs]
    finally:
        for p in procs:  # a hang fails the test instead of blocking the run
            if p.poll() is None:
                p.kill()
                p.communicate()
    for p, (stdout, stderr) in zip(procs, outputs):
        assert p.returncode == 130, stderr[-3000:]  # both stopped by worker 1's request
        assert "stopped by the user" in stdout
    assert "2 batches of 16 on each of 2 workers" in outputs[0][0]
    assert f"saved to {out}" in outputs[0][0]
    assert f"saved by the chief worker to {out}" in outputs[1][0]
    # The same all-reduced figures on both workers, so they agree on the best epoch (and on
    # early stopping, which is decided from them).
    epochs = [[line for line in stdout.splitlines() if line.startswith("epoch")]
              for stdout, _ in outputs]
    assert len(epochs[0]) == 1 and [e[:48] for e in epochs[0]] == [e[:48] for e in epochs[1]]

    # Exactly one model, written by the chief; the other worker's saves left nothing behind.
    assert sorted(p.name for p in out_dir.iterdir()) == ["m.keras", "m.train.json"]
    assert list((tmp_path / "tmp1").iterdir()) == []
    record = json.loads((out_dir / "m.train.json").read_text())
    assert record["workers"] == 2 and record["global_batch_size"] == 32
    assert record["best_epoch"] == 1 and record["best_val_rmse_px"] > 0

    # It loads (the probe module registers its layer in this process) and predicts.
    import multiworker_probe  # noqa: F401
    from facekp.core.model.predict import load_model

    model = load_model(out)
    assert model.predict(np.zeros((1, 96, 96, 1), np.float32), verbose=0).shape == (1, 30)

    # Each worker trained on 16 faces of the training split, and not the same ones.
    from facekp.core.data import dataset as data

    faces = data.read_npz(data_path)
    train = {multiworker_probe.face_hash(im) for im in faces.split("train").images}
    seen = [json.loads((tmp_path / f"probe{i}.json").read_text()) for i in range(2)]
    for hashes in seen:
        assert len(hashes) == len(set(hashes)) == 16
        assert set(hashes) <= train
    assert not set(seen[0]) & set(seen[1])


def test_worker_shards_split_every_pass_between_the_workers(small_faces):
    """Shuffled alike on both workers (the same seed), each keeps its own half of every pass:
    no face in both halves, as many faces in each (the odd one out), a new split every pass."""
    from facekp.core.model.pipeline import pipeline

    faces = small_faces.split("train").subset(np.arange(33))
    keys = {face_bytes: i for i, face_bytes in enumerate(im.tobytes() for im in faces.images)}
    passes = 3

    def seen(index):
        d = pipeline(faces, 4, shuffle=True, seed=5, repeat=True, shard=(2, index))
        batches = list(d.take(passes * 4))  # 16 faces a pass: 4 batches of 4
        ids = [keys[x.astype(np.uint8).tobytes()] for b in batches for x in b[0].numpy()[..., 0]]
        return [ids[p * 16:(p + 1) * 16] for p in range(passes)]

    first, second = seen(0), seen(1)
    for a, b in zip(first, second):
        assert len(set(a)) == len(set(b)) == 16
        assert not set(a) & set(b)  # the workers never train on the same face in a pass
    assert set(first[0]) != set(first[1])  # a new split every pass


# --- issue 20: a taken port, a worker that never starts ------------------------------------

def _train(tmp_path, npz, *options) -> list[str]:
    return ["train", "--strategy", "multiworker", "--data", str(npz), "--arch", "seed",
            "--epochs", "1", "--no-confidence-head", "--out", str(tmp_path / "m.keras"),
            *options]


def test_a_taken_port_is_one_line_naming_it(real_subset_npz, tmp_path, monkeypatch, capsys):
    npz = real_subset_npz("multiworker_port", train=16, val=8)
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    try:
        monkeypatch.setenv("TF_CONFIG", _config([f"127.0.0.1:{port}", "127.0.0.1:1"]))
        code = cli.main(_train(tmp_path, npz))
    finally:
        taken.close()
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert line.startswith(f"facekp train: error: TF_CONFIG: this task's port {port} "
                           f"(worker 0 at 127.0.0.1:{port}, the chief) is taken")
    assert not (tmp_path / "m.keras").exists()


def test_a_worker_that_never_starts_ends_the_wait_at_the_connect_timeout(
        real_subset_npz, tmp_path, monkeypatch, capsys):
    import time

    npz = real_subset_npz("multiworker_wait", train=16, val=8)
    mine, missing = (f"127.0.0.1:{port}" for port in _free_ports(2))
    monkeypatch.setenv("TF_CONFIG", _config([mine, missing], index=0))
    start = time.monotonic()
    code = cli.main(_train(tmp_path, npz, "--connect-timeout", "2"))
    took = time.monotonic() - start
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    waiting, error = err.strip().splitlines()
    assert waiting.startswith(f"worker 0 at {mine}, the chief: waiting for the other 1 of the "
                              f"cluster's tasks to start: {missing}")
    assert "giving up after 2 s" in waiting
    assert error.startswith(f"facekp train: error: TF_CONFIG: gave up after 2 s "
                            f"(--connect-timeout) waiting for worker 1 at {missing} to start")
    assert took < 60
    assert not (tmp_path / "m.keras").exists()


def test_without_a_timeout_the_wait_is_said_at_once(real_subset_npz, tmp_path):
    """No --connect-timeout: the worker waits as long as it takes, and says so at once."""
    npz = real_subset_npz("multiworker_say", train=16, val=8)
    mine, missing = (f"127.0.0.1:{port}" for port in _free_ports(2))
    env = dict(os.environ, TF_CONFIG=_config([mine, missing], index=1), PYTHONPATH=str(ROOT),
               TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.Popen([sys.executable, "-m", "facekp.core.cli.main",
                             *_train(tmp_path, npz)], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        line = ""
        while "waiting for" not in line:
            line = proc.stderr.readline()
            assert line or proc.poll() is None, "ended without saying it waits"
        assert line.startswith(f"worker 1 at {missing}: waiting for the other 1 of the "
                               f"cluster's tasks to start: {mine} (no time limit; "
                               "--connect-timeout S gives up after S seconds)")
        assert proc.poll() is None  # still waiting
    finally:
        proc.kill()
        proc.communicate()


@pytest.mark.parametrize("options, says", [
    (["--connect-timeout", "0"], "--connect-timeout must be a positive number"),
    (["--connect-timeout", "-3"], "--connect-timeout must be a positive number"),
])
def test_a_bad_connect_timeout_is_one_line(real_subset_npz, tmp_path, monkeypatch, capsys,
                                           options, says):
    npz = real_subset_npz("multiworker_bad", train=16, val=8)
    monkeypatch.setenv("TF_CONFIG", _config(["127.0.0.1:1", "127.0.0.1:2"]))
    assert cli.main(_train(tmp_path, npz, *options)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"facekp train: error: {says}") and len(err.splitlines()) == 1
    code = cli.main(["train", "--connect-timeout", "5", "--out", str(tmp_path / "m.keras")])
    err = capsys.readouterr().err
    assert code == 2 and "--connect-timeout goes with --strategy multiworker" in err
