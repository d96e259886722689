"""Where the app keeps its settings and the models it trains.

Settings live in QSettings under the organisation ``facekp`` and application ``facekp-gui``.
Two environment variables redirect them (tests use both, so they never touch a person's own
settings or files):

- ``FACEKP_GUI_SETTINGS``: path of an INI file to use instead of the user's settings.
- ``FACEKP_GUI_DATA``: folder for models trained in the app (default: the platform's
  application-data folder, e.g. ``~/.local/share/facekp/facekp-gui``).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from PySide6.QtCore import QSettings, QStandardPaths

ORGANIZATION = "facekp"
APPLICATION = "facekp-gui"
SETTINGS_ENV = "FACEKP_GUI_SETTINGS"
DATA_ENV = "FACEKP_GUI_DATA"
MAX_RECENT = 10


def settings() -> QSettings:
    path = os.environ.get(SETTINGS_ENV)
    if path:
        return QSettings(path, QSettings.Format.IniFormat)
    return QSettings(ORGANIZATION, APPLICATION)


def data_dir() -> Path:
    path = os.environ.get(DATA_ENV)
    if not path:
        base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
        path = base or str(Path.home() / ".local" / "share" / ORGANIZATION / APPLICATION)
    return Path(path)


def models_dir() -> Path:
    return data_dir() / "models"


def recent_files() -> list[str]:
    value = settings().value("recent_files", [])
    if isinstance(value, str):  # QSettings returns a plain string for a one-item list
        value = [value]
    return [str(v) for v in (value or []) if v]


def is_temporary(path: str | Path) -> bool:
    """A file in the system's temporary folder: gone soon, so never a recent file."""
    try:
        Path(path).resolve().relative_to(Path(tempfile.gettempdir()).resolve())
        return True
    except ValueError:
        return False


def add_recent_file(path: str | Path) -> list[str]:
    """``path`` first in the recent files (temporary files are left out)."""
    if is_temporary(path):
        return recent_files()
    path = str(Path(path).resolve())
    files = [path] + [f for f in recent_files() if f != path]
    files = files[:MAX_RECENT]
    s = settings()
    s.setValue("recent_files", files)
    s.sync()
    return files


def clear_recent_files() -> None:
    s = settings()
    s.remove("recent_files")
    s.sync()


def restore_window(window, toggles: dict) -> bool:
    """The window's saved geometry, dock layout and view toggles (``{key: QAction}``); whether
    a dock layout was restored."""
    from PySide6.QtCore import QByteArray

    s = settings()
    restored = False
    for value, restore in ((s.value("window/geometry"), window.restoreGeometry),
                           (s.value("window/state"), window.restoreState)):
        if isinstance(value, QByteArray):
            restored = bool(restore(value)) or restored
    for key, act in toggles.items():
        v = s.value(f"view/{key}")
        if v is not None:
            act.setChecked(str(v).lower() in ("true", "1"))
    return restored


def save_window(window, toggles: dict) -> None:
    """Keep the window's geometry, dock layout and view toggles for the next session."""
    s = settings()
    s.setValue("window/geometry", window.saveGeometry())
    s.setValue("window/state", window.saveState())
    for key, act in toggles.items():
        s.setValue(f"view/{key}", act.isChecked())
    s.sync()
