"""The app's rough edges found by trying it as a new user (issue 11) and its reliability fixes
(issue 13, GUI part): each test failed before its fix. Real widgets, offscreen; the shipped
model where a model is needed; no training here (tests/test_gui_training.py trains)."""
from __future__ import annotations

import threading

import numpy as np
import pytest
from PySide6.QtCore import Qt

pytestmark = pytest.mark.usefixtures("gui_settings")


@pytest.fixture(scope="module")
def tiny(real_subset_npz):
    """24 real train faces + 12 validation + 4 test faces, as an .npz."""
    return real_subset_npz("gui-fixes", train=24, val=12, test=4, seed=3)


def _settings_text():
    from facekp.gui import settings as app_settings

    path = app_settings.settings().fileName()
    try:
        return open(path).read()
    except FileNotFoundError:
        return ""


def test_a_session_that_is_not_interactive_writes_no_settings(qtbot, tiny, shared_data,
                                                             tmp_path, open_window):
    """Rough edge 1: --screenshot and tests (remember=False) never write the person's
    settings (layout, view toggles, recent files, folders); recent files never list
    temporary files."""
    from facekp.gui import settings as app_settings

    window = open_window(qtbot, data=str(tiny))          # remember=False, like --screenshot
    with qtbot.waitSignal(window.photoShown, timeout=60_000):
        window.open_photo(shared_data / "photos" / "Tom_Cruise_avp_2014_4.jpg")
    window.acts["smooth"].setChecked(True)
    window.training_panel.log_scale.setChecked(False)
    window.close()
    assert _settings_text() == ""

    temporary = tmp_path / "model.keras"
    temporary.write_bytes(b"x")
    keep = shared_data / "photos" / "dogs.jpg"
    app_settings.add_recent_file(keep)
    app_settings.add_recent_file(temporary)
    assert app_settings.recent_files() == [str(keep.resolve())]


def test_start_training_brings_the_training_dock_and_is_on_the_toolbar(qtbot, tiny,
                                                                      open_window):
    """Rough edge 2: Start training with the dock hidden shows and raises it; Start/Stop
    training are on the toolbar."""
    window = open_window(qtbot, data=str(tiny))
    toolbar = window.toolbar.actions()
    assert window.acts["train"] in toolbar and window.acts["stop"] in toolbar
    window.training_dock.hide()
    started = []
    window.training_panel.start = lambda **kw: started.append(kw) or True
    window.acts["train"].trigger()
    assert started == [{}]
    assert window.training_dock.isVisible()


def test_a_trained_model_is_compared_and_only_used_when_chosen(qtbot, tiny, tmp_path,
                                                               constant_model, open_window):
    """Rough edge 3: after training, the loaded model stays; the person is told how the new
    one does on the validation faces and chooses."""
    window = open_window(qtbot, data=str(tiny))
    loaded = window.model_path
    assert loaded is not None and window.predictor is not None
    new = tmp_path / "new.keras"
    constant_model(np.full(30, 48.0)).save(new)
    asked = []
    window.ask_switch_model = lambda text: asked.append(text) or False
    window.models.trained(str(new))
    qtbot.waitUntil(lambda: bool(asked) and not window.busy, timeout=60_000)
    assert window.model_path == loaded
    assert "12 validation faces" in asked[0] and asked[0].count(" px") == 2
    assert "not better" in asked[0]
    assert "Kept" in window.statusBar().currentMessage()

    window.ask_switch_model = lambda text: True
    with qtbot.waitSignal(window.modelChanged, timeout=60_000):
        window.models.trained(str(new))
    assert window.model_path == new


def test_keypoint_errors_dock_shows_nothing_of_the_dataset_while_a_photo_is_shown(
        qtbot, tiny, shared_data, open_window):
    """Rough edge 4: a photo has no ground truth; the dock no longer shows the face's
    errors."""
    window = open_window(qtbot, data=str(tiny))
    assert np.isfinite(window.kp_view.current).any()      # the dataset face's errors
    with qtbot.waitSignal(window.photoShown, timeout=60_000):
        window.open_photo(shared_data / "photos" / "Tom_Cruise_avp_2014_4.jpg")
    qtbot.waitUntil(lambda: not window.busy, timeout=60_000)
    assert np.isnan(window.kp_view.current).all() and np.isnan(window.kp_view.split_values).all()
    assert "photo" in window.kp_view.horizontalHeaderItem(1).text()
    window.back_to_dataset()
    assert np.isfinite(window.kp_view.current).any()


