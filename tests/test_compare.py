"""`facekp compare`: both models' RMSE on the same faces, per keypoint, and B / A."""
from __future__ import annotations

import json

import numpy as np
import pytest

from facekp.core.data import opener
from facekp.core.quality.evaluate import evaluate
from facekp.core.data.keypoints import NAMES
from cli_run import run


@pytest.fixture(scope="module")
def two_models(faces, constant_model, tmp_path_factory):
    """A: the mean shape of the training faces. B: that shape 3 px lower (a shift in x would
    cancel out in the flip averaging that evaluation uses)."""
    folder = tmp_path_factory.mktemp("compare")
    mean = np.nanmean(faces.keypoints[faces.splits == "train"], axis=0)
    shifted = mean.copy()
    shifted[1::2] += 3.0
    paths = folder / "a.keras", folder / "b.keras"
    constant_model(mean).save(paths[0])
    constant_model(shifted).save(paths[1])
    return paths


def test_compare_json_matches_evaluate_of_each_model(capsys, two_models, real_subset_npz):
    npz = real_subset_npz("compare", 8, 4, 40)
    a, b = two_models
    code, out, _ = run(capsys, "compare", a, b, "--data", npz, "--json")
    assert code == 0
    result = json.loads(out)
    test = opener.load(npz).split("test")
    want_a, want_b = evaluate(a, test), evaluate(b, test)
    assert result["faces"] == 40 == want_a["faces"]
    assert result["model_a"] == str(a) and result["model_b"] == str(b)
    assert result["rmse_px"]["a"] == pytest.approx(want_a["rmse_px"])
    assert result["rmse_px"]["b"] == pytest.approx(want_b["rmse_px"])
    assert result["rmse_px"]["ratio"] == pytest.approx(want_b["rmse_px"] / want_a["rmse_px"])
    assert result["rmse_px"]["ratio"] > 1  # B is 3 px off in y
    for name in NAMES:
        row = result["per_keypoint"][name]
        assert row["a"] == pytest.approx(want_a["per_keypoint"][name])
        assert row["b"] == pytest.approx(want_b["per_keypoint"][name])
        assert row["ratio"] == pytest.approx(row["b"] / row["a"])


def test_compare_text_has_a_row_per_keypoint(capsys, two_models, real_subset_npz):
    npz = real_subset_npz("compare_text", 8, 4, 10)
    a, b = two_models
    code, out, _ = run(capsys, "compare", a, a, "--data", npz, "--split", "val")
    assert code == 0
    rows = [line.split() for line in out.splitlines() if line.startswith("  ")]
    assert [r[0] for r in rows[1:]] == ["overall", *NAMES]
    assert all(r[-1] == "1.000" for r in rows[1:])  # a model against itself
    assert "4 faces" in out


def test_compare_missing_model_is_a_one_line_error(capsys, two_models, real_subset_npz,
                                                    tmp_path):
    npz = real_subset_npz("compare_err", 8, 4, 4)
    code, _, err = run(capsys, "compare", two_models[0], tmp_path / "none.keras", "--data", npz)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "none.keras" in err
