"""Reading a Canvas program without executing it: strictly for programs a user gives, leniently for LLM answers.

The reference (Omost) runs `exec` on the model's code.  Here the text is parsed with `ast` and only this is
accepted: `canvas = Canvas()` once, first, then `canvas.set_global_description(...)` /
`canvas.add_local_description(...)` calls whose arguments are keywords with literal values (strings,
finite numbers, lists or tuples of strings); comments and blank lines are allowed.

`parse_canvas` (a user's program: `--program FILE`, a PNG's metadata, a request) is strict about structure:
any line that is not valid Python, any other statement and any call the Canvas refuses (unknown argument,
wrong type, size) raises `CanvasError` naming the line and the reason.  Vocabulary words are read as Omost's
Canvas reads them: a near miss ('on the lef') is corrected to the closest word and the correction is
recorded, with its line, in `canvas.corrections` for the caller to print; a word too far from every valid
one is refused with the closest suggestions.  The program may sit in a ```python fence (text outside the
fence is ignored); without a fence, only blank and comment lines may come before `canvas = Canvas()` and
nothing but the program after.

`parse_canvas_lenient` (an LLM's answer) skips what cannot be read instead -- lines that do not parse, other
statements, refused calls, and everything from a second `canvas = Canvas()` on -- and says so in a
`ParseReport` whose `warning` counts the calls read and the lines skipped.  Text before `canvas = Canvas()`
and outside the fence is the answer's prose and is not counted.  It still raises `CanvasError` when no
`canvas = Canvas()` or no global description can be read.
"""

from __future__ import annotations

import ast
import math
import re
import textwrap
import warnings
from dataclasses import dataclass
from typing import Any

from t2i.compose.canvas import Canvas, CanvasError

MAX_ANSWER_CHARS = 200_000
MAX_PROGRAM_LINES = 5_000
MAX_CUTS = 20  # lenient: attempts to cut trailing text off one call before its lines are skipped
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
_CALL_LINE = re.compile(r"[ \t]*canvas\b")  # lenient: a line where a statement of the program starts
_ONLY_PYTHON = "a Canvas program holds only `canvas = Canvas()`, canvas calls, comments and blank lines"


def _is_text(line: str) -> bool:
    """A line that is neither blank nor a comment."""
    s = line.strip()
    return bool(s) and not s.startswith("#")


def _extract(text: str) -> tuple[str, int, bool]:
    if not isinstance(text, str):
        raise CanvasError(f"an answer must be text, got {type(text).__name__}")
    if len(text) > MAX_ANSWER_CHARS:
        raise CanvasError(f"the answer is {len(text)} characters long; the limit is {MAX_ANSWER_CHARS}")
    text = text.replace("\r\n", "\n").replace("\r", "\n")  # line numbers as editors count them
    for m in _FENCE.finditer(text):
        if _START.search(m.group(1)):
            return m.group(1), text[: m.start(1)].count("\n"), True
    m = _START.search(text)
    if m is None:
        raise CanvasError("no Canvas program in the answer (no `canvas = Canvas()` line)")
    return text[m.start():], text[: m.start()].count("\n"), False


def extract_program(text: str) -> tuple[str, int]:
    """(program text, number of the answer's line it starts on - 1) from an answer with or without a fence."""
    program, offset, _ = _extract(text)
    return program, offset


def _lines(text: str) -> tuple[str, int, bool, list[str]]:
    program, offset, fenced = _extract(text)
    program = textwrap.dedent(program)
    lines = program.split("\n")  # not splitlines(): ast counts only \n (the text has no \r left)
    if len(lines) > MAX_PROGRAM_LINES:
        raise CanvasError(f"the program has {len(lines)} lines; the limit is {MAX_PROGRAM_LINES}")
    return program, offset, fenced, lines


def _ast(source: str) -> ast.Module:
    with warnings.catch_warnings():  # e.g. invalid escape sequences in the model's strings
        warnings.simplefilter("ignore")
        return ast.parse(source, mode="exec")


def _syntax_message(e: SyntaxError) -> str:
    """Python's message, without advice meant for programmers ("; use sys.set_int_max_str_digits() ...")."""
    return str(e.msg).split(";")[0]


def _syntax_line(e: SyntaxError, source: str) -> int:
    """The program line a SyntaxError is about (1-based); null bytes come without a line number."""
    if e.lineno:
        return e.lineno
    return source[: source.index("\0")].count("\n") + 1 if "\0" in source else 1


