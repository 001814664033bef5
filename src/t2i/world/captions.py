"""Captions of a scene in three forms: tags, natural language (varied phrasing), Omost Canvas program.

Natural-language captions are true of the scene: absolute places come from each object's Omost
location, relations ('to the left of', 'above', ...) hold under GenEval's rule on the drawn boxes.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

from t2i.world.relations import relative_position
from t2i.world.scene import Scene, SceneObject
from t2i.world.vocab import count_phrase

PLACE_PHRASES: dict[str, tuple[str, ...]] = {
    "in the center": ("in the center", "in the middle", "at the center", "in the centre"),
    "on the left": ("on the left", "on the left side", "at the left"),
    "on the right": ("on the right", "on the right side", "at the right"),
    "on the top": ("at the top", "on the top", "near the top"),
    "on the bottom": ("at the bottom", "on the bottom", "near the bottom"),
    "on the top-left": ("on the top-left", "in the top-left corner", "at the top left", "in the upper left"),
    "on the top-right": ("on the top-right", "in the top-right corner", "at the top right", "in the upper right"),
    "on the bottom-left": ("on the bottom-left", "in the bottom-left corner", "at the bottom left",
                           "in the lower left"),
    "on the bottom-right": ("on the bottom-right", "in the bottom-right corner", "at the bottom right",
                            "in the lower right"),
}

RELATION_PHRASES: dict[str, tuple[str, ...]] = {
    "left of": ("to the left of", "left of", "on the left of"),
    "right of": ("to the right of", "right of", "on the right of"),
    "above": ("above", "over"),
    "below": ("below", "under", "beneath"),
}

# Omost's area words as the adjectives a user writes: (size, aspect); a square area has no aspect word.
AREA_PHRASES: dict[str, tuple[str, str]] = {
    "a small square area": ("small", ""),
    "a small vertical area": ("small", "tall"),
    "a small horizontal area": ("small", "wide"),
    "a medium-sized square area": ("medium-sized", ""),
    "a medium-sized vertical area": ("medium-sized", "tall"),
    "a medium-sized horizontal area": ("medium-sized", "wide"),
    "a large square area": ("large", ""),
    "a large vertical area": ("large", "tall"),
    "a large horizontal area": ("large", "wide"),
}

PREFIXES = ("", "", "", "a photo of ", "a picture of ", "an image of ", "a drawing of ")
BACKGROUND_PHRASES = ("on a {} background", "against a {} background", "with a {} background")

# Local-region text fields of the Canvas program are the same for every shapes-world object.
ATMOSPHERE = "Calm and simple."
STYLE = "Flat geometric shape."
QUALITY_META = "Clean sharp edges."


@dataclass(frozen=True)
class Captions:
    """The three caption forms of one scene."""

    tags: str
    natural: str
    canvas: str


def object_noun(o: SceneObject, with_color: bool = True) -> str:
    """'red circle' (or 'circle')."""
    return f"{o.color} {o.shape}" if with_color else o.shape


def tags_caption(scene: Scene, rng: random.Random | None = None) -> str:
    """'two red circles, blue square, white background' (object order shuffled when rng is given)."""
    counts = Counter(object_noun(o) for o in scene.objects)
    items = [noun if n == 1 else count_phrase(n, noun) for noun, n in counts.items()]
    if rng is not None:
        rng.shuffle(items)
    return ", ".join([*items, f"{scene.background} background"])


def _join(parts: list[str]) -> str:
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def _place(o: SceneObject, rng: random.Random) -> str:
    return rng.choice(PLACE_PHRASES[o.location])


def related_pair(scene: Scene, rng: random.Random) -> tuple[int, int, str] | None:
    """A random (i, j, relation) with object i `relation` object j under GenEval's rule, or None."""
    pairs = []
    for i, a in enumerate(scene.objects):
        for j, b in enumerate(scene.objects):
            if i != j:
                pairs += [(i, j, r) for r in sorted(relative_position(a.shape_box(), b.shape_box()))]
    return rng.choice(pairs) if pairs else None


UNCOLORED = 0.15  # share of natural-language captions that name no colour at all


