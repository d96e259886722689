"""Training from the app's training dock, offscreen, with core's real Trainer on a few real
faces: the plot receives points, Stop ends within one batch, closing the window mid-training
neither crashes nor loses the best model, and the process exits with status 0."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt

ROOT = Path(__file__).resolve().parent.parent
FAST = {"epochs": 2, "batch_size": 8, "patience": 0}   # 32 faces: 4 batches an epoch


#: The app's settings and trained models go to a temporary place (conftest.gui_settings).
pytestmark = pytest.mark.usefixtures("gui_settings")


@pytest.fixture(scope="module")
def tiny(real_subset_npz):
    """32 real train faces with all 15 points + 12 validation faces, as an .npz."""
    return real_subset_npz("gui-train", train=32, val=12, seed=7)


def test_training_fills_the_plot_and_loads_the_new_model(qtbot, tiny, tmp_path, monkeypatch,
                                                         open_window):
    # the case of a checkout without a shipped model: ground truth only
    monkeypatch.setattr("facekp.core.resources.default_model", lambda: None)
    window = open_window(qtbot, data=str(tiny))
    panel = window.training_panel
    assert window.predictor is None                  # no model: ground truth only
    panel.ensure_plot()
    emissions = []
    out = tmp_path / "trained.keras"
    t0 = time.monotonic()
    with qtbot.waitSignal(window.modelChanged, timeout=180_000) as loaded:
        assert panel.start(config=FAST, out=out)
        panel.thread.batches.connect(lambda pts: emissions.append(len(pts)))
        qtbot.waitUntil(lambda: len(panel.loss.batch_x) > 0, timeout=120_000)
        assert panel.progress.format().startswith("epoch 1/2 · batch")
    duration = time.monotonic() - t0
    assert loaded.args == [out]
    result = panel.thread.result
    assert result.reason == "completed" and result.epochs_run == 2

    # per-batch points at fractional epochs, per-epoch train/val lines, best epoch marked
    x, y = panel.loss.batch_curve.getOriginalDataset()
    assert len(x) == 2 * 4 == panel.thread.batches_seen
    np.testing.assert_allclose(x, [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0])
    assert np.all(np.isfinite(y)) and np.all(y > 0)
    ex, ey = panel.loss.val_curve.getOriginalDataset()
    np.testing.assert_array_equal(ex, [1, 2])
    np.testing.assert_allclose(ey, [h["val_rmse_px"] for h in result.history], rtol=1e-5)
    tx, _ = panel.loss.train_curve.getOriginalDataset()
    np.testing.assert_array_equal(tx, [1, 2])
    bx, by = panel.loss.best_curve.getOriginalDataset()
    assert list(bx) == [result.best_epoch]
    assert by[0] == pytest.approx(result.best_val_rmse_px, rel=1e-5)
    assert panel.loss.best_line.isVisible() and panel.loss.best_line.value() == result.best_epoch
    # batches arrive coalesced: never more than ~10 lists a second (+ one per epoch end)
    assert sum(emissions) == len(x)
    assert len(emissions) <= duration / 0.1 + 2 + 2

    # the new model is loaded and the dataset predicted with it
    assert window.model_path == out and window.predictor is not None
    qtbot.waitUntil(lambda: not window.busy, timeout=60_000)
    assert np.isfinite(window.errors).all()

    # log scale toggle and the loss curve export
    panel.log_scale.setChecked(False)
    assert not panel.loss.plot.getPlotItem().ctrl.logYCheck.isChecked()
    panel.log_scale.setChecked(True)
    assert panel.loss.plot.getPlotItem().ctrl.logYCheck.isChecked()
    png = window.files.export_loss_curve(tmp_path / "loss.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_stop_ends_within_one_batch_and_keeps_the_best_model(qtbot, tiny, tmp_path, open_window):
    window = open_window(qtbot, data=str(tiny))
    panel = window.training_panel
    out = tmp_path / "stopped.keras"
    assert panel.start(config={**FAST, "epochs": 50}, out=out)
    thread = panel.thread
    # wait for the first epoch (a best model on disk) and a batch of the second
    qtbot.waitUntil(lambda: len(panel.loss.epoch_rows) >= 1 and thread.batches_seen >= 5,
                    timeout=180_000)
    with qtbot.waitSignal(thread.trainingFinished, timeout=60_000):
        qtbot.mouseClick(panel.stop_button, Qt.MouseButton.LeftButton)
    result = thread.result
    assert result.reason == "stopped"
    assert thread.batches_seen - thread.batches_at_stop <= 1
    assert result.epochs_run < 50
    assert result.model_path == out and out.exists() and result.best_epoch >= 1
    assert panel.start_button.isEnabled() and not panel.stop_button.isEnabled()
    # the run let go of its data and Trainer (issue 13 item 14, the app's part) ...
    assert thread.train_data is None and thread.val_data is None and thread._trainer is None

    # ... and a second run in the same panel leaves one thread, not a pile of them; it may
    # write again the model this panel made (it never overwrites one it did not make)
    from facekp.gui.workers import TrainingThread

    assert panel.start(config={**FAST, "epochs": 1}, out=out)
    qtbot.waitUntil(lambda: panel.thread.result is not None and not panel.is_running(),
                    timeout=180_000)
    assert panel.thread.result.reason == "completed"
    assert len(panel.findChildren(TrainingThread)) == 1


def _stop_when(thread, signal, condition):
    """Ask ``thread`` to stop from its own thread at the moment ``signal`` carries a value
    that meets ``condition`` (as Stop pressed just then, without a race with the GUI)."""
    def check(value):
        if condition(value):
            thread.stop()
    signal.connect(check, Qt.ConnectionType.DirectConnection)


def _controls_when_done(window) -> list:
    """(Train enabled, Stop enabled) of the window's actions as each run is reported over."""
    seen = []
    window.training_panel.trainingStateChanged.connect(
        lambda running: running or seen.append((window.acts["train"].isEnabled(),
                                                window.acts["stop"].isEnabled())))
    return seen


