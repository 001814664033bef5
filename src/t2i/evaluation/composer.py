"""The composer alone on shapes world: its Canvas programs against the scenes' ground-truth programs.

Prompts are the world's detailed captions (every object's colour, place and size said), so one program
is right: the scene's own (`t2i.world.captions.canvas_program`), up to the offsets and depths, which no
caption fixes.  An object is *exactly right* when the program has a region of its shape and colour with
its location and area words; regions are matched one to one, exact matches first.

`relation_following` scores the other kind of prompt the suite's position task asks ("a photo of a
circle above a star"): many programs are right, and one is judged by its two regions' boxes under
GenEval's relative-position rule (`t2i.world.relations`), as the detector's boxes are judged.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from t2i.compose import Canvas, CanvasError
from t2i.compose.canvas import Component
from t2i.world.captions import sized_caption
from t2i.world.relations import RELATIONS, relative_position
from t2i.world.scene import Scene, SceneObject, sample_scene
from t2i.world.suite import Requirement, SuiteLine
from t2i.world.text import Mention, parse_tag
from t2i.world.vocab import SHAPES, count_phrase


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


def relation_prompts(n: int, seed: int) -> list[tuple[str, str, str, str]]:
    """`n` seeded (prompt, shape a, relation, shape b) in the suite's position phrasing: "a photo of a
    circle above a star" asks for a `relation` b."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        a, b = rng.sample(SHAPES, 2)
        rel = rng.choice(RELATIONS)
        out.append((f"a photo of {count_phrase(1, a)} {rel} {count_phrase(1, b)}", a, rel, b))
    return out


@dataclass
class RelationScores:
    programs: int = 0
    parsed: int = 0
    both_found: int = 0  # programs with a region for each of the two shapes
    right: int = 0  # ... whose first such regions' boxes hold the asked relation
    by_relation: dict[str, list[int]] = field(default_factory=dict)  # relation -> [right, programs]

    def rates(self) -> dict[str, float]:
        n = max(self.programs, 1)
        out = {"parse_rate": self.parsed / n, "both_found": self.both_found / n, "relation_right": self.right / n}
        for rel, (right, asked) in sorted(self.by_relation.items()):
            out[f"right_{rel.replace(' ', '_')}"] = right / max(asked, 1)
        return out


def relation_holds(canvas: Canvas, a: str, rel: str, b: str) -> bool | None:
    """Whether the canvas's first region drawing shape a lies `rel` its first region drawing shape b
    (boxes on Omost's grid, GenEval's rule); None when either shape has no region."""
    boxes: dict[str, tuple[float, float, float, float]] = {}
    for c in canvas.components:
        what = _region_object(c)
        if what is not None and what[0] not in boxes:
            top, bottom, left, right = c.box
            boxes[what[0]] = (left, top, right, bottom)  # (x0, y0, x1, y1), y down
    if a not in boxes or b not in boxes:
        return None
    return rel in relative_position(boxes[a], boxes[b])


def _programs(compose: Callable[[str, int], tuple[Canvas, bool]], prompts: Sequence[str], seed: int,
              progress: Callable[[int], None] | None) -> Iterator[Canvas | None]:
    """Each prompt's canvas (prompt i sampled with seed + i), None where nothing parsed."""
    for i, prompt in enumerate(prompts):
        try:
            canvas, _ = compose(prompt, seed + i)
        except CanvasError:
            canvas = None
        yield canvas
        if progress is not None:
            progress(i)


def relation_following(compose: Callable[[str, int], tuple[Canvas, bool]], n: int, seed: int,
                       progress: Callable[[int], None] | None = None) -> RelationScores:
    """Score `compose` on `n` seeded position prompts (relation_prompts)."""
    scores = RelationScores()
    asked = relation_prompts(n, seed)
    for (_, a, rel, b), canvas in zip(asked, _programs(compose, [q[0] for q in asked], seed, progress), strict=True):
        scores.programs += 1
        tally = scores.by_relation.setdefault(rel, [0, 0])
        tally[1] += 1
        if canvas is not None:
            scores.parsed += 1
            held = relation_holds(canvas, a, rel, b)
            scores.both_found += held is not None
            scores.right += bool(held)
            tally[0] += bool(held)
    return scores


