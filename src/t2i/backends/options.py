"""Backend option schemas: what each `--option KEY=VALUE` of an image backend may hold.

A backend declares its options as `OptionSpec`s (`make_schema`) and passes every option mapping it gets
through `validate_options` before using it: at load and at every call.  Values arrive as str, int, float,
bool or None (the command line JSON-parses `VALUE` when it can and keeps the text otherwise; an image's
metadata holds JSON scalars), so a number may come as text ("0.5") and a boolean as "true".  Anything else
(an unknown key, a wrong type, a boolean where a number is expected, NaN or infinity, a value out of range,
a text outside its form) is a `RequestError` naming the option, the value and what is allowed.

`when` keeps the options that only mean something when the model is loaded (device, dtype, ...) apart from
the per-call ones; `file` marks options that name a file or a folder on this machine (the caller refuses
those when they come from an image's metadata: `file_options`).

This is the option half of the backend contract (`t2i.backends.base` holds the rest): a backend's `schema`
is made here, `validate_at_load` reads its load options, `call_options` the options of each call.  Options
t2i no longer has are listed in `REMOVED_OPTIONS`; naming one is a one-line RequestError saying what
replaced it (`check_removed`), so an old image's request fails clearly instead of as an unknown option.

Pure data: nothing here imports a model library.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from t2i.limits import MAX_NAME_CHARS
from t2i.types import RequestError

OptionType = Literal["int", "float", "bool", "str", "choice"]
When = Literal["load", "call"]
TYPES: tuple[str, ...] = ("int", "float", "bool", "str", "choice")
TRUE_WORDS = ("true", "yes", "on")
FALSE_WORDS = ("false", "no", "off")
DEVICE_FORMS = "auto, cpu, cuda, cuda:N (N a GPU index) or mps"
_DEVICE = re.compile(r"(auto|cpu|cuda|mps|cuda:\d{1,3})")


@dataclass(frozen=True)
class OptionSpec:
    """One backend option.

    type: int | float (a number in [lo, hi]; (lo, hi] with lo_open) | bool | choice (one of `choices`) |
    str (text of at most MAX_NAME_CHARS characters, read by `check` when the option has a form).
    check: for str options with a form: takes the value (any type) and returns it normalised, or raises
    ValueError; `form` then says in words what is allowed (shown in errors and help).
    also: values outside [lo, hi] that are allowed too (e.g. 0 meaning off).
    when: "load" (read once, when the model is loaded) or "call" (read at every generation).
    file: the value names a file or folder on this machine (refused from an image's metadata).
    """

    name: str
    type: OptionType
    help: str = ""
    when: When = "call"
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    choices: tuple[str, ...] = ()
    also: tuple[float, ...] = ()
    file: bool = False
    form: str = ""
    check: Callable[[Any], Any] | None = None

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(f"option {self.name}: type must be one of {', '.join(TYPES)}, got {self.type!r}")
        if self.when not in ("load", "call"):
            raise ValueError(f"option {self.name}: when must be load or call, got {self.when!r}")
        if self.type == "choice" and not self.choices:
            raise ValueError(f"option {self.name}: a choice needs choices")
        if (self.lo is not None or self.hi is not None) and self.type not in ("int", "float"):
            raise ValueError(f"option {self.name}: only numbers have a range")
        if self.lo is not None and self.hi is not None and self.lo > self.hi:
            raise ValueError(f"option {self.name}: lo {self.lo} is above hi {self.hi}")

    @property
    def numeric(self) -> bool:
        return self.type in ("int", "float")

    def allowed(self) -> str:
        """What the option takes, in words: 'a number in (0, 1]', 'one of omost, couple, off', ..."""
        if self.form:
            return self.form
        if self.type == "bool":
            return "true or false"
        if self.type == "choice":
            return f"one of {', '.join(self.choices)}"
        if self.type == "str":
            return f"text of at most {MAX_NAME_CHARS} characters"
        what = "a whole number" if self.type == "int" else "a number"
        rng = self.range_text()
        extra = f" (or {', '.join(_num(v) for v in self.also)})" if self.also else ""
        return f"{what} in {rng}{extra}" if rng else what

    def range_text(self) -> str:
        if self.lo is None and self.hi is None:
            return ""
        lo = "-inf" if self.lo is None else _num(self.lo)
        hi = "inf" if self.hi is None else _num(self.hi)
        return f"{'(' if self.lo_open else '['}{lo}, {hi}]"

    def describe(self) -> str:
        """One line for help texts: 'name=<allowed> [load-time] [a path]: help'."""
        tags = [t for t, on in (("load-time", self.when == "load"), ("a local path", self.file)) if on]
        return f"{self.name}: {self.allowed()}" + (f" [{', '.join(tags)}]" if tags else "") + \
            (f". {self.help}" if self.help else "")


Schema = Mapping[str, OptionSpec]


def make_schema(*specs: OptionSpec) -> dict[str, OptionSpec]:
    """A name -> spec mapping (names must be unique)."""
    out: dict[str, OptionSpec] = {}
    for spec in specs:
        if spec.name in out:
            raise ValueError(f"option {spec.name} is declared twice")
        out[spec.name] = spec
    return out


def load_options(schema: Schema) -> frozenset[str]:
    """Names of the options read when the model is loaded."""
    return frozenset(n for n, s in schema.items() if s.when == "load")


def file_options(schema: Schema) -> frozenset[str]:
    """Names of the options that name a file or folder on this machine."""
    return frozenset(n for n, s in schema.items() if s.file)


@dataclass(frozen=True)
class Removed:
    """An option (`value` None) or one value of an option that t2i no longer has, and what to use instead."""

    option: str
    value: str | None
    last: str  # the last t2i version that had it
    instead: str  # what replaced it, in words

    def message(self) -> str:
        what = f"option {self.option}" if self.value is None else f"{self.option} {self.value!r}"
        return f"{what} was removed after t2i {self.last}: {self.instead}"


# Options and option values that requests written by older versions of t2i (an image's metadata) may still
# name.  The command line and the server show `Removed.message()` as their one-line error.
REMOVED_OPTIONS: tuple[Removed, ...] = (
    Removed("zero_pooled", None, "0.1.0", "drop it (it zeroed the pooled text embedding, a diagnostic; nothing "
            "replaces it)"),
    Removed("region_text", "local-pooled", "0.1.0", "use 'local'"),
    Removed("region_text", "local-outside", "0.1.0", "use 'local'"),
)


def removed_option(options: Mapping[str, Any]) -> Removed | None:
    """The first entry of REMOVED_OPTIONS that `options` names: a removed option with any value, or a removed
    value of an option; None when it names none."""
    if not isinstance(options, Mapping):
        return None
    for entry in REMOVED_OPTIONS:
        if entry.option in options and (entry.value is None or options[entry.option] == entry.value):
            return entry
    return None


def check_removed(options: Mapping[str, Any]) -> None:
    """RequestError with `Removed.message()` when `options` names a removed option or value."""
    entry = removed_option(options)
    if entry is not None:
        raise RequestError(entry.message())


def _num(v: float) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _fail(spec: OptionSpec, value: Any, where: str, what: str | None = None) -> RequestError:
    what = what or f"must be {spec.allowed()}"
    if isinstance(value, str) and len(value) > 80:
        value = value[:80] + "..."
    return RequestError(f"{where} option {spec.name} {what}, got {value!r}")


def _number(spec: OptionSpec, value: Any, where: str) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _fail(spec, value, where)
    if isinstance(value, str):
        try:
            number: float | int = int(value) if spec.type == "int" and re.fullmatch(r"\s*[-+]?\d+\s*", value) \
                else float(value)
        except ValueError:
            raise _fail(spec, value, where) from None
    else:
        number = value
    if isinstance(number, float):
        if not math.isfinite(number):
            raise _fail(spec, value, where, f"must be a finite number in {spec.range_text() or '(-inf, inf)'}")
        if spec.type == "int":
            if not number.is_integer():
                raise _fail(spec, value, where)
            number = int(number)
    if number in spec.also:
        return number
    below = spec.lo is not None and (number <= spec.lo if spec.lo_open else number < spec.lo)
    above = spec.hi is not None and number > spec.hi
    if below or above:
        extra = f" (or {', '.join(_num(v) for v in spec.also)})" if spec.also else ""
        raise _fail(spec, value, where, f"must be in {spec.range_text()}{extra}")
    return float(number) if spec.type == "float" else number


def _bool(spec: OptionSpec, value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if type(value) is int and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in TRUE_WORDS + FALSE_WORDS:
        return value.strip().lower() in TRUE_WORDS
    raise _fail(spec, value, where)


def validate_value(spec: OptionSpec, value: Any, where: str) -> Any:
    """`value` checked and normalised for `spec` (int, float, bool or str); RequestError otherwise."""
    if spec.numeric:
        return _number(spec, value, where)
    if spec.type == "bool":
        return _bool(spec, value, where)
    if spec.check is not None:
        try:
            return spec.check(value)
        except (TypeError, ValueError) as e:
            detail = f" ({e})" if str(e) else ""
            raise _fail(spec, value, where, f"must be {spec.allowed()}{detail}") from None
    if not isinstance(value, str):
        raise _fail(spec, value, where)
    if spec.type == "choice":
        if value not in spec.choices:
            raise _fail(spec, value, where)
        return value
    if not value or len(value) > MAX_NAME_CHARS or "\x00" in value:
        raise _fail(spec, value, where)
    return value


def validate_options(schema: Schema, options: Mapping[str, Any], where: str) -> dict[str, Any]:
    """`options` with every value checked and normalised by its spec; None values (meaning "the default") are
    dropped.  `where` names the backend in errors ("SDXL", "Paella").  Raises RequestError; for an option or
    value t2i no longer has (REMOVED_OPTIONS), one that says what replaced it."""
    if not isinstance(options, Mapping):
        raise RequestError(f"{where} options must be a mapping of names to values, got {type(options).__name__}")
    check_removed(options)
    unknown = sorted(str(k) for k in options if k not in schema)
    if unknown:
        raise RequestError(f"unknown {where} options {unknown} (known: {', '.join(sorted(schema))})")
    return {k: validate_value(schema[k], v, where) for k, v in options.items() if v is not None}


def validate_at_load(schema: Schema, options: Mapping[str, Any], where: str) -> dict[str, Any]:
    """validate_options for a backend's load: an unknown key or a bad load-time value is a ModelError (the model
    cannot be loaded so); a bad per-call value stays a RequestError (the request is wrong, whenever it is seen)."""
    from t2i.registry import ModelError

    if not isinstance(options, Mapping):
        raise ModelError(f"{where} options must be a mapping of names to values, got {type(options).__name__}")
    check_removed(options)  # an old request's option: the request's fault (RequestError), not the model's
    try:
        validate_options(schema, {k: v for k, v in options.items() if k not in schema or schema[k].when == "load"},
                         where)
    except RequestError as e:
        raise ModelError(str(e)) from e
    return validate_options(schema, options, where)


def check_loaded(schema: Schema, loaded: Mapping[str, Any], requested: Mapping[str, Any], where: str,
                 same: Callable[[str, Any, Any], bool] | None = None) -> None:
    """Refuse a call whose load-time options differ from those the model was loaded with (they would be
    ignored).  `loaded`, `requested`: validated options; `same(name, requested, loaded)` may widen equality."""
    for name in sorted(load_options(schema) & set(requested)):
        want, have = requested[name], loaded.get(name)
        if want == have or (want is False and have is None):  # a boolean left out is false
            continue
        if not (same is not None and same(name, want, have)):
            raise RequestError(f"{where} option {name} is read when the model is loaded: this one was loaded with "
                               f"{name}={have!r}, the call asks for {want!r}; load the model again with it")


def call_options(schema: Schema, loaded: Mapping[str, Any], requested: Mapping[str, Any], where: str,
                 same: Callable[[str, Any, Any], bool] | None = None) -> dict[str, Any]:
    """The options one call runs with: `requested` (a request's model_options) validated, its load-time options
    checked against `loaded` (the validated options the model was loaded with, `check_loaded`), laid over
    `loaded` key by key.  Raises RequestError."""
    asked = validate_options(schema, requested, where)
    check_loaded(schema, loaded, asked, where, same)
    return {**loaded, **asked}


def same_device(device: str, asked: Any) -> bool:
    """Whether a call's validated `device` option `asked` names `device`, the one a model was loaded on: auto,
    the same name, or cuda and cuda:0 for each other."""
    cuda0 = {"cuda", "cuda:0"}
    return asked in {device, "auto"} or (device in cuda0 and asked in cuda0)


# ---------------------------------------------------------------------------- forms shared by the backends

def check_device(value: Any) -> str:
    """A device name: auto, cpu, cuda, cuda:N or mps (not meta: its tensors hold no data)."""
    if not isinstance(value, str) or not _DEVICE.fullmatch(value):
        raise ValueError("")
    return value


def check_path(value: Any) -> str:
    """A local path or hub id: non-empty text, no NUL, at most MAX_NAME_CHARS characters."""
    if not isinstance(value, str) or not value.strip() or "\x00" in value or len(value) > MAX_NAME_CHARS:
        raise ValueError("")
    return value


def device_spec(help_text: str = "where the model runs; auto: CUDA when there is one, else the CPU") -> OptionSpec:
    return OptionSpec("device", "str", help_text, when="load", form=DEVICE_FORMS, check=check_device)


def resolve_device(device: str) -> str:
    """A validated device option (check_device) as the device to load on: auto -> cuda when torch sees CUDA,
    else cpu.  ModelError when the device asked for is not there."""
    import torch

    from t2i.registry import ModelError

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ModelError(f"device {device} was asked for but CUDA is not available")
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ModelError(f"device {device}: torch sees {torch.cuda.device_count()} CUDA device(s), "
                             f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    if device == "mps" and not torch.backends.mps.is_available():
        raise ModelError("device mps was asked for but torch sees no MPS (Apple GPU) device")
    return device
