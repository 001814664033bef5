"""PNG metadata for generated images: an A1111 `parameters` text and an exact `t2i` record.

Every image we write carries two UTF-8 iTXt chunks:

* ``parameters``: the AUTOMATIC1111 "infotext" (prompt, ``Negative prompt: ...`` and one
  ``Key: value, Key: value`` settings line) that other tools display and import;
* ``t2i``: a JSON object with the full `GenerationRequest`, the image's seed and index in
  its batch, the prompts actually used, our extra fields, and what a reproduction needs
  that the A1111 text loses: the t2i, torch, diffusers and transformers versions and the
  device and dtype.  This is the record that `replay_request` uses to reproduce the image.

The A1111 text names the sampler as A1111 does (``Sampler: DPM++ 2M, Schedule type:
Karras``), and `sampler_id` reads A1111's names, old and new, and t2i's ids alike.

`read_image_metadata` treats files as untrusted: sizes are capped before decoding, JSON is
depth-checked, the request goes through `GenerationRequest.from_dict`, and nothing named in
the metadata (a model path, for instance) is ever opened.
"""

from __future__ import annotations

import functools
import json
import re
import sys
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from t2i.text import text_problem
from t2i.types import MAX_SEED, GenerationRequest, RequestError

IMAGE_SCHEMA = "t2i.image/1"

_Fail = Callable[[str], NoReturn]  # reports a problem with the file; never returns

PARAMETERS_KEY = "parameters"
T2I_KEY = "t2i"

MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_PIXELS = 50_000_000
MAX_T2I_CHUNK_BYTES = 256 * 1024
MAX_PARAMETERS_CHUNK_BYTES = 64 * 1024
MAX_JSON_DEPTH = 16
MAX_EXTRAS = 64
MAX_EXTRA_KEY_CHARS = 100
MAX_INDEX = 1_000_000

# Keys of the settings line that `format_parameters` writes itself; extras may not reuse them.
_STANDARD_KEYS = ("Steps", "Sampler", "Schedule type", "CFG scale", "Seed", "Size", "Model")
_PROMPT_KEYS = ("Prompt", "Negative prompt")
_NEGATIVE_PREFIX = "Negative prompt:"

# A settings key: a word character, then word characters, spaces, '-' or '/'.
_KEY = re.compile(r"\w[\w \-/]*")
# One `Key: value` pair, anchored where it is tried.  The value is either a JSON string
# (followed by a comma or the end of the line) or anything up to the next comma.  The
# classes either side of every repetition are disjoint, so matching stays linear.
_PAIR = re.compile(r'\s*(\w[\w \-/]*):\s*("(?:\\.|[^\\"])*"(?=\s*(?:,|$))|[^,]*)\s*(?:,|$)')
_JSON_STRING = re.compile(r'"(?:\\.|[^\\"])*"')
_JSON_BRACKET = re.compile(r"[\[\]{}]")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_T2I_REQUIRED = ("schema", "request", "seed", "index")
# "versions", "device" and "dtype" came later: records without them still read (as None).
_T2I_KEYS = frozenset((*_T2I_REQUIRED, "prompt_used", "negative_prompt_used", "extras", "versions", "device",
                       "dtype"))
# The packages whose versions a record names (None where one is not installed).
VERSION_PACKAGES = ("t2i", "torch", "diffusers", "transformers")
MAX_VERSIONS = 16
MAX_RUNTIME_CHARS = 100  # a version, device or dtype text


class MetadataError(ValueError):
    """An image's metadata is missing, unreadable, oversized or invalid."""


@dataclass(frozen=True)
class ImageMetadata:
    """What `read_image_metadata` found in a PNG.

    `parameters` is the raw A1111 text (or None).  The other fields come from the `t2i`
    chunk and are all None (and `extras` empty) when the image has none, e.g. an image
    written by AUTOMATIC1111 or another tool.  `source` is the file it was read from.
    `versions`, `device` and `dtype` (what the image was drawn with) are None also for
    records written before t2i recorded them.
    """

    parameters: str | None = None
    request: GenerationRequest | None = None
    seed: int | None = None
    index: int | None = None
    prompt_used: str | None = None
    negative_prompt_used: str | None = None
    extras: dict[str, str] = field(default_factory=dict)
    source: str | None = None
    versions: dict[str, str | None] | None = None  # package -> version (None: not installed); None: not recorded
    device: str | None = None
    dtype: str | None = None


