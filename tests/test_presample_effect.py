from collections import Counter

from t2i.evaluation.presample_effect import (
    check_expansion,
    distances,
    one_tag_prompts,
    run_experiment,
    total_variation,
    world_distributions,
)
from t2i.world.draw import render_scene
from t2i.world.scene import Scene, SceneObject


def test_total_variation():
    assert total_variation(Counter(a=1), Counter(a=5), "ab") == 0.0
    assert total_variation(Counter(a=1), Counter(b=1), "ab") == 1.0
    assert abs(total_variation(Counter(a=3, b=1), Counter(a=1, b=1), "ab") - 0.25) < 1e-9
    assert total_variation(Counter(), Counter(a=1), "a") == 1.0


def test_the_world_against_itself_is_close_and_against_one_object_far():
    w1, w2 = world_distributions(150, seed=1), world_distributions(150, seed=2)
    d = distances(w1, w2)
    assert d["count"] < 0.15 and d["color"] < 0.15 and d["place"] < 0.15


def test_check_expansion():
    ok = check_expansion(["red circle", "two blue squares", "gray background"],
                         "There is a red circle on the left. The background is gray.", "red", "circle")
    assert ok == (True, True)
    assert check_expansion(["red circle", "purple blob"], "", "red", "circle") == (False, True)
    assert check_expansion(["blue square"], "A lovely day.", "red", "circle") == (False, False)


def test_experiment_with_a_perfect_drawer_and_an_identity_expander():
    scene = Scene("gray", (SceneObject("circle", "red", location="on the left"),))

    def draw(prompt, seed):
        return render_scene(scene, 64)

    def expand(prompt, seed):
        return prompt, [prompt], ""

    prompts = [("red", "circle")] * 4
    report = run_experiment(prompts, draw, expand, world_distributions(50, seed=0))
    assert report["user_object_found"] == {"bare": 1.0, "expanded": 1.0}
    assert report["expansions_valid"] == 1.0 and report["expansions_keep_object"] == 1.0
    assert report["tv_bare"] == report["tv_expanded"] and report["tv_bare"]["count"] > 0.5
    assert len(one_tag_prompts(5, 0)) == 5 and one_tag_prompts(5, 0) == one_tag_prompts(5, 0)
