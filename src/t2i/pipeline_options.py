"""The pipeline's user options, declared once: rendering, presampling and composition.

`t2i generate`, `t2i eval` and the server's request model are all built from `PIPELINE_OPTIONS`, so a
setting has one name, one type and one meaning everywhere.  Each option says where its value goes in a
`GenerationRequest`: a field of the request, a backend option (`model_options`), or a field of the
presample / compose options.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from t2i.backends.sdxl import REGION_MODES, REGION_TEXTS
from t2i.types import GenerationRequest


@dataclass(frozen=True)
class PipelineOption:
    """One user option.  `name` is the flag without its dashes (`region-text`; the server's field is
    `region_text`); `target` is where the value goes: ("steps",) a request field, ("model_options", "x") a
    backend option, ("presample", "x") / ("compose", "x") a field of those options."""

    name: str
    group: str  # "render", "presample" or "compose"
    target: tuple[str, ...]
    type: type  # bool (a switch), int, float or str
    help: str
    choices: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    metavar: str | None = None
    values: Mapping[str, Any] | None = None  # a choice -> the value the request takes (None: the choice itself)

    @property
    def field(self) -> str:
        """The option's name as a Python identifier (argparse's dest, the server's field)."""
        return self.name.replace("-", "_")


PIPELINE_OPTIONS: tuple[PipelineOption, ...] = (
    PipelineOption("negative", "render", ("negative_prompt",), str, "negative prompt (default: the model's)"),
    PipelineOption("steps", "render", ("steps",), int, "denoising steps (default: the model's)"),
    PipelineOption("guidance", "render", ("guidance",), float, "classifier-free guidance scale (default: the "
                   "model's)", aliases=("cfg",)),
    PipelineOption("sampler", "render", ("sampler",), str, "sampler, e.g. euler, euler_a, dpmpp_2m, ddim "
                   "(default: the model's)"),
    PipelineOption("region-mode", "render", ("model_options", "region_mode"), str,
                   "regional attention: omost (score manipulation, default), couple (masks only), off",
                   choices=REGION_MODES),
    PipelineOption("region-text", "render", ("model_options", "region_text"), str,
                   "what each region reads: omost (global description first, default), own (only its own "
                   "description), local (own, and the global region only its colour and 'background')",
                   choices=REGION_TEXTS),
    PipelineOption("color-start", "render", ("model_options", "init_strength"), float,
                   "with a canvas: start from its coarse colour image at this strength (0-1, e.g. 0.9)",
                   metavar="STRENGTH"),
    PipelineOption("hires", "render", ("model_options", "hires_scale"), float,
                   "hi-res fix: upscale by SCALE (e.g. 1.5), then denoise again at --hires-strength",
                   metavar="SCALE"),
    PipelineOption("hires-strength", "render", ("model_options", "hires_strength"), float,
                   "hi-res fix denoising strength (default 0.5)", metavar="S"),
    PipelineOption("excite", "render", ("model_options", "excite"), str,
                   "Attend-and-Excite (SDXL family): words of the prompt that must appear, comma-separated, auto "
                   "(the shapes-world nouns) or user (those of your prompt, not of its --presample expansion); "
                   "against objects left out of multi-object prompts", metavar="WORDS"),
    PipelineOption("presample", "presample", ("presample", "enabled"), bool,
                   "expand the prompt with a TIPO model first"),
    PipelineOption("presample-model", "presample", ("presample", "model"), str,
                   "presampler: registered name (tipo-tiny, tipo-500m-ft, ...), folder, .gguf file or http(s) URL "
                   "of an OpenAI-compatible server (default tipo-tiny)"),
    PipelineOption("presample-target", "presample", ("presample", "target"), str,
                   "length: very_short, short, long, very_long or auto (default: the model's)"),
    PipelineOption("presample-format", "presample", ("presample", "format"), str,
                   "output format: 'tag only', 'NL only', 'both, tag first', 'both, NL first', 'both + generated "
                   "NL' or a template (default: the model's)"),
    PipelineOption("presample-temperature", "presample", ("presample", "temperature"), float,
                   "LLM sampling temperature (default: the model's; tipo-tiny 1.0, released TIPO 0.35)"),
    PipelineOption("compose", "compose", ("compose", "enabled"), str,
                   "composition: an LLM writes an Omost Canvas program and the regional renderer follows it. auto "
                   "(the default for models that declare a composer) composes the prompts whose class (one "
                   "object, several objects, objects placed by a relation, a count) is measured to gain from it; on "
                   "forces it, with the model's composed settings for the prompt's class; off draws plain",
                   choices=("auto", "on", "off"), values={"auto": "auto", "on": True, "off": False}),
    PipelineOption("compose-model", "compose", ("compose", "model"), str,
                   "composer: registered name, folder, .gguf or http(s) URL (default omost-tiny)"),
)


def options_in(*groups: str) -> tuple[PipelineOption, ...]:
    """The options of `groups`, in declaration order."""
    unknown = set(groups) - {o.group for o in PIPELINE_OPTIONS}
    if unknown:
        raise ValueError(f"no pipeline option group {', '.join(sorted(unknown))}")
    return tuple(o for o in PIPELINE_OPTIONS if o.group in groups)


def apply_options(request: GenerationRequest, values: Mapping[str, Any],
                  model_options: Mapping[str, Any] | None = None) -> GenerationRequest:
    """`request` with the given option values set (keyed by `PipelineOption.field`; None or a missing key
    leaves a setting as it is, and a switch set to False leaves it too), then `model_options` merged over
    the request's backend options.  Validated: a bad value raises RequestError."""
    known = {o.field: o for o in PIPELINE_OPTIONS}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"unknown pipeline option(s) {', '.join(unknown)}")
    top: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {"model_options": dict(model_options or {}), "presample": {},
                                         "compose": {}}
    for name, value in values.items():
        option = known[name]
        if value is None or (option.type is bool and value is False):
            continue
        if option.values is not None:
            value = option.values[value]
        if len(option.target) == 1:
            top[option.target[0]] = value
        else:
            nested[option.target[0]][option.target[1]] = value
    changes = dict(top)
    if nested["model_options"]:
        changes["model_options"] = {**request.model_options, **nested["model_options"]}
    for part in ("presample", "compose"):
        if nested[part]:
            changes[part] = replace(getattr(request, part), **nested[part])
    return request.with_(**changes) if changes else request.validate()
