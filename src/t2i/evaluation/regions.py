"""Region following: does the renderer put each region's object inside the region's box?

The renderer alone (Omost's claim, measured): ground-truth Canvas programs of world scenes whose texts
carry no position words (a local description is just "A red circle."), so only the regional attention
can put an object where it belongs; an object counts when the detector finds its shape and colour with
the centre inside its region's box.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from PIL import Image

from t2i.compose import Canvas
from t2i.grid import GRID, omost_box
from t2i.world.captions import object_noun
from t2i.world.detector import detect
from t2i.world.scene import Scene, sample_scene


def positionless_canvas(scene: Scene) -> Canvas:
    """The scene as a Canvas whose texts name objects and colours but never places."""
    c = Canvas()
    nouns = [object_noun(o) for o in scene.objects]
    c.set_global_description(f"Flat shapes on a {scene.background} background", [], f"{scene.background} background",
                             scene.background)
    for o, noun in zip(scene.objects, nouns, strict=True):
        c.add_local_description(o.location, o.offset, o.area, o.distance_to_viewer, f"A {noun}", [], noun,
                                "", "", "", o.color)
    return c


def objects_in_their_boxes(scene: Scene, image: Image.Image) -> tuple[int, int, int]:
    """(objects found in their box, objects found anywhere, objects) for one image.  "Found" means the
    detector has a box of the object's shape and colour; the anywhere count tells a renderer that puts
    objects in the wrong place from a model that does not draw them at all."""
    w, h = image.size
    dets = detect(image)
    in_box = anywhere = 0
    for o in scene.objects:
        t, b, left, right = omost_box(o.location, o.offset, o.area)
        same = [d.center((w, h)) for d in dets if d.shape == o.shape and d.color == o.color]
        anywhere += bool(same)
        in_box += any(left <= x * GRID <= right and t <= y * GRID <= b for x, y in same)
    return in_box, anywhere, len(scene.objects)


def renderer_alone(draw: Callable[[str, int], Image.Image], n: int, seed: int,
                   progress: Callable[[int], None] | None = None) -> dict:
    """`draw(program, seed)` -> image for n seeded scenes: the rate of objects inside their boxes, of objects
    drawn anywhere, and of drawn objects that are inside their boxes (placement alone)."""
    rng = random.Random(seed)
    in_box = anywhere = total = 0
    for i in range(n):
        scene = sample_scene(rng)
        f, a, t = objects_in_their_boxes(scene, draw(positionless_canvas(scene).to_program(), i))
        in_box, anywhere, total = in_box + f, anywhere + a, total + t
        if progress:
            progress(i + 1)
    return {"scenes": n, "objects": total, "in_box": in_box / max(1, total), "drawn": anywhere / max(1, total),
            "in_box_of_drawn": in_box / max(1, anywhere)}


def chance_in_box(n: int, seed: int) -> float:
    """How often an object of the scene lands in its box when drawn at a random place of another scene
    of the same objects: the rate a renderer that ignores regions gets, shape and colour right."""
    rng = random.Random(seed)
    inside = total = 0
    for _ in range(n):
        scene = sample_scene(rng)
        other = sample_scene(random.Random(rng.random()), len(scene.objects))
        for o, p in zip(scene.objects, other.objects, strict=True):
            t, b, left, right = omost_box(o.location, o.offset, o.area)
            x, y = (v * GRID for v in p.center())  # fractions -> grid units
            inside += left <= x <= right and t <= y <= b
            total += 1
    return inside / max(1, total)
