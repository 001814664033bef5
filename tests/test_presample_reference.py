"""TIPO requests for KGen's own examples: t2i sends the strings KGen (tipo-kgen, with z-tipo-extension's
choice of operations) sends.

The inputs are the reference's examples: scripts/example.py's prompt (`1girl, Umamusume, ask (askzy), horse
girl, masterpiece, absurdres, sensitive`, aspect ratio 1.0), scripts/tipo-test.py's natural language (`An
illustration of a girl` at 832x1216, tag length long) and its other prompt (`masterpiece, scenery,
absurdres, safe, newest, no humans, cyberpunk`), and the request layout KGen's README and model card show
(`meta: absurdres`, `characters: hatsune miku`, `copyrights: vocaloid`, ...).  The expected strings are
written out by hand from KGen's code: `seperate_tags` (categories, case-sensitive, `_` as space),
`parse_tipo_request` (the operations), `apply_tipo_prompt` (the text), `tipo_runner_generator` (what one
operation hands the next), and z-tipo-extension's rule for the extra caption step (only when the format can
show it).  The model's answers are scripted so that each operation adds at most one new general tag: KGen
shuffles new general tags, so a request after one adding several would not have one fixed text; and no
answer ends in a tag ending in `s` (KGen strips the characters `<`, `/`, `s`, `>` from both ends of the text).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from t2i.llm.base import Completion
from t2i.presample import Presampler, TagDatabase, categorize

# the few entries of tipo-kgen's tag lists these examples need (its real lists hold ~957k tags)
DB = TagDatabase(artist=frozenset({"ask (askzy)"}), characters=frozenset({"hatsune miku"}),
                 copyrights=frozenset({"vocaloid", "umamusume"}))
# 36 general tags: one call reaches the "long" minimum
MANY = ("1girl, solo, dress, white dress, flower, field, standing, outdoors, long hair, smile, sky, day, cloud, "
        "blue sky, looking at viewer, grass, wind, hat, sun hat, sleeveless, bare shoulders, closed mouth, "
        "brown hair, blue eyes, holding, holding hat, from side, full body, sundress, petals, tree, "
        "nature, sunlight, frills, scenery, summer")


class Scripted:
    """Answers in order; records every request."""

    name = "scripted"

    def __init__(self, *answers: str) -> None:
        self.answers, self.requests = list(answers), []

    def complete(self, prompt, settings, on_token=None, **kwargs):
        self.requests.append(prompt)
        return Completion(self.answers[len(self.requests) - 1], "stop")


@dataclass(frozen=True)
class Example:
    name: str
    tags: str
    nl: str
    fmt: str
    size: tuple[int, int]
    target: str
    answers: tuple[str, ...]
    requests: tuple[str, ...]  # what KGen sends, in order


EXAMPLES = [
    # scripts/example.py's prompt: 1girl special; Umamusume is Title Case, so KGen's case-sensitive lookup
    # leaves it general (example.py lower-cases for DanTagGen; the TIPO path, z-tipo-extension, does not);
    # ask (askzy) artist; masterpiece quality; absurdres meta; sensitive rating.  "tag only": no caption step.
    Example("example.py, tag only", "1girl, Umamusume, ask (askzy), horse girl, masterpiece, absurdres, sensitive",
            "", "tag only", (1024, 1024), "very_short",
            (", animal ears, horse ears, tail",),
            ("meta: absurdres\n"
             "rating: sensitive\n"
             "artist: ask (askzy)\n"
             "quality: masterpiece\n"
             "aspect_ratio: 1.0\n"
             "target: <|very_short|>\n"
             "tag: 1girl, Umamusume, horse girl",)),
    # scripts/tipo-test.py: natural language only, 832x1216, tag length long.  NL only -> long_to_tag, the text
    # in `long:`; with natural language given, a "tag first" format shows the user's text extended, so no
    # caption step (z-tipo-extension: `(not nl_prompt and "<|extended|>" in format) or "<|generated|>" in
    # format`).  The model writes on from the text, then the tags.
    Example("tipo-test.py, NL only input, tag first", "", "An illustration of a girl", "both, tag first",
            (832, 1216), "long",
            (", standing in a field of flowers.\ntag: " + MANY,),
            ("aspect_ratio: 0.7\n"
             "target: <|long|> <|long_to_tag|>\n"
             "long: An illustration of a girl",)),
    # the same input with "tag only": the same single operation
    Example("tipo-test.py, NL only input, tag only", "", "An illustration of a girl", "tag only", (832, 1216),
            "long", ("\ntag: " + MANY,),
            ("aspect_ratio: 0.7\n"
             "target: <|long|> <|long_to_tag|>\n"
             "long: An illustration of a girl",)),
    # the README's request layout, the tags written with underscores: KGen sends `long hair` and finds
    # `hatsune_miku` as `hatsune miku`; characters then copyrights, quality in input order.  Tags only with a
    # "tag first" format: continue the tags, then write a caption (tag_to_long, the request ends in `long:`).
    Example("README layout, tags only, tag first",
            "1girl, hatsune_miku, vocaloid, long_hair, twintails, smile, aqua_hair, masterpiece, newest, "
            "absurdres, sensitive", "", "both, tag first", (832, 1216), "very_short",
            (", solo", " A girl with long aqua twintails smiles."),
            ("meta: absurdres\n"
             "rating: sensitive\n"
             "characters: hatsune miku\n"
             "copyrights: vocaloid\n"
             "quality: masterpiece, newest\n"
             "aspect_ratio: 0.7\n"
             "target: <|very_short|>\n"
             "tag: 1girl, long hair, twintails, smile, aqua hair",
             "meta: absurdres\n"
             "rating: sensitive\n"
             "characters: hatsune miku\n"
             "copyrights: vocaloid\n"
             "quality: masterpiece, newest\n"
             "aspect_ratio: 0.7\n"
             "target: <|very_short|> <|tag_to_long|>\n"
             "tag: 1girl, long hair, twintails, smile, aqua hair, solo\n"
             "long:")),
    # tipo-test.py's other prompt with natural language, "both + generated NL": short_to_tag (the text in
    # `short:`), tag_to_long (the text in `long:`, which the model finishes and extends: KGen puts the
    # finished sentence in place of the user's), then short_to_tag_to_long writes a fresh caption.
    # `no humans` is in none of KGen's lists: general, in input order.
    Example("tipo-test.py tags and NL, generated NL",
            "masterpiece, scenery, absurdres, safe, newest, no humans, cyberpunk, city, night",
            "A neon city street at night", "both + generated NL", (1024, 1024), "very_short",
            (", rain", ", with rain on the road. Cars pass by",
             " A rainy street in a cyberpunk city glows with neon signs."),
            ("meta: absurdres\n"
             "rating: safe\n"
             "quality: masterpiece, newest\n"
             "aspect_ratio: 1.0\n"
             "target: <|very_short|> <|short_to_tag|>\n"
             "short: A neon city street at night\n"
             "tag: scenery, no humans, cyberpunk, city, night",
             "meta: absurdres\n"
             "rating: safe\n"
             "quality: masterpiece, newest\n"
             "aspect_ratio: 1.0\n"
             "target: <|very_short|> <|tag_to_long|>\n"
             "tag: scenery, no humans, cyberpunk, city, night, rain\n"
             "long: A neon city street at night",
             "meta: absurdres\n"
             "rating: safe\n"
             "quality: masterpiece, newest\n"
             "aspect_ratio: 1.0\n"
             "target: <|very_short|> <|short_to_tag_to_long|>\n"
             "short: A neon city street at night, with rain on the road. Cars pass by\n"
             "tag: scenery, no humans, cyberpunk, city, night, rain\n"
             "long:")),
    # tags and natural language, "both, NL first" (no caption step: natural language is given and the
    # format has no <|generated|>); `general` here is the rating, `hatsune miku` a character as written.
    Example("tags and NL, NL first",
            "1girl, solo, hatsune miku, vocaloid, ask (askzy), standing, outdoors, smile, general",
            "Hatsune Miku waves at the viewer", "both, NL first", (1216, 832), "very_short",
            (", waving", " with a bright smile"),
            ("rating: general\n"
             "artist: ask (askzy)\n"
             "characters: hatsune miku\n"
             "copyrights: vocaloid\n"
             "aspect_ratio: 1.5\n"
             "target: <|very_short|> <|short_to_tag|>\n"
             "short: Hatsune Miku waves at the viewer\n"
             "tag: 1girl, solo, standing, outdoors, smile",
             "rating: general\n"
             "artist: ask (askzy)\n"
             "characters: hatsune miku\n"
             "copyrights: vocaloid\n"
             "aspect_ratio: 1.5\n"
             "target: <|very_short|> <|tag_to_long|>\n"
             "tag: 1girl, solo, standing, outdoors, smile, waving\n"
             "long: Hatsune Miku waves at the viewer")),
    # the same input in z-tipo-extension's default format ("tag first"): the same two operations
    Example("tags and NL, tag first",
            "1girl, solo, hatsune miku, vocaloid, ask (askzy), standing, outdoors, smile, general",
            "Hatsune Miku waves at the viewer", "both, tag first", (1024, 1024), "very_short",
            (", waving", ". She stands in a park"),
            ("rating: general\n"
             "artist: ask (askzy)\n"
             "characters: hatsune miku\n"
             "copyrights: vocaloid\n"
             "aspect_ratio: 1.0\n"
             "target: <|very_short|> <|short_to_tag|>\n"
             "short: Hatsune Miku waves at the viewer\n"
             "tag: 1girl, solo, standing, outdoors, smile",
             "rating: general\n"
             "artist: ask (askzy)\n"
             "characters: hatsune miku\n"
             "copyrights: vocaloid\n"
             "aspect_ratio: 1.0\n"
             "target: <|very_short|> <|tag_to_long|>\n"
             "tag: 1girl, solo, standing, outdoors, smile, waving\n"
             "long: Hatsune Miku waves at the viewer")),
    # only quality, meta and rating tags: KGen plans on the tag line, which is empty, so this is its "no input"
    # plan: tags from nothing (retried, each output fed back, until the minimum), then a caption that
    # continues the request (tag_to_long without `long:`)
    Example("quality, meta and rating tags only, tag first", "masterpiece, absurdres, safe, newest", "",
            "both, tag first", (1024, 1024), "very_short",
            ("\ntag: 1girl, solo", ", smile", ", sky", ", hat", ", cat", "\nlong: A girl under the sky."),
            tuple("meta: absurdres\n"
                  "rating: safe\n"
                  "quality: masterpiece, newest\n"
                  "aspect_ratio: 1.0\n"
                  "target: <|very_short|>" + tags
                  for tags in ("", "\ntag: 1girl, solo", "\ntag: 1girl, solo, smile", "\ntag: 1girl, solo, smile, sky",
                               "\ntag: 1girl, solo, smile, sky, hat")) +
            ("meta: absurdres\n"
             "rating: safe\n"
             "quality: masterpiece, newest\n"
             "aspect_ratio: 1.0\n"
             "target: <|very_short|> <|tag_to_long|>\n"
             "tag: 1girl, solo, smile, sky, hat, cat",)),
    # tags only, "NL only": continue the tags, then a caption (KGen: with no natural language given, an
    # <|extended|> place falls back to the caption, so the step is run); `very aesthetic` and `best quality`
    # are quality, `no humans` general
    Example("tags only, NL only", "no humans, scenery, mountain, lake, sky, cloud, best quality, very aesthetic",
            "", "NL only", (1024, 1024), "very_short",
            (", tree", " A calm lake lies below the mountains."),
            ("quality: best quality, very aesthetic\n"
             "aspect_ratio: 1.0\n"
             "target: <|very_short|>\n"
             "tag: no humans, scenery, mountain, lake, sky, cloud",
             "quality: best quality, very aesthetic\n"
             "aspect_ratio: 1.0\n"
             "target: <|very_short|> <|tag_to_long|>\n"
             "tag: no humans, scenery, mountain, lake, sky, cloud, tree\n"
             "long:")),
]


@pytest.mark.parametrize("ex", EXAMPLES, ids=[e.name for e in EXAMPLES])
def test_requests_are_the_references(ex):
    llm = Scripted(*ex.answers)
    out = Presampler(llm, db=DB).expand(tags=[ex.tags] if ex.tags else [], nl=ex.nl, seed=1, width=ex.size[0],
                                        height=ex.size[1], fmt=ex.fmt, target=ex.target)
    assert llm.requests == list(ex.requests)
    assert not out.fallback


def test_the_examples_cover_every_category_input_and_format():
    cats: set[str] = set()
    for ex in EXAMPLES:
        cats |= {c for c, tags in categorize([t for t in ex.tags.split(",") if t.strip()], DB).items() if tags}
    assert cats == {"special", "rating", "artist", "copyrights", "characters", "general", "quality", "meta"}
    kinds = {("tags" if ex.tags else "") + ("+nl" if ex.nl else "") for ex in EXAMPLES}
    assert kinds == {"tags", "+nl", "tags+nl"}
    assert {ex.fmt for ex in EXAMPLES} == {"tag only", "NL only", "both, tag first", "both, NL first",
                                           "both + generated NL"}
    assert sum(len(ex.requests) for ex in EXAMPLES) == 20


def test_the_caption_step_runs_only_where_the_format_can_show_it():
    """z-tipo-extension's rule: with natural language given, only <|generated|> shows a fresh caption; without
    it, <|extended|> falls back to the caption."""
    from t2i.presample.formats import wants_caption

    assert [wants_caption(f, has_nl=True) for f in ("tag only", "NL only", "both, tag first", "both, NL first",
                                                    "both + generated NL")] == [False, False, False, False, True]
    assert [wants_caption(f, has_nl=False) for f in ("tag only", "NL only", "both, tag first", "both, NL first",
                                                     "both + generated NL")] == [False, True, True, True, True]


def test_natural_language_input_extends_the_text_in_a_tag_first_format():
    """NL only: long_to_tag continues the user's text; KGen keeps that as the extended text, which a "tag
    first" format shows (no second, unseen caption is written)."""
    llm = Scripted(", standing in a field of flowers. She wears a white dress.\ntag: " + MANY)
    out = Presampler(llm, db=DB).expand(nl="An illustration of a girl", width=832, height=1216,
                                        fmt="both, tag first", target="long")
    assert out.calls == 1
    assert out.extended == "An illustration of a girl, standing in a field of flowers. She wears a white dress."
    assert out.generated == ""
    assert out.prompt.startswith("1girl, solo, dress, ") and out.prompt.endswith(out.extended)


