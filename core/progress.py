"""A one-line progress display with ETA for the command line (written to stderr)."""
from __future__ import annotations

import math
import sys
import time


def format_seconds(seconds: float | None) -> str:
    """``m:ss`` or ``h:mm:ss``; a dash when the time is not known (None, NaN, inf)."""
    if seconds is None or not math.isfinite(seconds):
        return "–"
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class ProgressLine:
    """``update(done, total)`` redraws ``label [####....] done/total ETA m:ss`` in place;
    with ``unit`` (e.g. "photos") the rate too: ``3.2 photos/s``."""

    def __init__(self, label: str, stream=None, unit: str | None = None):
        self.label = label
        self.unit = unit
        self.stream = stream or sys.stderr
        self.start = time.monotonic()
        self._last = 0.0
        self._tty = getattr(self.stream, "isatty", lambda: False)()
        # A terminal redraws in place; a pipe or log gets a line every few seconds.
        self.min_interval = 0.2 if self._tty else 5.0

    def update(self, done: int, total: int) -> None:
        """Show ``done`` of ``total`` (throttled; the final update always shows)."""
        now = time.monotonic()
        final = done >= total
        if not final and now - self._last < self.min_interval:
            return
        self._last = now
        elapsed = now - self.start
        eta = elapsed / done * (total - done) if done else 0.0
        width = 24
        filled = int(width * done / total) if total else width
        text = (f"{self.label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} "
                f"elapsed {format_seconds(elapsed)} ETA {format_seconds(eta)}")
        if self.unit and elapsed > 0:
            text += f" {done / elapsed:.1f} {self.unit}/s"
        self.stream.write(("\r" + text + ("\n" if final else "")) if self._tty else text + "\n")
        self.stream.flush()
