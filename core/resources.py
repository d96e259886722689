"""Where the shipped dataset and models live (``resources/`` beside ``core/``: installed as
``facekp.resources``), and the shipped models by the name of their keypoint set."""
from __future__ import annotations

from pathlib import Path

RESOURCES = Path(__file__).resolve().parent.parent / "resources"
#: The embedded dataset: 68 iBUG points per face, opened as kaggle15 unless a set is asked for.
DEFAULT_DATASET = RESOURCES / "faces.npz"
DEFAULT_MODEL = RESOURCES / "models" / "default.keras"
#: Shipped models by name (``--model kaggle15``): each set's model, with its card beside it.
SHIPPED_MODELS = {"kaggle15": DEFAULT_MODEL, "ibug68": RESOURCES / "models" / "ibug68.keras"}


def default_model() -> Path | None:
    """The shipped model, or None when this checkout has none yet."""
    return DEFAULT_MODEL if DEFAULT_MODEL.exists() else None


def shipped_model(name: str) -> Path | None:
    """The shipped model called ``name`` (a keypoint set's name), or None when there is no
    such name or this checkout lacks the file."""
    path = SHIPPED_MODELS.get(name)
    return path if path is not None and path.exists() else None


def resolve_model(spec: str | Path) -> Path:
    """A model file, or the shipped model a name stands for (``kaggle15``, ``ibug68``): a
    file of that name in the current folder wins, as any path does."""
    from facekp.core.errors import FacekpError

    path = Path(spec)
    if str(spec) in SHIPPED_MODELS and not path.exists():
        found = shipped_model(str(spec))
        if found is None:
            raise FacekpError(f"--model {spec}: this installation has no shipped {spec} model "
                              f"({SHIPPED_MODELS[str(spec)].name})")
        return found
    return path