NATURAL_FORMS = ("list", "places", "relation", "sentences")  # only "list" fixes no place


def natural_caption(scene: Scene, rng: random.Random, uncolored: float = UNCOLORED, form: str | None = None) -> str:
    """One natural-language caption in a randomly chosen phrasing (or the given one of NATURAL_FORMS);
    true of the scene.  With probability `uncolored` it names no colour at all ("a circle and a star");
    else each object's colour is named with probability 0.95."""
    if form is not None and form not in NATURAL_FORMS:
        raise ValueError(f"form must be one of {', '.join(NATURAL_FORMS)}, got {form!r}")
    colors = rng.random() > uncolored
    nouns = [object_noun(o, colors and rng.random() > 0.05) for o in scene.objects]
    background = rng.choice(BACKGROUND_PHRASES).format(scene.background) if rng.random() < 0.6 else ""
    prefix = rng.choice(PREFIXES)
    form = form or rng.choice(NATURAL_FORMS)
    pair = related_pair(scene, rng) if len(scene.objects) > 1 else None
    if form == "relation" and pair is None:
        form = "places"

    if form == "list":
        counts = Counter(nouns)
        text = prefix + _join([count_phrase(n, noun) for noun, n in counts.items()])
    elif form == "places":
        text = prefix + _join([f"{count_phrase(1, n)} {_place(o, rng)}" for n, o in zip(nouns, scene.objects,
                                                                                         strict=True)])
    elif form == "relation":
        i, j, rel = pair
        text = f"{prefix}{count_phrase(1, nouns[i])} {rng.choice(RELATION_PHRASES[rel])} {count_phrase(1, nouns[j])}"
        rest = [k for k in range(len(nouns)) if k not in (i, j)]
        if rest:
            text += ", and " + _join([f"{count_phrase(1, nouns[k])} {_place(scene.objects[k], rng)}"
                                      for k in rest])
    else:  # sentences
        parts = [f"There is {count_phrase(1, n)} {_place(o, rng)}." for n, o in zip(nouns, scene.objects,
                                                                                     strict=True)]
        if background:
            parts.append(f"The background is {scene.background}.")
        return " ".join(parts)
    return f"{text} {background}".strip() if background else text


OPPOSITE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}


@dataclass(frozen=True)
class RelationCaption:
    """A caption of two related objects, with what a program for it states before deciding places."""

    text: str  # "a photo of a circle over a star"
    scene: Scene  # the two objects, the first-named first
    summary: str  # the relation in canonical words: "a circle above a star"
    notes: tuple[str, str]  # each object's relation to the other: ("above the star", "below the circle")


def relation_caption(scene: Scene, rng: random.Random, uncolored: float = UNCOLORED) -> RelationCaption | None:
    """A caption naming two related objects and nothing else, in the suite's position phrasing ("a photo
    of a circle above a star"), for a scene of exactly those two; None when the scene is not two objects
    or neither lies clearly in some relation to the other."""
    related = related_objects(scene, rng)
    if related is None:
        return None
    a, b, rel = related
    colors = rng.random() > uncolored
    na, nb = object_noun(a, colors), object_noun(b, colors)
    text = f"{rng.choice(PREFIXES)}{count_phrase(1, na)} {rng.choice(RELATION_PHRASES[rel])} {count_phrase(1, nb)}"
    return described_relation(text, scene.background, a, b, rel, (na, nb))


def related_objects(scene: Scene, rng: random.Random) -> tuple[SceneObject, SceneObject, str] | None:
    """(a, b, relation) with a in `relation` to b, for a two-object scene in some clear relation; else None."""
    if len(scene.objects) != 2:
        return None
    pair = related_pair(scene, rng)
    if pair is None:
        return None
    i, j, rel = pair
    return scene.objects[i], scene.objects[j], rel


def described_relation(text: str, background: str, a: SceneObject, b: SceneObject, rel: str,
                       nouns: tuple[str, str]) -> RelationCaption:
    """The caption `text` of `a` in `rel` to `b`, `a` named first (`nouns`: the two objects' words in it)."""
    na, nb = nouns
    return RelationCaption(text, Scene(background, (a, b)), f"{count_phrase(1, na)} {rel} {count_phrase(1, nb)}",
                           (f"{rel} the {nb}", f"{OPPOSITE[rel]} the {na}"))


