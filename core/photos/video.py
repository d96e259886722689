"""Keypoints in videos: frames read with OpenCV, faces tracked between frames.

:class:`FaceTracker` turns frames into tracked faces. A face is found by the photo path's
detector (:mod:`facekp.core.faces.detect`; MTCNN by default) and framed as a photo's face is
(:meth:`facekp.core.model.predict.Predictor.predict_detections`); on the frames after, its crop is
framed around its keypoints of the frame before (:func:`facekp.core.faces.framing.crop_for_points`,
the photo path's second-pass framing), so the detector runs only every ``detect_every`` frames, or
at once when a track is lost (its new keypoints no longer frame a face:
:func:`facekp.core.model.predict.reframe`) or when no face is being followed. On a detection frame
each detection is matched to a track by the overlap of their boxes; a detection without a track
starts one (a new id), a track the detector does not see is looked for again on the next frame and
dropped when it is missed twice in a row. A track's box is the detector's box carried along with its
crop.

Keypoints can be smoothed in time per track (:class:`KeypointSmoother`): a One Euro filter
(``OneEuroFilter`` package, the filter's authors' implementation) or an exponential moving
average; crops are always framed from the unsmoothed keypoints. Smoothing is off by default:
on the benchmark clip the tracked keypoints jitter as little as the detector-every-frame path
(0.3 px between frames) and both filters added more lag than they removed jitter (README).

``facekp predict VIDEO --jsonl OUT.jsonl [--draw OUT.mp4]`` (:func:`run`) writes one JSON line
per frame (:func:`frame_record`) and, with ``--draw``, the video with boxes, track ids and
keypoints drawn; both are written to temporary files renamed into place at the end. An
existing output (a --jsonl file that is not empty) is replaced only with ``--overwrite``.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from facekp.core.errors import DataError, FacekpError
from facekp.core.faces.framing import Box, Crop, crop_for_points, to_gray

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")
#: The detector runs on every this many processed frames (and whenever a track is lost).
DETECT_EVERY = 10
#: Smallest box overlap (intersection over union) that matches a detection to a track.
MATCH_IOU = 0.3
#: A track the detector misses this many detection frames in a row is dropped.
MAX_MISSES = 2
#: A track whose keypoints frame a crop this far from the crop they were predicted in (centre
#: shift / side + |log of the scale change|) is checked by the detector on the same frame
#: (a cut or a fast move) and restarted from its detection. On the benchmark clip, frames
#: moving smoothly gave 0.007-0.05, cuts 0.053-0.64 (benchmarks/video.py).
MAX_SHIFT = 0.06
SMOOTHING = ("off", "one-euro", "ema")
#: One Euro filter settings, on coordinates in units of the face's crop side: cutoff 1.0 Hz
#: at rest, rising by 4 Hz per crop side per second of motion (benchmarks/video.py --sweep
#: compares others).
ONE_EURO = dict(mincutoff=1.0, beta=4.0, dcutoff=1.0)
#: Weight of the new frame in the exponential moving average.
EMA_ALPHA = 0.5
UNITS = "pixels of the frame"
#: FourCC codes OpenCV's video writer uses for each suffix of --draw.
WRITER_CODECS = {".mp4": "mp4v", ".mov": "mp4v", ".mkv": "mp4v", ".avi": "MJPG",
                 ".webm": "VP80"}


def is_video(path: str | Path) -> bool:
    """Does ``path`` name a video (by its suffix, :data:`VIDEO_SUFFIXES`)?"""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


# --- reading ------------------------------------------------------------------------------

class VideoReader:
    """A video opened with OpenCV: ``fps``, ``size`` (width, height), ``frame_count`` (None
    when the file does not say), :meth:`frames` and :meth:`read` (BGR uint8 arrays). DataError
    naming the file when OpenCV cannot open it or decode its first frame."""

    def __init__(self, path: str | Path):
        import cv2

        from facekp.core.fileio import check_input_file

        self.path = check_input_file(path, "video file")
        self._cap = cv2.VideoCapture(str(self.path))
        ok, first = self._cap.read() if self._cap.isOpened() else (False, None)
        if not ok or first is None:
            self._cap.release()
            raise DataError(self.path, "OpenCV cannot read this file as a video (expected "
                                       f"{', '.join(VIDEO_SUFFIXES)} that FFmpeg can decode)")
        self._first = first
        self._next = 1                      # index of the frame the capture reads next
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and math.isfinite(fps) and 0 < fps < 1000 else 25.0
        count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.frame_count = count if count > 0 else None
        self.size = (first.shape[1], first.shape[0])

    def frames(self, step: int = 1) -> Iterator[tuple[int, np.ndarray]]:
        """(index, BGR frame) of frames 0, step, 2 step, ... from the start; frames in between
        are skipped without decoding them into arrays."""
        index, frame = 0, self.read(0)
        while frame is not None:
            yield index, frame
            for _ in range(step - 1):
                if not self._cap.grab():
                    return
                self._next += 1
            index, frame = index + step, self._read_next()

    def read(self, index: int) -> np.ndarray | None:
        """Frame ``index`` (BGR), or None past the end; seeks unless it is the next frame."""
        import cv2

        if index == 0 and self._first is not None:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 1) if self._next != 1 else None
            self._next = 1
            return self._first
        if index != self._next:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, index)
            self._next = index
        return self._read_next()

    def _read_next(self) -> np.ndarray | None:
        ok, frame = self._cap.read()
        if not ok:
            return None
        self._next += 1
        return frame

    def close(self) -> None:
        self._cap.release()


# --- smoothing ----------------------------------------------------------------------------

class KeypointSmoother:
    """Smooths one track's (K, 2) keypoints over time: ``"one-euro"`` (:data:`ONE_EURO`, on
    coordinates in units of ``scale``, the face's crop side) or ``"ema"`` (:data:`EMA_ALPHA`).
    A missing (non-finite) keypoint passes through and restarts its filter."""

    def __init__(self, kind: str, fps: float, scale: float, **settings):
        if kind not in ("one-euro", "ema"):
            raise ValueError(f"unknown smoothing {kind!r}; expected one-euro or ema")
        self.kind, self.fps, self.scale = kind, float(fps), float(scale)
        self.settings = dict(ONE_EURO if kind == "one-euro" else {"alpha": EMA_ALPHA},
                             **settings)
        self._state: list[Any] = []          # one filter per coordinate, made as they come

    def __call__(self, points: np.ndarray, time: float) -> np.ndarray:
        flat = np.asarray(points, np.float64).reshape(-1)
        out = flat.copy()
        self._state += [None] * (len(flat) - len(self._state))
        for i, v in enumerate(flat):
            if not math.isfinite(v):
                self._state[i] = None
            elif self.kind == "ema":
                prev = self._state[i]
                a = self.settings["alpha"]
                out[i] = self._state[i] = v if prev is None else a * v + (1 - a) * prev
            else:
                out[i] = self._one_euro(i, v / self.scale, time) * self.scale
        return out.reshape(np.shape(points))

    def _one_euro(self, i: int, v: float, time: float) -> float:
        from OneEuroFilter import OneEuroFilter

        if self._state[i] is None:
            self._state[i] = OneEuroFilter(self.fps, **self.settings)
        # the filter takes a time of 0 for "no time given": shift by one frame
        return self._state[i](v, time + 1.0 / self.fps)


# --- tracking -----------------------------------------------------------------------------

@dataclass
class Track:
    """A face followed from frame to frame: the crop its current keypoints came from, the
    keypoints (K, 2) in frame pixels as predicted and as smoothed, its box relative to its
    crop, and the detection of this frame (None on frames the detector did not run or miss)."""
    id: int
    crop: Crop
    raw: np.ndarray
    keypoints: np.ndarray
    box_in_crop: tuple[float, float, float, float]
    detection: Any = None
    misses: int = 0
    shift: float = 0.0
    smoother: KeypointSmoother | None = None

    @property
    def box(self) -> Box:
        c, r = self.crop, self.box_in_crop
        return Box(c.x0 + r[0] * c.side, c.y0 + r[1] * c.side, c.x0 + r[2] * c.side,
                   c.y0 + r[3] * c.side)

    def place_box(self, box: Box) -> None:
        c = self.crop
        self.box_in_crop = tuple((v - o) / c.side for v, o in
                                 zip(box.as_list(), (c.x0, c.y0, c.x0, c.y0)))


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes."""
    ix = max(0.0, min(a.x1, b.x1) - max(a.x0, b.x0))
    iy = max(0.0, min(a.y1, b.y1) - max(a.y0, b.y0))
    union = a.width * a.height + b.width * b.height - ix * iy
    return ix * iy / union if union > 0 else 0.0


