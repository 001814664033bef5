"""What presampling adds, on shapes world, in the shape of the TIPO card's experiment.

TIPO shows that a narrow prompt ("scenery") gives images from a narrow distribution and that expanding
it moves the images toward the real distribution (FDD falls).  Here: seeded one-tag prompts
("red circle"), images from the bare prompt and from its expansion, and the distributions of object
count, colour and place (3x3 cell of the centre) measured by the detector, each compared with the
world's own (the detector on rendered world scenes) by total variation distance.  Alongside: how often
the user's own object is found, and whether expansions are valid shapes-world text that keeps it.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from PIL import Image

from t2i.world.detector import Detection, detect
from t2i.world.draw import render_scene
from t2i.world.scene import sample_scene
from t2i.world.text import Mention, parse_sentence, parse_tag
from t2i.world.vocab import COLORS, SHAPES

COUNT_BINS = ("0", "1", "2", "3", "4", "5+")
CELLS = tuple(f"{r}{c}" for r in "tmb" for c in "lcr")  # top/middle/bottom x left/centre/right


def one_tag_prompts(n: int, seed: int) -> list[tuple[str, str]]:
    """`n` (colour, shape) pairs drawn uniformly with `seed`."""
    rng = random.Random(seed)
    return [(rng.choice(list(COLORS)), rng.choice(SHAPES)) for _ in range(n)]


def _cell(d: Detection, size: tuple[int, int]) -> str:
    x, y = d.center(size)
    return "tmb"[min(2, int(y * 3))] + "lcr"[min(2, int(x * 3))]


@dataclass
class Distributions:
    """Histograms over images (count) and over detected objects (colour, place)."""

    count: Counter
    color: Counter
    place: Counter
    n_images: int = 0

    @classmethod
    def empty(cls) -> Distributions:
        return cls(Counter(), Counter(), Counter())

    def add(self, detections: Sequence[Detection], size: tuple[int, int]) -> None:
        self.n_images += 1
        self.count[COUNT_BINS[min(len(detections), 5)]] += 1
        for d in detections:
            self.color[d.color] += 1
            self.place[_cell(d, size)] += 1


def total_variation(p: Counter, q: Counter, support: Iterable[str]) -> float:
    """0.5 * sum |p - q| of the two normalised histograms over `support` (1.0 when either is empty)."""
    sp, sq = sum(p.values()), sum(q.values())
    if not sp or not sq:
        return 1.0
    return 0.5 * sum(abs(p[k] / sp - q[k] / sq) for k in support)


def distances(a: Distributions, b: Distributions) -> dict[str, float]:
    return {"count": total_variation(a.count, b.count, COUNT_BINS),
            "color": total_variation(a.color, b.color, COLORS),
            "place": total_variation(a.place, b.place, CELLS)}


def world_distributions(n: int, seed: int, size: int = 64) -> Distributions:
    """The detector on `n` rendered world scenes."""
    rng = random.Random(seed)
    dist = Distributions.empty()
    for _ in range(n):
        image = render_scene(sample_scene(rng), size)
        dist.add(detect(image), image.size)
    return dist


def user_object_found(detections: Sequence[Detection], color: str, shape: str) -> bool:
    return any(d.color == color and d.shape == shape for d in detections)


def check_expansion(tags: Sequence[str], text: str, color: str, shape: str) -> tuple[bool, bool]:
    """(every tag and sentence is valid shapes-world text, the user's object is named in it)."""
    from t2i.presample.targets import sentences

    mentions: list[Mention] = []
    valid = True
    for t in tags:
        m = parse_tag(t)
        valid &= m is not None
        if isinstance(m, Mention):
            mentions.append(m)
    for s in sentences(text):
        m = parse_sentence(s)
        valid &= m is not None
        if isinstance(m, Mention):
            mentions.append(m)
    kept = any(m.shape == shape and m.color == color for m in mentions)
    return valid, kept


@dataclass
class Arm:
    """One side of the experiment (bare prompts or expansions)."""

    dist: Distributions
    found: int = 0

    def rate(self) -> float:
        return self.found / max(1, self.dist.n_images)


def run_experiment(prompts: Sequence[tuple[str, str]], draw: Callable[[str, int], Image.Image],
                   expand: Callable[[str, int], tuple[str, list[str], str]], world: Distributions,
                   progress: Callable[[int], None] | None = None) -> dict:
    """`draw(prompt, seed)` -> image; `expand(prompt, seed)` -> (expanded prompt, tags, sentences text)."""
    bare, expanded = Arm(Distributions.empty()), Arm(Distributions.empty())
    valid = kept = 0
    examples = []
    for i, (color, shape) in enumerate(prompts):
        prompt = f"{color} {shape}"
        text, tags, nl = expand(prompt, i)
        ok, has = check_expansion(tags, nl, color, shape)
        valid += ok
        kept += has
        for arm, p in ((bare, prompt), (expanded, text)):
            image = draw(p, i)
            dets = detect(image)
            arm.dist.add(dets, image.size)
            arm.found += user_object_found(dets, color, shape)
        if len(examples) < 5:
            examples.append({"prompt": prompt, "expansion": text})
        if progress:
            progress(i + 1)
    n = len(prompts)
    return {"n": n, "world_images": world.n_images,
            "tv_bare": distances(bare.dist, world), "tv_expanded": distances(expanded.dist, world),
            "user_object_found": {"bare": bare.rate(), "expanded": expanded.rate()},
            "expansions_valid": valid / max(1, n), "expansions_keep_object": kept / max(1, n),
            "examples": examples}
