"""Output format templates (spec-tipo.md): placeholders filled from the expansion's fields."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

PLACEHOLDERS = ("special", "characters", "copyrights", "artist", "general", "quality", "meta", "rating",
                "extended", "generated")
_TAGS = "<|special|>, <|characters|>, <|copyrights|>, <|artist|>, <|general|>"
_TAIL = "<|quality|>, <|meta|>, <|rating|>"
FORMATS = {
    "tag only": f"{_TAGS}, {_TAIL}",
    "NL only": "<|extended|>",
    "both, tag first": f"{_TAGS}, <|extended|>, {_TAIL}",
    "both, NL first": f"<|extended|>, {_TAGS}, {_TAIL}",
    "both + generated NL": f"{_TAGS}, <|extended|>, <|generated|>, {_TAIL}",
}
_PLACEHOLDER = re.compile(r"<\|([a-z_]+)\|>")


def uses_nl(template: str) -> bool:
    """Whether a format (preset name or template) shows natural language; when it does not, the extra
    caption-writing operation of the plan is not wanted (spec-tipo.md, operation plan)."""
    template = FORMATS.get(template, template)
    return "<|extended|>" in template or "<|generated|>" in template


def apply_format(template: str, values: Mapping[str, str | Sequence[str]]) -> str:
    """Fill a template; an empty placeholder goes with its trailing comma; `extended` falls back to
    `generated`; unknown placeholders are an error (a typo would otherwise vanish silently)."""
    template = FORMATS.get(template, template)
    unknown = sorted({m for m in _PLACEHOLDER.findall(template)} - set(PLACEHOLDERS))
    if unknown:
        raise ValueError(f"unknown placeholder(s) {', '.join(unknown)} (known: {', '.join(PLACEHOLDERS)})")

    def text(name: str) -> str:
        v = values.get(name, "")
        return ", ".join(x for x in v if x) if not isinstance(v, str) else v.strip()

    filled = {n: text(n) for n in PLACEHOLDERS}
    if not filled["extended"]:
        filled["extended"] = filled["generated"]
        if "<|generated|>" in template:
            filled["generated"] = ""
    out = template
    for name, value in filled.items():
        if value:
            out = out.replace(f"<|{name}|>", value)
        else:
            out = re.sub(rf"<\|{name}\|>\s*,?", "", out)
    out = re.sub(r"\.\s*,", ".", out)  # "sentence., tag" -> "sentence. tag"
    out = re.sub(r",\s*,", ",", out)
    out = re.sub(r"[ \t]+", " ", out)
    out = re.sub(r"\s*\n\s*", "\n", out)
    return out.strip().strip(",").strip()
