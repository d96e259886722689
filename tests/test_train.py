"""The Trainer on real faces: short runs that check what a person relies on."""
from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from facekp.core.model.checkpoints import read_record
from facekp.core.model.train import Trainer
from facekp.core.model.train_types import TrainConfig, TrainResult, TrainingListener

ROOT = Path(__file__).resolve().parent.parent


class Recorder(TrainingListener):
    def __init__(self):
        self.started = None
        self.batches: list[tuple[int, int, float]] = []
        self.epochs: list[tuple] = []
        self.finished: list[TrainResult] = []
        self.notes: list[str] = []
        self.epoch_done = threading.Event()

    def on_started(self, info):
        self.started = info

    def on_batch(self, epoch, batch, loss_px):
        self.batches.append((epoch, batch, loss_px))

    def on_epoch(self, epoch, train_rmse_px, val_rmse_px, best, elapsed_s):
        self.epochs.append((epoch, train_rmse_px, val_rmse_px, best, elapsed_s))
        self.epoch_done.set()

    def on_finished(self, result):
        self.finished.append(result)

    def on_note(self, text):
        self.notes.append(text)


@pytest.fixture(scope="module")
def tiny(small_faces):
    """96 training faces and 32 validation faces (real, split by person)."""
    train = small_faces.split("train").subset(np.arange(96))
    val = small_faces.split("val").subset(np.arange(32))
    return train, val


TINY = r"""
def tiny_net(keypoints=15):
    import keras
    from keras import layers
    inputs = keras.Input((96, 96, 1))
    x = layers.Rescaling(1 / 255)(inputs)
    x = layers.Conv2D(8, 3, strides=2, activation="relu")(x)
    x = layers.MaxPooling2D(4)(x)
    x = layers.Dense(2 * keypoints)(layers.Flatten()(x))
    return keras.Model(inputs, layers.Rescaling(96.0)(x), name="tiny")
"""


@pytest.fixture
def tiny_arch():
    """A small registered architecture (29 k parameters) for tests of the training mechanics:
    the same Trainer code path as 'seed', at a fraction of the time."""
    from facekp.core.model import architectures as model

    scope: dict = {}
    exec(TINY, scope)
    model.register("test-tiny", complete_only=False)(scope["tiny_net"])
    yield "test-tiny"
    model.ARCHITECTURES.pop("test-tiny", None)
    model.ARCH_DEFAULTS.pop("test-tiny", None)


def _files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def test_config_takes_the_architecture_defaults():
    cfg = TrainConfig().resolved()
    assert (cfg.arch, cfg.epochs, cfg.batch_size, cfg.learning_rate, cfg.patience) == \
        ("seed", 100, 64, 1e-3, 10)
    assert cfg.augment is False and cfg.complete_only is True and cfg.lr_schedule == "constant"
    assert TrainConfig.for_arch("seed", epochs=3, lr_schedule=None).epochs == 3
    with pytest.raises(ValueError, match="schedule"):
        TrainConfig(lr_schedule="sawtooth").resolved()
    with pytest.raises(ValueError, match="architecture"):
        TrainConfig(arch="nope").resolved()


def test_augmentation_strength_comes_from_the_architecture_and_scales_the_changes(tiny):
    from facekp.core.data.keypoints import FLIP_PERMUTATION, FLIP_X_OFFSET
    from facekp.core.model.pipeline import pipeline

    heatmap = TrainConfig.for_arch("heatmap").resolved()
    assert (heatmap.augment_strength, heatmap.augment_preset) == (1.0, "wild")
    assert TrainConfig.for_arch("convbn").resolved().augment_preset == "basic"
    assert TrainConfig.for_arch("seed").resolved().augment_strength == 1.0
    with pytest.raises(ValueError, match="augmentation 'foggy'"):
        TrainConfig.for_arch("heatmap", augment_preset="foggy").resolved()
    assert TrainConfig.for_arch("heatmap", augment_strength=2).resolved().augment_strength == 2
    with pytest.raises(ValueError, match="strength"):
        TrainConfig(augment_strength=0).resolved()

    train, _ = tiny
    faces = train.subset(np.arange(64))
    truth = faces.keypoints.reshape(-1, 15, 2)
    flipped = faces.keypoints[:, FLIP_PERMUTATION].reshape(-1, 15, 2).copy()
    flipped[..., 0] = FLIP_X_OFFSET - flipped[..., 0]

    def largest_move(strength):
        (x, y), = pipeline(faces, 64, shuffle=False, augment=strength).take(1)
        got = np.asarray(y).reshape(-1, 15, 2)
        move = np.minimum(np.nanmax(np.abs(got - truth), axis=(1, 2)),
                          np.nanmax(np.abs(got - flipped), axis=(1, 2)))  # flips stay as is
        return np.nanmax(move)

    (x, y), = pipeline(faces, 64, shuffle=False).take(1)  # no augmentation: unchanged
    np.testing.assert_array_equal(np.asarray(x)[..., 0], faces.images.astype(np.float32))
    assert largest_move(0.01) < 0.2  # 0.1 deg, 0.1 %, 0.04 px at most, plus rounding
    assert largest_move(1.0) > 2.0


