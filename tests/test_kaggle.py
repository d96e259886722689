"""Kaggle submission against the real IdLookupTable.csv and SampleSubmission.csv."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from facekp.core.data import kaggle_csv
from facekp.core.errors import DataError
from facekp.core.data.keypoints import COLUMNS

SLOPE = np.linspace(-0.2, 0.9, 30).astype(np.float32)
OFFSET = np.linspace(-10, 40, 30).astype(np.float32)


@pytest.fixture(scope="module")
def kaggle(shared_data):
    return shared_data / "kaggle"


@pytest.fixture(scope="module")
def pixel_mean_model(tmp_path_factory):
    """A real saved Keras model whose outputs depend on the image: mean pixel x slope +
    offset, so every submission row can be checked against its own image; some values fall
    outside 0-96 and must be clipped."""
    import keras

    inputs = keras.Input((96, 96, 1))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    model = keras.Model(inputs, keras.layers.Dense(30)(x))
    model.layers[-1].set_weights([SLOPE[None], OFFSET])
    path = tmp_path_factory.mktemp("model") / "pixel_mean.keras"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def test_csv(faces, tmp_path_factory):
    """A Kaggle-layout test.csv of 1,783 real faces (ImageId 1..1783)."""
    path = tmp_path_factory.mktemp("kaggle") / "test.csv"
    kaggle_csv.write_kaggle_csv(faces.subset(np.arange(1783)), path, layout="test")
    return path


def expected_location(faces, image_id: int, feature: str) -> float:
    mean = faces.images[image_id - 1].mean(dtype=np.float64)
    j = COLUMNS.index(feature)
    return float(np.clip(mean * SLOPE[j] + OFFSET[j], 0, 96))


def test_submission_has_exactly_the_lookup_rows(kaggle, test_csv, pixel_mean_model, faces,
                                                tmp_path):
    from facekp.core.quality.kaggle import make_submission
    from facekp.core.model.predict import Predictor

    out = tmp_path / "submission.csv"
    plain = Predictor(pixel_mean_model, flip_average=False)  # the model's own output, exactly
    summary = make_submission(plain, test_csv, kaggle / "IdLookupTable.csv", out)
    sub = pd.read_csv(out)
    sample = pd.read_csv(kaggle / "SampleSubmission.csv")
    assert list(sub.columns) == ["RowId", "Location"]
    assert len(sub) == 27_124 == summary["rows"]
    assert (sub["RowId"].to_numpy() == sample["RowId"].to_numpy()).all()
    assert summary["images"] == 1783
    assert sub["Location"].between(0, 96).all() and summary["clipped"] > 0
    lookup = pd.read_csv(kaggle / "IdLookupTable.csv")
    for i in np.random.default_rng(0).choice(len(lookup), 300, replace=False):
        row = lookup.iloc[i]
        assert sub["Location"].iloc[i] == pytest.approx(
            expected_location(faces, int(row.ImageId), row.FeatureName), abs=2e-3)
    assert {p.name for p in tmp_path.iterdir()} == {"submission.csv"}


def _write_lookup(path, text):
    path.write_text(text)
    return path


def test_bad_lookup_files_name_row_and_column(tmp_path, test_csv, pixel_mean_model):
    from facekp.core.quality.kaggle import make_submission, read_lookup

    cases = [
        ("RowId,ImageId,Feature,Location\n1,1,left_eye_center_x,\n", "FeatureName", 1),
        ("RowId,ImageId,FeatureName,Location\n1,1,left_eye_centre_x,\n", "FeatureName", 2),
        ("RowId,ImageId,FeatureName,Location\n1,1,nose_tip_x,\nx,1,nose_tip_y,\n", "RowId", 3),
        ("RowId,ImageId,FeatureName,Location\n1,1,nose_tip_x,\n1,2,nose_tip_y,\n", "RowId", 3),
        ("RowId,ImageId,FeatureName,Location\n1,1.5,nose_tip_x,\n", "ImageId", 2),
    ]
    for i, (text, column, row) in enumerate(cases):
        path = _write_lookup(tmp_path / f"lookup{i}.csv", text)
        with pytest.raises(DataError) as info:
            read_lookup(path)
        assert (info.value.column, info.value.row) == (column, row), text
        assert str(path) in str(info.value)
    with pytest.raises(DataError, match="left_eye_center_x"):  # suggests the right name
        read_lookup(tmp_path / "lookup1.csv")
    with pytest.raises(DataError, match="no rows"):
        read_lookup(_write_lookup(tmp_path / "empty.csv", "RowId,ImageId,FeatureName\n"))

    missing = _write_lookup(tmp_path / "missing.csv", "RowId,ImageId,FeatureName,Location\n"
                                                      "1,1,nose_tip_x,\n2,9999,nose_tip_y,\n")
    out = tmp_path / "submission.csv"
    with pytest.raises(DataError, match="ImageId 9999") as info:
        make_submission(pixel_mean_model, test_csv, missing, out)
    assert info.value.row == 3
    assert not out.exists()


def test_a_training_file_is_not_a_test_file(faces, tmp_path, kaggle, pixel_mean_model):
    from facekp.core.quality.kaggle import make_submission

    train_csv = tmp_path / "training.csv"
    kaggle_csv.write_kaggle_csv(faces.subset(np.arange(3)), train_csv, layout="training")
    with pytest.raises(DataError, match="test.csv layout"):
        make_submission(pixel_mean_model, train_csv, kaggle / "IdLookupTable.csv",
                        tmp_path / "s.csv")


def test_a_68_point_model_submits_its_derived_15_and_another_set_is_refused(
        kaggle, test_csv, faces, tmp_path):
    """An ibug68 model's points give Kaggle's 15 (each the mean of the 68 points it comes
    from); a model of a set that cannot give them is refused naming its set, nothing
    written."""
    import keras

    from facekp.core.data.keypoint_sets import IBUG68, KAGGLE15, KeypointSet
    from facekp.core.model.predict import Predictor
    from facekp.core.quality.kaggle import make_submission

    inputs = keras.Input((96, 96, 1))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    slope = np.linspace(0.1, 0.5, 136).astype(np.float32)
    offset = np.linspace(5, 40, 136).astype(np.float32)
    model = keras.Model(inputs, keras.layers.Dense(136)(x))
    model.layers[-1].set_weights([slope[None], offset])
    out = tmp_path / "submission.csv"
    make_submission(Predictor(model, flip_average=False, keypoint_set=IBUG68), test_csv,
                    kaggle / "IdLookupTable.csv", out)
    sub, lookup = pd.read_csv(out), pd.read_csv(kaggle / "IdLookupTable.csv")
    weights = KAGGLE15.from_68_matrix()
    for i in np.random.default_rng(1).choice(len(lookup), 100, replace=False):
        row = lookup.iloc[i]
        pts = (faces.images[int(row.ImageId) - 1].mean(dtype=np.float64) * slope
               + offset).reshape(68, 2)
        j = COLUMNS.index(row.FeatureName)
        assert sub["Location"].iloc[i] == pytest.approx(
            np.clip((weights @ pts).reshape(-1)[j], 0, 96), abs=2e-3)
    hand = KeypointSet("hand", ("thumb", "index"))
    small = keras.Model(inputs, keras.layers.Dense(4)(x))
    with pytest.raises(DataError, match="keypoint set 'hand' .2 points.; a Kaggle submission"):
        make_submission(Predictor(small, keypoint_set=hand), test_csv,
                        kaggle / "IdLookupTable.csv", tmp_path / "no.csv")
    assert not (tmp_path / "no.csv").exists()