def test_the_presets_are_laid_out_as_the_references():
    """KGen's TIPO_DEFAULT_FORMAT, on one line."""
    from t2i.presample import apply_format

    values = {"special": ["1girl"], "characters": ["hatsune miku"], "artist": ["ask (askzy)"],
              "general": ["smile"], "quality": ["masterpiece"], "rating": ["safe"],
              "extended": "A girl smiles.", "generated": "Miku waves."}
    assert apply_format("both, tag first", values) == \
        "1girl, hatsune miku, ask (askzy), smile, A girl smiles. masterpiece, safe"
    assert apply_format("both, NL first", values) == \
        "1girl, hatsune miku, ask (askzy), A girl smiles. smile, masterpiece, safe"
    assert apply_format("both + generated NL", values) == \
        "1girl, hatsune miku, ask (askzy), Miku waves. smile, A girl smiles. masterpiece, safe"
    assert apply_format("tag only", values) == "1girl, hatsune miku, ask (askzy), smile, masterpiece, safe"
    assert apply_format("NL only", values) == "A girl smiles."


def test_the_built_in_lists_are_kgens():
    """kgen.metainfo's SPECIAL, POSSIBLE_QUALITY_TAGS and RATING_TAGS, written out."""
    from t2i.presample.tags import QUALITY, RATING, SPECIAL

    assert SPECIAL == {"1girl", "2girls", "3girls", "4girls", "5girls", "6+girls", "multiple girls",
                       "1boy", "2boys", "3boys", "4boys", "5boys", "6+boys", "multiple boys", "male focus",
                       "1other", "2others", "3others", "4others", "5others", "6+others", "multiple others"}
    assert QUALITY == {"masterpiece", "best quality", "great quality", "good quality", "normal quality",
                       "low quality", "worse quality", "very aesthetic", "aesthetic", "displeasing",
                       "very displeasing", "newest", "recent", "mid", "early", "old", "score_9", "score_8_up",
                       "score_7_up", "score_6_up", "score_5_up", "score_4_up", "source_anime", "source_cartoon",
                       "source_furry", "source_pony"}
    assert RATING == {"safe", "general", "sfw", "sensitive", "nsfw", "explicit"}
    # what KGen leaves general, in the form it sends (`_` as space from 4 characters)
    cats = categorize(["no humans", "worst quality", "high quality", "bad quality", "score_8", "score_9_up",
                       "questionable", "huge filesize", "japanese commentary", "sample", "Masterpiece", "^_^"])
    assert cats["general"] == ["no humans", "worst quality", "high quality", "bad quality", "score 8", "score 9 up",
                               "questionable", "huge filesize", "japanese commentary", "sample", "Masterpiece",
                               "^_^"]
    assert categorize(["score_9", "source_anime", "worse quality"])["quality"] == ["score_9", "source_anime",
                                                                                 "worse quality"]
