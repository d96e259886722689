"""``facekp-gui``: the desktop app.

    facekp-gui [FILE] [--data D] [--model M] [--image N | --photo P] [--queue KIND]
    facekp-gui --screenshot OUT.png [--overwrite] [--data D] [--model M] [--image N | --photo P]
               [--queue KIND] [--train-epochs K] [--size 1400x900]

With ``--screenshot`` the window is rendered offscreen once loading (and, with
``--train-epochs``, K epochs of training on the dataset's train split) is done, saved as PNG,
and the app exits (status 0; 1 if it timed out; 2 on bad arguments, also when --data,
--photo or --image cannot be honoured: one line says why and no picture is written).

Only Qt and numpy are imported before the window shows; everything else loads behind it.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

EXIT_BAD_INPUT = 2


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``facekp-gui`` (see the module docstring)."""
    p = argparse.ArgumentParser(prog="facekp-gui", description="Facial keypoints: view datasets "
                                "and photos, edit ground truth, train and compare models.")
    p.add_argument("file", nargs="?", help="a photo, dataset (.npz / Kaggle .csv / shard "
                   "folder) or model (.keras) to open")
    p.add_argument("--data", metavar="D", help="dataset to open (.npz, Kaggle .csv or shard "
                   "folder, read whole); default: the embedded dataset")
    p.add_argument("--model", metavar="M", help="model to load (.keras), or a shipped one by its "
                   "keypoint set's name (kaggle15, ibug68); default: the shipped model of the "
                   "dataset's set when there is one")
    p.add_argument("--keypoints", metavar="SET", help="open the dataset in this keypoint set "
                   "where its points give it (the embedded dataset: kaggle15 by default, "
                   "ibug68 its own 68 points; or a set's .json)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--image", metavar="N", type=int, help="show dataset face N (0-based)")
    which.add_argument("--photo", metavar="P", help="open this photo")
    p.add_argument("--split", choices=("all", "train", "val", "test"),
                   help="show only this split in the table")
    p.add_argument("--queue", choices=("worst", "unsure", "suspect", "missing", "unchecked"),
                   help="start on this review queue, at its first face once it is ready "
                   "(worst RMSE, least sure, suspected label errors, missing points, "
                   "not yet checked)")
    p.add_argument("--screenshot", metavar="OUT.png", help="render the window offscreen once "
                   "everything has loaded, save it as PNG and exit")
    p.add_argument("--overwrite", action="store_true", help="with --screenshot: replace "
                   "OUT.png if it exists (otherwise it is kept and the screenshot refused)")
    p.add_argument("--train-epochs", metavar="K", type=int, help="with --screenshot: train K "
                   "epochs first (the plot is in the screenshot)")
    p.add_argument("--compare", metavar="MODEL_B", help="with --screenshot: compare the loaded "
                   "model with MODEL_B on the face (Models dock; MODEL_B in blue)")
    p.add_argument("--size", default="1400x900", help="window size for --screenshot "
                   "(default 1400x900)")
    p.add_argument("--verbose", action="store_true", help="TensorFlow's own start-up and "
                   "log lines on stderr too (also FACEKP_DEBUG=1)")
    p.add_argument("--timeout", type=float, default=900.0, help=argparse.SUPPRESS)
    p.add_argument("--startup-probe", action="store_true", help=argparse.SUPPRESS)
    return p


