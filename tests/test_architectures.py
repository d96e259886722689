"""The registered architectures beyond the seed: shape, size, saving, folding, training on real
faces (including faces with missing keypoints)."""
from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from core import model as M  # noqa: E402
from core.model import ARCH_DEFAULTS, ARCHITECTURES, build_model, fold_batch_norm  # noqa: E402

NEW = sorted(set(ARCHITECTURES) - {"seed"})
MAX_PARAMS = 2_500_000
MAX_FILE = 10 * 2 ** 20


def test_there_is_a_new_architecture():
    assert "convbn" in NEW


@pytest.mark.parametrize("name", NEW)
def test_builds_with_pixels_in_and_out(name):
    m = build_model(name)
    assert m.input_shape == (None, 96, 96, 1)
    assert m.output_shape == (None, 30)
    assert m.count_params() <= MAX_PARAMS
    x = np.random.default_rng(0).uniform(0, 255, (2, 96, 96, 1)).astype(np.float32)
    out = np.asarray(m(x, training=False))
    # an untrained net starts near the crop centre, in pixels
    assert out.shape == (2, 30) and np.all(np.abs(out - 48) < 20)


@pytest.mark.parametrize("name", NEW)
def test_defaults_learn_from_every_face_with_augmentation(name):
    d = ARCH_DEFAULTS[name]
    assert d["complete_only"] is False and d["augment"] is True


def randomise_batch_norm(m, seed=0):
    rng = np.random.default_rng(seed)
    for layer in m.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0, 0.1, n),
                               rng.normal(0, 0.1, n), rng.uniform(0.5, 1.5, n)])


@pytest.mark.parametrize("name", NEW)
def test_saves_small_and_loads_back(name, tmp_path, faces):
    from core.predict import load_model

    m = build_model(name)
    randomise_batch_norm(m)
    path = tmp_path / "m.keras"
    m.save(path)
    assert path.stat().st_size <= MAX_FILE
    back = load_model(path)
    x = faces.images[:4, ..., None].astype(np.float32)
    np.testing.assert_allclose(np.asarray(back(x)), np.asarray(m(x, training=False)), atol=1e-4)


@pytest.mark.parametrize("name", NEW)
def test_folding_batch_norm_keeps_the_outputs(name, tmp_path, faces):
    m = build_model(name)
    randomise_batch_norm(m)
    folded = fold_batch_norm(m)
    assert not any(isinstance(l, keras.layers.BatchNormalization) for l in folded.layers)
    assert len(folded.layers) < len(m.layers)
    x = faces.images[:8, ..., None].astype(np.float32)
    want = np.asarray(m(x, training=False))
    np.testing.assert_allclose(np.asarray(folded(x)), want, atol=1e-3)  # pixels
    path = tmp_path / "folded.keras"
    folded.save(path)
    assert path.stat().st_size <= MAX_FILE
    np.testing.assert_allclose(np.asarray(keras.saving.load_model(path)(x)), want, atol=1e-3)


def test_fold_refuses_a_branching_model():
    inp = keras.Input((4,))
    a = keras.layers.Dense(3)(inp)
    out = keras.layers.Add()([a, keras.layers.Dense(3)(a)])  # a residual branch
    with pytest.raises(ValueError, match="chain"):
        fold_batch_norm(keras.Model(inp, out))


@pytest.mark.parametrize("name", NEW)
def test_training_steps_reduce_the_loss_on_real_faces_with_missing_keypoints(name, faces):
    keras.utils.set_random_seed(0)
    incomplete = np.flatnonzero(~faces.present.all(axis=1))[:8]
    complete = np.flatnonzero(faces.present.all(axis=1))[:24]
    batch = faces.subset(np.concatenate([incomplete, complete]))
    assert np.isnan(batch.keypoints).any()
    x = batch.images[..., None].astype(np.float32)
    y = batch.keypoints
    m = build_model(name)
    m.compile(optimizer=keras.optimizers.Adam(3e-3), loss=M.masked_rmse)
    losses = [float(m.train_on_batch(x, y)) for _ in range(25)]
    assert all(np.isfinite(losses))
    assert losses[-1] < 0.7 * losses[0]
    assert all(np.isfinite(w).all() for w in m.get_weights())
