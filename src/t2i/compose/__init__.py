"""Omost composition: the Canvas (pure data), a parser that never executes model output, and layouts."""

from t2i.compose.canvas import COLOR_NAMES, Canvas, CanvasError, Component, Layout, Region, normalise_text
from t2i.compose.parse import ParseReport, extract_program, parse_canvas, parse_canvas_lenient

__all__ = ["COLOR_NAMES", "Canvas", "CanvasError", "Component", "Layout", "ParseReport", "Region",
           "extract_program", "normalise_text", "parse_canvas", "parse_canvas_lenient"]
