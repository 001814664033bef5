"""Pieces every command module shares: argument types, terminal-safe text, quiet libraries."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

LLM_OPTION_HELP = ("language-model option, repeatable: backend=llama.cpp, device=cpu, n_ctx=2048; for a server URL "
                   "timeout=S (each read, default 10), start_deadline=S (until the first token, default 30), "
                   "deadline=S (the whole answer, default 600), retries=N (0-10, default 2)")
FORMATTER = argparse.RawDescriptionHelpFormatter


def size_arg(text: str) -> tuple[int, int]:
    """`64` or `64x48` -> (width, height)."""
    try:
        w, _, h = text.lower().partition("x")
        return int(w), int(h or w)
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 64 or 64x64, got {text!r}") from None


def option_arg(text: str) -> tuple[str, object]:
    """`KEY=VALUE` -> (key, value), the value read as a JSON scalar when it is one, else kept as text."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"options look like KEY=VALUE, got {text!r}")
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = value
    if isinstance(parsed, list | dict):
        parsed = value
    return key, parsed


def printable(text: object) -> str:
    """Text from images, models or users made safe for a terminal (control characters escaped)."""
    from t2i.text import printable as escape

    return escape(str(text))


def quiet_libraries() -> None:
    """Keep the libraries' own progress bars and notices off the terminal (ours are shown instead)."""
    from t2i.quiet import silence_libraries

    silence_libraries()


def numbered(folder: Path, stem: str, suffix: str) -> Path:
    """folder/stem-NNNNN.suffix with the next free number."""
    n = 0
    while (folder / f"{stem}-{n:05d}{suffix}").exists():
        n += 1
    return folder / f"{stem}-{n:05d}{suffix}"


def load_suite(path: Path | None) -> list:
    """The suite file at `path`, else the built-in shapes-world suite."""
    from t2i.world.suite import builtin_suite, read_suite

    return read_suite(path) if path is not None else builtin_suite()
