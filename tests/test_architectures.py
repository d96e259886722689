"""The registered architectures beyond the seed: shape, size, saving, folding, training on real
faces (including faces with missing keypoints)."""
from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from facekp.core.model import architectures as M  # noqa: E402
from facekp.core.model.architectures import (
    ARCH_DEFAULTS, ARCHITECTURES, build_model, fold_batch_norm,
)  # noqa: E402

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
    from facekp.core.model.predict import load_model

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


def test_fold_handles_branches_and_keeps_a_shared_output_unfolded():
    inp = keras.Input((6, 6, 1))
    x = keras.layers.Rescaling(1 / 255)(inp)
    a = keras.layers.Conv2D(4, 3, padding="same", use_bias=False)(x)
    a = keras.layers.ReLU()(keras.layers.BatchNormalization()(a))
    b = keras.layers.Conv2D(4, 1)(a)                      # feeds a BN and the Add: kept
    c = keras.layers.BatchNormalization()(b)
    out = keras.layers.Add()([b, keras.layers.Conv2D(4, 1)(a), c])
    m = keras.Model(inp, keras.layers.Flatten()(out))
    randomise_batch_norm(m)
    folded = fold_batch_norm(m)
    bns = [l for l in folded.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert len(bns) == 1  # the second BN's conv output is also used by the Add
    assert not any(isinstance(l, keras.layers.Rescaling) for l in folded.layers)
    x = np.random.default_rng(1).uniform(0, 255, (3, 6, 6, 1)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(folded(x)), np.asarray(m(x, training=False)),
                               atol=1e-4)


def test_fold_refuses_a_layer_used_twice():
    inp = keras.Input((4,))
    shared = keras.layers.Dense(4)
    out = shared(shared(inp))
    with pytest.raises(ValueError, match="used 2 times"):
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


def test_soft_argmax_reads_a_peak_as_its_cell_centre_and_a_flat_map_as_the_middle():
    logits = np.zeros((2, 24, 24, 15), np.float32)
    rng = np.random.default_rng(3)
    rows, cols = rng.integers(0, 24, 15), rng.integers(0, 24, 15)
    logits[0, rows, cols, np.arange(15)] = 60.0  # a sharp peak per keypoint
    out = np.asarray(M.SoftArgmax(96)(logits)).reshape(2, 15, 2)
    # cell j covers input pixels 4j .. 4j + 3, whose centre is 4j + 1.5 (pixel centres)
    np.testing.assert_allclose(out[0, :, 0], 4 * cols + 1.5, atol=1e-3)
    np.testing.assert_allclose(out[0, :, 1], 4 * rows + 1.5, atol=1e-3)
    np.testing.assert_allclose(out[1], 47.5, atol=1e-4)


def test_soft_argmax_between_two_cells_gives_a_sub_cell_position():
    logits = np.full((1, 24, 24, 1), -60.0, np.float32)
    logits[0, 10, 5, 0] = logits[0, 10, 6, 0] = 0.0  # equal mass on two neighbours
    x, y = np.asarray(M.SoftArgmax(96)(logits))[0]
    assert x == pytest.approx(4 * 5.5 + 1.5, abs=1e-3) and y == pytest.approx(41.5, abs=1e-3)
