"""A presampling model's vocabulary (presample.json "vocabulary"): generated text outside it is dropped."""

from __future__ import annotations

import json

import pytest

from t2i.backends import default_registry
from t2i.llm.base import Completion
from t2i.presample import Presampler, Vocabulary, targets_for, vocabulary_name_for
from t2i.presample.vocabulary import vocabulary as lookup
from t2i.stages import VOCABULARIES, open_presampler, presample, vocabulary_for
from t2i.types import GenerationRequest, PresampleOptions

from .test_presample_runner import SMALL, ScriptedLLM


def vocabulary(name):
    """A vocabulary by name from the ones t2i knows (stages.VOCABULARIES)."""
    return lookup(name, VOCABULARIES)


class OffWorldLLM(ScriptedLLM):
    """Tags: one off-world tag, then world tags.  The caption: one world and one off-world sentence on the
    first call; a retry (which continues the caption kept so far) adds a world sentence."""

    def complete(self, prompt, settings, on_token=None):
        self.requests.append((prompt, settings.seed))
        if "<|tag_to_long|>" in prompt:
            if prompt.endswith("long:"):
                return Completion(" There is a white yellow circle on the top. The background is gray.", "stop")
            return Completion(" There is a red circle on the top.", "stop")
        return Completion(", purple dragon, blue square, green star, pink circle", "stop")


def test_the_shapes_world_vocabulary_reads_tags_and_sentences():
    v = vocabulary("shapes-world")
    assert v.tag("two red circles") and v.tag("gray background") and not v.tag("purple dragon")
    assert v.sentence("There is a red circle on the top.") and v.sentence("The background is gray.")
    assert not v.sentence("There is a white yellow circle on the top.")
    assert not v.sentence("There is a brown circle at the top-right bottom right.")
    assert vocabulary(None) is None
    with pytest.raises(ValueError, match="unknown presample vocabulary 'klingon'; known: shapes-world"):
        vocabulary("klingon")


def test_generated_text_outside_the_vocabulary_is_dropped_retried_and_reported():
    llm = OffWorldLLM()
    out = Presampler(llm, SMALL, vocabulary=vocabulary("shapes-world")).expand("red circle", seed=1,
                                                                                target="long")
    assert "purple dragon" not in out.tags and out.new_tags[:3] == ["blue square", "green star", "pink circle"]
    captions = [p for p, _ in llm.requests if "<|tag_to_long|>" in p]
    # one sentence was left after the drop (the minimum is two): the retry continues the kept caption
    assert len(captions) == 2 and captions[1].endswith("long: The background is gray.")
    assert out.generated == "The background is gray. There is a red circle on the top."
    assert "white yellow" not in out.prompt + out.generated + out.extended
    assert any("dropped 2 generated tag(s) or sentence(s) outside the shapes-world vocabulary" in w
               for w in out.warnings)
    # without a vocabulary everything plausible is taken, as the reference does
    plain = Presampler(OffWorldLLM(), SMALL).expand("red circle", seed=1, target="long")
    assert "purple dragon" in plain.tags and "white yellow" in plain.generated and not plain.warnings


def test_when_the_vocabulary_leaves_nothing_the_fallback_says_why():
    llm = ScriptedLLM(garbage=", purple dragon, green dragon")
    out = Presampler(llm, SMALL, vocabulary=vocabulary("shapes-world")).expand("red circle", seed=1,
                                                                                want_nl=False)
    assert out.fallback and out.prompt == "red circle"
    assert out.warnings[0].startswith("dropped 2 generated") and "nothing usable" in out.warnings[1]


def test_the_users_own_text_is_never_checked():
    out = Presampler(OffWorldLLM(), SMALL, vocabulary=vocabulary("shapes-world")).expand(
        "purple dragon, red circle", seed=1, fmt="tag only")
    assert out.tags[:2] == ["purple dragon", "red circle"] and out.prompt.startswith("purple dragon, red circle")


