"""Request and result types shared by every layer (pure data, no models).

A `GenerationRequest` is what a user asks for; it round-trips through JSON
(`to_dict` / `from_dict`) so that it can be stored in an image's metadata and
replayed.  `from_dict` treats its input as untrusted: unknown keys, wrong types,
out-of-range numbers and oversized strings raise `RequestError`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from PIL import Image

from t2i.limits import (
    MAX_GUIDANCE,
    MAX_IMAGES,
    MAX_NAME_CHARS,
    MAX_NEW_TOKENS,
    MAX_OPTIONS,
    MAX_PROGRAM_CHARS,
    MAX_PROMPT_CHARS,
    MAX_SEED,
    MAX_SIDE,
    MAX_STEPS,
)
from t2i.text import text_problem

REQUEST_SCHEMA = "t2i.request/1"

# Model options are a flat mapping of scalars: nothing nested, nothing callable.
OptionValue = str | int | float | bool | None


class RequestError(ValueError):
    """A request (from a user, an HTTP body or an image's metadata) is invalid."""


def _check_str(name: str, value: Any, cap: int, allow_none: bool = False) -> str | None:
    if value is None and allow_none:
        return None
    if not isinstance(value, str):
        raise RequestError(f"{name} must be a string, got {type(value).__name__}")
    if len(value) > cap:
        raise RequestError(f"{name} is {len(value)} characters long; the limit is {cap}")
    problem = text_problem(value)
    if problem:
        raise RequestError(f"{name} {problem}")
    return value


def _check_int(name: str, value: Any, lo: int, hi: int, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(f"{name} must be an integer, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise RequestError(f"{name} must be in [{lo}, {hi}], got {value}")
    return value


def _check_float(name: str, value: Any, lo: float, hi: float, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RequestError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or not lo <= value <= hi:
        raise RequestError(f"{name} must be a finite number in [{lo}, {hi}], got {value}")
    return value


def _check_options(name: str, value: Any) -> dict[str, OptionValue]:
    if not isinstance(value, Mapping):
        raise RequestError(f"{name} must be a mapping of names to scalars")
    if len(value) > MAX_OPTIONS:
        raise RequestError(f"{name} has {len(value)} entries; the limit is {MAX_OPTIONS}")
    out: dict[str, OptionValue] = {}
    for k, v in value.items():
        _check_str(f"{name} key", k, 100)
        if isinstance(v, str):
            _check_str(f"{name}[{k!r}]", v, MAX_NAME_CHARS)
        elif isinstance(v, float) and not math.isfinite(v):
            raise RequestError(f"{name}[{k!r}] must be finite")
        elif not (v is None or isinstance(v, bool | int | float | str)):
            raise RequestError(f"{name}[{k!r}] must be a string, number, boolean or null")
        out[k] = v
    return out


def _from_mapping(cls: type, data: Any, where: str) -> dict[str, Any]:
    """Return data's fields for `cls`, refusing anything that is not one of them."""
    if not isinstance(data, Mapping):
        raise RequestError(f"{where} must be a JSON object")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise RequestError(f"{where} has unknown keys: {', '.join(map(str, unknown[:10]))}")
    return dict(data)


@dataclass(frozen=True)
class PresampleOptions:
    """TIPO-style prompt expansion before generation (Yeh et al. 2024, "TIPO"; reference code KohakuBlueleaf/KGen)."""

    enabled: bool = False
    model: str | None = None  # registry name, hub id or local path; None = the default presampler
    seed: int | None = None  # None = the generation seed
    # LLM sampling; None = the model's own (presample.json "sampling", else the reference's 0.35 / 0.95 / 60 / 0.1)
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    target: str | None = None  # length target name, e.g. "short", "long", "auto"; None = model default
    min_p: float | None = None
    format: str | None = None  # output format preset or template; None = model default

    def validate(self) -> PresampleOptions:
        if not isinstance(self.enabled, bool):
            raise RequestError("presample.enabled must be true or false")
        _check_str("presample.model", self.model, MAX_NAME_CHARS, allow_none=True)
        _check_int("presample.seed", self.seed, 0, MAX_SEED, allow_none=True)
        _check_float("presample.temperature", self.temperature, 0.0, 10.0, allow_none=True)
        _check_float("presample.top_p", self.top_p, 0.0, 1.0, allow_none=True)
        _check_int("presample.top_k", self.top_k, 0, 100_000, allow_none=True)
        _check_str("presample.target", self.target, 100, allow_none=True)
        _check_float("presample.min_p", self.min_p, 0.0, 1.0, allow_none=True)
        _check_str("presample.format", self.format, 1_000, allow_none=True)
        return self


@dataclass(frozen=True)
class ComposeOptions:
    """Omost-style composition: an LLM writes a Canvas program, the renderer follows it."""

    # True composes, False draws plain, "auto" decides by the prompt's class, None: the model's default
    # (`t2i.composition_plan`); a request is decided (True or False) before it is drawn and stored
    enabled: bool | str | None = None
    model: str | None = None  # LLM registry name, hub id or local path; None = the default composer
    seed: int | None = None  # None = 12345, the reference's default
    temperature: float = 0.6
    top_p: float = 0.9
    max_new_tokens: int = 4096
    program: str | None = None  # a Canvas program given directly (skips the LLM); parsed, never executed
    decision: str | None = None  # why it was or was not composed (set when the request is decided)

    def validate(self) -> ComposeOptions:
        if not (self.enabled is None or isinstance(self.enabled, bool) or self.enabled == "auto"):
            raise RequestError(f"compose.enabled must be true, false, \"auto\" or null, got {self.enabled!r}")
        _check_str("compose.decision", self.decision, 1_000, allow_none=True)
        _check_str("compose.model", self.model, MAX_NAME_CHARS, allow_none=True)
        _check_int("compose.seed", self.seed, 0, MAX_SEED, allow_none=True)
        _check_float("compose.temperature", self.temperature, 0.0, 10.0)
        _check_float("compose.top_p", self.top_p, 0.0, 1.0)
        _check_int("compose.max_new_tokens", self.max_new_tokens, 1, MAX_NEW_TOKENS)
        _check_str("compose.program", self.program, MAX_PROGRAM_CHARS, allow_none=True)
        return self


@dataclass(frozen=True)
class GenerationRequest:
    """What to generate.  `None` for steps/guidance/size/sampler means "the model's default"."""

    prompt: str
    negative_prompt: str | None = None  # None = the model's default negative prompt
    model: str = "shapes-xl"
    seed: int | None = None  # None = pick one at run time; the result records it
    steps: int | None = None
    guidance: float | None = None
    width: int | None = None
    height: int | None = None
    sampler: str | None = None
    n_images: int = 1
    model_options: Mapping[str, OptionValue] = field(default_factory=dict)
    presample: PresampleOptions = field(default_factory=PresampleOptions)
    compose: ComposeOptions = field(default_factory=ComposeOptions)

    def validate(self) -> GenerationRequest:
        """Check every field; return self so calls chain.  Raises RequestError."""
        _check_str("prompt", self.prompt, MAX_PROMPT_CHARS)
        _check_str("negative_prompt", self.negative_prompt, MAX_PROMPT_CHARS, allow_none=True)
        _check_str("model", self.model, MAX_NAME_CHARS)
        if not self.model.strip():
            raise RequestError("model must not be empty")
        _check_int("seed", self.seed, 0, MAX_SEED, allow_none=True)
        _check_int("steps", self.steps, 1, MAX_STEPS, allow_none=True)
        _check_float("guidance", self.guidance, 0.0, MAX_GUIDANCE, allow_none=True)
        _check_int("width", self.width, 8, MAX_SIDE, allow_none=True)
        _check_int("height", self.height, 8, MAX_SIDE, allow_none=True)
        _check_str("sampler", self.sampler, 100, allow_none=True)
        _check_int("n_images", self.n_images, 1, MAX_IMAGES)
        if self.seed is not None and self.seed + self.n_images - 1 > MAX_SEED:
            raise RequestError(f"seed {self.seed} with {self.n_images} images: image k uses seed + k, and the "
                               f"last would pass {MAX_SEED}; choose a smaller seed")
        _check_options("model_options", self.model_options)
        if not isinstance(self.presample, PresampleOptions):
            raise RequestError("presample must be PresampleOptions")
        if not isinstance(self.compose, ComposeOptions):
            raise RequestError("compose must be ComposeOptions")
        self.presample.validate()
        self.compose.validate()
        return self

    def with_(self, **changes: Any) -> GenerationRequest:
        """A copy with some fields changed, validated."""
        return replace(self, **changes).validate()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict carrying the schema version."""
        d = asdict(self)
        d["model_options"] = dict(self.model_options)
        return {"schema": REQUEST_SCHEMA, **d}

    @classmethod
    def from_dict(cls, data: Any) -> GenerationRequest:
        """Build and validate a request from untrusted JSON data."""
        if not isinstance(data, Mapping):
            raise RequestError("a request must be a JSON object")
        data = dict(data)
        schema = data.pop("schema", None)
        if schema != REQUEST_SCHEMA:
            raise RequestError(f"unsupported request schema {schema!r}; expected {REQUEST_SCHEMA!r}")
        d = _from_mapping(cls, data, "request")
        if "prompt" not in d:
            raise RequestError("request has no prompt")
        if "presample" in d:
            d["presample"] = PresampleOptions(**_from_mapping(PresampleOptions, d["presample"], "presample"))
        if "compose" in d:
            d["compose"] = ComposeOptions(**_from_mapping(ComposeOptions, d["compose"], "compose"))
        if "model_options" in d:
            d["model_options"] = _check_options("model_options", d["model_options"])
        return cls(**d).validate()


@dataclass
class GenerationResult:
    """What a backend returns: images with their seeds, the prompts actually used, timings.

    `request` is the resolved request: model defaults filled in and the seed fixed, so
    that replaying it reproduces the images.
    """

    request: GenerationRequest
    images: list[Image.Image]
    seeds: list[int]
    prompt_used: str
    negative_prompt_used: str
    presampled_prompt: str | None = None
    canvas_program: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    device: str | None = None  # what the backend ran on ("cpu", "cuda:0"), recorded in the metadata
    dtype: str | None = None  # its weights' dtype ("float32", "float16")

    def __post_init__(self) -> None:
        if len(self.images) != len(self.seeds):
            raise ValueError(f"{len(self.images)} images but {len(self.seeds)} seeds")
