"""facekp.gui.session without Qt: the app's state as plain Python. The last test runs every other test
of this module in a fresh interpreter where importing PySide6 fails, proving the session never
needs it."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


def _dataset(n: int = 6, splits=("train", "train", "val", "val", "test", "test")):
    from facekp.core.data.dataset import Dataset

    rng = np.random.default_rng(0)
    kp = rng.uniform(20, 70, (n, 30)).astype(np.float32)
    kp[1, 4:6] = np.nan                       # face 1 misses keypoint 2
    return Dataset(np.zeros((n, 96, 96), np.uint8), kp, [f"f{i}" for i in range(n)],
                   [f"p{i // 2}" for i in range(n)], list(splits)[:n], {})


def test_setting_a_point_returns_the_face_s_new_error():
    from facekp.gui.session import Session

    s = Session()
    s.set_dataset(_dataset(), "d.npz")
    assert s.label == "d.npz" and len(s) == 6
    assert s.set_point(0, 0, (10.0, 10.0)) is None          # no prediction yet: no error
    s.store_predictions([0, 1], s.dataset.keypoints[[0, 1]] + 1.0)
    assert s.errors[0] == pytest.approx(1.0)
    err = s.set_point(0, 0, tuple(s.predictions[0, :2]))     # keypoint 0 now exact
    assert err == pytest.approx(np.sqrt(28 / 30)) and s.errors[0] == err
    assert s.set_point(0, 0, None) is not None and s.point(0, 0) is None


def test_mean_points_missing_keypoints_and_photo_mode():
    from facekp.gui.session import Photo, Session, mean_keypoints

    s = Session()
    s.set_dataset(_dataset(), None)
    assert s.missing_keypoints(1) == [2] and s.missing_keypoints(0) == []
    np.testing.assert_allclose(s.mean_points[0], np.nanmean(s.dataset.keypoints, 0)[:2])
    assert (mean_keypoints(np.zeros((0, 30))) == 48.0).all()   # no faces: the crop's centre
    s.photo, s.view_mode = Photo(Path("p.jpg"), None, np.zeros((2, 2, 3), np.uint8)), "photo"
    assert s.title() == "facekp — p.jpg"


def test_names_and_splits_in_one_place():
    from facekp.gui.session import display_name, split_label

    assert split_label("val") == "validation" and split_label("") == "—"
    assert display_name(0) == "left eye center"


def test_training_faces_follow_core_rule():
    from facekp.gui.session import Session

    s = Session()
    s.set_dataset(_dataset(), None)
    train, val, note = s.training_data()
    assert (len(train), len(val), note) == (2, 2, "")   # its test faces stay test faces
    assert list(s.validation_faces().names) == list(val.names)
    s.set_dataset(_dataset(20, splits=[""] * 20), None)        # 10 people: 9 train, 1 val
    train, val, note = s.training_data()
    assert (len(train), len(val)) == (18, 2) and "90%" in note
    assert list(s.validation_faces().names) == list(val.names)   # what training validates on
    assert "without splits" in s.training_description()
    s.set_dataset(_dataset(splits=["test"] * 6), None)
    assert len(s.validation_faces()) == 6                         # cannot train: every face


def test_review_queue_steps_seeks_and_keeps_its_face_when_rebuilt():
    from facekp.gui.session import ReviewQueue, Session

    q = ReviewQueue("worst", [4, 1, 3], ["a", "b", "c"])
    assert q.describe() == "– / 3" and q.current_row is None
    assert q.step(-1) == 4 and q.step(1) == 1 and q.step(5) == 3 and q.step(1) == 3
    assert q.describe() == "3 / 3" and q.reason() == "c" and q.reason(1) == "b"
    assert q.seek(4) and q.position == 0 and not q.seek(2) and q.position == 0
    assert ReviewQueue("missing").step(1) is None

    s = Session()
    s.set_dataset(_dataset(), "d.npz")
    s.dataset.keypoints[4, 0:4] = np.nan                  # face 4: 2 missing, face 1: 1
    q = s.build_queue("missing")
    assert list(q.rows) == [4, 1] and not q.waiting
    assert s.build_queue("worst").waiting == "predictions"
    s.store_predictions(np.arange(6), s.dataset.keypoints + 1.0)
    s.store_predictions([2], s.dataset.keypoints[[2]] + 5.0)
    q = s.build_queue("worst")
    assert q.rows[0] == 2 and not q.waiting
    q.step(1), q.step(1)
    at = q.current_row
    assert s.build_queue("worst", rows=[0, 1, at]).current_row == at   # kept on rebuild
    assert set(s.queue.rows) == {0, 1, at}                            # only those faces
    assert s.build_queue("unsure").waiting == "confidence"
    s.confidence = np.ones((6, 15))
    s.confidence[3, 0] = 0.0
    assert s.build_queue("unsure").rows[0] == 3
    s.set_face(3, s.predictions[3])
    assert s.errors[3] == 0.0 and s.point(3, 0) == tuple(s.predictions[3, :2])


BLOCK_PYSIDE = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name == "PySide6" or name.startswith("PySide6."):
            raise ImportError("PySide6 is blocked in this test")
sys.meta_path.insert(0, _Block())
"""


def test_session_tests_pass_without_pyside6():
    code = BLOCK_PYSIDE + textwrap.dedent(f"""
        import importlib.util
        spec = importlib.util.spec_from_file_location("t", {str(Path(__file__))!r})
        t = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(t)
        ran = [name for name in dir(t) if name.startswith("test_") and "pyside" not in name]
        for name in ran:
            getattr(t, name)()
        import facekp.gui.session
        assert not [m for m in sys.modules if m.startswith("PySide6")]
        print("ran", len(ran))
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "ran 5"
