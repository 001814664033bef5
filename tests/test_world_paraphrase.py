"""Paraphrased prompts are true of their scenes, and omost-tiny's recipe mixes them in only when asked."""

from __future__ import annotations

import random
import re

import pytest

from t2i.train.omost_data import omost_documents, paraphrased_conversation
from t2i.world.captions import OPPOSITE
from t2i.world.paraphrase import paraphrased_count, paraphrased_relation, paraphrased_single
from t2i.world.relations import relative_position
from t2i.world.scene import sample_scene


def test_a_paraphrased_relation_holds_for_the_scene_it_returns():
    rng = random.Random(0)
    seen = 0
    for _ in range(400):
        caption = paraphrased_relation(sample_scene(rng, 2), rng)
        if caption is None:
            continue
        seen += 1
        a, b = caption.scene.objects
        rel = re.fullmatch(r"an? .+? (left of|right of|above|below) an? .+", caption.summary).group(1)
        assert rel in relative_position(a.shape_box(), b.shape_box()), caption
        for o in (a, b):
            assert o.shape in caption.text, caption
        assert caption.notes[0].startswith(f"{rel} the ") and caption.notes[1].startswith(f"{OPPOSITE[rel]} the ")
    assert seen > 300


def test_paraphrases_reach_beyond_the_templates():
    rng = random.Random(1)
    texts = [paraphrased_conversation(rng)[0] for _ in range(600)]
    for words in ("; ", " on top", "to its left", "something ", " should be ", "a couple of ", "left: ",
                  " high up"):
        assert any(words in t for t in texts), words


def test_single_and_count_paraphrases_name_the_object_or_its_shape_word():
    rng = random.Random(2)
    scene = sample_scene(rng, 1)
    o = scene.objects[0]
    for _ in range(100):
        text = paraphrased_single(o, rng)
        assert o.shape in text or any(adj in text for adj in ("round", "circular", "square-shaped", "boxy",
                                                               "triangular", "three-sided", "star-shaped",
                                                               "five-pointed")), text
        count = paraphrased_count(3, o, rng)
        assert ("3 " in count or "three " in count) and o.shape + "s" in count, count


def test_the_recipe_mixes_paraphrases_only_when_asked():
    plain, mixed = omost_documents(200, 0), omost_documents(200, 0, paraphrased=0.5)
    assert plain == omost_documents(200, 0)  # deterministic, and unchanged by the option's existence
    assert plain != mixed and mixed == omost_documents(200, 0, paraphrased=0.5)
    assert all(d.endswith("```") and "canvas = Canvas()" in d for d in mixed)


def test_only_omost_tiny_takes_paraphrased_chats(tmp_path):
    from t2i.train.small_lm_config import SmallLMConfig
    from t2i.train.tipo_tiny import train_tipo_tiny

    with pytest.raises(ValueError, match="tipo-tiny has no paraphrased chats"):
        train_tipo_tiny(SmallLMConfig(paraphrased=0.3), tmp_path / "w", tmp_path / "o")
