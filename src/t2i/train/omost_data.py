"""Shapes-world conversations in Omost's chat format, for omost-tiny: a user prompt (any phrasing the
world's captions use, or tags) -> the scene's Canvas program."""

from __future__ import annotations

import random

from t2i.world.captions import canvas_program, natural_caption, relation_caption, sized_caption, tags_caption
from t2i.world.scene import sample_scene

# Our tiny composer's system prompt (Omost's own is ~1,300 characters: too long for a tiny context).
TINY_SYSTEM = "Compose the image with the Canvas class."
# A plain chat template for our byte-level tokenizer (the model learns it; nothing else uses it).
CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}</s>\n{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")


def omost_conversation(rng: random.Random) -> tuple[str, str]:
    """(user prompt, assistant program) of one random scene.

    Prompt mix: 40% detailed (colour, place and size of every object: the program follows exactly),
    30% natural captions (places, relations or nothing: the rest is a plausible guess), 15% two objects
    and their relation alone (the suite's position prompts: each region's comment restates its relation
    to the other before its location is written), 15% tags."""
    u = rng.random()
    if 0.70 <= u < 0.85:
        for _ in range(100):  # a two-object scene with a clear relation (most are)
            r = relation_caption(sample_scene(rng, 2), rng)
            if r is not None:
                return r.text, canvas_program(r.scene, notes=r.notes, summary=r.summary)
    scene = sample_scene(rng)
    if u < 0.40:
        prompt = sized_caption(scene, rng)
    elif u < 0.70:
        prompt = natural_caption(scene, rng)
    else:
        prompt = tags_caption(scene, rng)
    return prompt, canvas_program(scene)


def omost_documents(n: int, seed: int) -> list[str]:
    """`n` chat-formatted training documents (system, user, assistant), deterministic in `seed`."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        prompt, program = omost_conversation(rng)
        out.append(f"<|system|>\n{TINY_SYSTEM}</s>\n<|user|>\n{prompt}</s>\n<|assistant|>\n```python\n{program}```")
    return out
