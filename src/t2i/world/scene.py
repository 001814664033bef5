"""Shapes-world scenes: objects placed by Omost (location, offset, area) triples, sampled by seed.

Each object is drawn centred in its Omost box (clamped to the 90 grid) as a square of side
FILL * min(box w, box h), so a scene's Canvas program describes it exactly.  Drawn squares of two
objects are at least MIN_GAP grid units apart on some axis; samples that break this are redrawn.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

from t2i.grid import AREAS, GRID, LOCATIONS, OFFSETS, omost_box
from t2i.world.vocab import BACKGROUNDS, COLORS, SHAPES

SCENE_SCHEMA = "t2i.scene/1"
FILL = 0.6  # side of the drawn shape / shorter side of its Omost box
MIN_GAP = 6.0  # grid units between drawn shapes (about 4 px at 64x64)
MAX_OBJECTS = 4


class SceneError(ValueError):
    """A scene description that is not valid shapes world."""


@dataclass(frozen=True)
class SceneObject:
    """One shape: what it is, its colour, and its Omost box triple plus depth."""

    shape: str
    color: str
    location: str = "in the center"
    offset: str = "no offset"
    area: str = "a small square area"
    distance_to_viewer: float = 1.0

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise SceneError(f"unknown shape {self.shape!r} (allowed: {', '.join(SHAPES)})")
        if self.color not in COLORS:
            raise SceneError(f"unknown colour {self.color!r} (allowed: {', '.join(COLORS)})")
        for value, table, what in (
            (self.location, LOCATIONS, "location"),
            (self.offset, OFFSETS, "offset"),
            (self.area, AREAS, "area"),
        ):
            if value not in table:
                raise SceneError(f"unknown {what} {value!r}")
        if not isinstance(self.distance_to_viewer, int | float) or not self.distance_to_viewer > 0:
            raise SceneError("distance_to_viewer must be a positive number")

    def shape_box(self) -> tuple[float, float, float, float]:
        """The drawn square on the 90 grid as (x0, y0, x1, y1), floats."""
        box = omost_box(self.location, self.offset, self.area)
        w, h = box.size
        side = FILL * min(w, h)
        cx, cy = box.center
        return (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)

    def center(self) -> tuple[float, float]:
        """Centre (x, y) as fractions of the image width and height."""
        x0, y0, x1, y1 = self.shape_box()
        return ((x0 + x1) / 2 / GRID, (y0 + y1) / 2 / GRID)


@dataclass(frozen=True)
class Scene:
    """A background colour and 1-4 non-overlapping objects."""

    background: str
    objects: tuple[SceneObject, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.background not in BACKGROUNDS:
            raise SceneError(f"unknown background {self.background!r} (allowed: {', '.join(BACKGROUNDS)})")
        if not 1 <= len(self.objects) <= MAX_OBJECTS:
            raise SceneError(f"a scene has 1 to {MAX_OBJECTS} objects, got {len(self.objects)}")
        for o in self.objects:
            if o.color == self.background:
                raise SceneError(f"a {o.color} {o.shape} cannot stand on a {self.background} background")
        for i, a in enumerate(self.objects):
            for b in self.objects[:i]:
                if not separated(a, b):
                    raise SceneError(f"the {a.color} {a.shape} and the {b.color} {b.shape} overlap")

    def to_dict(self) -> dict[str, Any]:
        """Exact JSON description."""
        return {
            "schema": SCENE_SCHEMA,
            "background": self.background,
            "objects": [
                {
                    "shape": o.shape,
                    "color": o.color,
                    "location": o.location,
                    "offset": o.offset,
                    "area": o.area,
                    "distance_to_viewer": o.distance_to_viewer,
                }
                for o in self.objects
            ],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Any) -> Scene:
        """Parse and validate a scene description."""
        if not isinstance(data, dict) or data.get("schema") != SCENE_SCHEMA:
            raise SceneError(f"not a shapes-world scene (expected schema {SCENE_SCHEMA!r})")
        objs = data.get("objects")
        if not isinstance(objs, list):
            raise SceneError("scene.objects must be a list")
        keys = {"shape", "color", "location", "offset", "area", "distance_to_viewer"}
        parsed = []
        for o in objs:
            if not isinstance(o, dict) or set(o) - keys:
                raise SceneError(f"bad scene object {str(o)[:200]}")
            parsed.append(SceneObject(**o))
        return cls(background=data.get("background"), objects=tuple(parsed))


def separated(a: SceneObject, b: SceneObject, gap: float = MIN_GAP) -> bool:
    """True when the drawn squares of a and b are at least `gap` grid units apart on x or y."""
    ax0, ay0, ax1, ay1 = a.shape_box()
    bx0, by0, bx1, by1 = b.shape_box()
    return ax1 + gap <= bx0 or bx1 + gap <= ax0 or ay1 + gap <= by0 or by1 + gap <= ay0


def random_object(rng: random.Random, shape: str | None = None, color: str | None = None,
                  exclude_colors: tuple[str, ...] = ()) -> SceneObject:
    """An object with uniformly drawn shape, colour (not in exclude_colors), place, area and depth."""
    colors = [c for c in COLORS if c not in exclude_colors]
    return SceneObject(
        shape=shape or rng.choice(SHAPES),
        color=color or rng.choice(colors),
        location=rng.choice(list(LOCATIONS)),
        offset=rng.choice(list(OFFSETS)),
        area=rng.choice(list(AREAS)),
        distance_to_viewer=float(rng.randint(1, 9)),
    )


def place_objects(rng: random.Random, specs: list[tuple[str | None, str | None]], background: str,
                  tries: int = 200) -> tuple[SceneObject, ...]:
    """Place one object per (shape, colour) spec (None = random) without overlap; raises if impossible."""
    for _ in range(tries):
        placed: list[SceneObject] = []
        for shape, color in specs:
            for _ in range(50):
                o = random_object(rng, shape, color, exclude_colors=(background,))
                if all(separated(o, p) for p in placed):
                    placed.append(o)
                    break
            else:
                break
        if len(placed) == len(specs):
            return tuple(placed)
    raise SceneError(f"could not place {len(specs)} objects without overlap")


def sample_scene(rng: random.Random, n_objects: int | None = None) -> Scene:
    """A random scene: 1-4 objects (uniform), background never one of the objects' colours."""
    n = n_objects if n_objects is not None else rng.randint(1, MAX_OBJECTS)
    background = rng.choice(list(BACKGROUNDS))
    objects = place_objects(rng, [(None, None)] * n, background)
    return Scene(background=background, objects=objects)


def scene_for_seed(seed: int, n_objects: int | None = None) -> Scene:
    """The scene of a given seed (deterministic across runs and platforms)."""
    return sample_scene(random.Random(seed), n_objects)