def test_stop_during_the_confidence_head_fit_ends_it(qtbot, tiny, tmp_path, open_window):
    from facekp.core.model.confidence import head_path

    window = open_window(qtbot, data=str(tiny))
    panel = window.training_panel
    controls = _controls_when_done(window)
    out = tmp_path / "head.keras"
    assert panel.start(config={**FAST, "epochs": 1}, out=out)
    _stop_when(panel.thread, panel.thread.status, lambda text: text.startswith("Fitting"))
    with qtbot.waitSignal(panel.thread.trainingFinished, timeout=180_000):
        pass
    qtbot.waitUntil(lambda: bool(controls), timeout=10_000)
    assert controls == [(True, False)]                 # Train again, Stop greyed, at once
    assert panel.thread.result.reason == "completed" and out.is_file()
    assert not head_path(out).exists()
    assert "no keypoint confidence head" in panel.status.text()


def test_stop_in_the_first_epoch_says_no_model_was_written(qtbot, tiny, tmp_path, open_window):
    window = open_window(qtbot, data=str(tiny))
    panel = window.training_panel
    controls = _controls_when_done(window)
    out = tmp_path / "early.keras"
    assert panel.start(config={**FAST, "epochs": 50}, out=out)
    _stop_when(panel.thread, panel.thread.batches, lambda points: len(points) > 0)
    with qtbot.waitSignal(panel.thread.trainingFinished, timeout=180_000):
        pass
    qtbot.waitUntil(lambda: bool(controls), timeout=10_000)
    assert controls == [(True, False)]
    result = panel.thread.result
    assert result.reason == "stopped" and result.model_path is None and not out.exists()
    assert "before its first epoch ended: no model was written" in panel.status.text()