def _literal(node: ast.AST, line: int, arg: str, depth: int = 0) -> Any:
    if depth > 2:
        raise CanvasError(f"line {line}: {arg}: values nest too deeply")
    sign = 1
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd) and \
            isinstance(node.operand, ast.Constant) and isinstance(node.operand.value, int | float) and \
            not isinstance(node.operand.value, bool):
        sign, node = (-1 if isinstance(node.op, ast.USub) else 1), node.operand
    if isinstance(node, ast.Constant):
        v = node.value
        if isinstance(v, bool) or v is None or not isinstance(v, str | int | float):
            raise CanvasError(f"line {line}: {arg}: {type(v).__name__} values are not accepted")
        if isinstance(v, float) and not math.isfinite(v):
            raise CanvasError(f"line {line}: {arg}: numbers must be finite (a literal beyond 1.8e308 reads as inf)")
        return v if isinstance(v, str) else sign * v  # huge ints are refused by the Canvas, by argument
    if isinstance(node, ast.List | ast.Tuple):
        items = [_literal(e, line, arg, depth + 1) for e in node.elts]
        if not all(isinstance(i, str) for i in items):
            raise CanvasError(f"line {line}: {arg}: lists may hold strings only")
        return items
    raise CanvasError(f"line {line}: {arg}: only literal values are accepted, not {type(node).__name__}")


def _is_canvas_init(stmt: ast.stmt) -> bool:
    return (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
            and stmt.targets[0].id == "canvas" and isinstance(stmt.value, ast.Call)
            and isinstance(stmt.value.func, ast.Name) and stmt.value.func.id == "Canvas"
            and not stmt.value.args and not stmt.value.keywords)


def _apply(canvas: Canvas, stmt: ast.stmt, offset: int) -> None:
    """Check one statement after `canvas = Canvas()` and make its call; CanvasError('line N: why') if refused."""
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
    lines: dict[str, int] = {}  # argument -> its value's line, for the corrections
    for kw in call.keywords:
        if kw.arg is None:
            raise CanvasError(f"line {line}: **arguments are not accepted")
        if kw.arg not in METHODS[method]:
            raise CanvasError(f"line {line}: {method} has no argument {kw.arg!r}")
        if kw.arg in kwargs:
            raise CanvasError(f"line {line}: argument {kw.arg!r} given twice")
        lines[kw.arg] = kw.value.lineno + offset
        kwargs[kw.arg] = _literal(kw.value, lines[kw.arg], kw.arg)
    missing = REQUIRED[method] - set(kwargs)
    if missing:
        raise CanvasError(f"line {line}: {method} lacks {', '.join(sorted(missing))}")

    def where(message: str) -> int:
        """The line of the argument a Canvas message starts with ("location: corrected ...", "area 'x' is not
        ..."), else the call's."""
        return lines.get(re.split(r"[: ]", message, maxsplit=1)[0], line)

    done = len(canvas.corrections)
    try:
        getattr(canvas, method)(**kwargs)
    except CanvasError as e:
        raise CanvasError(f"line {where(str(e))}: {e}") from None
    canvas.corrections[done:] = [f"line {where(c)}: {c}" for c in canvas.corrections[done:]]


def parse_canvas(text: str, corrections: list[str] | None = None, correct_words: bool = True) -> Canvas:
    """A user's Canvas program (optionally in a ```python fence) -> Canvas; strict: raises CanvasError naming
    the line and the reason for any line or statement that is not accepted.

    A near-miss location, offset, area or colour name is corrected as Omost's Canvas does, and each correction
    is listed in the returned canvas's `corrections` ("line 8: location: corrected 'on the lef' to 'on the
    left'"); pass a list as `corrections` to have them appended there too.  `correct_words=False` refuses
    near misses as well.
    """
    raw = text.replace("\r\n", "\n").replace("\r", "\n") if isinstance(text, str) else text
    program, offset, fenced, _ = _lines(raw)
    if not fenced:  # the text before `canvas = Canvas()` is part of the file: comments and blank lines only
        for n, before in enumerate(raw.split("\n")[:offset], start=1):
            if _is_text(before):
                raise CanvasError(f"line {n}: text before `canvas = Canvas()`; {_ONLY_PYTHON} (an answer's "
                                  "program may sit in a ```python fence instead)")
    try:
        module = _ast(program)
    except SyntaxError as e:
        raise CanvasError(f"line {_syntax_line(e, program) + offset}: not valid Python ({_syntax_message(e)}); "
                          f"{_ONLY_PYTHON}") from None
    except (RecursionError, MemoryError, ValueError) as e:
        raise CanvasError(f"the program cannot be parsed ({type(e).__name__})") from None
    body = module.body
    if not body or not _is_canvas_init(body[0]):
        raise CanvasError(f"line {(body[0].lineno if body else 1) + offset}: the program must start with "
                          "`canvas = Canvas()`")
    canvas = Canvas(corrections=[] if corrections is None else corrections, correct_words=correct_words)
    for stmt in body[1:]:
        _apply(canvas, stmt, offset)
    if canvas.description is None:
        raise CanvasError("the program never calls canvas.set_global_description(...)")
    return canvas