COUNTS = (2, 3, 4)  # the suite's counting task


def count_prompts(n: int, seed: int) -> list[tuple[str, str, int]]:
    """`n` seeded (prompt, shape, k) in the suite's counting phrasing: "a photo of three stars"."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        shape, k = rng.choice(SHAPES), rng.choice(COUNTS)
        out.append((f"a photo of {count_phrase(k, shape)}", shape, k))
    return out


@dataclass
class CountScores:
    programs: int = 0
    parsed: int = 0
    right: int = 0  # programs whose regions draw exactly k of the shape and nothing else
    by_count: dict[int, list[int]] = field(default_factory=dict)  # k -> [right, programs]

    def rates(self) -> dict[str, float]:
        n = max(self.programs, 1)
        out = {"parse_rate": self.parsed / n, "count_right": self.right / n}
        for k, (right, asked) in sorted(self.by_count.items()):
            out[f"right_{k}"] = right / max(asked, 1)
        return out


def count_holds(canvas: Canvas, shape: str, k: int) -> bool:
    """Whether the canvas's local regions draw exactly k of `shape` and nothing else."""
    drawn = [_region_object(c) for c in canvas.components]
    return len(drawn) == k and all(d is not None and d[0] == shape for d in drawn)


def count_following(compose: Callable[[str, int], tuple[Canvas, bool]], n: int, seed: int,
                    progress: Callable[[int], None] | None = None) -> CountScores:
    """Score `compose` on `n` seeded counting prompts (count_prompts)."""
    scores = CountScores()
    asked = count_prompts(n, seed)
    for (_, shape, k), canvas in zip(asked, _programs(compose, [q[0] for q in asked], seed, progress), strict=True):
        scores.programs += 1
        tally = scores.by_count.setdefault(k, [0, 0])
        tally[1] += 1
        if canvas is not None:
            scores.parsed += 1
            right = count_holds(canvas, shape, k)
            scores.right += right
            tally[0] += right
    return scores


def program_meets(canvas: Canvas, include: Sequence[Requirement]) -> bool:
    """Whether the canvas's regions meet a suite line's requirements, as the detector's objects must: each
    requirement's shape (and colour, where given) drawn at least `count` times, no region of a shape no
    requirement names, and each asked relation holding between the first such regions' boxes (GenEval's
    rule on Omost's grid)."""
    drawn = [(_region_object(c), c.box) for c in canvas.components]
    if any(what is None for what, _ in drawn):
        return False
    boxes = []
    for r in include:
        fits = [(top, bottom, left, right) for (shape, color), (top, bottom, left, right) in drawn
                if shape == r.cls and (r.color is None or color == r.color)]
        if len(fits) < r.count:
            return False
        top, bottom, left, right = fits[0]
        boxes.append((left, top, right, bottom))  # (x0, y0, x1, y1), y down
    if {shape for (shape, _), _ in drawn} - {r.cls for r in include}:
        return False
    return all(r.position is None or r.position[0] in relative_position(boxes[k], boxes[r.position[1]])
               for k, r in enumerate(include))


def suite_following(compose: Callable[[str, int], tuple[Canvas, bool]], lines: Sequence[SuiteLine], seed: int,
                    progress: Callable[[int], None] | None = None) -> dict[str, list[int]]:
    """Score `compose` on suite lines (any phrasing): tag -> [programs meeting the line, lines]."""
    out: dict[str, list[int]] = {}
    for line, canvas in zip(lines, _programs(compose, [line.prompt for line in lines], seed, progress), strict=True):
        tally = out.setdefault(line.tag, [0, 0])
        tally[1] += 1
        tally[0] += canvas is not None and program_meets(canvas, line.include)
    return out