def test_presample_json_names_the_vocabulary(tmp_path):
    assert vocabulary_for(None) is None and vocabulary_for(tmp_path) is None
    (tmp_path / "presample.json").write_text(json.dumps({**SMALL.to_dict(), "vocabulary": "shapes-world"}))
    assert vocabulary_name_for(tmp_path) == "shapes-world"  # the presample layer reads the name only
    assert vocabulary_for(tmp_path).name == "shapes-world" and targets_for(tmp_path) == SMALL
    (tmp_path / "presample.json").write_text(json.dumps({**SMALL.to_dict(), "vocabulary": ["shapes"]}))
    with pytest.raises(ValueError, match="vocabulary must be a name"):
        vocabulary_for(tmp_path)
    (tmp_path / "presample.json").write_text(json.dumps({**SMALL.to_dict(), "vocabulary": "klingon"}))
    with pytest.raises(ValueError, match="unknown presample vocabulary 'klingon'; known: shapes-world"):
        vocabulary_for(tmp_path)


def test_the_presample_layer_looks_names_up_in_what_the_caller_passes():
    squares = Vocabulary("squares", tag=lambda t: "square" in t, sentence=lambda s: "square" in s)
    assert lookup("squares", {"squares": lambda: squares}) is squares
    with pytest.raises(ValueError, match="unknown presample vocabulary 'shapes-world'; known: squares"):
        lookup("shapes-world", {"squares": lambda: squares})
    assert lookup(None, {}) is None


def test_a_custom_vocabulary_object_and_the_request_path_keep_it():
    only_squares = Vocabulary("squares", tag=lambda t: "square" in t, sentence=lambda s: "square" in s)
    presampler = Presampler(OffWorldLLM(), SMALL, vocabulary=only_squares)
    out = presample(GenerationRequest("red circle", seed=2, presample=PresampleOptions(enabled=True)), presampler)
    assert out.new_tags == ["blue square"] and not out.fallback
    assert any("outside the squares vocabulary" in w for w in out.warnings)


def test_the_shipped_tipo_tiny_keeps_to_shapes_world():
    assert open_presampler("tipo-tiny", default_registry()).vocabulary.name == "shapes-world"


class DisagreeingLLM(ScriptedLLM):
    """Tags: a blue square and a gray background.  The caption names a green triangle (not in the tags) on
    the first call; a retry adds a sentence about the blue square."""

    def complete(self, prompt, settings, on_token=None):
        self.requests.append((prompt, settings.seed))
        if "<|tag_to_long|>" in prompt:
            if prompt.endswith("long:"):
                return Completion(" There is a green triangle on the left. There is a red circle on the top.",
                                  "stop")
            return Completion(" There is a blue square at the bottom.", "stop")
        return Completion(", blue square, gray background", "stop")


def test_caption_sentences_must_agree_with_the_tags():
    from t2i.world.text import caption_agrees as agrees

    tags = ["red circle", "two squares", "gray background"]
    assert agrees(tags, "There is a red circle on the top.") and agrees(tags, "There is a circle in the centre.")
    assert agrees(tags, "There is a blue square on the left.")  # the tag names no colour for the squares
    assert not agrees(tags, "There is a blue circle on the top.") and not agrees(tags, "There is a star on the top.")
    assert agrees(tags, "The background is gray.") and not agrees(tags, "The background is white.")
    assert agrees(["red circle"], "The background is white.")  # no background tag: nothing to contradict
    assert agrees(tags, "A sentence of another form.")  # left to the vocabulary check

    llm = DisagreeingLLM()
    out = Presampler(llm, SMALL, vocabulary=vocabulary("shapes-world")).expand("red circle", seed=1, target="long",
                                                                                fmt="both + generated NL")
    assert out.new_tags == ["blue square", "gray background"]
    assert out.generated == "There is a red circle on the top. There is a blue square at the bottom."
    assert "green triangle" not in out.prompt
    assert any("dropped 1 generated caption sentence(s) that disagree with the tags" in w for w in out.warnings)
    # without a vocabulary the caption is taken as written
    plain = Presampler(DisagreeingLLM(), SMALL).expand("red circle", seed=1, target="long", fmt="both + generated NL")
    assert "green triangle" in plain.generated