# --------------------------------------------------------------------------- A1111 text


def _quote(value: str) -> str:
    """Quote a settings value with JSON when A1111 would (or when spaces would be lost)."""
    if any(c in value for c in ',:\n\r"') or value != value.strip():
        return json.dumps(value, ensure_ascii=False)
    return value


def _unquote(value: str) -> str:
    """Undo `_quote`: a JSON string literal becomes its text, anything else is kept."""
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        try:
            decoded = json.loads(value)
        except ValueError:
            return value
        if isinstance(decoded, str):
            return decoded
    return value


def _format_number(value: float) -> str:
    """7.0 -> '7', 7.5 -> '7.5' (shortest repr, as A1111 shows it)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _check_extras(extras: Mapping[str, str] | None) -> dict[str, str]:
    """Validate extras for writing: at most 64 str -> str entries with A1111-safe keys."""
    if extras is None:
        return {}
    if not isinstance(extras, Mapping):
        raise TypeError("extras must be a mapping of str to str")
    if len(extras) > MAX_EXTRAS:
        raise ValueError(f"extras has {len(extras)} entries; the limit is {MAX_EXTRAS}")
    out: dict[str, str] = {}
    for key, value in extras.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"extras must map str to str, got {key!r}: {type(value).__name__}")
        if len(key) > MAX_EXTRA_KEY_CHARS or not _KEY.fullmatch(key) or key != key.rstrip():
            raise ValueError(
                f"extras key {key!r} is not a valid settings key "
                "(letters, digits, '_', ' ', '-', '/'; starting with a letter or digit)"
            )
        if key in _STANDARD_KEYS or key in _PROMPT_KEYS:
            raise ValueError(f"extras key {key!r} clashes with a standard parameters key")
        out[key] = value
    return out


# --------------------------------------------------------------------------- sampler names

# t2i's sampler ids -> AUTOMATIC1111's sampler name and schedule type (None: A1111's "Automatic", not written).
# `t2i.backends.sdxl.SAMPLERS` holds the ids of the SDXL backend (a test keeps the two in step); Paella's own
# sampler ("paella") has no A1111 counterpart and is written as it is.
A1111_SAMPLERS: dict[str, tuple[str, str | None]] = {
    "euler": ("Euler", None),
    "euler-a": ("Euler a", None),
    # diffusers' trailing timestep spacing is A1111's (and ComfyUI's) "SGM Uniform" schedule
    "euler-trailing": ("Euler", "SGM Uniform"),
    "dpm++2m-karras": ("DPM++ 2M", "Karras"),
    "ddim": ("DDIM", None),
}
# A1111's schedule types: every spelling it accepts (label, name, alias; compared in lower case) -> its name.
_SCHEDULES = {
    spelling.lower(): name
    for name, spellings in {
        "automatic": ("Automatic",),
        "uniform": ("Uniform",),
        "karras": ("Karras",),
        "exponential": ("Exponential",),
        "polyexponential": ("Polyexponential",),
        "sgm_uniform": ("SGM Uniform", "SGMUniform"),
        "kl_optimal": ("KL Optimal",),
        "align_your_steps": ("Align Your Steps",),
        "simple": ("Simple",),
        "normal": ("Normal",),
        "ddim": ("DDIM",),
        "beta": ("Beta",),
    }.items()
    for spelling in (name, *spellings)
}
_SCHEDULE_SUFFIXES = sorted(_SCHEDULES, key=len, reverse=True)  # "sgm uniform" before "uniform"
# A1111's older aliases of the samplers above (its `aliases` lists), in lower case.
_SAMPLER_ALIASES = {
    "k_euler": "euler",
    "k_euler_a": "euler a",
    "k_euler_ancestral": "euler a",
    "k_dpmpp_2m": "dpm++ 2m",
    "k_dpmpp_2m_ka": "dpm++ 2m karras",
}
# The schedule an A1111 sampler runs when its schedule type is "Automatic" (A1111 1.9 on: DPM++ 2M is Karras).
_AUTOMATIC_SCHEDULE = {"dpm++ 2m": "karras"}


def _schedule_name(schedule_type: str | None) -> str | None:
    """A1111 schedule type (any spelling; None or empty: "automatic") -> its name; None for an unknown one."""
    if schedule_type is None or not schedule_type.strip():
        return "automatic"
    return _SCHEDULES.get(" ".join(schedule_type.split()).lower())


def sampler_id(name: str | None, schedule_type: str | None = None) -> str | None:
    """The t2i sampler id that `name` (with A1111's `Schedule type`) means, or None when it is not one of ours.

    Reads A1111's names with the schedule apart (``"DPM++ 2M"``, ``"Karras"``), the older
    names with the schedule appended (``"DPM++ 2M Karras"``, which wins over `schedule_type`
    as A1111 decides), A1111's ``k_...`` aliases and t2i's own ids (``"dpm++2m-karras"``),
    all case-insensitively.  ``"DPM++ 2M"`` on the "Automatic" schedule is Karras, as A1111
    runs it since 1.9.
    """
    if not isinstance(name, str) or (schedule_type is not None and not isinstance(schedule_type, str)):
        return None
    text = " ".join(name.split()).lower()
    text = _SAMPLER_ALIASES.get(text, text)
    schedule = _schedule_name(schedule_type)
    for spelling in _SCHEDULE_SUFFIXES:
        if text.endswith(" " + spelling):
            text, schedule = text[: -len(spelling) - 1], _SCHEDULES[spelling]
            break
    if schedule == "automatic":
        schedule = _AUTOMATIC_SCHEDULE.get(text, "automatic")
    for sid, (a1111, own) in A1111_SAMPLERS.items():
        if text == a1111.lower() and schedule == _schedule_name(own):
            return sid
    if text in A1111_SAMPLERS and schedule in ("automatic", _schedule_name(A1111_SAMPLERS[text][1])):
        return text
    return None


def a1111_sampler(sampler: str) -> tuple[str, str | None]:
    """A request's sampler as A1111 writes it: (``Sampler``, ``Schedule type`` or None when "Automatic").

    t2i's ids (and A1111 names given as a sampler) become A1111's names; anything else is
    returned as it is, with no schedule type.
    """
    sid = sampler_id(sampler)
    return A1111_SAMPLERS[sid] if sid is not None else (sampler, None)


def parameters_sampler(parameters: Mapping[str, str]) -> str | None:
    """The t2i sampler id of a `parse_parameters` result (its ``Sampler`` and ``Schedule type``), or None."""
    return sampler_id(parameters.get("Sampler"), parameters.get("Schedule type"))


def format_parameters(
    request: GenerationRequest,
    seed: int,
    extras: Mapping[str, str] | None = None,
    prompt: str | None = None,
    negative_prompt: str | None = None,
) -> str:
    """Return the AUTOMATIC1111-compatible ``parameters`` text for one image.

    Line 1 is the prompt (``prompt``, defaulting to ``request.prompt``), then
    ``Negative prompt: ...`` unless the negative prompt is empty, then one settings line
    ``Steps: 25, Sampler: Euler, CFG scale: 7.5, Seed: 123, Size: 64x64, Model: shapes-xl``
    followed by ``, Key: value`` for each extra.  Request fields that are None are left
    out.  The sampler is written with A1111's name (`a1111_sampler`), followed by
    ``Schedule type: ...`` where A1111 writes one (``Sampler: DPM++ 2M, Schedule type:
    Karras``), so A1111 picks the same sampler; `parameters_sampler` reads both that and
    the older ``Sampler: DPM++ 2M Karras`` back into t2i's id.  Values containing ``,``,
    ``:``, a newline or ``"`` (or leading/trailing spaces) are quoted with JSON as A1111
    does (``"a, \\"b\\""``; `parse_parameters` unquotes them).  Extras keys must be valid
    settings keys that do not clash with the standard ones, else ValueError.
    """
    extras_checked = _check_extras(extras)
    prompt = request.prompt if prompt is None else prompt
    negative = request.negative_prompt if negative_prompt is None else negative_prompt
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")

    settings: list[tuple[str, str]] = []
    if request.steps is not None:
        settings.append(("Steps", str(request.steps)))
    if request.sampler is not None:
        sampler, schedule_type = a1111_sampler(request.sampler)
        settings.append(("Sampler", sampler))
        if schedule_type is not None:
            settings.append(("Schedule type", schedule_type))
    if request.guidance is not None:
        settings.append(("CFG scale", _format_number(request.guidance)))
    settings.append(("Seed", str(seed)))
    if request.width is not None and request.height is not None:
        settings.append(("Size", f"{request.width}x{request.height}"))
    settings.append(("Model", request.model))
    settings.extend(extras_checked.items())

    lines = [prompt]
    if negative:
        lines.append(f"{_NEGATIVE_PREFIX} {negative}")
    lines.append(", ".join(f"{key}: {_quote(value)}" for key, value in settings))
    return "\n".join(lines)


def _parse_pairs(line: str) -> list[tuple[str, str]]:
    """Every `Key: value` pair of a settings line, skipping unparsable pieces."""
    pairs: list[tuple[str, str]] = []
    pos = 0
    while pos < len(line):
        m = _PAIR.match(line, pos)
        if m is None:
            comma = line.find(",", pos)
            if comma < 0:
                break
            pos = comma + 1
            continue
        value = m.group(2)
        value = _unquote(value) if value.startswith('"') else value.rstrip()
        pairs.append((m.group(1).rstrip(), value))
        pos = m.end()
    return pairs


def _settings_pairs(line: str) -> list[tuple[str, str]] | None:
    """The pairs of `line` if it looks like a settings line (as A1111 decides), else None."""
    if not line.strip() or _PAIR.match(line) is None:
        return None
    pairs = _parse_pairs(line)
    keys = {k for k, _ in pairs}
    if "Steps" in keys or "Seed" in keys or len(pairs) >= 3:
        return pairs
    return None


def parse_parameters(text: str) -> dict[str, str]:
    """Parse an A1111 ``parameters`` text into a flat dict of strings.

    The result has ``"Prompt"`` and ``"Negative prompt"`` (empty when absent) plus every
    ``Key: value`` pair of the settings line, JSON-quoted values unquoted.  The settings
    line is the last line that looks like one (it has ``Steps`` or ``Seed``, or at least
    three pairs), so multi-line prompts and negatives written by other tools parse; lines
    before it are the prompt up to a line starting with ``Negative prompt:``, then the
    negative prompt.  Text without a settings line is all prompt.  Never raises on odd
    input; values such as ``Size`` are returned as written (``"512x512"``).
    """
    if not isinstance(text, str):
        raise TypeError(f"parameters text must be a string, got {type(text).__name__}")
    lines = text.replace("\r\n", "\n").split("\n")
    settings: list[tuple[str, str]] = []
    body = lines
    for i in range(len(lines) - 1, -1, -1):
        pairs = _settings_pairs(lines[i])
        if pairs is not None:
            settings = pairs
            body = lines[:i]
            # Tools that append further `Key: value` lines: keep their pairs too.
            for extra_line in lines[i + 1 :]:
                settings.extend(_settings_pairs(extra_line) or [])
            break

    prompt_lines: list[str] = []
    negative_lines: list[str] = []
    in_negative = False
    for line in body:
        if not in_negative and line.startswith(_NEGATIVE_PREFIX):
            in_negative = True
            rest = line[len(_NEGATIVE_PREFIX) :]
            negative_lines.append(rest[1:] if rest.startswith(" ") else rest)
        elif in_negative:
            negative_lines.append(line)
        else:
            prompt_lines.append(line)

    result: dict[str, str] = {}
    for key, value in settings:
        if key not in _PROMPT_KEYS:
            result[key] = value
    return {"Prompt": "\n".join(prompt_lines), "Negative prompt": "\n".join(negative_lines), **result}


# --------------------------------------------------------------------------- writing


def _check_count(name: str, value: Any, hi: int) -> int:
    """A non-negative int (not bool) no larger than `hi`, else ValueError."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= hi:
        raise ValueError(f"{name} must be an integer in [0, {hi}], got {value!r}")
    return value


@functools.cache
def _installed_version(package: str) -> str | None:
    """The installed distribution's version, or None when `package` is not installed."""
    from importlib import metadata as importlib_metadata

    try:
        return importlib_metadata.version(package)
    except importlib_metadata.PackageNotFoundError:
        return None


def runtime_versions() -> dict[str, str | None]:
    """The versions of t2i, torch, diffusers and transformers here (None for a package not installed)."""
    # t2i's own __version__, of the code running (its package is imported before this module; read from
    # sys.modules, not imported: the package's __init__ is the API layer, above this one)
    own = getattr(sys.modules.get("t2i"), "__version__", None)
    return {"t2i": own if isinstance(own, str) else _installed_version("t2i"),
            **{p: _installed_version(p) for p in VERSION_PACKAGES if p != "t2i"}}


def default_runtime(request: GenerationRequest) -> tuple[str | None, str | None]:
    """The device and dtype the backends' defaults give for `request`'s options: (None, None) where unknown.

    The ``device`` option, or for ``auto`` CUDA when torch (already imported: nothing is
    loaded for this) sees it, else the CPU; the ``dtype`` option, else float16 on CUDA and
    float32 elsewhere, as the SDXL backend chooses, and float32 for Paella (sampler
    ``paella``), which has no dtype option.  For callers that do not pass what the backend
    actually ran on to `build_pnginfo`.
    """
    options = request.model_options
    device = options.get("device")
    if not isinstance(device, str) or device == "auto":
        torch = sys.modules.get("torch")
        device = None if torch is None else ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = options.get("dtype")
    if not isinstance(dtype, str):
        on_cuda = device is not None and device.startswith("cuda")
        dtype = None if device is None else ("float16" if on_cuda and request.sampler != "paella" else "float32")
    return device, dtype


def _check_runtime_text(name: str, value: Any) -> str | None:
    """A version, device or dtype for the record: None or short text with no control characters."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string or None, got {type(value).__name__}")
    if not value or len(value) > MAX_RUNTIME_CHARS or text_problem(value):
        raise ValueError(f"{name} must be 1 to {MAX_RUNTIME_CHARS} printable characters, got {value[:120]!r}")
    return value


def build_pnginfo(
    request: GenerationRequest,
    seed: int,
    index: int,
    prompt_used: str,
    negative_used: str,
    extras: Mapping[str, str] | None = None,
    *,
    device: str | None = None,
    dtype: str | None = None,
) -> PngInfo:
    """Return a `PngInfo` with the ``parameters`` and ``t2i`` chunks for one image.

    Both are UTF-8 iTXt chunks so non-ASCII prompts survive.  ``t2i`` holds
    ``{"schema": "t2i.image/1", "request": request.to_dict(), "seed", "index",
    "prompt_used", "negative_prompt_used", "extras", "versions", "device", "dtype"}``:
    ``versions`` maps t2i, torch, diffusers and transformers to the versions installed
    (null for one that is not), and ``device`` / ``dtype`` are what the image was drawn
    on (``"cpu"``, ``"float32"``), given by the caller or else `default_runtime`'s
    reading of the request (null where neither knows).  Raises ValueError/TypeError for
    invalid arguments and ValueError when a chunk would exceed the size that
    `read_image_metadata` accepts (64 KiB for parameters, 256 KiB for t2i), so we never
    write a file we would refuse to read.
    """
    request.validate()
    _check_count("seed", seed, MAX_SEED)
    _check_count("index", index, MAX_INDEX)
    if not isinstance(prompt_used, str) or not isinstance(negative_used, str):
        raise TypeError("prompt_used and negative_used must be strings")
    extras_checked = _check_extras(extras)
    guessed_device, guessed_dtype = default_runtime(request)
    device = _check_runtime_text("device", guessed_device if device is None else device)
    dtype = _check_runtime_text("dtype", guessed_dtype if dtype is None else dtype)

    parameters = format_parameters(request, seed, extras_checked, prompt_used, negative_used)
    record = {
        "schema": IMAGE_SCHEMA,
        "request": request.to_dict(),
        "seed": seed,
        "index": index,
        "prompt_used": prompt_used,
        "negative_prompt_used": negative_used,
        "extras": extras_checked,
        "versions": runtime_versions(),
        "device": device,
        "dtype": dtype,
    }
    t2i_text = json.dumps(record, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    for key, text, cap in (
        (PARAMETERS_KEY, parameters, MAX_PARAMETERS_CHUNK_BYTES),
        (T2I_KEY, t2i_text, MAX_T2I_CHUNK_BYTES),
    ):
        size = len(text.encode("utf-8"))
        if size > cap:
            raise ValueError(f"the {key} metadata would be {size} bytes; the limit is {cap}")

    info = PngInfo()
    info.add_itxt(PARAMETERS_KEY, parameters)
    info.add_itxt(T2I_KEY, t2i_text)
    return info


# --------------------------------------------------------------------------- reading


def _reject_constant(name: str) -> Any:
    """json parse_constant hook: NaN and Infinity are not JSON."""
    raise ValueError(f"{name} is not allowed")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json object_pairs_hook: refuse objects that repeat a key."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _json_depth(text: str) -> int:
    """Nesting depth of the JSON text's arrays/objects, ignoring brackets inside strings."""
    depth = deepest = 0
    for m in _JSON_BRACKET.finditer(_JSON_STRING.sub('""', text)):
        if m.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _text_chunk(info: Mapping[Any, Any], key: str, cap: int, fail: _Fail) -> str | None:
    """The text chunk `key` from Pillow's info dict, checked for type and size."""
    value = info.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        fail(f"the {key} metadata chunk is not text")
    text = str(value)
    # A character is at most 4 UTF-8 bytes; only encode when the count is ambiguous.
    if len(text) > cap or (len(text) * 4 > cap and len(text.encode("utf-8", "surrogatepass")) > cap):
        fail(f"the {key} metadata chunk is larger than {cap // 1024} KiB")
    return text


def _open_regular(path: Path, fail: _Fail) -> BinaryIO:
    """Open `path` read-only without blocking on FIFOs; refuse non-files and huge files."""
    from t2i.userfiles import UserFileError, open_user_file

    try:
        return open_user_file(path, MAX_FILE_BYTES)
    except UserFileError as e:
        fail(str(e).removeprefix(f"{path}: "))


def _read_png_text(path: Path, fail: _Fail) -> dict[Any, Any]:
    """Open and check the PNG (size, pixel count, chunk CRCs, truncation); return its info."""
    with _open_regular(path, fail) as f:
        if f.read(len(_PNG_SIGNATURE)) != _PNG_SIGNATURE:
            fail("not a PNG image")
        f.seek(0)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(f, formats=["PNG"]) as im:
                    width, height = im.size
                    if width * height > MAX_PIXELS:
                        limit = MAX_PIXELS // 1_000_000
                        fail(f"the image is {width}x{height}; images over {limit} megapixels are refused")
                    info = dict(im.info)
                    # Checks every remaining chunk's CRC up to IEND without decoding pixels,
                    # so truncated and corrupted files are caught cheaply.
                    im.verify()
        except MetadataError:
            raise
        except Image.UnidentifiedImageError:
            # Pillow reports a broken chunk before the pixel data (e.g. a bad CRC) this way.
            fail("corrupt or truncated PNG (its header chunks are broken)")
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            fail(f"the image has more than {MAX_PIXELS // 1_000_000} megapixels")
        except Exception as e:  # untrusted input: any decoder failure is a bad file
            fail(f"corrupt or truncated PNG ({type(e).__name__}: {e})")
    return info


def _parse_t2i(text: str, fail: _Fail) -> dict[str, Any]:
    """Parse and validate the t2i chunk's JSON into ImageMetadata keyword arguments."""
    if _json_depth(text) > MAX_JSON_DEPTH:
        fail(f"the t2i metadata chunk nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        fail("the t2i metadata chunk is not valid JSON")
    if not isinstance(data, dict):
        fail("the t2i metadata chunk is not a JSON object")
    unknown = sorted(set(data) - _T2I_KEYS)
    if unknown:
        fail(f"the t2i metadata has unknown keys: {', '.join(unknown[:10])}")
    missing = [k for k in _T2I_REQUIRED if k not in data]
    if missing:
        fail(f"the t2i metadata lacks {', '.join(missing)}")
    if data["schema"] != IMAGE_SCHEMA:
        fail(f"unsupported t2i metadata schema {str(data['schema'])[:100]!r}; expected {IMAGE_SCHEMA!r}")
    try:
        request = GenerationRequest.from_dict(data["request"])
    except (RequestError, TypeError, ValueError) as e:
        fail(f"the t2i metadata holds an invalid request: {e}")
    for name, hi in (("seed", MAX_SEED), ("index", MAX_INDEX)):
        value = data[name]
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= hi:
            fail(f"the t2i metadata {name} must be an integer in [0, {hi}], got {str(value)[:40]}")
    for name in ("prompt_used", "negative_prompt_used"):
        if data.get(name) is not None and not isinstance(data[name], str):
            fail(f"the t2i metadata {name} must be a string")
    extras = data.get("extras", {})
    if not isinstance(extras, dict):
        fail("the t2i metadata extras must be a JSON object")
    if len(extras) > MAX_EXTRAS:
        fail(f"the t2i metadata has {len(extras)} extras; the limit is {MAX_EXTRAS}")
    for key, value in extras.items():
        if len(key) > MAX_EXTRA_KEY_CHARS:
            fail(f"the t2i metadata has an extras key longer than {MAX_EXTRA_KEY_CHARS} characters")
        if not isinstance(value, str):
            fail(f"the t2i metadata extras[{key!r}] must be a string, got {type(value).__name__}")
    versions = data.get("versions")
    if versions is not None:
        if not isinstance(versions, dict):
            fail("the t2i metadata versions must be a JSON object")
        if len(versions) > MAX_VERSIONS:
            fail(f"the t2i metadata names {len(versions)} versions; the limit is {MAX_VERSIONS}")
        for key, value in versions.items():
            _runtime_field(f"versions key {key[:40]!r}", key, fail)
            _runtime_field(f"versions[{key!r}]", value, fail)
    for name in ("device", "dtype"):
        _runtime_field(name, data.get(name), fail)
    return {
        "request": request,
        "seed": data["seed"],
        "index": data["index"],
        "prompt_used": data.get("prompt_used"),
        "negative_prompt_used": data.get("negative_prompt_used"),
        "extras": dict(extras),
        "versions": None if versions is None else dict(versions),
        "device": data.get("device"),
        "dtype": data.get("dtype"),
    }


def _runtime_field(name: str, value: Any, fail: _Fail) -> None:
    """A version, device or dtype read from a record: null or short printable text."""
    if value is None:
        return
    if not isinstance(value, str):
        fail(f"the t2i metadata {name} must be a string or null, got {type(value).__name__}")
    if not value or len(value) > MAX_RUNTIME_CHARS:
        fail(f"the t2i metadata {name} must be 1 to {MAX_RUNTIME_CHARS} characters")
    problem = text_problem(value)
    if problem:
        fail(f"the t2i metadata {name} {problem}")


def read_image_metadata(path: str | Path) -> ImageMetadata:
    """Read and validate the metadata of the PNG at `path`, treating it as untrusted.

    Refuses files over 64 MiB (before decoding), images over 50 megapixels, corrupt or
    truncated PNGs and non-PNG files, a ``t2i`` chunk over 256 KiB or a ``parameters``
    chunk over 64 KiB, and ``t2i`` JSON that is too deep, malformed, has unknown keys, an
    invalid request (checked by `GenerationRequest.from_dict`), a seed or index that is
    not a non-negative integer, or extras that are not a flat str -> str mapping of at
    most 64 entries.  Every such problem raises `MetadataError` naming the file.  A PNG
    with only an A1111 ``parameters`` chunk gives ``request=None`` and the text; a PNG
    with neither chunk gives an all-None result.  No path found in the metadata is ever
    opened.
    """
    path = Path(path)

    def fail(what: str) -> NoReturn:
        raise MetadataError(f"{path}: {what}")

    info = _read_png_text(path, fail)
    parameters = _text_chunk(info, PARAMETERS_KEY, MAX_PARAMETERS_CHUNK_BYTES, fail)
    t2i_text = _text_chunk(info, T2I_KEY, MAX_T2I_CHUNK_BYTES, fail)
    fields_: dict[str, Any] = {} if t2i_text is None else _parse_t2i(t2i_text, fail)
    return ImageMetadata(parameters=parameters, source=str(path), **fields_)


def replay_request(meta: ImageMetadata) -> GenerationRequest:
    """Return the request that regenerates exactly this image.

    That is the stored request with ``seed`` set to the image's own seed and
    ``n_images=1``; a sampler the record names with A1111's name (``"DPM++ 2M Karras"``,
    ``"Euler a"``) becomes t2i's id (`sampler_id`).  Raises `MetadataError` when the image
    has no ``t2i`` metadata: images that only carry A1111 ``parameters`` cannot be
    replayed bit for bit.
    """
    where = f"{meta.source}: " if meta.source else ""
    if meta.request is None or meta.seed is None:
        raise MetadataError(
            f"{where}the image has no t2i metadata; images with only A1111 'parameters' "
            "cannot be replayed bit for bit"
        )
    sampler = meta.request.sampler
    try:
        return meta.request.with_(seed=meta.seed, n_images=1, sampler=sampler_id(sampler) or sampler)
    except RequestError as e:
        raise MetadataError(f"{where}cannot replay the image: {e}") from e
