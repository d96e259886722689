"""Small file helpers shared by core: atomic writes, output and input-file checks.

Outputs follow one rule (:func:`check_output`, :func:`check_output_folder`, before any work):
an existing output is replaced only when asked (``--overwrite``, or a yes in a dialog), never
one that is an input (:func:`refuse_input_as_output`), and never a device, pipe or socket:
:func:`atomic_path` and :func:`atomic_folder` write beside the output and rename the finished
file or folder into place, which would replace such a node with a regular file. Each of them
first removes the temporaries a killed writer left for the same output.
"""
from __future__ import annotations

import contextlib
import errno
import glob
import os
import shutil
import stat
import tempfile
import uuid
from pathlib import Path
from typing import Iterable, Iterator

from facekp.core.errors import DataError


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed over ``path``.

    On any exception the temporary file is removed and ``path`` is left as it was, so a crash
    never leaves a half-written file behind. The temporary name keeps the suffix, since some
    writers (Keras, numpy) look at it.
    """
    path = Path(path)
    remove_stale_partials(path)
    tmp_path = _temporary_beside(path)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give ordinary permissions
    try:
        yield tmp_path
        refuse_special(path)  # one may have appeared there while the file was written
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def _umask() -> int:
    """The process's umask (the person's choice of permissions for new files)."""
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _temporary_beside(path: Path, kind: str = "partial") -> Path:
    """An empty temporary file in ``path``'s folder (made if missing), named after ``path``
    (see :func:`partial_pattern`); a DataError naming ``path`` if nothing can be written there."""
    if path.is_dir():
        raise DataError(path, "is a folder, expected a file name to write")
    refuse_special(path)
    return _mkstemp_beside(path, kind)


def _mkstemp_beside(path: Path, kind: str) -> Path:
    """:func:`_temporary_beside` without the checks of what ``path`` itself is."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".{kind}{path.suffix}",
                                   dir=path.parent)
    except OSError as exc:
        blocker = next((a for a in path.parents if a.exists()), None)
        reason = (f"{blocker} is a file, not a folder" if blocker is not None
                  and not blocker.is_dir() else exc.strerror or str(exc))
        raise DataError(path, f"cannot write the file there: {reason}") from None
    os.close(fd)
    return Path(tmp)


def check_writable(path: str | Path) -> Path:
    """Fail early, before long work, when ``path`` could not be written: a DataError naming it
    (the same one :func:`atomic_path` would raise at the end). Writes and removes a probe."""
    path = Path(path)
    _temporary_beside(path, "write-check").unlink()
    return path


def check_parent_folder(path: str | Path, option: str) -> Path:
    """An output file given as ``option`` goes into a folder that exists: a DataError naming
    it otherwise (such outputs never make folders, so a typo makes none at the root)."""
    path = Path(path)
    if path.is_dir():
        raise DataError(path, f"is a folder; {option} names a file to write")
    parent = path.parent
    if not parent.is_dir():
        what = "is a file, not a folder" if parent.exists() else "does not exist"
        raise DataError(path, f"the folder {parent} {what}; {option} writes into an existing "
                              "folder (make it first, or give another file name)")
    return path


def partial_pattern(path: str | Path) -> str:
    """The glob pattern of the temporary files (:func:`atomic_path`) and folders
    (:func:`atomic_folder`) written for ``path``, in its folder: ``.<stem>.`` and the 8 random
    characters of :mod:`tempfile`, so ``a.json`` never matches the temporaries of ``a.b.json``."""
    path = Path(path)
    return f".{glob.escape(path.stem)}.{'?' * 8}.partial{glob.escape(path.suffix)}"


def remove_stale_partials(path: str | Path) -> list[Path]:
    """Remove the temporary files and folders left beside ``path`` by a writer that was
    killed; return them."""
    path = Path(path)
    removed = []
    for stale in path.parent.glob(partial_pattern(path)) if path.parent.is_dir() else ():
        with contextlib.suppress(OSError):
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale)
            else:
                stale.unlink()
            removed.append(stale)
    return removed