def test_repeated_training_pipeline_shows_every_face_once_per_pass_reshuffled(tiny):
    """fit runs on one endless iterator with steps_per_epoch = batches per pass: each pass
    (epoch) must hold every face exactly once, the last batch partial, in a new order."""
    from facekp.core.model.pipeline import pipeline

    train, _ = tiny
    faces = train.subset(np.arange(40))
    ids = faces.images.reshape(len(faces), -1).astype(np.int64).sum(axis=1)
    assert len(set(ids.tolist())) == len(faces)  # each face recognisable by its pixels
    steps = math.ceil(len(faces) / 16)  # 3 batches: 16, 16, 8
    batches = list(pipeline(faces, 16, shuffle=True, seed=3, repeat=True).take(3 * steps))
    assert [len(x) for x, _ in batches] == [16, 16, 8] * 3
    passes = []
    for p in range(3):
        x = np.concatenate([np.asarray(b[0]) for b in batches[p * steps:(p + 1) * steps]])
        passes.append(x.reshape(len(x), -1).astype(np.int64).sum(axis=1))
        assert sorted(passes[-1].tolist()) == sorted(ids.tolist())
    assert not np.array_equal(passes[0], passes[1]) and not np.array_equal(passes[1], passes[2])


def test_training_reports_pixels_and_keeps_the_best_model(tiny, tmp_path):
    import keras

    from facekp.core.model.metrics import rmse
    from facekp.core.model.predict import Predictor

    train, val = tiny
    rec = Recorder()
    out = tmp_path / "m.keras"
    trainer = Trainer(TrainConfig(epochs=2, batch_size=32), train, val, out, rec,
                      fit_confidence=False)
    result = trainer.run()

    assert result.reason == "completed", result.message
    assert rec.finished == [result]
    n_train = len(train.complete())
    steps = math.ceil(n_train / 32)
    assert rec.started["train_faces"] == n_train and rec.started["val_faces"] == len(val)
    assert rec.started["steps_per_epoch"] == steps and rec.started["epochs"] == 2
    assert [(e, b) for e, b, _ in rec.batches] == [(e, b) for e in (1, 2)
                                                   for b in range(1, steps + 1)]
    assert [e[0] for e in rec.epochs] == [1, 2]
    # The loss falls from the reference initialisation's hundreds of pixels.
    assert rec.batches[-1][2] < rec.batches[0][2] / 3
    # Each batch's own loss (px): its size-weighted mean square is the epoch's training RMSE.
    for epoch, train_px, *_ in rec.epochs:
        losses = np.array([l for e, _, l in rec.batches if e == epoch])
        sizes = np.array([min(32, n_train - 32 * i) for i in range(steps)])
        assert math.sqrt((sizes * losses ** 2).sum() / sizes.sum()) == pytest.approx(train_px,
                                                                                     rel=1e-3)
    # The file holds the best epoch's model; its validation RMSE is the one reported.
    best = min(rec.epochs, key=lambda e: e[2])
    assert (result.best_epoch, result.best_val_rmse_px) == (best[0], pytest.approx(best[2]))
    assert result.model_path == out and result.epochs_run == 2
    loaded = keras.saving.load_model(out)
    assert rmse(Predictor(loaded, flip_average=False).predict(val.images), val.keypoints) == \
        pytest.approx(result.best_val_rmse_px, rel=1e-4)
    assert _files(tmp_path) == {"m.keras", "m.train.json"}  # no temporary files left
    # Saved from a snapshot in the background, not by holding training up.
    assert trainer._state.checkpointer.background_saves >= 1
    record = read_record(out)
    assert record["best_epoch"] == result.best_epoch and record["arch"] == "seed"
    assert [h["epoch"] for h in result.history] == [1, 2]