def test_start_button_passes_no_checked_argument(qtbot, monkeypatch):
    """Rough edge 6: clicked(bool) reached start() as its first argument."""
    from facekp.gui.training_panel import TrainingPanel

    calls = []
    monkeypatch.setattr(TrainingPanel, "start", lambda self, *a, **kw: calls.append((a, kw)))
    panel = TrainingPanel(remember=False)
    qtbot.addWidget(panel)
    qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    assert calls == [((), {})]


def test_a_dataset_without_faces_does_not_hang_the_app(qtbot, tiny, tmp_path, open_window):
    """Issue 13 item 6: 0 faces left the window 'busy: predict' forever."""
    from facekp.core.data import dataset as data

    empty = data.read_npz(tiny).subset(np.zeros(0, dtype=int))
    path = data.write_npz(empty, tmp_path / "empty.npz")
    window = open_window(qtbot, data=str(path))             # waits for idle (or fails)
    assert not window.busy and len(window.session) == 0 and window.row is None


def test_a_failing_job_or_callback_reaches_the_window_and_never_leaves_it_busy(qtbot, tiny,
                                                                              open_window):
    """Issue 13 item 6: any exception in a worker (or in what handles its result) is a
    message in the window, and the job counts as finished."""
    from facekp.gui.workers import Job

    window = open_window(qtbot, data=str(tiny))
    errors = []
    window.jobs.error.connect(errors.append)

    def boom():
        raise KeyboardInterrupt("worker died")

    window.jobs.run(Job("task", boom))
    window.jobs.submit(Job("engine-job", lambda: 1, on_done=lambda r: 1 / 0))
    qtbot.waitUntil(lambda: len(errors) == 2 and not window.busy, timeout=30_000)
    assert any("KeyboardInterrupt: worker died" in e for e in errors)
    assert any("ZeroDivisionError" in e for e in errors)


def test_a_huge_photo_is_decoded_and_scaled_off_the_gui_thread(qtbot, tiny, monkeypatch,
                                                               tmp_path, open_window):
    """Issue 13 item 13: a 12000x9000 photo blocked the window while it was decoded."""
    from PIL import Image

    import facekp.core.faces.framing
    from facekp.gui.photos import DISPLAY_MAX

    window = open_window(qtbot, data=str(tiny))
    threads = []
    big = Image.new("RGB", (DISPLAY_MAX + 904, 3000), (120, 120, 120))

    def load_photo(path):
        threads.append(threading.current_thread())
        return big

    monkeypatch.setattr(facekp.core.faces.framing, "load_photo", load_photo)
    with qtbot.waitSignal(window.photoShown, timeout=60_000):
        window.open_photo(tmp_path / "big.png")
    assert threads and threads[0] is not threading.main_thread()
    photo = window.photo
    assert photo.image is big and max(photo.array.shape) <= DISPLAY_MAX and photo.scale > 1
    rect = window.canvas.image_rect                         # drawn in the photo's pixels
    assert (rect.width(), rect.height()) == pytest.approx((big.width, big.height), abs=2)


def test_the_panel_never_overwrites_a_model_it_did_not_make(qtbot, tiny, tmp_path,
                                                            open_window):
    """Issue 13 item 2 (the app's half): an existing model file is refused as the output;
    only a file trained in this run of the app may be written again."""
    window = open_window(qtbot, data=str(tiny))
    panel = window.training_panel
    precious = tmp_path / "better.keras"
    precious.write_bytes(b"a better model")
    assert not panel.start(config={"epochs": 1}, out=precious)
    panel.out_path.setText(str(precious))
    assert not panel.start()
    assert precious.read_bytes() == b"a better model"
    assert "exists" in panel.status.text() and panel.thread is None
    panel.created.add(precious.resolve())                  # as if trained here just now
    assert panel.refuses(precious) is None


def test_training_that_cannot_start_is_a_message_read_from_the_thread(qtbot, tiny, tmp_path,
                                                                     open_window):
    """No stand-in result any more: the panel reads core's TrainResult, or the thread's
    error when training could not start; the window is not left busy."""
    window = open_window(qtbot, data=str(tiny))
    panel = window.training_panel
    assert panel.start(config={"arch": "no-such-arch"}, out=tmp_path / "m.keras")
    # (the thread may end before a waitSignal could connect: wait for the panel instead)
    qtbot.waitUntil(lambda: panel.status.text().startswith("Training failed: "),
                    timeout=60_000)
    assert panel.thread.result is None and "no-such-arch" in panel.thread.error
    assert "no-such-arch" in panel.status.text()
    qtbot.waitUntil(lambda: not window.busy, timeout=10_000)
    assert panel.start_button.isEnabled() and not (tmp_path / "m.keras").exists()
