import random

import pytest

from t2i.llm import Completion, LLMError
from t2i.presample import LengthTargets, PresampleError, Presampler

SMALL = LengthTargets(min_tags={"very_short": 1, "short": 2, "long": 4, "very_long": 5},
                      max_tags={"very_short": 2, "short": 3, "long": 5, "very_long": 6},
                      min_sentences={"very_short": 1, "short": 1, "long": 2, "very_long": 2},
                      max_sentences={"very_short": 1, "short": 2, "long": 3, "very_long": None})
WORDS = ["blue square", "green star", "gray background", "pink circle", "yellow triangle", "black star"]


class ScriptedLLM:
    """Answers by rule: continues tags from a seeded pick of WORDS, writes captions for `long:`."""

    name = "scripted"

    def __init__(self, n_new=2, fail=False, garbage=None):
        self.n_new, self.fail, self.garbage, self.requests = n_new, fail, garbage, []

    def complete(self, prompt, settings, on_token=None):
        self.requests.append((prompt, settings.seed))
        if self.fail:
            raise LLMError("server timed out")
        if self.garbage is not None:
            return Completion(self.garbage, "stop")
        rng = random.Random(settings.seed)
        if prompt.endswith("long:"):
            return Completion(" There is a red circle. A blue square is above it.", "stop")
        new = rng.sample(WORDS, self.n_new)
        return Completion("".join(f", {w}" for w in new), "stop")

    def chat(self, messages, settings, on_token=None):
        raise NotImplementedError


def test_tags_are_kept_as_written_first_and_new_ones_follow():
    llm = ScriptedLLM(n_new=3)
    out = Presampler(llm, SMALL).expand("(red circle:1.2), gray background", seed=4, fmt="tag only")
    assert out.tags[:2] == ["(red circle:1.2)", "gray background"] and not out.fallback
    assert out.prompt.startswith("(red circle:1.2), gray background, ")
    assert "gray background" not in out.new_tags and len(out.new_tags) >= 2
    # the first request continues the user's plain tags
    assert llm.requests[0][0] == "target: <|long|>\ntag: red circle, gray background"
    # "tag only" shows no natural language, so no caption is asked for
    assert out.generated == "" and not any(r.endswith("long:") for r, _ in llm.requests)
    llm = ScriptedLLM(n_new=3)
    both = Presampler(llm, SMALL).expand("(red circle:1.2), gray background", seed=4, fmt="both + generated NL")
    assert both.tags == out.tags  # the same tag operation first
    assert both.generated == "There is a red circle. A blue square is above it."
    assert both.prompt.endswith("There is a red circle. A blue square is above it.")
    assert both.calls == out.calls + 1


def test_same_seed_same_expansion():
    a = Presampler(ScriptedLLM(), SMALL).expand("red circle", seed=7)
    b = Presampler(ScriptedLLM(), SMALL).expand("red circle", seed=7)
    c = Presampler(ScriptedLLM(), SMALL).expand("red circle", seed=8)
    assert a == b and a.prompt != c.prompt


def test_retries_feed_the_output_back_with_the_next_seed_until_the_minimum():
    llm = ScriptedLLM(n_new=1)
    out = Presampler(llm, SMALL).expand("red circle", seed=10, want_nl=False)
    seeds = [s for _, s in llm.requests]
    assert seeds == list(range(10, 10 + len(seeds))) and len(seeds) >= 2
    assert len(out.tags) >= SMALL.min_tags["long"]
    assert "red circle" in llm.requests[1][0] and out.new_tags[0] in llm.requests[1][0]


def test_retries_stop_after_identical_outputs():
    llm = ScriptedLLM(garbage=", red circle")  # adds nothing new, always the same
    out = Presampler(llm, SMALL, max_same=5).expand("red circle", want_nl=False)
    assert len(llm.requests) == 6  # KGen stops when 5 outputs in a row repeat an earlier one
    assert out.fallback and "added nothing" in out.warnings[0] and out.prompt == "red circle"


def test_cap_applies_to_new_tags_never_to_the_users():
    user = ", ".join(f"tag{i}" for i in range(8))  # more than max_tags["long"] = 5
    out = Presampler(ScriptedLLM(n_new=3), SMALL).expand(user, want_nl=False)
    assert out.tags == [f"tag{i}" for i in range(8)] or out.fallback
    assert all(f"tag{i}" in out.prompt for i in range(8))


def test_ban_list_removes_generated_tags_only():
    out = Presampler(ScriptedLLM(n_new=6), SMALL, ban=["star", r"^pink"]).expand("black star", want_nl=False)
    assert out.tags[0] == "black star"
    assert not any("star" in t or t.startswith("pink") for t in out.new_tags)


def test_failures_fall_back_to_the_users_prompt_and_say_so():
    for llm in (ScriptedLLM(fail=True), ScriptedLLM(garbage=""), ScriptedLLM(garbage="\x00\x01 ### ::::")):
        out = Presampler(llm, SMALL).expand("red circle, (blue:1.3)")
        assert out.fallback and out.prompt == "red circle, (blue:1.3)" and out.warnings


def test_bad_input():
    p = Presampler(ScriptedLLM(), SMALL)
    with pytest.raises(PresampleError, match="10000"):
        p.expand("a" * 10_001)
    out = p.expand("red circle, caf\udce9")  # an undecodable byte from argv
    assert "\ufffd" in out.prompt and any("UTF-8" in w for w in out.warnings)
    with pytest.raises(PresampleError, match="target"):
        p.expand("red", target="huge")
    with pytest.raises(PresampleError, match="format"):
        p.expand("red", fmt="fancy")
    assert not p.expand("").fallback  # empty input: TIPO writes tags from nothing


def test_a_format_without_tag_places_keeps_the_users_tags():
    out = Presampler(ScriptedLLM(), SMALL).expand("purple star", fmt="NL only")
    assert out.prompt.startswith("purple star, ") and any("kept in front" in w for w in out.warnings)


def test_natural_language_input_goes_through_the_nl_plan():
    llm = ScriptedLLM()
    out = Presampler(llm, SMALL).expand("a red circle above a blue square")
    assert llm.requests[0][0] == "target: <|long|> <|long_to_tag|>\nlong: a red circle above a blue square"
    assert out.extended.startswith("a red circle above a blue square")


def test_the_cap_on_new_tags_is_the_tag_maximum_not_the_sentence_maximum():
    # the reference caps tags with the sentence maximum (3 here); ours uses max_tags["long"] = 5
    out = Presampler(ScriptedLLM(n_new=6), SMALL).expand("red circle", want_nl=False)
    assert len(out.tags) == SMALL.max_tags["long"]


def test_tag_lists_of_an_installed_tipo_kgen_are_used(tmp_path, monkeypatch):
    from t2i.presample import TagDatabase, categorize

    pkg = tmp_path / "kgen"
    (pkg / "tag-list").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "tag-list" / "artist.txt").write_text("some artist\n")
    (pkg / "tag-list" / "copyrights.txt").write_text("vocaloid\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    db = TagDatabase.default()
    cats = categorize(["some_artist", "vocaloid", "smile"], db)
    assert cats["artist"] == ["some artist"] and cats["copyrights"] == ["vocaloid"] and cats["general"] == ["smile"]