def test_a_trained_model_gets_its_own_confidence_head_and_a_stale_one_goes(tiny, tmp_path):
    """A finished run fits a keypoint confidence head for the model it wrote, calibrated on
    the validation faces (their mean confidence is their share of points within 3 px); a run
    that fits none removes the head of the model it replaced, which would misjudge it."""
    from facekp.core.model.confidence import head_path, load_head, point_errors
    from facekp.core.model.predict import Predictor
    from facekp.core.resources import DEFAULT_MODEL

    train, val = tiny
    out = tmp_path / "m.keras"
    stale = head_path(out)
    stale.write_text('{"format": "facekp-confidence-1"}')
    cfg = TrainConfig(epochs=1, batch_size=32)
    Trainer(cfg, train, val, out, fit_confidence=False).run()
    assert out.is_file() and not stale.exists()

    # fine-tuning the shipped model, as the app's loop does
    rec = Recorder()
    tune = TrainConfig.for_arch("heatmap", epochs=1, batch_size=32, learning_rate=1e-4)
    result = Trainer(tune, train, val, out, rec, fine_tune=DEFAULT_MODEL).run()
    assert result.reason == "completed", rec.notes
    assert stale.is_file(), rec.notes
    head = load_head(stale)
    assert head.info["calibrated_on"] == "validation faces (32)"
    assert "face_peak" in head.features          # a heatmap model's own signal
    assert "fitting the keypoint confidence head (m.confidence.json)" in rec.notes
    predictor = Predictor(out)
    assert predictor.confidence_head is not None
    kp, conf = predictor.predict_with_confidence(val.images)
    assert conf.shape == (32, 15) and ((conf > 0) & (conf < 1)).all()
    err = point_errors(kp, val.keypoints)
    within = (err[np.isfinite(err)] <= head.threshold_px).mean()
    assert conf[np.isfinite(err)].mean() == pytest.approx(within, abs=0.02)


def test_stop_during_the_confidence_head_fit_ends_it(tiny, tiny_arch, tmp_path):
    """Stop asked while the head is being fitted (after the last epoch) ends the fit too: the
    model stays, no head is written, and a note says why."""
    from facekp.core.model.confidence import head_path

    class StopAtHead(Recorder):
        def on_note(self, text):
            super().on_note(text)
            if text.startswith("fitting the keypoint confidence head"):
                trainer.stop()

    train, val = tiny
    out = tmp_path / "m.keras"
    rec = StopAtHead()
    trainer = Trainer(TrainConfig(arch=tiny_arch, epochs=1, batch_size=32), train, val, out,
                      rec)
    result = trainer.run()
    assert result.reason == "completed" and result.model_path == out and out.is_file()
    assert not head_path(out).exists()
    assert any("stopped" in note and "no keypoint confidence head" in note
               for note in rec.notes), rec.notes


def test_stop_from_another_thread_ends_within_a_batch_and_resume_goes_on(tiny, tiny_arch,
                                                                          tmp_path):
    import keras

    train, val = tiny
    rec = Recorder()
    out = tmp_path / "m.keras"
    cfg = TrainConfig(arch=tiny_arch, epochs=500, batch_size=16)
    trainer = Trainer(cfg, train, val, out, rec)
    results = []
    thread = threading.Thread(target=lambda: results.append(trainer.run()))
    thread.start()
    assert rec.epoch_done.wait(120), "no epoch finished"
    while len(rec.batches) < rec.started["steps_per_epoch"] + 1:  # into epoch 2
        time.sleep(0.01)
    t0 = time.monotonic()
    trainer.stop()
    seen = len(rec.batches)
    thread.join(60)
    assert not thread.is_alive()
    result = results[0]
    assert result.reason == "stopped"
    assert len(rec.batches) - seen <= 1  # at most the batch that was running
    assert time.monotonic() - t0 < 10
    assert result.model_path == out and result.best_epoch >= 1
    assert keras.saving.load_model(out).name == "tiny"
    assert not [p for p in tmp_path.iterdir() if ".partial" in p.name]

    # Resume: from the saved (best) epoch, with its weights and optimizer state.
    rec2 = Recorder()
    out2 = tmp_path / "resumed.keras"
    epochs = result.best_epoch + 1
    resumed = Trainer(replace(cfg, epochs=epochs), train, val, out2, rec2, resume=out)
    again = resumed.run()
    assert again.reason == "completed", again.message
    assert rec2.started["initial_epoch"] == result.best_epoch
    assert [e[0] for e in rec2.epochs] == [epochs]
    steps = rec.started["steps_per_epoch"]
    # The optimizer's step count goes on from the saved state.
    assert int(resumed.model.optimizer.iterations.numpy()) == epochs * steps
    # The first batch's loss is near where the saved epoch ended, not a fresh start's.
    fresh_first = rec.batches[0][2]
    left_off = [l for e, _, l in rec.batches if e == result.best_epoch][-1]
    first = rec2.batches[0][2]
    assert abs(math.log(first / left_off)) < abs(math.log(first / fresh_first))
    assert again.best_val_rmse_px <= result.best_val_rmse_px
    assert out2.exists() and [h["epoch"] for h in again.history][-1] == epochs


