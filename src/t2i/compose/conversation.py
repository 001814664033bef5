"""Composing with an LLM: a conversation whose last answer is parsed (never executed) into a Canvas.

The system prompt follows the model: Omost's fine-tuned models get Omost's one-sentence prompt plus the
Canvas stub (their behaviour comes from fine-tuning); generic chat models get a stronger prompt with the
vocabularies and a worked example; our tiny models ship their own in `compose.json`.  An answer is read
leniently (`parse_canvas_lenient`: lines and calls that cannot be read are skipped, and a warning counts
them); one with no readable program is answered once with the error, and the model writes it again; a model
never trained on such turns (omost-tiny: `"retry": "resample"` in its compose.json) is instead asked the
same question again with the next seed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from t2i.cancel import CancelToken, check
from t2i.compose.canvas import Canvas, CanvasError
from t2i.compose.parse import parse_canvas_lenient
from t2i.grid import AREAS, LOCATIONS, OFFSETS
from t2i.llm.base import LLM, Message, SamplingSettings, TokenCallback

# Omost's defaults (lllyasviel/Omost, gradio_app.py): temperature 0.6, top_p 0.9, 4096 new tokens, seed 12345.
OMOST_SETTINGS = SamplingSettings(temperature=0.6, top_p=0.9, max_tokens=4096, seed=12345)


def _stub() -> str:
    def listing(words: Sequence[str]) -> str:
        return "[" + ", ".join(f'"{w}"' for w in words) + "]"

    return (
        "class Canvas:\n"
        "    def set_global_description(self, description: str, detailed_descriptions: list[str], tags: str,\n"
        "                               HTML_web_color_name: str):\n"
        "        pass\n\n"
        "    def add_local_description(self, location: str, offset: str, area: str, distance_to_viewer: float,\n"
        "                              description: str, detailed_descriptions: list[str], tags: str,\n"
        "                              atmosphere: str, style: str, quality_meta: str, HTML_web_color_name: str):\n"
        f"        assert location in {listing(list(LOCATIONS))}\n"
        f"        assert offset in {listing(list(OFFSETS))}\n"
        f"        assert area in {listing(list(AREAS))}\n"
        "        assert distance_to_viewer > 0\n"
        "        pass"
    )


OMOST_SYSTEM = ("You are a helpful AI assistant to compose images using the below python class `Canvas`:\n\n```python\n"
                + _stub() + "\n```")


def _example() -> str:
    c = Canvas()
    c.set_global_description("A red circle above a blue square on a gray background.", [], "red circle, blue "
                             "square, gray background", "gray")
    c.add_local_description("on the top", "no offset", "a small square area", 3.0, "A red circle.",
                            ["A flat red circle."], "red circle", "Calm.", "Flat.", "Sharp edges.", "red")
    c.add_local_description("on the bottom", "no offset", "a small square area", 2.0, "A blue square.",
                            ["A flat blue square."], "blue square", "Calm.", "Flat.", "Sharp edges.", "blue")
    return c.to_program()


GENERIC_SYSTEM = (
    OMOST_SYSTEM + "\n\nAnswer with one ```python block that starts with `canvas = Canvas()`, then calls "
    "`canvas.set_global_description(...)` once and `canvas.add_local_description(...)` once per object, with "
    "keyword arguments whose values are plain strings, numbers or lists of strings (no variables, no other "
    "code). location, offset and area must be exactly one of the listed phrases; HTML_web_color_name is a CSS "
    "colour name; larger distance_to_viewer means farther away. When the user asks for a change, write the "
    "whole program again.\n\nExample for 'a red circle above a blue square':\n```python\n" + _example() + "\n```"
)

OMOST_MODELS = ("omost-llama-3-8b", "omost-dolphin-2.9-llama3-8b", "omost-phi-3-mini-128k")


def system_prompt_for(name: str, folder: Path | None = None) -> str:
    """The model's own (compose.json beside its weights), Omost's for Omost models, else the generic one."""
    if folder is not None and folder.is_dir() and (folder / "compose.json").is_file():
        data = json.loads((folder / "compose.json").read_text(encoding="utf-8"))
        if not isinstance(data.get("system"), str):
            raise CanvasError(f"{folder / 'compose.json'}: no 'system' prompt")
        return data["system"]
    low = name.lower()
    return OMOST_SYSTEM if any(m in low for m in OMOST_MODELS) else GENERIC_SYSTEM


RETRIES = ("feedback", "resample")


def retry_for(folder: Path | None) -> str:
    """How the model retries a program that does not parse: its compose.json's "retry", else "feedback"."""
    if folder is None or not folder.is_dir() or not (folder / "compose.json").is_file():
        return "feedback"
    retry = json.loads((folder / "compose.json").read_text(encoding="utf-8")).get("retry", "feedback")
    if retry not in RETRIES:
        raise CanvasError(f"{folder / 'compose.json'}: retry must be one of {', '.join(RETRIES)}, got {retry!r}")
    return retry


