"""Shapes-world documents in TIPO's layout, for tipo-tiny.

One scene gives one document: an optional `aspect_ratio:` line, `target: <|bucket|> [<|task|>]`, then
the task's fields in order.  Fields: `tag` = the scene's tags (shuffled, what the user gave first),
`short` = a user-like caption of some of the objects (any phrasing), `long` = the detailed caption
(one `There is ... <place>.` sentence per object, then `The background is ...`).  The length bucket is
the number of tags: very_short 2, short 3, long 4, very_long 5.
"""

from __future__ import annotations

import random
from collections import Counter

from t2i.presample.targets import LengthTargets
from t2i.world.captions import PLACE_PHRASES, natural_caption, object_noun
from t2i.world.scene import Scene, sample_scene
from t2i.world.vocab import count_phrase

BUCKETS = {2: "very_short", 3: "short", 4: "long", 5: "very_long"}
TASK_WEIGHTS = {None: 0.3, "tag_to_long": 0.25, "long_to_tag": 0.15, "short_to_tag": 0.15,
                "short_to_tag_to_long": 0.15}

# tipo-tiny's own targets: a bucket is an exact tag count; the detailed caption has a sentence per object
# plus the background.  "auto" (the default) draws the bucket with the world's frequencies.
TINY_TARGETS = LengthTargets(
    min_tags={"very_short": 2, "short": 3, "long": 4, "very_long": 5},
    max_tags={"very_short": 2, "short": 3, "long": 4, "very_long": 5},
    min_sentences={"very_short": 2, "short": 3, "long": 4, "very_long": 5},
    max_sentences={"very_short": 5, "short": 5, "long": 5, "very_long": 5},
    default_target="auto",
    default_format="tag only",  # the long captions of the shipped model name the user object only ~half the time
    # tag counts 2-5 of 20,000 world scenes (1-4 objects, same-looking objects share a tag)
    target_weights={"very_short": 0.256, "short": 0.263, "long": 0.268, "very_long": 0.212},
)
# tipo-tiny samples what it learned (the world's distribution): temperature 1, no filters.  The reference's
# 0.35 / top-k 60 / min-p 0.1 / repetition penalty 1.17 over-draws the likeliest colours
# (experiments/presample_world.py).
TINY_SAMPLING = {"temperature": 1.0, "top_p": 1.0, "top_k": 0, "min_p": 0.0, "repetition_penalty": 1.0}


def scene_tags(scene: Scene, rng: random.Random) -> list[str]:
    """['two red circles', 'blue square', 'gray background'] in a random order."""
    counts = Counter(object_noun(o) for o in scene.objects)
    items = [noun if n == 1 else count_phrase(n, noun) for noun, n in counts.items()]
    items.append(f"{scene.background} background")
    rng.shuffle(items)
    return items


def detailed_caption(scene: Scene, rng: random.Random) -> str:
    """'There is a red circle on the left. ... The background is gray.' (objects in a random order)."""
    objects = list(scene.objects)
    rng.shuffle(objects)
    parts = [f"There is {count_phrase(1, object_noun(o))} {rng.choice(PLACE_PHRASES[o.location])}." for o in objects]
    return " ".join([*parts, f"The background is {scene.background}."])


def tipo_document(scene: Scene, rng: random.Random) -> str:
    """One training document (without BOS/EOS)."""
    tags = scene_tags(scene, rng)
    bucket = BUCKETS[min(5, max(2, len(tags)))]
    task = rng.choices(list(TASK_WEIGHTS), weights=list(TASK_WEIGHTS.values()))[0]
    given = Scene(scene.background, tuple(rng.sample(scene.objects, rng.randint(1, len(scene.objects)))))
    user_caption = natural_caption(given, rng)
    if task in ("long_to_tag", "short_to_tag"):  # the tags start with what the caption named
        named = set(scene_tags(given, random.Random(0)))
        tags = [t for t in tags if t in named] + [t for t in tags if t not in named]
    fields = {"tag": ", ".join(tags), "short": user_caption, "long": detailed_caption(scene, rng)}
    if task == "long_to_tag":
        fields["long"] = user_caption
    aspect = "1.0" if rng.random() < 0.5 else None
    order = task.split("_to_") if task else ["tag"]
    head = (f"aspect_ratio: {aspect}\n" if aspect else "") + f"target: <|{bucket}|>" + (f" <|{task}|>" if task else "")
    return head + "\n" + "\n".join(f"{k}: {fields[k]}" for k in order)


def tipo_documents(n: int, seed: int) -> list[str]:
    """`n` documents from scenes drawn with `seed` (deterministic)."""
    rng = random.Random(seed)
    return [tipo_document(sample_scene(rng), rng) for _ in range(n)]
