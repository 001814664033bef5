"""What a TIPO model is given at inference (KGen's `apply_tipo_prompt`), and the operation plan.

    meta: ...                       <- non-empty items, in META_KEYS order, then aspect_ratio
    target: <|long|> <|tag_to_long|> <|gen_meta|>
    tag: 1girl, long hair           <- fields in task order; NL goes to short: if the task names short
    long:                           <- expand=False: the model writes this field
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

LENGTHS = ("very_short", "short", "long", "very_long")
TASKS = ("tag_to_long", "long_to_tag", "short_to_tag", "short_to_long", "tag_to_short_to_long",
         "short_to_tag_to_long", "short_to_long_to_tag")
META_KEYS = ("meta", "rating", "artist", "characters", "copyrights", "quality")
FIELDS = ("tag", "short", "long")


def format_aspect_ratio(width: int, height: int) -> str:
    """width/height with one decimal, as the reference writes it."""
    if width <= 0 or height <= 0:
        raise ValueError(f"width and height must be positive, got {width}x{height}")
    return f"{width / height:.1f}"


def build_request(*, tags: Sequence[str] = (), nl: str = "", meta: Mapping[str, Sequence[str]] | None = None,
                  aspect_ratio: str | None = None, target: str = "long", task: str | None = None,
                  gen_meta: bool = False, expand: bool = True) -> str:
    """The TIPO request text.

    tags: special + general tags (the `tag:` field); nl: natural language (in `short:` when the task
    names short, else in `long:`); meta: {meta, rating, artist, characters, copyrights, quality: [tags]};
    target: a length bucket; task: None (continue tags) or one of TASKS; expand: True = the model
    continues the last field, False = the request ends with `lastkey:` and the model writes that field
    (when `nl` already fills that field, as on a retry, the model continues it instead: a second
    `lastkey:` would start a block the parser ignores, since the first block of a key wins).
    """
    if target not in LENGTHS:
        raise ValueError(f"target must be one of {', '.join(LENGTHS)}, got {target!r}")
    if task is not None and task not in TASKS:
        raise ValueError(f"task must be None or one of {', '.join(TASKS)}, got {task!r}")
    meta = dict(meta or {})
    unknown = sorted(set(meta) - set(META_KEYS))
    if unknown:
        raise ValueError(f"unknown meta key(s) {', '.join(unknown)} (known: {', '.join(META_KEYS)})")
    lines = []
    for key in META_KEYS:
        value = ", ".join(t.strip() for t in meta.get(key, ()) if t.strip())
        if value:
            lines.append(f"{key}: {value}")
    if aspect_ratio is not None:
        lines.append(f"aspect_ratio: {aspect_ratio}")  # underscore: as used at inference
    head = f"<|{target}|>" + (f" <|{task}|>" if task else "") + (" <|gen_meta|>" if gen_meta else "")
    lines.append(f"target: {head}")
    order = task.split("_to_") if task else ["tag"]
    content = {"tag": ", ".join(t.strip() for t in tags if t.strip())}
    if nl.strip():
        content["short" if task and "short" in order else "long"] = nl.strip()
    if not expand and content.get(order[-1]):
        expand = True  # the last field already has text (a retry of a caption): the model continues it
    text = "\n".join(lines) + "\n"
    for i, key in enumerate(order):
        value = content.get(key, "")
        if value:
            text += f"{key}: {value}\n"
        elif i < len(order) - 1:
            text += f"{key}: \n"
    return text.strip() if expand else text + f"{order[-1]}:"


@dataclass(frozen=True)
class Operation:
    """One model call: a task (None = continue tags), its length bucket, and whether it expands."""

    task: str | None
    target: str
    expand: bool

    @property
    def writes(self) -> str:
        """The field this operation ends with: 'tag', 'short' or 'long'."""
        return self.task.split("_to_")[-1] if self.task else "tag"


def plan_operations(has_tags: bool, has_nl: bool, tag_target: str = "long", nl_target: str = "long",
                    want_nl: bool = True) -> list[Operation]:
    """KGen's operation plan (`parse_tipo_request`, tags first); each operation's parsed output feeds the
    next one."""
    if not has_nl:  # nothing, or tags only: continue the tags, then (optionally) write a long caption
        ops = [Operation(None, tag_target, True)]
        extra = Operation("tag_to_long", nl_target, not has_tags)
    elif not has_tags:  # NL only
        ops = [Operation("long_to_tag", tag_target, True)]
        extra = Operation("short_to_tag_to_long", nl_target, False)
    else:  # both
        ops = [Operation("short_to_tag", tag_target, True), Operation("tag_to_long", nl_target, True)]
        extra = Operation("short_to_tag_to_long", nl_target, False)
    return [*ops, extra] if want_nl else ops
