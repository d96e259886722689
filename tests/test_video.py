"""facekp predict VIDEO: tracked faces per frame on a clip made from real ytf68 frames of one
person (tests/clips.py), the drawn video, --step, and the errors a person can act on."""
from __future__ import annotations

import json

import numpy as np
import pytest

from clips import make_clip
from facekp.core.cli import main as cli
from facekp.core.resources import DEFAULT_MODEL


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """32 frames at 640x480: 4 photos of one person, 8 frames each (each change of photo is
    a cut), moving smoothly."""
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    return path, make_clip(path, frames=32, hold=8)


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_every_frame_has_its_tracked_face_and_the_drawn_video_has_every_frame(clip, tmp_path,
                                                                            capsys):
    import cv2

    path, made = clip
    out, drawn = tmp_path / "out.jsonl", tmp_path / "drawn.mp4"
    code = cli.main(["predict", str(path), "--model", str(DEFAULT_MODEL), "--jsonl", str(out),
                     "--draw", str(drawn)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "frames/s" in captured.err and "32/32" in captured.err
    records = read_jsonl(out)
    assert [r["frame"] for r in records] == list(range(32))
    assert records[5]["time"] == pytest.approx(5 / 25)
    assert all(len(r["faces"]) == 1 for r in records)
    assert {r["faces"][0]["track"] for r in records} == {1}       # one id through the cuts
    # the detector ran on some frames only; the others were followed by their keypoints
    detected = [r["faces"][0]["detector_confidence"] is not None for r in records]
    assert detected[0] and 2 <= sum(detected) < 32
    # the photo schema's keypoints, near the labels carried by the clip's motion
    face = records[0]["faces"][0]
    assert list(face["keypoints"])[0] == "left_eye_center" and len(face["box"]) == 4
    pred = np.array([[kp for kp in r["faces"][0]["keypoints"].values()] for r in records])
    error = np.linalg.norm(pred - made["labels"], axis=-1)
    assert np.median(error) < 5.0, np.median(error)            # eye distance ~ 55 px
    # the drawn video: readable, the same frames, the same size
    cap = cv2.VideoCapture(str(drawn))
    count = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        assert frame.shape == (480, 640, 3)
        count += 1
    assert count == 32
    assert not list(tmp_path.glob(".*partial*"))                 # temporaries renamed away


def test_step_takes_every_kth_frame(clip, tmp_path, capsys):
    path, _ = clip
    out = tmp_path / "step.jsonl"
    assert cli.main(["predict", str(path), "--model", str(DEFAULT_MODEL), "--jsonl", str(out),
                     "--step", "3", "--detector", "haar", "--smooth", "ema"]) == 0
    records = read_jsonl(out)
    assert [r["frame"] for r in records] == list(range(0, 32, 3))
    assert all(r["faces"] for r in records)


@pytest.mark.parametrize("extra, message", [
    (["--step", "0"], "--step must be 1 or more, got 0"),
    (["--detect-every", "-1"], "--detect-every must be 1 or more, got -1"),
    (["--draw", "out_dir"], "--draw out_dir: for a video, name a video file to write"),
    (["--shard", "0/2"], "--shard applies to photos, not to a video"),
    ([], "a video needs --jsonl OUT.jsonl"),
])
def test_bad_video_options_are_refused_before_any_work(clip, extra, message, capsys):
    path, _ = clip
    jsonl = [] if not extra else ["--jsonl", "x.jsonl"]
    assert cli.main(["predict", str(path), *jsonl, *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_file_opencv_cannot_read_is_named(tmp_path, capsys):
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video at all\n")
    assert cli.main(["predict", str(bad), "--jsonl", str(tmp_path / "o.jsonl")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"facekp predict: error: {bad}: OpenCV cannot read this file as a "
                          "video")
    assert not (tmp_path / "o.jsonl").exists()


def test_the_input_video_is_never_an_output(clip, capsys):
    path, _ = clip
    before = path.read_bytes()
    assert cli.main(["predict", str(path), "--draw", str(path)]) == 2
    assert "is also an input" in capsys.readouterr().err
    assert path.read_bytes() == before


def test_existing_outputs_are_replaced_only_with_overwrite(clip, tmp_path, capsys):
    path, _ = clip
    jsonl, drawn = tmp_path / "mine.jsonl", tmp_path / "mine.mp4"
    jsonl.write_text('{"my": "records"}\n')
    drawn.write_bytes(b"my own video")
    for option, out in (("--jsonl", jsonl), ("--draw", drawn)):
        assert cli.main(["predict", str(path), option, str(out)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"{out}: already exists" in err, err
        assert "--overwrite" in err and "Traceback" not in err
    assert jsonl.read_text() == '{"my": "records"}\n' and drawn.read_bytes() == b"my own video"
    assert cli.main(["predict", str(path), "--model", str(DEFAULT_MODEL), "--jsonl", str(jsonl),
                     "--draw", str(drawn), "--step", "8", "--overwrite"]) == 0
    assert [r["frame"] for r in read_jsonl(jsonl)] == [0, 8, 16, 24]
    assert drawn.stat().st_size > 1000


def test_smoothers_reduce_noise_on_a_still_face_and_follow_a_moving_one():
    from facekp.core.photos.video import KeypointSmoother

    rng = np.random.default_rng(0)
    still = np.full((15, 2), 50.0)
    for kind in ("one-euro", "ema"):
        smooth = KeypointSmoother(kind, fps=25, scale=100)
        out = np.array([smooth(still + rng.normal(0, 1, still.shape), t / 25)
                        for t in range(100)])
        assert np.std(out[20:] - still) < 0.75 * 1.0               # less than the noise
        moving = KeypointSmoother(kind, fps=25, scale=100)
        path = [moving(still + 2.0 * t, t / 25) for t in range(50)]
        assert np.abs(path[-1] - (still + 98.0)).max() < 6.0        # lags a few px at most


def test_the_app_opens_a_video_plays_and_seeks_with_keypoints_drawn(clip, qtbot, open_window,
                                                                    gui_settings):
    from PySide6.QtCore import Qt

    path, made = clip
    window = open_window(qtbot, model=str(DEFAULT_MODEL))
    video = window.video
    with qtbot.waitSignal(video.frameShown, timeout=60_000):
        window.open_path(path)
    assert window.view_mode == "video" and video.bar.isVisible()
    assert video.slider.maximum() == 31 and video.index == 0

    def shown_near_labels(index):
        faces = window.canvas.faces
        assert len(faces) == 1 and faces[0][1] is not None
        error = np.linalg.norm(faces[0][1] - made["labels"][index], axis=-1)
        return float(np.median(error))

    assert shown_near_labels(0) < 5.0
    # Space belongs to the video (play/pause), not to the review queue, while a video shows
    assert not window.acts["queue_next"].isEnabled()
    # the Keypoint errors dock shows no dataset face's errors for a video (it has no truth)
    assert window.kp_view.horizontalHeaderItem(1).text() == "this video"
    assert np.isnan(window.kp_view.current).all()
    qtbot.keyClick(window.canvas, Qt.Key.Key_Space)
    assert video.play_action.isChecked()
    video.set_playing(False)
    qtbot.waitUntil(lambda: not video._busy, timeout=60_000)
    # the slider: frame 20, its own face drawn (not frame 0's: the face moved)
    first = window.canvas.faces[0][1].copy()
    with qtbot.waitSignal(video.frameShown, timeout=60_000) as shown:
        video.slider.setValue(20)
    assert shown.args == [20] and video.index == 20
    assert shown_near_labels(20) < 5.0
    assert np.abs(window.canvas.faces[0][1] - first).max() > 3.0
    assert "frame 21 / 32" in video.label.text()
    # play to the end: each frame drawn in turn, then it stops by itself
    frames = []
    video.frameShown.connect(frames.append)
    video.set_playing(True)
    qtbot.waitUntil(lambda: not video.play_action.isChecked(), timeout=60_000)
    assert frames == list(range(21, 32)) and video.index == 31
    assert shown_near_labels(31) < 5.0
    # another view takes the canvas: the bar goes
    window.show_row(0)
    assert not video.bar.isVisible()
    assert window.acts["queue_next"].isEnabled()
