"""The reference architecture, the masked loss and the pixel metric (facekp.core.model.architectures)."""
from __future__ import annotations

import math

import numpy as np
import pytest


@pytest.fixture(scope="module")
def seed_model():
    from facekp.core.model.architectures import build_model

    return build_model("seed")


def test_seed_layer_shapes_and_parameter_count(seed_model):
    shapes = {layer.name: tuple(layer.output.shape) for layer in seed_model.layers}
    assert shapes["image"] == (None, 96, 96, 1)
    assert shapes["conv1"] == (None, 94, 94, 32)
    assert shapes["pool1"] == (None, 47, 47, 32)
    assert shapes["conv2"] == (None, 46, 46, 64)
    assert shapes["pool2"] == (None, 23, 23, 64)
    assert shapes["conv3"] == (None, 22, 22, 128)
    assert shapes["pool3"] == (None, 11, 11, 128)
    assert shapes["flatten"] == (None, 15488)
    assert shapes["fc1"] == (None, 500)
    assert shapes["fc2"] == (None, 500)
    assert shapes["keypoints_scaled"] == (None, 30)
    assert shapes["to_pixels"] == (None, 30)
    assert seed_model.count_params() == 8_051_502


def test_seed_initialisation_follows_the_reference(seed_model):
    kernel, bias = seed_model.get_layer("fc1").get_weights()
    assert np.allclose(bias, 0.1)
    assert np.abs(kernel).max() <= 0.2 + 1e-6  # truncated at two standard deviations
    assert kernel.std() == pytest.approx(0.088, abs=0.005)  # stddev 0.1 before truncation


def test_unknown_architecture_names_the_known_ones():
    from facekp.core.model.architectures import build_model

    with pytest.raises(ValueError, match="seed"):
        build_model("no-such-net")


def test_masked_rmse_ignores_missing_values_and_works_in_96ths():
    from facekp.core.model.architectures import masked_rmse

    truth = np.array([[10.0, 20.0, np.nan, 40.0], [np.nan, np.nan, 0.0, 96.0]], np.float32)
    pred = np.array([[13.0, 16.0, 500.0, 40.0], [-7.0, 3.0, 0.0, 90.0]], np.float32)
    # present: 3^2 + 4^2 + 0 + 0 + 6^2 over 5 values
    expected_px = math.sqrt((9 + 16 + 0 + 0 + 36) / 5)
    assert float(masked_rmse(truth, pred)) * 96 == pytest.approx(expected_px, rel=1e-5)
    empty = np.full((1, 4), np.nan, np.float32)
    assert float(masked_rmse(empty, pred[:1])) == 0.0


def test_metric_is_exact_over_batches_not_a_mean_of_batch_rmses():
    from facekp.core.model.architectures import MaskedRMSE

    m = MaskedRMSE()
    t1 = np.array([[0.0, 0.0]], np.float32)
    p1 = np.array([[3.0, 4.0]], np.float32)
    t2 = np.array([[0.0, np.nan], [0.0, 0.0]], np.float32)
    p2 = np.array([[1.0, 99.0], [1.0, 1.0]], np.float32)
    m.update_state(t1, p1)
    m.update_state(t2, p2)
    assert float(m.result()) == pytest.approx(math.sqrt((9 + 16 + 1 + 1 + 1) / 5), rel=1e-6)
    m.reset_state()
    assert float(m.result()) == 0.0


def test_saved_model_loads_back_with_plain_keras(seed_model, tmp_path):
    import keras

    from facekp.core.model.architectures import MaskedRMSE, masked_rmse

    seed_model.compile(optimizer="adam", loss=masked_rmse, metrics=[MaskedRMSE()])
    seed_model.optimizer.build(seed_model.trainable_variables)
    path = tmp_path / "seed.keras"
    seed_model.save(path)
    loaded = keras.saving.load_model(path)
    x = np.random.default_rng(0).integers(0, 256, (2, 96, 96, 1)).astype(np.float32)
    np.testing.assert_allclose(loaded(x, training=False), seed_model(x, training=False),
                               rtol=1e-5, atol=1e-4)
    assert loaded.loss is not None
