"""What generated content a presampling model may add: a vocabulary the model folder names.

A model trained on a closed world (tipo-tiny on shapes world) should only ever add text of that world;
sampling at temperature 1 occasionally writes a sentence outside it ("a white yellow circle").  Its
`presample.json` names a vocabulary:

    {"vocabulary": "shapes-world", ...}

and the runner drops every generated tag or sentence the vocabulary rejects (the user's own text is
never checked or dropped), retries like any other shortfall, and says how many it dropped.  Models
without the key (the released TIPO models) take everything, as the reference does.

A vocabulary may also say whether a generated caption sentence *agrees* with the tags it was written
from (TIPO's tag_to_long task: the caption describes the tags).  A small model sometimes writes a caption
about other objects than its own tags ("green star" in the tags, "a green triangle" in the caption); such
sentences are dropped and asked for again, so an expansion never contradicts itself.

Vocabularies are looked up by name in `VOCABULARIES`; pass a `Vocabulary` object to `Presampler` to use
one of your own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Vocabulary:
    """`tag(text)` / `sentence(text)`: True when generated content of that kind is acceptable;
    `agrees(tags, sentence)`, when given: True when a caption sentence written from `tags` agrees with them."""

    name: str
    tag: Callable[[str], bool]
    sentence: Callable[[str], bool]
    agrees: Callable[[Sequence[str], str], bool] | None = None


def shapes_world_agrees(tags: Sequence[str], sentence: str) -> bool:
    """A shapes-world sentence agrees with the tags when the tags name its object (same shape; the same
    colour where both say one) or, for a background sentence, when the tags name that background or none.
    Sentences outside the caption form are left to the vocabulary check."""
    from t2i.world.text import Mention, parse_sentence, parse_tag

    said = parse_sentence(sentence)
    named = [parse_tag(t) for t in tags]
    if isinstance(said, str):
        backgrounds = [n for n in named if isinstance(n, str)]
        return not backgrounds or said in backgrounds
    if isinstance(said, Mention):
        return any(isinstance(n, Mention) and n.shape == said.shape
                   and (n.color is None or said.color is None or n.color == said.color) for n in named)
    return True


def _shapes_world() -> Vocabulary:
    from t2i.world.text import parse_sentence, parse_tag

    return Vocabulary("shapes-world", tag=lambda t: parse_tag(t) is not None,
                      sentence=lambda s: parse_sentence(s) is not None, agrees=shapes_world_agrees)


VOCABULARIES: dict[str, Callable[[], Vocabulary]] = {"shapes-world": _shapes_world}


def vocabulary(name: str | None) -> Vocabulary | None:
    """The vocabulary called `name` (None: no vocabulary, everything is accepted)."""
    if name is None:
        return None
    if name not in VOCABULARIES:
        raise ValueError(f"unknown presample vocabulary {name!r}; known: {', '.join(sorted(VOCABULARIES))}")
    return VOCABULARIES[name]()
