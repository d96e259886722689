"""Errors a person can act on: each names the file, and where it applies the row and column."""
from __future__ import annotations

from pathlib import Path


class FacekpError(Exception):
    """Base class of errors the CLI and GUI show as one line, without a traceback."""


class DataError(FacekpError, ValueError):
    """Bad input data. ``row`` is 1-based as a spreadsheet shows it (the header is row 1)."""

    def __init__(self, path: str | Path | None, message: str, *, row: int | None = None,
                 column: str | None = None):
        self.path = None if path is None else Path(path)
        self.row = row
        self.column = column
        self.reason = message
        where = []
        if self.path is not None:
            where.append(str(self.path))
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column {column!r}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)
