"""Omost's virtual Canvas (lllyasviel/Omost, lib_omost/canvas.py), pure data: descriptions -> regions on the
90x90 grid.

`Canvas` has the two methods Omost LLMs are trained to call; `process()` gives the global region plus
one region per component (far to near), each with its rect (top, bottom, left, right), prefixes,
suffixes and colour; `Layout` round-trips through JSON (the form the ComfyUI port exchanges).
A location, offset, area or colour name outside the vocabulary is corrected to the closest word as the
reference's `closest_name` does (see `closest_word`), and each correction is recorded in
`Canvas.corrections`; docs/omost-fidelity.md lists where t2i deliberately differs.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageColor, ImageDraw

from t2i.grid import AREAS, GRID, LOCATIONS, OFFSETS, Box, VocabularyError, omost_box

# The 148 CSS colour names (as PIL knows them) plus Omost's `navyblue`.
COLOR_NAMES: dict[str, tuple[int, int, int]] = {
    **{name: ImageColor.getrgb(name)[:3] for name in ImageColor.colormap},  # type: ignore[misc]
    "navyblue": (0, 0, 128),
}
MAX_REGIONS = 64
MAX_TEXT = 2_000  # characters per text field
MAX_WORD = 200  # characters of a location/offset/area/colour phrase (the longest is under 40)


class CanvasError(ValueError):
    """A Canvas program or call that cannot be accepted; the message says where and why."""


def normalise_text(text: str) -> str:
    """Omost's rule: strip ',. ' (and whitespace) from both ends, then end with '.'; '' stays ''."""
    t = str(text)
    prev = None
    while prev != t:
        prev, t = t, t.strip(",. \t\r\n")
    return f"{t}." if t else ""


# The reference's closest_name: difflib.get_close_matches(word.lower(), vocabulary, n=1, cutoff=0.5).
CUTOFF = 0.5
NOUNS = {"location": "location", "offset": "offset", "area": "area", "HTML_web_color_name": "colour name"}


def closest_word(value: str, vocabulary: Sequence[str]) -> str | None:
    """Omost's `closest_name`: the vocabulary word most similar to `value.lower()` (difflib's ratio, ties to the
    word that sorts last), None when none reaches CUTOFF.  A word differing only in case is itself."""
    return next(iter(difflib.get_close_matches(value.lower(), list(vocabulary), n=1, cutoff=CUTOFF)), None)


def _suggestions(low: str, vocabulary: Sequence[str]) -> str:
    """The three most similar words, for an error; every word when the vocabulary is small and none is similar."""
    close = [w for w in difflib.get_close_matches(low, list(vocabulary), n=3, cutoff=0.0)
             if difflib.SequenceMatcher(None, low, w).ratio() > 0]
    if close:
        return "closest: " + ", ".join(repr(w) for w in close)
    if len(vocabulary) <= 9:
        return "valid: " + ", ".join(repr(w) for w in vocabulary)
    return "valid: the 148 CSS colour names and 'navyblue'"


def _word(table: dict[str, Any], value: Any, what: str, correct: bool, fixes: list[str]) -> str:
    """`value` as a word of `table`: the word itself when they differ at most in case; a near miss corrected
    (and the correction appended to `fixes`) when `correct`; else CanvasError naming the closest words."""
    if not isinstance(value, str):
        raise CanvasError(f"{what} must be a string, got {type(value).__name__}")
    noun = NOUNS.get(what, what)
    if len(value) > MAX_WORD:  # no word of the vocabulary can be 0.5 similar to a text this long
        raise CanvasError(f"{what}: a text of {len(value)} characters is not a valid {noun} (the phrases have at "
                          f"most {MAX_WORD})")
    low = value.lower()
    if low in table:  # as the reference: a difference of case is the same word, not a correction
        return low
    close = closest_word(value, table) if correct else None
    if close is not None:
        fixes.append(f"{what}: corrected {value!r} to {close!r}")
        return close
    raise CanvasError(f"{what} {value!r} is not a valid {noun}; {_suggestions(low, list(table))}")


