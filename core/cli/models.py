"""``facekp train | evaluate | compare | export-model | submit``: models trained, scored, compared and sent to Kaggle."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from facekp.core.cli.common import (
    dataset_path, model_path, print_json, progress_line,
)
from facekp.core.errors import FacekpError
from facekp.core.fileio import check_output, refuse_input_as_output, same_file
from facekp.core.resources import resolve_model


# --- train --------------------------------------------------------------------------------

def _check_model_out(args: argparse.Namespace, out: Path) -> None:
    """``facekp train``'s --out may be written: a .keras name, not an existing model unless
    --overwrite or --resume of it, never the --fine-tune model; --resume or --fine-tune."""
    if out.suffix != ".keras":
        raise FacekpError(f"{out}: the model file name must end in .keras")
    if args.fine_tune and args.resume:
        raise FacekpError("give --resume (go on with a model's own run) or --fine-tune (start "
                          "from its weights), not both")
    if args.fine_tune and same_file(out, args.fine_tune):
        raise FacekpError(f"{out} is the --fine-tune model; choose a new --out")
    if out.exists() and not args.overwrite and not (args.resume and same_file(out, args.resume)):
        raise FacekpError(f"{out} already exists; give --overwrite to replace it (or --resume "
                          f"{out} to go on training it)")


def cmd_train(args: argparse.Namespace) -> int:
    """``facekp train``: train (or resume, or fine-tune) a model; the best epoch is saved."""
    import signal

    from facekp.core.data import dataset as data
    from facekp.core.data import opener
    from facekp.core.model.cluster import check_strategy, make_strategy
    from facekp.core.errors import DataError
    from facekp.core.model.train import Trainer
    from facekp.core.model.train_types import TrainConfig

    check_strategy(args.strategy, connect_timeout=args.connect_timeout)
    try:
        config = TrainConfig.for_arch(
            args.arch, epochs=args.epochs, batch_size=args.batch_size,
            learning_rate=args.lr, patience=args.patience, augment=args.augment,
            complete_only=args.complete_only, seed=args.seed, lr_schedule=args.lr_schedule,
            augment_strength=args.augment_strength, augment_preset=args.augment_preset)
        config = config.resolved()
    except ValueError as exc:
        raise FacekpError(str(exc)) from None
    out = Path(args.out)
    _check_model_out(args, out)
    source = dataset_path(args)
    dataset = opener.open_dataset(  # a bad file or folder names itself
        source, keypoint_set=_train_set(args))
    try:
        train, val, note = data.training_splits(dataset, seed=args.seed)
    except DataError as exc:
        raise FacekpError(f"{source}: {exc}") from None
    if note:
        print(f"{source}: {note}", flush=True)
    train.meta["source"] = str(source)
    # Before any TensorFlow operation (it sets up collective operations), after the input
    # checks (the multi-worker strategy waits for the other workers to start).
    strategy = make_strategy(args.strategy, connect_timeout=args.connect_timeout)
    listener = _CliListener(sys.stdout, sys.stderr)
    trainer = Trainer(config, train, val, out, listener, resume=args.resume, strategy=strategy,
                      fine_tune=args.fine_tune, fit_confidence=args.confidence_head)
    listener.trainer = trainer

    def on_sigint(signum, frame):
        if trainer.stop_requested and trainer.writing:  # a write is never cut in half
            listener.note("finishing the model file being written, then quitting")
            return
        if trainer.stop_requested:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt
        trainer.stop()
        listener.note("stopping after this batch; the best model is kept "
                      "(Ctrl+C again to abort at once)")

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        result = trainer.run()
    finally:
        signal.signal(signal.SIGINT, previous)
    if result.reason == "error":
        raise FacekpError(result.message)
    return 130 if result.reason == "stopped" else 0


def _train_set(args: argparse.Namespace):
    """The keypoint set to train in: --keypoints, else the --resume or --fine-tune model's
    (the faces are turned into it where they can be), else None (the dataset's own)."""
    from facekp.core.data.keypoint_sets import load_set
    from facekp.core.model.predict import model_keypoint_set

    if args.keypoints:
        try:
            return load_set(args.keypoints)
        except FacekpError as exc:
            raise FacekpError(f"--keypoints: {exc}") from None
    start = args.resume or args.fine_tune
    if start:
        start = resolve_model(start)
        args.resume, args.fine_tune = ((start, None) if args.resume else (None, start))
        return model_keypoint_set(start) if Path(start).is_file() else None
    return None


class _CliListener:
    """Progress for the terminal: one line per epoch (stdout), a batch bar on a terminal."""

    def __init__(self, out, err):
        from facekp.core.progress import format_seconds

        self.out, self.err = out, err
        self.tty = getattr(err, "isatty", lambda: False)()
        self.fmt = format_seconds
        self.info: dict = {}
        self.trainer = None
        self._bar = False

    def note(self, text: str) -> None:
        self._clear()
        print(text, file=self.err, flush=True)

    on_note = note

    def _clear(self) -> None:
        if self._bar:
            self.err.write("\r\x1b[K")
            self._bar = False

    def on_started(self, info: dict) -> None:
        """The run's first line: architecture, faces, epochs, steps and settings."""
        self.info = info
        c = info["config"]
        extra = []
        if c["augment"]:
            strength = c.get("augment_strength", 1.0)
            extra.append("augmented" + (f" x{strength:g}" if strength != 1.0 else ""))
        if c["complete_only"]:
            extra.append("faces with all 15 keypoints")
        if c["lr_schedule"] != "constant":
            extra.append(f"{c['lr_schedule']} learning rate")
        resumed = (f", resuming after epoch {info['initial_epoch']}"
                   if info.get("initial_epoch") else "")
        workers = info.get("workers", 1)
        each = f" on each of {workers} workers" if workers > 1 else ""
        print(f"training {info['arch']} on {info['train_faces']} faces "
              f"({', '.join(extra) or 'all faces'}), validating on {info['val_faces']}: "
              f"{info['steps_per_epoch']} batches of {c['batch_size']}{each} per epoch, up to "
              f"{info['epochs']} epochs (early stop after {c['patience']} without improvement)"
              f"{resumed}. Ctrl+C stops and keeps the best model.", file=self.out, flush=True)

    def on_batch(self, epoch: int, batch: int, loss_px: float) -> None:
        if not self.tty:
            return
        steps = self.info.get("steps_per_epoch", 1)
        width = 20
        filled = int(width * batch / steps)
        self.err.write(f"\repoch {epoch} [{'#' * filled}{'.' * (width - filled)}] "
                       f"{batch}/{steps} loss {loss_px:.2f} px\x1b[K")
        self.err.flush()
        self._bar = True

    def on_epoch(self, epoch: int, train_px: float, val_px: float, best: bool,
                 elapsed_s: float) -> None:
        self._clear()
        total = self.info.get("epochs", epoch)
        done = epoch - self.info.get("initial_epoch", 0)
        per = elapsed_s / max(done, 1)
        eta = per * (total - epoch)
        print(f"epoch {epoch:3d}/{total}  train {train_px:7.3f} px  val {val_px:7.3f} px"
              f"{'  *best' if best else '       '}  {per:5.1f} s/epoch  elapsed "
              f"{self.fmt(elapsed_s)}  ETA {self.fmt(eta)}", file=self.out, flush=True)

    def on_finished(self, result) -> None:
        self._clear()
        reasons = {"completed": "finished", "early_stop": "stopped early",
                   "stopped": "stopped by the user", "error": "failed"}
        if result.reason == "error":
            return  # the caller prints the message as an error
        text = f"{reasons.get(result.reason, result.reason)}: {result.message}"
        if result.model_path is not None:
            by = "" if getattr(self.trainer, "writes_model", True) else " by the chief worker"
            text += (f"\nbest model: epoch {result.best_epoch}, validation RMSE "
                     f"{result.best_val_rmse_px:.3f} px, saved{by} to {result.model_path}")
        else:
            text += "\nno model saved (no epoch finished)"
        print(text, file=self.out, flush=True)


# --- evaluate -----------------------------------------------------------------------------

def cmd_evaluate(args: argparse.Namespace) -> int:
    """``facekp evaluate``: RMSE in pixels, overall and per keypoint, on a split."""
    from facekp.core.data import dataset as data
    from facekp.core.data import opener
    from facekp.core.quality.evaluate import evaluate, format_report
    from facekp.core.model.predict import Predictor

    model = model_path(args)
    predictor = Predictor(model)
    source = dataset_path(args)
    part, note = data.evaluation_faces(
        opener.open_dataset(source, prefer=predictor.keypoint_set), args.split)
    if note:  # with --json stdout holds the JSON alone
        print(f"{source}: {note}", file=sys.stderr if args.json else sys.stdout)
    if len(part) == 0:
        raise FacekpError(f"{source}: no faces in split {args.split!r} (use --split all for "
                          "every face)")
    result = evaluate(predictor, part)
    if args.json:
        print_json(result, args.command)
    else:
        print(format_report(result, f"{model} on {source} (split {args.split})"))
    return 0


# --- compare ------------------------------------------------------------------------------

def cmd_compare(args: argparse.Namespace) -> int:
    """``facekp compare``: two models' RMSE, overall and per keypoint, and their ratio."""
    from facekp.core.data import dataset as data
    from facekp.core.data import opener
    from facekp.core.model.predict import Predictor
    from facekp.core.quality.compare import compare, format_comparison

    a, b = Predictor(resolve_model(args.model_a)), Predictor(resolve_model(args.model_b))
    source = dataset_path(args)
    part, note = data.evaluation_faces(
        opener.open_dataset(source, prefer=a.keypoint_set), args.split)
    if note:
        print(f"{source}: {note}", file=sys.stderr if args.json else sys.stdout)
    if len(part) == 0:
        raise FacekpError(f"{source}: no faces in split {args.split!r} (use --split all)")
    result = compare(a, b, part)
    if args.json:
        print_json({"model_a": args.model_a, "model_b": args.model_b, **result}, args.command)
    else:
        print(format_comparison(result, args.model_a, args.model_b,
                                f"RMSE on {source} (split {args.split})"))
    return 0


# --- export-model ---------------------------------------------------------------------------

def cmd_export_model(args: argparse.Namespace) -> int:
    """``facekp export-model M --format savedmodel|tflite --out PATH``: the model with its input
    normalisation and keypoint readout, for use outside facekp."""
    from facekp.core.model.export import export_model
    from facekp.core.model.predict import load_model

    model = resolve_model(args.model)
    out = export_model(model, args.format, args.out, overwrite=args.overwrite, load=load_model)
    print(f"wrote {out} ({args.format}: 96 x 96 x 1 faces, pixels 0-255 -> "
          f"x, y of each keypoint in crop pixels)")
    return 0


# --- submit -------------------------------------------------------------------------------

def cmd_submit(args: argparse.Namespace) -> int:
    from facekp.core.quality.kaggle import make_submission
    from facekp.core.model.predict import Predictor

    refuse_input_as_output(args.out, {"--test": [args.test], "--lookup": [args.lookup],
                                      "--model": [args.model]})
    check_output(args.out, args.overwrite)
    predictor = Predictor(model_path(args))
    summary = make_submission(predictor, args.test, args.lookup, args.out,
                              progress=progress_line(f"read {args.test}"))
    clipped = f" ({summary['clipped']} values clipped to 0-96)" if summary["clipped"] else ""
    print(f"wrote {summary['rows']} rows for {summary['images']} images to {args.out}{clipped}")
    return 0


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "compare": cmd_compare,
            "submit": cmd_submit, "export-model": cmd_export_model}