class FaceTracker:
    """Tracked faces of consecutive frames (see the module text). ``predictor``: a
    facekp.core.model.predict.Predictor (its detector and min_confidence are used); ``smoothing``:
    one of
    :data:`SMOOTHING`; ``fps``: processed frames per second of video (for the filter)."""

    def __init__(self, predictor, detect_every: int = DETECT_EVERY, smoothing: str = "off",
                 fps: float = 25.0, passes: int | None = None, **smoothing_settings):
        if detect_every < 1:
            raise ValueError(f"detect_every must be 1 or more, got {detect_every}")
        if smoothing not in SMOOTHING:
            raise ValueError(f"unknown smoothing {smoothing!r}; expected one of "
                             f"{', '.join(SMOOTHING)}")
        self.predictor, self.detect_every = predictor, int(detect_every)
        self.smoothing, self.fps, self.passes = smoothing, float(fps), passes
        self.smoothing_settings = smoothing_settings      # e.g. mincutoff, beta; alpha
        self.detections = 0              # detector runs so far
        self.reset()

    def reset(self) -> None:
        """Forget every track (after a jump in the video): the next frame is detected."""
        self.tracks: list[Track] = []
        self._since = 0
        self._detect_next = True
        self._next_id = getattr(self, "_next_id", 1)

    def step(self, frame: np.ndarray, time: float, gray: np.ndarray | None = None
             ) -> list[Track]:
        """The tracks of one frame (RGB H x W x 3 uint8; ``gray``: the same frame in gray,
        when the caller has it), ``time`` in seconds; tracks sorted by id."""
        gray = to_gray(frame) if gray is None else gray
        self._follow(gray)
        self._since += 1
        if self._detect_next or not self.tracks or self._since >= self.detect_every:
            self._detect(frame, gray)
        for t in self.tracks:
            t.keypoints = t.raw if t.smoother is None else t.smoother(t.raw, time)
        return sorted(self.tracks, key=lambda t: t.id)

    def _follow(self, gray: np.ndarray) -> None:
        """Predict each track in a crop framed around its last keypoints; drop lost ones."""
        from facekp.core.model.predict import reframe

        h, w = gray.shape[:2]
        crops = [crop_for_points(t.raw) for t in self.tracks]
        points = self.predictor.predict_crops(gray, crops) if crops else []
        kept = []
        for t, crop, p in zip(self.tracks, crops, points):
            again = reframe(p, crop)
            cx, cy = crop.x0 + crop.side / 2, crop.y0 + crop.side / 2
            if again is None or not (0 <= cx < w and 0 <= cy < h):
                self._detect_next = True         # lost: look for faces at once
                continue
            t.shift = math.dist((again.x0 + again.side / 2, again.y0 + again.side / 2),
                                (cx, cy)) / crop.side + abs(math.log(again.side / crop.side))
            if t.shift > MAX_SHIFT:
                self._detect_next = True         # moved unlike a face: check it now
            t.crop, t.raw, t.detection = crop, p, None
            kept.append(t)
        self.tracks = kept

    def _detect(self, frame: np.ndarray, gray: np.ndarray) -> None:
        """Run the detector; match detections to tracks, start tracks for the others."""
        p = self.predictor
        found = [d for d in p.detector.detect(frame)
                 if d.confidence is None or d.confidence >= p.min_confidence]
        self.detections += 1
        self._since, self._detect_next = 0, False
        free = list(range(len(found)))
        missed = []
        for t in self.tracks:
            best = max(free, key=lambda i: iou(t.box, found[i].box), default=None)
            if best is not None and iou(t.box, found[best].box) >= MATCH_IOU:
                free.remove(best)
                if t.shift > MAX_SHIFT:
                    self._restart(gray, t, found[best])
                t.detection, t.misses = found[best], 0
                t.place_box(found[best].box)
            else:
                missed.append(t)
        self._jumped(gray, missed, found, free)
        for t in missed:
            t.misses += 1
            self._detect_next = True             # missed: look again on the next frame
        self.tracks = [t for t in self.tracks if t.misses < MAX_MISSES]
        for face in p.predict_detections(gray, [found[i] for i in free], self.passes):
            self.tracks.append(self._new_track(face))

    def _jumped(self, gray, missed: list[Track], found: list, free: list[int]) -> None:
        """A missed track with a free detection near it (centres less than the track's box
        side apart) has jumped (a cut, a fast move): it restarts from that detection with its
        id kept (removed from ``missed`` and ``free``)."""
        for t in list(missed):
            side = max(t.box.width, t.box.height)
            near = [i for i in free if math.dist(t.box.center, found[i].box.center) < side]
            if not near:
                continue
            i = min(near, key=lambda i: math.dist(t.box.center, found[i].box.center))
            self._restart(gray, t, found[i])
            missed.remove(t)
            free.remove(i)

    def _restart(self, gray, t: Track, detection) -> None:
        """Track ``t`` framed afresh from ``detection`` (its smoothing restarts too)."""
        face = self.predictor.predict_detections(gray, [detection], self.passes)[0]
        fresh = self._new_track(face, t.id)
        t.crop, t.raw, t.detection, t.misses = fresh.crop, fresh.raw, fresh.detection, 0
        t.box_in_crop, t.smoother, t.shift = fresh.box_in_crop, fresh.smoother, 0.0

    def _new_track(self, face, track_id: int | None = None) -> Track:
        """A track from a facekp.core.model.predict.FaceResult (a new id unless ``track_id``)."""
        smoother = None if self.smoothing == "off" else \
            KeypointSmoother(self.smoothing, self.fps, face.crop.side,
                             **self.smoothing_settings)
        if track_id is None:
            track_id, self._next_id = self._next_id, self._next_id + 1
        t = Track(track_id, face.crop, face.keypoints, face.keypoints, (0, 0, 1, 1),
                  face.detection, smoother=smoother)
        t.place_box(face.box)
        return t


