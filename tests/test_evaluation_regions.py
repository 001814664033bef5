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
        assert objects_in_their_boxes(scene, render_scene(scene, 64)) == (len(scene.objects), len(scene.objects))
    scenes = {}

    def draw(program, i):
        return render_scene(scenes[i], 64)

    import random

    from t2i.world.scene import sample_scene

    rng = random.Random(0)
    for i in range(10):
        scenes[i] = sample_scene(rng)
    assert renderer_alone(draw, 10, 0)["in_box"] == 1.0
    assert 0.2 < chance_in_box(300, 1) < 0.45
