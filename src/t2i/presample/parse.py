"""Reading what a TIPO model wrote (KGen's `parse_tipo_result`, without its character-stripping).

BOS/EOS are removed as whole tokens (the reference strips *characters* and so turns a final
`thighhighs` into `thighhigh`); the text is split into `key: value` blocks where a key is one of the
known field names at a line start, and other lines continue the previous block; the first block of a
key wins.  `tag` is split on commas and categorised; `short` becomes `extended`, `long` `generated`;
`<|empty|>` means empty.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from t2i.presample.request import FIELDS, META_KEYS
from t2i.presample.tags import CATEGORIES, TagDatabase, categorize

KEYS = (*FIELDS, *META_KEYS, "aspect_ratio", "target")
_KEY_LINE = re.compile(r"^(" + "|".join(re.escape(k) for k in KEYS) + r")\s*:(.*)$")
_WHOLE_TOKENS = ("<s>", "</s>")
EMPTY = "<|empty|>"


@dataclass(frozen=True)
class TipoOutput:
    """Parsed model output.  `tags` in the order written; `categories` adds the meta lines' tags."""

    tags: list[str] = field(default_factory=list)
    categories: dict[str, list[str]] = field(default_factory=dict)
    extended: str = ""  # the `short:` field
    generated: str = ""  # the `long:` field
    fields: dict[str, str] = field(default_factory=dict)  # every key's raw value


def split_tags(value: str) -> list[str]:
    return [t.strip() for t in value.split(",") if t.strip() and t.strip() != EMPTY]


def parse_output(text: str, db: TagDatabase | None = None) -> TipoOutput:
    """Model output (with or without the request in front) -> TipoOutput."""
    if not isinstance(text, str):
        raise TypeError("model output must be a string")
    for tok in _WHOLE_TOKENS:
        text = text.replace(tok, "")
    fields: dict[str, str] = {}
    key: str | None = None
    parts: list[str] = []

    def close() -> None:
        if key is not None and key not in fields:
            fields[key] = "\n".join(parts).strip()

    for line in text.splitlines():
        m = _KEY_LINE.match(line.strip())
        if m:
            close()
            key, parts = m.group(1), [m.group(2)]
        elif key is not None:
            parts.append(line)
    close()
    tags = split_tags(fields.get("tag", ""))
    cats = categorize(tags, db)
    for k in META_KEYS:  # tags the model wrote on meta lines (gen_meta)
        if k in fields:
            cat = k if k in CATEGORIES else "general"
            cats[cat] = _dedupe(cats[cat] + split_tags(fields[k]))
    def nl(k: str) -> str:
        v = fields.get(k, "").strip()
        return "" if v in ("", EMPTY) else v.replace(EMPTY, "").strip()

    return TipoOutput(tags, cats, nl("short"), nl("long"), fields)


def _dedupe(items: list[str]) -> list[str]:
    seen: set[str] = set()
    return [x for x in items if not (x in seen or seen.add(x))]
