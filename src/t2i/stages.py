"""Stages before generation that need a language model: opening a presampler and applying it.

This is the layer that joins `t2i.llm` backends with the pure `t2i.presample` logic, and gives the lower
layers what they take as arguments: shapes world's vocabulary and nouns (`VOCABULARIES`, `user_subjects`).
The caller owns what it opens (pass a `Presampler` back in to reuse a loaded model), and may pass a
`CancelToken` (`cancel=`) that stops presampling or composing within one generated token.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from t2i.cancel import CancelToken
from t2i.presample import (
    Expansion,
    Presampler,
    TagDatabase,
    Vocabulary,
    sampling_for,
    targets_for,
    vocabulary_name_for,
)
from t2i.presample.vocabulary import vocabulary
from t2i.registry import ModelRegistry
from t2i.text import CONTROL_OR_SURROGATE, text_problem
from t2i.types import GenerationRequest, PresampleOptions, RequestError

if TYPE_CHECKING:
    from t2i.compose.conversation import Composer, Composition

DEFAULT_PRESAMPLER = "tipo-tiny"


def shapes_world_vocabulary() -> Vocabulary:
    """Shapes world's tags and caption sentences (t2i.world.text), and whether a caption agrees with its tags."""
    from t2i.world.text import caption_agrees, parse_sentence, parse_tag

    return Vocabulary("shapes-world", tag=lambda t: parse_tag(t) is not None,
                      sentence=lambda s: parse_sentence(s) is not None, agrees=caption_agrees)


# the vocabularies a model's presample.json may name ("vocabulary": "shapes-world")
VOCABULARIES: Mapping[str, Callable[[], Vocabulary]] = MappingProxyType({"shapes-world": shapes_world_vocabulary})


def vocabulary_for(folder: Path | None) -> Vocabulary | None:
    """The vocabulary a model's generated content must keep to (its presample.json names one of
    VOCABULARIES), else None."""
    return vocabulary(vocabulary_name_for(folder), VOCABULARIES)


def user_subjects(options: Mapping[str, Any], user_prompt: str) -> tuple[dict[str, Any], str | None]:
    """excite=user before the backend sees a presampled prompt: `t2i.render.excite.user_subjects` with shapes
    world's shapes as the nouns (as excite=auto finds them)."""
    from t2i.render.excite import user_subjects as subjects
    from t2i.world.vocab import SHAPES

    return subjects(options, user_prompt, SHAPES)


def open_presampler(name: str | None, registry: ModelRegistry, llm_options: Mapping[str, Any] | None = None,
                    ban: tuple[str, ...] = (), db: TagDatabase | None = None) -> Presampler:
    """Load the presampler `name` (default tipo-tiny) with its length targets, its sampling settings (both
    from the model's presample.json, else the reference's), its vocabulary and the tag database."""
    from t2i.backends.llm import load_llm

    name = name or DEFAULT_PRESAMPLER
    llm = load_llm(name, registry, llm_options)
    location = None
    if not name.startswith(("http://", "https://")):
        location = registry.resolve(name).location
    return Presampler(llm, targets_for(location), db or TagDatabase.default(), ban=ban,
                      settings=sampling_for(location), vocabulary=vocabulary_for(location))


def presample(request: GenerationRequest, presampler: Presampler, tags: list[str] | None = None,
              nl: str | None = None, cancel: CancelToken | None = None) -> Expansion:
    """Expand the request's prompt with its presample options (seed: the options', else the request's).

    `tags` / `nl` given apart replace the split of the prompt into tags and sentences.  A prompt with AND
    (composable diffusion) has each conjunct expanded on its own, with the same seed, and keeps its weights.
    `cancel` set (from any thread) raises `t2i.cancel.Cancelled` within one generated token."""
    from t2i.render.conjunction import ConjunctionError, is_conjunction, parse_conjunction

    try:
        conjuncts = parse_conjunction(request.prompt)
    except ConjunctionError as e:
        raise RequestError(str(e)) from e
    if is_conjunction(conjuncts) and tags is None and nl is None:
        return _presample_conjuncts(request, presampler, conjuncts, cancel)
    opts: PresampleOptions = request.presample
    seed = opts.seed if opts.seed is not None else (request.seed or 0)
    given = {k: getattr(opts, k) for k in ("temperature", "top_p", "top_k", "min_p") if getattr(opts, k) is not None}
    settings = replace(presampler.settings, **given)  # the request's settings over the model's own
    expansion = presampler.with_settings(settings).expand(request.prompt, tags=tags, nl=nl, seed=seed,
                                                          target=opts.target, width=request.width,
                                                          height=request.height, fmt=opts.format, cancel=cancel)
    return _without_controls(expansion)


