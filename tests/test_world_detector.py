import numpy as np
import pytest
from PIL import Image

from t2i.world.checks import degrade, detector_accuracy
from t2i.world.detector import ImageReadError, detect, load_rgb, match_objects
from t2i.world.draw import render_scene
from t2i.world.scene import Scene, SceneObject


def test_detects_each_shape_and_colour():
    for shape in ("circle", "square", "triangle", "star"):
        for color in ("red", "pink", "black", "yellow"):
            s = Scene("gray", (SceneObject(shape, color, "in the center", "no offset", "a small vertical area"),))
            (d,) = detect(render_scene(s, 64))
            assert (d.shape, d.color) == (shape, color)
            assert d.center((64, 64)) == pytest.approx(s.objects[0].center(), abs=0.02)


def test_object_level_accuracy_clean_and_degraded():
    # The README's figures use 1,000 renders (`t2i world detector-check`); 200 keep the test quick.
    assert detector_accuracy(200, seed=7).recall >= 0.99
    degraded = detector_accuracy(200, seed=7, degraded=True)
    assert degraded.recall >= 0.95
    assert degraded.spurious <= 4


def test_blank_and_noise_give_nothing():
    assert detect(np.ones((64, 64, 3), np.float32)) == []
    rng = np.random.default_rng(0)
    assert len(detect(rng.random((64, 64, 3)).astype(np.float32))) <= 1


def test_other_sizes_and_uint8():
    s = Scene("white", (SceneObject("triangle", "blue", "on the left"), SceneObject("star", "red", "on the right")))
    for size in ((128, 128), (96, 64)):
        img = np.asarray(render_scene(s, size))  # uint8
        dets = detect(img)
        exp = [(o.shape, o.color, o.center()) for o in s.objects]
        assert all(m is not None for m in match_objects(exp, dets, size))


def test_degrade_is_seeded():
    img = np.zeros((8, 8, 3), np.float32)
    a = degrade(img, np.random.default_rng(1))
    assert np.array_equal(a, degrade(img, np.random.default_rng(1)))


def test_load_rgb_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png at all")
    with pytest.raises(ImageReadError, match="bad.png"):
        load_rgb(bad)
    rgba = tmp_path / "rgba.png"
    Image.new("RGBA", (16, 16), (255, 0, 0, 0)).save(rgba)
    assert load_rgb(rgba)[0, 0].tolist() == [1.0, 1.0, 1.0]  # transparent over white
