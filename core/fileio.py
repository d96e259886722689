"""Small file helpers shared by core: atomic writes and input-file checks."""
from __future__ import annotations

import contextlib
import errno
import glob
import os
import tempfile
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
    tmp_path = _temporary_beside(path)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; give the file ordinary permissions
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def _temporary_beside(path: Path, kind: str = "partial") -> Path:
    """An empty temporary file in ``path``'s folder (made if missing), named after ``path``
    (see :func:`partial_pattern`); a DataError naming ``path`` if nothing can be written there."""
    if path.is_dir():
        raise DataError(path, "is a folder, expected a file name to write")
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
    """The glob pattern of :func:`atomic_path`'s temporary files for ``path`` (in its folder)."""
    path = Path(path)
    return f".{glob.escape(path.stem)}.*.partial{glob.escape(path.suffix)}"


def remove_stale_partials(path: str | Path) -> list[Path]:
    """Remove temporary files left beside ``path`` by a writer that was killed; return them."""
    path = Path(path)
    removed = []
    for stale in path.parent.glob(partial_pattern(path)) if path.parent.is_dir() else ():
        with contextlib.suppress(OSError):
            stale.unlink()
            removed.append(stale)
    return removed


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