@dataclass
class Composition:
    """A composed canvas with the conversation that made it."""

    canvas: Canvas
    program: str  # the canvas written back as a clean program
    answer: str  # the model's last raw answer
    messages: list[Message]  # system, users and assistants, the last answer included
    retried: bool = False
    warnings: list[str] = field(default_factory=list)


class Composer:
    """An LLM you own plus its system prompt.  `compose(prompt, history)` for one round of editing."""

    def __init__(self, llm: LLM, system: str, settings: SamplingSettings = OMOST_SETTINGS,
                 correct_words: bool = True, retry: str = "feedback") -> None:
        if retry not in RETRIES:
            raise ValueError(f"retry must be one of {', '.join(RETRIES)}, got {retry!r}")
        self.llm = llm
        self.system = system
        self.settings = settings
        self.correct_words = correct_words
        self.retry = retry

    def compose(self, prompt: str, history: Sequence[Message] = (), seed: int | None = None,
                on_token: TokenCallback | None = None, cancel: CancelToken | None = None) -> Composition:
        """Ask for a Canvas for `prompt` (or an edit of the last one, given `history` without the system
        message); raises CanvasError when the second answer does not parse either.  `cancel`, once set (from
        any thread), raises `Cancelled` before the next generated token (the LLM backend checks it)."""
        if not isinstance(prompt, str) or not prompt.strip():
            raise CanvasError("a composition needs a prompt")
        settings = self.settings if seed is None else _with_seed(self.settings, seed)
        messages = [Message("system", self.system), *history, Message("user", prompt)]
        given = {"cancel": cancel} if cancel is not None else {}  # an LLM without the keyword works without one
        check(cancel, "the first answer")
        answer = self.llm.chat(messages, settings, on_token, **given).text
        messages.append(Message("assistant", answer))
        try:
            return self._finish(answer, messages, retried=False)
        except CanvasError as first:
            if self.retry == "resample":  # the same question, the next seed
                del messages[-1]
            else:
                messages.append(Message("user", f"That program cannot be used: {first}. Write the whole program "
                                                "again, following the Canvas class exactly."))
            check(cancel, "the second answer")
            answer = self.llm.chat(messages, _with_seed(settings, settings.seed + 1), on_token, **given).text
            messages.append(Message("assistant", answer))
            return self._finish(answer, messages, retried=True, first_error=str(first))

    def _finish(self, answer: str, messages: list[Message], retried: bool, first_error: str = "") -> Composition:
        # skips what it cannot read, and says so; near-miss words corrected as Omost's Canvas does, and said
        canvas, report = parse_canvas_lenient(answer, correct_words=self.correct_words)
        warnings = [report.warning] if report.warning else []
        warnings += canvas.corrections
        if retried:
            warnings.insert(0, f"the first program was rejected ({first_error}); the model wrote it again")
        return Composition(canvas, canvas.to_program(), answer, messages, retried, warnings)


def _with_seed(s: SamplingSettings, seed: int) -> SamplingSettings:
    from dataclasses import replace

    return replace(s, seed=seed)
