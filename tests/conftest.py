"""Shared fixtures. Real data: the embedded dataset and ../shared/data."""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (real faces and Kaggle files); present in development and CI."""
    assert SHARED_DATA.is_dir(), f"real data expected at {SHARED_DATA}"
    return SHARED_DATA


@pytest.fixture(scope="session")
def faces():
    """The embedded dataset (3,869 real faces, split by person)."""
    from facekp.core.data import dataset as data
    from facekp.core.resources import DEFAULT_DATASET

    from facekp.core.data import opener as _opener  # the embedded dataset as kaggle15
    return _opener.load(DEFAULT_DATASET)


@pytest.fixture(scope="session")
def small_faces(faces):
    """A small real subset for fast training tests: 256 train faces, 64 val faces."""
    rng = np.random.default_rng(0)
    train = np.flatnonzero(faces.splits == "train")
    val = np.flatnonzero(faces.splits == "val")
    idx = np.concatenate([rng.choice(train, 256, replace=False), rng.choice(val, 64, replace=False)])
    return faces.subset(np.sort(idx))


@pytest.fixture(scope="session")
def real_subset_npz(faces, tmp_path_factory):
    """Factory: ``make(name, train, val, test=0, seed=0)`` writes that many real faces of each
    split (training faces with all 15 points) to an .npz and returns its path."""
    from facekp.core.data import dataset as data

    def make(name: str, train: int, val: int, test: int = 0, seed: int = 0) -> Path:
        rng = np.random.default_rng(seed)
        pools = [(faces.splits == "train") & faces.present.all(1), faces.splits == "val",
                 faces.splits == "test"]
        idx = [rng.choice(np.flatnonzero(pool), n, replace=False)
               for pool, n in zip(pools, (train, val, test)) if n]
        path = tmp_path_factory.mktemp(name) / f"{name}.npz"
        data.write_npz(faces.subset(np.sort(np.concatenate(idx))), path)
        return path

    return make


@pytest.fixture(scope="session")
def one_epoch_model(tmp_path_factory):
    """Factory: ``make(npz, name, batch_size)`` trains a real model ('seed') for one epoch on the
    .npz's train split (validated on its val split) and returns the saved model's path."""
    def make(npz: Path, name: str, batch_size: int) -> Path:
        from facekp.core.data import dataset as data
        from facekp.core.model.train import Trainer
        from facekp.core.model.train_types import TrainConfig

        ds = data.read_npz(npz)
        out = tmp_path_factory.mktemp(name) / f"{name}.keras"
        result = Trainer(TrainConfig(epochs=1, batch_size=batch_size), ds.split("train"),
                         ds.split("val"), out).run()
        assert result.reason == "completed", result.message
        return out

    return make


@pytest.fixture(scope="session")
def constant_model():
    """Factory: a real Keras model whose output ignores the image (the same 30 numbers for any
    face): Flatten -> Dense with a zero kernel and ``values`` as its bias."""
    def make(values):
        import keras

        inputs = keras.Input((96, 96, 1))
        out = keras.layers.Dense(30)(keras.layers.Flatten()(inputs))
        model = keras.Model(inputs, out)
        model.layers[-1].set_weights([np.zeros((96 * 96, 30), np.float32),
                                      np.asarray(values, np.float32)])
        return model

    return make


@pytest.fixture
def gui_settings(tmp_path, monkeypatch):
    """The app's settings and trained models go to a temporary place, never the user's own."""
    monkeypatch.setenv("FACEKP_GUI_SETTINGS", str(tmp_path / "settings.ini"))
    monkeypatch.setenv("FACEKP_GUI_DATA", str(tmp_path / "appdata"))


@pytest.fixture
def open_window():
    """Factory: ``open_window(qtbot, **options)`` shows the real main window with those
    facekp.gui.main_window.Options (not an interactive session unless ``remember=True``: no settings
    read or written; unsaved edits discarded on close; a newly trained model not switched to)
    and returns it once its first loading is done."""
    def open_(qtbot, remember=False, **options):
        from PySide6.QtWidgets import QMessageBox

        from facekp.gui.main_window import MainWindow, Options

        window = MainWindow(Options(remember=remember, **options))
        window.ask_unsaved = lambda: QMessageBox.StandardButton.Discard
        window.ask_switch_model = lambda text: False
        qtbot.addWidget(window)
        with qtbot.waitSignal(window.idle, timeout=120_000):
            window.show()
        return window

    return open_