def _check_args(p: argparse.ArgumentParser, args) -> None:
    def fail(msg: str):
        print(f"facekp-gui: {msg}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)

    if args.model is not None:        # a shipped model by its set's name: kaggle15, ibug68
        from facekp.core.errors import FacekpError
        from facekp.core.resources import resolve_model
        try:
            args.model = str(resolve_model(args.model))
        except FacekpError as exc:
            fail(str(exc))
    if args.keypoints is not None:
        from facekp.core.data.keypoint_sets import load_set
        from facekp.core.errors import FacekpError
        try:
            load_set(args.keypoints)
        except FacekpError as exc:
            fail(f"--keypoints: {exc}")
    for label, value in (("--data", args.data), ("--model", args.model), ("--photo", args.photo),
                         ("file", args.file)):
        folder_ok = label in ("--data", "file")  # a dataset may be a shard folder
        if value is not None and not (Path(value).is_file()
                                      or folder_ok and Path(value).is_dir()):
            fail(f"{label} {value}: no such file")
    if args.train_epochs is not None and args.train_epochs < 1:
        fail("--train-epochs must be at least 1")
    if args.compare and not args.screenshot:
        fail("--compare goes with --screenshot (in the app, use the Models dock)")
    if args.train_epochs is not None and not args.screenshot:
        fail("--train-epochs goes with --screenshot (in the app, use the Training panel)")
    if args.overwrite and not args.screenshot:
        fail("--overwrite goes with --screenshot (in the app, a dialog asks)")
    if args.screenshot:
        _check_screenshot_out(args, fail)
    try:
        w, h = (int(v) for v in args.size.lower().split("x"))
        args.size = (w, h)
    except ValueError:
        fail(f"--size {args.size}: expected WIDTHxHEIGHT, e.g. 1400x900")


def _check_screenshot_out(args, fail) -> None:
    """--screenshot OUT may be written: never a file the app opens, an existing file only with
    --overwrite, never a device or pipe (facekp.core.fileio)."""
    from facekp.core.errors import FacekpError
    from facekp.core.fileio import check_output, refuse_input_as_output
    from facekp.core.resources import DEFAULT_DATASET, DEFAULT_MODEL

    inputs = {option: [value] for option, value in (
        ("--data", args.data), ("--model", args.model), ("--photo", args.photo),
        ("--compare", args.compare), ("file", args.file),
        ("the shipped dataset", DEFAULT_DATASET), ("the shipped model", DEFAULT_MODEL))
        if value is not None}
    try:
        refuse_input_as_output(args.screenshot, inputs)
        check_output(args.screenshot, args.overwrite)
    except FacekpError as exc:
        fail(f"error: {exc}")


#: What Qt's X11 platform plugin needs on Debian/Ubuntu besides Qt itself (README, Quick start).
XCB_PACKAGES = ("libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxkbcommon-x11-0 libegl1 "
                "libgl1 libfontconfig1 libdbus-1-3")


def platform_problem(env=None) -> str | None:
    """Why Qt's platform plugin would not load, in one paragraph (None: no problem seen).

    Qt aborts the process with a terse "Could not load the Qt platform plugin "xcb"" when the
    X11 plugin's libraries are missing; here the plugin is loaded the way Qt loads it (the
    dynamic linker), before any QApplication, so that the person reads which packages to
    install. Only the X11 plugin ("xcb", Qt's choice on Linux without Wayland) is checked."""
    env = os.environ if env is None else env
    platform = env.get("QT_QPA_PLATFORM", "")
    if not sys.platform.startswith("linux") or \
            (platform.split(";")[0].split(":")[0] or
             ("wayland" if env.get("WAYLAND_DISPLAY") else "xcb")) != "xcb":
        return None
    plugin = _xcb_plugin(env)
    if plugin is None:
        return None                        # not a Qt we know the layout of: Qt will say
    import ctypes

    try:
        ctypes.CDLL(str(plugin), mode=getattr(os, "RTLD_LAZY", 1) | ctypes.RTLD_LOCAL)
    except OSError as exc:
        return (f"facekp-gui: Qt cannot load its X11 platform plugin \"xcb\" ({exc}). "
                f"On Debian or Ubuntu install the libraries it needs: sudo apt-get install "
                f"{XCB_PACKAGES} (README, Quick start). Without a display, "
                "QT_QPA_PLATFORM=offscreen runs the app offscreen (--screenshot does so "
                "itself).")
    if not env.get("DISPLAY"):
        return ("facekp-gui: no X11 display to open the window on (DISPLAY is not set). Run "
                "it in a desktop session, or with QT_QPA_PLATFORM=offscreen (--screenshot "
                "does so itself).")
    return None


def _xcb_plugin(env) -> Path | None:
    """The X11 platform plugin Qt would load: in QT_QPA_PLATFORM_PLUGIN_PATH, else PySide6's."""
    folders = [Path(p) for p in env.get("QT_QPA_PLATFORM_PLUGIN_PATH", "").split(os.pathsep)
               if p]
    try:
        from PySide6.QtCore import QLibraryInfo

        folders.append(Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath))
                       / "platforms")
    except ImportError:
        pass
    return next((f / "libqxcb.so" for f in folders if (f / "libqxcb.so").exists()), None)


