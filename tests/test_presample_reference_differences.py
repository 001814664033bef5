"""Where t2i's TIPO runner differs from KGen on purpose (docs/presample-fidelity.md): one test each.

Each test names what KGen does (tipo-kgen's `executor/tipo.py` and `formatter.py`, z-tipo-extension) and
shows what t2i does instead.
"""

from __future__ import annotations

from t2i.llm.base import Completion
from t2i.presample import LengthTargets, Presampler, TagDatabase, apply_format, categorize, parse_output
from t2i.presample.formats import FORMATS

# small buckets so that a few scripted tags and sentences reach them
SMALL = LengthTargets(min_tags={"very_short": 2, "short": 4, "long": 6, "very_long": 8},
                      max_tags={"very_short": 4, "short": 6, "long": 8, "very_long": 10},
                      min_sentences={"very_short": 1, "short": 2, "long": 3, "very_long": 4},
                      max_sentences={"very_short": 2, "short": 3, "long": 4, "very_long": None})


class Scripted:
    """Answers in order (the last one again when they run out); records requests and seeds."""

    name = "scripted"

    def __init__(self, *answers: str) -> None:
        self.answers, self.requests, self.seeds = list(answers), [], []

    def complete(self, prompt, settings, on_token=None, **kwargs):
        self.requests.append(prompt)
        self.seeds.append(settings.seed)
        return Completion(self.answers[min(len(self.requests), len(self.answers)) - 1], "stop")


def test_sentences_keep_their_stops_when_fed_back():
    """KGen splits the text on every "." and joins the pieces with ". ": the text it feeds back loses its final
    stop, and "3.5" becomes two sentences.  t2i keeps sentences as written, ending at . ! ? before a space."""
    llm = Scripted(", tower", " The tower is 3.5 meters tall.", " A tall tower glows.")
    out = Presampler(llm, SMALL).expand(tags=["scenery", "sky"], nl="A tower stands in a city.",
                                        fmt="both + generated NL", target="very_short")
    assert "short: A tower stands in a city.\ntag: scenery, sky" in llm.requests[0]
    assert "long: A tower stands in a city." in llm.requests[1]  # KGen: "long: A tower stands in a city"
    assert "short: A tower stands in a city. The tower is 3.5 meters tall.\n" in llm.requests[2]
    assert out.extended == "A tower stands in a city. The tower is 3.5 meters tall."


def test_end_of_text_is_removed_as_a_whole_token():
    """KGen strips the characters <, /, s, > from both ends of the output, so a last tag `gloves` comes back
    as `glove`."""
    llm = Scripted(", smile, gloves</s>", ", hat</s>")
    Presampler(llm, SMALL).expand(tags=["1girl", "solo"], target="long", fmt="tag only")
    assert llm.requests[1].endswith("tag: 1girl, solo, smile, gloves")


def test_the_tag_cap_is_the_tag_maximum():
    """KGen cuts new tags to the *sentence* maximum less the given tags (8 - 30 = none for "long"); t2i caps
    the tag line at the tag maximum (54 for "long")."""
    user = [f"tag{i}" for i in range(30)]
    new = ", ".join(f"new{i}" for i in range(40))
    out = Presampler(Scripted(", " + new)).expand(tags=user, target="long", fmt="tag only")
    assert len(out.new_tags) == 54 - 30 and out.new_tags[0] == "new0"


def test_new_tags_keep_the_models_order():
    """KGen shuffles new general tags (with its module's global random state) before feeding them back."""
    llm = Scripted(", c, a, b", ", d, e")
    Presampler(llm, SMALL).expand(tags=["x", "y"], target="long", fmt="tag only")
    assert llm.requests[1].endswith("tag: x, y, c, a, b")


def test_the_ban_list_removes_generated_tags_only():
    """tipo-kgen 0.3 applies the ban list to every list after parsing, the user's tags included."""
    llm = Scripted(", short hair, smile, red eyes")
    out = Presampler(llm, SMALL, ban=["hair"]).expand(tags=["1girl", "long hair"], target="short",
                                                      fmt="tag only")
    assert out.tags[:2] == ["1girl", "long hair"] and "short hair" not in out.tags


def test_a_caption_retry_continues_the_caption():
    """On a retry of a caption step (the request ends in `long:`), KGen writes the caption so far and then
    `long:` again; its parser keeps the first `long:` block, so the model's new text is lost.  t2i asks the
    model to continue the caption."""
    llm = Scripted(", smile, solo", " A girl smiles.", " She waves.")
    out = Presampler(llm, SMALL).expand(tags=["1girl", "long hair"], target="short", fmt="both, tag first")
    assert llm.requests[1].endswith("<|tag_to_long|>\ntag: 1girl, long hair, smile, solo\nlong:")
    assert llm.requests[2].endswith("<|tag_to_long|>\ntag: 1girl, long hair, smile, solo\nlong: A girl smiles.")
    assert out.generated == "A girl smiles. She waves."


def test_a_new_tag_repeating_a_users_tag_in_another_case_is_dropped():
    """KGen compares tags exactly: `Long Hair` given and `long hair` written both go on.  The text encoders
    lower-case (CLIP's tokenizer), so they are one tag."""
    llm = Scripted(", long hair, smile", ", hat")
    out = Presampler(llm, SMALL).expand(tags=["1girl", "Long Hair"], target="long", fmt="tag only")
    assert llm.requests[1].endswith("tag: 1girl, Long Hair, smile")
    assert out.new_tags[0] == "smile"


