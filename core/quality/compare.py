"""Two models on the same faces: overall and per-keypoint RMSE of each, and their ratio."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from facekp.core.quality.evaluate import evaluate


def _ratio(a: float | None, b: float | None) -> float | None:
    """b / a, or None when either is missing or a is 0."""
    return None if a is None or b is None or a == 0 else b / a


def compare(model_a: Any, model_b: Any, dataset) -> dict[str, Any]:
    """Evaluate both models (facekp.core.quality.evaluate.evaluate, so as ``facekp evaluate`` predicts) on
    ``dataset``: ``{"faces", "rmse_px": {"a", "b", "ratio"}, "per_keypoint": {name: {...}}}``,
    ratio = B / A (below 1: B is the better). Both models must predict one keypoint set (a
    DataError naming both otherwise)."""
    from facekp.core.errors import DataError
    from facekp.core.model.predict import Predictor

    pa, pb = (m if isinstance(m, Predictor) else Predictor(m) for m in (model_a, model_b))
    if pa.keypoint_set != pb.keypoint_set:
        raise DataError(None, f"model A predicts keypoint set {pa.keypoint_set.name!r} and "
                              f"model B {pb.keypoint_set.name!r}: compare models of one set")
    a, b = evaluate(pa, dataset), evaluate(pb, dataset)
    return {
        "faces": a["faces"],
        "rmse_px": {"a": a["rmse_px"], "b": b["rmse_px"],
                    "ratio": _ratio(a["rmse_px"], b["rmse_px"])},
        "per_keypoint": {n: {"a": a["per_keypoint"][n], "b": b["per_keypoint"][n],
                             "ratio": _ratio(a["per_keypoint"][n], b["per_keypoint"][n])}
                         for n in a["per_keypoint"]},
    }


def format_comparison(result: dict[str, Any], model_a: str | Path, model_b: str | Path,
                      title: str = "") -> str:
    """A table of :func:`compare`'s result: a row per keypoint, A, B and B / A."""
    def cell(v: float | None, unit: str = " px") -> str:
        return "   n/a" + " " * len(unit) if v is None else f"{v:6.3f}{unit}"

    width = max(len(n) for n in ["overall", *result["per_keypoint"]])
    lines = ([title] if title else []) + [
        f"A: {model_a}", f"B: {model_b}", f"{result['faces']} faces",
        f"  {'':<{width}}  {'A':>9}  {'B':>9}  {'B / A':>6}"]
    rows = [("overall", result["rmse_px"])] + list(result["per_keypoint"].items())
    for name, r in rows:
        lines.append(f"  {name:<{width}}  {cell(r['a'])}  {cell(r['b'])}  {cell(r['ratio'], '')}")
    return "\n".join(lines)