def _without_controls(expansion: Expansion) -> Expansion:
    """A model's text holds no control characters when it becomes a prompt (t2i.text's rule): they are taken
    out, with a warning (the model wrote them; the user did not)."""
    if text_problem(expansion.prompt) is None:
        return expansion
    note = "the presampler wrote control characters; they were replaced by spaces"
    return replace(expansion, prompt=CONTROL_OR_SURROGATE.sub(" ", expansion.prompt),
                   warnings=[*expansion.warnings, note])


def _presample_conjuncts(request: GenerationRequest, presampler: Presampler, conjuncts: list,
                         cancel: CancelToken | None = None) -> Expansion:
    """One Expansion of an AND prompt: each conjunct expanded alone, rejoined with its weight."""
    from t2i.render.conjunction import AND, Conjunct, join_conjunction

    parts = [presample(request.with_(prompt=c.text), presampler, cancel=cancel) for c in conjuncts]
    # an expansion that writes the word AND would split into more conjuncts: keep it a word of its conjunct
    texts = [AND.sub("and", e.prompt) for e in parts]
    joined = join_conjunction([Conjunct(t, c.weight) for t, c in zip(texts, conjuncts, strict=True)])
    categories: dict[str, list[str]] = {}
    for e in parts:
        for key, values in e.categories.items():
            categories.setdefault(key, []).extend(values)
    return replace(parts[0], prompt=joined, original=request.prompt, tags=[t for e in parts for t in e.tags],
                   new_tags=[t for e in parts for t in e.new_tags],
                   extended=" AND ".join(e.extended for e in parts), generated=" AND ".join(e.generated for e in parts),
                   categories=categories, fallback=any(e.fallback for e in parts),
                   warnings=[w for e in parts for w in e.warnings], calls=sum(e.calls for e in parts))


DEFAULT_COMPOSER = "omost-tiny"


def open_composer(name: str | None, registry: ModelRegistry,
                  llm_options: Mapping[str, Any] | None = None) -> Composer:
    """Load the composer `name` (default omost-tiny) with the system prompt its model expects."""
    from t2i.backends.llm import load_llm
    from t2i.compose.conversation import Composer, retry_for, system_prompt_for

    name = name or DEFAULT_COMPOSER
    llm = load_llm(name, registry, llm_options)
    location = None if name.startswith(("http://", "https://")) else registry.resolve(name).location
    return Composer(llm, system_prompt_for(name, location), retry=retry_for(location))


def compose(request: GenerationRequest, composer: Composer, prompt: str | None = None,
            cancel: CancelToken | None = None) -> Composition:
    """A Composition for the request's prompt (or `prompt`, e.g. the presampled one) with its options;
    `cancel` set (from any thread) raises `t2i.cancel.Cancelled` within one generated token."""
    from t2i.compose.conversation import OMOST_SETTINGS

    opts = request.compose
    settings = replace(OMOST_SETTINGS, temperature=opts.temperature, top_p=opts.top_p,
                       max_tokens=opts.max_new_tokens, seed=opts.seed if opts.seed is not None else 12345)
    composer = type(composer)(composer.llm, composer.system, settings, composer.correct_words, composer.retry)
    return composer.compose(prompt if prompt is not None else request.prompt, cancel=cancel)