# --- records and drawing ------------------------------------------------------------------

def frame_record(video: str | Path, index: int, time: float, tracks: list[Track],
                 keypoint_set=None) -> dict:
    """One frame's JSON record: the photo record's faces (facekp.core.photos.photo_json) with
    their track id, keypoints named by ``keypoint_set`` (the model's; None: the built-in set of
    their count); ``detector_*`` are null on frames where the detector did not run (or missed)."""
    from facekp.core.photos.photo_json import detection_record, keypoints_record, rounded

    faces = [{"face": i, "track": t.id, "box": [rounded(v) for v in t.box.as_list()],
              **detection_record(t.detection),
              "keypoints": keypoints_record(t.keypoints, keypoint_set)}
             for i, t in enumerate(tracks, 1)]
    n = len(faces)
    return {"video": str(video), "frame": int(index), "time": round(float(time), 3),
            "units": UNITS, "message": f"{n} face{'s' if n != 1 else ''}" if n
            else "no face found", "faces": faces}


def draw_tracks(bgr: np.ndarray, tracks: list[Track]) -> np.ndarray:
    """A copy of a BGR frame with each track's box, id and keypoints drawn (OpenCV)."""
    import cv2

    out = bgr.copy()
    r = max(2, round(max(out.shape[:2]) / 200))
    for t in tracks:
        b = t.box
        cv2.rectangle(out, (round(b.x0), round(b.y0)), (round(b.x1), round(b.y1)),
                      (0, 200, 255), max(1, r // 2), cv2.LINE_AA)
        cv2.putText(out, f"#{t.id}", (round(b.x0), max(12, round(b.y0) - 4)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 200, 255), 1, cv2.LINE_AA)
        for x, y in t.keypoints:
            if math.isfinite(x) and math.isfinite(y):
                cv2.drawMarker(out, (round(x), round(y)), (40, 40, 240), cv2.MARKER_CROSS,
                               2 * r + 1, max(1, r // 2), cv2.LINE_AA)
    return out


# --- the command --------------------------------------------------------------------------

def check_options(args) -> Path:
    """``facekp predict VIDEO`` options: one video, --jsonl and/or --draw OUT.<video>, and
    no photo-folder options. Returns the video's path."""
    videos = [p for p in args.photos if is_video(p)]
    if len(args.photos) != 1:
        raise FacekpError(f"give one video at a time ({len(videos)} videos and "
                          f"{len(args.photos) - len(videos)} other files given)")
    for option, value in (("--json", args.json), ("--resume", args.resume),
                          ("--shard", args.shard), ("--workers", args.workers),
                          ("--recursive", args.recursive)):
        if value:
            raise FacekpError(f"{option} applies to photos, not to a video (a video writes "
                              "one record per frame with --jsonl)")
    if args.jsonl is None and args.draw is None:
        raise FacekpError("a video needs --jsonl OUT.jsonl (a record per frame) and/or "
                          "--draw OUT.mp4 (the video with keypoints drawn)")
    for option, value in (("--step", args.step), ("--detect-every", args.detect_every)):
        if value is not None and value < 1:
            raise FacekpError(f"{option} must be 1 or more, got {value}")
    if args.draw is not None and not is_video(args.draw):
        raise FacekpError(f"--draw {args.draw}: for a video, name a video file to write "
                          f"({', '.join(VIDEO_SUFFIXES)})")
    return Path(args.photos[0])


def run(args, model: Path, detector_options: dict, progress=None) -> int:
    """``facekp predict VIDEO [--jsonl OUT.jsonl] [--draw OUT.mp4]``: 0 when done."""
    from facekp.core.faces.detect import make_detector
    from facekp.core.fileio import (check_input_file, check_output, check_parent_folder,
                                    refuse_input_as_output, same_file)
    from facekp.core.model.predict import PHOTO_ENGINE, Predictor

    video = check_options(args)
    outputs = [check_parent_folder(o, option) for option, o in
               (("--jsonl", args.jsonl), ("--draw", args.draw)) if o is not None]
    for out in outputs:
        refuse_input_as_output(out, {"video": [video]})
    if len(outputs) == 2 and same_file(*outputs):
        raise FacekpError("--jsonl and --draw name the same file")
    if args.jsonl is not None:  # an empty file holds nothing to lose, as for photos
        check_output(args.jsonl, args.overwrite, empty_ok=True)
    if args.draw is not None:
        check_output(args.draw, args.overwrite)
    reader = VideoReader(video)
    check_input_file(model, "model file")
    step = args.step or 1
    predictor = Predictor(model, detector=make_detector(args.detector, **detector_options),
                          engine=getattr(args, "engine", PHOTO_ENGINE),
                          min_confidence=args.min_confidence)
    tracker = FaceTracker(predictor, args.detect_every or DETECT_EVERY, args.smooth or
                          SMOOTHING[0], reader.fps / step, args.passes)
    if progress is None:
        from facekp.core.progress import ProgressLine

        progress = ProgressLine(f"predict {video.name}", unit="frames").update
    try:
        summary = predict_video(reader, tracker, args.jsonl, args.draw, step, progress)
    finally:
        reader.close()
    print(f"{video}: {summary['frames']} frames ({summary['with_faces']} with faces, "
          f"{summary['tracks']} tracks, detector run on {tracker.detections})"
          + "".join(f" -> {o}" for o in outputs))
    return 0


def predict_video(reader: VideoReader, tracker: FaceTracker, jsonl: str | Path | None,
                  draw: str | Path | None, step: int = 1, progress=None) -> dict[str, int]:
    """Track every ``step``-th frame of ``reader``; write the records to ``jsonl`` and the
    drawn video to ``draw`` (each atomically, either may be None); progress(done, total)
    after each frame. Returns counts: frames, with_faces, tracks."""
    import json

    from facekp.core.fileio import atomic_path

    total = -(-reader.frame_count // step) if reader.frame_count else None
    counts = {"frames": 0, "with_faces": 0, "tracks": 0}
    ids: set[int] = set()
    keypoint_set = tracker.predictor.keypoint_set  # names the keypoints of every record
    with contextlib.ExitStack() as stack:
        records = None if jsonl is None else stack.enter_context(
            open(stack.enter_context(atomic_path(jsonl)), "w", encoding="utf-8"))
        writer = None if draw is None else stack.enter_context(
            _video_writer(stack.enter_context(atomic_path(draw)), reader.fps / step,
                          reader.size, Path(draw)))
        for index, bgr in reader.frames(step):
            tracks = _track_frame(tracker, bgr, index / reader.fps)
            if records is not None:
                records.write(json.dumps(frame_record(reader.path, index, index / reader.fps,
                                                      tracks, keypoint_set),
                                         allow_nan=False) + "\n")
            if writer is not None:
                writer.write(draw_tracks(bgr, tracks))
            counts["frames"] += 1
            counts["with_faces"] += bool(tracks)
            ids.update(t.id for t in tracks)
            if progress is not None:
                progress(counts["frames"], max(total or 0, counts["frames"]))
    counts["tracks"] = len(ids)
    return counts


def _track_frame(tracker: FaceTracker, bgr: np.ndarray, time: float) -> list[Track]:
    import cv2

    return tracker.step(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), time,
                        gray=cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))


@contextlib.contextmanager
def _video_writer(path: Path, fps: float, size: tuple[int, int], named: Path):
    """An OpenCV video writer on ``path`` (codec by ``named``'s suffix, :data:`WRITER_CODECS`),
    released at the end; DataError naming ``named`` when OpenCV cannot write that kind."""
    import cv2

    codec = WRITER_CODECS[named.suffix.lower()]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, size)
    if not writer.isOpened():
        raise DataError(named, f"OpenCV cannot write {named.suffix} video here (codec "
                               f"{codec}); try .mp4 or .avi")
    try:
        yield writer
    finally:
        writer.release()
