"""Keypoints for folders, lists and shards of photos, streamed to a JSON Lines file.

``facekp predict DIR... --jsonl OUT.jsonl`` writes one
:func:`facekp.core.photos.photo_json.photo_record` per line (keypoints named by the model's
keypoint set) (a photo that cannot be read gets
``"faces": []`` and an ``"error"``), flushed after each photo, so a killed run keeps every photo it
finished:

- the photos: files given as arguments as they are; a folder gives its photos (by suffix,
  :data:`PHOTO_SUFFIXES`, sorted by path; ``recursive`` also those of its sub-folders); the
  arguments' order is kept and a photo named twice is done once (a file that is missing or
  not a photo gets an error record, as in ``facekp predict PHOTO...``);
- ``--shard I/N`` keeps photos I, I+N, I+2N, ... of that list (0-based), so N jobs given the
  same arguments split a collection without talking to each other;
- ``--resume`` skips the photos whose records OUT already holds (the same path as given, or
  the same absolute path); a last line cut short by a killed run (one that begins as a record
  does) is removed and its photo done again; a file with any other line is refused, untouched;
  ``--overwrite`` starts a file that holds records again;
- ``--workers K`` (K > 1) reads, detects and predicts in K spawned processes, each building its
  own Predictor and detector once; the records are written in the photos' order whatever K
  is, so the output does not depend on K.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Iterable, Iterator

from facekp.core import parallel
from facekp.core.errors import DataError, FacekpError
from facekp.core.data.formats import IMAGE_SUFFIXES as PHOTO_SUFFIXES

#: What a worker needs to build its Predictor: model path, detector name, detector options,
#: min_confidence, passes.
_worker_state: dict[str, Any] = {}


# --- which photos -------------------------------------------------------------------------

def photo_paths(inputs: Iterable[str | Path], recursive: bool = False) -> list[Path]:
    """The photos named by ``inputs`` (:func:`expand_folders`) without repeats: a photo named
    twice (or found through two folders) is kept where it first comes."""
    seen: set[str] = set()
    return [Path(p) for p in expand_folders(inputs, recursive)
            if not (_key(p) in seen or seen.add(_key(p)))]


def expand_folders(inputs: Iterable[str | Path], recursive: bool = False) -> list[str]:
    """``inputs`` with each folder replaced by its photos (sorted by path); anything else is
    kept as given (a missing or unreadable file is reported when it is read). DataError for a
    folder without photos."""
    photos: list[str] = []
    for given in inputs:
        path = Path(given)
        if not path.is_dir():
            photos.append(str(given))
            continue
        found = _folder_photos(path, recursive)
        if not found:
            deep = "" if recursive else "; --recursive also looks in its sub-folders"
            raise DataError(path, f"no photos in this folder (looked for "
                                  f"{', '.join(PHOTO_SUFFIXES)}){deep}")
        photos.extend(str(p) for p in found)
    return photos


def _folder_photos(folder: Path, recursive: bool) -> list[Path]:
    """Files in ``folder`` (and below it with ``recursive``) with a photo suffix, sorted; a
    link named so that leads nowhere (broken, or a loop) too, to get its error record."""
    files = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in files if p.suffix.lower() in PHOTO_SUFFIXES
                  and (p.is_file() or p.is_symlink() and not p.exists()))


def _key(path: str | Path) -> str:
    """One spelling per file: the normalised absolute path."""
    return os.path.normpath(os.path.abspath(path))


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` -> (I, N) with 0 <= I < N; FacekpError otherwise."""
    index, _, count = text.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        i, n = -1, 0
    if not 0 <= i < n:
        raise FacekpError(f"--shard {text}: expected I/N with 0 <= I < N (shard I of N, "
                          "counted from 0), e.g. 0/4 ... 3/4")
    return i, n


def select_shard(photos: list[Path], index: int, count: int) -> list[Path]:
    """Photos ``index``, ``index + count``, ... of ``photos`` (every count-th, from index)."""
    return photos[index::count]


# --- the output file ----------------------------------------------------------------------

#: How every record :class:`JsonlWriter` writes begins (photo_record's first key).
RECORD_START = b'{"photo": '