def test_a_new_special_tag_is_written_once():
    """KGen does not de-duplicate special tags: each time the model writes `1boy` again, the next request
    holds one more (`1girl, 1boy, 1boy, solo, ...`)."""
    llm = Scripted(", 1boy, smile", ", 1boy, hat", ", 1boy, cat")
    Presampler(llm, SMALL).expand(tags=["1girl", "solo"], target="long", fmt="tag only")
    assert llm.requests[1].endswith("tag: 1girl, 1boy, solo, smile")
    assert llm.requests[2].endswith("tag: 1girl, 1boy, solo, smile, hat")


def test_the_users_tags_reach_the_image_model_as_written():
    """The model is given `long hair` (KGen's form); the prompt keeps `long_hair` and the weight as the user
    wrote them (KGen's prompt says `long hair`, and z-tipo-extension loses the weight of a tag it rewrote)."""
    llm = Scripted(", smile, solo")
    out = Presampler(llm, SMALL).expand("1girl, long_hair, (blue_eyes:1.2)", target="short", fmt="tag only")
    assert llm.requests[0].endswith("tag: 1girl, long hair, blue eyes")
    assert out.prompt.startswith("1girl, long_hair, (blue_eyes:1.2), smile, solo")


def test_only_field_names_start_a_block_of_output():
    """KGen's parser starts a new key at any `word:` line start, cutting a caption at a line like `It reads:
    hello`; t2i's keys are the request's field names."""
    out = parse_output("target: <|long|> <|tag_to_long|>\ntag: 1girl\nlong: A girl holds a sign.\n"
                       "It reads: hello.")
    assert out.generated == "A girl holds a sign.\nIt reads: hello."


def test_the_caption_is_written_once_where_extended_falls_back_to_it():
    """With no extended text, KGen's <|extended|> becomes <|generated|>, so "Both + generated NL" writes the
    caption twice."""
    prompt = apply_format("both + generated NL", {"general": ["smile"], "generated": "A girl smiles."})
    assert prompt.count("A girl smiles.") == 1


def test_a_format_without_tag_places_keeps_the_users_tags():
    """KGen's "NL only" prompt holds the text alone, so the user's tags are lost."""
    out = Presampler(Scripted(", smile", " A girl smiles.")).expand(tags=["1girl", "red hair"], target="very_short",
                                                                     fmt="NL only")
    assert out.prompt == "1girl, red hair, A girl smiles."


def test_generated_character_tags_of_every_call_reach_the_result_but_not_the_model():
    """As KGen, a character the model writes on the tag line is not given back to it (no `characters:` line,
    not on the tag line); KGen's result holds only those of the last call, t2i's those of every call."""
    db = TagDatabase(characters=frozenset({"hatsune miku"}))
    llm = Scripted(", hatsune miku, smile", ", twintails, hat")
    out = Presampler(llm, SMALL, db=db).expand(tags=["1girl", "solo"], target="long", fmt="tag only")
    assert llm.requests[1] == "target: <|long|>\ntag: 1girl, solo, smile"
    assert out.categories["characters"] == ["hatsune miku"] and "hatsune miku" in out.prompt


def test_sentences_are_counted_as_written():
    """KGen counts `len(text.split("."))`: an empty caption counts as one sentence and meets a one-sentence
    minimum; t2i asks again."""
    llm = Scripted(", smile, solo", "", " A girl smiles.")
    out = Presampler(llm, SMALL).expand(tags=["1girl", "red hair"], target="very_short", fmt="both, tag first")
    assert len(llm.requests) == 3 and out.generated == "A girl smiles."


def test_call_i_uses_the_callers_seed_plus_i():
    """KGen's runner does not pass its seed on: the generator draws one from the global random state."""
    llm = Scripted(", a", ", b", ", c, d, e")
    Presampler(llm, SMALL).expand(tags=["x"], seed=40, target="long", fmt="tag only")
    assert llm.seeds == [40, 41, 42]


def test_built_in_categories_are_looked_up_first():
    """KGen looks in its data files first, in directory order (which varies by file system), then special,
    quality, rating.  Its files share no tag with those lists, so this decides only for lists a user gives."""
    db = TagDatabase(artist=frozenset({"newest", "some artist"}))
    cats = categorize(["newest", "some_artist"], db)
    assert cats["quality"] == ["newest"] and cats["artist"] == ["some artist"]


def test_natural_language_is_given_without_surrounding_whitespace():
    """KGen writes the text as given (a trailing newline becomes a blank line before the next field)."""
    llm = Scripted(", a, b, c, d, e, f")
    Presampler(llm, SMALL).expand(tags=["1girl"], nl="  A girl.\n", target="short", fmt="both, tag first")
    assert llm.requests[0] == "target: <|short|> <|short_to_tag|>\nshort: A girl.\ntag: 1girl"


def test_an_empty_marker_is_not_a_tag():
    """KGen's parser keeps `<|empty|>` on a tag line as a tag."""
    assert parse_output("tag: <|empty|>").tags == []


def test_the_presets_are_one_line():
    """KGen's presets put blank lines between groups; a newline is whitespace to the text encoders."""
    assert not any("\n" in f for f in FORMATS.values())
