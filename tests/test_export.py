"""A trained model leaves facekp: ``facekp export-model`` as TensorFlow Lite or a SavedModel,
read back by TensorFlow's own loaders, gives the Keras model's keypoints; and the Predictor's
TFLite engine gives them too."""
from __future__ import annotations

import numpy as np
import pytest

from cli_run import assert_one_line_error, run
from facekp.core.model.predict import Predictor
from facekp.core.resources import DEFAULT_MODEL


@pytest.fixture(scope="module")
def crops(faces):
    return faces.images[:6]


@pytest.fixture(scope="module")
def keras_keypoints(crops):
    return Predictor(DEFAULT_MODEL, flip_average=False, engine="keras").predict(crops)


def test_tflite_file_gives_the_models_keypoints(capsys, tmp_path, crops, keras_keypoints):
    import warnings

    import tensorflow as tf

    out = tmp_path / "model.tflite"
    code, stdout, err = run(capsys, "export-model", DEFAULT_MODEL, "--format", "tflite",
                            "--out", out)
    assert code == 0, err
    assert "wrote" in stdout and out.is_file()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(model_path=str(out))
    inp = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(inp, [len(crops), 96, 96, 1])
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp, crops[..., None].astype(np.float32))  # pixels 0-255 as they are
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    assert got.shape == keras_keypoints.shape
    assert np.abs(got - keras_keypoints).max() <= 1e-3
    # an existing --out is replaced only with --overwrite
    before = out.read_bytes()
    code, _, err = run(capsys, "export-model", DEFAULT_MODEL, "--format", "tflite", "--out", out)
    assert_one_line_error(code, err, out, "--overwrite")
    assert out.read_bytes() == before
    code, _, err = run(capsys, "export-model", DEFAULT_MODEL, "--format", "tflite", "--out",
                       out, "--overwrite")
    assert code == 0, err


def test_savedmodel_folder_gives_the_models_keypoints(capsys, tmp_path, crops, keras_keypoints):
    import tensorflow as tf

    out = tmp_path / "exported"
    code, _, err = run(capsys, "export-model", DEFAULT_MODEL, "--format", "savedmodel",
                       "--out", out)
    assert code == 0, err
    serve = tf.saved_model.load(str(out)).signatures["serving_default"]
    got = list(serve(faces=tf.constant(crops[..., None].astype(np.float32))).values())[0]
    assert np.abs(got.numpy() - keras_keypoints).max() <= 1e-3
    code, _, err = run(capsys, "export-model", DEFAULT_MODEL, "--format", "savedmodel",
                       "--out", out)
    assert_one_line_error(code, err, out, "--overwrite")


def test_the_predictors_tflite_engines_match_keras(crops, keras_keypoints):
    lite = Predictor(DEFAULT_MODEL, flip_average=False, engine="tflite")
    assert np.abs(lite.predict(crops) - keras_keypoints).max() <= 1e-3
    # flip average and the confidence head's signals alike, in one batch each
    both = Predictor(DEFAULT_MODEL, engine="keras")
    kp, conf = both.predict_with_confidence(crops)
    kp2, conf2 = Predictor(DEFAULT_MODEL, engine="tflite").predict_with_confidence(crops)
    assert np.abs(kp - kp2).max() <= 1e-3
    assert np.abs(conf - conf2).max() <= 1e-3
    # the default: 8-bit weights, within a tenth of a pixel
    assert Predictor(DEFAULT_MODEL).engine == "keras"  # exact by default; photo paths: int8
    int8 = Predictor(DEFAULT_MODEL, engine="tflite-int8")
    kp3, conf3 = int8.predict_with_confidence(crops)
    assert np.abs(kp3 - kp).max() <= 0.2 and np.abs(kp3 - kp).mean() <= 0.05
    assert np.abs(conf3 - conf).max() <= 0.05


def test_many_crops_run_in_chunks_side_by_side_with_one_batchs_keypoints(faces):
    """A call of more crops than CHUNK (a group photo's faces and their mirror images) is cut
    into chunks that one-thread interpreters run side by side, one per core: the keypoints
    are those of the crops one by one, in their order, with the heatmaps alike."""
    from facekp.core.model.export import CHUNK, LiteRunner
    from facekp.core.model.predict import load_model

    model = load_model(DEFAULT_MODEL)
    x = faces.images[:2 * CHUNK + 3, :, :, None].astype(np.float32)
    runner = LiteRunner(model, int8_weights=True)
    got = runner(x)
    one_by_one = np.concatenate([runner(face[None]) for face in x])
    np.testing.assert_array_equal(got, one_by_one)
    # the one-by-one calls ran on the calling thread; the chunks (CHUNK, CHUNK, 3) on
    # whichever worker was free, side by side where there is more than one core
    sizes = [sorted(mine) for mine in runner._by_batch]
    assert 1 in sizes[0] and {CHUNK, 3} <= set().union(*sizes)
    if runner.workers > 1:
        assert sum(CHUNK in mine for mine in sizes) >= 1
    maps = LiteRunner(model, maps=True, int8_weights=True)
    heatmaps, keypoints = maps(x)
    np.testing.assert_array_equal(keypoints, got)
    assert len(heatmaps) == len(x) and heatmaps.ndim == 4
