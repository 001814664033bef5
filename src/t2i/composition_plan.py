"""Whether a request is composed, and with which settings: the model's per-class defaults applied.

A model's defaults (its folder's `t2i_defaults.json` for a shipped model, its registry entry for a hub
model) may hold a `compose` block:

    "compose": {"default": "auto", "composer": "omost-tiny",
                "classes": {"single": {"auto": false},
                            "relation": {"auto": true, "composed": {"options": {"region_text": "local"}}},
                            "count": {"auto": false, "composed": {"options": {"region_text": "local"}}}}}

`default` is the mode a request that says nothing gets ("auto" or off); under "auto" a prompt of class C
(`t2i.prompt_class`) is composed when `classes[C].auto` is true, which the model's suite figures decide;
`composed` holds the settings used whenever a prompt of that class is composed (auto or forced), over the
model's plain defaults and under what the request sets itself.  A class the block does not name is drawn
with the plain settings.  The decision is written into the request (`compose.enabled` true or false, the
settings in `model_options`, the reason in `compose.decision`), so the image's metadata replays it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from t2i.prompt_class import PROMPT_CLASSES, prompt_class
from t2i.types import GenerationRequest, RequestError

MODES = ("auto", "off")
CLASS_KEYS = {"auto", "composed"}
COMPOSED_KEYS = {"options", "guidance", "steps"}  # what a class may set when composed (request fields)


@dataclass(frozen=True)
class ComposeDefaults:
    """A model's `compose` block, checked."""

    default: str = "off"  # "auto" or "off"
    composer: str | None = None
    auto: Mapping[str, bool] = field(default_factory=dict)  # class -> composed under auto
    composed: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # class -> settings when composed

    @classmethod
    def from_defaults(cls, defaults: Mapping[str, Any], where: str) -> ComposeDefaults:
        """The `compose` block of a model's defaults (none: composition off unless asked for).  A malformed
        block raises ValueError naming `where`."""
        block = defaults.get("compose")
        if block is None:
            return cls()
        if not isinstance(block, Mapping) or set(block) - {"default", "composer", "classes"}:
            raise ValueError(f"{where}: compose must be an object with default, composer and classes")
        default = block.get("default", "off")
        if default not in MODES:
            raise ValueError(f"{where}: compose.default must be one of {', '.join(MODES)}, got {default!r}")
        auto, composed = {}, {}
        for name, entry in (block.get("classes") or {}).items():
            if name not in PROMPT_CLASSES or not isinstance(entry, Mapping) or set(entry) - CLASS_KEYS:
                raise ValueError(f"{where}: compose.classes.{name}: a class is one of {', '.join(PROMPT_CLASSES)}"
                                 f" with keys {', '.join(sorted(CLASS_KEYS))}")
            settings = entry.get("composed") or {}
            if not isinstance(settings, Mapping) or set(settings) - COMPOSED_KEYS:
                raise ValueError(f"{where}: compose.classes.{name}.composed may set "
                                 f"{', '.join(sorted(COMPOSED_KEYS))}")
            auto[name], composed[name] = bool(entry.get("auto", False)), dict(settings)
        return cls(default, block.get("composer"), auto, composed)

    @property
    def declared(self) -> bool:
        """The model names a composer: composition can be its default."""
        return self.composer is not None


def may_compose(request: GenerationRequest, defaults: Mapping[str, Any], where: str = "model") -> bool:
    """Whether planning `request` can end in composition (so a composer is worth opening)."""
    mode = request.compose.enabled
    cfg = ComposeDefaults.from_defaults(defaults, where)
    if mode is None:
        mode = cfg.default if cfg.declared else False
    return mode is True or (mode == "auto" and cfg.declared)


def plan_composition(request: GenerationRequest, defaults: Mapping[str, Any],
                     where: str = "model") -> tuple[GenerationRequest, str | None]:
    """`request` with its composition decided: (the request, a warning for the user or None).  The decision
    itself is in the request's `compose.decision`.

    A request already decided (compose.enabled true or false, as in a replayed image) is returned as it is,
    but for a forced one's class settings, which are filled in where the request leaves them open."""
    compose = request.compose
    if compose.enabled is False:
        return request, None
    cfg = ComposeDefaults.from_defaults(defaults, where)
    mode = compose.enabled if compose.enabled is not None else ("auto" if cfg.declared and cfg.default == "auto"
                                                               else False)
    if compose.program is not None:  # a program given is drawn, whatever the mode
        mode = True
    kind = prompt_class(request.prompt)
    if mode is False:
        return request.with_(compose=replace(compose, enabled=False)), None
    if mode == "auto":
        if not cfg.declared:
            note = (f"compose auto: {request.model} declares no composer, so prompts are drawn plain "
                    "(--compose forces composition)")
            return request.with_(compose=replace(compose, enabled=False, decision=note)), note
        if _is_conjunction(request.prompt):
            return request.with_(compose=replace(compose, enabled=False,
                                                 decision="auto: an AND prompt is drawn plain")), None
        if not cfg.auto.get(kind, False):
            decision = f"auto: a {kind} prompt is drawn plain (composing it is not measured to help)"
            return request.with_(compose=replace(compose, enabled=False, decision=decision)), None
    if compose.decision is not None and compose.enabled is True:
        return request, None  # decided before (a replay): its settings are in the request already
    settings = cfg.composed.get(kind, {})
    changes: dict[str, Any] = {k: v for k, v in settings.items() if k != "options" and getattr(request, k) is None}
    options = {**settings.get("options", {}), **request.model_options}
    shown = ", ".join(f"{k}={v}" for k, v in {**{k: v for k, v in settings.items() if k != "options"},
                                               **settings.get("options", {})}.items()) or "the model's own settings"
    how = "auto" if mode == "auto" else "forced"
    decision = f"{how}: a {kind} prompt is composed with {shown}"
    model = compose.model if compose.model is not None else cfg.composer
    request = request.with_(**changes, model_options=options,
                            compose=replace(compose, enabled=True, model=model, decision=decision))
    return request, None


def _is_conjunction(prompt: str) -> bool:
    from t2i.render.conjunction import ConjunctionError, is_conjunction, parse_conjunction

    try:
        return is_conjunction(parse_conjunction(prompt))
    except ConjunctionError as e:
        raise RequestError(str(e)) from e
