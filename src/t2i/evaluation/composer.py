"""The composer alone on shapes world: its Canvas programs against the scenes' ground-truth programs.

Prompts are the world's detailed captions (every object's colour, place and size said), so one program
is right: the scene's own (`t2i.world.captions.canvas_program`), up to the offsets and depths, which no
caption fixes.  An object is *exactly right* when the program has a region of its shape and colour with
its location and area words; regions are matched one to one, exact matches first.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from t2i.compose import Canvas, CanvasError
from t2i.compose.canvas import Component
from t2i.world.captions import sized_caption
from t2i.world.scene import Scene, SceneObject, sample_scene
from t2i.world.text import Mention, parse_tag


def composer_prompts(n: int, seed: int) -> list[tuple[str, Scene]]:
    """`n` seeded (detailed caption, scene) pairs."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        scene = sample_scene(rng)
        out.append((sized_caption(scene, rng), scene))
    return out


@dataclass
class ObjectScores:
    """Per-object counts over a set of programs (`objects` is the ground truth's object count)."""

    objects: int = 0
    found: int = 0  # a region with the object's shape and colour
    location: int = 0  # ... and its location word
    area: int = 0  # ... and its area word
    exact: int = 0  # shape, colour, location and area all right
    extra_regions: int = 0  # regions matching no object
    programs: int = 0
    parsed: int = 0  # programs that parsed (after the composer's one retry)
    first_try: int = 0  # programs whose first answer parsed
    failures: list[str] = field(default_factory=list)  # parse errors, for the report

    def rates(self) -> dict[str, float]:
        per_obj = max(self.objects, 1)
        return {"parse_rate": self.parsed / max(self.programs, 1),
                "first_try_parse_rate": self.first_try / max(self.programs, 1),
                "found": self.found / per_obj, "location": self.location / per_obj,
                "area": self.area / per_obj, "exact": self.exact / per_obj,
                "extra_regions_per_program": self.extra_regions / max(self.programs, 1)}


def _region_object(component: Component) -> tuple[str, str] | None:
    """(shape, colour) a region draws: its tags read as a shapes-world tag, colour from the tag or the
    region's colour name."""
    tag = component.tags.strip().rstrip(".")  # the Canvas normalises texts to end with a full stop
    mention = parse_tag(tag) if tag else None
    if not isinstance(mention, Mention) or mention.count != 1:
        return None
    return mention.shape, mention.color or component.color


def score_canvas(canvas: Canvas, scene: Scene, scores: ObjectScores) -> None:
    """Add one program's matches against `scene` to `scores`."""
    regions = [(_region_object(c), c) for c in canvas.components]
    free = list(range(len(regions)))

    def take(o: SceneObject, need_exact: bool) -> Component | None:
        for k in free:
            what, c = regions[k]
            if what == (o.shape, o.color) and (not need_exact or (c.location, c.area) == (o.location, o.area)):
                free.remove(k)
                return c
        return None

    matched: dict[int, Component] = {}
    for need_exact in (True, False):
        for i, o in enumerate(scene.objects):
            if i not in matched and (c := take(o, need_exact)) is not None:
                matched[i] = c
    scores.objects += len(scene.objects)
    for i, o in enumerate(scene.objects):
        c = matched.get(i)
        if c is None:
            continue
        scores.found += 1
        scores.location += c.location == o.location
        scores.area += c.area == o.area
        scores.exact += (c.location, c.area) == (o.location, o.area)
    scores.extra_regions += len(free)


def composer_alone(compose: Callable[[str, int], tuple[Canvas, bool]], n: int, seed: int,
                   progress: Callable[[int], None] | None = None) -> ObjectScores:
    """Score `compose(prompt, seed) -> (canvas, retried)` (raising CanvasError when nothing parsed) on
    `n` seeded detailed prompts."""
    scores = ObjectScores()
    for i, (prompt, scene) in enumerate(composer_prompts(n, seed)):
        scores.programs += 1
        try:
            canvas, retried = compose(prompt, seed + i)
        except CanvasError as e:
            scores.objects += len(scene.objects)
            scores.failures.append(str(e))
        else:
            scores.parsed += 1
            scores.first_try += not retried
            score_canvas(canvas, scene, scores)
        if progress is not None:
            progress(i)
    return scores


def perfect_compose(prompts: Sequence[tuple[str, Scene]]) -> Callable[[str, int], tuple[Canvas, bool]]:
    """A reference composer that answers each prompt with its scene's ground-truth program (for tests
    and as the upper bound in the bench)."""
    from t2i.compose import parse_canvas
    from t2i.world.captions import canvas_program

    by_prompt = {p: s for p, s in prompts}
    return lambda prompt, seed: (parse_canvas(canvas_program(by_prompt[prompt])), False)
