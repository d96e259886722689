"""Small file helpers shared by core: atomic writes and input-file checks."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import DataError


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed over ``path``.

    On any exception the temporary file is removed and ``path`` is left as it was, so a crash
    never leaves a half-written file behind. The temporary name keeps the suffix, since some
    writers (Keras, numpy) look at it.
    """
    path = Path(path)
    if path.is_dir():
        raise DataError(path, "is a folder, expected a file name to write")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".partial{path.suffix}",
                                   dir=path.parent)
    except OSError as exc:
        blocker = next((a for a in path.parents if a.exists()), None)
        reason = (f"{blocker} is a file, not a folder" if blocker is not None
                  and not blocker.is_dir() else exc.strerror or str(exc))
        raise DataError(path, f"cannot write the file there: {reason}") from None
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file ordinary permissions
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def check_input_file(path: str | Path, what: str = "file") -> Path:
    """Return ``path`` as a Path if it is a readable, non-empty regular file, else DataError."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, f"no such {what}")
    if path.is_dir():
        raise DataError(path, f"is a directory, expected a {what}")
    if path.stat().st_size == 0:
        raise DataError(path, "file is empty")
    return path
