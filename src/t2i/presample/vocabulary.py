"""What generated content a presampling model may add: a vocabulary the model folder names.

A model trained on a closed world (tipo-tiny on shapes world) should only ever add text of that world;
sampling at temperature 1 occasionally writes a sentence outside it ("a white yellow circle").  Its
`presample.json` names a vocabulary:

    {"vocabulary": "shapes-world", ...}

and the runner drops every generated tag or sentence the vocabulary rejects (the user's own text is
never checked or dropped), retries like any other shortfall, and says how many it dropped.  Models
without the key (the released TIPO models) take everything, as the reference does.

Vocabularies are looked up by name in `VOCABULARIES`; pass a `Vocabulary` object to `Presampler` to use
one of your own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Vocabulary:
    """`tag(text)` / `sentence(text)`: True when generated content of that kind is acceptable."""

    name: str
    tag: Callable[[str], bool]
    sentence: Callable[[str], bool]


def _shapes_world() -> Vocabulary:
    from t2i.world.text import parse_sentence, parse_tag

    return Vocabulary("shapes-world", tag=lambda t: parse_tag(t) is not None,
                      sentence=lambda s: parse_sentence(s) is not None)


VOCABULARIES: dict[str, Callable[[], Vocabulary]] = {"shapes-world": _shapes_world}


def vocabulary(name: str | None) -> Vocabulary | None:
    """The vocabulary called `name` (None: no vocabulary, everything is accepted)."""
    if name is None:
        return None
    if name not in VOCABULARIES:
        raise ValueError(f"unknown presample vocabulary {name!r}; known: {', '.join(sorted(VOCABULARIES))}")
    return VOCABULARIES[name]()
