"""Predictor on crops and on the real photos in shared/data/photos."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from facekp.core.errors import DataError
from facekp.core.faces.framing import (Box, crop_for_box, crop_for_landmarks, crop_for_points,
                                       crop_for_six)
from facekp.core.data.keypoints import as_points


@pytest.fixture(scope="module")
def mean_shape(faces):
    """The mean keypoints of the training faces: a face-shaped constant prediction."""
    return np.nanmean(faces.split("train").keypoints, axis=0).astype(np.float32)


@pytest.fixture(scope="module")
def predictor(mean_shape, constant_model, tmp_path_factory):
    from facekp.core.model.predict import Predictor

    path = tmp_path_factory.mktemp("model") / "mean.keras"
    constant_model(mean_shape).save(path)
    return Predictor(path, flip_average=False)  # outputs exactly the constant


@pytest.fixture(scope="module")
def photos(shared_data):
    return shared_data / "photos"


def test_predict_crops_calls_the_model(faces):
    from facekp.core.model.predict import Predictor

    import keras

    inputs = keras.Input((96, 96, 1))
    x = keras.layers.GlobalAveragePooling2D()(inputs)  # mean pixel
    model = keras.Model(inputs, keras.layers.Dense(30)(x))
    model.layers[-1].set_weights([np.linspace(0.1, 0.4, 30, dtype=np.float32)[None],
                                  np.arange(30, dtype=np.float32)])
    p = Predictor(model, flip_average=False)
    images = faces.images[:5]
    got = p.predict(images)
    assert got.dtype == np.float32 and got.shape == (5, 30)
    mean = images.reshape(5, -1).mean(axis=1, dtype=np.float64)
    expected = mean[:, None] * np.linspace(0.1, 0.4, 30) + np.arange(30)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    np.testing.assert_allclose(p.predict(images[..., None]), got)  # (N, 96, 96, 1) too
    np.testing.assert_allclose(p.predict(images, batch_size=2), got)  # chunked alike
    with pytest.raises(ValueError, match="96"):
        p.predict(np.zeros((2, 64, 64), np.uint8))


def test_photo_with_one_face(predictor, photos, mean_shape):
    result = predictor.predict_photo(photos / "Tom_Cruise_avp_2014_4.jpg", passes=1)
    assert len(result.faces) >= 1 and result.size == (565, 800)
    face = result.faces[0]
    assert face.keypoints.shape == (15, 2)
    # BlazeFace's confidence and six points come with the face; the crop is framed from the
    # points by their rule
    assert 0.8 <= face.confidence <= 1.0
    assert face.detection.points.shape == (6, 2)
    assert face.crop == crop_for_six(face.detection.points)
    # crop pixels mapped back into photo pixels through that crop
    np.testing.assert_allclose(face.keypoints, face.crop.to_photo(as_points(mean_shape)),
                               atol=1e-3)
    for x, y in [*face.keypoints, *face.detection.points[:4]]:  # not the ears
        assert face.box.x0 <= x <= face.box.x1 and face.box.y0 <= y <= face.box.y1


def test_haar_is_one_option_away(mean_shape, constant_model, photos, tmp_path):
    from facekp.core.model.predict import Predictor

    path = tmp_path / "mean.keras"
    constant_model(mean_shape).save(path)
    haar = Predictor(path, detector="haar", flip_average=False)
    face = haar.predict_photo(photos / "Tom_Cruise_avp_2014_4.jpg", passes=1).faces[0]
    assert face.confidence is None and face.detection.points is None
    assert face.crop == crop_for_box(face.box)
    assert haar.predict_photo(photos / "dogs.jpg").faces == []


def test_min_confidence_leaves_out_unsure_faces(predictor, photos):
    from facekp.core.model.predict import Predictor

    group = predictor.predict_photo(photos / "bald_guys.jpg", passes=1)
    confidences = sorted(f.confidence for f in group.faces)
    cut = confidences[len(confidences) // 2]
    strict = Predictor(predictor.model, detector=predictor.detector, min_confidence=cut,
                       flip_average=False)
    kept = strict.predict_photo(photos / "bald_guys.jpg", passes=1).faces
    assert len(kept) == sum(c >= cut for c in confidences) < len(group.faces) or cut == 1.0
    assert all(f.confidence >= cut for f in kept)


def test_flip_average_is_the_mean_of_the_face_and_its_mirror_image(faces):
    import keras

    from facekp.core.data.keypoints import flip_images, flip_keypoints
    from facekp.core.model.predict import Predictor

    inputs = keras.Input((96, 96, 1))
    x = keras.layers.Flatten()(keras.layers.AveragePooling2D(16)(inputs))  # 6 x 6 means
    model = keras.Model(inputs, keras.layers.Dense(30)(x))  # not mirror-symmetric
    plain, averaged = Predictor(model, flip_average=False), Predictor(model)  # on by default
    images = faces.images[:4]
    direct = plain.predict(images)
    mirrored = flip_keypoints(plain.predict(flip_images(images)))
    np.testing.assert_allclose(averaged.predict(images), (direct + mirrored) / 2, atol=1e-3)
    assert np.abs(direct - mirrored).max() > 0.1


def test_second_pass_reframes_and_averages_the_two_views(predictor, photos, mean_shape):
    one = predictor.predict_photo(photos / "Tom_Cruise_avp_2014_4.jpg", passes=1).faces[0]
    two = predictor.predict_photo(photos / "Tom_Cruise_avp_2014_4.jpg", passes=2).faces[0]
    assert two.box == one.box
    assert two.crop == crop_for_points(one.keypoints)
    assert two.crop == crop_for_landmarks(one.keypoints[[0, 1, 10, 11, 12]])
    # The face's keypoints: the mean of the first view and the reframed one, in photo pixels.
    second = two.crop.to_photo(as_points(mean_shape))
    np.testing.assert_allclose(two.keypoints, (one.keypoints + second) / 2, atol=1e-3)
    assert np.abs(second - one.keypoints).max() > 0.5  # the two views differ: a real mean
    with pytest.raises(ValueError):
        predictor.predict_photo(photos / "Tom_Cruise_avp_2014_4.jpg", passes=3)


def test_several_faces_and_none(predictor, photos):
    group = predictor.predict_photo(photos / "bald_guys.jpg")
    assert len(group.faces) >= 10
    boxes = [f.box for f in group.faces]
    areas = [b.width * b.height for b in boxes]
    assert all(a >= b * (1 - 1e-9) for a, b in zip(areas, areas[1:]))  # largest first
    for i, a in enumerate(boxes):  # distinct faces, not one face found twice
        for b in boxes[i + 1:]:
            ix = max(0, min(a.x1, b.x1) - max(a.x0, b.x0))
            iy = max(0, min(a.y1, b.y1) - max(a.y0, b.y0))
            assert ix * iy < 0.5 * b.width * b.height
    dogs = predictor.predict_photo(photos / "dogs.jpg")
    assert dogs.faces == [] and dogs.message == "no face found"


def test_given_boxes_are_framed_like_detections(predictor, photos):
    img = Image.open(photos / "Tom_Cruise_avp_2014_4.jpg")
    box = Box(100, 250, 450, 600)
    result = predictor.predict_photo(img, boxes=[box], passes=1)
    assert [f.box for f in result.faces] == [box]
    assert result.faces[0].crop == crop_for_box(box)


def test_exif_orientation_is_applied(predictor, photos, tmp_path):
    upright = Image.open(photos / "Tom_Cruise_avp_2014_4.jpg").convert("RGB")
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # as a camera held sideways stores it
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    path = tmp_path / "sideways.jpg"
    stored.save(path, exif=exif.tobytes(), quality=95)
    result = predictor.predict_photo(path, passes=1)
    assert result.size == upright.size
    assert len(result.faces) >= 1
    reference = predictor.predict_photo(upright, passes=1).faces[0].box
    got = result.faces[0].box
    assert abs(got.center[0] - reference.center[0]) < 0.1 * reference.width
    assert abs(got.center[1] - reference.center[1]) < 0.1 * reference.width


def test_photos_of_any_mode_load_as_upright_rgb(tmp_path):
    from facekp.core.faces.framing import load_photo, to_gray

    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8))
    for mode, ext in (("RGB", "jpg"), ("L", "png"), ("P", "png"), ("RGBA", "png"),
                      ("CMYK", "jpg")):
        path = tmp_path / f"photo-{mode}.{ext}"
        rgb.convert(mode).save(path)
        got = load_photo(path)  # the file is closed: the pixels must already be loaded
        assert got.mode == "RGB" and got.size == (60, 40), mode
        assert to_gray(got).shape == (40, 60)
    # upright EXIF (1) and no EXIF give the same pixels
    plain, tagged = tmp_path / "plain.png", tmp_path / "tagged.png"
    rgb.save(plain)
    exif = Image.Exif()
    exif[0x0112] = 1
    rgb.save(tagged, exif=exif.tobytes())
    np.testing.assert_array_equal(np.asarray(load_photo(plain)), np.asarray(rgb))
    np.testing.assert_array_equal(np.asarray(load_photo(tagged)), np.asarray(rgb))


def test_unreadable_photos_raise_data_error(predictor, tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("not an image\n")
    with pytest.raises(DataError, match="notes.jpg"):
        predictor.predict_photo(text)
    with pytest.raises(DataError, match="no such"):
        predictor.predict_photo(tmp_path / "missing.png")


def test_model_file_errors(tmp_path):
    from facekp.core.model.predict import Predictor

    bad = tmp_path / "model.keras"
    bad.write_text("hello")
    with pytest.raises(DataError, match="not a Keras model"):
        Predictor(bad)
    with pytest.raises(DataError, match="no such"):
        Predictor(tmp_path / "none.keras")
    import keras

    inputs = keras.Input((96, 96, 1))
    wrong = keras.Model(inputs, keras.layers.Dense(4)(keras.layers.Flatten()(inputs)))
    wrong.save(tmp_path / "wrong.keras")
    with pytest.raises(DataError, match="gives 4 values per face and its keypoint set "
                                        "'kaggle15' has 15 points"):
        Predictor(tmp_path / "wrong.keras")
    odd = keras.Model(inputs, keras.layers.Dense(5)(keras.layers.Flatten()(inputs)))
    odd.save(tmp_path / "odd.keras")
    with pytest.raises(DataError, match="96x96 faces to K keypoints"):
        Predictor(tmp_path / "odd.keras")


def test_the_grayscale_the_crops_read_where_they_read_it_is_the_photo_s_own(shared_data):
    """The photo path converts to grayscale only the regions its crops read: the whole photo's
    conversion (Pillow's), or one level off in a few pixels in a million (OpenCV's fixed
    point), past the photo's edges too; RGBA alike."""
    from facekp.core.faces.framing import Crop, GrayOnRead, crop_image, to_gray

    with Image.open(shared_data / "photos" / "bald_guys.jpg") as im:
        rgb = np.array(im.convert("RGB"))
    whole, lazy = to_gray(rgb).astype(int), GrayOnRead(rgb)
    assert lazy.shape == whole.shape == rgb.shape[:2]
    off = np.abs(lazy[:, :] - whole)
    assert lazy[:, :].dtype == np.uint8 and off.max() <= 1 and (off > 0).mean() < 2e-5
    np.testing.assert_array_equal(lazy[100:300, 250:420], lazy[:, :][100:300, 250:420])
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 9, np.uint8)])
    np.testing.assert_array_equal(GrayOnRead(rgba)[50:90, 60:80], lazy[50:90, 60:80])
    h, w = whole.shape
    for crop in (Crop(-40, h - 200, 300), Crop(500, 200, 180), Crop(w - 60, -30, 120)):
        off = np.abs(crop_image(lazy, crop).astype(int) - crop_image(whole.astype(np.uint8), crop))
        assert off.max() <= 1 and (off > 0).mean() < 1e-3


def test_a_group_photos_crops_cut_on_the_cores_are_the_crops_one_by_one(photos):
    """bald_guys.jpg's 24 crops, cut side by side on the cores, are crop_image's, in order."""
    from facekp.core.faces.framing import Crop, crop_image, to_gray
    from facekp.core.model.predict import crop_images

    gray = to_gray(np.asarray(Image.open(photos / "bald_guys.jpg").convert("RGB")))
    h, w = gray.shape
    rng = np.random.default_rng(0)
    crops = [Crop(int(rng.integers(-50, w - 50)), int(rng.integers(-50, h - 50)),
                  int(rng.integers(60, 340))) for _ in range(24)]
    images = crop_images(gray, crops)
    assert images.shape == (24, 96, 96) and images.dtype == np.uint8
    for image, crop in zip(images, crops):
        np.testing.assert_array_equal(image, crop_image(gray, crop))
    np.testing.assert_array_equal(crop_images(gray, crops[:2]), images[:2])
