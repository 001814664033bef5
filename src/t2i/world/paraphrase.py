"""Paraphrased prompts of a scene: the phrasings people type beyond the caption templates of `captions`.

The suite's templates say "a photo of a red circle above a blue square"; users write "put a red circle over
a blue square", "blue square; red circle on top", "something red and round" or "a couple of stars". These
are true of the scene they come with (the relations hold under GenEval's rule on the drawn boxes), so a
composer trained on them learns to write the same program from any of these wordings.
"""

from __future__ import annotations

import random

from t2i.world.captions import OPPOSITE, RelationCaption, described_relation, object_noun, related_objects
from t2i.world.scene import Scene, SceneObject
from t2i.world.vocab import count_phrase

# Words that name a shape without its noun ("something red and round").
SHAPE_ADJECTIVES: dict[str, tuple[str, ...]] = {
    "circle": ("round", "circular"),
    "square": ("square-shaped", "boxy"),
    "triangle": ("triangular", "three-sided"),
    "star": ("star-shaped", "five-pointed"),
}

# "A <word> B" for A in the relation to B.
RELATION_WORDS: dict[str, tuple[str, ...]] = {
    "above": ("above", "over", "on top of", "sitting on top of", "sitting above", "stacked above", "higher than",
              "atop", "right above", "placed above"),
    "below": ("below", "under", "underneath", "beneath", "lower than", "sitting under", "just below",
              "placed below"),
    "left of": ("to the left of", "left of", "on the left side of", "on the left of", "just left of",
                "placed left of"),
    "right of": ("to the right of", "right of", "on the right side of", "on the right of", "just right of",
                 "placed right of"),
}

# "B, with A <words>" for A in the relation to B (the pronoun stands for B).
ANAPHORIC_WORDS: dict[str, tuple[str, ...]] = {
    "above": ("above it", "on top of it", "over it", "on top", "above"),
    "below": ("below it", "under it", "beneath it", "underneath it", "underneath", "below"),
    "left of": ("to its left", "left of it", "on its left", "to the left", "on the left"),
    "right of": ("to its right", "right of it", "on its right", "to the right", "on the right"),
}

# Where each of the two objects lies when A is in the relation to B: (A's place, B's place) phrasings.
PLACE_PAIRS: dict[str, tuple[tuple[str, str], ...]] = {
    "above": (("at the top", "at the bottom"), ("high up", "low down"), ("up top", "down below"), ("top", "bottom"),
              ("in the upper half", "in the lower half")),
    "below": (("at the bottom", "at the top"), ("low down", "high up"), ("down below", "up top"), ("bottom", "top"),
              ("in the lower half", "in the upper half")),
    "left of": (("on the left", "on the right"), ("left", "right"), ("on the left side", "on the right side"),
                ("at the left", "at the right")),
    "right of": (("on the right", "on the left"), ("right", "left"), ("on the right side", "on the left side"),
                 ("at the right", "at the left")),
}

LEADS = ("", "", "", "put ", "place ", "draw ", "show ", "paint ", "i want ", "give me ", "can you draw ",
         "make ", "please draw ")
UNCOLORED = 0.15


def _noun_phrase(noun: str, rng: random.Random, terse: bool = False) -> str:
    """'a red circle', or in terse phrasings often just 'red circle'."""
    return noun if terse and rng.random() < 0.6 else count_phrase(1, noun)


def _ordered(a: SceneObject, b: SceneObject, rel: str, nouns: tuple[str, str], scene: Scene,
             text: str) -> RelationCaption:
    return described_relation(text, scene.background, a, b, rel, nouns)


