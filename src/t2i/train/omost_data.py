"""Shapes-world conversations in Omost's chat format, for omost-tiny: a user prompt (any phrasing the
world's captions use, or tags) -> the scene's Canvas program."""

from __future__ import annotations

import random
from dataclasses import replace

from t2i.world.captions import (
    NATURAL_FORMS,
    canvas_program,
    natural_caption,
    relation_caption,
    sized_caption,
    tags_caption,
)
from t2i.world.paraphrase import paraphrased_count, paraphrased_list, paraphrased_relation, paraphrased_single
from t2i.world.scene import MAX_OBJECTS, Scene, SceneError, sample_scene, separated
from t2i.world.vocab import SHAPES

# Our tiny composer's system prompt (Omost's own is ~1,300 characters: too long for a tiny context).
TINY_SYSTEM = "Compose the image with the Canvas class."
# A plain chat template for our byte-level tokenizer (the model learns it; nothing else uses it).
CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}</s>\n{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")


# Areas of the layouts the composer chooses itself when the prompt fixes no place or size. The world draws
# every area, but shapes-xl under regional prompts fills a wide box with a row of copies and draws small
# boxes' shapes as blobs; a composer that leaves layout to chance (sampled at Omost's temperature 0.6, the
# commonest words win) wrote one such layout for every uncoloured two-object prompt.
OPEN_LAYOUT_AREAS = ("a medium-sized square area", "a large square area")


def open_layout_scene(rng: random.Random, n_objects: int | None = None, same_shape: bool = False,
                      tries: int = 200) -> Scene:
    """A random scene whose objects all take OPEN_LAYOUT_AREAS, drawn shapes still apart; `same_shape`: all
    objects one shape and colour (what a counting prompt, "four stars" or "four red stars", asks for)."""
    n = n_objects if n_objects is not None else rng.randint(1, MAX_OBJECTS)
    shape = rng.choice(SHAPES) if same_shape else None
    for _ in range(tries):
        scene = sample_scene(rng, n)
        color = scene.objects[0].color if same_shape else None  # never the background's (sample_scene)
        objects = tuple(replace(o, area=rng.choice(OPEN_LAYOUT_AREAS), shape=shape or o.shape,
                                color=color or o.color) for o in scene.objects)
        if all(separated(a, b) for i, a in enumerate(objects) for b in objects[:i]):
            return replace(scene, objects=objects)
    raise SceneError(f"could not lay out {n} objects in {', '.join(OPEN_LAYOUT_AREAS)}")


def paraphrased_conversation(rng: random.Random) -> tuple[str, str]:
    """(user prompt, assistant program) with the prompt in a user's words (`t2i.world.paraphrase`): 45% two
    objects and their relation, 30% one object, 10% a count, 15% different objects with no places. Prompts
    that fix no place get an open layout, as in `omost_conversation`."""
    u = rng.random()
    if u < 0.45:
        for _ in range(100):
            r = paraphrased_relation(sample_scene(rng, 2), rng)
            if r is not None:
                return r.text, canvas_program(r.scene, notes=r.notes, summary=r.summary)
    if u < 0.75:
        scene = open_layout_scene(rng, 1)
        return paraphrased_single(scene.objects[0], rng), canvas_program(scene)
    if u < 0.85:
        scene = open_layout_scene(rng, rng.randint(2, MAX_OBJECTS), same_shape=True)
        return paraphrased_count(len(scene.objects), scene.objects[0], rng, colored=rng.random() < 0.7), \
            canvas_program(scene)
    scene = open_layout_scene(rng, rng.randint(2, 3))
    return paraphrased_list(scene.objects, rng), canvas_program(scene)


def omost_conversation(rng: random.Random, paraphrased: float = 0.0) -> tuple[str, str]:
    """(user prompt, assistant program) of one random scene; with probability `paraphrased` the prompt is
    in a user's words instead (`paraphrased_conversation`).

    Prompt mix: 40% detailed (colour, place and size of every object: the program follows exactly),
    7.5% counts (2-4 copies of one shape and colour, as a bare list: the suite's counting prompts), 22.5%
    natural captions (places, relations, or a bare list of objects), 15% two objects and their
    relation alone (the suite's position prompts: each region's comment restates its relation to the
    other before its location is written), 15% tags.  Where the prompt fixes no place (tags, bare lists:
    the suite's two_object and counting prompts) the program's layout is an open one (open_layout_scene),
    as Omost's LLM picks a sensible layout rather than a random one."""
    if paraphrased and rng.random() < paraphrased:
        return paraphrased_conversation(rng)
    u = rng.random()
    if 0.70 <= u < 0.85:
        for _ in range(100):  # a two-object scene with a clear relation (most are)
            r = relation_caption(sample_scene(rng, 2), rng)
            if r is not None:
                return r.text, canvas_program(r.scene, notes=r.notes, summary=r.summary)
    if u < 0.40:
        scene = sample_scene(rng)
        prompt = sized_caption(scene, rng)
    elif u < 0.475:  # counting: 2-4 copies of one shape (random scenes rarely repeat a shape four times)
        scene = open_layout_scene(rng, rng.randint(2, MAX_OBJECTS), same_shape=True)
        prompt = natural_caption(scene, rng, form="list")
    elif u < 0.70:
        form = rng.choice(NATURAL_FORMS)
        scene = open_layout_scene(rng) if form == "list" else sample_scene(rng)
        prompt = natural_caption(scene, rng, form=form)
    else:
        scene = open_layout_scene(rng)
        prompt = tags_caption(scene, rng)
    return prompt, canvas_program(scene)


def omost_documents(n: int, seed: int, paraphrased: float = 0.0) -> list[str]:
    """`n` chat-formatted training documents (system, user, assistant), deterministic in `seed`;
    `paraphrased`: the share whose prompt is in a user's words."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        prompt, program = omost_conversation(rng, paraphrased)
        out.append(f"<|system|>\n{TINY_SYSTEM}</s>\n<|user|>\n{prompt}</s>\n<|assistant|>\n```python\n{program}```")
    return out
