import random

import numpy as np
import pytest

from t2i.world.draw import render_scene, scene_boxes_px
from t2i.world.scene import Scene, SceneError, SceneObject, sample_scene, scene_for_seed, separated
from t2i.world.vocab import BACKGROUNDS, COLORS, SHAPES


def test_vocabulary_matches_geneval_and_html():
    assert list(COLORS) == ["red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white"]
    assert COLORS["red"] == (255, 0, 0) and COLORS["green"] == (0, 128, 0)
    assert COLORS["blue"] == (0, 0, 255) and COLORS["yellow"] == (255, 255, 0)
    assert {"circle", "square", "triangle"} <= set(SHAPES) and len(SHAPES) >= 4


def test_deterministic_by_seed():
    assert scene_for_seed(5) == scene_for_seed(5)
    assert np.array_equal(np.asarray(render_scene(scene_for_seed(5))), np.asarray(render_scene(scene_for_seed(5))))
    assert scene_for_seed(5) != scene_for_seed(6)


def test_many_scenes_are_valid():
    rng = random.Random(0)
    counts = set()
    for _ in range(300):
        s = sample_scene(rng)
        counts.add(len(s.objects))
        assert s.background not in {o.color for o in s.objects}
        for i, a in enumerate(s.objects):
            assert all(separated(a, b) for b in s.objects[:i])
    assert counts == {1, 2, 3, 4}


def test_json_round_trip_and_validation():
    s = scene_for_seed(3)
    assert Scene.from_dict(s.to_dict()) == s
    bad = s.to_dict()
    bad["objects"][0]["shape"] = "hexagon"
    with pytest.raises(SceneError, match="unknown shape"):
        Scene.from_dict(bad)
    with pytest.raises(SceneError, match="background"):
        Scene("white", (SceneObject("circle", "white"),))
    with pytest.raises(SceneError, match="overlap"):
        Scene("gray", (SceneObject("circle", "red"), SceneObject("square", "blue")))


def test_render_colours_and_place():
    s = Scene("white", (SceneObject("square", "red", "on the top-left", "no offset", "a small square area"),))
    img = np.asarray(render_scene(s, 90))
    assert img.shape == (90, 90, 3)
    # top-left small square box is (0..40, 0..40); the square is 60% of it, centred at (20, 20)
    assert tuple(img[20, 20]) == (255, 0, 0)
    assert tuple(img[80, 80]) == (255, 255, 255)
    (x0, y0, x1, y1), = scene_boxes_px(s, 90)
    assert (x0, y0, x1, y1) == pytest.approx((8, 8, 32, 32))
    assert render_scene(s, (128, 64)).size == (128, 64)


def test_backgrounds_far_from_object_colours():
    for name, bg in BACKGROUNDS.items():
        for c, rgb in COLORS.items():
            if c != name:
                assert np.linalg.norm(np.subtract(bg, rgb)) >= 80, (name, c)