def add_parsers(sub) -> None:
    """train, evaluate, compare, export-model and submit."""
    _add_train_parser(sub)
    _add_evaluation_parsers(sub)
    p = sub.add_parser("export-model", help="a trained model as TensorFlow Lite or a "
                       "SavedModel (input normalisation and keypoint readout inside)")
    p.add_argument("model", help="model .keras (or kaggle15 / ibug68: a shipped one)")
    p.add_argument("--format", required=True, choices=["savedmodel", "tflite"],
                   help="tflite: one .tflite file; savedmodel: a folder (serving_default)")
    p.add_argument("--out", required=True, help="the .tflite file or SavedModel folder to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p = sub.add_parser("submit", help="Kaggle submission.csv from test.csv and IdLookupTable.csv")
    p.add_argument("--model", help="model .keras (default: the installed default model)")
    p.add_argument("--test", required=True, help="Kaggle test.csv (ImageId,Image)")
    p.add_argument("--lookup", required=True, help="Kaggle IdLookupTable.csv")
    p.add_argument("--out", required=True, help="output submission .csv")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")


def _add_train_parser(sub) -> None:
    p = sub.add_parser("train", help="train a model; the best (validation RMSE) is saved",
                       description="Train an architecture on the 'train' split of a dataset, "
                                   "validating on its 'val' split after every epoch. The best "
                                   "model is saved to --out whenever validation improves; "
                                   "Ctrl+C stops after the current batch and keeps it.")
    p.add_argument("--data", help=".npz dataset with splits, Kaggle training .csv, or a shard "
                                  "folder (streamed; default: the embedded dataset)")
    p.add_argument("--arch", default="seed", help="architecture (default: seed)")
    p.add_argument("--out", required=True, help="output model, .keras")
    p.add_argument("--epochs", type=int, help="most epochs (default: the architecture's)")
    p.add_argument("--batch-size", type=int, help="faces per batch")
    p.add_argument("--lr", type=float, help="learning rate")
    p.add_argument("--patience", type=int,
                   help="epochs without improvement before stopping early (0: never)")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help="augment training batches (default: the architecture's)")
    p.add_argument("--augment-preset", choices=["basic", "wild"],
                   help="basic: flip, rotation, scale, shift, light; wild: also low resolution, "
                        "blur, JPEG, gamma, noise, occlusion, larger rotations (default: the "
                        "architecture's; heatmap: wild)")
    p.add_argument("--augment-strength", type=float, metavar="S",
                   help="augmentation S times as strong as facekp.core.model.augment's defaults (rotation "
                        "10 deg, scale 10%%, shift 4 px, brightness 10%%, contrast 20%%; "
                        "default: the architecture's)")
    p.add_argument("--complete-only", action=argparse.BooleanOptionalAction, default=None,
                   help="train on faces with all their keypoints only (default: the "
                        "architecture's)")
    p.add_argument("--keypoints", metavar="SET",
                   help="train in this keypoint set (kaggle15, ibug68 or a set's .json), the "
                        "dataset's keypoints turned into it where they can be (default: the "
                        "dataset's own set; the embedded dataset's is kaggle15; with --resume "
                        "or --fine-tune, the model's)")
    p.add_argument("--lr-schedule", choices=["constant", "cosine"],
                   help="learning-rate schedule (default: the architecture's)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--strategy", choices=["auto", "mirrored", "multiworker"], default="auto",
                   help="auto: all GPUs of this machine (default); mirrored: "
                        "tf.distribute.MirroredStrategy; multiworker: several machines, one "
                        "process each, from the TF_CONFIG environment variable (--batch-size "
                        "is then per machine)")
    p.add_argument("--connect-timeout", type=float, metavar="S",
                   help="with --strategy multiworker: give up (exit 2) when the other workers "
                        "have not all started after S seconds (default: wait as long as it "
                        "takes)")
    p.add_argument("--resume", metavar="MODEL", help="go on training from a saved .keras model")
    p.add_argument("--fine-tune", metavar="MODEL",
                   help="start from a .keras model's weights with a fresh optimizer (these "
                        "options) for --epochs more epochs, e.g. on a dataset with new faces")
    p.add_argument("--overwrite", action="store_true",
                   help="replace --out if it exists (otherwise an existing model is kept and "
                        "training refused)")
    p.add_argument("--confidence-head", action=argparse.BooleanOptionalAction, default=True,
                   help="after training, fit the model's keypoint confidence head "
                        "(OUT.confidence.json; a minute or two on the embedded dataset; "
                        "default: yes)")


def _add_evaluation_parsers(sub) -> None:
    p = sub.add_parser("evaluate", help="RMSE in pixels and NME, overall and per keypoint")
    p.add_argument("--model", help="model .keras, or a shipped model by its set's name: "
                                   "kaggle15 (the default), ibug68")
    _add_scored_faces_options(p)

    p = sub.add_parser("compare", help="two models' RMSE, overall and per keypoint, and B / A")
    p.add_argument("model_a", help="model A, .keras (or kaggle15 / ibug68: a shipped one)")
    p.add_argument("model_b", help="model B, .keras, of the same keypoint set")
    _add_scored_faces_options(p)


def _add_scored_faces_options(p) -> None:
    """--data, --split and --json of the commands that score models on a dataset's faces."""
    p.add_argument("--data", help=".npz, Kaggle .csv or shard folder (default: the embedded "
                                  "dataset)")
    p.add_argument("--split", default="test", choices=["train", "val", "test", "all"],
                   help="which faces (default: test)")
    p.add_argument("--json", action="store_true", help="print JSON")