def paraphrased_relation(scene: Scene, rng: random.Random, uncolored: float = UNCOLORED) -> RelationCaption | None:
    """A paraphrase naming the two objects of a two-object scene and how they lie, or None when the scene is
    not two objects in a clear relation. The object named first comes first in the returned scene."""
    related = related_objects(scene, rng)
    if related is None:
        return None
    a, b, rel = related  # a rel b
    # without colours two objects of one shape cannot be told apart
    colors = a.shape == b.shape or rng.random() > uncolored
    na, nb = object_noun(a, colors), object_noun(b, colors)
    form = rng.choice(("verb", "verb", "sentence", "anaphoric", "anaphoric", "places", "places", "beside"))
    if form == "beside" and rel not in ("left of", "right of"):
        form = "places"
    if form == "verb":
        words = rng.choice(RELATION_WORDS[rel])
        return _ordered(a, b, rel, (na, nb), scene,
                        f"{rng.choice(LEADS)}{count_phrase(1, na)} {words} {count_phrase(1, nb)}")
    if form == "sentence":
        verb = rng.choice(("is", "sits", "is placed", "should be", "goes"))
        return _ordered(a, b, rel, (na, nb), scene, f"the {na} {verb} {rng.choice(RELATION_WORDS[rel])} the {nb}")
    if form == "anaphoric":  # b is named first: "blue square; red circle on top"
        words = rng.choice(ANAPHORIC_WORDS[rel])
        pa, pb = _noun_phrase(na, rng, terse=True), _noun_phrase(nb, rng, terse=True)
        text = rng.choice((f"{pb}; {pa} {words}", f"{pb}, with {pa} {words}", f"{pb} with {pa} {words}",
                           f"{pb}, and {pa} {words}", f"draw {count_phrase(1, nb)}, and {words} {count_phrase(1, na)}",
                           f"{pb}, and {words} {pa}"))
        return _ordered(b, a, OPPOSITE[rel], (nb, na), scene, text)
    if form == "places":
        place_a, place_b = rng.choice(PLACE_PAIRS[rel])
        pa, pb = _noun_phrase(na, rng, terse=True), _noun_phrase(nb, rng, terse=True)
        if rng.random() < 0.5:
            text = rng.choice((f"{pa} {place_a}, {pb} {place_b}", f"{place_a}: {pa}. {place_b}: {pb}",
                               f"{pa} {place_a} and {pb} {place_b}"))
            return _ordered(a, b, rel, (na, nb), scene, text)
        text = rng.choice((f"{pb} {place_b}, {pa} {place_a}", f"{place_b}: {pb}. {place_a}: {pa}",
                           f"{pb} {place_b} and {pa} {place_a}"))
        return _ordered(b, a, OPPOSITE[rel], (nb, na), scene, text)
    # beside: "a brown square beside a blue circle, the square on the right"
    side = "left" if rel == "left of" else "right"
    ref = f"the {a.shape}" if a.shape != b.shape else f"the {na}"
    return _ordered(a, b, rel, (na, nb), scene,
                    f"{count_phrase(1, na)} {rng.choice(('beside', 'next to', 'by'))} {count_phrase(1, nb)}, "
                    f"{ref} on the {side}")


def paraphrased_single(o: SceneObject, rng: random.Random, uncolored: float = UNCOLORED) -> str:
    """One object in a user's words: "something red and round", "the square should be red", "draw me a
    pink square", "one lonely star". `o`'s place and size are not named."""
    adjective = rng.choice(SHAPE_ADJECTIVES[o.shape])
    if rng.random() < uncolored:
        return rng.choice((f"{rng.choice(LEADS)}{count_phrase(1, o.shape)}", f"something {adjective}",
                           f"a {adjective} shape", f"{o.shape} shape", f"just one {o.shape}", f"one lonely {o.shape}",
                           f"there is {count_phrase(1, o.shape)}", f"an image with one {o.shape}",
                           f"{count_phrase(1, o.shape)}, nothing more", f"a single {o.shape}"))
    noun = object_noun(o)
    tail = rng.choice(("", "", "", " please", ", nothing else", ", nothing more", " on its own", " alone", " shape",
                       " on a plain background", " only"))
    lead = rng.choice(("", "", "draw ", "draw me ", "show me ", "i want ", "give me ", "just ", "one ", "only ",
                       "a single ", "there is ", "an image with ", "make "))
    article = "" if lead in ("one ", "a single ") else count_phrase(1, noun)[: -len(noun)]
    return rng.choice((
        f"{lead}{article}{noun}{tail}",
        f"{lead}{article}{noun}{tail}",
        f"the {o.shape} should be {o.color}",
        f"make the {o.shape} {o.color}",
        f"a {o.shape} {rng.choice(('coloured', 'colored', 'painted', 'in'))} {o.color}",
        f"a {o.color}-coloured {o.shape}",
        f"something {o.color} and {adjective}",
        f"{o.color}, {adjective}",
        f"a {adjective} thing in {o.color}",
        f"{count_phrase(1, o.color)} {adjective} shape",
        f"{o.shape}, {o.color}",
    ))


def paraphrased_count(n: int, o: SceneObject, rng: random.Random, colored: bool = True) -> str:
    """`n` copies of `o`'s shape (in its colour when `colored`): "2 stars", "a pair of circles", "a couple of
    yellow stars", "three squares in a row"."""
    noun = object_noun(o, colored)
    plural = count_phrase(2, noun).split(" ", 1)[1]  # "red circles"
    number = count_phrase(n, noun).split(" ", 1)[0]  # "three"
    forms = [f"{n} {plural}", f"{number} {plural}", f"{number} little {plural}", f"{number} {plural} in a row",
             f"{number} {plural} side by side", f"{plural}, {number} of them", f"exactly {number} {plural}",
             f"draw {number} {plural}"]
    if n == 2:
        forms += [f"a pair of {plural}", f"a couple of {plural}"]
    return rng.choice(forms)


def paraphrased_list(objects: tuple[SceneObject, ...], rng: random.Random) -> str:
    """Different objects, no places: "red circle + blue square", "a red circle together with a blue square"."""
    nouns = [count_phrase(1, object_noun(o)) for o in objects]
    joiner = rng.choice((" + ", ", ", " plus ", ", also ", " together with ", " as well as ", " & "))
    text = joiner.join(nouns)
    return rng.choice((text, f"both {nouns[0]} and {' and '.join(nouns[1:])}" if len(nouns) == 2 else text,
                       f"{rng.choice(LEADS)}{text}"))
