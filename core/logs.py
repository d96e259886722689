"""Quiet start-up: TensorFlow prints some seven lines to stderr as it loads (oneDNN, CUDA
drivers not found, CPU instructions, "failed call to cuInit", absl's own warning), on every
command and in the app; they say nothing a person can act on. :func:`quiet_tensorflow` (called
by the ``facekp`` and ``facekp-gui`` entry points before anything imports TensorFlow) keeps
them off: ``TF_CPP_MIN_LOG_LEVEL=3`` (unless set already) for what TensorFlow logs once
loaded, and, since the first lines are written while its libraries load, before that setting is
read, stderr is held for the import itself and given back without those lines. ``--verbose``
or ``FACEKP_DEBUG=1`` leaves everything as TensorFlow has it.

No TensorFlow here (it is imported only when a command needs it, as before)."""
from __future__ import annotations

import importlib.abc
import importlib.util
import logging
import os
import re
import sys
import tempfile

#: The environment variable that brings TensorFlow's lines back (as ``--verbose`` does).
DEBUG_ENV = "FACEKP_DEBUG"

#: TensorFlow's start-up lines (C++ logging with its file name, absl's note about it, the
#: CPU-instructions note's second line).
STARTUP_LINE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|[IWE]\d{4} [\d:. ]+\d+ \w+\.cc:\d+\]"
    r"|To enable the following instructions: .* rebuild TensorFlow)")


def verbose_wanted(argv=None) -> bool:
    """``--verbose`` among ``argv`` or ``FACEKP_DEBUG`` set (to anything but "", 0, no)."""
    flag = os.environ.get(DEBUG_ENV, "").strip().lower()
    return "--verbose" in (argv or ()) or flag not in ("", "0", "no", "false")


def quiet_tensorflow(verbose: bool = False) -> None:
    """Keep TensorFlow's start-up lines off stderr from now on (``verbose``: leave them)."""
    if verbose:
        os.environ[DEBUG_ENV] = os.environ.get(DEBUG_ENV) or "1"  # for child processes too
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietImport)
                                                   for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietImport())


class _QuietImport(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` the ordinary way, and loads it with stderr held (once)."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        with _held_stderr():
            self.loader.exec_module(module)
        for name in ("absl", "tensorflow"):   # their Python-side warnings, errors kept
            logging.getLogger(name).setLevel(logging.ERROR)


class _held_stderr:
    """Stderr (the file descriptor, as C++ writes it) to a temporary file for a while; then
    what was written there goes to stderr, less TensorFlow's start-up lines."""

    def __enter__(self):
        sys.stderr.flush()
        self.file = tempfile.TemporaryFile()
        self.saved = os.dup(2)
        os.dup2(self.file.fileno(), 2)
        return self

    def __exit__(self, *exc) -> None:
        sys.stderr.flush()
        os.dup2(self.saved, 2)
        os.close(self.saved)
        self.file.seek(0)
        text = self.file.read().decode(errors="replace")
        self.file.close()
        kept = [line for line in text.splitlines(keepends=True)
                if not STARTUP_LINE.match(line)]
        if kept:
            sys.stderr.write("".join(kept))
            sys.stderr.flush()
