"""The pieces a training run is made of, each on its own: checkpoints (a model and its record
written together, read back, a fault mid-write leaving the old model), memory hygiene (the
gradient registry entries a run adds are dropped, earlier ones kept) and the multi-worker
workaround on a one-worker strategy (the same results as plain Keras)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from facekp.core.model import checkpoints, memory

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tiny_model():
    import keras

    from facekp.core.model.architectures import MaskedRMSE, masked_rmse

    inputs = keras.Input((96, 96, 1))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    model = keras.Model(inputs, keras.layers.Dense(30)(x), name="tiny")
    model.compile(optimizer="adam", loss=masked_rmse, metrics=[MaskedRMSE()])
    return model


def test_a_model_and_its_record_are_written_together(tiny_model, tmp_path):
    out = tmp_path / "m.keras"
    record = {"arch": "tiny", "best_epoch": 3, "history": [{"epoch": 3}]}
    checkpoints.write_model(tiny_model, out, record)
    with zipfile.ZipFile(out) as archive:
        assert json.loads(archive.read(checkpoints.RECORD_MEMBER)) == record
    assert json.loads(checkpoints.record_path(out).read_text()) == record
    assert checkpoints.read_record(out) == record
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras", "m.train.json"]


def test_the_record_inside_the_model_wins_over_the_file_beside_it(tiny_model, tmp_path):
    out = tmp_path / "m.keras"
    checkpoints.write_model(tiny_model, out, {"best_epoch": 5})
    checkpoints.record_path(out).write_text(json.dumps({"best_epoch": 1}))
    assert checkpoints.read_record(out) == {"best_epoch": 5}
    assert checkpoints.read_record(tmp_path / "none.keras") is None


def test_a_kill_before_the_rename_keeps_the_old_model(tmp_path):
    """The fault hook kills the writing process once the new model is complete but not yet
    renamed: the old model and its record are still there, whole."""
    out = tmp_path / "m.keras"
    code = ("import sys, keras; from facekp.core.model import checkpoints as c; "
            "m = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]); "
            "c.write_model(m, __import__('pathlib').Path(sys.argv[1]), {'run': int(sys.argv[2])})")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    first = subprocess.run([sys.executable, "-c", code, str(out), "1"], cwd=ROOT, env=env,
                           capture_output=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    env[checkpoints.FAULT_ENV] = "written:kill"
    second = subprocess.run([sys.executable, "-c", code, str(out), "2"], cwd=ROOT, env=env,
                            capture_output=True, timeout=300)
    assert second.returncode == -9
    assert checkpoints.read_record(out) == {"run": 1}
    assert json.loads(checkpoints.record_path(out).read_text()) == {"run": 1}


def test_released_custom_gradients_drops_only_the_entries_a_run_added():
    import tensorflow as tf
    from tensorflow.python.framework import ops

    registry = ops._gradient_registry._registry

    @tf.custom_gradient
    def square(x):
        return x * x, lambda dy: 2 * x * dy

    before = set(registry)
    with memory.released_custom_gradients():
        tf.function(square).get_concrete_function(tf.TensorSpec([], tf.float32))
        added = {k for k in registry if k not in before and k.startswith("CustomGradient-")}
        assert added  # graph-mode custom gradients register under fresh names
    assert not added & set(registry)
    assert before <= set(registry)


def test_freed_memory_is_returned_without_error():
    memory.return_freed_memory()  # gc + malloc_trim on glibc; a no-op elsewhere
    assert memory.MALLOC_ARENAS == 2


def test_the_workaround_trains_alike_on_one_worker(tiny_model):
    """fit_across_workers only reshapes each replica's logs and builds the model ahead: on the
    default strategy the losses are the plain Keras ones."""
    import keras
    import tensorflow as tf

    from facekp.core.model.architectures import MaskedRMSE, masked_rmse
    from facekp.core.model.multiworker import fit_across_workers

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (8, 96, 96, 1)).astype(np.float32)
    y = rng.uniform(0, 96, (8, 30)).astype(np.float32)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    results = []
    for patched in (False, True):
        keras.utils.set_random_seed(0)
        model = keras.models.clone_model(tiny_model)
        model.compile(optimizer="sgd", loss=masked_rmse, metrics=[MaskedRMSE()])
        if patched:
            fit_across_workers(model, tf.distribute.get_strategy())
        results.append(model.fit(data, epochs=1, verbose=0).history["loss"][0])
    assert results[1] == pytest.approx(results[0], rel=1e-5)