def main(argv: list[str] | None = None) -> int:
    """Start the app (or render one screenshot and exit); the exit status."""
    t0 = time.time()
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_args(parser, args)
    if (args.screenshot or args.startup_probe) and not os.environ.get("QT_QPA_PLATFORM"):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from facekp.core.logs import quiet_tensorflow, verbose_wanted

    quiet_tensorflow(args.verbose or verbose_wanted())   # before the engine imports it
    problem = platform_problem()
    if problem:                        # rather than Qt's abort, what to install
        print(problem, file=sys.stderr)
        return 1

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from . import settings as app_settings

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName(app_settings.ORGANIZATION)
    app.setApplicationName(app_settings.APPLICATION)

    from .main_window import MainWindow, Options

    photo = args.photo
    data, model = args.data, args.model
    if args.file:
        suffix = Path(args.file).suffix.lower()
        if suffix in (".npz", ".csv") or Path(args.file).is_dir():
            data = data or args.file
        elif suffix == ".keras":
            model = model or args.file
        else:
            photo = photo or args.file
    options = Options(data=data, model=model, image=args.image, photo=photo, split=args.split,
                      queue=args.queue, keypoints=args.keypoints,
                      remember=not (args.screenshot or args.startup_probe))
    window = MainWindow(options)

    if args.startup_probe:
        # prints when the first window is on screen (used by benchmarks/gui_responsiveness.py)
        def probe():
            print(f"startup-probe shown_at={time.time():.6f} main_at={t0:.6f}", flush=True)
            os._exit(0)
        window.show()
        QTimer.singleShot(0, probe)
        return app.exec()

    if args.screenshot:
        window.ask_switch_model = lambda text: False   # keep the loaded model; no dialog
        window.recovery.ask_restore = lambda text: None  # a recovery file stays as it is
        window.resize(*args.size)
        # the training dock only when training is asked for: the picture is about the rest
        window.training_dock.setVisible(bool(args.train_epochs))
        window.review_dock.setVisible(bool(args.queue))
        window.models_dock.setVisible(bool(args.compare))
        return _screenshot(app, window, Path(args.screenshot), args.train_epochs, args.timeout,
                           args.compare)

    window.show()
    return app.exec()


def _start_compare(window, model_b: str) -> bool:
    """Select the loaded model and ``model_b`` in the Models dock and compare them."""
    models = window.model_list
    if window.model_path is None:
        print("facekp-gui: --compare needs a loaded model", file=sys.stderr)
        return False
    models.opened.append(Path(model_b))
    models.refresh()
    models.select(window.model_path, model_b)
    if len(models.selected()) != 2:
        print(f"facekp-gui: --compare {model_b}: not a second model", file=sys.stderr)
        return False
    models.compare_selected()
    return True


def _screenshot(app, window, out: Path, train_epochs: int | None, timeout: float,
                compare: str | None = None) -> int:
    import tempfile

    from PySide6.QtCore import Qt, QTimer

    state = {"phase": "loading", "code": 0}
    tmpdir = tempfile.TemporaryDirectory(prefix="facekp-gui-")

    def grab():
        if state["phase"] != "failed":
            _save_picture(app, window, out)
        window.close()

    def bad_option(message):
        """--data, --photo or --image could not be honoured (said in one line): no picture of
        something else, exit status 2."""
        state.update(phase="failed", code=EXIT_BAD_INPUT)
        QTimer.singleShot(0, window.close)

    def on_idle():
        """Loading done: train first when asked to, then take the picture."""
        if window.busy or state["phase"] == "failed":  # more work started; or nothing to do
            return
        if state["phase"] == "loading" and train_epochs:
            state["phase"] = "training"
            window.training_dock.show()
            window.training_dock.raise_()
            window.resizeDocks([window.training_dock], [560],
                               Qt.Orientation.Horizontal)
            panel = window.training_panel
            panel.epochs.setValue(train_epochs)
            started = panel.start(config={"epochs": train_epochs},
                                  out=Path(tmpdir.name) / "model.keras")
            if not started:
                print("facekp-gui: training could not start", file=sys.stderr)
                state["code"] = 1
                state["phase"] = "done"
                QTimer.singleShot(0, grab)
            return
        if state["phase"] == "loading" and compare and _start_compare(window, compare):
            state["phase"] = "comparing"
            return
        if state["phase"] in ("loading", "training", "comparing"):
            state["phase"] = "done"
            QTimer.singleShot(200, grab)  # let the last repaints land

    def on_timeout():
        print(f"facekp-gui: --screenshot timed out after {timeout:.0f} s "
              f"(still busy with: {', '.join(sorted(window.busy)) or 'nothing'})", file=sys.stderr)
        state["code"] = state["code"] or 1
        grab()

    window.badOption.connect(bad_option)
    window.idle.connect(on_idle)
    QTimer.singleShot(int(timeout * 1000), on_timeout)  # the whole run's limit
    window.show()
    code = app.exec()
    tmpdir.cleanup()
    return state["code"] or code


def _save_picture(app, window, out: Path) -> None:
    """The window as a PNG at ``out`` (atomically)."""
    from facekp.core.fileio import atomic_path

    window.canvas.fit() if window.canvas._auto_fit else None
    app.processEvents()
    image = window.grab().toImage()
    with atomic_path(out) as tmp:
        if not image.save(str(tmp), "PNG"):
            raise OSError(f"could not write {out}")
    print(f"wrote {out} ({image.width()}x{image.height()})")


if __name__ == "__main__":
    sys.exit(main())