def done_photos(out: str | Path) -> set[str]:
    """The photos (as :func:`_key`) whose records ``out`` already holds. A last line without
    its newline (a run killed while writing it) is cut off the file, but only when it begins
    as a record does; any other line that is not a record is a DataError naming the line, and
    then the file is left as it is."""
    out = Path(out)
    if not out.exists():
        return set()
    raw = out.read_bytes()
    complete = raw.rfind(b"\n") + 1
    lines = raw[:complete].decode("utf-8", "replace").splitlines()
    done = set()
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
            done.add(_key(record["photo"]))
        except (ValueError, TypeError, KeyError):
            raise DataError(out, f"line {number} is not a photo record of 'facekp predict "
                                 "--jsonl'; give another --jsonl file") from None
    tail = raw[complete:]
    if tail and not (tail.startswith(RECORD_START) or RECORD_START.startswith(tail)):
        raise DataError(out, f"line {len(lines) + 1} (the last, without its newline) is not a "
                             "photo record of 'facekp predict --jsonl'; give another --jsonl "
                             "file")
    if tail:  # only once the file is known to be ours
        with open(out, "r+b") as f:
            f.truncate(complete)
    return done


class JsonlWriter:
    """Appends one record per line to a file, flushed (and fsynced) after each one;
    ``fresh``: the file is emptied first."""

    def __init__(self, path: str | Path, fresh: bool = False):
        self.file = open(path, "w" if fresh else "a", encoding="utf-8")

    def write(self, record: dict) -> None:
        self.file.write(json.dumps(record, allow_nan=False) + "\n")
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self) -> None:
        self.file.close()


# --- predicting ---------------------------------------------------------------------------

def configure_worker(model: str | Path, detector: str, detector_options: dict,
                     min_confidence: float, passes: int | None, engine: str = "tflite-int8") -> None:
    """Remember what :func:`predict_one` builds its Predictor from (in this process)."""
    _worker_state.clear()
    _worker_state["config"] = (str(model), detector, dict(detector_options),
                               float(min_confidence), passes, engine)


def _predictor():
    """This process's Predictor, built on first use from :func:`configure_worker`'s config."""
    if "predictor" not in _worker_state:
        from facekp.core.faces.detect import make_detector
        from facekp.core.model.predict import Predictor

        model, detector, options, min_confidence, _, engine = _worker_state["config"]
        _worker_state["predictor"] = Predictor(model, detector=make_detector(detector, **options),
                                               min_confidence=min_confidence, engine=engine)
    return _worker_state["predictor"]


def predict_one(photo: str) -> dict:
    """The JSON record of one photo (with its ground truth and NME when truth lies beside it);
    a photo that cannot be read gives an ``error`` record."""
    from facekp.core.photos.photo_json import photo_record, result_record

    predictor = _predictor()
    try:
        res = predictor.predict_photo(photo, passes=_worker_state["config"][4],
                                      confidence=predictor.confidence_head is not None)
    except DataError as exc:
        return {**photo_record(photo, []), "error": exc.reason}
    # keypoints named by the model's set; a broken truth file: "truth_error" in the record
    return result_record(photo, res, predictor.keypoint_set)[0]


