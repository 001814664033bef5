from t2i.compose import parse_canvas
from t2i.evaluation.regions import chance_in_box, objects_in_their_boxes, positionless_canvas, renderer_alone
from t2i.world.draw import render_scene
from t2i.world.scene import scene_for_seed

PLACE_WORDS = ("left", "right", "top", "bottom", "center", "upper", "lower")


def test_positionless_programs_name_no_places_and_keep_the_boxes():
    scene = scene_for_seed(4, 3)
    canvas = parse_canvas(positionless_canvas(scene).to_program())
    layout = canvas.process()
    texts = " ".join(p for r in layout.regions for p in (*r.prefixes, *r.suffixes)).lower()
    assert not any(w in texts for w in PLACE_WORDS)
    assert sorted(c.location for c in canvas.components) == sorted(o.location for o in scene.objects)


def test_ground_truth_renders_put_every_object_in_its_box_and_chance_is_low():
    for seed in range(20):
        scene = scene_for_seed(seed)
        n = len(scene.objects)
        assert objects_in_their_boxes(scene, render_scene(scene, 64)) == (n, n, n)
    scenes = {}

    def draw(program, i):
        return render_scene(scenes[i], 64)

    import random

    from t2i.world.scene import sample_scene

    rng = random.Random(0)
    for i in range(10):
        scenes[i] = sample_scene(rng)
    r = renderer_alone(draw, 10, 0)
    assert r["in_box"] == r["drawn"] == r["in_box_of_drawn"] == 1.0
    assert 0.2 < chance_in_box(300, 1) < 0.45


def test_an_object_drawn_out_of_its_box_counts_as_drawn_only():
    from PIL import Image

    from t2i.world.scene import Scene, SceneObject

    def one(location):
        return Scene("white", (SceneObject("circle", "red", location, "no offset", "a small square area"),))

    truth = one("on the bottom-right")
    assert objects_in_their_boxes(truth, render_scene(truth, 64)) == (1, 1, 1)
    assert objects_in_their_boxes(truth, render_scene(one("on the top-left"), 64)) == (0, 1, 1)
    assert objects_in_their_boxes(truth, Image.new("RGB", (64, 64), "white")) == (0, 0, 1)
