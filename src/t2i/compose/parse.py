"""Reading a Canvas program out of an LLM answer without executing it.

The reference runs `exec` on the model's code.  Here the text is parsed with `ast` and only this is
accepted: `canvas = Canvas()` once, first, then `canvas.set_global_description(...)` /
`canvas.add_local_description(...)` calls whose arguments are keywords with literal values (strings,
finite numbers, lists or tuples of strings); comments and blank lines are allowed.  Anything else raises
`CanvasError` naming the line and the reason.
"""

from __future__ import annotations

import ast
import math
import re
import textwrap
import warnings
from typing import Any

from t2i.compose.canvas import Canvas, CanvasError

MAX_ANSWER_CHARS = 200_000
MAX_PROGRAM_LINES = 5_000
METHODS = {
    "set_global_description": {"description", "detailed_descriptions", "tags", "HTML_web_color_name"},
    "add_local_description": {"location", "offset", "area", "distance_to_viewer", "description",
                              "detailed_descriptions", "tags", "atmosphere", "style", "quality_meta",
                              "HTML_web_color_name"},
}
REQUIRED = {"set_global_description": {"description"},
            "add_local_description": {"location", "offset", "area", "distance_to_viewer", "description"}}
_FENCE = re.compile(r"```[ \t]*(?:python|py)?[ \t]*\n(.*?)(?:```|\Z)", re.S | re.I)
_START = re.compile(r"^[ \t]*canvas\s*=\s*Canvas\s*\(\s*\)", re.M)


def extract_program(text: str) -> tuple[str, int]:
    """(program text, number of the answer's line it starts on - 1) from an answer with or without a fence."""
    if not isinstance(text, str):
        raise CanvasError(f"an answer must be text, got {type(text).__name__}")
    if len(text) > MAX_ANSWER_CHARS:
        raise CanvasError(f"the answer is {len(text)} characters long; the limit is {MAX_ANSWER_CHARS}")
    for m in _FENCE.finditer(text):
        if _START.search(m.group(1)):
            return m.group(1), text[: m.start(1)].count("\n")
    m = _START.search(text)
    if m is None:
        raise CanvasError("no Canvas program in the answer (no `canvas = Canvas()` line)")
    return text[m.start():], text[: m.start()].count("\n")


def _parse_prefix(program: str, offset: int) -> ast.Module:
    """Parse the program; prose after it is cut at the first line that does not parse."""
    lines = program.splitlines()
    if len(lines) > MAX_PROGRAM_LINES:
        raise CanvasError(f"the program has {len(lines)} lines; the limit is {MAX_PROGRAM_LINES}")
    end = len(lines)
    first_error: SyntaxError | None = None
    for _ in range(200):
        try:
            with warnings.catch_warnings():  # e.g. invalid escape sequences in the model's strings
                warnings.simplefilter("ignore")
                return ast.parse("\n".join(lines[:end]), mode="exec")
        except SyntaxError as e:
            first_error = first_error or e
            if not e.lineno or e.lineno <= 1 or e.lineno - 1 >= end:
                break
            end = e.lineno - 1  # drop the line that broke and everything after it (trailing prose)
        except (RecursionError, MemoryError, ValueError) as e:
            raise CanvasError(f"the program cannot be parsed ({type(e).__name__})") from None
    line = (first_error.lineno or 0) + offset if first_error else offset + 1
    raise CanvasError(f"line {line}: not valid Python ({first_error.msg if first_error else 'unparsable'})")


def _literal(node: ast.AST, line: int, depth: int = 0) -> Any:
    if depth > 2:
        raise CanvasError(f"line {line}: values nest too deeply")
    if isinstance(node, ast.Constant):
        v = node.value
        if isinstance(v, bool) or v is None or not isinstance(v, str | int | float):
            raise CanvasError(f"line {line}: {type(v).__name__} values are not accepted")
        if isinstance(v, float) and not math.isfinite(v):
            raise CanvasError(f"line {line}: numbers must be finite")
        return v
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd) and \
            isinstance(node.operand, ast.Constant) and isinstance(node.operand.value, int | float) and \
            not isinstance(node.operand.value, bool):
        v = node.operand.value
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.List | ast.Tuple):
        items = [_literal(e, line, depth + 1) for e in node.elts]
        if not all(isinstance(i, str) for i in items):
            raise CanvasError(f"line {line}: lists may hold strings only")
        return items
    raise CanvasError(f"line {line}: only literal values are accepted, not {type(node).__name__}")


def _is_canvas_init(stmt: ast.stmt) -> bool:
    return (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
            and stmt.targets[0].id == "canvas" and isinstance(stmt.value, ast.Call)
            and isinstance(stmt.value.func, ast.Name) and stmt.value.func.id == "Canvas"
            and not stmt.value.args and not stmt.value.keywords)


def parse_canvas(text: str, corrections: list[str] | None = None) -> Canvas:
    """An LLM answer -> Canvas; raises CanvasError (line and reason) for anything not accepted.

    `corrections`: None = unknown vocabulary words are errors; a list = they are corrected to the
    closest word and each correction is recorded there.
    """
    program, offset = extract_program(text)
    module = _parse_prefix(textwrap.dedent(program.replace("\r\n", "\n")), offset)
    body = module.body
    if not body or not _is_canvas_init(body[0]):
        raise CanvasError(f"line {offset + 1}: the program must start with `canvas = Canvas()`")
    canvas = Canvas(corrections=corrections)
    for stmt in body[1:]:
        line = stmt.lineno + offset
        call = stmt.value if isinstance(stmt, ast.Expr) else None
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                and isinstance(call.func.value, ast.Name) and call.func.value.id == "canvas"
                and call.func.attr in METHODS):
            raise CanvasError(f"line {line}: only canvas.set_global_description(...) and "
                              "canvas.add_local_description(...) calls are accepted")
        method = call.func.attr
        if call.args:
            raise CanvasError(f"line {line}: {method} takes keyword arguments only")
        kwargs: dict[str, Any] = {}
        for kw in call.keywords:
            if kw.arg is None:
                raise CanvasError(f"line {line}: **arguments are not accepted")
            if kw.arg not in METHODS[method]:
                raise CanvasError(f"line {line}: {method} has no argument {kw.arg!r}")
            if kw.arg in kwargs:
                raise CanvasError(f"line {line}: argument {kw.arg!r} given twice")
            kwargs[kw.arg] = _literal(kw.value, kw.value.lineno + offset)
        missing = REQUIRED[method] - set(kwargs)
        if missing:
            raise CanvasError(f"line {line}: {method} lacks {', '.join(sorted(missing))}")
        try:
            getattr(canvas, method)(**kwargs)
        except CanvasError as e:
            raise CanvasError(f"line {line}: {e}") from None
    if canvas.description is None:
        raise CanvasError("the program never calls canvas.set_global_description(...)")
    return canvas