def _init_worker(config: tuple, threads: int) -> None:
    """Pool initializer: keep TensorFlow to ``threads`` CPU threads and store the config.
    Ctrl+C is left to the main process, which stops the pool after the photos in hand."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    parallel.limit_workers(threads)  # the photo path's TFLite calls and crops alike
    configure_worker(*config)


def predict_stream(photos: list[Path], workers: int = 1) -> Iterator[dict]:
    """Records of ``photos`` in their order; ``workers`` > 1 predicts in that many spawned
    processes (each configured like this one by :func:`configure_worker`)."""
    names = [str(p) for p in photos]
    if workers <= 1:
        yield from map(predict_one, names)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    threads = max(1, (os.cpu_count() or 1) // workers)
    pool = ProcessPoolExecutor(workers, multiprocessing.get_context("spawn"), _init_worker,
                               (_worker_state["config"], threads))
    try:
        yield from pool.map(predict_one, names)
    except BrokenProcessPool:
        raise FacekpError("a worker process ended unexpectedly (out of memory?); the records "
                          "written so far are kept: run again with --resume") from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# --- the command --------------------------------------------------------------------------

def check_options(args) -> None:
    """``facekp predict`` options of this module: bad values and ones that need --jsonl."""
    if args.workers is not None and args.workers < 1:
        raise FacekpError(f"--workers must be 1 or more, got {args.workers}")
    if args.shard is not None:
        parse_shard(args.shard)
    if args.jsonl is None:
        needs = [o for o, v in (("--resume", args.resume), ("--shard", args.shard),
                                ("--workers", args.workers)) if v]
        if needs:
            raise FacekpError(f"{needs[0]} needs --jsonl OUT.jsonl (the file it writes to)")
    else:
        clash = [o for o, v in (("--json", args.json), ("--draw", args.draw)) if v]
        if clash:
            raise FacekpError(f"{clash[0]} and --jsonl: choose one (--jsonl writes a record "
                              "per photo to its file)")


def run(args, model: Path, detector_options: dict, progress=None) -> int:
    """``facekp predict ... --jsonl OUT``: 0 when every photo was read, 2 when some were not
    (each has an error record and a line on stderr)."""
    from facekp.core.fileio import check_input_file, check_parent_folder, refuse_input_as_output

    out = check_parent_folder(args.jsonl, "--jsonl")
    photos = photo_paths(args.photos, args.recursive)
    refuse_input_as_output(out, {"photo": photos + [Path(p) for p in args.photos]})
    if args.shard is not None:
        photos = select_shard(photos, *parse_shard(args.shard))
    _check_output(out, args)
    check_input_file(model, "model file")
    done = done_photos(out) if args.resume else set()
    todo = [p for p in photos if _key(p) not in done]
    if done:
        print(f"{out}: {len(photos) - len(todo)} of these {len(photos)} photos are done "
              "already; skipping them", file=sys.stderr, flush=True)
    configure_worker(model, args.detector, detector_options, args.min_confidence, args.passes,
                     getattr(args, "engine", "tflite-int8"))
    if progress is None:
        from facekp.core.progress import ProgressLine

        progress = ProgressLine(f"predict -> {out}", unit="photos").update
    counts = _write_records(out, todo, args.workers or 1, progress, fresh=args.overwrite)
    print(f"wrote {len(todo)} records to {out}: {counts['faces']} photos with faces, "
          f"{counts['none']} without, {counts['failed']} unreadable"
          + (f"; {len(photos) - len(todo)} skipped (already there)" if done else ""))
    return 2 if counts["failed"] else 0


def _check_output(out: Path, args) -> None:
    """--jsonl OUT may be written: not a device or pipe; when it holds records, only with
    --resume (after them) or --overwrite (started again), not both."""
    from facekp.core.fileio import check_output

    if args.resume and args.overwrite:
        raise FacekpError("--resume and --overwrite: choose one (go on after the records "
                          f"{out} holds, or start it again)")
    if out.is_file() and out.stat().st_size and not (args.resume or args.overwrite):
        raise FacekpError(f"{out} already exists and is not empty; give --resume to go on "
                          "after the records it holds, --overwrite to start it again, or "
                          "another --jsonl file")
    check_output(out, overwrite=True)  # a device, pipe or folder; a place that is writable


def _write_records(out: Path, photos: list[Path], workers: int, progress,
                   fresh: bool = False) -> dict[str, int]:
    """Predict ``photos`` and append their records to ``out`` as they come (``fresh``: to
    an emptied ``out``); progress(done, total) after each; counts of photos with faces,
    without, and unreadable."""
    counts = {"faces": 0, "none": 0, "failed": 0}
    writer = JsonlWriter(out, fresh)
    try:
        for done, record in enumerate(predict_stream(photos, workers), 1):
            writer.write(record)
            if "error" in record:
                counts["failed"] += 1
                print(f"facekp predict: error: {record['photo']}: {record['error']}",
                      file=sys.stderr, flush=True)
            else:
                counts["faces" if record["faces"] else "none"] += 1
            if progress is not None:
                progress(done, len(photos))
    finally:
        writer.close()
    return counts