@contextlib.contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """Yield a new, empty temporary folder beside ``path`` (with the person's umask); on
    success it takes ``path``'s place (an existing folder there is moved aside first and
    removed last), on any error it is removed and ``path`` is left as it was. Whether an
    existing ``path`` may be replaced is :func:`check_output_folder`'s to say, before."""
    path = Path(path)
    remove_stale_partials(path)
    refuse_special(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.stem}.", suffix=f".partial{path.suffix}",
                                    dir=path.parent))
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700
    except OSError as exc:
        raise DataError(path, f"cannot write a folder there: {exc.strerror or exc}") from None
    try:
        yield tmp
        _replace_folder(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _replace_folder(new: Path, path: Path) -> None:
    """Rename the folder ``new`` to ``path``; a folder already there is moved aside and
    removed once ``new`` is in place (put back if the rename fails)."""
    refuse_special(path)
    if path.exists() and not path.is_dir():
        raise DataError(path, "is a file, expected a folder")
    old = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.old")
    if path.exists():
        os.rename(path, old)
    try:
        os.rename(new, path)
    except BaseException:
        if old.exists():
            os.rename(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)


def refuse_special(path: str | Path) -> None:
    """DataError when ``path`` is a device, pipe or socket (or a link to one): outputs are
    renamed into place, which would replace it with a regular file."""
    try:
        mode = os.stat(path).st_mode
    except OSError:  # nothing there (or a dangling link): a new file may be written
        return
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        kind = ("a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else
                "a named pipe" if stat.S_ISFIFO(mode) else "a socket")
        raise DataError(path, f"is {kind}, not a regular file: outputs are renamed into "
                              "place, which would replace it, so facekp never writes there "
                              "(not even with --overwrite); choose a file name")


def check_output(path: str | Path, overwrite: bool = False, *, empty_ok: bool = False) -> Path:
    """Before any work: ``path`` may be written as an output file. A DataError naming it
    when it is a folder or a device, pipe or socket, when it exists and ``overwrite`` is
    False (``empty_ok``: an empty file may be replaced), or when nothing can be written
    there."""
    path = Path(path)
    refuse_special(path)
    if path.is_file() and not overwrite and not (empty_ok and path.stat().st_size == 0):
        raise DataError(path, "already exists; give --overwrite to replace it")
    check_writable(path)
    return path


def check_output_folder(path: str | Path, overwrite: bool = False, *,
                        replaceable=lambda folder: False, what: str = "") -> Path:
    """Before any work: ``path`` may be written as an output folder (:func:`atomic_folder`).
    A missing or empty folder may; a folder with files only when ``replaceable(path)`` says
    it is one this kind of output wrote (``what`` names it) and ``overwrite`` is given; never
    a file, device or pipe. A DataError naming ``path`` otherwise."""
    path = Path(path)
    refuse_special(path)
    if path.exists() and not path.is_dir():
        raise DataError(path, "is a file, expected a folder to write; choose another name")
    if path.is_dir() and any(path.iterdir()):
        if not replaceable(path):
            raise DataError(path, "already exists and is not an empty folder" + (
                f" (nor one {what} wrote)" if what else "") + "; remove it or choose another "
                "--out so earlier files are not mixed in")
        if not overwrite:
            raise DataError(path, "already exists; give --overwrite to replace it")
    _mkstemp_beside(path, "write-check").unlink()
    return path


def refuse_input_as_output(out: str | Path, inputs: dict[str, Iterable]) -> None:
    """DataError if ``out`` is one of the ``inputs`` ({option: paths}): the same resolved path,
    or the same file under another name (a link). Outputs never replace what a command reads."""
    out = Path(out)
    resolved(out)  # an output that is a link loop is named here, not met as a traceback later
    for option, paths in inputs.items():
        for given in paths:
            if given is not None and same_file(out, given):
                raise DataError(out, f"is also an input ({option} {given}); choose another "
                                     "output file so the input is not overwritten")


def same_file(a: str | Path, b: str | Path) -> bool:
    """True when ``a`` and ``b`` name the same file (resolved paths, or the same inode). A
    symbolic link loop is no file, so the same as nothing."""
    a, b = Path(a), Path(b)
    try:
        if resolved(a) == resolved(b):
            return True
    except DataError:
        return False
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist
        return False


def resolved(path: str | Path) -> Path:
    """``path`` made absolute with its symbolic links followed (as ``Path.resolve``); a
    DataError naming it when the links lead round in a loop."""
    path = Path(path)
    try:
        return path.resolve()
    except RuntimeError:  # Python 3.11-3.12 ("Symlink loop from ..."); 3.13 raises OSError
        pass
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
    raise DataError(path, "is a symbolic link loop (its links lead back to themselves); "
                          "remove it or give another path")


def check_input_file(path: str | Path, what: str = "file") -> Path:
    """Return ``path`` as a Path if it is a readable, non-empty regular file, else DataError."""
    path = Path(path)
    if not path.exists() and path.is_symlink():
        raise DataError(path, f"is a symbolic link that leads to no {what} (a broken link or "
                              "a loop)")
    if not path.exists():
        raise DataError(path, f"no such {what}")
    if path.is_dir():
        raise DataError(path, f"is a directory, expected a {what}")
    if path.stat().st_size == 0:
        raise DataError(path, "file is empty")
    return path