@dataclass(frozen=True)
class ParseReport:
    """What a lenient parse read: `calls` canvas calls, and the answer's lines it skipped (blank and comment
    lines not counted), each with the reason of the statement or text it belonged to."""

    calls: int
    skipped: tuple[tuple[int, str], ...] = ()

    @property
    def warning(self) -> str | None:
        """One line for the user, e.g. 'read 3 canvas calls; skipped 2 lines ... (lines 7-8; first: ...)'."""
        if not self.skipped:
            return None
        numbers = [n for n, _ in self.skipped]
        ranges: list[str] = []
        start = prev = numbers[0]
        for n in [*numbers[1:], None]:
            if n is not None and n == prev + 1:
                prev = n
                continue
            ranges.append(f"{start}" if start == prev else f"{start}-{prev}")
            if n is not None:
                start = prev = n
        shown = ", ".join(ranges[:8]) + (", ..." if len(ranges) > 8 else "")
        k = len(numbers)
        return (f"read {self.calls} canvas call{'s' if self.calls != 1 else ''}; skipped {k} "
                f"line{'s' if k != 1 else ''} that could not be read as canvas calls "
                f"(line{'s' if k != 1 else ''} {shown}; first: {self.skipped[0][1]})")


def _lenient_statements(program: str, lines: list[str], offset: int, skip: dict[int, str]) -> list[ast.stmt]:
    """The statements of `program` (program line numbers), skipping text that does not parse: the program is
    cut before each line that starts with `canvas`, and each piece loses the lines from its first syntax
    error on (prose after a call) or, when the error is in its first line or never clears, all of them."""
    try:
        return _ast(program).body
    except (SyntaxError, RecursionError, MemoryError, ValueError):
        pass
    starts = sorted({0} | {i for i, line in enumerate(lines) if _CALL_LINE.match(line)})
    out: list[ast.stmt] = []
    for a, b in zip(starts, [*starts[1:], len(lines)], strict=True):
        end, module, reason = b, None, ""
        for _ in range(MAX_CUTS):
            source = "\n".join(lines[a:end])
            try:
                module = _ast(source)
                break
            except SyntaxError as e:
                line = _syntax_line(e, source) + a  # the program's line
                reason = reason or f"line {line + offset}: not valid Python ({_syntax_message(e)})"
                if not a + 1 < line <= end:
                    break
                end = line - 1  # keep the statements before the line that broke
            except (RecursionError, MemoryError, ValueError) as e:
                reason = reason or f"line {a + 1 + offset}: cannot be parsed ({type(e).__name__})"
                break
        if module is None:
            end = a
        else:
            ast.increment_lineno(module, a)
            out += module.body
        for i in range(end, b):
            skip.setdefault(i + 1, reason)
    return out


def parse_canvas_lenient(text: str, corrections: list[str] | None = None,
                         correct_words: bool = True) -> tuple[Canvas, ParseReport]:
    """An LLM's answer -> (Canvas, ParseReport): what cannot be read is skipped and reported, not raised.

    Raises CanvasError only when the answer has no readable `canvas = Canvas()` or global description.
    `corrections` and `correct_words` as in `parse_canvas`.
    """
    program, offset, _, lines = _lines(text)
    skip: dict[int, str] = {}  # program line -> reason
    canvas = Canvas(corrections=[] if corrections is None else corrections, correct_words=correct_words)
    calls, started = 0, False
    for stmt in _lenient_statements(program, lines, offset, skip):
        first, last = stmt.lineno, stmt.end_lineno or stmt.lineno
        if not started:
            if _is_canvas_init(stmt):
                started = True
            else:
                for n in range(first, last + 1):
                    skip.setdefault(n, f"line {first + offset}: a statement before `canvas = Canvas()`")
            continue
        if _is_canvas_init(stmt):  # another program: the answer's first one is the one read
            for n in range(first, len(lines) + 1):
                skip.setdefault(n, f"line {first + offset}: a second `canvas = Canvas()` (another program)")
            break
        try:
            _apply(canvas, stmt, offset)
            calls += 1
        except CanvasError as e:
            for n in range(first, last + 1):
                skip.setdefault(n, str(e))
    skipped = tuple((n + offset, why) for n, why in sorted(skip.items()) if _is_text(lines[n - 1]))
    if not started:
        raise CanvasError(f"line {offset + 1}: the program must start with `canvas = Canvas()`")
    if canvas.description is None:
        hint = f" (skipped {skipped[0][1]})" if skipped else ""
        raise CanvasError(f"the program never calls canvas.set_global_description(...) in a way that can be "
                          f"read{hint}")
    return canvas, ParseReport(calls, skipped)