def test_closing_the_window_during_training_stops_it_cleanly(qtbot, tiny, tmp_path, open_window):
    window = open_window(qtbot, data=str(tiny))
    panel = window.training_panel
    out = tmp_path / "closed.keras"
    assert panel.start(config={**FAST, "epochs": 50}, out=out)
    thread = panel.thread
    qtbot.waitUntil(lambda: thread.batches_seen >= 1, timeout=180_000)
    window.close()
    assert not thread.isRunning()
    assert thread.result.reason == "stopped"
    assert not window.engine.isRunning()


def test_app_process_exits_0_when_closed_mid_training(tiny, tmp_path):
    script = textwrap.dedent(f"""
        import os, sys
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        from PySide6.QtCore import QTimer
        from PySide6.QtWidgets import QApplication
        app = QApplication([])
        from facekp.gui.main_window import MainWindow, Options
        w = MainWindow(Options(data={str(tiny)!r}, remember=False))
        def start():
            if w.training_panel.thread is None:
                w.training_panel.start(config={{"epochs": 50, "batch_size": 8}},
                                       out={str(tmp_path / "m.keras")!r})
                poll.start(20)
        def check():
            if w.training_panel.thread.batches_seen >= 1:
                poll.stop()
                w.close()
        poll = QTimer()
        poll.timeout.connect(check)
        w.idle.connect(start)
        w.show()
        sys.exit(app.exec())
    """)
    env = {**__import__("os").environ, "FACEKP_GUI_SETTINGS": str(tmp_path / "s.ini"),
           "FACEKP_GUI_DATA": str(tmp_path / "d")}
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Traceback" not in out.stderr


def test_screenshot_after_training_exits_0_with_a_png(tiny, tmp_path):
    from PIL import Image

    out_png = tmp_path / "shot.png"
    env = {**__import__("os").environ, "FACEKP_GUI_SETTINGS": str(tmp_path / "s.ini"),
           "FACEKP_GUI_DATA": str(tmp_path / "d")}
    out = subprocess.run([sys.executable, "-m", "facekp.gui.app", "--screenshot", str(out_png),
                          "--data", str(tiny), "--image", "3", "--train-epochs", "1",
                          "--size", "1000x700"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    # not an interactive session: the person's settings are never written (issue 11, 1)
    assert not (tmp_path / "s.ini").exists()
    with Image.open(out_png) as im:
        assert im.size == (1000, 700)
        # the window is drawn, not blank: many colours (face pixels, green/red markers)
        assert len(im.convert("RGB").getcolors(1 << 20)) > 500


def test_continuing_from_the_loaded_model_shows_its_architecture_and_the_measured_settings(
        qtbot, tiny, open_window):
    """Ticking "Continue from the loaded model" shows the loaded (shipped, heatmap) model's
    architecture in the greyed box, not the dock's own choice, and sets the fine-tuning
    settings measured not to make the shipped model worse (lr 1e-4, no augmentation, 3
    epochs); unticking gives the architecture's defaults back."""
    from facekp.gui.training_panel import FINE_TUNE

    window = open_window(qtbot, data=str(tiny))
    panel = window.training_panel
    qtbot.waitUntil(lambda: panel.loaded_model is not None and panel.fine_tune.isEnabled(),
                    timeout=120_000)
    panel.arch.setCurrentText("seed")
    assert panel.learning_rate.value() == pytest.approx(1e-3)
    panel.fine_tune.setChecked(True)
    assert panel.arch.currentText() == "heatmap" and not panel.arch.isEnabled()
    assert panel.learning_rate.value() == pytest.approx(1e-4)
    assert panel.epochs.value() == 3 and panel.augment.currentData() is False
    cfg = panel.config()
    assert cfg["arch"] == "heatmap" and cfg["lr_schedule"] == FINE_TUNE["lr_schedule"]
    assert cfg["augment"] is False and cfg["learning_rate"] == pytest.approx(1e-4)
    panel.fine_tune.setChecked(False)
    assert panel.arch.isEnabled() and panel.augment.currentData() is None
    assert panel.learning_rate.value() == pytest.approx(2e-3)   # heatmap's own default