def _texts(value: Any, what: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise CanvasError(f"{what} must be a list of strings")
    for v in value:
        if len(v) > MAX_TEXT:
            raise CanvasError(f"{what}: a text of {len(v)} characters (limit {MAX_TEXT})")
    return [n for n in (normalise_text(v) for v in value) if n]


def _distance(value: Any) -> float:
    """distance_to_viewer as a finite float > 0; huge ints (float() overflows) are refused, not raised."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CanvasError(f"distance_to_viewer must be a finite number > 0, got {type(value).__name__}")
    try:
        d = float(value)
    except OverflowError:
        digits = int(value.bit_length() * math.log10(2)) + 1  # str() of a huge int may itself refuse
        raise CanvasError(f"distance_to_viewer must be a finite number > 0, got an integer of about {digits} "
                          "digits (too large for a float)") from None
    if not math.isfinite(d) or d <= 0:
        raise CanvasError(f"distance_to_viewer must be a finite number > 0, got {value!r}")
    return d


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise CanvasError(f"{what} must be a string, got {type(value).__name__}")
    if len(value) > MAX_TEXT:
        raise CanvasError(f"{what}: {len(value)} characters (limit {MAX_TEXT})")
    return normalise_text(value)


@dataclass(frozen=True)
class Component:
    """One `add_local_description` call, validated and normalised."""

    location: str
    offset: str
    area: str
    distance_to_viewer: float
    description: str
    detailed_descriptions: tuple[str, ...] = ()
    tags: str = ""
    atmosphere: str = ""
    style: str = ""
    quality_meta: str = ""
    color: str = "white"

    @property
    def box(self) -> Box:
        return omost_box(self.location, self.offset, self.area)


@dataclass(frozen=True)
class Region:
    """A processed region: rect on the 90 grid (top, bottom, left, right), texts, colour."""

    rect: tuple[int, int, int, int]
    prefixes: tuple[str, ...]
    suffixes: tuple[str, ...]
    color: tuple[int, int, int]

    def to_dict(self) -> dict[str, Any]:
        return {"rect": list(self.rect), "prefixes": list(self.prefixes), "suffixes": list(self.suffixes),
                "color": list(self.color)}

    @classmethod
    def from_dict(cls, d: Any) -> Region:
        if not isinstance(d, dict) or set(d) != {"rect", "prefixes", "suffixes", "color"}:
            raise CanvasError("a region is {rect, prefixes, suffixes, color}")
        rect = d["rect"]
        if not (isinstance(rect, list) and len(rect) == 4 and all(isinstance(v, int) and 0 <= v <= GRID for v in rect)
                and rect[0] <= rect[1] and rect[2] <= rect[3]):
            raise CanvasError(f"rect must be [top, bottom, left, right] within [0, {GRID}], got {rect!r}")
        color = d["color"]
        if not (isinstance(color, list) and len(color) == 3 and all(isinstance(v, int) and 0 <= v <= 255
                                                                   for v in color)):
            raise CanvasError(f"color must be [r, g, b] in 0..255, got {color!r}")
        return cls(tuple(rect), tuple(_texts(d["prefixes"], "prefixes")), tuple(_texts(d["suffixes"], "suffixes")),
                   tuple(color))  # type: ignore[arg-type]


@dataclass(frozen=True)
class Layout:
    """The output of `Canvas.process()`: the global region first, then components far to near."""

    regions: tuple[Region, ...]

    @property
    def global_region(self) -> Region:
        return self.regions[0]

    def to_json(self) -> str:
        return json.dumps([r.to_dict() for r in self.regions])

    @classmethod
    def from_json(cls, text: str) -> Layout:
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as e:  # RecursionError: "[" nested thousands deep
            raise CanvasError(f"layout JSON: {e}") from e
        if not isinstance(data, list) or not data:
            raise CanvasError("a layout is a non-empty list of regions")
        if len(data) > MAX_REGIONS + 1:
            raise CanvasError(f"a layout has at most {MAX_REGIONS} regions besides the global one")
        return cls(tuple(Region.from_dict(d) for d in data))

    def color_image(self) -> np.ndarray:
        """The coarse (90, 90, 3) uint8 colour image, as the reference's `process()` computes its initial latent:
        the global colour, then each region far to near blended as 0.7 * colour + 0.3 * what is under it."""
        img = np.zeros((GRID, GRID, 3), dtype=np.float32) + np.asarray(self.regions[0].color, np.uint8)
        for r in self.regions[1:]:
            t, b, left, right = r.rect
            # the reference's dtypes: 0.7 * a uint8 colour is float64, 0.3 * the float32 image is float32; the
            # float64 sum is stored back as float32 (so 0.7 * 255 + 0.3 * 255 stays 255, not 254.99999999999997)
            img[t:b, left:right] = 0.7 * np.asarray(r.color, np.float64) + np.float32(0.3) * img[t:b, left:right]
        return np.clip(img, 0, 255).astype(np.uint8)  # truncated, as the reference's astype (not rounded)

    def masks(self, height: int, width: int) -> np.ndarray:
        """(R, height, width) float32 masks: the grid stretched to the image, nearest cell."""
        ys = np.minimum((np.arange(height) + 0.5) * GRID / height, GRID - 1e-6)
        xs = np.minimum((np.arange(width) + 0.5) * GRID / width, GRID - 1e-6)
        out = np.zeros((len(self.regions), height, width), dtype=np.float32)
        for i, r in enumerate(self.regions):
            t, b, left, right = r.rect
            out[i] = ((ys >= t) & (ys < b))[:, None] & ((xs >= left) & (xs < right))[None, :]
        return out

    def preview(self, size: tuple[int, int] = (360, 360)) -> Image.Image:
        """The colour image at `size` with each region's box and first words drawn over it."""
        w, h = size
        img = Image.fromarray(self.color_image()).resize((w, h), Image.NEAREST)
        draw = ImageDraw.Draw(img)
        for i, r in enumerate(self.regions[1:], start=1):
            t, b, left, right = r.rect
            box = (left * w / GRID, t * h / GRID, right * w / GRID - 1, b * h / GRID - 1)
            ink = (0, 0, 0) if sum(r.color) > 380 else (255, 255, 255)
            draw.rectangle(box, outline=ink, width=2)
            label = f"{i}: {r.prefixes[-1] if r.prefixes else ''}"[:40]
            draw.text((box[0] + 3, box[1] + 2), label, fill=ink)
        return img

    def flat_prompt(self) -> str:
        """Every region's texts in one prompt (for models without a regional renderer)."""
        parts: list[str] = []
        for r in self.regions:
            for p in (*r.prefixes, *r.suffixes):
                if p not in parts:
                    parts.append(p)
        return " ".join(parts)


@dataclass
class Canvas:
    """Omost's Canvas.  A location, offset, area or colour name outside the vocabulary is corrected to the
    closest word as the reference does (`closest_word`) and each correction is appended to `corrections`
    ("location: corrected 'on the lef' to 'on the left'"), never made silently; a word too far from every
    valid one raises CanvasError naming the closest.  `correct_words=False` refuses near misses too."""

    corrections: list[str] = field(default_factory=list)
    description: str | None = None
    detailed_descriptions: tuple[str, ...] = ()
    tags: str = ""
    color: str = "white"
    components: list[Component] = field(default_factory=list)
    correct_words: bool = True

    def __post_init__(self) -> None:
        if self.corrections is None:  # the former "no corrections list given"
            self.corrections = []

    def set_global_description(self, description: str, detailed_descriptions: Sequence[str] = (), tags: str = "",
                               HTML_web_color_name: str = "white") -> None:  # noqa: N803 (Omost's name)
        if self.description is not None:
            raise CanvasError("set_global_description called twice")
        fixes: list[str] = []  # recorded once the whole call is accepted
        text = _text(description, "description")
        if not text:
            raise CanvasError("the global description is empty")
        details = tuple(_texts(detailed_descriptions, "detailed_descriptions"))
        tags = _text(tags, "tags")
        color = _word(COLOR_NAMES, HTML_web_color_name, "HTML_web_color_name", self.correct_words, fixes)
        self.description, self.detailed_descriptions, self.tags, self.color = text, details, tags, color
        self.corrections.extend(fixes)

    def add_local_description(self, location: str, offset: str, area: str, distance_to_viewer: float,
                              description: str, detailed_descriptions: Sequence[str] = (), tags: str = "",
                              atmosphere: str = "", style: str = "", quality_meta: str = "",
                              HTML_web_color_name: str = "white") -> None:  # noqa: N803 (Omost's name)
        if len(self.components) >= MAX_REGIONS:
            raise CanvasError(f"more than {MAX_REGIONS} local descriptions")
        distance = _distance(distance_to_viewer)
        fixes: list[str] = []  # recorded once the whole call is accepted

        def word(table: dict[str, Any], value: Any, what: str) -> str:
            return _word(table, value, what, self.correct_words, fixes)

        try:
            comp = Component(
                location=word(LOCATIONS, location, "location"),
                offset=word(OFFSETS, offset, "offset"),
                area=word(AREAS, area, "area"),
                distance_to_viewer=distance,
                description=_text(description, "description"),
                detailed_descriptions=tuple(_texts(detailed_descriptions, "detailed_descriptions")),
                tags=_text(tags, "tags"), atmosphere=_text(atmosphere, "atmosphere"), style=_text(style, "style"),
                quality_meta=_text(quality_meta, "quality_meta"),
                color=word(COLOR_NAMES, HTML_web_color_name, "HTML_web_color_name"))
        except VocabularyError as e:
            raise CanvasError(str(e)) from e
        if not comp.description:
            raise CanvasError("a local description is empty")
        self.components.append(comp)
        self.corrections.extend(fixes)

    def process(self) -> Layout:
        """The global region, then components sorted far to near (stable), with their texts."""
        if self.description is None:
            raise CanvasError("the canvas has no global description (call set_global_description)")
        regions = [Region((0, GRID, 0, GRID), (self.description,),
                          tuple(x for x in (*self.detailed_descriptions, self.tags) if x), COLOR_NAMES[self.color])]
        for c in sorted(self.components, key=lambda c: -c.distance_to_viewer):
            suffixes = (*c.detailed_descriptions, c.tags, c.atmosphere, c.style, c.quality_meta)
            regions.append(Region(tuple(c.box), (self.description, c.description),  # type: ignore[arg-type]
                                  tuple(x for x in suffixes if x), COLOR_NAMES[c.color]))
        return Layout(tuple(regions))

    def to_program(self) -> str:
        """The canvas as the Python program an Omost LLM would write."""
        if self.description is None:
            raise CanvasError("the canvas has no global description")
        q = json.dumps  # a JSON string literal is a valid Python string literal
        lines = ["canvas = Canvas()", "canvas.set_global_description(", f"    description={q(self.description)},",
                 f"    detailed_descriptions={json.dumps(list(self.detailed_descriptions))},",
                 f"    tags={q(self.tags)},", f"    HTML_web_color_name={q(self.color)},", ")"]
        for c in self.components:
            lines += ["canvas.add_local_description(", f"    location={q(c.location)},", f"    offset={q(c.offset)},",
                      f"    area={q(c.area)},", f"    distance_to_viewer={c.distance_to_viewer},",
                      f"    description={q(c.description)},",
                      f"    detailed_descriptions={json.dumps(list(c.detailed_descriptions))},",
                      f"    tags={q(c.tags)},", f"    atmosphere={q(c.atmosphere)},", f"    style={q(c.style)},",
                      f"    quality_meta={q(c.quality_meta)},", f"    HTML_web_color_name={q(c.color)},", ")"]
        return "\n".join(lines)
