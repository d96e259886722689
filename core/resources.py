"""Where the shipped dataset and model live (``resources/`` beside ``core/``: installed as ``facekp.resources``)."""
from __future__ import annotations

from pathlib import Path

RESOURCES = Path(__file__).resolve().parent.parent / "resources"
DEFAULT_DATASET = RESOURCES / "faces.npz"
DEFAULT_MODEL = RESOURCES / "models" / "default.keras"


def default_model() -> Path | None:
    """The shipped model, or None when this checkout has none yet."""
    return DEFAULT_MODEL if DEFAULT_MODEL.exists() else None
