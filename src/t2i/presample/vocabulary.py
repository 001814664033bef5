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

This module knows no particular world: the caller maps names to vocabularies (`t2i.stages.VOCABULARIES`
holds shapes-world, built from `t2i.world.text`) and passes a `Vocabulary` object to `Presampler`; pass
one of your own the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Vocabulary:
    """`tag(text)` / `sentence(text)`: True when generated content of that kind is acceptable;
    `agrees(tags, sentence)`, when given: True when a caption sentence written from `tags` agrees with them."""

    name: str
    tag: Callable[[str], bool]
    sentence: Callable[[str], bool]
    agrees: Callable[[Sequence[str], str], bool] | None = None


def vocabulary(name: str | None, known: Mapping[str, Callable[[], Vocabulary]]) -> Vocabulary | None:
    """The vocabulary called `name` from `known` (name -> factory); None: no vocabulary, everything is
    accepted."""
    if name is None:
        return None
    if name not in known:
        raise ValueError(f"unknown presample vocabulary {name!r}; known: {', '.join(sorted(known))}")
    return known[name]()