def test_early_stopping_after_patience_epochs_without_improvement(tiny, tiny_arch, tmp_path):
    train, val = tiny
    rec = Recorder()
    # A learning rate too small to change any weight: validation cannot improve after epoch 1.
    cfg = TrainConfig(arch=tiny_arch, epochs=6, batch_size=48, patience=2, learning_rate=1e-30)
    result = Trainer(cfg, train, val, tmp_path / "m.keras", rec).run()
    assert result.reason == "early_stop", result.message
    assert result.epochs_run == result.best_epoch + 2 < 6
    assert [e[3] for e in rec.epochs].count(True) == result.best_epoch


def test_cosine_schedule_and_augmentation_run(tiny, tiny_arch, tmp_path):
    train, val = tiny
    cfg = TrainConfig(arch=tiny_arch, epochs=2, batch_size=32, lr_schedule="cosine",
                      augment=True)
    result = Trainer(cfg, train, val, tmp_path / "m.keras").run()
    assert result.reason == "completed", result.message
    lrs = [h["lr"] for h in result.history]
    assert 1e-3 > lrs[0] > lrs[1] >= 0  # decays over the configured epochs, to 0 at the end
    assert lrs[1] == pytest.approx(0, abs=1e-9)


def test_errors_are_reported_not_raised(tiny, tmp_path):
    train, val = tiny
    rec = Recorder()
    result = Trainer(TrainConfig(epochs=1), train, val.subset(np.arange(0)), tmp_path / "m.keras",
                     rec).run()
    assert result.reason == "error" and "validation" in result.message
    assert rec.finished == [result] and result.model_path is None
    assert not tmp_path.joinpath("m.keras").exists()
    with pytest.raises(ValueError, match=".keras"):
        Trainer(TrainConfig(), train, val, tmp_path / "m.h5")


MIRRORED = TINY + r"""
import json, sys
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from facekp.core.data import dataset as data
from facekp.core.resources import DEFAULT_DATASET
from facekp.core.model.architectures import register
from facekp.core.model.train import Trainer
from facekp.core.model.train_types import TrainConfig
register("test-tiny")(tiny_net)
from facekp.core.data import opener as _opener  # the embedded dataset as kaggle15
ds = _opener.load(DEFAULT_DATASET)
train = ds.split("train").subset(np.arange(64))
val = ds.split("val").subset(np.arange(16))
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
trainer = Trainer(TrainConfig(arch="test-tiny", epochs=2, batch_size=16), train, val, sys.argv[1],
                  strategy=strategy)
result = trainer.run()
import keras
loaded = keras.saving.load_model(sys.argv[1])
print(json.dumps({"reason": result.reason, "message": result.message,
                  "replicas": strategy.num_replicas_in_sync,
                  "variable": type(trainer.model.trainable_variables[0].value).__name__,
                  "val": result.best_val_rmse_px, "params": loaded.count_params()}))
"""


def test_short_fit_under_mirrored_strategy_on_two_logical_cpus(tmp_path):
    out = tmp_path / "mirrored.keras"
    proc = subprocess.run([sys.executable, "-c", MIRRORED, str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["reason"] == "completed", got["message"]
    assert got["replicas"] == 2
    assert "Mirrored" in got["variable"]
    assert math.isfinite(got["val"]) and got["params"] > 0