def sized_noun(o: SceneObject) -> str:
    """'large tall red circle': the object's Omost area as size and aspect words, then colour and shape."""
    size, aspect = AREA_PHRASES[o.area]
    return " ".join(w for w in (size, aspect, o.color, o.shape) if w)


def size_words(o: SceneObject) -> str:
    """'medium-sized and tall', 'small': the object's Omost area as the words a prompt gives it."""
    size, aspect = AREA_PHRASES[o.area]
    return f"{size} and {aspect}" if aspect else size


def sized_caption(scene: Scene, rng: random.Random) -> str:
    """A caption that fixes every object's colour, place (location) and size (area): what a composer
    needs to write the scene's program exactly. Two phrasings: one sentence, or a sentence per object."""
    items = [f"{count_phrase(1, sized_noun(o))} {_place(o, rng)}" for o in scene.objects]
    if rng.random() < 0.5:
        parts = [f"There is {item}." for item in items] + [f"The background is {scene.background}."]
        return " ".join(parts)
    background = rng.choice(BACKGROUND_PHRASES).format(scene.background)
    return f"{rng.choice(PREFIXES)}{_join(items)} {background}"


def _q(text: str) -> str:
    """A Python string literal for the Canvas program (single quotes, escaped)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def canvas_program(scene: Scene, description: str | None = None, notes: tuple[str, ...] | None = None,
                   summary: str = "") -> str:
    """The scene as an Omost Canvas program, exactly describing every object's box.  `summary`: words the
    global description's comment carries ("a circle above a star"), before the places are first written;
    `notes`: per object, words its region's comment carries after the object ("above the star"), just
    before its location (as the size words come just before its area)."""
    if notes is not None and len(notes) != len(scene.objects):
        raise ValueError(f"{len(notes)} notes for {len(scene.objects)} objects")
    counts = Counter(object_noun(o) for o in scene.objects)
    listing = _join([count_phrase(n, noun) for noun, n in counts.items()])
    desc = description or f"{listing[0].upper()}{listing[1:]} on a {scene.background} background."
    lines = [
        "# Initialize the canvas",
        "canvas = Canvas()",
        f"# Set a global description for the canvas{': ' + summary + '.' if summary else ''}",
        "canvas.set_global_description(",
        f"    description={_q(desc)},",
        "    detailed_descriptions=[",
        *[f"        {_q(f'A {object_noun(o)} {o.location}.')}," for o in scene.objects],
        f"        {_q(f'The background is plain {scene.background}.')},",
        "    ],",
        f"    tags={_q(tags_caption(scene))},",
        f"    HTML_web_color_name={_q(scene.background)},",
        ")",
    ]
    for k, o in enumerate(scene.objects):
        noun = object_noun(o)
        note = f" {notes[k]}" if notes is not None and notes[k] else ""
        lines += [
            f"# Add {count_phrase(1, noun)}{note}, {size_words(o)}.",  # the object, then the size that decides its area
            "canvas.add_local_description(",
            f"    location={_q(o.location)},",
            f"    offset={_q(o.offset)},",
            f"    area={_q(o.area)},",
            f"    distance_to_viewer={float(o.distance_to_viewer)},",
            f"    description={_q(f'A {noun}.')},",
            f"    detailed_descriptions=[{_q(f'A {noun} {o.location}, drawn in flat {o.color}.')}],",
            f"    tags={_q(noun)},",
            f"    atmosphere={_q(ATMOSPHERE)},",
            f"    style={_q(STYLE)},",
            f"    quality_meta={_q(QUALITY_META)},",
            f"    HTML_web_color_name={_q(o.color)},",
            ")",
        ]
    return "\n".join(lines) + "\n"


def captions(scene: Scene, rng: random.Random) -> Captions:
    """All three forms; `rng` picks the phrasing and tag order."""
    return Captions(tags=tags_caption(scene, rng), natural=natural_caption(scene, rng), canvas=canvas_program(scene))
