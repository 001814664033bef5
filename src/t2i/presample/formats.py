"""Output format templates: placeholders filled from the expansion's fields.

The presets lay the placeholders out in the order of KGen's `TIPO_DEFAULT_FORMAT` (on one line: a
newline is whitespace to the text encoders, so the blank lines of KGen's presets change nothing).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

PLACEHOLDERS = ("special", "characters", "copyrights", "artist", "general", "quality", "meta", "rating",
                "extended", "generated")
_HEAD = "<|special|>, <|characters|>, <|copyrights|>, <|artist|>"
_TAIL = "<|quality|>, <|meta|>, <|rating|>"
FORMATS = {
    "tag only": f"{_HEAD}, <|general|>, {_TAIL}",
    "NL only": "<|extended|>",
    "both, tag first": f"{_HEAD}, <|general|>, <|extended|>, {_TAIL}",
    "both, NL first": f"{_HEAD}, <|extended|>, <|general|>, {_TAIL}",
    "both + generated NL": f"{_HEAD}, <|generated|>, <|general|>, <|extended|>, {_TAIL}",
}
_PLACEHOLDER = re.compile(r"<\|([a-z_]+)\|>")


def uses_nl(template: str) -> bool:
    """Whether a format (preset name or template) shows natural language."""
    template = FORMATS.get(template, template)
    return "<|extended|>" in template or "<|generated|>" in template


def wants_caption(template: str, has_nl: bool) -> bool:
    """Whether the plan's extra caption-writing operation can reach the prompt, as z-tipo-extension decides
    it: with natural language given, `<|extended|>` shows the user's text extended and only `<|generated|>`
    shows a fresh caption; without it, `<|extended|>` falls back to the caption, so either placeholder."""
    template = FORMATS.get(template, template)
    return "<|generated|>" in template or (not has_nl and "<|extended|>" in template)


def apply_format(template: str, values: Mapping[str, str | Sequence[str]]) -> str:
    """Fill a template; an empty placeholder goes with its trailing comma; `extended` falls back to
    `generated` (which then is not written a second time, where KGen writes the caption twice); unknown
    placeholders are an error (a typo would otherwise vanish silently)."""
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
